//! Paired windows from recordings, through the daemon's own data path.
//!
//! A recording (MCAP, any rig: the simulated one or real sensors) is read
//! message by message; each modality's samples go through the sensors
//! crate's [`Windower`] (the same windows the daemon cuts) and each window
//! through the models crate's [`Preprocessor`] built from the learner's
//! contract (so training sees exactly the tensors the deployed encoder will
//! see). Windows of all modalities end on one shared grid (one point per
//! hop), so a **moment** is the set of windows ending at the same grid
//! point; only moments where every requested modality has a window are kept.
//!
//! Ground truth (`/ground_truth`, the sim's situation spans) never reaches a
//! learner bound to another sensor: it only makes the captions of the
//! text-anchored edges and the labels of evaluation.
//!
//! * A moment's **label** is the set of situations active at the middle of
//!   the shortest (vision) window, `t_end - 0.5 s`.
//! * A moment is **clean** when one truth span covers the whole of its
//!   longest window (`t_end - longest .. t_end`): no window of it straddles
//!   a change. Evaluation uses clean moments only (the embedding-arithmetic
//!   check: moments clean over the two windows it combines, `stable_ns`).
//! * **Split by time segment**, never by window: the recording is cut into
//!   segments of `segment_s`; every `round(1 / holdout)`-th segment is held
//!   out for validation. A moment whose longest window starts in a segment
//!   of the other split is dropped (it would share samples with both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::contract::{ContractModality, Preprocess};
use edgebind_models::onnx::ModelError;
use edgebind_models::preprocess::{Preprocessor, Tensor as ItemTensor};
use edgebind_sensors::recording::{McapReader, TRUTH_TOPIC, decode_sample};
use edgebind_sensors::sample::Sample;
use edgebind_sensors::window::{Window, WindowConfig, Windower};

/// One truth span: situations active in `[start_ns, end_ns)` (sorted here).
pub use edgebind_sensors::recording::TruthSpan;

/// A recording's ground truth (sorted, non-overlapping spans).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// The spans.
    pub spans: Vec<TruthSpan>,
}

impl Truth {
    fn find(&self, t: u64) -> Option<&TruthSpan> {
        let i = self.spans.partition_point(|s| s.end_ns <= t);
        self.spans.get(i).filter(|s| s.start_ns <= t)
    }

    /// Situations active at `t`.
    pub fn at(&self, t: u64) -> Option<&[String]> {
        self.find(t).map(|s| s.situations.as_slice())
    }

    /// The situations if one span covers all of `[start, end]`.
    pub fn constant_over(&self, start: u64, end: u64) -> Option<&[String]> {
        self.find(start)
            .filter(|s| s.end_ns > end)
            .map(|s| s.situations.as_slice())
    }
}

/// Which split a moment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training.
    Train,
    /// Validation (held-out segments).
    Val,
}

/// One moment of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentMeta {
    /// Index into [`Dataset::recordings`].
    pub recording: usize,
    /// Grid point (monotonic ns of the recording).
    pub t_end: u64,
    /// Situations at `t_end - 0.5 s` (empty without ground truth).
    pub label: Vec<String>,
    /// One truth span covers the moment's longest window.
    pub clean: bool,
    /// How long before `t_end` the ground truth has been what it is at
    /// `t_end` (ns; 0 without ground truth): a window of this length or
    /// shorter ending at `t_end` sees one truth span.
    pub stable_ns: u64,
    /// Its split.
    pub split: Split,
}

/// Preprocessed inputs of one modality, one row per moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Shape of one item (the encoder input without the batch).
    pub item: Vec<usize>,
    /// `moments * item` values.
    pub data: Vec<f32>,
}

impl Inputs {
    /// Values per item.
    pub fn item_len(&self) -> usize {
        self.item.iter().product()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.item_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// `enc`'s embeddings of the given rows, in order (64 items per call).
    pub fn embed(&self, enc: &dyn Encoder, rows: &[usize]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(64) {
            let items: Vec<ItemTensor> = chunk
                .iter()
                .map(|&i| ItemTensor::new(self.item.clone(), self.row(i).to_vec()))
                .collect();
            out.extend(enc.encode(&items)?.into_iter().map(|e| e.vector));
        }
        Ok(out)
    }
}

/// Backend settings for frozen encoders run over a whole dataset (anchors
/// in `bind`, every encoder in `eval`): one thread, batches of up to 16,
/// loaded with `TractEncoder::load_reproducible` (always the batch plan, so
/// the same recording gives the same anchor table bit for bit; a timed
/// choice made the table differ by ~1e-7 between runs, which training
/// amplified into ~0.03 zero-shot).
pub fn frozen_backend() -> BackendOptions {
    BackendOptions {
        threads: 1,
        max_batch: 16,
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Preprocessing per modality (from each learner's contract).
    pub preprocess: BTreeMap<ContractModality, Preprocess>,
    /// Window length and hop per modality.
    pub windows: WindowConfig,
    /// Split segment length, seconds.
    pub segment_s: f64,
    /// Fraction of segments held out (0 = none).
    pub holdout: f64,
}

/// Paired, preprocessed moments of one or more recordings.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The recordings read.
    pub recordings: Vec<PathBuf>,
    /// Moments, in recording then time order.
    pub moments: Vec<MomentMeta>,
    /// Inputs per modality, rows aligned with `moments`.
    pub inputs: BTreeMap<ContractModality, Inputs>,
    /// Moments dropped because their windows straddle the split.
    pub dropped: usize,
}

impl Dataset {
    /// Indices of the moments of a split.
    pub fn split(&self, s: Split) -> Vec<usize> {
        (0..self.moments.len())
            .filter(|&i| self.moments[i].split == s)
            .collect()
    }

    /// Distinct non-empty labels, sorted.
    pub fn label_sets(&self) -> Vec<Vec<String>> {
        let mut v: Vec<Vec<String>> = self
            .moments
            .iter()
            .filter(|m| !m.label.is_empty())
            .map(|m| m.label.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Per-modality state while reading one recording.
struct Stream {
    modality: ContractModality,
    windower: Windower,
    pre: Preprocessor,
    sample: Sample,
    windows: Vec<Window>,
    items: BTreeMap<u64, Vec<f32>>,
    item: Vec<usize>,
}

/// Reads `recordings` into paired moments. `progress(done_bytes, total_bytes)`
/// is called now and then.
pub fn load(
    recordings: &[PathBuf],
    spec: &LoadSpec,
    mut progress: impl FnMut(&Path, u64, u64),
) -> anyhow::Result<Dataset> {
    anyhow::ensure!(!recordings.is_empty(), "no recordings to read");
    anyhow::ensure!(
        !spec.preprocess.is_empty(),
        "no modality to load (text is not read from recordings)"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&spec.holdout),
        "holdout {} is not in [0, 1)",
        spec.holdout
    );
    anyhow::ensure!(
        spec.segment_s.is_finite() && spec.segment_s >= 1.0,
        "segment_s {} must be at least 1 s",
        spec.segment_s
    );
    spec.windows.validate().map_err(anyhow::Error::msg)?;
    let longest_ns = spec
        .preprocess
        .keys()
        .filter_map(|&m| m.sensor())
        .map(|m| (spec.windows.spec(m).length_s * 1e9) as u64)
        .max()
        .unwrap_or(0);
    let mut ds = Dataset {
        recordings: recordings.to_vec(),
        moments: Vec::new(),
        inputs: BTreeMap::new(),
        dropped: 0,
    };
    for (ri, path) in recordings.iter().enumerate() {
        let (streams, truth) = read_one(path, spec, &mut progress)?;
        // Moments: grid points every stream has.
        let mut points: Vec<u64> = streams[0].items.keys().copied().collect();
        points.retain(|t| streams.iter().all(|s| s.items.contains_key(t)));
        anyhow::ensure!(
            !points.is_empty(),
            "{}: no moment has a window of every modality ({}); is each stream in the recording?",
            path.display(),
            streams
                .iter()
                .map(|s| format!("{} {} windows", s.modality.as_str(), s.items.len()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let first = points[0].saturating_sub(longest_ns);
        let seg_ns = (spec.segment_s * 1e9) as u64;
        let period = if spec.holdout > 0.0 {
            (1.0 / spec.holdout).round().max(2.0) as u64
        } else {
            0
        };
        let split_at = |t: u64| {
            if period > 0 && ((t.saturating_sub(first)) / seg_ns) % period == period - 1 {
                Split::Val
            } else {
                Split::Train
            }
        };
        for &t in &points {
            let split = split_at(t);
            if split_at(t.saturating_sub(longest_ns)) != split {
                ds.dropped += 1;
                continue;
            }
            let label = truth
                .at(t.saturating_sub(500_000_000))
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            let clean = !truth.spans.is_empty()
                && truth
                    .constant_over(t.saturating_sub(longest_ns), t.saturating_sub(1))
                    .is_some();
            let stable_ns = truth
                .find(t.saturating_sub(1))
                .map_or(0, |s| t.saturating_sub(s.start_ns));
            ds.moments.push(MomentMeta {
                recording: ri,
                t_end: t,
                label,
                clean,
                stable_ns,
                split,
            });
            for s in &streams {
                let entry = ds.inputs.entry(s.modality).or_insert_with(|| Inputs {
                    item: s.item.clone(),
                    data: Vec::new(),
                });
                anyhow::ensure!(
                    entry.item == s.item,
                    "{}: {} items are {:?}, an earlier recording gave {:?}",
                    path.display(),
                    s.modality.as_str(),
                    s.item,
                    entry.item
                );
                entry.data.extend_from_slice(&s.items[&t]);
            }
        }
    }
    Ok(ds)
}

fn read_one(
    path: &Path,
    spec: &LoadSpec,
    progress: &mut impl FnMut(&Path, u64, u64),
) -> anyhow::Result<(Vec<Stream>, Truth)> {
    let err = |d: String| anyhow::anyhow!("{}: {d}", path.display());
    let total = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    let mut reader = McapReader::open(path).map_err(|e| err(e.to_string()))?;
    let mut streams = Vec::new();
    for (&m, p) in &spec.preprocess {
        let sm = m
            .sensor()
            .ok_or_else(|| err(format!("{} is not a sensor modality", m.as_str())))?;
        streams.push(Stream {
            modality: m,
            windower: Windower::new(sm, spec.windows.spec(sm))
                .and_then(|w| w.with_clip_frames(p.clip_s(), p.frames()))
                .map_err(|e| err(e.to_string()))?,
            pre: Preprocessor::new(p)
                .map_err(|e| err(format!("{} preprocessing: {e}", m.as_str())))?,
            sample: Sample::empty(sm),
            windows: Vec::new(),
            items: BTreeMap::new(),
            item: Vec::new(),
        });
    }
    let mut truth = Truth::default();
    let mut n = 0u64;
    while let Some(msg) = reader.next_message().map_err(|e| err(e.to_string()))? {
        n += 1;
        if n.is_multiple_of(4096) {
            progress(path, msg.offset, total);
        }
        let Some(sm) = msg.channel.modality else {
            if msg.channel.topic == TRUTH_TOPIC {
                truth.spans.push(
                    parse_truth(msg.data)
                        .map_err(|d| err(format!("ground truth at byte {}: {d}", msg.offset)))?,
                );
            }
            continue;
        };
        let Some(s) = streams.iter_mut().find(|s| s.modality.sensor() == Some(sm)) else {
            continue;
        };
        decode_sample(path, &msg, &mut s.sample).map_err(|e| err(e.to_string()))?;
        s.windower
            .push(&s.sample, &mut s.windows)
            .map_err(|e| err(format!("{sm} windowing: {e}")))?;
        take_windows(s).map_err(&err)?;
    }
    for s in &mut streams {
        s.windower.finish(&mut s.windows);
        take_windows(s).map_err(&err)?;
    }
    progress(path, total, total);
    truth.spans.sort_by_key(|s| s.start_ns);
    Ok((streams, truth))
}

fn take_windows(s: &mut Stream) -> Result<(), String> {
    for w in s.windows.drain(..) {
        let mut items = s.pre.window(&w).map_err(|e| {
            format!(
                "{} window ending at {} ns: {e}",
                s.modality.as_str(),
                w.t_end
            )
        })?;
        if items.len() != 1 {
            return Err(format!(
                "{} preprocessing gives {} items per window; training needs one \
                 (set the contract's audio clips to 1)",
                s.modality.as_str(),
                items.len()
            ));
        }
        let t = items.pop().expect("one item");
        if s.item.is_empty() {
            s.item = t.shape.clone();
        }
        s.items.insert(w.t_end, t.data);
    }
    Ok(())
}

fn parse_truth(data: &[u8]) -> Result<TruthSpan, String> {
    let mut t = TruthSpan::parse(data)?;
    t.situations.sort();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(a: u64, b: u64, s: &[&str]) -> TruthSpan {
        TruthSpan {
            start_ns: a,
            end_ns: b,
            situations: s.iter().map(|x| x.to_string()).collect(),
        }
    }

    #[test]
    fn truth_lookup_and_constancy() {
        let t = Truth {
            spans: vec![
                span(0, 10, &["a"]),
                span(10, 20, &["a", "b"]),
                span(25, 30, &["c"]),
            ],
        };
        assert_eq!(t.at(0).unwrap(), ["a"]);
        assert_eq!(t.at(9).unwrap(), ["a"]);
        assert_eq!(t.at(10).unwrap(), ["a", "b"]);
        assert!(t.at(22).is_none());
        assert!(t.at(30).is_none());
        assert!(t.constant_over(2, 9).is_some());
        assert!(t.constant_over(2, 10).is_none());
        assert_eq!(t.constant_over(11, 19).unwrap(), ["a", "b"]);
    }

    #[test]
    fn bad_truth_is_an_error() {
        assert!(parse_truth(b"{}").is_err());
        assert!(parse_truth(br#"{"start_ns":5,"end_ns":1,"situations":[]}"#).is_err());
        let s = parse_truth(br#"{"start_ns":1,"end_ns":5,"situations":["z","a"]}"#).unwrap();
        assert_eq!(s.situations, ["a", "z"]);
    }
}
