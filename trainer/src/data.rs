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

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
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
///
/// A clip item (`[C, T, H, W]`, `T` > 1) is stored as its `T` frames, each
/// kept once however many moments share it: with moments 1 s apart, a
/// 7-frame clip 0.5 s apart shares each frame with about three neighbours,
/// so the store holds 2 frames a second instead of 7 (4.7 GB instead of
/// 16.5 GB for 48,000 s of a 64 x 64 camera as f32). Frames are matched by
/// content (a hash, then an exact comparison), so a row reads back bit for
/// bit what preprocessing gave: plans train to the same weights as with
/// one full copy per row. Any other item is one part per row.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Shape of one item (the encoder input without the batch).
    pub item: Vec<usize>,
    /// Distinct parts (frames), `part_len` values each.
    pool: Vec<f32>,
    /// `parts` indices into `pool` per row.
    index: Vec<u32>,
    /// Hash of a part's bits -> the parts with that hash (loading only).
    seen: HashMap<u64, Vec<u32>>,
}

impl Inputs {
    /// An empty store for items of shape `item`.
    pub fn new(item: Vec<usize>) -> Inputs {
        Inputs {
            item,
            pool: Vec::new(),
            index: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Values per item.
    pub fn item_len(&self) -> usize {
        self.item.iter().product()
    }

    /// Parts per row: the frames of a clip, else 1.
    pub fn parts(&self) -> usize {
        match self.item.as_slice() {
            [_, t, _, _] if *t > 1 => *t,
            _ => 1,
        }
    }

    /// `(parts, channels, plane)`: a clip's frames, its channels and the
    /// values of one channel of one frame; anything else is one part of
    /// one "channel" holding the whole item.
    fn layout(&self) -> (usize, usize, usize) {
        match self.parts() {
            1 => (1, 1, self.item_len()),
            t => (t, self.item[0], self.item_len() / (t * self.item[0])),
        }
    }

    fn part_len(&self) -> usize {
        self.item_len() / self.parts()
    }

    /// Rows stored.
    pub fn rows(&self) -> usize {
        self.index.len() / self.parts()
    }

    /// Distinct parts held (frames of clips).
    pub fn distinct_parts(&self) -> usize {
        self.pool.len() / self.part_len().max(1)
    }

    /// Bytes of input held.
    pub fn bytes(&self) -> usize {
        self.pool.len() * 4 + self.index.len() * 4
    }

    /// Stores one item's parts (deduplicated) and returns their indices;
    /// [`Inputs::push_row`] makes them a row.
    pub fn intern(&mut self, item: &[f32]) -> Result<Vec<u32>, String> {
        if item.len() != self.item_len() {
            return Err(format!(
                "an item of {} values where {:?} takes {}",
                item.len(),
                self.item,
                self.item_len()
            ));
        }
        if item.is_empty() {
            return Err(format!("an empty item ({:?})", self.item));
        }
        let (parts, channels, plane) = self.layout();
        let mut part = Vec::with_capacity(channels * plane);
        let mut ids = Vec::with_capacity(parts);
        for k in 0..parts {
            part.clear();
            // Part k of a [C, T, ...] item: plane k of every channel.
            for c in 0..channels {
                let at = (c * parts + k) * plane;
                part.extend_from_slice(&item[at..at + plane]);
            }
            ids.push(self.intern_part(&part)?);
        }
        Ok(ids)
    }

    fn intern_part(&mut self, part: &[f32]) -> Result<u32, String> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for v in part {
            v.to_bits().hash(&mut h);
        }
        let key = h.finish();
        let len = part.len();
        let same = |pool: &[f32], id: u32| {
            let at = id as usize * len;
            pool[at..at + len]
                .iter()
                .zip(part)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        };
        if let Some(ids) = self.seen.get(&key)
            && let Some(&id) = ids.iter().find(|&&id| same(&self.pool, id))
        {
            return Ok(id);
        }
        let id = u32::try_from(self.pool.len() / len)
            .map_err(|_| "more than 2^32 distinct frames in one modality".to_string())?;
        self.pool.extend_from_slice(part);
        self.seen.entry(key).or_default().push(id);
        Ok(id)
    }

    /// Appends a row of parts from [`Inputs::intern`].
    pub fn push_row(&mut self, ids: &[u32]) {
        assert_eq!(ids.len(), self.parts(), "a row takes one index per part");
        self.index.extend_from_slice(ids);
    }

    /// Stores one item as a new row.
    pub fn push(&mut self, item: &[f32]) -> Result<(), String> {
        let ids = self.intern(item)?;
        self.push_row(&ids);
        Ok(())
    }

    /// Drops the loading-time lookup (call when no more rows come).
    pub fn seal(&mut self) {
        self.seen = HashMap::new();
        self.pool.shrink_to_fit();
        self.index.shrink_to_fit();
    }

    /// Appends row `i` (the item as preprocessing gave it) to `out`.
    pub fn row_into(&self, i: usize, out: &mut Vec<f32>) {
        let (parts, channels, plane) = self.layout();
        let ids = &self.index[i * parts..(i + 1) * parts];
        for c in 0..channels {
            for &id in ids {
                let at = (id as usize * channels + c) * plane;
                out.extend_from_slice(&self.pool[at..at + plane]);
            }
        }
    }

    /// Row `i`, as a new vector.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.item_len());
        self.row_into(i, &mut v);
        v
    }

    /// `enc`'s embeddings of the given rows, in order (64 items per call).
    pub fn embed(&self, enc: &dyn Encoder, rows: &[usize]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(64) {
            let items: Vec<ItemTensor> = chunk
                .iter()
                .map(|&i| ItemTensor::new(self.item.clone(), self.row(i)))
                .collect();
            out.extend(enc.encode(&items)?.into_iter().map(|e| e.vector));
        }
        Ok(out)
    }
}

impl PartialEq for Inputs {
    /// Same shape, same rows (the loading-time lookup aside).
    fn eq(&self, o: &Inputs) -> bool {
        self.item == o.item
            && self.index == o.index
            && self.pool.len() == o.pool.len()
            && self
                .pool
                .iter()
                .zip(&o.pool)
                .all(|(a, b)| a.to_bits() == b.to_bits())
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
    /// Window end -> its parts in the modality's [`Inputs`].
    items: BTreeMap<u64, Vec<u32>>,
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
        let (streams, truth) = read_one(path, spec, &mut ds.inputs, &mut progress)?;
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
                let store = ds.inputs.get_mut(&s.modality).expect("made by its windows");
                store.push_row(&s.items[&t]);
            }
        }
    }
    for store in ds.inputs.values_mut() {
        store.seal();
    }
    Ok(ds)
}

fn read_one(
    path: &Path,
    spec: &LoadSpec,
    stores: &mut BTreeMap<ContractModality, Inputs>,
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
        take_windows(s, stores).map_err(&err)?;
    }
    for s in &mut streams {
        s.windower.finish(&mut s.windows);
        take_windows(s, stores).map_err(&err)?;
    }
    progress(path, total, total);
    truth.spans.sort_by_key(|s| s.start_ns);
    Ok((streams, truth))
}

fn take_windows(
    s: &mut Stream,
    stores: &mut BTreeMap<ContractModality, Inputs>,
) -> Result<(), String> {
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
        let store = stores
            .entry(s.modality)
            .or_insert_with(|| Inputs::new(t.shape.clone()));
        if store.item != t.shape {
            return Err(format!(
                "{} items are {:?} at {} ns, earlier ones were {:?}",
                s.modality.as_str(),
                t.shape,
                w.t_end,
                store.item
            ));
        }
        let ids = store.intern(&t.data).map_err(|e| {
            format!(
                "{} window ending at {} ns: {e}",
                s.modality.as_str(),
                w.t_end
            )
        })?;
        s.items.insert(w.t_end, ids);
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

    /// A `[2, 3, 2, 2]` clip whose frame k of channel c is filled with
    /// `frames[k] * 10 + c` (plus the pixel index / 100).
    fn clip(frames: [f32; 3]) -> Vec<f32> {
        let mut v = Vec::new();
        for c in 0..2 {
            for f in frames {
                v.extend((0..4).map(|p| f * 10.0 + c as f32 + p as f32 / 100.0));
            }
        }
        v
    }

    #[test]
    fn clips_share_frames_and_read_back_bit_for_bit() {
        let mut s = Inputs::new(vec![2, 3, 2, 2]);
        assert_eq!(s.parts(), 3);
        // Three moments, each one frame later: frames 1..=5 distinct.
        let rows = [
            clip([1.0, 2.0, 3.0]),
            clip([2.0, 3.0, 4.0]),
            clip([3.0, 4.0, 5.0]),
        ];
        for r in &rows {
            s.push(r).unwrap();
        }
        assert_eq!(s.rows(), 3);
        assert_eq!(s.distinct_parts(), 5);
        assert_eq!(s.bytes(), 5 * 8 * 4 + 9 * 4);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&s.row(i), r, "row {i}");
        }
        // row_into appends after what is there.
        let mut out = vec![7.0];
        s.row_into(1, &mut out);
        assert_eq!(out[0], 7.0);
        assert_eq!(&out[1..], &rows[1][..]);
        // The same frame in another position is still one part.
        s.push(&clip([5.0, 1.0, 5.0])).unwrap();
        assert_eq!(s.distinct_parts(), 5);
        assert_eq!(s.row(3), clip([5.0, 1.0, 5.0]));
        s.seal();
        assert_eq!(s.row(0), rows[0]);
    }

    #[test]
    fn parts_match_by_bits_not_by_value() {
        // 0.0 and -0.0 compare equal as numbers; the store keeps both, so
        // a row is exactly what preprocessing gave.
        let mut s = Inputs::new(vec![1, 2]);
        assert_eq!(s.parts(), 1);
        s.push(&[0.0, 1.0]).unwrap();
        s.push(&[-0.0, 1.0]).unwrap();
        s.push(&[0.0, 1.0]).unwrap();
        assert_eq!(s.distinct_parts(), 2);
        assert_eq!(s.row(1)[0].to_bits(), (-0.0f32).to_bits());
        assert_eq!(s.row(2)[0].to_bits(), 0.0f32.to_bits());
        // A single-frame image is one part.
        assert_eq!(Inputs::new(vec![3, 1, 4, 4]).parts(), 1);
        assert_eq!(Inputs::new(vec![3, 4, 4]).parts(), 1);
    }

    #[test]
    fn a_wrong_sized_item_is_refused() {
        let mut s = Inputs::new(vec![2, 3, 2, 2]);
        let e = s.push(&[1.0; 23]).unwrap_err();
        assert!(e.contains("23 values") && e.contains("24"), "{e}");
        assert_eq!(s.rows(), 0);
        // An empty shape is refused, not divided by.
        let mut z = Inputs::new(vec![0, 3, 2, 2]);
        assert!(z.push(&[]).unwrap_err().contains("empty"));
        assert_eq!(z.distinct_parts(), 0);
    }

    #[test]
    fn bad_truth_is_an_error() {
        assert!(parse_truth(b"{}").is_err());
        assert!(parse_truth(br#"{"start_ns":5,"end_ns":1,"situations":[]}"#).is_err());
        let s = parse_truth(br#"{"start_ns":1,"end_ns":5,"situations":["z","a"]}"#).unwrap();
        assert_eq!(s.situations, ["a", "z"]);
    }
}
