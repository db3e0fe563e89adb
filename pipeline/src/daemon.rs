//! `edgebind run`: the live topology.
//!
//! ```text
//! sensor threads --rings--> windower thread --bounded queue per modality--> encoder worker
//!   (one per modality: waits for a window, gathers up to max_batch within max_wait,
//!    preprocesses with the contract, runs the backend) --channel--> matcher thread
//!   (fusion, concepts, history, control plane) --outbox (disk)--> MQTT publisher (tokio)
//! ```
//!
//! Sensors, windowing, encoders and matching run on plain threads joined by
//! crossbeam channels; only the network runs on tokio (one current-thread
//! runtime on the main thread). A full encoder queue drops its OLDEST window
//! and counts it (`encoders.<m>.queue_dropped` in status): a slow model loses
//! stale windows, never the newest.
//!
//! Shutdown (SIGINT/SIGTERM, or the end of a replay with `--exit-at-end`): the
//! rig stops, every window already cut is still embedded and matched, running
//! events get their `end` (reason `shutdown`), then the publisher drains the
//! outbox (up to `--drain-timeout`), publishes the retained status `offline`
//! and disconnects. What cannot be delivered stays in the outbox for the next
//! start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use edgebind_models::backend::Encoder;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::preprocess::window::Preprocessor;
use edgebind_models::space::{Embedding, SpaceError};
use edgebind_models::text::TextTower;
use edgebind_sensors::Modality;
use edgebind_sensors::adapter::{Rig, SampleConsumer, SensorAdapter};
use edgebind_sensors::adapters::{ReplayAdapter, SimAdapter};
use edgebind_sensors::recording::{McapReader, decode_sample};
use edgebind_sensors::sample::Sample;
use edgebind_sensors::window::{Window, Windower};
use tokio::sync::{Notify, watch};

use crate::concepts::ExampleSpec;
use crate::config::{Config, EncoderConfig, RigKind, parse_broker_url};
use crate::fusion::{Embedded, Fusion};
use crate::history::History;
use crate::matcher::{ConceptOverlay, Matcher, embed_spec};
use crate::mqtt::{Publisher, Topics};
use crate::outbox::Outbox;
use crate::stats::{EncoderStats, Stats};

/// How `run` behaves beyond the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Exit once the rig's input has ended (replay) and the outbox is drained.
    pub exit_at_end: bool,
    /// Longest wait for the outbox to drain on the way out.
    pub drain_timeout: Duration,
    /// Print a summary on exit.
    pub summary: bool,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// Seconds run.
    pub seconds: f64,
    /// Moments fused.
    pub moments: u64,
    /// Event messages written.
    pub events: u64,
    /// Event messages acknowledged.
    pub events_published: u64,
    /// Left in the outbox.
    pub outbox_pending: usize,
    /// The final status document.
    pub status: serde_json::Value,
}

/// A window and when the windower emitted it.
type Job = (Window, Instant);

/// A bounded queue that drops its oldest entry when full (live sensors), or
/// waits for room (a replay at `fast` pace, which must lose nothing).
struct DropOldest {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    stats: Arc<EncoderStats>,
    lossless: bool,
}

impl DropOldest {
    fn offer(&self, mut job: Job) {
        if self.lossless {
            let _ = self.tx.send(job);
            self.stats
                .depth
                .store(self.rx.len() as u64, Ordering::Release);
            return;
        }
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    if self.rx.try_recv().is_ok() {
                        self.stats.dropped.fetch_add(1, Ordering::AcqRel);
                    }
                    job = j;
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        self.stats
            .depth
            .store(self.rx.len() as u64, Ordering::Release);
    }
}

fn load_encoder(m: Modality, ec: &EncoderConfig) -> Result<Box<dyn Encoder>, String> {
    let enc: Box<dyn Encoder> = match ec.backend.as_str() {
        "tract" => Box::new(
            TractEncoder::load(&ec.model, &ec.backend_options())
                .map_err(|e| format!("encoders.{m}: {e}"))?,
        ),
        #[cfg(feature = "tensorrt")]
        "tensorrt" => Box::new(
            edgebind_models::backend::tensorrt::TensorRtEncoder::load(
                &ec.model,
                &ec.backend_options(),
                &Default::default(),
            )
            .map_err(|e| format!("encoders.{m}: {e}"))?,
        ),
        other => {
            return Err(format!(
                "encoders.{m}.backend = \"{other}\": this build has no such backend (tensorrt needs `--features tensorrt`)"
            ));
        }
    };
    let cm = enc.contract().modality.as_str();
    if cm != m.as_str() {
        return Err(format!(
            "encoders.{m}: {} is a {cm} encoder (its contract says so), not {m}",
            ec.model.display()
        ));
    }
    Ok(enc)
}

fn build_rig(cfg: &Config) -> Result<Vec<Box<dyn SensorAdapter>>, String> {
    Ok(match cfg.rig.kind {
        RigKind::Sim => vec![Box::new(
            SimAdapter::new(
                cfg.rig.sim.clone(),
                edgebind_sensors::adapters::Pace::RealTime,
                None,
            )
            .map_err(|e| format!("rig.sim: {e}"))?,
        )],
        RigKind::Replay => {
            let r = cfg.rig.replay.as_ref().ok_or("rig.replay missing")?;
            vec![Box::new(
                ReplayAdapter::new(&r.path, r.pace).map_err(|e| format!("rig.replay: {e}"))?,
            )]
        }
        RigKind::Devices => crate::devices::build(cfg)?,
    })
}

fn windower_thread(
    mut consumers: Vec<(Modality, SampleConsumer)>,
    mut windowers: BTreeMap<Modality, Windower>,
    queues: BTreeMap<Modality, DropOldest>,
    rig: Arc<Mutex<Rig>>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) {
    let mut out: Vec<Window> = Vec::new();
    let mut errors = 0u64;
    let dispatch = |out: &mut Vec<Window>| {
        for w in out.drain(..) {
            stats.windows[w.modality.index()].fetch_add(1, Ordering::AcqRel);
            if let Some(q) = queues.get(&w.modality) {
                q.offer((w, Instant::now()));
            }
        }
    };
    loop {
        let mut any = false;
        for (m, c) in consumers.iter_mut() {
            let Some(w) = windowers.get_mut(m) else {
                continue;
            };
            while let Some(r) = c.pop_with(|s| w.push(s, &mut out)) {
                any = true;
                if let Err(e) = r {
                    errors += 1;
                    if errors <= 10 || errors.is_power_of_two() {
                        eprintln!("edgebind: windower {m}: {e} ({errors} so far)");
                    }
                }
                if out.len() >= 8 {
                    dispatch(&mut out);
                }
            }
        }
        dispatch(&mut out);
        if !any {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let done = rig.lock().map(|r| r.all_finished()).unwrap_or(true);
            if done {
                // Drain what arrived between the last pop and the check.
                let mut more = false;
                for (m, c) in consumers.iter_mut() {
                    if let Some(w) = windowers.get_mut(m) {
                        while let Some(_r) = c.pop_with(|s| w.push(s, &mut out)) {
                            more = true;
                        }
                    }
                }
                dispatch(&mut out);
                if !more {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for w in windowers.values_mut() {
        w.finish(&mut out);
    }
    dispatch(&mut out);
}

#[allow(clippy::too_many_arguments)]
fn encoder_thread(
    m: Modality,
    enc: Box<dyn Encoder>,
    mut pre: Preprocessor,
    rx: Receiver<Job>,
    out: Sender<Embedded>,
    max_batch: usize,
    max_wait: Duration,
    stats: Arc<EncoderStats>,
) {
    let fail = |what: String| {
        stats.errors.fetch_add(1, Ordering::AcqRel);
        let n = stats.errors.load(Ordering::Acquire);
        if n <= 10 || n.is_power_of_two() {
            eprintln!("edgebind: encoder {m}: {what} ({n} so far)");
        }
        if let Ok(mut l) = stats.last_error.lock() {
            *l = Some(what);
        }
    };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + max_wait;
        while batch.len() < max_batch {
            match rx.recv_deadline(deadline) {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        stats.depth.store(rx.len() as u64, Ordering::Release);
        // Preprocess; each window may give several items (audio clips).
        let mut items = Vec::new();
        let mut spans = Vec::new();
        for (w, t) in batch {
            match pre.window(&w) {
                Ok(v) if !v.is_empty() => {
                    spans.push((w, t, items.len(), v.len()));
                    items.extend(v);
                }
                Ok(_) => fail(format!("window ending at {} ns gave no input", w.t_end)),
                Err(e) => fail(format!("window ending at {} ns: {e}", w.t_end)),
            }
        }
        if items.is_empty() {
            continue;
        }
        let embs = match enc.encode(&items) {
            Ok(e) => e,
            Err(e) => {
                fail(e.to_string());
                continue;
            }
        };
        stats.batches.fetch_add(1, Ordering::AcqRel);
        for (w, t, at, n) in spans {
            let e = match window_embedding(&embs[at..at + n]) {
                Ok(e) => e,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            };
            stats.encoded.fetch_add(1, Ordering::AcqRel);
            if let Ok(mut l) = stats.latency.lock() {
                l.record(t.elapsed().as_secs_f64() * 1e3);
            }
            let msg = Embedded {
                modality: m,
                t_start: w.t_start,
                t_end: w.t_end,
                wall_end_ns: w.wall_end_ns,
                embedding: Arc::new(e),
                emitted: t,
            };
            if out.send(msg).is_err() {
                return;
            }
        }
    }
}

/// One window's embedding from its items' embeddings: the one item's, or
/// (audio clips) their mean re-normalised, as ImageBind averages its clips.
/// The encoder workers and `edgebind embed` both use it.
pub fn window_embedding(items: &[Embedding]) -> Result<Embedding, SpaceError> {
    match items {
        [one] => Ok(one.clone()),
        _ => {
            let parts: Vec<(f32, &Embedding)> = items.iter().map(|e| (1.0, e)).collect();
            Embedding::fuse(&parts)
        }
    }
}

/// Embeds a concept's example: the window of its modality ending nearest
/// `at_s` after that stream's first sample, through the daemon's own
/// windowing, preprocessing and encoder.
fn embed_example(
    name: &str,
    e: &ExampleSpec,
    enc: &dyn Encoder,
    pre: &mut Preprocessor,
    spec: edgebind_sensors::window::WindowSpec,
) -> Result<Embedding, String> {
    let err = |d: String| format!("concept `{name}`: example {}: {d}", e.recording.display());
    let mut reader = McapReader::open(&e.recording).map_err(|x| err(x.to_string()))?;
    let mut windower = Windower::new(e.modality, spec)
        .and_then(|w| {
            let p = &enc.contract().preprocess;
            w.with_clip_frames(p.clip_s(), p.frames())
        })
        .map_err(|x| err(x.to_string()))?;
    let mut scratch = Sample::empty(e.modality);
    let (mut out, mut first, mut best): (Vec<Window>, Option<u64>, Option<(u64, Window)>) =
        (Vec::new(), None, None);
    let consider = |out: &mut Vec<Window>, first: Option<u64>, best: &mut Option<(u64, Window)>| {
        let target = first.unwrap_or(0) + (e.at_s * 1e9) as u64;
        for w in out.drain(..) {
            let d = w.t_end.abs_diff(target);
            if best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                *best = Some((d, w));
            }
        }
    };
    while let Some(m) = reader.next_message().map_err(|x| err(x.to_string()))? {
        if m.channel.modality != Some(e.modality) {
            continue;
        }
        decode_sample(&e.recording, &m, &mut scratch).map_err(|x| err(x.to_string()))?;
        first.get_or_insert(scratch.t.mono_ns);
        windower
            .push(&scratch, &mut out)
            .map_err(|x| err(x.to_string()))?;
        consider(&mut out, first, &mut best);
    }
    windower.finish(&mut out);
    consider(&mut out, first, &mut best);
    let (_, w) = best.ok_or_else(|| err(format!("no {} window in the recording", e.modality)))?;
    let items = pre.window(&w).map_err(|x| err(x.to_string()))?;
    let embs = enc.encode(&items).map_err(|x| err(x.to_string()))?;
    window_embedding(&embs).map_err(|x| err(x.to_string()))
}

/// A space's name and dimension.
type SpaceOf = (Arc<str>, usize);

type Loaded = BTreeMap<Modality, (Box<dyn Encoder>, Preprocessor, EncoderConfig)>;

/// The embedding of every concept (text, vector or example).
fn concept_embeddings(
    cfg: &Config,
    specs: &[crate::concepts::ConceptSpec],
    encoders: &mut Loaded,
    text: Option<&TextTower>,
    space: &Arc<str>,
) -> Result<Vec<Arc<Embedding>>, String> {
    specs
        .iter()
        .map(|s| match &s.example {
            Some(e) => {
                let (enc, pre, _) = encoders.get_mut(&e.modality).ok_or_else(|| {
                    format!(
                        "concept `{}`: example of {} needs [encoders.{}]",
                        s.name, e.modality, e.modality
                    )
                })?;
                embed_example(&s.name, e, enc.as_ref(), pre, cfg.windows.spec(e.modality))
                    .map(Arc::new)
            }
            None => embed_spec(s, text, space),
        })
        .collect()
}

fn text_tower(cfg: &Config, needed: bool) -> Result<Option<TextTower>, String> {
    let dir = cfg
        .text
        .dir
        .clone()
        .unwrap_or_else(edgebind_models::text::default_dir);
    match TextTower::load(&dir) {
        Ok(t) => Ok(Some(t)),
        Err(e) if needed => Err(format!(
            "text tower: {e} (fetch it with scripts/fetch-models.sh)"
        )),
        Err(e) => {
            eprintln!(
                "edgebind: text tower unavailable ({e}); text concepts and text queries are off"
            );
            Ok(None)
        }
    }
}

/// Loads every encoder with its preprocessing (the device rig's depth
/// intrinsics applied) and checks they share one space; returns the space's
/// name and dimension (none without encoders).
fn load_models(cfg: &Config) -> Result<(Loaded, Option<SpaceOf>), String> {
    let mut encoders: Loaded = BTreeMap::new();
    for (m, ec) in &cfg.encoders {
        let enc = load_encoder(*m, ec)?;
        let spec = crate::devices::depth_preprocess(cfg, &enc.contract().preprocess);
        let pre = Preprocessor::new(&spec).map_err(|e| format!("encoders.{m}: {e}"))?;
        encoders.insert(*m, (enc, pre, ec.clone()));
    }
    let mut space: Option<SpaceOf> = None;
    for (m, (enc, _, _)) in &encoders {
        let c = enc.contract();
        match &space {
            None => space = Some((Arc::from(c.space.as_str()), c.output.dim)),
            Some((s, _)) if **s != *c.space => {
                return Err(format!(
                    "encoders.{m}: space `{}` differs from the other encoders' `{s}`; they can never be fused",
                    c.space
                ));
            }
            _ => {}
        }
    }
    Ok((encoders, space))
}

/// The space concepts live in: the encoders', else the text tower's.
fn concept_space(space: Option<&SpaceOf>, text: Option<&TextTower>) -> Arc<str> {
    match (space, text) {
        (Some((s, _)), _) => s.clone(),
        (None, Some(t)) => t.space().clone(),
        (None, None) => Arc::from("none"),
    }
}

/// Checks a config as deeply as possible without starting anything: models
/// load and match their modality and space, concepts embed. Returns a summary.
pub fn check(cfg: &Config) -> Result<String, String> {
    let (mut loaded, space) = load_models(cfg)?;
    let specs = cfg.concept_specs();
    let text = text_tower(cfg, specs.iter().any(|c| c.text.is_some()))?;
    let space = concept_space(space.as_ref(), text.as_ref());
    concept_embeddings(cfg, &specs, &mut loaded, text.as_ref(), &space)?;
    Ok(format!(
        "ok: device `{}`, rig {:?}, {} encoder(s) in space `{space}`, {} concept(s)",
        cfg.device_id,
        cfg.rig.kind,
        cfg.encoders.len(),
        specs.len()
    ))
}

/// Runs the daemon until a signal (or the end of input with `exit_at_end`).
pub fn run(cfg: Config, opts: RunOptions) -> Result<RunSummary, String> {
    let t0 = Instant::now();
    // Models first: a bad model file fails before anything starts.
    let (mut encoders, space) = load_models(&cfg)?;
    std::fs::create_dir_all(&cfg.state.dir)
        .map_err(|e| format!("state.dir {}: {e}", cfg.state.dir.display()))?;
    let overlay_path = cfg.state.dir.join("concepts.json");
    let overlay = ConceptOverlay::load(&overlay_path)?;
    let config_concepts = cfg.concept_specs();
    let specs = overlay.apply(&config_concepts);
    let text = text_tower(&cfg, specs.iter().any(|c| c.text.is_some()))?;
    let dim = space.as_ref().map(|(_, d)| *d);
    let space = concept_space(space.as_ref(), text.as_ref());
    let embeddings = concept_embeddings(&cfg, &specs, &mut encoders, text.as_ref(), &space)?;
    let concepts: Vec<_> = specs
        .into_iter()
        .zip(embeddings)
        .map(|(s, e)| crate::concepts::Concept::new(s, e))
        .collect();
    let outbox = Outbox::open(
        &cfg.state.dir.join("outbox"),
        cfg.state.outbox_max_bytes,
        cfg.state.outbox_max_messages,
    )
    .map_err(|e| e.to_string())?;
    if !outbox.is_empty() {
        eprintln!(
            "edgebind: {} event message(s) left by the previous run will be sent first",
            outbox.len()
        );
    }
    let outbox = Arc::new(Mutex::new(outbox));

    // Broker.
    let addr = match &cfg.broker.url {
        Some(u) => parse_broker_url(u)?,
        None => {
            let port = cfg.broker.embedded_port.unwrap_or(1883);
            crate::broker::start(port)?;
            eprintln!("edgebind: embedded broker on mqtt://127.0.0.1:{port}");
            parse_broker_url(&format!("mqtt://127.0.0.1:{port}"))?
        }
    };

    // Rig.
    let adapters = build_rig(&cfg)?;
    let modalities: Vec<Modality> = encoders.keys().copied().collect();
    let stats = Arc::new(Stats::new(&cfg.device_id, &modalities));
    stats
        .concepts
        .store(concepts.len() as u64, Ordering::Release);
    for (m, (enc, _, _)) in &encoders {
        if let Ok(mut b) = stats.encoders[m].backend.lock() {
            *b = enc.backend().to_string();
        }
    }
    let (rig, consumers) =
        Rig::start(adapters, cfg.rig.ring_capacity).map_err(|e| format!("rig: {e}"))?;
    let rig = Arc::new(Mutex::new(rig));
    if let Ok(mut r) = stats.rig.lock() {
        *r = Some(rig.clone());
    }
    let streams: Vec<Modality> = consumers.iter().map(|(m, _)| *m).collect();
    for m in encoders.keys() {
        if !streams.contains(m) {
            eprintln!(
                "edgebind: warning: encoders.{m} is configured but the rig has no {m} stream"
            );
        }
    }
    let mut windowers = BTreeMap::new();
    for m in &streams {
        // An encoder that takes a clip gets windows carrying one (its contract decides).
        let (clip_s, frames) = encoders.get(m).map_or((0.0, 1), |(enc, _, _)| {
            let p = &enc.contract().preprocess;
            (p.clip_s(), p.frames())
        });
        windowers.insert(
            *m,
            Windower::new(*m, cfg.windows.spec(*m))
                .and_then(|w| w.with_clip_frames(clip_s, frames))
                .map_err(|e| format!("windows.{m}: {e}"))?,
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (emb_tx, emb_rx) = crossbeam_channel::unbounded::<Embedded>();
    let mut queues = BTreeMap::new();
    let mut workers = Vec::new();
    let mut expected = Vec::new();
    let lossless = cfg.rig.kind == RigKind::Replay
        && cfg
            .rig
            .replay
            .as_ref()
            .is_some_and(|r| r.pace == edgebind_sensors::adapters::Pace::Fast);
    for (m, (enc, pre, ec)) in encoders {
        if !streams.contains(&m) {
            continue;
        }
        expected.push((m, (cfg.windows.spec(m).hop_s * 1e9).round() as u64));
        let (tx, rx) = crossbeam_channel::bounded::<Job>(ec.queue);
        let est = stats.encoders[&m].clone();
        queues.insert(
            m,
            DropOldest {
                tx,
                rx: rx.clone(),
                stats: est.clone(),
                lossless,
            },
        );
        let out = emb_tx.clone();
        let max_batch = ec.max_batch;
        let wait = Duration::from_millis(ec.max_wait_ms);
        workers.push(
            std::thread::Builder::new()
                .name(format!("encoder-{m}"))
                .spawn(move || encoder_thread(m, enc, pre, rx, out, max_batch, wait, est))
                .map_err(|e| e.to_string())?,
        );
    }
    drop(emb_tx);
    {
        let (rig, stop, stats) = (rig.clone(), stop.clone(), stats.clone());
        workers.push(
            std::thread::Builder::new()
                .name("windower".into())
                .spawn(move || windower_thread(consumers, windowers, queues, rig, stop, stats))
                .map_err(|e| e.to_string())?,
        );
    }
    let notify = Arc::new(Notify::new());
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
    let matcher = Matcher {
        device_id: cfg.device_id.clone(),
        space: space.clone(),
        dim,
        weights: cfg.fusion.weights.clone(),
        fusion: Fusion::new(&expected, (cfg.fusion.lateness_s * 1e9) as u64)
            .with_clip_span((cfg.fusion.clip_span_s * 1e9) as u64),
        concepts,
        config_concepts,
        overlay,
        overlay_path,
        text,
        history: History::new(cfg.history.seconds, cfg.history.max_bytes),
        outbox: outbox.clone(),
        notify: notify.clone(),
        stats: stats.clone(),
        last_t: None,
    };
    let matcher_thread = {
        let stop = stop.clone();
        let exit = opts.exit_at_end;
        std::thread::Builder::new()
            .name("matcher".into())
            .spawn(move || matcher.run(emb_rx, ctl_rx, stop, exit))
            .map_err(|e| e.to_string())?
    };

    let publisher = Publisher {
        addr: addr.clone(),
        cfg: cfg.broker.clone(),
        client_id: cfg
            .broker
            .client_id
            .clone()
            .unwrap_or_else(|| format!("edgebind-{}", cfg.device_id)),
        topics: Topics::new(&cfg.device_id),
        outbox: outbox.clone(),
        notify,
        ctl: ctl_tx,
        stats: stats.clone(),
        status_every: Duration::from_secs_f64(cfg.health.status_interval_s),
    };
    eprintln!(
        "edgebind: running: device `{}`, rig {:?}, broker mqtt://{}:{}, {} encoder(s), {} concept(s); topics edgebind/{}/...",
        cfg.device_id,
        cfg.rig.kind,
        addr.host,
        addr.port,
        expected.len(),
        stats.concepts.load(Ordering::Acquire),
        cfg.device_id
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let prometheus = cfg.health.prometheus;
    let drain_timeout = opts.drain_timeout;
    let result: Result<(), String> = rt.block_on(async {
        let (drain_tx, drain_rx) = watch::channel(None);
        let mut pub_task = tokio::spawn(publisher.run(drain_rx));
        if let Some(addr) = prometheus {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("health.prometheus {addr}: {e}"))?;
            tokio::spawn(crate::prometheus::serve(l, stats.clone(), outbox.clone()));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("SIGTERM handler: {e}"))?;
        let matcher_done = {
            let h = matcher_thread;
            tokio::task::spawn_blocking(move || h.join())
        };
        tokio::pin!(matcher_done);
        let mut matcher_result = None;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => eprintln!("edgebind: SIGINT, shutting down"),
            _ = term.recv() => eprintln!("edgebind: SIGTERM, shutting down"),
            r = &mut matcher_done => { matcher_result = Some(r); }
            r = &mut pub_task => {
                return Err(match r { Ok(Err(e)) => e, Ok(Ok(())) => "publisher ended".into(), Err(e) => e.to_string() });
            }
        }
        stop.store(true, Ordering::Release);
        if let Ok(mut r) = rig.lock() {
            let _ = r.stop();
        }
        let joined = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        });
        let _ = joined.await;
        let m = match matcher_result {
            Some(r) => r,
            None => matcher_done.await,
        };
        match m {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("edgebind: matcher: {e}"),
            _ => eprintln!("edgebind: matcher thread failed"),
        }
        let _ = drain_tx.send(Some(tokio::time::Instant::now() + drain_timeout));
        match tokio::time::timeout(drain_timeout + Duration::from_secs(2), &mut pub_task).await {
            Ok(Ok(Err(e))) => Err(e),
            _ => Ok(()),
        }
    });
    let status = stats.status_json(&outbox);
    let pending = outbox.lock().map(|o| o.len()).unwrap_or(0);
    result?;
    if pending > 0 {
        eprintln!(
            "edgebind: {pending} event message(s) not acknowledged; they stay in the outbox for the next start"
        );
    }
    Ok(RunSummary {
        seconds: t0.elapsed().as_secs_f64(),
        moments: stats.moments.load(Ordering::Acquire),
        events: stats.events.load(Ordering::Acquire),
        events_published: stats.events_published.load(Ordering::Acquire),
        outbox_pending: pending,
        status,
    })
}

/// Loads `path` and applies the command-line overrides.
pub fn load_config(
    path: &Path,
    broker: Option<&str>,
    device_id: Option<&str>,
) -> Result<Config, String> {
    let mut cfg = crate::config::load(path)?;
    cfg.override_with(broker, device_id)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cfg)
}
