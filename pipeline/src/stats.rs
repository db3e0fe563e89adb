//! Counters of the running daemon, the status document built from them
//! (retained on `status`, repeated on `metrics`), and the Prometheus text
//! exposition of the same numbers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use edgebind_sensors::Modality;
use edgebind_sensors::adapter::{Health, Rig};
use serde_json::{Value, json};

use crate::outbox::Outbox;

/// The most recent latencies (ms), for quantiles.
#[derive(Debug, Default)]
pub struct Latencies {
    ring: VecDeque<f64>,
    count: u64,
}

/// Latencies kept for quantiles.
const KEEP: usize = 65_536;

impl Latencies {
    /// Records one value (ms).
    pub fn record(&mut self, ms: f64) {
        if self.ring.len() == KEEP {
            self.ring.pop_front();
        }
        self.ring.push_back(ms);
        self.count += 1;
    }

    /// Quantile `q` in [0, 1] of the kept values (nearest rank).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles(&[q]).pop().flatten()
    }

    /// Several quantiles from one sort of the kept values.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<Option<f64>> {
        let mut v: Vec<f64> = self.ring.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        qs.iter()
            .map(|q| {
                (!v.is_empty())
                    .then(|| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1])
            })
            .collect()
    }

    /// Values recorded since start.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn summary(&self) -> Value {
        let q = self.quantiles(&[0.5, 0.99, 1.0]);
        json!({
            "count": self.count,
            "p50_ms": q[0],
            "p99_ms": q[1],
            "max_ms": q[2],
        })
    }
}

/// Per-encoder counters.
#[derive(Debug, Default)]
pub struct EncoderStats {
    /// Windows queued now.
    pub depth: AtomicU64,
    /// Windows dropped (oldest) because the queue was full.
    pub dropped: AtomicU64,
    /// Windows embedded.
    pub encoded: AtomicU64,
    /// Batches run.
    pub batches: AtomicU64,
    /// Windows that failed (preprocessing or the model).
    pub errors: AtomicU64,
    /// Last failure.
    pub last_error: Mutex<Option<String>>,
    /// Window emitted -> embedding ready.
    pub latency: Mutex<Latencies>,
    /// Backend name.
    pub backend: Mutex<String>,
}

/// Everything the status document shows.
pub struct Stats {
    /// Device id.
    pub device_id: String,
    /// Start time.
    pub started: Instant,
    /// Wall-clock start (ns since the epoch).
    pub started_wall_ns: u64,
    /// The rig (for sensor health).
    pub rig: Mutex<Option<Arc<Mutex<Rig>>>>,
    /// Per-modality encoder counters.
    pub encoders: BTreeMap<Modality, Arc<EncoderStats>>,
    /// Windows cut, per modality.
    pub windows: [AtomicU64; 5],
    /// Moments fused.
    pub moments: AtomicU64,
    /// Event messages written to the outbox.
    pub events: AtomicU64,
    /// Event messages acknowledged by the broker.
    pub events_published: AtomicU64,
    /// Connected to the broker now.
    pub mqtt_connected: AtomicBool,
    /// Connection losses.
    pub mqtt_reconnects: AtomicU64,
    /// Last connection error.
    pub mqtt_last_error: Mutex<Option<String>>,
    /// Control commands received.
    pub commands: AtomicU64,
    /// Control commands refused.
    pub commands_rejected: AtomicU64,
    /// Concepts loaded.
    pub concepts: AtomicU64,
    /// Moments in the history.
    pub history_moments: AtomicU64,
    /// Window emitted -> moment matched (every moment).
    pub match_latency: Mutex<Latencies>,
    /// Window emitted -> PUBACK of the event it caused.
    pub publish_latency: Mutex<Latencies>,
    pending_publish: Mutex<HashMap<u64, Instant>>,
    last_rates: Mutex<Option<(Instant, Vec<u64>)>>,
}

impl Stats {
    /// Counters for a daemon with encoders for `modalities`.
    pub fn new(device_id: &str, modalities: &[Modality]) -> Self {
        Stats {
            device_id: device_id.to_string(),
            started: Instant::now(),
            started_wall_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            rig: Mutex::new(None),
            encoders: modalities
                .iter()
                .map(|m| (*m, Arc::new(EncoderStats::default())))
                .collect(),
            windows: Default::default(),
            moments: AtomicU64::new(0),
            events: AtomicU64::new(0),
            events_published: AtomicU64::new(0),
            mqtt_connected: AtomicBool::new(false),
            mqtt_reconnects: AtomicU64::new(0),
            mqtt_last_error: Mutex::new(None),
            commands: AtomicU64::new(0),
            commands_rejected: AtomicU64::new(0),
            concepts: AtomicU64::new(0),
            history_moments: AtomicU64::new(0),
            match_latency: Mutex::new(Latencies::default()),
            publish_latency: Mutex::new(Latencies::default()),
            pending_publish: Mutex::new(HashMap::new()),
            last_rates: Mutex::new(None),
        }
    }

    /// Notes that outbox message `seq` was caused by a window emitted at `emitted`.
    pub fn publish_pending(&self, seq: u64, emitted: Instant) {
        if let Ok(mut p) = self.pending_publish.lock() {
            p.insert(seq, emitted);
        }
    }

    /// Outbox message `seq` was acknowledged: records its latency.
    pub fn publish_acked(&self, seq: u64) {
        let t = self
            .pending_publish
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&seq));
        if let (Some(t), Ok(mut l)) = (t, self.publish_latency.lock()) {
            l.record(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    fn sensors(&self) -> Vec<Health> {
        let rig = self.rig.lock().ok().and_then(|r| r.clone());
        rig.and_then(|r| r.lock().ok().map(|r| r.health()))
            .unwrap_or_default()
    }

    /// The status document (schema v1).
    pub fn status_json(&self, outbox: &Mutex<Outbox>) -> Value {
        let health = self.sensors();
        // Rates from the change in pushed counts since the previous status.
        let pushed: Vec<u64> = health
            .iter()
            .flat_map(|h| h.streams.iter().map(|(_, c)| c.pushed))
            .collect();
        let now = Instant::now();
        let rates: Vec<Option<f64>> = {
            let mut last = self.last_rates.lock().unwrap_or_else(|p| p.into_inner());
            let r = match &*last {
                Some((t, prev)) if prev.len() == pushed.len() && now > *t => pushed
                    .iter()
                    .zip(prev)
                    .map(|(a, b)| Some(a.saturating_sub(*b) as f64 / (now - *t).as_secs_f64()))
                    .collect(),
                _ => vec![None; pushed.len()],
            };
            *last = Some((now, pushed));
            r
        };
        let mut rate_iter = rates.into_iter();
        let sensors: Vec<Value> = health
            .iter()
            .map(|h| {
                let up = matches!(h.state, edgebind_sensors::adapter::SensorState::Up);
                json!({
                    "adapter": h.adapter,
                    "up": up,
                    "state": h.state,
                    "starts": h.starts,
                    "streams": h.streams.iter().map(|(m, c)| json!({
                        "modality": m,
                        "pushed": c.pushed,
                        "dropped": c.dropped,
                        "rate_hz": rate_iter.next().flatten(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let encoders: serde_json::Map<String, Value> = self
            .encoders
            .iter()
            .map(|(m, e)| {
                (
                    m.to_string(),
                    json!({
                        "backend": *e.backend.lock().unwrap_or_else(|p| p.into_inner()),
                        "queue_depth": e.depth.load(Ordering::Acquire),
                        "queue_dropped": e.dropped.load(Ordering::Acquire),
                        "encoded": e.encoded.load(Ordering::Acquire),
                        "batches": e.batches.load(Ordering::Acquire),
                        "errors": e.errors.load(Ordering::Acquire),
                        "last_error": *e.last_error.lock().unwrap_or_else(|p| p.into_inner()),
                        "latency": e.latency.lock().map(|l| l.summary()).unwrap_or(Value::Null),
                    }),
                )
            })
            .collect();
        let ob = outbox.lock().map(|o| o.stats()).unwrap_or_default();
        json!({
            "v": 1,
            "device_id": self.device_id,
            "state": "online",
            "version": env!("CARGO_PKG_VERSION"),
            "started_wall_ns": self.started_wall_ns,
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "sensors": sensors,
            "windows": Modality::ALL.iter().map(|m| (m.to_string(), json!(self.windows[m.index()].load(Ordering::Acquire)))).collect::<serde_json::Map<_, _>>(),
            "encoders": encoders,
            "moments": self.moments.load(Ordering::Acquire),
            "concepts": self.concepts.load(Ordering::Acquire),
            "events": self.events.load(Ordering::Acquire),
            "events_published": self.events_published.load(Ordering::Acquire),
            "history_moments": self.history_moments.load(Ordering::Acquire),
            "outbox": ob,
            "mqtt": {
                "connected": self.mqtt_connected.load(Ordering::Acquire),
                "reconnects": self.mqtt_reconnects.load(Ordering::Acquire),
                "last_error": *self.mqtt_last_error.lock().unwrap_or_else(|p| p.into_inner()),
                "commands": self.commands.load(Ordering::Acquire),
                "commands_rejected": self.commands_rejected.load(Ordering::Acquire),
            },
            "latency": {
                "window_to_match": self.match_latency.lock().map(|l| l.summary()).unwrap_or(Value::Null),
                "window_to_puback": self.publish_latency.lock().map(|l| l.summary()).unwrap_or(Value::Null),
            },
        })
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn prometheus(&self, outbox: &Mutex<Outbox>) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(
                s,
                "# HELP edgebind_{name} {help}\n# TYPE edgebind_{name} {kind}"
            );
            for (labels, v) in rows {
                let _ = writeln!(s, "edgebind_{name}{labels} {v}");
            }
        };
        let health = self.sensors();
        let stream_rows =
            |f: &dyn Fn(&edgebind_sensors::ring::RingCounters) -> u64| -> Vec<(String, f64)> {
                health
                    .iter()
                    .flat_map(|h| {
                        h.streams.iter().map(move |(m, c)| {
                            (
                                format!("{{adapter=\"{}\",modality=\"{m}\"}}", h.adapter),
                                f(c) as f64,
                            )
                        })
                    })
                    .collect()
            };
        metric(
            "sensor_up",
            "gauge",
            "1 while the adapter delivers samples.",
            &health
                .iter()
                .map(|h| {
                    let up = matches!(h.state, edgebind_sensors::adapter::SensorState::Up);
                    (
                        format!("{{adapter=\"{}\"}}", h.adapter),
                        if up { 1.0 } else { 0.0 },
                    )
                })
                .collect::<Vec<_>>(),
        );
        metric(
            "samples_pushed_total",
            "counter",
            "Samples pushed into the rings.",
            &stream_rows(&|c| c.pushed),
        );
        metric(
            "samples_dropped_total",
            "counter",
            "Samples dropped (oldest) by full rings.",
            &stream_rows(&|c| c.dropped),
        );
        let enc = |f: &dyn Fn(&EncoderStats) -> f64| -> Vec<(String, f64)> {
            self.encoders
                .iter()
                .map(|(m, e)| (format!("{{modality=\"{m}\"}}"), f(e)))
                .collect()
        };
        metric(
            "encoder_queue_depth",
            "gauge",
            "Windows waiting for the encoder.",
            &enc(&|e| e.depth.load(Ordering::Acquire) as f64),
        );
        metric(
            "encoder_dropped_total",
            "counter",
            "Windows dropped by a full encoder queue.",
            &enc(&|e| e.dropped.load(Ordering::Acquire) as f64),
        );
        metric(
            "encoder_windows_total",
            "counter",
            "Windows embedded.",
            &enc(&|e| e.encoded.load(Ordering::Acquire) as f64),
        );
        metric(
            "encoder_errors_total",
            "counter",
            "Windows that failed to embed.",
            &enc(&|e| e.errors.load(Ordering::Acquire) as f64),
        );
        metric(
            "encoder_latency_p99_ms",
            "gauge",
            "Window emitted to embedding ready, p99 of recent windows.",
            &enc(&|e| {
                e.latency
                    .lock()
                    .ok()
                    .and_then(|l| l.quantile(0.99))
                    .unwrap_or(0.0)
            }),
        );
        let one = |v: f64| vec![(String::new(), v)];
        metric(
            "moments_total",
            "counter",
            "Moments fused.",
            &one(self.moments.load(Ordering::Acquire) as f64),
        );
        metric(
            "events_total",
            "counter",
            "Event messages written to the outbox.",
            &one(self.events.load(Ordering::Acquire) as f64),
        );
        metric(
            "events_published_total",
            "counter",
            "Event messages acknowledged by the broker.",
            &one(self.events_published.load(Ordering::Acquire) as f64),
        );
        let ob = outbox.lock().map(|o| o.stats()).unwrap_or_default();
        metric(
            "outbox_pending",
            "gauge",
            "Event messages waiting for a PUBACK.",
            &one(ob.pending as f64),
        );
        metric(
            "outbox_shed_total",
            "counter",
            "Event messages shed by a full outbox.",
            &one(ob.shed as f64),
        );
        metric(
            "mqtt_connected",
            "gauge",
            "1 while connected to the broker.",
            &one(if self.mqtt_connected.load(Ordering::Acquire) {
                1.0
            } else {
                0.0
            }),
        );
        metric(
            "mqtt_reconnects_total",
            "counter",
            "Broker connection losses.",
            &one(self.mqtt_reconnects.load(Ordering::Acquire) as f64),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile(0.5), None);
        for v in 1..=100 {
            l.record(v as f64);
        }
        assert_eq!(l.quantile(0.5), Some(50.0));
        assert_eq!(l.quantile(0.99), Some(99.0));
        assert_eq!(l.quantile(1.0), Some(100.0));
        assert_eq!(l.count(), 100);
    }

    #[test]
    fn status_and_prometheus_carry_the_counters() {
        let s = Stats::new("dev", &[Modality::Vision]);
        s.moments.store(7, Ordering::Release);
        s.encoders[&Modality::Vision]
            .dropped
            .store(3, Ordering::Release);
        let dir = std::env::temp_dir().join(format!("edgebind-stats-{}", std::process::id()));
        let ob = Mutex::new(Outbox::open(&dir, 1 << 20, 10).unwrap());
        let j = s.status_json(&ob);
        assert_eq!(j["moments"], 7);
        assert_eq!(j["encoders"]["vision"]["queue_dropped"], 3);
        assert_eq!(j["state"], "online");
        let p = s.prometheus(&ob);
        assert!(p.contains("edgebind_moments_total 7"), "{p}");
        assert!(
            p.contains("edgebind_encoder_dropped_total{modality=\"vision\"} 3"),
            "{p}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
