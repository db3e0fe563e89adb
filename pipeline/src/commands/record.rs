//! `edgebind record`: a rig's streams to MCAP.
//!
//! * `--rig sim` (default) generates the simulated world directly, in sim time,
//!   as fast as the machine goes, in timestamp order: the file depends only on
//!   the seed and config, so the same seed gives a byte-identical file. The
//!   ground truth goes on `/ground_truth`. `--realtime` instead runs the sim as
//!   a live rig (adapter thread, rings, wall-clock pacing), which exercises the
//!   live path; its file is the same unless a ring overflowed.
//! * `--rig replay --input FILE` re-records a recording through the live path
//!   (adapter thread + rings, lossless pace), for trimming with `--seconds`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use edgebind_sensors::adapter::{Rig, SensorAdapter};
use edgebind_sensors::adapters::{Pace, ReplayAdapter, SimAdapter};
use edgebind_sensors::clock::secs_to_ns;
use edgebind_sensors::recording::Recorder;
use edgebind_sensors::sim::SimWorld;
use edgebind_sensors::{Modality, clock::NS_PER_SEC};

use super::CmdResult;
use crate::rig_config;

/// Which rig to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RigKind {
    /// The seeded simulated world (all five sensors).
    Sim,
    /// A recording played back (`--input`).
    Replay,
}

/// Arguments of `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The rig to record.
    #[arg(long, value_enum, default_value = "sim")]
    pub rig: RigKind,
    /// Output MCAP file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Seconds to record (sim time for the sim rig).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seed of the simulated world (overrides the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Config file with a `[sim]` table (see configs/sim-rig.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Camera and depth frame size, WIDTHxHEIGHT (overrides the config's).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Run the sim as a live rig paced by the wall clock (through the adapter thread and rings).
    #[arg(long)]
    pub realtime: bool,
    /// Recording to play back, with `--rig replay`.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Ring capacity per stream for the live path.
    #[arg(long, default_value_t = 256)]
    pub ring_capacity: usize,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write only these modalities (comma-separated, e.g. `vision`; the sim
    /// rig without --realtime only). Ground truth is always written.
    #[arg(long, value_delimiter = ',')]
    pub modalities: Option<Vec<Modality>>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT, e.g. 224x224"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{v}` in `{s}` is not a whole number"))
    };
    Ok((p(w)?, p(h)?))
}

/// Runs `record`.
pub fn run(a: RecordArgs) -> CmdResult {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 86_400.0) {
        return Err(format!(
            "--seconds {} is out of range (0 < s <= 86400)",
            a.seconds
        ));
    }
    if a.modalities.is_some() && (a.realtime || a.rig != RigKind::Sim) {
        return Err("--modalities works with the sim rig without --realtime".into());
    }
    match a.rig {
        RigKind::Sim if !a.realtime => record_sim_direct(&a),
        RigKind::Sim => {
            let cfg = sim_config(&a)?;
            let mut info = BTreeMap::new();
            info.insert("rig".into(), "sim".into());
            info.insert("pace".into(), "realtime".into());
            info.insert("seed".into(), cfg.seed.to_string());
            info.insert(
                "config".into(),
                serde_json::to_string(&cfg).map_err(|e| e.to_string())?,
            );
            let sim = SimAdapter::new(cfg, Pace::RealTime, Some(secs_to_ns(a.seconds)))
                .map_err(|e| e.to_string())?;
            record_live(&a, Box::new(sim), info)
        }
        RigKind::Replay => {
            let input = a.input.as_ref().ok_or("--rig replay needs --input FILE")?;
            let replay = ReplayAdapter::new(input, Pace::Fast).map_err(|e| e.to_string())?;
            let mut info = BTreeMap::new();
            info.insert("rig".into(), "replay".into());
            info.insert("source".into(), input.display().to_string());
            record_live(&a, Box::new(replay), info)
        }
    }
}

fn sim_config(a: &RecordArgs) -> Result<edgebind_sensors::sim::SimConfig, String> {
    let mut cfg = match &a.config {
        Some(p) => rig_config::load(p)?.sim,
        None => Default::default(),
    };
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some((w, h)) = a.size {
        cfg.camera.width = w;
        cfg.camera.height = h;
        cfg.depth.width = w;
        cfg.depth.height = h;
    }
    Ok(cfg)
}

struct Progress {
    quiet: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Progress {
            quiet,
            started: now,
            last: now,
        }
    }
    fn tick(&mut self, done_s: f64, total_s: f64) {
        if self.quiet || self.last.elapsed().as_millis() < 500 {
            return;
        }
        self.last = Instant::now();
        let el = self.started.elapsed().as_secs_f64();
        eprint!(
            "\rrecording {done_s:7.1} / {total_s:.1} s  ({:.1}x real time)   ",
            done_s / el.max(1e-9)
        );
        let _ = std::io::stderr().flush();
    }
    fn done(&self) {
        if !self.quiet {
            eprint!("\r{:70}\r", "");
        }
    }
}

fn record_sim_direct(a: &RecordArgs) -> CmdResult {
    let cfg = sim_config(a)?;
    let until = secs_to_ns(a.seconds);
    let mut world = SimWorld::new(cfg.clone()).map_err(|e| e.to_string())?;
    let mut info = BTreeMap::new();
    info.insert("rig".to_string(), "sim".to_string());
    info.insert("pace".to_string(), "sim_time".to_string());
    info.insert("seed".to_string(), cfg.seed.to_string());
    info.insert("seconds".to_string(), a.seconds.to_string());
    info.insert(
        "config".to_string(),
        serde_json::to_string(&cfg).map_err(|e| e.to_string())?,
    );
    let mut rec = Recorder::create(&a.output, &info).map_err(|e| e.to_string())?;
    let mut progress = Progress::new(a.quiet);
    let started = Instant::now();
    rec.record_sim(&mut world, until, a.modalities.as_deref(), |t| {
        progress.tick(t as f64 / NS_PER_SEC as f64, a.seconds)
    })
    .map_err(|e| e.to_string())?;
    let summary = rec.finish().map_err(|e| e.to_string())?;
    progress.done();
    let el = started.elapsed().as_secs_f64();
    if !a.quiet {
        let total: u64 = summary.messages.values().sum();
        eprintln!(
            "recorded {:.1} s of sim (seed {}) to {} in {:.2} s ({:.1}x real time): {total} messages",
            a.seconds,
            cfg.seed,
            a.output.display(),
            el,
            a.seconds / el.max(1e-9)
        );
        for (topic, n) in &summary.messages {
            eprintln!("  {topic:<16} {n:>7}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn record_live(
    a: &RecordArgs,
    adapter: Box<dyn SensorAdapter>,
    info: BTreeMap<String, String>,
) -> CmdResult {
    let until = secs_to_ns(a.seconds);
    let mut rec = Recorder::create(&a.output, &info).map_err(|e| e.to_string())?;
    let (mut rig, mut consumers) =
        Rig::start(vec![adapter], a.ring_capacity).map_err(|e| e.to_string())?;
    let mut progress = Progress::new(a.quiet);
    let mut first: Option<u64> = None;
    let mut latest = 0u64;
    let mut write_err: Option<String> = None;
    let mut reached_end = false;
    loop {
        let mut any = false;
        for (_, c) in consumers.iter_mut() {
            while let Some(r) = c.pop_with(|s| {
                let t0 = *first.get_or_insert(s.t.mono_ns);
                if s.t.mono_ns - t0 >= until {
                    return Ok(false);
                }
                latest = latest.max(s.t.mono_ns - t0);
                rec.write_sample(s).map(|_| true)
            }) {
                any = true;
                match r {
                    Ok(true) => {}
                    Ok(false) => reached_end = true,
                    Err(e) => write_err = Some(e.to_string()),
                }
            }
        }
        progress.tick(latest as f64 / NS_PER_SEC as f64, a.seconds);
        if write_err.is_some() || reached_end {
            break;
        }
        if !any {
            if rig.all_finished() && consumers.iter().all(|(_, c)| c.counters().len == 0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    rig.stop().map_err(|e| e.to_string())?;
    progress.done();
    let health = rig.health();
    let summary = rec.finish().map_err(|e| e.to_string())?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if !a.quiet {
        eprintln!("recorded to {}:", a.output.display());
        for (topic, n) in &summary.messages {
            eprintln!("  {topic:<16} {n:>7}");
        }
    }
    for h in &health {
        for (m, k) in &h.streams {
            if k.dropped > 0 {
                eprintln!(
                    "warning: {} ring overflowed: {} samples dropped (oldest first)",
                    m, k.dropped
                );
            }
        }
        if let edgebind_sensors::adapter::SensorState::Down { reason } = &h.state {
            return Err(format!("{} adapter failed: {reason}", h.adapter));
        }
    }
    Ok(ExitCode::SUCCESS)
}
