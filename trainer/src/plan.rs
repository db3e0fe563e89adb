//! The training plan: a TOML file naming the spanning tree (one frozen root,
//! then edges `learner -> anchor`, each learner bound to exactly one anchor
//! that is the root or learned by an earlier edge), the student architecture
//! per learning modality, temperatures, optimiser and schedule, batch, steps,
//! augmentations, data and seed.
//!
//! ```toml
//! seed = 7
//! space = "minilm-l6-v2-text"
//! [frozen.text]
//! model = "text"                      # the bundled text tower, or an ONNX path
//! [[edge]]
//! learner = "vision"
//! anchor = "text"
//! temperature = 0.07
//! [[edge]]
//! learner = "audio"
//! anchor = "vision"                   # temperature defaults to ImageBind's (0.05)
//! # target_temperature = 0.05         # optional: soft targets from the anchor (loss::soft_info_nce)
//! # recordings = ["a.mcap", "b.mcap"] # optional: this edge's own data instead of [data] recordings
//! [encoders.audio]
//! depth = 6                           # overrides onto the small default
//! [data]
//! recordings = ["recordings/sim-rig.mcap"]
//! captions = "captions-train.toml"    # text side of edges bound to text
//! ```
//!
//! [`Plan::parse`] refuses, with a message naming the place, anything that is
//! not a tree with a frozen root: no or two frozen roots, a modality with two
//! anchors, a cycle, an anchor not connected to the root, an encoder or frozen
//! model no edge uses, unknown modalities and out-of-range numbers. What it
//! returns lists the edges in training order (every anchor before its
//! learners). Reading the recordings is [`crate::data`]; training is
//! [`crate::bind`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebind_models::contract::{ContractModality, merge_json as merge};
use serde::{Deserialize, Serialize};

use crate::model::EncoderConfig;
use crate::optim::OptimConfig;

const MODALITIES: &str = "vision, audio, depth, thermal, imu, text";

/// A plan that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Unreadable file.
    #[error("plan {0}: {1}")]
    Io(PathBuf, String),
    /// Not valid TOML for a plan.
    #[error("plan does not parse: {0}")]
    Parse(String),
    /// Parses, but is not a usable tree or has bad values.
    #[error("plan: {0}")]
    Invalid(String),
}

/// An augmentation applied to the learner's input during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// Random resized crop (vision, depth, thermal).
    RandomResizedCrop,
    /// Horizontal flip (vision, depth, thermal).
    HorizontalFlip,
    /// Brightness/contrast/saturation jitter (vision).
    ColorJitter,
    /// Random gain (audio).
    Gain,
    /// Random circular shift in time (audio, imu).
    TimeShift,
    /// Additive Gaussian noise (audio, depth, thermal, imu).
    Noise,
    /// Time and frequency masking of the spectrogram (audio).
    SpecMask,
}

impl Augment {
    fn applies_to(self, m: ContractModality) -> bool {
        use ContractModality::*;
        match self {
            Augment::RandomResizedCrop | Augment::HorizontalFlip => {
                matches!(m, Vision | Depth | Thermal)
            }
            Augment::ColorJitter => m == Vision,
            Augment::Gain | Augment::SpecMask => m == Audio,
            Augment::TimeShift => matches!(m, Audio | Imu),
            Augment::Noise => matches!(m, Audio | Depth | Thermal | Imu),
        }
    }
}

/// A frozen anchor model (`[frozen.<modality>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenSpec {
    /// `"text"` for the bundled text tower, else the path of an ONNX encoder
    /// with a contract.
    pub model: String,
}

/// One `[[edge]]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// The modality whose encoder learns.
    pub learner: String,
    /// The modality it binds to (frozen root or an earlier learner, frozen by then).
    pub anchor: String,
    /// InfoNCE temperature; default ImageBind's for the learner.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Soft InfoNCE targets `softmax(anchor · anchorᵀ / t)` (see
    /// `loss::soft_info_nce`); absent = ImageBind's one-hot targets.
    #[serde(default)]
    pub target_temperature: Option<f64>,
    /// The anchor of a moment is the mean of the anchor's embeddings of the
    /// moments of the same recording that end in the last `anchor_span_s`
    /// seconds (renormalised): for a learner whose window is longer than the
    /// anchor's (the IMU's 5 s against the camera's 0.5 s clip). Absent: the
    /// moment's own anchor embedding. Sensor anchors only.
    #[serde(default)]
    pub anchor_span_s: Option<f64>,
    /// The span ends this many seconds after the moment instead of at it
    /// (needs `anchor_span_s`, and less than it): a span of 3 s with a lead
    /// of 1 s is centred on the moment, for learners whose window is the
    /// anchor's own (depth and thermal against the camera). Default 0.
    #[serde(default)]
    pub anchor_span_lead_s: Option<f64>,
    /// Steps for this edge; default `[train].steps`.
    #[serde(default)]
    pub steps: Option<usize>,
    /// Batch for this edge; default `[train].batch`.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Moving average of the weights for this edge; default `[train].ema`.
    #[serde(default)]
    pub ema: Option<f64>,
    /// Augmentations of the learner's input.
    #[serde(default)]
    pub augment: Vec<Augment>,
    /// This edge's paired recordings, instead of `[data] recordings`
    /// (relative to the plan's folder). ImageBind trains each pair on its own
    /// dataset (AudioSet for audio, SUN RGB-D for depth, LLVIP for thermal,
    /// Ego4D for IMU); here an edge can take more (or other) data than the
    /// rest without changing what the others were trained on. Its text-paired
    /// baseline takes the same.
    #[serde(default)]
    pub recordings: Option<Vec<PathBuf>>,
}

/// `[train]`: defaults every edge inherits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainDefaults {
    /// Pairs per batch.
    pub batch: usize,
    /// Optimiser steps per edge.
    pub steps: usize,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Validation loss every this many steps (0 = only at the end).
    pub eval_every: usize,
    /// Also train every learner whose anchor is not the text root directly
    /// against text (captions), same data and budget, into `<out>/paired/`:
    /// the baseline emergent alignment is measured against.
    pub paired_baseline: bool,
    /// Also train every sensor learner directly on the situation labels of
    /// the ground truth (cross-entropy against the text prototypes of the
    /// situations, see `loss::class_cross_entropy`), same data, encoder and
    /// budget, into `<out>/supervised/`: what this encoder can reach on this
    /// data with labels, the ceiling emergent and paired alignment are read
    /// against (`edgebind-train eval` reports it beside them).
    pub supervised_ceiling: bool,
    /// Keep an exponential moving average of the weights with this decay per
    /// step (e.g. 0.999; see `student::Ema`): validation reports it and the
    /// export is it (the raw last weights go to `<out>/no-ema/`). Absent:
    /// none, the export is the last weights.
    pub ema: Option<f64>,
}

impl Default for TrainDefaults {
    fn default() -> Self {
        TrainDefaults {
            batch: 32,
            steps: 2000,
            checkpoint_every: 250,
            eval_every: 100,
            paired_baseline: false,
            supervised_ceiling: false,
            ema: None,
        }
    }
}

/// `[data]`: where paired windows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// MCAP recordings (relative paths are relative to the plan file's folder).
    pub recordings: Vec<PathBuf>,
    /// Cache of frozen-anchor embeddings.
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Fraction of time segments held out for validation.
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    /// Length of the time segments the split is cut by, seconds.
    #[serde(default = "default_segment")]
    pub segment_s: f64,
    /// Captions per situation (a prompt file, see `prompts`): the text side
    /// of every edge whose anchor is text.
    #[serde(default)]
    pub captions: Option<PathBuf>,
}

fn default_segment() -> f64 {
    60.0
}

fn default_holdout() -> f64 {
    0.1
}

/// The plan as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// Seed of initialisation, batching, augmentation and drop path.
    #[serde(default)]
    pub seed: u64,
    /// Name of the space the tree lives in (the frozen root's).
    pub space: String,
    /// Output folder of the exported encoders and checkpoints.
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// The frozen root (exactly one entry).
    #[serde(default)]
    pub frozen: BTreeMap<String, FrozenSpec>,
    /// The edges.
    #[serde(default, rename = "edge")]
    pub edges: Vec<EdgeSpec>,
    /// Architecture overrides per learning modality, merged onto
    /// [`EncoderConfig::small`].
    #[serde(default)]
    pub encoders: BTreeMap<String, toml::Table>,
    /// Optimiser and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Batch and steps.
    #[serde(default)]
    pub train: TrainDefaults,
    /// Data.
    pub data: DataSpec,
}

fn default_out() -> PathBuf {
    PathBuf::from("trained")
}

/// A validated edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Learns.
    pub learner: ContractModality,
    /// Binds to (frozen while this edge trains).
    pub anchor: ContractModality,
    /// The learner's architecture.
    pub encoder: EncoderConfig,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Soft-target temperature (`None`: one-hot InfoNCE).
    pub target_temperature: Option<f64>,
    /// Anchor embeddings averaged over this many seconds (see
    /// [`EdgeSpec::anchor_span_s`]).
    pub anchor_span_s: Option<f64>,
    /// Where that span ends past the moment ([`EdgeSpec::anchor_span_lead_s`]).
    pub anchor_span_lead_s: Option<f64>,
    /// Steps.
    pub steps: usize,
    /// Batch.
    pub batch: usize,
    /// Moving-average decay of the weights (`None`: the last weights).
    pub ema: Option<f64>,
    /// Augmentations.
    pub augment: Vec<Augment>,
    /// Paired recordings, as written (the edge's own or `[data] recordings`).
    pub recordings: Vec<PathBuf>,
}

impl Edge {
    /// The loss this edge trains with.
    pub fn loss(&self) -> crate::loss::EdgeLoss {
        crate::loss::EdgeLoss {
            temperature: self.temperature,
            target_temperature: self.target_temperature,
        }
    }
}

/// A validated plan: a tree with one frozen root, edges in training order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// As written.
    pub file: PlanFile,
    /// The frozen root.
    pub root: ContractModality,
    /// Its model.
    pub root_model: FrozenSpec,
    /// Edges, every anchor trained (or frozen) before its learners.
    pub edges: Vec<Edge>,
}

/// ImageBind's fixed temperatures (audio 0.05, depth 0.2, thermal 0.1, IMU
/// 0.2); vision (learning against text) starts at CLIP's 0.07.
pub fn default_temperature(learner: ContractModality) -> f64 {
    match learner {
        ContractModality::Audio => 0.05,
        ContractModality::Depth | ContractModality::Imu => 0.2,
        ContractModality::Thermal => 0.1,
        ContractModality::Vision | ContractModality::Text => 0.07,
    }
}

fn modality(name: &str, place: &str) -> Result<ContractModality, PlanError> {
    serde_json::from_value(serde_json::Value::String(name.into())).map_err(|_| {
        PlanError::Invalid(format!(
            "{place}: unknown modality `{name}` (known: {MODALITIES})"
        ))
    })
}

fn arrow(e: &EdgeSpec) -> String {
    format!("{}->{}", e.learner, e.anchor)
}

impl Plan {
    /// Reads and validates the plan at `path`.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PlanError::Io(path.to_path_buf(), e.to_string()))?;
        Plan::parse(&text).map_err(|e| match e {
            PlanError::Parse(m) => PlanError::Parse(format!("{}: {m}", path.display())),
            PlanError::Invalid(m) => PlanError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses and validates plan TOML.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let file: PlanFile = toml::from_str(text).map_err(|e| PlanError::Parse(e.to_string()))?;
        Plan::validate(file)
    }

    fn validate(file: PlanFile) -> Result<Plan, PlanError> {
        let bad = |m: String| Err(PlanError::Invalid(m));
        if file.space.trim().is_empty() {
            return bad("`space` is empty".into());
        }
        // The root.
        let roots: Vec<(&String, &FrozenSpec)> = file.frozen.iter().collect();
        let (root, root_model) = match roots.as_slice() {
            [] => {
                return bad(
                    "no frozen root: a plan needs exactly one `[frozen.<modality>]` anchor that \
                     does not learn, e.g. `[frozen.text]` with `model = \"text\"`"
                        .into(),
                );
            }
            [(name, spec)] => (
                modality(name, &format!("[frozen.{name}]"))?,
                (*spec).clone(),
            ),
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
                return bad(format!(
                    "{} frozen roots ({}): a spanning tree has one root; bind the others to it \
                     with edges",
                    names.len(),
                    names.join(", ")
                ));
            }
        };
        if root_model.model.trim().is_empty() {
            return bad(format!("[frozen.{}]: `model` is empty", root.as_str()));
        }
        if file.edges.is_empty() {
            return bad("no `[[edge]]`: nothing would learn".into());
        }
        // Each edge: known modalities, one anchor per learner.
        let mut parent: BTreeMap<&'static str, (ContractModality, usize)> = BTreeMap::new();
        let mut parsed = Vec::new();
        for (i, e) in file.edges.iter().enumerate() {
            let place = format!("edge {} ({})", i + 1, arrow(e));
            let learner = modality(&e.learner, &format!("{place}, learner"))?;
            let anchor = modality(&e.anchor, &format!("{place}, anchor"))?;
            if learner == anchor {
                return bad(format!("{place}: {} binds to itself", e.learner));
            }
            if learner == ContractModality::Text {
                return bad(format!(
                    "{place}: text cannot learn here (the text tower is only ever a frozen anchor)"
                ));
            }
            if learner == root {
                return bad(format!(
                    "{place}: {} is the frozen root and cannot learn",
                    e.learner
                ));
            }
            if let Some((other, j)) = parent.get(learner.as_str()) {
                return bad(format!(
                    "{place}: {} already binds to {} in edge {}; in a tree every modality has \
                     exactly one anchor",
                    e.learner,
                    other.as_str(),
                    j + 1
                ));
            }
            parent.insert(learner.as_str(), (anchor, i));
            parsed.push((learner, anchor));
        }
        // Every anchor is the root or learned by some edge; no cycles.
        for (i, e) in file.edges.iter().enumerate() {
            let anchor = parsed[i].1;
            if anchor != root && !parent.contains_key(anchor.as_str()) {
                return bad(format!(
                    "edge {} ({}): anchor {} is neither the frozen root ({}) nor learned by any \
                     edge, so {} is not connected to the root",
                    i + 1,
                    arrow(e),
                    e.anchor,
                    root.as_str(),
                    e.learner
                ));
            }
        }
        for &(learner, _) in &parsed {
            let mut path = vec![learner];
            let mut at = learner;
            while at != root {
                at = parent[at.as_str()].0;
                if path.contains(&at) {
                    path.push(at);
                    let cycle: Vec<&str> = path.iter().map(|m| m.as_str()).collect();
                    return bad(format!(
                        "the edges form a cycle ({}), which never reaches the frozen root {}",
                        cycle.join("->"),
                        root.as_str()
                    ));
                }
                path.push(at);
            }
        }
        // Nothing left over.
        for name in file.encoders.keys() {
            let m = modality(name, &format!("[encoders.{name}]"))?;
            if !parent.contains_key(m.as_str()) {
                return bad(format!(
                    "[encoders.{name}] is set but no edge learns {name}: it would be disconnected"
                ));
            }
        }
        if !parsed.iter().any(|(_, a)| *a == root) {
            return bad(format!(
                "no edge binds to the frozen root {}: the tree is disconnected from it",
                root.as_str()
            ));
        }
        // Numbers.
        file.optim.validate().map_err(PlanError::Invalid)?;
        if !(0.0..1.0).contains(&file.data.holdout) {
            return bad(format!(
                "data.holdout {} must be in [0, 1)",
                file.data.holdout
            ));
        }
        if file.data.recordings.is_empty() {
            return bad("data.recordings is empty: name at least one MCAP recording".into());
        }
        if !(file.data.segment_s.is_finite() && file.data.segment_s >= 1.0) {
            return bad(format!(
                "data.segment_s {} must be at least 1 (seconds)",
                file.data.segment_s
            ));
        }
        // Edges in training order: breadth first from the root.
        let mut order: Vec<usize> = Vec::new();
        let mut frontier = vec![root];
        while let Some(a) = frontier.pop() {
            for (i, &(l, an)) in parsed.iter().enumerate() {
                if an == a {
                    order.push(i);
                    frontier.insert(0, l);
                }
            }
        }
        let mut edges = Vec::new();
        for i in order {
            let e = &file.edges[i];
            let (learner, anchor) = parsed[i];
            let place = format!("edge {} ({})", i + 1, arrow(e));
            let mut base = serde_json::to_value(
                EncoderConfig::small(learner).expect("learners are never text"),
            )
            .expect("serialisable");
            if let Some(over) = file.encoders.get(&e.learner) {
                if over.contains_key("modality") {
                    return bad(format!(
                        "[encoders.{}]: `modality` comes from the table name",
                        e.learner
                    ));
                }
                merge(
                    &mut base,
                    serde_json::to_value(over).map_err(|x| PlanError::Invalid(x.to_string()))?,
                );
            }
            let encoder: EncoderConfig = serde_json::from_value(base)
                .map_err(|x| PlanError::Invalid(format!("[encoders.{}]: {x}", e.learner)))?;
            encoder
                .validate()
                .map_err(|x| PlanError::Invalid(format!("[encoders.{}]: {x}", e.learner)))?;
            let temperature = e.temperature.unwrap_or(default_temperature(learner));
            if !(temperature > 0.0 && temperature.is_finite()) {
                return bad(format!(
                    "{place}: temperature {temperature} must be positive"
                ));
            }
            if let Some(t) = e.target_temperature
                && !(t > 0.0 && t.is_finite())
            {
                return bad(format!("{place}: target_temperature {t} must be positive"));
            }
            if let Some(t) = e.anchor_span_s {
                if !(t > 0.0 && t.is_finite()) {
                    return bad(format!("{place}: anchor_span_s {t} must be positive"));
                }
                if anchor == ContractModality::Text {
                    return bad(format!(
                        "{place}: anchor_span_s averages a sensor anchor over time; text anchors \
                         are captions of the moment's situation"
                    ));
                }
            }
            if let Some(l) = e.anchor_span_lead_s {
                match e.anchor_span_s {
                    None => {
                        return bad(format!(
                            "{place}: anchor_span_lead_s {l} without anchor_span_s (the lead \
                             moves the end of that span)"
                        ));
                    }
                    Some(span) if !(l >= 0.0 && l < span) => {
                        return bad(format!(
                            "{place}: anchor_span_lead_s {l} must be at least 0 and less than \
                             anchor_span_s {span}"
                        ));
                    }
                    _ => {}
                }
            }
            let steps = e.steps.unwrap_or(file.train.steps);
            let batch = e.batch.unwrap_or(file.train.batch);
            if steps == 0 {
                return bad(format!("{place}: steps is 0"));
            }
            if batch < 2 {
                return bad(format!(
                    "{place}: batch {batch}: InfoNCE needs at least 2 pairs per batch"
                ));
            }
            let ema = e.ema.or(file.train.ema);
            if let Some(d) = ema
                && !(d > 0.0 && d < 1.0)
            {
                return bad(format!(
                    "{place}: ema {d} must be a decay between 0 and 1 (e.g. 0.999)"
                ));
            }
            if e.recordings.as_ref().is_some_and(Vec::is_empty) {
                return bad(format!(
                    "{place}: recordings is empty: name at least one MCAP recording, or \
                     leave it out to use [data] recordings"
                ));
            }
            for a in &e.augment {
                if !a.applies_to(learner) {
                    let name = serde_json::to_value(a).expect("serialisable");
                    return bad(format!(
                        "{place}: augmentation {name} does not apply to {}",
                        e.learner
                    ));
                }
            }
            edges.push(Edge {
                learner,
                anchor,
                encoder,
                temperature,
                target_temperature: e.target_temperature,
                anchor_span_s: e.anchor_span_s,
                anchor_span_lead_s: e.anchor_span_lead_s.filter(|&l| l > 0.0),
                steps,
                batch,
                ema,
                augment: e.augment.clone(),
                recordings: e
                    .recordings
                    .clone()
                    .unwrap_or_else(|| file.data.recordings.clone()),
            });
        }
        let text_edges = edges.iter().any(|e| e.anchor == ContractModality::Text);
        if file.train.paired_baseline && root != ContractModality::Text {
            return bad(format!(
                "train.paired_baseline trains learners directly against text, but the root is {}",
                root.as_str()
            ));
        }
        if file.train.supervised_ceiling && root != ContractModality::Text {
            return bad(format!(
                "train.supervised_ceiling classifies against the text prototypes of the \
                 situations, but the root is {}",
                root.as_str()
            ));
        }
        if (text_edges || file.train.paired_baseline || file.train.supervised_ceiling)
            && file.data.captions.is_none()
        {
            return bad(
                "an edge binds to text: data.captions must name a prompt file with captions \
                 per situation"
                    .into(),
            );
        }
        Ok(Plan {
            file,
            root,
            root_model,
            edges,
        })
    }

    /// One line per edge, in training order, for `plan check`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "space {}; frozen root {} ({}); {} edges, in training order:\n",
            self.file.space,
            self.root.as_str(),
            self.root_model.model,
            self.edges.len()
        );
        for e in &self.edges {
            let c = &e.encoder;
            s.push_str(&format!(
                "  {}->{}: temperature {}{}, {} steps x batch {}, encoder dim {} depth {} heads {} \
                 input {:?} patch {:?} ({} tokens){}{}\n",
                e.learner.as_str(),
                e.anchor.as_str(),
                e.temperature,
                e.target_temperature
                    .map(|t| format!(" (soft targets at {t})"))
                    .unwrap_or_default()
                    + &e.anchor_span_s
                        .map(|t| match e.anchor_span_lead_s {
                            Some(l) => format!(
                                ", anchor averaged over {t} s ending {l} s after the moment"
                            ),
                            None => format!(", anchor averaged over {t} s"),
                        })
                        .unwrap_or_default()
                    + &e.ema
                        .map(|d| format!(", weights averaged (EMA {d})"))
                        .unwrap_or_default()
                    + &if e.recordings == self.file.data.recordings {
                        String::new()
                    } else {
                        format!(
                            ", own data: {}",
                            e.recordings
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                e.steps,
                e.batch,
                c.dim,
                c.depth,
                c.heads,
                c.input,
                c.patch,
                c.patches() + 1,
                if c.bias_kv { ", k/v bias" } else { "" },
                if c.conv_stem.is_empty() {
                    String::new()
                } else {
                    format!(", conv stem {:?}", c.conv_stem)
                }
            ));
        }
        if self.file.train.paired_baseline {
            s += "then each learner not bound to text again against text (paired/)\n";
        }
        if self.file.train.supervised_ceiling {
            s += "then each learner on the situation labels (supervised/, the ceiling)\n";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "[data]\nrecordings = [\"r.mcap\"]\ncaptions = \"c.toml\"\n";

    fn plan(body: &str) -> Result<Plan, PlanError> {
        Plan::parse(&format!("space = \"s\"\n{body}\n{DATA}"))
    }

    fn edge(l: &str, a: &str) -> String {
        format!("[[edge]]\nlearner = \"{l}\"\nanchor = \"{a}\"\n")
    }

    fn err(body: &str) -> String {
        plan(body).unwrap_err().to_string()
    }

    #[test]
    fn image_anchored_and_text_anchored_trees_validate() {
        let body = format!(
            "[frozen.text]\nmodel = \"text\"\n{}{}{}{}{}",
            edge("audio", "vision"),
            edge("vision", "text"),
            edge("depth", "vision"),
            edge("imu", "vision"),
            edge("thermal", "vision")
        );
        let p = plan(&body).unwrap();
        let order: Vec<&str> = p.edges.iter().map(|e| e.learner.as_str()).collect();
        assert_eq!(order[0], "vision", "the anchor trains before its learners");
        assert_eq!(p.edges.len(), 5);
        assert_eq!(p.edges[1].temperature, 0.05); // audio: ImageBind's
        let lb = format!(
            "[frozen.text]\nmodel = \"text\"\n{}{}",
            edge("vision", "text"),
            edge("audio", "text")
        );
        assert_eq!(plan(&lb).unwrap().edges.len(), 2);
        // A frozen image root (ImageBind's frozen CLIP image side).
        let ib = format!(
            "[frozen.vision]\nmodel = \"zoo/img.onnx\"\n{}",
            edge("audio", "vision")
        );
        assert_eq!(plan(&ib).unwrap().root, ContractModality::Vision);
    }

    #[test]
    fn baselines_need_a_text_root_and_captions() {
        let ib = format!(
            "[frozen.vision]\nmodel = \"img.onnx\"\n{}",
            edge("audio", "vision")
        );
        let e = err(&format!("{ib}[train]\nsupervised_ceiling = true\n"));
        assert!(
            e.contains("train.supervised_ceiling") && e.contains("the root is vision"),
            "{e}"
        );
        let e = err(&format!("{ib}[train]\npaired_baseline = true\n"));
        assert!(e.contains("the root is vision"), "{e}");
        let text = format!(
            "space = \"s\"\n[frozen.text]\nmodel = \"text\"\n{}{}[train]\nsupervised_ceiling = true\n",
            edge("vision", "text"),
            edge("audio", "vision")
        );
        let e = Plan::parse(&format!("{text}[data]\nrecordings = [\"r.mcap\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.captions"), "{e}");
        let p = plan(&format!(
            "[frozen.text]\nmodel = \"text\"\n{}{}[train]\nsupervised_ceiling = true\n",
            edge("vision", "text"),
            edge("audio", "vision")
        ))
        .unwrap();
        assert!(p.file.train.supervised_ceiling && !p.file.train.paired_baseline);
        let sum = p.summary();
        assert!(sum.contains("on the situation labels (supervised/") && !sum.contains("paired/"));
    }

    #[test]
    fn encoder_overrides_merge_onto_the_small_default() {
        let p = plan(&format!(
            "[frozen.text]\nmodel = \"text\"\n{}[encoders.vision]\ndepth = 2\n",
            edge("vision", "text")
        ))
        .unwrap();
        assert_eq!(p.edges[0].encoder.depth, 2);
        assert_eq!(p.edges[0].encoder.input, vec![3, 2, 64, 64]);
        let e = err(&format!(
            "[frozen.text]\nmodel = \"text\"\n{}[encoders.vision]\ndepht = 2\n",
            edge("vision", "text")
        ));
        assert!(
            e.contains("[encoders.vision]") && e.contains("depht"),
            "{e}"
        );
        let e = err(&format!(
            "[frozen.text]\nmodel = \"text\"\n{}[encoders.vision]\nheads = 5\n",
            edge("vision", "text")
        ));
        assert!(e.contains("multiple of heads 5"), "{e}");
    }

    #[test]
    fn non_trees_are_refused_with_the_reason() {
        let root = "[frozen.text]\nmodel = \"text\"\n";
        let e = err(&edge("vision", "text"));
        assert!(e.contains("no frozen root"), "{e}");
        let e = err(&format!(
            "{root}[frozen.vision]\nmodel = \"v.onnx\"\n{}",
            edge("audio", "vision")
        ));
        assert!(e.contains("2 frozen roots (text, vision)"), "{e}");
        let e = err(&format!(
            "{root}{}{}",
            edge("vision", "text"),
            edge("vision", "audio")
        ));
        assert!(e.contains("vision already binds to text in edge 1"), "{e}");
        let e = err(&format!(
            "{root}{}{}{}",
            edge("vision", "text"),
            edge("audio", "depth"),
            edge("depth", "audio")
        ));
        assert!(e.contains("cycle (audio->depth->audio)"), "{e}");
        let e = err(&format!(
            "{root}{}{}",
            edge("vision", "text"),
            edge("audio", "depth")
        ));
        assert!(
            e.contains("anchor depth is neither the frozen root (text) nor learned by any edge"),
            "{e}"
        );
        let e = err(&format!("{root}{}", edge("sonar", "text")));
        assert!(e.contains("unknown modality `sonar`"), "{e}");
        let e = err(&format!("{root}{}", edge("text", "vision")));
        assert!(e.contains("text cannot learn"), "{e}");
        let e = err(&format!("{root}{}", edge("vision", "vision")));
        assert!(e.contains("binds to itself"), "{e}");
        let e = err(&format!(
            "{root}{}[encoders.thermal]\ndim = 64\n",
            edge("vision", "text")
        ));
        assert!(e.contains("no edge learns thermal"), "{e}");
        let e = err(&format!(
            "[frozen.vision]\nmodel = \"v.onnx\"\n{}{}",
            edge("audio", "depth"),
            edge("depth", "audio")
        ));
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn bad_numbers_and_augmentations_are_refused() {
        let root = "[frozen.text]\nmodel = \"text\"\n";
        let e = err(&format!(
            "{root}{}temperature = 0.0\n",
            edge("vision", "text")
        ));
        assert!(e.contains("temperature 0 must be positive"), "{e}");
        let e = err(&format!(
            "{root}{}target_temperature = -1.0\n",
            edge("vision", "text")
        ));
        assert!(
            e.contains("edge 1 (vision->text): target_temperature -1 must be positive"),
            "{e}"
        );
        let e = err(&format!(
            "{root}{}anchor_span_s = 5.0\n",
            edge("vision", "text")
        ));
        assert!(e.contains("edge 1 (vision->text): anchor_span_s"), "{e}");
        // vision->text, then depth->vision with `extra` on the depth edge.
        let with_depth = |extra: &str| {
            format!(
                "{root}{}{}{extra}",
                edge("vision", "text"),
                edge("depth", "vision")
            )
        };
        let e = err(&with_depth("anchor_span_lead_s = 1.0\n"));
        assert!(
            e.contains("edge 2 (depth->vision): anchor_span_lead_s 1 without anchor_span_s"),
            "{e}"
        );
        let e = err(&with_depth(
            "anchor_span_s = 2.0\nanchor_span_lead_s = 2.0\n",
        ));
        assert!(
            e.contains("anchor_span_lead_s 2 must be at least 0 and less than anchor_span_s 2"),
            "{e}"
        );
        let p = plan(&with_depth(
            "anchor_span_s = 3.0\nanchor_span_lead_s = 1.0\n",
        ))
        .unwrap();
        assert_eq!(p.edges[1].anchor_span_lead_s, Some(1.0));
        assert!(
            p.summary()
                .contains("anchor averaged over 3 s ending 1 s after the moment")
        );
        // An edge's own recordings replace [data] recordings for it alone.
        let p = plan(&with_depth("recordings = [\"r.mcap\", \"more.mcap\"]\n")).unwrap();
        assert_eq!(p.edges[0].recordings, [PathBuf::from("r.mcap")]);
        assert_eq!(
            p.edges[1].recordings,
            [PathBuf::from("r.mcap"), PathBuf::from("more.mcap")]
        );
        let s = p.summary();
        assert!(s.contains("own data: r.mcap, more.mcap"), "{s}");
        assert_eq!(s.matches("own data").count(), 1, "{s}");
        let e = err(&with_depth("recordings = []\n"));
        assert!(
            e.contains("edge 2 (depth->vision): recordings is empty"),
            "{e}"
        );
        let e = err(&format!("{root}{}batch = 1\n", edge("vision", "text")));
        assert!(e.contains("at least 2 pairs"), "{e}");
        let e = err(&format!("{root}{}ema = 1.0\n", edge("vision", "text")));
        assert!(
            e.contains("edge 1 (vision->text): ema 1 must be a decay between 0 and 1"),
            "{e}"
        );
        let e = err(&format!(
            "{root}{}[train]\nema = -0.5\n",
            edge("vision", "text")
        ));
        assert!(e.contains("ema -0.5 must be a decay"), "{e}");
        // [train].ema is every edge's default; an edge's own value wins.
        let p = plan(&format!(
            "{root}{}ema = 0.99\n{}[train]\nema = 0.999\n",
            edge("vision", "text"),
            edge("audio", "vision")
        ))
        .unwrap();
        assert_eq!(p.edges[0].ema, Some(0.99));
        assert_eq!(p.edges[1].ema, Some(0.999));
        assert!(p.summary().contains("weights averaged (EMA 0.99)"));
        let e = err(&format!(
            "{root}{}augment = [\"spec-mask\"]\n",
            edge("vision", "text")
        ));
        assert!(e.contains("\"spec-mask\" does not apply to vision"), "{e}");
        let e = err(&format!(
            "{root}{}[optim]\nbetas = [0.9, 1.5]\n",
            edge("vision", "text")
        ));
        assert!(e.contains("optim.betas"), "{e}");
        let e = Plan::parse("space = \"s\"\n[frozen.text]\nmodel = \"text\"\n").unwrap_err();
        assert!(e.to_string().contains("data"), "{e}");
    }
}
