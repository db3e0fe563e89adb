//! The optional Prometheus endpoint (`[health] prometheus = "127.0.0.1:9464"`):
//! `GET /metrics` in the text exposition format; anything else is 404. A
//! deliberately small HTTP/1.1 responder: one request per connection.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::outbox::Outbox;
use crate::stats::Stats;

/// Serves until the runtime stops.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>, outbox: Arc<Mutex<Outbox>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let stats = stats.clone();
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded; a slow or huge request is dropped).
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            n += k;
                            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let ok = head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?");
            let (status, body) = if ok {
                ("200 OK", stats.prometheus(&outbox))
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
