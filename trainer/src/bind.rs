//! `edgebind-train bind`: trains every edge of a plan, anchors first, and
//! exports each learner as ONNX with its contract.
//!
//! Per edge `learner -> anchor`:
//! 1. The anchor's embedding of every moment comes from the **frozen**
//!    anchor through the models crate (the text tower for text; the
//!    exported ONNX of an earlier learner, or the root's ONNX, through the
//!    tract backend, exactly as the daemon would run it), computed once and
//!    cached on disk (`[data] cache`), keyed by the anchor model's bytes and
//!    the recordings. Text anchors embed every caption of a moment's
//!    situations (`[data] captions`: one paraphrase per situation, joined);
//!    each step draws one of them at random.
//! 2. The learner trains with symmetric InfoNCE at the edge's fixed
//!    temperature, AdamW (warm-up then cosine, clipping), batches drawn at
//!    random from the training segments and augmented (see
//!    [`crate::augment`]); validation loss on the held-out segments every
//!    `eval_every` steps; a checkpoint every `checkpoint_every` steps
//!    (`bind --resume` continues from it, with the same random stream).
//! 3. Export to `<out>/<learner>.onnx`, a JSON log with the loss curves
//!    (`<learner>-log.json`) and a PNG of them (`<learner>-loss.png`).
//!
//! With `[train] paired_baseline = true` every learner whose anchor is not
//! text is trained a second time directly against the text captions (same
//! data, steps, batch, temperature, augmentation) into `<out>/paired/`: the
//! baseline that `edgebind-train eval` compares emergent alignment with.
//!
//! With `[train] supervised_ceiling = true` every learner is trained once
//! more on the situation labels of the ground truth into `<out>/supervised/`
//! (`supervised/<learner>` for `--only`): the same encoder, data, steps,
//! batch, temperature and augmentation, with cross-entropy against the
//! situations' text prototypes (the mean of each situation's captions,
//! [`crate::loss::class_cross_entropy`]). It exports into the same space, so
//! `edgebind-train eval` scores it exactly like the others: the most this
//! encoder reaches on this data when told the answer, the ceiling against
//! which a modality's emergent (and paired) figures are read. A learner
//! whose sensor cannot tell two situations apart fails them here too.
//!
//! Data: every edge pairs the moments of `[data] recordings`, unless it names
//! its own (`[[edge]] recordings`, as ImageBind trains each pair on its own
//! dataset); each distinct set is read once, when the first edge needing it
//! trains, with every modality of the plan, so an edge's moments do not depend
//! on which other edges run (`--only`). Its paired baseline takes the same.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use edgebind_models::backend::Encoder as _;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::contract::{ContractModality, Preprocess};
use edgebind_models::text::TextTower;
use edgebind_sensors::window::WindowConfig;
use serde::{Deserialize, Serialize};

use crate::data::{self, Dataset, LoadSpec, MomentMeta, Split, frozen_backend};
use crate::export::write_onnx;
use crate::loss::{class_cross_entropy, class_top1, top1};
use crate::params::Rng;
use crate::plan::{Augment, Edge, Plan};
use crate::prompts::Prompts;
use crate::student::Student;

/// Options of a `bind` run.
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// Continue from checkpoints and skip finished edges.
    pub resume: bool,
    /// No progress bars or progress lines.
    pub quiet: bool,
    /// Stop after this many optimiser steps in this run (checkpointed; a
    /// later `resume` run continues bit for bit as if never stopped).
    pub stop_after: Option<usize>,
    /// Train only the edges with these names (empty: all). Seeds stay those
    /// of the whole plan, so disjoint subsets run in parallel give the same
    /// encoders as one run; the summary is then `bind-<names>.json`.
    pub only: Vec<String>,
    /// Where the learners train (`cpu`, `cuda:N`; see [`crate::device`]).
    pub device: Device,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            resume: false,
            quiet: false,
            stop_after: None,
            only: Vec::new(),
            device: Device::Cpu,
        }
    }
}

/// One point of a loss curve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Optimiser step.
    pub step: usize,
    /// Loss.
    pub loss: f64,
    /// In-batch top-1 (student -> anchor), validation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
}

/// What training one edge did (`<out>/<name>-log.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EdgeLog {
    /// `vision`, or `paired/audio` for a baseline.
    pub name: String,
    /// Learner.
    pub learner: String,
    /// Anchor.
    pub anchor: String,
    /// Steps planned.
    pub steps: usize,
    /// Batch.
    pub batch: usize,
    /// Temperature.
    pub temperature: f64,
    /// Soft-target temperature, if the edge used soft InfoNCE targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_temperature: Option<f64>,
    /// Seconds the anchor was averaged over, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_span_s: Option<f64>,
    /// How far past the moment that average reached, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_span_lead_s: Option<f64>,
    /// The recordings its pairs came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<String>,
    /// Training pairs available.
    pub train_pairs: usize,
    /// Validation pairs.
    pub val_pairs: usize,
    /// Wall seconds of training (this run plus resumed ones).
    pub seconds: f64,
    /// Steps per second.
    pub steps_per_s: f64,
    /// Training loss, mean over each logging interval.
    pub train: Vec<CurvePoint>,
    /// Validation loss and in-batch top-1 (of the moving average of the
    /// weights when the edge keeps one).
    pub val: Vec<CurvePoint>,
    /// Moving-average decay of the weights, if the edge kept one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// With a moving average: validation of the raw (last) weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_raw: Vec<CurvePoint>,
    /// All steps done and the encoder exported.
    pub complete: bool,
}

/// Runs a plan.
pub fn bind(plan_path: &Path, opts: &BindOptions) -> anyhow::Result<Vec<EdgeLog>> {
    let plan = Plan::load(plan_path)?;
    let base = plan_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let rel = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let out = rel(&plan.file.out);
    std::fs::create_dir_all(out.join("checkpoints"))
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
    let cache = EmbCache {
        dir: plan.file.data.cache.as_ref().map(|p| rel(p)),
    };
    let captions = match &plan.file.data.captions {
        Some(p) => Some(Prompts::load(&rel(p))?),
        None => None,
    };
    let space = plan.file.space.clone();
    let dev = opts.device.clone();

    // Every sensor modality of the tree, with the preprocessing its encoder
    // (or the frozen root's contract) needs.
    let mut preprocess: BTreeMap<ContractModality, Preprocess> = BTreeMap::new();
    for e in &plan.edges {
        let c = e.encoder.contract(&space, e.anchor.as_str(), "");
        preprocess.insert(e.learner, c.preprocess);
    }
    let root_encoder = if plan.root != ContractModality::Text {
        let path = rel(Path::new(&plan.root_model.model));
        let enc = TractEncoder::load_reproducible(&path, &frozen_backend())?;
        preprocess.insert(plan.root, enc.contract().preprocess.clone());
        Some((path, enc))
    } else {
        None
    };
    let spec = LoadSpec {
        preprocess,
        windows: WindowConfig::default(),
        segment_s: plan.file.data.segment_s,
        holdout: plan.file.data.holdout,
    };
    let quiet = opts.quiet;
    let text = if captions.is_some() {
        Some(TextTower::load_default().map_err(|e| {
            anyhow::anyhow!("text tower: {e} (fetch it with scripts/fetch-models.sh)")
        })?)
    } else {
        None
    };
    // Each distinct set of recordings (`[data]`, or an edge's own) is read
    // once, when the first edge that needs it trains.
    let mut datasets: Vec<(Vec<PathBuf>, EdgeData)> = Vec::new();

    let mut logs = Vec::new();
    // (name, edge, trained on the situation labels)
    let mut jobs: Vec<(String, Edge, bool)> = plan
        .edges
        .iter()
        .map(|e| (e.learner.as_str().to_string(), e.clone(), false))
        .collect();
    let against_text = |e: &Edge| {
        let mut p = e.clone();
        p.anchor = ContractModality::Text;
        p.anchor_span_s = None;
        p.anchor_span_lead_s = None;
        p
    };
    if plan.file.train.paired_baseline {
        for e in &plan.edges {
            if e.anchor != ContractModality::Text {
                jobs.push((
                    format!("paired/{}", e.learner.as_str()),
                    against_text(e),
                    false,
                ));
            }
        }
    }
    if plan.file.train.supervised_ceiling {
        for e in &plan.edges {
            jobs.push((
                format!("supervised/{}", e.learner.as_str()),
                against_text(e),
                true,
            ));
        }
    }
    if let Some(bad) = opts
        .only
        .iter()
        .find(|o| !jobs.iter().any(|(n, _, _)| n == *o))
    {
        anyhow::bail!(
            "--only {bad}: the plan has no such edge (its edges: {})",
            jobs.iter()
                .map(|(n, _, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (ji, (name, edge, supervised)) in jobs.iter().enumerate() {
        if !opts.only.is_empty() && !opts.only.contains(name) {
            continue;
        }
        let recordings: Vec<PathBuf> = edge.recordings.iter().map(|p| rel(p)).collect();
        let di = match datasets.iter().position(|(r, _)| *r == recordings) {
            Some(i) => i,
            None => {
                let d = EdgeData::load(
                    &recordings,
                    &spec,
                    text.as_ref().zip(captions.as_ref()),
                    &cache,
                    quiet,
                )?;
                datasets.push((recordings, d));
                datasets.len() - 1
            }
        };
        if *supervised && datasets[di].1.classes.is_none() {
            let (t, c) = text
                .as_ref()
                .zip(captions.as_ref())
                .ok_or_else(|| anyhow::anyhow!("{name}: needs data.captions"))?;
            let table = ClassTable::build(&datasets[di].1.ds, c, t)?;
            datasets[di].1.classes = Some(table);
        }
        let data = &datasets[di].1;
        let anchor: AnchorTable = if *supervised {
            AnchorTable::Classes(data.classes.as_ref().expect("built above"))
        } else if edge.anchor == ContractModality::Text {
            AnchorTable::Text(data.text_anchor.as_ref().ok_or_else(|| {
                anyhow::anyhow!("{name}: binds to text but there are no captions")
            })?)
        } else {
            // The root was loaded above (for its preprocessing); earlier
            // learners are loaded from their export only if not cached.
            let (path, loaded) = match &root_encoder {
                Some((p, enc)) if edge.anchor == plan.root => (p.clone(), Some(enc)),
                _ => (out.join(format!("{}.onnx", edge.anchor.as_str())), None),
            };
            let (mut table, dim) =
                embed_moments(&data.ds, edge.anchor, &path, loaded, &cache, quiet)?;
            if let Some(span) = edge.anchor_span_s {
                let lead = edge.anchor_span_lead_s.unwrap_or(0.0);
                table = average_over_span(
                    &data.ds.moments,
                    &table,
                    dim,
                    (span * 1e9).round() as u64,
                    (lead * 1e9).round() as u64,
                );
            }
            AnchorTable::Fixed((table, dim))
        };
        let seed = plan.file.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(ji as u64 + 1));
        let log = train_edge(TrainJob {
            name,
            edge,
            plan: &plan,
            ds: &data.ds,
            train_idx: &data.train_idx,
            val_idx: &data.val_idx,
            anchor: &anchor,
            preprocess: &spec.preprocess[&edge.learner],
            out: &out,
            seed,
            dev: &dev,
            opts,
            captions: plan.file.data.captions.as_deref(),
        })?;
        let stopped = !log.complete;
        logs.push(log);
        if stopped {
            if !quiet {
                eprintln!(
                    "stopped after {} steps of this run: continue with --resume",
                    opts.stop_after.unwrap_or(0)
                );
            }
            return Ok(logs);
        }
    }
    let summary = serde_json::json!({
        "plan": plan_path.display().to_string(),
        "seed": plan.file.seed,
        "edges": logs.iter().map(|l| serde_json::json!({
            "name": l.name, "anchor": l.anchor, "steps": l.steps, "batch": l.batch,
            "train_pairs": l.train_pairs, "val_pairs": l.val_pairs, "recordings": l.recordings,
            "seconds": l.seconds, "steps_per_s": l.steps_per_s,
            "final_val_loss": l.val.last().map(|p| p.loss),
            "final_val_top1": l.val.last().and_then(|p| p.top1),
        })).collect::<Vec<_>>(),
        "total_training_seconds": logs.iter().map(|l| l.seconds).sum::<f64>(),
    });
    let summary_file = if opts.only.is_empty() {
        "bind.json".to_string()
    } else {
        format!("bind-{}.json", opts.only.join("+").replace('/', "-"))
    };
    write_json(&out.join(summary_file), &summary)?;
    Ok(logs)
}

fn write_json(path: &Path, v: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// One set of recordings read for training: the moments, their split and
/// (with captions) the text side.
struct EdgeData {
    ds: Dataset,
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    text_anchor: Option<TextAnchor>,
    /// Situation prototypes and labels, built when a supervised job first
    /// needs them.
    classes: Option<ClassTable>,
}

impl EdgeData {
    fn load(
        recordings: &[PathBuf],
        spec: &LoadSpec,
        captions: Option<(&TextTower, &Prompts)>,
        cache: &EmbCache,
        quiet: bool,
    ) -> anyhow::Result<EdgeData> {
        let t0 = Instant::now();
        let mut last = Instant::now();
        let ds = data::load(recordings, spec, |p, done, total| {
            if !quiet && (last.elapsed().as_secs_f64() > 2.0 || done == total) {
                last = Instant::now();
                eprintln!(
                    "reading {}: {:.0}%",
                    p.display(),
                    100.0 * done as f64 / total.max(1) as f64
                );
            }
        })?;
        let train_idx = ds.split(Split::Train);
        let val_idx = ds.split(Split::Val);
        if !quiet {
            eprintln!(
                "{} moments ({} train, {} validation, {} dropped at split edges) from {} recording(s) in {:.1} s",
                ds.moments.len(),
                train_idx.len(),
                val_idx.len(),
                ds.dropped,
                recordings.len(),
                t0.elapsed().as_secs_f64()
            );
            for (m, s) in &ds.inputs {
                eprintln!(
                    "{} inputs {:?}: {} distinct {} in {:.2} GB",
                    m.as_str(),
                    s.item,
                    s.distinct_parts(),
                    if s.parts() > 1 { "frames" } else { "items" },
                    s.bytes() as f64 / 1e9
                );
            }
        }
        anyhow::ensure!(
            train_idx.len() >= 2,
            "only {} training moments in {}: record longer or lower data.holdout",
            train_idx.len(),
            recordings
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let text_anchor = match captions {
            Some((t, c)) => Some(TextAnchor::build(&ds, c, t, cache)?),
            None => None,
        };
        Ok(EdgeData {
            ds,
            train_idx,
            val_idx,
            text_anchor,
            classes: None,
        })
    }
}

/// The text side: every caption of each label set, embedded once.
pub struct TextAnchor {
    /// Caption embeddings, `rows * dim`.
    table: Vec<f32>,
    dim: usize,
    /// Per moment: the rows of its captions (empty: no label, unusable).
    choices: Vec<std::ops::Range<usize>>,
}

impl TextAnchor {
    fn build(
        ds: &Dataset,
        captions: &Prompts,
        text: &TextTower,
        cache: &EmbCache,
    ) -> anyhow::Result<TextAnchor> {
        let sets = ds.label_sets();
        let mut all: Vec<String> = Vec::new();
        let mut ranges: BTreeMap<Vec<String>, std::ops::Range<usize>> = BTreeMap::new();
        for s in &sets {
            let c = captions.captions(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "captions: no caption for situation(s) {} found in the recordings",
                    s.iter()
                        .filter(|x| !captions.by_situation.contains_key(*x))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            ranges.insert(s.clone(), all.len()..all.len() + c.len());
            all.extend(c);
        }
        anyhow::ensure!(
            !all.is_empty(),
            "the recordings have no ground truth to caption"
        );
        let key = format!("text|{}|{}", text_identity(), all.join("\n"));
        let (table, dim) = cache.get_or_compute(&key, "caption embeddings", || {
            let mut out = Vec::new();
            for chunk in all.chunks(32) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for e in text.embed(&refs)? {
                    out.push(e.vector);
                }
            }
            Ok(out)
        })?;
        let choices = ds
            .moments
            .iter()
            .map(|m| ranges.get(&m.label).cloned().unwrap_or(0..0))
            .collect();
        Ok(TextAnchor {
            table,
            dim,
            choices,
        })
    }
}

/// The supervised ceiling's targets: one text prototype per situation (the
/// mean of its captions' embeddings, unit length) and, per moment, a mask
/// row over the situations (0 on its labels, -inf elsewhere).
struct ClassTable {
    situations: Vec<String>,
    /// `k * dim`.
    protos: Vec<f32>,
    dim: usize,
    /// `moments * k`.
    masks: Vec<f32>,
}

impl ClassTable {
    fn build(ds: &Dataset, captions: &Prompts, text: &TextTower) -> anyhow::Result<ClassTable> {
        let mut situations: Vec<String> = ds
            .moments
            .iter()
            .flat_map(|m| m.label.iter().cloned())
            .collect();
        situations.sort();
        situations.dedup();
        anyhow::ensure!(
            !situations.is_empty(),
            "supervised ceiling: the recordings have no ground truth to learn from"
        );
        // The same mean-then-renormalise as `report::class_embeddings` (what
        // eval scores against), summed in f32 as the shipped ceilings were
        // trained: its f64 sum differs by ~1e-7, which training amplifies
        // (see `data::frozen_backend`), so the plan would no longer give them.
        let mut protos = Vec::new();
        let mut dim = 0;
        for s in &situations {
            let ps = captions.by_situation.get(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "supervised ceiling: the recordings have situation `{s}`, the captions file none"
                )
            })?;
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            let embs = text.embed(&refs)?;
            dim = embs[0].vector.len();
            let mut mean = vec![0f32; dim];
            for e in &embs {
                mean.iter_mut().zip(&e.vector).for_each(|(a, b)| *a += b);
            }
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            protos.extend(mean.iter().map(|v| v / norm));
        }
        let k = situations.len();
        let mut masks = vec![f32::NEG_INFINITY; ds.moments.len() * k];
        for (i, m) in ds.moments.iter().enumerate() {
            for l in &m.label {
                let c = situations.binary_search(l).expect("collected above");
                masks[i * k + c] = 0.0;
            }
        }
        Ok(ClassTable {
            situations,
            protos,
            dim,
            masks,
        })
    }

    fn k(&self) -> usize {
        self.situations.len()
    }
}

fn text_identity() -> String {
    let dir = edgebind_models::text::default_dir();
    std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap_or_else(|_| dir.display().to_string())
}

enum AnchorTable<'a> {
    Text(&'a TextAnchor),
    /// One embedding per moment, `moments * dim`.
    Fixed((Vec<f32>, usize)),
    /// The situation labels (rows are label masks, see [`ClassTable`]).
    Classes(&'a ClassTable),
}

impl AnchorTable<'_> {
    fn dim(&self) -> usize {
        match self {
            AnchorTable::Text(t) => t.dim,
            AnchorTable::Fixed((_, d)) => *d,
            AnchorTable::Classes(c) => c.k(),
        }
    }

    fn usable(&self, i: usize) -> bool {
        match self {
            AnchorTable::Text(t) => !t.choices[i].is_empty(),
            AnchorTable::Fixed(_) => true,
            AnchorTable::Classes(c) => c.masks[i * c.k()..(i + 1) * c.k()].contains(&0.0),
        }
    }

    /// The anchor row of moment `i` (a random caption with `rng`, the first without).
    fn row(&self, i: usize, rng: Option<&mut Rng>) -> &[f32] {
        match self {
            AnchorTable::Text(t) => {
                let r = &t.choices[i];
                let k = match rng {
                    Some(rng) => r.start + (rng.next_u64() % r.len() as u64) as usize,
                    None => r.start,
                };
                &t.table[k * t.dim..(k + 1) * t.dim]
            }
            AnchorTable::Fixed((v, d)) => &v[i * d..(i + 1) * d],
            AnchorTable::Classes(c) => &c.masks[i * c.k()..(i + 1) * c.k()],
        }
    }
}

/// The frozen encoder at `path`'s embedding of every moment's `modality`
/// input (`loaded`: that encoder, if already in memory).
fn embed_moments(
    ds: &Dataset,
    modality: ContractModality,
    path: &Path,
    loaded: Option<&TractEncoder>,
    cache: &EmbCache,
    quiet: bool,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("anchor {}: {e} (was its edge trained?)", path.display()))?;
    let inputs = ds
        .inputs
        .get(&modality)
        .ok_or_else(|| anyhow::anyhow!("no {} inputs loaded", modality.as_str()))?;
    let mut key = format!(
        "{}|{:016x}|{:?}",
        modality.as_str(),
        fnv64(&bytes),
        inputs.item
    );
    for r in &ds.recordings {
        let meta = std::fs::metadata(r).ok();
        key.push_str(&format!(
            "|{}:{}:{:?}",
            r.display(),
            meta.as_ref().map_or(0, |m| m.len()),
            meta.and_then(|m| m.modified().ok())
        ));
    }
    key.push_str(&format!("|{}", ds.moments.len()));
    cache.get_or_compute(
        &key,
        &format!("{} anchor embeddings", modality.as_str()),
        || {
            let owned;
            let enc = match loaded {
                Some(e) => e,
                None => {
                    owned = TractEncoder::load_reproducible(path, &frozen_backend())?;
                    &owned
                }
            };
            let t0 = Instant::now();
            let n = ds.moments.len();
            let rows: Vec<usize> = (0..n).collect();
            let out = inputs.embed(enc, &rows)?;
            if !quiet {
                eprintln!(
                    "embedded {n} {} windows with {} in {:.1} s",
                    modality.as_str(),
                    path.display(),
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(out)
        },
    )
}

/// Each moment's anchor averaged with those of the moments of the same
/// recording that end less than `span_ns` before `t_end + lead_ns` and not
/// after it (moments are in recording then time order), L2-normalised
/// again. With a 1 s hop, a 5 s span and no lead, the IMU's target is the
/// mean of the five camera clips that end inside its 5 s window; a 3 s span
/// with a 1 s lead centres the average on the moment (depth and thermal see
/// the same 0.5 s as the camera, so a trailing average would lag them).
pub fn average_over_span(
    moments: &[MomentMeta],
    table: &[f32],
    dim: usize,
    span_ns: u64,
    lead_ns: u64,
) -> Vec<f32> {
    let mut out = vec![0f32; table.len()];
    let mut first = 0;
    let mut last = 0; // exclusive
    for (i, m) in moments.iter().enumerate() {
        // The window ends `lead_ns` after the moment (0: at the moment).
        let hi = m.t_end + lead_ns;
        // Moment times are unique within a recording (grid points), so with
        // no lead this stops at the moment itself.
        last = last.max(i + 1);
        while last < moments.len()
            && moments[last].recording == m.recording
            && moments[last].t_end <= hi
        {
            last += 1;
        }
        while moments[first].recording != m.recording
            || hi.saturating_sub(moments[first].t_end) >= span_ns.max(1)
        {
            first += 1;
        }
        let row = &mut out[i * dim..(i + 1) * dim];
        for j in first..last {
            for (o, v) in row.iter_mut().zip(&table[j * dim..(j + 1) * dim]) {
                *o += v;
            }
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// FNV-1a, 64 bit.
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Anchor embeddings on disk: `<dir>/<fnv64 of key>.emb` = magic, rows, dim
/// (u64 LE), then `rows * dim` f32 LE, then the key (to rule out collisions).
pub struct EmbCache {
    /// `None`: no caching.
    pub dir: Option<PathBuf>,
}

const MAGIC: &[u8; 8] = b"EBEMB001";

impl EmbCache {
    /// The cached rows for `key`, or `compute` them (and store them).
    pub fn get_or_compute(
        &self,
        key: &str,
        what: &str,
        compute: impl FnOnce() -> anyhow::Result<Vec<Vec<f32>>>,
    ) -> anyhow::Result<(Vec<f32>, usize)> {
        let path = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{:016x}.emb", fnv64(key.as_bytes()))));
        if let Some(p) = &path
            && let Ok(bytes) = std::fs::read(p)
            && let Some(hit) = parse_cache(&bytes, key)
        {
            return Ok(hit);
        }
        let rows = compute()?;
        let dim = rows.first().map_or(0, Vec::len);
        anyhow::ensure!(
            dim > 0 && rows.iter().all(|r| r.len() == dim),
            "{what}: empty or ragged embeddings"
        );
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        if let Some(p) = &path {
            let mut buf = Vec::with_capacity(24 + flat.len() * 4 + key.len());
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&((flat.len() / dim) as u64).to_le_bytes());
            buf.extend_from_slice(&(dim as u64).to_le_bytes());
            for v in &flat {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(key.as_bytes());
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)
                    .map_err(|e| anyhow::anyhow!("anchor cache {}: {e}", d.display()))?;
            }
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, &buf)
                .and_then(|_| std::fs::rename(&tmp, p))
                .map_err(|e| anyhow::anyhow!("anchor cache {}: {e}", p.display()))?;
        }
        Ok((flat, dim))
    }
}

fn parse_cache(bytes: &[u8], key: &str) -> Option<(Vec<f32>, usize)> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return None;
    }
    let rows = u64::from_le_bytes(bytes[8..16].try_into().ok()?) as usize;
    let dim = u64::from_le_bytes(bytes[16..24].try_into().ok()?) as usize;
    let n = rows.checked_mul(dim)?.checked_mul(4)?;
    let end = 24usize.checked_add(n)?;
    if bytes.len() != end + key.len() || &bytes[end..] != key.as_bytes() || dim == 0 {
        return None;
    }
    let flat = bytes[24..end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((flat, dim))
}

struct TrainJob<'a> {
    name: &'a str,
    edge: &'a Edge,
    plan: &'a Plan,
    ds: &'a Dataset,
    train_idx: &'a [usize],
    val_idx: &'a [usize],
    anchor: &'a AnchorTable<'a>,
    preprocess: &'a Preprocess,
    out: &'a Path,
    seed: u64,
    dev: &'a Device,
    opts: &'a BindOptions,
    /// The plan's caption file (named in a supervised export's contract).
    captions: Option<&'a Path>,
}

impl TrainJob<'_> {
    /// The situation prototypes `[K, dim]` of a supervised job.
    fn protos(&self) -> candle_core::Result<Option<Tensor>> {
        match self.anchor {
            AnchorTable::Classes(c) => Ok(Some(Tensor::from_vec(
                c.protos.clone(),
                (c.k(), c.dim),
                self.dev,
            )?)),
            _ => Ok(None),
        }
    }
}

/// The loss of a batch: the edge's InfoNCE against the anchor rows, or
/// cross-entropy against the prototypes (`a` holds the label masks).
fn batch_loss(
    j: &TrainJob<'_>,
    protos: Option<&Tensor>,
    e: &Tensor,
    a: &Tensor,
) -> candle_core::Result<Tensor> {
    match protos {
        Some(p) => class_cross_entropy(e, p, a, j.edge.temperature),
        None => j.edge.loss().of(e, a),
    }
}

fn batch_tensors(
    j: &TrainJob<'_>,
    idx: &[usize],
    augment: &[Augment],
    rng: &mut Rng,
    train: bool,
) -> anyhow::Result<(Tensor, Tensor)> {
    let inputs = &j.ds.inputs[&j.edge.learner];
    let n = inputs.item_len();
    let mut x = Vec::with_capacity(idx.len() * n);
    let dim = j.anchor.dim();
    let mut a = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        let start = x.len();
        inputs.row_into(i, &mut x);
        if train {
            crate::augment::apply(
                augment,
                j.edge.learner,
                j.preprocess,
                &inputs.item,
                &mut x[start..],
                rng,
            );
            a.extend_from_slice(j.anchor.row(i, Some(rng)));
        } else {
            a.extend_from_slice(j.anchor.row(i, None));
        }
    }
    let mut shape = vec![idx.len()];
    shape.extend(&inputs.item);
    Ok((
        Tensor::from_vec(x, shape, j.dev)?,
        Tensor::from_vec(a, (idx.len(), dim), j.dev)?,
    ))
}

fn validate(j: &TrainJob<'_>, s: &Student, val: &[usize]) -> anyhow::Result<Option<(f64, f64)>> {
    let b = j.edge.batch;
    let protos = j.protos()?;
    let (mut loss, mut hit, mut n) = (0.0, 0.0, 0usize);
    let mut dummy = Rng::new(0);
    for chunk in val.chunks(b) {
        if chunk.len() < 2 {
            continue;
        }
        let (x, a) = batch_tensors(j, chunk, &[], &mut dummy, false)?;
        let e = s.encoder.forward(&x, None)?;
        loss +=
            batch_loss(j, protos.as_ref(), &e, &a)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        hit += match &protos {
            Some(p) => class_top1(&e, p, &a)?,
            None => top1(&e, &a)?,
        } * chunk.len() as f64;
        n += chunk.len();
    }
    Ok((n > 0).then(|| (loss / n as f64, hit / n as f64)))
}

fn train_edge(j: TrainJob<'_>) -> anyhow::Result<EdgeLog> {
    let e = j.edge;
    let anchor_name = match j.anchor {
        AnchorTable::Classes(_) => "labels",
        _ => e.anchor.as_str(),
    };
    let file_stem = j.name.replace('/', "-");
    let onnx = j.out.join(format!("{}.onnx", j.name));
    let log_path = j.out.join(format!("{file_stem}-log.json"));
    let ckpt = j
        .out
        .join("checkpoints")
        .join(format!("{file_stem}.safetensors"));
    let train: Vec<usize> = j
        .train_idx
        .iter()
        .copied()
        .filter(|&i| j.anchor.usable(i))
        .collect();
    let val: Vec<usize> = j
        .val_idx
        .iter()
        .copied()
        .filter(|&i| j.anchor.usable(i))
        .collect();
    anyhow::ensure!(
        train.len() >= e.batch,
        "{}: {} training pairs, fewer than one batch of {}",
        j.name,
        train.len(),
        e.batch
    );
    let previous: Option<EdgeLog> = if j.opts.resume {
        std::fs::read(&log_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };
    if let Some(p) = &previous
        && p.complete
        && onnx.exists()
    {
        if !j.opts.quiet {
            eprintln!("{}: finished earlier ({}), skipped", j.name, onnx.display());
        }
        return Ok(p.clone());
    }
    let mut log = EdgeLog {
        name: j.name.to_string(),
        learner: e.learner.as_str().into(),
        anchor: anchor_name.into(),
        steps: e.steps,
        batch: e.batch,
        temperature: e.temperature,
        target_temperature: e.target_temperature,
        anchor_span_s: e.anchor_span_s,
        anchor_span_lead_s: e.anchor_span_lead_s,
        recordings: j
            .ds
            .recordings
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        train_pairs: train.len(),
        val_pairs: val.len(),
        seconds: 0.0,
        steps_per_s: 0.0,
        train: Vec::new(),
        val: Vec::new(),
        ema: e.ema,
        val_raw: Vec::new(),
        complete: false,
    };
    let mut s = if j.opts.resume && ckpt.exists() {
        let s = Student::resume(&ckpt, j.plan.file.optim.clone(), j.dev)?;
        anyhow::ensure!(
            s.encoder.cfg == e.encoder,
            "{}: checkpoint {} is for another architecture; delete it to start over",
            j.name,
            ckpt.display()
        );
        if let Some(p) = previous {
            log.train = p
                .train
                .into_iter()
                .filter(|c| c.step <= s.opt.step)
                .collect();
            log.val = p.val.into_iter().filter(|c| c.step <= s.opt.step).collect();
            log.val_raw = p
                .val_raw
                .into_iter()
                .filter(|c| c.step <= s.opt.step)
                .collect();
            log.seconds = p.seconds;
        }
        s
    } else {
        Student::new(
            &e.encoder,
            j.plan.file.optim.clone(),
            e.steps,
            j.seed,
            j.dev,
        )?
    };
    s.set_ema(e.ema)?;
    let start_step = s.opt.step;
    let every_log = (e.steps / 50).max(1);
    let eval_every = j.plan.file.train.eval_every;
    let ckpt_every = j.plan.file.train.checkpoint_every;
    let tty = std::io::stderr().is_terminal() && !j.opts.quiet;
    let bar = if tty {
        let b = indicatif::ProgressBar::new(e.steps as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(format!("{}->{anchor_name}", j.name));
        b.set_position(start_step as u64);
        Some(b)
    } else {
        None
    };
    let protos = j.protos()?;
    let t0 = Instant::now();
    let (mut acc, mut acc_n) = (0.0, 0usize);
    let mut idx = vec![0usize; e.batch];
    while s.opt.step < e.steps {
        // A batch of distinct training moments, drawn from the student's stream.
        let mut pool = train.clone();
        for (k, slot) in idx.iter_mut().enumerate() {
            let r = k + (s.rng.next_u64() % (pool.len() - k) as u64) as usize;
            pool.swap(k, r);
            *slot = pool[k];
        }
        let mut rng = Rng::new(s.rng.next_u64());
        let (x, a) = batch_tensors(&j, &idx, &e.augment, &mut rng, true)?;
        let r = s.step_with(&x, |emb| batch_loss(&j, protos.as_ref(), emb, &a))?;
        anyhow::ensure!(
            r.loss.is_finite(),
            "{}: loss is {} at step {}; lower optim.lr",
            j.name,
            r.loss,
            r.step
        );
        acc += r.loss;
        acc_n += 1;
        let step = s.opt.step;
        if step % every_log == 0 || step == e.steps {
            log.train.push(CurvePoint {
                step,
                loss: acc / acc_n as f64,
                top1: None,
            });
            acc = 0.0;
            acc_n = 0;
        }
        if (eval_every > 0 && step % eval_every == 0) || step == e.steps {
            let point = |(l, t): (f64, f64)| CurvePoint {
                step,
                loss: l,
                top1: Some(t),
            };
            if s.ema.is_some() {
                log.val_raw.extend(validate(&j, &s, &val)?.map(point));
                s.swap_ema()?;
                let v = validate(&j, &s, &val);
                s.swap_ema()?;
                log.val.extend(v?.map(point));
            } else {
                log.val.extend(validate(&j, &s, &val)?.map(point));
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let rate = (step - start_step) as f64 / elapsed.max(1e-9);
        let msg = format!(
            "loss {:.3}{}",
            r.loss,
            log.val
                .last()
                .map(|v| format!(" val {:.3}", v.loss))
                .unwrap_or_default()
        );
        if let Some(b) = &bar {
            b.set_position(step as u64);
            b.set_message(msg);
        } else if !j.opts.quiet && (step % (e.steps / 10).max(1) == 0 || step == e.steps) {
            let eta = (e.steps - step) as f64 / rate.max(1e-9);
            eprintln!(
                "{}->{}: step {step}/{} {msg} lr {:.2e} {rate:.2} steps/s ETA {eta:.0} s",
                j.name, anchor_name, e.steps, r.lr
            );
        }
        let stop = j.opts.stop_after.is_some_and(|n| step - start_step >= n) && step < e.steps;
        if stop || (ckpt_every > 0 && step % ckpt_every == 0 && step < e.steps) {
            s.save(&ckpt)?;
            let mut partial = log.clone();
            partial.seconds += elapsed;
            write_json(&log_path, &partial)?;
            if stop {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Ok(partial);
            }
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    log.seconds += elapsed;
    log.steps_per_s = (e.steps - start_step) as f64 / elapsed.max(1e-9);
    let trained_against = if let AnchorTable::Classes(c) = j.anchor {
        format!(
            "situation labels (supervised ceiling: {} situations, text prototypes of {})",
            c.k(),
            j.captions
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    } else if e.anchor == ContractModality::Text {
        format!("text ({})", j.plan.root_model.model)
    } else {
        e.anchor.as_str().to_string()
    };
    let contract = e.encoder.contract(
        &j.plan.file.space,
        &trained_against,
        &format!(
            "edgebind-train bind, seed {}, {} steps",
            j.plan.file.seed, e.steps
        ),
    );
    if s.ema.is_some() {
        // The raw last weights beside, for comparison; the export is the average.
        let raw = j.out.join("no-ema").join(format!("{}.onnx", j.name));
        if let Some(dir) = raw.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_onnx(&s.encoder, &contract, &raw)?;
        s.swap_ema()?;
        let w = write_onnx(&s.encoder, &contract, &onnx);
        s.swap_ema()?;
        w?;
    } else {
        write_onnx(&s.encoder, &contract, &onnx)?;
    }
    s.save(&ckpt)?;
    log.complete = true;
    write_json(&log_path, &log)?;
    let png = j.out.join(format!("{file_stem}-loss.png"));
    let mut series = vec![
        (
            "train".to_string(),
            log.train.iter().map(|p| (p.step as f64, p.loss)).collect(),
        ),
        (
            if log.ema.is_some() {
                "validation (EMA weights)".to_string()
            } else {
                "validation".to_string()
            },
            log.val.iter().map(|p| (p.step as f64, p.loss)).collect(),
        ),
    ];
    if !log.val_raw.is_empty() {
        series.push((
            "validation (last weights)".to_string(),
            log.val_raw
                .iter()
                .map(|p| (p.step as f64, p.loss))
                .collect(),
        ));
    }
    crate::plots::loss_curves(
        &png,
        &match j.anchor {
            AnchorTable::Classes(c) => format!(
                "{} (cross-entropy over {} situations, t = {})",
                j.name,
                c.k(),
                e.temperature
            ),
            _ => format!(
                "{} -> {} (InfoNCE, t = {}{})",
                j.name,
                e.anchor.as_str(),
                e.temperature,
                e.target_temperature
                    .map(|t| format!(", soft targets t = {t}"))
                    .unwrap_or_default()
            ),
        },
        &series,
    )?;
    if !j.opts.quiet {
        let v = log.val.last();
        eprintln!(
            "{}->{}: {} steps in {:.0} s ({:.2} steps/s), val loss {}, val top-1 {}; wrote {}",
            j.name,
            anchor_name,
            e.steps,
            log.seconds,
            log.steps_per_s,
            v.map_or("-".into(), |v| format!("{:.3}", v.loss)),
            v.and_then(|v| v.top1)
                .map_or("-".into(), |t| format!("{t:.3}")),
            onnx.display()
        );
        let _ = std::io::stderr().flush();
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_average_over_the_span_within_one_recording() {
        let m = |recording, t_s: u64| MomentMeta {
            recording,
            t_end: t_s * 1_000_000_000,
            label: vec![],
            clean: true,
            stable_ns: 0,
            split: Split::Train,
        };
        // Recording 0 at 1, 2, 3, 5 s (4 s missing), recording 1 at 6 s.
        let moments = [m(0, 1), m(0, 2), m(0, 3), m(0, 5), m(1, 6)];
        let table = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 1.0, 3.0, 4.0];
        let got = average_over_span(&moments, &table, 2, 3_000_000_000, 0);
        let s = 0.5f32.sqrt();
        let want = [
            1.0, 0.0, // itself
            s, s, // 1 s and 2 s
            0.0, 1.0, // 1..3 s: (1,0) + (0,1) + (-1,0)
            -s, s, // 3 s and 5 s (1 s and 2 s are 3 s or more before)
            0.6, 0.8, // another recording: itself only
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} != {want:?}");
        }
        // A span shorter than the hop is the identity (normalised).
        let same = average_over_span(&moments, &table, 2, 1, 0);
        assert_eq!(&same[..8], &table[..8]);
        // Centred: a 3 s span that ends 1 s after the moment takes the
        // moments ending in (t - 2 s, t + 1 s], never across recordings.
        let centred = average_over_span(&moments, &table, 2, 3_000_000_000, 1_000_000_000);
        let want = [
            s, s, // 1 s and 2 s
            0.0, 1.0, // 1, 2, 3 s
            -s, s, // 2 and 3 s (5 s is 2 s after 3 s)
            0.0, 1.0, // 5 s alone (3 s is 3 s before its end; 6 s is another recording)
            0.6, 0.8, // itself
        ];
        for (g, w) in centred.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{centred:?} != {want:?}");
        }
    }

    #[test]
    fn cache_round_trip_and_key_check() {
        let dir = std::env::temp_dir().join(format!("edgebind-cache-{}", std::process::id()));
        let c = EmbCache {
            dir: Some(dir.clone()),
        };
        let mut calls = 0;
        let (a, d) = c
            .get_or_compute("k1", "x", || {
                calls += 1;
                Ok(vec![vec![1.0, 2.0], vec![3.0, 4.0]])
            })
            .unwrap();
        assert_eq!((a.as_slice(), d), (&[1.0, 2.0, 3.0, 4.0][..], 2));
        let (b, _) = c
            .get_or_compute("k1", "x", || {
                calls += 1;
                Ok(vec![])
            })
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(calls, 1);
        // A corrupt file is recomputed, not trusted.
        let f = dir.join(format!("{:016x}.emb", fnv64(b"k1")));
        let mut bytes = std::fs::read(&f).unwrap();
        bytes.truncate(30);
        std::fs::write(&f, bytes).unwrap();
        let (c2, _) = c.get_or_compute("k1", "x", || Ok(vec![vec![9.0]])).unwrap();
        assert_eq!(c2, vec![9.0]);
        assert!(
            c.get_or_compute("k2", "x", || Ok(vec![vec![1.0], vec![]]))
                .is_err()
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
