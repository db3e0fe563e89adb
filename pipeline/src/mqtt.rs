//! The MQTT side of the daemon (rumqttc on tokio): publishes the outbox in
//! order, keeps the retained status, answers the control plane.
//!
//! ## Delivery
//!
//! Events go out with QoS 1, oldest first, at most [`WINDOW`] unacknowledged at
//! a time. A message leaves the outbox only when its PUBACK arrives. When the
//! connection drops, the session is thrown away (rumqttc's own retransmission
//! state with it) and a new one starts after a backoff (0.5 s doubling to 5 s);
//! on the new connection everything still in the outbox is sent again from the
//! oldest. So after an outage every event arrives, in order; an event whose
//! PUBACK was lost in the outage arrives twice, and subscribers dedupe by
//! `(event_id, phase)`.
//!
//! Packet ids are matched to outbox entries through the order of rumqttc's
//! `Outgoing::Publish` notifications, which follow the order of our publish
//! requests; the in-flight limit is set far above [`WINDOW`], so rumqttc never
//! has to hold back a colliding packet id (which would reorder them).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::config::{BrokerAddr, BrokerConfig};
use crate::outbox::Outbox;
use crate::stats::Stats;

/// Unacknowledged events at most.
pub const WINDOW: usize = 32;
/// Largest control command accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Topics of one device.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `edgebind/<device_id>/`.
    pub prefix: String,
}

impl Topics {
    /// Topics of `device_id`.
    pub fn new(device_id: &str) -> Self {
        Topics {
            prefix: format!("edgebind/{device_id}/"),
        }
    }
    /// `events`.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    /// `status` (retained).
    pub fn status(&self) -> String {
        format!("{}status", self.prefix)
    }
    /// `metrics`.
    pub fn metrics(&self) -> String {
        format!("{}metrics", self.prefix)
    }
    /// `cmd/#`.
    pub fn commands(&self) -> String {
        format!("{}cmd/#", self.prefix)
    }
    /// `reply/<request_id>`.
    pub fn reply(&self, request_id: &str) -> String {
        format!("{}reply/{request_id}", self.prefix)
    }
}

/// A control-plane command handed to the matcher thread.
#[derive(Debug)]
pub struct Ctl {
    /// What follows `cmd/` in the topic (`concepts/add`, `query`, ...).
    pub command: String,
    /// The JSON body.
    pub body: Value,
    /// Where the reply goes (the reply JSON, without `v` and `request_id`).
    pub reply: oneshot::Sender<Result<Value, String>>,
}

/// Whether a request id can be a topic level.
pub fn valid_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Builds the client options (shared by the daemon and `listen`/`query`).
pub fn options(
    client_id: &str,
    addr: &BrokerAddr,
    cfg: &BrokerConfig,
    will: Option<LastWill>,
) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(client_id, addr.host.clone(), addr.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.unwrap_or(10).max(5)));
    o.set_clean_session(true);
    o.set_inflight(1024);
    o.set_max_packet_size(1 << 20, 1 << 20);
    if let Some(u) = &cfg.username {
        o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
    }
    if let Some(w) = will {
        o.set_last_will(w);
    }
    if addr.tls || cfg.tls.is_some() {
        tls(&mut o, cfg)?;
    }
    Ok(o)
}

#[cfg(feature = "tls")]
fn tls(o: &mut MqttOptions, cfg: &BrokerConfig) -> Result<(), String> {
    let Some(t) = &cfg.tls else {
        o.set_transport(rumqttc::Transport::tls_with_default_config());
        return Ok(());
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("broker.tls: {}: {e}", p.display()))
    };
    let ca = read(&t.ca)?;
    let client = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        (None, None) => None,
        _ => return Err("broker.tls: give both `cert` and `key` for a client certificate".into()),
    };
    o.set_transport(rumqttc::Transport::tls(ca, client, None));
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn tls(_: &mut MqttOptions, _: &BrokerConfig) -> Result<(), String> {
    Err("TLS to the broker needs edgebind built with `--features tls`".into())
}

/// Checks a command's size, JSON, `request_id` and `v`. The error carries the
/// request id when one was readable (the reply goes to `reply/<id>`, else to
/// `reply/_error`).
fn parse_command(
    command: &str,
    payload: &[u8],
) -> Result<(String, Value), (Option<String>, String)> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err((
            None,
            format!(
                "cmd/{command}: {} bytes is over the {MAX_COMMAND_BYTES}-byte limit; nothing changed",
                payload.len()
            ),
        ));
    }
    let body: Value = match serde_json::from_slice(payload) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err((
                None,
                format!("cmd/{command}: the payload must be a JSON object"),
            ));
        }
        Err(e) => return Err((None, format!("cmd/{command}: not JSON: {e}"))),
    };
    let rid = match body.get("request_id").and_then(Value::as_str) {
        Some(r) if valid_request_id(r) => r.to_string(),
        _ => {
            return Err((
                None,
                format!(
                    "cmd/{command}: `request_id` missing or not 1-128 letters, digits, `-`, `_`, `.`"
                ),
            ));
        }
    };
    if body.get("v").and_then(Value::as_u64) != Some(1) {
        return Err((Some(rid), "`v` must be 1".into()));
    }
    Ok((rid, body))
}

enum Tag {
    Event(u64),
    Other,
}

/// What the publisher needs.
pub struct Publisher {
    /// Broker address.
    pub addr: BrokerAddr,
    /// Broker settings.
    pub cfg: BrokerConfig,
    /// Client id.
    pub client_id: String,
    /// Topics.
    pub topics: Topics,
    /// The outbox.
    pub outbox: Arc<Mutex<Outbox>>,
    /// Rung when the outbox grows.
    pub notify: Arc<Notify>,
    /// Commands to the matcher thread.
    pub ctl: crossbeam_channel::Sender<Ctl>,
    /// Counters (and the status document).
    pub stats: Arc<Stats>,
    /// Status period.
    pub status_every: Duration,
}

/// What the publisher is told from outside: `None` = run, `Some(deadline)` =
/// drain the outbox until it is empty or the deadline passes, then leave.
pub type Drain = Option<tokio::time::Instant>;

fn offline(device: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"v": 1, "device_id": device, "state": "offline"}))
        .unwrap_or_default()
}

impl Publisher {
    /// Runs until drained (see [`Drain`]). Returns an error only for settings
    /// that can never work (TLS asked of a build without it).
    pub async fn run(self, mut drain: watch::Receiver<Drain>) -> Result<(), String> {
        let mut backoff = Duration::from_millis(500);
        let will = LastWill::new(
            self.topics.status(),
            offline(&self.stats.device_id),
            QoS::AtLeastOnce,
            true,
        );
        let opts = options(&self.client_id, &self.addr, &self.cfg, Some(will))?;
        loop {
            if let Some(deadline) = *drain.borrow() {
                let empty = self.outbox.lock().map(|o| o.is_empty()).unwrap_or(true);
                if empty || tokio::time::Instant::now() >= deadline {
                    return Ok(());
                }
            }
            let outcome = self.session(opts.clone(), &mut drain).await;
            self.stats.mqtt_connected.store(false, Ordering::Release);
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stats.mqtt_reconnects.fetch_add(1, Ordering::AcqRel);
                    if let Ok(mut l) = self.stats.mqtt_last_error.lock() {
                        *l = Some(e.clone());
                    }
                    eprintln!(
                        "edgebind: broker {}:{}: {e}; retrying in {:.1} s",
                        self.addr.host,
                        self.addr.port,
                        backoff.as_secs_f64()
                    );
                }
            }
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    r = drain.changed() => if r.is_err() { break },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(
        &self,
        opts: MqttOptions,
        drain: &mut watch::Receiver<Drain>,
    ) -> Result<(), String> {
        let (client, mut el) = AsyncClient::new(opts, 512);
        let mut tags: VecDeque<Tag> = VecDeque::new();
        let mut inflight: HashMap<u16, u64> = HashMap::new();
        let mut sent_upto = 0u64;
        let mut connected = false;
        let mut leaving = false;
        let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
        let mut tick = tokio::time::interval(self.status_every);
        let mut drain_check = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if ack.code != rumqttc::ConnectReturnCode::Success {
                            return Err(format!("broker refused the connection: {:?}", ack.code));
                        }
                        connected = true;
                        self.stats.mqtt_connected.store(true, Ordering::Release);
                        client.try_subscribe(self.topics.commands(), QoS::AtLeastOnce).map_err(|e| e.to_string())?;
                        self.publish_status(&client, &mut tags)?;
                        self.pump(&client, &mut tags, &inflight, &mut sent_upto)?;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Tag::Event(seq)) = tags.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        if let Some(seq) = inflight.remove(&a.pkid) {
                            self.acked(seq)?;
                        }
                        self.pump(&client, &mut tags, &inflight, &mut sent_upto)?;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        self.command(p, &client, &mut tags, &reply_tx)?;
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) if leaving => return Ok(()),
                    Ok(_) => {}
                    Err(e) if leaving => { let _ = e; return Ok(()) }
                    Err(e) => return Err(e.to_string()),
                },
                _ = self.notify.notified() => {
                    if connected {
                        self.pump(&client, &mut tags, &inflight, &mut sent_upto)?;
                    }
                }
                Some((topic, payload)) = reply_rx.recv() => {
                    client.try_publish(topic, QoS::AtLeastOnce, false, payload).map_err(|e| e.to_string())?;
                    tags.push_back(Tag::Other);
                }
                _ = tick.tick() => {
                    if connected {
                        self.publish_status(&client, &mut tags)?;
                    }
                }
                _ = drain_check.tick() => {
                    let Some(deadline) = *drain.borrow() else { continue };
                    if leaving {
                        continue;
                    }
                    let empty = self.outbox.lock().map(|o| o.is_empty()).unwrap_or(true);
                    if (connected && empty && inflight.is_empty()) || tokio::time::Instant::now() >= deadline {
                        if !connected {
                            return Ok(());
                        }
                        // Graceful goodbye: the retained status says offline (the
                        // last will only fires on an unclean drop).
                        let _ = client.try_publish(self.topics.status(), QoS::AtLeastOnce, true, offline(&self.stats.device_id));
                        let _ = client.try_disconnect();
                        leaving = true;
                    }
                }
                r = drain.changed() => { if r.is_err() { return Ok(()) } }
            }
        }
    }

    fn acked(&self, seq: u64) -> Result<(), String> {
        let mut ob = self
            .outbox
            .lock()
            .map_err(|_| "outbox lock poisoned".to_string())?;
        if ob.ack(seq).map_err(|e| e.to_string())? {
            self.stats.events_published.fetch_add(1, Ordering::AcqRel);
            self.stats.publish_acked(seq);
        }
        Ok(())
    }

    fn pump(
        &self,
        client: &AsyncClient,
        tags: &mut VecDeque<Tag>,
        inflight: &HashMap<u16, u64>,
        sent_upto: &mut u64,
    ) -> Result<(), String> {
        let ob = self
            .outbox
            .lock()
            .map_err(|_| "outbox lock poisoned".to_string())?;
        loop {
            let waiting =
                inflight.len() + tags.iter().filter(|t| matches!(t, Tag::Event(_))).count();
            if waiting >= WINDOW {
                return Ok(());
            }
            let Some((seq, payload)) = ob.next_after(*sent_upto) else {
                return Ok(());
            };
            match client.try_publish(
                self.topics.events(),
                QoS::AtLeastOnce,
                false,
                payload.to_vec(),
            ) {
                Ok(()) => {
                    tags.push_back(Tag::Event(seq));
                    *sent_upto = seq;
                }
                // The request queue is full: the next PUBACK pumps again.
                Err(_) => return Ok(()),
            }
        }
    }

    fn publish_status(&self, client: &AsyncClient, tags: &mut VecDeque<Tag>) -> Result<(), String> {
        let status = self.stats.status_json(&self.outbox);
        let bytes = serde_json::to_vec(&status).map_err(|e| e.to_string())?;
        if client
            .try_publish(self.topics.status(), QoS::AtLeastOnce, true, bytes.clone())
            .is_ok()
        {
            tags.push_back(Tag::Other);
        }
        if client
            .try_publish(self.topics.metrics(), QoS::AtMostOnce, false, bytes)
            .is_ok()
        {
            tags.push_back(Tag::Other);
        }
        Ok(())
    }

    fn command(
        &self,
        p: rumqttc::Publish,
        client: &AsyncClient,
        tags: &mut VecDeque<Tag>,
        reply_tx: &mpsc::UnboundedSender<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        let prefix = format!("{}cmd/", self.topics.prefix);
        let Some(command) = p.topic.strip_prefix(&prefix) else {
            return Ok(());
        };
        let command = command.to_string();
        self.stats.commands.fetch_add(1, Ordering::AcqRel);
        let mut reply = |rid: &str, v: Value| -> Result<(), String> {
            let bytes = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
            client
                .try_publish(self.topics.reply(rid), QoS::AtLeastOnce, false, bytes)
                .map_err(|e| e.to_string())?;
            tags.push_back(Tag::Other);
            Ok(())
        };
        let error =
            |rid: &str, msg: String| json!({"v": 1, "request_id": rid, "ok": false, "error": msg});
        let (rid, body) = match parse_command(&command, &p.payload) {
            Ok(x) => x,
            Err((rid, msg)) => {
                self.stats.commands_rejected.fetch_add(1, Ordering::AcqRel);
                let rid = rid.unwrap_or_default();
                let topic = if rid.is_empty() {
                    "_error"
                } else {
                    rid.as_str()
                };
                return reply(topic, error(&rid, msg));
            }
        };
        let (tx, rx) = oneshot::channel();
        if self
            .ctl
            .send(Ctl {
                command,
                body,
                reply: tx,
            })
            .is_err()
        {
            return reply(&rid, error(&rid, "the daemon is shutting down".into()));
        }
        let topic = self.topics.reply(&rid);
        let replies = reply_tx.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let v = match tokio::time::timeout(Duration::from_secs(30), rx).await {
                Ok(Ok(Ok(mut v))) => {
                    if let Value::Object(m) = &mut v {
                        m.insert("v".into(), json!(1));
                        m.insert("request_id".into(), json!(rid));
                        m.insert("ok".into(), json!(true));
                    }
                    v
                }
                Ok(Ok(Err(e))) => {
                    stats.commands_rejected.fetch_add(1, Ordering::AcqRel);
                    json!({"v": 1, "request_id": rid, "ok": false, "error": e})
                }
                _ => {
                    json!({"v": 1, "request_id": rid, "ok": false, "error": "no answer from the matcher within 30 s"})
                }
            };
            let _ = replies.send((topic, serde_json::to_vec(&v).unwrap_or_default()));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_before_anything_runs() {
        let ok = parse_command("query", br#"{"v":1,"request_id":"a-1","text":"x"}"#).unwrap();
        assert_eq!(ok.0, "a-1");
        let (rid, e) = parse_command("query", br#"{"v":2,"request_id":"a"}"#).unwrap_err();
        assert_eq!((rid.as_deref(), e.as_str()), (Some("a"), "`v` must be 1"));
        let (rid, e) = parse_command("query", br#"{"v":1,"request_id":"a/b"}"#).unwrap_err();
        assert!(rid.is_none() && e.contains("request_id"), "{e}");
        assert!(
            parse_command("x", b"[1]")
                .unwrap_err()
                .1
                .contains("JSON object")
        );
        assert!(parse_command("x", b"{").unwrap_err().1.contains("not JSON"));
        let big = vec![b' '; MAX_COMMAND_BYTES + 1];
        assert!(parse_command("x", &big).unwrap_err().1.contains("limit"));
        assert_eq!(Topics::new("d").reply("r"), "edgebind/d/reply/r");
    }
}
