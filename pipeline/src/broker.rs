//! The embedded broker: with no `[broker] url`, the daemon starts rumqttd on
//! 127.0.0.1 (never another interface) so the demo needs nothing installed.
//! Subscribers connect to `mqtt://127.0.0.1:<embedded_port>` (default 1883).

/// Starts rumqttd on `127.0.0.1:port` on its own threads.
#[cfg(feature = "embedded-broker")]
pub fn start(port: u16) -> Result<(), String> {
    let addr = format!("127.0.0.1:{port}");
    // rumqttd reports a busy port only in its logs; probe it first so the
    // user gets a clear error.
    std::net::TcpListener::bind(&addr).map_err(|e| {
        format!(
            "embedded broker: cannot listen on {addr}: {e} (another broker running? set [broker] url to use it, or embedded_port)"
        )
    })?;
    let config = serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 64,
            "max_outgoing_packet_count": 1000,
            "max_segment_size": 1048576,
            "max_segment_count": 10,
        },
        "v4": {
            "1": {
                "name": "edgebind-embedded",
                "listen": addr,
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60000,
                    "max_payload_size": 1048576,
                    "max_inflight_count": 1024,
                    "dynamic_filters": true,
                },
            },
        },
    });
    let config: rumqttd::Config =
        serde_json::from_value(config).map_err(|e| format!("embedded broker config: {e}"))?;
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("edgebind: embedded broker stopped: {e}");
            }
        })
        .map_err(|e| format!("embedded broker: cannot spawn its thread: {e}"))?;
    // Wait until it accepts connections.
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(format!(
        "embedded broker: not listening on {addr} after 2 s"
    ))
}

/// Without the `embedded-broker` feature there is nothing to start.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(port: u16) -> Result<(), String> {
    Err(format!(
        "no [broker] url configured and this build has no embedded broker (feature `embedded-broker`); \
         set [broker] url or --broker (wanted 127.0.0.1:{port})"
    ))
}
