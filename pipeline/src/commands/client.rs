//! `edgebind listen` and `edgebind query`: small MQTT clients of a running daemon.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use edgebind::config::{BrokerConfig, parse_broker_url};
use edgebind::mqtt::{Topics, options};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};

use super::CmdResult;

/// Arguments of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Broker (mqtt://HOST:PORT).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Device id (`+` for every device).
    #[arg(long, default_value = "+")]
    pub device_id: String,
    /// Also print status messages.
    #[arg(long)]
    pub status: bool,
    /// Print raw JSON, one message per line.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many event messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn client_id(kind: &str) -> String {
    format!(
        "edgebind-{kind}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

fn wall(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
    format!("{h:02}:{m:02}:{sec:02}.{:03}", (ns / 1_000_000) % 1000)
}

fn line(v: &Value) -> String {
    let phase = v["phase"].as_str().unwrap_or("?");
    let at = if phase == "end" {
        &v["end"]
    } else {
        &v["start"]
    };
    format!(
        "{:<5} {:<20} at {} (mono {:.3} s)  peak {:.3}  [{}]  {}  id {}",
        phase,
        v["concept"].as_str().unwrap_or("?"),
        wall(at["wall_ns"].as_u64().unwrap_or(0)),
        at["mono_ns"].as_u64().unwrap_or(0) as f64 / 1e9,
        v["peak_score"].as_f64().unwrap_or(f64::NAN),
        v["modalities"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("+"))
            .unwrap_or_default(),
        v["device_id"].as_str().unwrap_or("?"),
        v["event_id"].as_str().unwrap_or("?"),
    )
}

/// Prints a device's events as they come.
pub fn listen(a: ListenArgs) -> CmdResult {
    let addr = parse_broker_url(&a.broker).map_err(|e| format!("--broker: {e}"))?;
    let opts = options(&client_id("listen"), &addr, &BrokerConfig::default(), None)?;
    let rt = runtime()?;
    rt.block_on(async {
        let (client, mut el) = AsyncClient::new(opts, 16);
        let events = format!("edgebind/{}/events", a.device_id);
        let status = format!("edgebind/{}/status", a.device_id);
        client
            .subscribe(&events, QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        if a.status {
            client
                .subscribe(&status, QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string())?;
        }
        let deadline = a
            .timeout
            .map(|t| tokio::time::Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        let mut seen = 0u64;
        eprintln!("listening on {} for {events}", a.broker);
        loop {
            let ev = match deadline {
                Some(d) => match tokio::time::timeout_at(d, el.poll()).await {
                    Ok(e) => e,
                    Err(_) => return Ok(ExitCode::SUCCESS),
                },
                None => el.poll().await,
            };
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let is_event = p.topic.ends_with("/events");
                    if a.json {
                        println!("{}", json!({"topic": p.topic, "payload": v}));
                    } else if is_event {
                        println!("{}", line(&v));
                    } else {
                        println!("status {}: {}", p.topic, v["state"].as_str().unwrap_or("?"));
                    }
                    if is_event {
                        seen += 1;
                        if a.count.is_some_and(|c| seen >= c) {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(format!("broker {}: {e}", a.broker)),
            }
        }
    })
}

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// What to look for, in words.
    pub text: String,
    /// How far back: 90s, 10m, 2h (default: the whole history).
    #[arg(long, value_parser = parse_duration)]
    pub last: Option<f64>,
    /// Moments to return.
    #[arg(short, default_value_t = 5)]
    pub k: u32,
    /// `fused` or one modality.
    #[arg(long, default_value = "fused")]
    pub modality: String,
    /// Broker (mqtt://HOST:PORT).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Device id of the daemon.
    #[arg(long, default_value = "edgebind")]
    pub device_id: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 15.0)]
    pub timeout: f64,
    /// Print the raw JSON reply.
    #[arg(long)]
    pub json: bool,
}

/// Parses 90, 90s, 10m, 2h, 1d into seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1.0),
        Some((i, 'm')) => (&s[..i], 60.0),
        Some((i, 'h')) => (&s[..i], 3600.0),
        Some((i, 'd')) => (&s[..i], 86400.0),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * mul),
        _ => Err(format!("`{s}` is not a duration like 90s, 10m, 2h")),
    }
}

/// Asks a running daemon for the moments most like some text.
pub fn query(a: QueryArgs) -> CmdResult {
    let addr = parse_broker_url(&a.broker).map_err(|e| format!("--broker: {e}"))?;
    let opts = options(&client_id("query"), &addr, &BrokerConfig::default(), None)?;
    let topics = Topics::new(&a.device_id);
    let rid = client_id("q");
    let mut body =
        json!({"v": 1, "request_id": rid, "text": a.text, "k": a.k, "modality": a.modality});
    if let Some(l) = a.last {
        body["last_s"] = json!(l);
    }
    let rt = runtime()?;
    let reply: Value = rt.block_on(async {
        let (client, mut el) = AsyncClient::new(opts, 16);
        client
            .subscribe(topics.reply(&rid), QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.timeout.max(0.1));
        let mut sent = false;
        loop {
            let ev = tokio::time::timeout_at(deadline, el.poll())
                .await
                .map_err(|_| {
                    format!(
                        "no reply from device `{}` within {} s (is the daemon running?)",
                        a.device_id, a.timeout
                    )
                })?;
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) if !sent => {
                    client
                        .publish(
                            format!("{}cmd/query", topics.prefix),
                            QoS::AtLeastOnce,
                            false,
                            body.to_string(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    sent = true;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    return serde_json::from_slice(&p.payload)
                        .map_err(|e| format!("bad reply: {e}"));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("broker {}: {e}", a.broker)),
            }
        }
    })?;
    if a.json {
        println!("{reply}");
    }
    if reply["ok"] != json!(true) {
        return Err(format!(
            "daemon: {}",
            reply["error"].as_str().unwrap_or("error")
        ));
    }
    if !a.json {
        let hits = reply["hits"].as_array().cloned().unwrap_or_default();
        println!(
            "{} moment(s) searched; best {}:",
            reply["searched"],
            hits.len()
        );
        for h in hits {
            println!(
                "  {:.3}  at {} (mono {:.3} s)",
                h["score"].as_f64().unwrap_or(f64::NAN),
                wall(h["t"]["wall_ns"].as_u64().unwrap_or(0)),
                h["t"]["mono_ns"].as_u64().unwrap_or(0) as f64 / 1e9
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `slideshow`.
#[derive(Debug, Args)]
pub struct SlideshowArgs {
    /// The slideshow spec (TOML).
    pub spec: std::path::PathBuf,
    /// Output MCAP file.
    #[arg(short, long)]
    pub output: std::path::PathBuf,
}

/// Writes a slideshow recording and prints its schedule.
pub fn slideshow(a: SlideshowArgs) -> CmdResult {
    let s = edgebind::slideshow::Slideshow::load(&a.spec)?;
    let sched = s.record(&a.output)?;
    for sh in &sched {
        println!(
            "{:>7.2} s - {:>7.2} s  {}",
            sh.start_ns as f64 / 1e9,
            sh.end_ns as f64 / 1e9,
            sh.label.as_deref().unwrap_or("(grey)")
        );
    }
    eprintln!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), 600.0);
        assert_eq!(parse_duration("90").unwrap(), 90.0);
        assert_eq!(parse_duration("2h").unwrap(), 7200.0);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }
}
