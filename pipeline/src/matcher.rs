//! The matcher thread: fuses embeddings into moments, scores every concept,
//! writes events to the outbox, keeps the history, and answers the control
//! plane (it owns the concepts, the history and the text tower, so commands
//! need no locks).
//!
//! ## Control plane (`edgebind/<device_id>/cmd/...`, replies on `reply/<request_id>`)
//!
//! | command | body (besides `"v": 1, "request_id"`) | reply (besides `"v", "request_id", "ok"`) |
//! |---|---|---|
//! | `concepts/add` | `"concept": {name, text or vector, watch, enter, exit, min_duration_s, cooldown_s}`, optional `"replace": true` | `"concept"` |
//! | `concepts/remove` | `"name"` | `"removed"` (name) |
//! | `concepts/list` | — | `"concepts": [{..spec, "active", "events", "source"}]` |
//! | `query` | `"text"` or `"vector"` or `"like_wall_ns"`; optional `"modality"` (default fused), `"last_s"`, `"k"` (default 5, max 100) | `"hits": [{"t": {mono_ns, wall_ns}, "score"}]` |
//!
//! Concepts added or removed at run time are kept in `<state dir>/concepts.json`
//! and applied over the config's on the next start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgebind_models::space::Embedding;
use edgebind_models::text::TextTower;
use edgebind_sensors::Modality;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::concepts::{Concept, ConceptSpec, EndReason, EventMsg, Instant2, MomentScore, Watch};
use crate::fusion::{Embedded, Fused, FusedMoment, Fusion};
use crate::history::{History, Record};
use crate::mqtt::Ctl;
use crate::outbox::Outbox;
use crate::stats::Stats;

/// Run-time changes to the config's concepts, kept across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConceptOverlay {
    /// Format version (1).
    pub v: u32,
    /// Added over the control plane (replacing a config concept of the same name).
    pub added: Vec<ConceptSpec>,
    /// Config concepts removed over the control plane.
    pub removed: Vec<String>,
}

impl ConceptOverlay {
    /// Reads `path` (absent = empty).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConceptOverlay {
                v: 1,
                ..Default::default()
            }),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Config concepts with this overlay applied.
    pub fn apply(&self, config: &[ConceptSpec]) -> Vec<ConceptSpec> {
        let mut out: Vec<ConceptSpec> = config
            .iter()
            .filter(|c| {
                !self.removed.contains(&c.name) && !self.added.iter().any(|a| a.name == c.name)
            })
            .cloned()
            .collect();
        out.extend(self.added.iter().cloned());
        out
    }
}

/// The embedding of a concept spec: its text through the tower, or its vector.
pub fn embed_spec(
    spec: &ConceptSpec,
    text: Option<&TextTower>,
    space: &Arc<str>,
) -> Result<Arc<Embedding>, String> {
    if let Some(t) = &spec.text {
        let tower = text.ok_or_else(|| {
            format!(
                "concept `{}`: text concepts need the text tower (run scripts/fetch-models.sh)",
                spec.name
            )
        })?;
        let e = tower
            .embed(&[t.as_str()])
            .map_err(|e| format!("concept `{}`: {e}", spec.name))?;
        let e = e.into_iter().next().ok_or("text tower returned nothing")?;
        if &e.space != space {
            return Err(format!(
                "concept `{}`: the text tower's space `{}` is not the encoders' space `{space}`",
                spec.name, e.space
            ));
        }
        return Ok(Arc::new(e));
    }
    if spec.example.is_some() {
        return Err(format!(
            "concept `{}`: `example` concepts are embedded by the daemon's encoders (config only)",
            spec.name
        ));
    }
    let v = spec.vector.clone().unwrap_or_default();
    Embedding::new(space.clone(), v)
        .map(Arc::new)
        .ok_or_else(|| format!("concept `{}`: the vector is zero", spec.name))
}

/// The matcher's state.
pub struct Matcher {
    /// Device id.
    pub device_id: String,
    /// Space of every encoder.
    pub space: Arc<str>,
    /// Dimension of that space.
    pub dim: Option<usize>,
    /// Fusion weights.
    pub weights: BTreeMap<Modality, f32>,
    /// Moments.
    pub fusion: Fusion,
    /// Concepts.
    pub concepts: Vec<Concept>,
    /// Names of the config's concepts (for `source` in lists, and the overlay).
    pub config_concepts: Vec<ConceptSpec>,
    /// Run-time changes.
    pub overlay: ConceptOverlay,
    /// Where the overlay is kept.
    pub overlay_path: PathBuf,
    /// Text tower, if available.
    pub text: Option<TextTower>,
    /// History.
    pub history: History,
    /// The outbox.
    pub outbox: Arc<Mutex<Outbox>>,
    /// Rung after each append.
    pub notify: Arc<Notify>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Last moment seen (for closing events at shutdown).
    pub last_t: Option<Instant2>,
}

impl Matcher {
    fn append(
        &mut self,
        msg: &EventMsg,
        emitted: Option<std::time::Instant>,
    ) -> Result<(), String> {
        let bytes = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        let seq = self
            .outbox
            .lock()
            .map_err(|_| "outbox lock poisoned".to_string())?
            .append(&bytes)
            .map_err(|e| e.to_string())?;
        if let Some(t) = emitted {
            self.stats.publish_pending(seq, t);
        }
        self.stats.events.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
        Ok(())
    }

    /// Processes one moment.
    pub fn moment(&mut self, m: &FusedMoment) -> Result<(), String> {
        self.stats.moments.fetch_add(1, Ordering::AcqRel);
        self.last_t = Some(m.t);
        let all = m.fuse(&self.weights, |_| true).map_err(|e| e.to_string())?;
        // One fused embedding per distinct watch list in this moment, however
        // many concepts share it.
        let mut by_watch: Vec<(Vec<Modality>, Option<Fused>)> = Vec::new();
        for c in &self.concepts {
            if let Watch::Modalities(w) = &c.spec.watch
                && !by_watch.iter().any(|(k, _)| k == w)
            {
                let f = m
                    .fuse(&self.weights, |x| w.contains(&x))
                    .map_err(|e| e.to_string())?;
                by_watch.push((w.clone(), f));
            }
        }
        let mut msgs = Vec::new();
        for c in &mut self.concepts {
            let fused = match &c.spec.watch {
                Watch::Fused => all.as_ref(),
                Watch::Modalities(w) => by_watch
                    .iter()
                    .find(|(k, _)| k == w)
                    .and_then(|(_, f)| f.as_ref()),
            };
            let (score, mods) = match fused {
                Some((e, mods)) => (
                    Some(c.embedding.cosine(e).map_err(|e| e.to_string())?),
                    mods.clone(),
                ),
                None => (None, vec![]),
            };
            let ms = MomentScore {
                t: m.t,
                score,
                modalities: mods,
            };
            if let Some(msg) = c.step(&self.device_id, &ms, m.window) {
                msgs.push(msg);
            }
        }
        for msg in &msgs {
            self.append(msg, Some(m.emitted))?;
        }
        if let Ok(mut l) = self.stats.match_latency.lock() {
            l.record(m.emitted.elapsed().as_secs_f64() * 1e3);
        }
        if let Some((fused, _)) = all {
            self.history.push(Record {
                t: m.t,
                fused: Arc::new(fused),
                parts: m
                    .parts
                    .iter()
                    .map(|p| (p.modality, p.embedding.clone()))
                    .collect(),
            });
            self.stats
                .history_moments
                .store(self.history.len() as u64, Ordering::Release);
        }
        Ok(())
    }

    /// Ends every running event (shutdown or end of input).
    pub fn close_all(&mut self, reason: EndReason) -> Result<(), String> {
        let t = self.last_t.unwrap_or(Instant2 {
            mono_ns: 0,
            wall_ns: 0,
        });
        let mut msgs = Vec::new();
        for c in &mut self.concepts {
            if let Some(m) = c.close(&self.device_id, t, reason) {
                msgs.push(m);
            }
        }
        for m in &msgs {
            self.append(m, None)?;
        }
        Ok(())
    }

    fn add(&mut self, body: &Value) -> Result<Value, String> {
        let spec: ConceptSpec =
            serde_json::from_value(body.get("concept").cloned().ok_or("`concept` missing")?)
                .map_err(|e| format!("concept: {e}"))?;
        spec.validate()?;
        if let (Some(v), Some(d)) = (&spec.vector, self.dim)
            && v.len() != d
        {
            return Err(format!(
                "concept `{}`: vector has {} values, the space has {d}",
                spec.name,
                v.len()
            ));
        }
        let replace = body
            .get("replace")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let exists = self.concepts.iter().position(|c| c.spec.name == spec.name);
        if exists.is_some() && !replace {
            return Err(format!(
                "concept `{}` exists; send \"replace\": true to replace it",
                spec.name
            ));
        }
        let emb = embed_spec(&spec, self.text.as_ref(), &self.space)?;
        if let Some(i) = exists {
            self.remove_at(i, EndReason::ConceptRemoved)?;
        }
        self.overlay.added.retain(|a| a.name != spec.name);
        self.overlay.removed.retain(|r| *r != spec.name);
        self.overlay.added.push(spec.clone());
        self.overlay.save(&self.overlay_path)?;
        self.concepts.push(Concept::new(spec.clone(), emb));
        self.stats
            .concepts
            .store(self.concepts.len() as u64, Ordering::Release);
        Ok(json!({ "concept": spec }))
    }

    fn remove_at(&mut self, i: usize, reason: EndReason) -> Result<(), String> {
        let mut c = self.concepts.remove(i);
        let t = self.last_t.unwrap_or(Instant2 {
            mono_ns: 0,
            wall_ns: 0,
        });
        if let Some(m) = c.close(&self.device_id, t, reason) {
            self.append(&m, None)?;
        }
        Ok(())
    }

    fn remove(&mut self, body: &Value) -> Result<Value, String> {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or("`name` missing")?
            .to_string();
        let i = self
            .concepts
            .iter()
            .position(|c| c.spec.name == name)
            .ok_or_else(|| format!("no concept `{name}`"))?;
        self.remove_at(i, EndReason::ConceptRemoved)?;
        self.overlay.added.retain(|a| a.name != name);
        if self.config_concepts.iter().any(|c| c.name == name)
            && !self.overlay.removed.contains(&name)
        {
            self.overlay.removed.push(name.clone());
        }
        self.overlay.save(&self.overlay_path)?;
        self.stats
            .concepts
            .store(self.concepts.len() as u64, Ordering::Release);
        Ok(json!({ "removed": name }))
    }

    fn list(&self) -> Value {
        let items: Vec<Value> = self
            .concepts
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(&c.spec).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.remove("vector");
                    m.insert("exit".into(), json!(c.spec.exit()));
                    m.insert("active".into(), json!(c.active()));
                    m.insert("events".into(), json!(c.events));
                    let from_config = self.config_concepts.iter().any(|s| s == &c.spec);
                    m.insert(
                        "source".into(),
                        json!(if from_config { "config" } else { "runtime" }),
                    );
                }
                v
            })
            .collect();
        json!({ "concepts": items })
    }

    fn query(&self, body: &Value) -> Result<Value, String> {
        let modality = match body.get("modality").and_then(Value::as_str) {
            None | Some("fused") => None,
            Some(s) => Some(
                s.parse::<Modality>()
                    .map_err(|_| format!("modality `{s}` is not fused or a modality"))?,
            ),
        };
        let k = body
            .get("k")
            .and_then(Value::as_u64)
            .unwrap_or(5)
            .clamp(1, 100) as usize;
        let last_ns = match body.get("last_s") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let s = v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or("`last_s` must be a positive number")?;
                Some((s * 1e9) as u64)
            }
        };
        let q: Arc<Embedding> = if let Some(t) = body.get("text") {
            let t = t
                .as_str()
                .filter(|t| !t.trim().is_empty() && t.len() <= 1024)
                .ok_or("`text` must be 1-1024 bytes")?;
            let tower = self
                .text
                .as_ref()
                .ok_or("text queries need the text tower (scripts/fetch-models.sh)")?;
            Arc::new(tower.embed(&[t]).map_err(|e| e.to_string())?.remove(0))
        } else if let Some(v) = body.get("vector") {
            let v: Vec<f32> =
                serde_json::from_value(v.clone()).map_err(|e| format!("vector: {e}"))?;
            if self.dim.is_some_and(|d| d != v.len()) {
                return Err(format!(
                    "vector has {} values, the space has {}",
                    v.len(),
                    self.dim.unwrap_or(0)
                ));
            }
            Arc::new(Embedding::new(self.space.clone(), v).ok_or("vector is zero or not finite")?)
        } else if let Some(w) = body.get("like_wall_ns").and_then(Value::as_u64) {
            self.history
                .at_wall(w, modality)
                .ok_or("no stored moment to use as the example")?
        } else {
            return Err("give `text`, `vector` or `like_wall_ns`".into());
        };
        let hits = self.history.search(&q, modality, last_ns, k)?;
        Ok(json!({ "hits": hits, "searched": self.history.len() }))
    }

    /// Answers one control command.
    pub fn control(&mut self, c: Ctl) {
        let r = match c.command.as_str() {
            "concepts/add" => self.add(&c.body),
            "concepts/remove" => self.remove(&c.body),
            "concepts/list" => Ok(self.list()),
            "query" => self.query(&c.body),
            other => Err(format!(
                "unknown command `cmd/{other}` (concepts/add, concepts/remove, concepts/list, query)"
            )),
        };
        let _ = c.reply.send(r);
    }

    /// The thread body: embeddings and commands until both inputs end or `stop`.
    pub fn run(
        mut self,
        embeddings: crossbeam_channel::Receiver<Embedded>,
        control: crossbeam_channel::Receiver<Ctl>,
        stop: Arc<AtomicBool>,
        exit_at_end: bool,
    ) -> Result<(), String> {
        let mut moments = Vec::new();
        let mut input_open = true;
        loop {
            if input_open {
                crossbeam_channel::select! {
                    recv(embeddings) -> e => match e {
                        Ok(e) => {
                            self.fusion.push(e, &mut moments);
                        }
                        Err(_) => {
                            input_open = false;
                            self.fusion.finish(&mut moments);
                        }
                    },
                    recv(control) -> c => { if let Ok(c) = c { self.control(c) } },
                    default(Duration::from_millis(100)) => {}
                }
                for m in moments.drain(..) {
                    if let Err(e) = self.moment(&m) {
                        eprintln!("edgebind: matcher: {e}");
                    }
                }
                if !input_open {
                    self.close_all(EndReason::Shutdown)?;
                    if exit_at_end || stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                }
            } else {
                match control.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => self.control(c),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(_) => return Ok(()),
                }
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
            }
        }
    }
}
