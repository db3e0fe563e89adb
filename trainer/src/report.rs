//! Evaluation metrics over embeddings, the numbers ImageBind reports for a
//! bound space: pure functions of an [`EvalSet`] (per modality one unit
//! embedding per evaluation moment, plus each moment's label set) and the
//! per-class text classifiers. No model code runs here.
//!
//! # Definitions
//!
//! * **Text classifiers** ([`class_embeddings`]): the mean of a class's
//!   paraphrase embeddings, renormalised to unit length.
//! * **Zero-shot top-1** ([`zero_shot_top1`]): a moment's prediction is the
//!   class with the highest cosine to its embedding (ties go to the lower
//!   class index); it is correct if that class is in the moment's label set.
//!   [`confusion`] counts `[primary label][prediction]`, the primary label
//!   being the first in the set.
//! * **Cross-modal retrieval** ([`retrieval`]), for every ordered pair
//!   `a != b` of the modalities present (key `"a->b"`): the query is moment
//!   i's embedding in `a`; the gallery is every moment's embedding in `b`,
//!   moment i included (its paired item is a correct hit). Gallery items are
//!   ranked by cosine, ties broken by the lower moment index. A retrieved
//!   item is correct if its label set intersects the query's. R@1 / R@5 are
//!   the fractions of queries with a correct item in the top 1 / top 5.
//! * **Chance** ([`chance`]): zero-shot chance is the mean over moments of
//!   `|labels| / S`; retrieval chance (for R@1) is the mean over queries of
//!   the fraction of gallery items that are correct.
//! * **Embedding arithmetic** ([`arithmetic`]): for each ordered class pair
//!   `(x, y)`, `x != y`, such that some moments are labelled exactly `{x}`,
//!   some exactly `{y}`, and at least one moment's labels contain both: the
//!   first `min(5, #{x}, #{y})` `{x}`-only moments are zipped with the first
//!   `{y}`-only moments; each pair gives the query
//!   `normalise(e_a(x-moment) + e_b(y-moment))`. The gallery is every moment's
//!   fused embedding, `normalise(sum over all modalities)`. Precision@k is
//!   the fraction of the top k (ties to the lower index) whose labels contain
//!   both x and y; the same is measured for `e_a` and `e_b` alone, next to the
//!   base rate (fraction of the gallery containing both). A query whose sum is
//!   the zero vector is skipped.
//!
//! Dot products accumulate in f64 (embeddings are converted once and
//! renormalised, so scores are exact cosines). The N x N similarity blocks go
//! through candle's CPU matmul (f64, `gemm`), a block of query rows at a time;
//! each block serves both `a->b` (rows) and `b->a` (columns), so the 20
//! ordered pairs of 5 modalities cost 10 products. Nothing is allocated per
//! query: a fixed top-5 is kept per query while its row streams past.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Retrieval depth of R@5; also the number of query pairs per class pair in
/// [`arithmetic`].
const TOP: usize = 5;
/// Precision@k used by [`Report::build`] for embedding arithmetic.
pub const ARITHMETIC_K: usize = 5;
/// Query rows per similarity block (rows x N f64 in memory at once).
const BLOCK_ROWS: usize = 256;

/// Bad input to a metric: never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is empty")]
    Empty(String),
    #[error("{what}: {got} entries, expected {expected}")]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("{what}: dimension {got}, expected {expected}")]
    Dimension {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("{0} has a non-finite value")]
    NonFinite(String),
    #[error("{0} is the zero vector")]
    ZeroVector(String),
    #[error("{what}: label {label} out of range for {classes} classes")]
    Label {
        what: String,
        label: usize,
        classes: usize,
    },
    #[error("modality {0:?} is not in the set")]
    UnknownModality(String),
    #[error("similarity computation: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for ReportError {
    fn from(e: candle_core::Error) -> Self {
        ReportError::Compute(e.to_string())
    }
}

/// What evaluation runs on: per modality one unit embedding per moment, and
/// each moment's active classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    /// Class ids; index = class.
    pub situations: Vec<String>,
    /// Per moment: active class indices (non-empty, sorted; the first is the
    /// primary label used by [`confusion`]).
    pub labels: Vec<Vec<usize>>,
    /// Modality name -> per moment `[D]`, unit length.
    pub embeddings: BTreeMap<String, Vec<Vec<f32>>>,
}

impl EvalSet {
    /// Checks the set and returns the embedding dimension: at least one
    /// moment, class and modality; every label set non-empty and in range;
    /// every modality with one finite, non-zero vector per moment, all of one
    /// dimension.
    pub fn validate(&self) -> Result<usize, ReportError> {
        if self.situations.is_empty() {
            return Err(ReportError::Empty("situations".into()));
        }
        check_labels(&self.labels, self.situations.len())?;
        if self.embeddings.is_empty() {
            return Err(ReportError::Empty("embeddings".into()));
        }
        let mut dim = None;
        for (name, rows) in &self.embeddings {
            if rows.len() != self.labels.len() {
                return Err(ReportError::Length {
                    what: format!("embeddings[{name}]"),
                    expected: self.labels.len(),
                    got: rows.len(),
                });
            }
            let d = check_vectors(rows, &format!("embeddings[{name}]"), dim)?;
            dim = Some(d);
        }
        dim.ok_or_else(|| ReportError::Empty("embeddings".into()))
    }

    /// Number of moments.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No moments.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Per-class text classifier: mean of the paraphrase embeddings,
/// renormalised. `prompts[c]` = embeddings of class c's paraphrases.
pub fn class_embeddings(prompts: &[Vec<Vec<f32>>]) -> Result<Vec<Vec<f32>>, ReportError> {
    if prompts.is_empty() {
        return Err(ReportError::Empty("prompts".into()));
    }
    let mut dim = None;
    let mut out = Vec::with_capacity(prompts.len());
    for (c, paraphrases) in prompts.iter().enumerate() {
        let what = format!("prompts[{c}]");
        let d = check_vectors(paraphrases, &what, dim)?;
        dim = Some(d);
        let mut mean = vec![0f64; d];
        for p in paraphrases {
            for (m, &x) in mean.iter_mut().zip(p) {
                *m += f64::from(x);
            }
        }
        let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Err(ReportError::ZeroVector(format!("mean of {what}")));
        }
        out.push(mean.iter().map(|x| (x / norm) as f32).collect());
    }
    Ok(out)
}

/// Zero-shot prediction per moment: the class of highest cosine, ties to the
/// lower class index.
pub fn predict(emb: &[Vec<f32>], classes: &[Vec<f32>]) -> Result<Vec<usize>, ReportError> {
    if classes.is_empty() {
        return Err(ReportError::Empty("classes".into()));
    }
    let d = check_vectors(classes, "classes", None)?;
    check_vectors(emb, "embeddings", Some(d))?;
    let classes = normalised_f64(classes);
    let mut q = vec![0f64; d];
    let mut out = Vec::with_capacity(emb.len());
    for e in emb {
        for (qi, &x) in q.iter_mut().zip(e) {
            *qi = f64::from(x);
        }
        let mut best = (0, f64::NEG_INFINITY);
        for (c, cls) in classes.chunks_exact(d).enumerate() {
            let s = dot(&q, cls);
            if s > best.1 {
                best = (c, s);
            }
        }
        out.push(best.0);
    }
    Ok(out)
}

/// [`predict`] for moments with labels: checks that they pair first.
fn predict_labelled(
    emb: &[Vec<f32>],
    labels: &[Vec<usize>],
    classes: &[Vec<f32>],
) -> Result<Vec<usize>, ReportError> {
    check_pairing(emb, labels, classes.len())?;
    predict(emb, classes)
}

/// Zero-shot top-1 of one modality: argmax cosine over classes; correct if
/// the argmax is in the moment's label set.
pub fn zero_shot_top1(
    emb: &[Vec<f32>],
    labels: &[Vec<usize>],
    classes: &[Vec<f32>],
) -> Result<f64, ReportError> {
    Ok(top1_of(&predict_labelled(emb, labels, classes)?, labels))
}

/// Top-1 of predictions already made (right: any of the moment's labels).
fn top1_of(pred: &[usize], labels: &[Vec<usize>]) -> f64 {
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(p, l)| l.contains(p))
        .count();
    hits as f64 / labels.len() as f64
}

/// Zero-shot top-1 per situation: for each class, `[right, moments]` over
/// the moments whose primary (first) label it is, a moment being right when
/// its prediction is any of its labels (as [`zero_shot_top1`] counts it). So
/// the rights summed over the moments summed is [`zero_shot_top1`], and a
/// class that is never a primary label has `[0, 0]`.
pub fn by_situation(
    emb: &[Vec<f32>],
    labels: &[Vec<usize>],
    classes: &[Vec<f32>],
) -> Result<Vec<[u64; 2]>, ReportError> {
    Ok(by_situation_of(
        &predict_labelled(emb, labels, classes)?,
        labels,
        classes.len(),
    ))
}

fn by_situation_of(pred: &[usize], labels: &[Vec<usize>], classes: usize) -> Vec<[u64; 2]> {
    let mut out = vec![[0u64; 2]; classes];
    for (p, l) in pred.iter().zip(labels) {
        let row = &mut out[l[0]];
        row[0] += u64::from(l.contains(p));
        row[1] += 1;
    }
    out
}

/// Confusion counts `[true primary class][predicted]` (primary = first
/// label), `classes.len()` square.
pub fn confusion(
    emb: &[Vec<f32>],
    labels: &[Vec<usize>],
    classes: &[Vec<f32>],
) -> Result<Vec<Vec<u64>>, ReportError> {
    Ok(confusion_of(
        &predict_labelled(emb, labels, classes)?,
        labels,
        classes.len(),
    ))
}

fn confusion_of(pred: &[usize], labels: &[Vec<usize>], s: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; s]; s];
    for (p, l) in pred.iter().zip(labels) {
        m[l[0]][*p] += 1;
    }
    m
}

/// R@1 and R@5 per ordered modality pair, keys `"a->b"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    pub r1: BTreeMap<String, f64>,
    pub r5: BTreeMap<String, f64>,
}

/// Class-level cross-modal retrieval over every ordered pair of the set's
/// modalities (see the module doc). A set with one modality gives empty maps.
pub fn retrieval(set: &EvalSet) -> Result<Retrieval, ReportError> {
    let p = Prepared::new(set)?;
    p.retrieval()
}

/// Chance levels of the zero-shot and retrieval metrics for this set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Chance {
    /// Mean over moments of `|labels| / S`.
    pub zero_shot: f64,
    /// Mean over queries of the fraction of gallery items that are correct.
    pub retrieval_r1: f64,
}

/// Chance levels (see [`Chance`]); needs only the labels.
pub fn chance(set: &EvalSet) -> Result<Chance, ReportError> {
    if set.situations.is_empty() {
        return Err(ReportError::Empty("situations".into()));
    }
    check_labels(&set.labels, set.situations.len())?;
    let labels = LabelSets::new(&set.labels, set.situations.len());
    Ok(labels.chance())
}

/// One embedding-arithmetic check (see the module doc): queries
/// `normalise(e_a + e_b)` against the fused gallery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArithmeticResult {
    /// Modality of the `{x}` half of each query.
    pub a: String,
    /// Modality of the `{y}` half.
    pub b: String,
    pub k: usize,
    /// Qualifying class pairs, `"x+y"`.
    pub class_pairs: Vec<String>,
    /// Number of queries (0: nothing qualified; see `skipped`).
    pub queries: usize,
    /// Mean precision@k of `normalise(e_a + e_b)`.
    pub precision_at_k: f64,
    /// Mean precision@k of `e_a` alone.
    pub precision_a_only: f64,
    /// Mean precision@k of `e_b` alone.
    pub precision_b_only: f64,
    /// Fraction of the gallery containing both classes, averaged over the
    /// same queries.
    pub base_rate: f64,
    /// Why there are no queries, when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl ArithmeticResult {
    fn empty(a: &str, b: &str, k: usize, why: String) -> Self {
        ArithmeticResult {
            a: a.into(),
            b: b.into(),
            k,
            skipped: Some(why),
            ..Default::default()
        }
    }
}

/// Embedding arithmetic `a + b` with precision@k (see the module doc).
/// Never fails: bad input or nothing to test gives `queries == 0` with the
/// reason in `skipped`.
pub fn arithmetic(set: &EvalSet, a: &str, b: &str, k: usize) -> ArithmeticResult {
    match Prepared::new(set) {
        Ok(p) => p.arithmetic(a, b, k),
        Err(e) => ArithmeticResult::empty(a, b, k, e.to_string()),
    }
}

/// Everything the evaluation reports, as written to `report.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Number of evaluation moments.
    pub moments: usize,
    /// Class ids, index = class.
    pub situations: Vec<String>,
    /// Modality -> zero-shot top-1 of the emergent (bound) encoders.
    pub zero_shot_top1: BTreeMap<String, f64>,
    /// `"a->b"` -> R@1.
    pub retrieval_r1: BTreeMap<String, f64>,
    /// `"a->b"` -> R@5.
    pub retrieval_r5: BTreeMap<String, f64>,
    /// Modality -> zero-shot top-1 of encoders trained directly with text.
    #[serde(default)]
    pub paired_zero_shot_top1: BTreeMap<String, f64>,
    /// Modality -> emergent / paired zero-shot, where both exist and paired > 0.
    #[serde(default)]
    pub emergent_over_paired: BTreeMap<String, f64>,
    pub chance: Chance,
    /// Modality -> `[primary label][prediction]` counts.
    pub confusion: BTreeMap<String, Vec<Vec<u64>>>,
    /// Modality -> per situation `[right, moments]` of the emergent
    /// encoders' zero-shot top-1 ([`by_situation`]: which situations a
    /// modality misses). Absent from reports written before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zero_shot_by_situation: BTreeMap<String, Vec<[u64; 2]>>,
    /// One result per unordered modality pair (a < b by name).
    #[serde(default)]
    pub arithmetic: Vec<ArithmeticResult>,
    /// Multi-clip span (s) of the embeddings scored above (0: one clip per
    /// modality; see `edgebind-train eval --clip-span-s`).
    #[serde(default)]
    pub clip_span_s: f64,
    /// With a multi-clip span: the emergent encoders' zero-shot top-1 on
    /// each moment's own clip alone, for comparison.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub single_clip_zero_shot_top1: BTreeMap<String, f64>,
    /// Modality -> zero-shot top-1 of the supervised ceiling (the same
    /// encoder trained on the situation labels, `[train]
    /// supervised_ceiling`), where one was evaluated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub supervised_zero_shot_top1: BTreeMap<String, f64>,
    /// Modality -> emergent / supervised zero-shot, where both exist and
    /// supervised > 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub emergent_over_supervised: BTreeMap<String, f64>,
    /// Modality -> the supervised ceiling's `[primary label][prediction]` counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub supervised_confusion: BTreeMap<String, Vec<Vec<u64>>>,
    /// Encoder (`vision`, `paired/audio`, `supervised/imu`, ...) -> `|mu|` of
    /// the mean it was re-centred on (`edgebind-train center`); encoders
    /// that were not centred are absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub centred: BTreeMap<String, f32>,
}

impl Report {
    /// Fills every field from the set, the class classifiers and, where
    /// given, the set embedded by text-paired encoders (same classes).
    pub fn build(
        set: &EvalSet,
        classes: &[Vec<f32>],
        paired: Option<&EvalSet>,
    ) -> Result<Report, ReportError> {
        let p = Prepared::new(set)?;
        if classes.len() != set.situations.len() {
            return Err(ReportError::Length {
                what: "classes".into(),
                expected: set.situations.len(),
                got: classes.len(),
            });
        }
        check_vectors(classes, "classes", Some(p.dim))?;
        let mut emergent = BTreeMap::new();
        let mut confusions = BTreeMap::new();
        let mut per_situation = BTreeMap::new();
        for (name, emb) in &set.embeddings {
            // One prediction per moment, scored three ways.
            let pred = predict_labelled(emb, &set.labels, classes)?;
            emergent.insert(name.clone(), top1_of(&pred, &set.labels));
            confusions.insert(
                name.clone(),
                confusion_of(&pred, &set.labels, classes.len()),
            );
            per_situation.insert(
                name.clone(),
                by_situation_of(&pred, &set.labels, classes.len()),
            );
        }
        let mut paired_zero_shot_top1 = BTreeMap::new();
        let mut emergent_over_paired = BTreeMap::new();
        if let Some(paired) = paired {
            let pd = paired.validate()?;
            if paired.situations != set.situations {
                return Err(ReportError::Length {
                    what: "paired set situations (must equal the set's)".into(),
                    expected: set.situations.len(),
                    got: paired.situations.len(),
                });
            }
            if pd != p.dim {
                return Err(ReportError::Dimension {
                    what: "paired set embeddings".into(),
                    expected: p.dim,
                    got: pd,
                });
            }
            for (name, emb) in &paired.embeddings {
                let acc = zero_shot_top1(emb, &paired.labels, classes)?;
                paired_zero_shot_top1.insert(name.clone(), acc);
                if let Some(&em) = emergent.get(name)
                    && acc > 0.0
                {
                    emergent_over_paired.insert(name.clone(), em / acc);
                }
            }
        }
        let Retrieval { r1, r5 } = p.retrieval()?;
        let names: Vec<&String> = set.embeddings.keys().collect();
        let mut arithmetic = Vec::new();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                arithmetic.push(p.arithmetic(a, b, ARITHMETIC_K));
            }
        }
        Ok(Report {
            moments: set.len(),
            situations: set.situations.clone(),
            zero_shot_top1: emergent,
            retrieval_r1: r1,
            retrieval_r5: r5,
            paired_zero_shot_top1,
            emergent_over_paired,
            chance: p.labels.chance(),
            confusion: confusions,
            zero_shot_by_situation: per_situation,
            arithmetic,
            clip_span_s: 0.0,
            single_clip_zero_shot_top1: BTreeMap::new(),
            supervised_zero_shot_top1: BTreeMap::new(),
            emergent_over_supervised: BTreeMap::new(),
            supervised_confusion: BTreeMap::new(),
            centred: BTreeMap::new(),
        })
    }

    /// Adds the supervised ceiling: `sup` holds the same moments (labels,
    /// situations) embedded by encoders trained on the labels.
    pub fn add_supervised(
        &mut self,
        set: &EvalSet,
        sup: &EvalSet,
        classes: &[Vec<f32>],
    ) -> Result<(), ReportError> {
        sup.validate()?;
        if sup.situations != set.situations || sup.labels != set.labels {
            return Err(ReportError::Length {
                what: "supervised set moments (must equal the set's)".into(),
                expected: set.labels.len(),
                got: sup.labels.len(),
            });
        }
        for (name, emb) in &sup.embeddings {
            let pred = predict_labelled(emb, &sup.labels, classes)?;
            let acc = top1_of(&pred, &sup.labels);
            self.supervised_zero_shot_top1.insert(name.clone(), acc);
            self.supervised_confusion.insert(
                name.clone(),
                confusion_of(&pred, &sup.labels, classes.len()),
            );
            if let Some(&em) = self.zero_shot_top1.get(name)
                && acc > 0.0
            {
                self.emergent_over_supervised.insert(name.clone(), em / acc);
            }
        }
        Ok(())
    }

    /// Human-readable failures of the bars (empty = all met): every
    /// modality's zero-shot top-1 >= `zero_shot_min`, every pair's R@1 >=
    /// `r1_min`, and for each of `ratio_modalities` an emergent/paired ratio
    /// >= `ratio_min` (a missing ratio fails). NaN never meets a bar.
    pub fn check_bars(
        &self,
        zero_shot_min: f64,
        r1_min: f64,
        ratio_min: f64,
        ratio_modalities: &[&str],
    ) -> Vec<String> {
        let mut fails = Vec::new();
        if self.zero_shot_top1.is_empty() {
            fails.push("no zero-shot results".to_string());
        }
        for (m, &v) in &self.zero_shot_top1 {
            if !meets(v, zero_shot_min) {
                fails.push(format!(
                    "zero-shot top-1 of {m} is {v:.3}, below the bar {zero_shot_min:.3}"
                ));
            }
        }
        for (pair, &v) in &self.retrieval_r1 {
            if !meets(v, r1_min) {
                fails.push(format!(
                    "retrieval R@1 {pair} is {v:.3}, below the bar {r1_min:.3}"
                ));
            }
        }
        for &m in ratio_modalities {
            match self.emergent_over_paired.get(m) {
                Some(&r) if meets(r, ratio_min) => {}
                Some(&r) => fails.push(format!(
                    "emergent/paired zero-shot of {m} is {r:.3}, below the bar {ratio_min:.3}"
                )),
                None => fails.push(format!(
                    "emergent/paired zero-shot of {m} is missing (no paired result above 0)"
                )),
            }
        }
        fails
    }

    /// Plain-text summary for the terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mods: Vec<&String> = self.zero_shot_top1.keys().collect();
        let _ = writeln!(
            s,
            "evaluation: {} moments, {} situations",
            self.moments,
            self.situations.len()
        );
        let clips = if self.clip_span_s > 0.0 {
            format!("clips averaged over {} s", self.clip_span_s)
        } else {
            "one clip per modality".to_string()
        };
        let _ = writeln!(
            s,
            "\nzero-shot top-1 ({clips}; chance {:.3})",
            self.chance.zero_shot
        );
        let _ = writeln!(
            s,
            "  {:<12} {:>9} {:>9} {:>7} {:>12} {:>11}",
            "modality", "emergent", "paired", "ratio", "single clip", "supervised"
        );
        let opt = |v: Option<&f64>, prec: usize| match v {
            Some(v) => format!("{v:.prec$}"),
            None => "-".to_string(),
        };
        for m in &mods {
            let _ = writeln!(
                s,
                "  {:<12} {:>9.3} {:>9} {:>7} {:>12} {:>11}",
                m,
                self.zero_shot_top1[*m],
                opt(self.paired_zero_shot_top1.get(*m), 3),
                opt(self.emergent_over_paired.get(*m), 2),
                opt(self.single_clip_zero_shot_top1.get(*m), 3),
                opt(self.supervised_zero_shot_top1.get(*m), 3)
            );
        }
        if !self.centred.is_empty() {
            let list: Vec<String> = self
                .centred
                .iter()
                .map(|(e, n)| format!("{e} {n:.2}"))
                .collect();
            let _ = writeln!(s, "  re-centred on their mean (|mu|): {}", list.join(", "));
        }
        if !self.zero_shot_by_situation.is_empty() {
            let _ = writeln!(
                s,
                "\nzero-shot top-1 per situation (right / moments, by first label)"
            );
            let sw = self
                .situations
                .iter()
                .map(|x| x.len())
                .max()
                .unwrap_or(0)
                .max(9);
            let w = mods.iter().map(|m| m.len()).max().unwrap_or(0).max(9);
            let _ = write!(s, "  {:<sw$}", "situation");
            for m in &mods {
                let _ = write!(s, " {m:>w$}");
            }
            s.push('\n');
            for (c, name) in self.situations.iter().enumerate() {
                let _ = write!(s, "  {name:<sw$}");
                for m in &mods {
                    let cell = match self.zero_shot_by_situation.get(*m).and_then(|v| v.get(c)) {
                        Some([right, of]) => format!("{right}/{of}"),
                        None => "-".to_string(),
                    };
                    let _ = write!(s, " {cell:>w$}");
                }
                s.push('\n');
            }
        }
        for (title, map) in [("R@1", &self.retrieval_r1), ("R@5", &self.retrieval_r5)] {
            let _ = writeln!(
                s,
                "\nretrieval {title} (rows = query, columns = gallery; R@1 chance {:.3})",
                self.chance.retrieval_r1
            );
            let w = mods.iter().map(|m| m.len()).max().unwrap_or(0).max(7);
            let _ = write!(s, "  {:<w$}", "");
            for m in &mods {
                let _ = write!(s, " {m:>w$}");
            }
            s.push('\n');
            for a in &mods {
                let _ = write!(s, "  {a:<w$}");
                for b in &mods {
                    let cell = opt(map.get(&format!("{a}->{b}")), 3);
                    let _ = write!(s, " {cell:>w$}");
                }
                s.push('\n');
            }
        }
        if !self.arithmetic.is_empty() {
            let _ = writeln!(s, "\nembedding arithmetic (precision@k, fused gallery)");
            for r in &self.arithmetic {
                if r.queries == 0 {
                    let why = r.skipped.as_deref().unwrap_or("no qualifying class pairs");
                    let _ = writeln!(s, "  {}+{}: no queries ({why})", r.a, r.b);
                } else {
                    let _ = writeln!(
                        s,
                        "  {}+{}: {} queries over {} class pairs, P@{}: sum {:.3}, {} only {:.3}, {} only {:.3}, base rate {:.3}",
                        r.a,
                        r.b,
                        r.queries,
                        r.class_pairs.len(),
                        r.k,
                        r.precision_at_k,
                        r.a,
                        r.precision_a_only,
                        r.b,
                        r.precision_b_only,
                        r.base_rate
                    );
                }
            }
        }
        s
    }
}

// ---------------------------------------------------------------- internals

/// `value >= bar`; NaN never meets a bar.
fn meets(value: f64, bar: f64) -> bool {
    value >= bar
}

fn check_labels(labels: &[Vec<usize>], classes: usize) -> Result<(), ReportError> {
    if labels.is_empty() {
        return Err(ReportError::Empty("labels".into()));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() {
            return Err(ReportError::Empty(format!("labels[{i}]")));
        }
        if let Some(&bad) = l.iter().find(|&&c| c >= classes) {
            return Err(ReportError::Label {
                what: format!("labels[{i}]"),
                label: bad,
                classes,
            });
        }
    }
    Ok(())
}

fn check_pairing(
    emb: &[Vec<f32>],
    labels: &[Vec<usize>],
    classes: usize,
) -> Result<(), ReportError> {
    if classes == 0 {
        return Err(ReportError::Empty("classes".into()));
    }
    check_labels(labels, classes)?;
    if emb.len() != labels.len() {
        return Err(ReportError::Length {
            what: "embeddings".into(),
            expected: labels.len(),
            got: emb.len(),
        });
    }
    Ok(())
}

/// Non-empty list of finite, non-zero vectors of one dimension (`dim` if
/// given); returns the dimension.
fn check_vectors(rows: &[Vec<f32>], what: &str, dim: Option<usize>) -> Result<usize, ReportError> {
    let Some(first) = rows.first() else {
        return Err(ReportError::Empty(what.into()));
    };
    let d = dim.unwrap_or(first.len());
    if d == 0 {
        return Err(ReportError::Empty(format!("{what}[0]")));
    }
    for (i, r) in rows.iter().enumerate() {
        if r.len() != d {
            return Err(ReportError::Dimension {
                what: format!("{what}[{i}]"),
                expected: d,
                got: r.len(),
            });
        }
        if r.iter().any(|x| !x.is_finite()) {
            return Err(ReportError::NonFinite(format!("{what}[{i}]")));
        }
        if r.iter().all(|&x| x == 0.0) {
            return Err(ReportError::ZeroVector(format!("{what}[{i}]")));
        }
    }
    Ok(d)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rows converted to f64 and renormalised, flattened `[N * D]` (rows were
/// checked finite and non-zero).
fn normalised_f64(rows: &[Vec<f32>]) -> Vec<f64> {
    let d = rows.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(rows.len() * d);
    for r in rows {
        let start = out.len();
        out.extend(r.iter().map(|&x| f64::from(x)));
        normalise(&mut out[start..]);
    }
    out
}

/// Scales to unit length; false (and untouched) for the zero vector.
fn normalise(v: &mut [f64]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    for x in v {
        *x /= norm;
    }
    true
}

/// `queries [M, D] x gallery [N, D]^T` in f64 through candle's matmul,
/// returned row-major `[M * N]`.
fn similarities(queries: &[f64], gallery: &Tensor, d: usize) -> Result<Vec<f64>, ReportError> {
    let m = queries.len() / d;
    let q = Tensor::from_slice(queries, (m, d), &Device::Cpu)?;
    Ok(q.matmul(&gallery.t()?)?.flatten_all()?.to_vec1::<f64>()?)
}

/// The best `TOP` (index, score), best first; equal scores keep the earlier
/// pushed (pushes come in increasing index order, so ties go to the lower
/// index).
#[derive(Clone, Copy)]
struct TopK {
    idx: [usize; TOP],
    score: [f64; TOP],
    len: usize,
    cap: usize,
}

impl TopK {
    fn new(cap: usize) -> Self {
        TopK {
            idx: [0; TOP],
            score: [f64::NEG_INFINITY; TOP],
            len: 0,
            cap: cap.min(TOP),
        }
    }

    #[inline]
    fn push(&mut self, i: usize, s: f64) {
        if self.len == self.cap {
            if self.cap == 0 || s <= self.score[self.cap - 1] {
                return;
            }
            self.len -= 1;
        }
        let mut pos = self.len;
        while pos > 0 && self.score[pos - 1] < s {
            self.idx[pos] = self.idx[pos - 1];
            self.score[pos] = self.score[pos - 1];
            pos -= 1;
        }
        self.idx[pos] = i;
        self.score[pos] = s;
        self.len += 1;
    }

    fn items(&self) -> &[usize] {
        &self.idx[..self.len]
    }
}

/// Label sets as bitsets, `words` u64 per moment.
struct LabelSets {
    bits: Vec<u64>,
    words: usize,
    n: usize,
    classes: usize,
}

impl LabelSets {
    fn new(labels: &[Vec<usize>], classes: usize) -> Self {
        let words = classes.div_ceil(64).max(1);
        let mut bits = vec![0u64; labels.len() * words];
        for (i, l) in labels.iter().enumerate() {
            for &c in l {
                bits[i * words + c / 64] |= 1 << (c % 64);
            }
        }
        LabelSets {
            bits,
            words,
            n: labels.len(),
            classes,
        }
    }

    fn row(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    fn intersects(&self, i: usize, j: usize) -> bool {
        self.row(i).iter().zip(self.row(j)).any(|(a, b)| a & b != 0)
    }

    fn has(&self, i: usize, c: usize) -> bool {
        self.row(i)[c / 64] & (1 << (c % 64)) != 0
    }

    /// Means over moments, as exact counts over one division.
    fn chance(&self) -> Chance {
        let labels: u64 = (0..self.n)
            .map(|i| {
                self.row(i)
                    .iter()
                    .map(|w| u64::from(w.count_ones()))
                    .sum::<u64>()
            })
            .sum();
        let mut correct = 0u64;
        for i in 0..self.n {
            correct += (0..self.n).filter(|&j| self.intersects(i, j)).count() as u64;
        }
        let n = self.n as f64;
        Chance {
            zero_shot: labels as f64 / (n * self.classes as f64),
            retrieval_r1: correct as f64 / (n * n),
        }
    }
}

/// A validated set with its embeddings as normalised f64.
struct Prepared<'a> {
    set: &'a EvalSet,
    dim: usize,
    n: usize,
    names: Vec<&'a str>,
    /// Per modality (in `names` order) `[N * D]`.
    normed: Vec<Vec<f64>>,
    labels: LabelSets,
}

impl<'a> Prepared<'a> {
    fn new(set: &'a EvalSet) -> Result<Self, ReportError> {
        let dim = set.validate()?;
        let names: Vec<&str> = set.embeddings.keys().map(String::as_str).collect();
        let normed = set.embeddings.values().map(|e| normalised_f64(e)).collect();
        Ok(Prepared {
            set,
            dim,
            n: set.len(),
            names,
            normed,
            labels: LabelSets::new(&set.labels, set.situations.len()),
        })
    }

    fn modality(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|&m| m == name)
    }

    fn retrieval(&self) -> Result<Retrieval, ReportError> {
        let (n, d) = (self.n, self.dim);
        let mut out = Retrieval::default();
        for a in 0..self.names.len() {
            for b in a + 1..self.names.len() {
                let gallery = Tensor::from_slice(&self.normed[b], (n, d), &Device::Cpu)?;
                // b->a: query = column j, gallery = rows i, streamed in order.
                let mut cols = vec![TopK::new(n); n];
                let (mut ab1, mut ab5) = (0usize, 0usize);
                for start in (0..n).step_by(BLOCK_ROWS) {
                    let rows = BLOCK_ROWS.min(n - start);
                    let q = &self.normed[a][start * d..(start + rows) * d];
                    let sims = similarities(q, &gallery, d)?;
                    for (r, row) in sims.chunks_exact(n).enumerate() {
                        let i = start + r;
                        let mut top = TopK::new(n);
                        for (j, (&s, col)) in row.iter().zip(cols.iter_mut()).enumerate() {
                            top.push(j, s);
                            col.push(i, s);
                        }
                        let (h1, h5) = self.hits(i, &top);
                        ab1 += usize::from(h1);
                        ab5 += usize::from(h5);
                    }
                }
                let (mut ba1, mut ba5) = (0usize, 0usize);
                for (j, top) in cols.iter().enumerate() {
                    let (h1, h5) = self.hits(j, top);
                    ba1 += usize::from(h1);
                    ba5 += usize::from(h5);
                }
                let nf = n as f64;
                let (na, nb) = (self.names[a], self.names[b]);
                out.r1.insert(format!("{na}->{nb}"), ab1 as f64 / nf);
                out.r5.insert(format!("{na}->{nb}"), ab5 as f64 / nf);
                out.r1.insert(format!("{nb}->{na}"), ba1 as f64 / nf);
                out.r5.insert(format!("{nb}->{na}"), ba5 as f64 / nf);
            }
        }
        Ok(out)
    }

    /// (correct at rank 1, correct within the top 5) for query moment `i`.
    fn hits(&self, i: usize, top: &TopK) -> (bool, bool) {
        let items = top.items();
        let r1 = items.first().is_some_and(|&j| self.labels.intersects(i, j));
        let r5 = items.iter().any(|&j| self.labels.intersects(i, j));
        (r1, r5)
    }

    fn arithmetic(&self, a: &str, b: &str, k: usize) -> ArithmeticResult {
        match self.try_arithmetic(a, b, k) {
            Ok(r) => r,
            Err(e) => ArithmeticResult::empty(a, b, k, e.to_string()),
        }
    }

    fn try_arithmetic(&self, a: &str, b: &str, k: usize) -> Result<ArithmeticResult, ReportError> {
        let (n, d) = (self.n, self.dim);
        let ma = self
            .modality(a)
            .ok_or_else(|| ReportError::UnknownModality(a.into()))?;
        let mb = self
            .modality(b)
            .ok_or_else(|| ReportError::UnknownModality(b.into()))?;
        if k == 0 {
            return Ok(ArithmeticResult::empty(a, b, k, "k = 0".into()));
        }
        let s = self.set.situations.len();
        // Moments labelled exactly {c}, in order.
        let mut single: Vec<Vec<usize>> = vec![Vec::new(); s];
        for (i, l) in self.set.labels.iter().enumerate() {
            if l.iter().all(|&c| c == l[0]) {
                single[l[0]].push(i);
            }
        }
        // Moments containing both x and y, per ordered class pair.
        let mut both = vec![0usize; s * s];
        for l in &self.set.labels {
            let mut u = l.clone();
            u.sort_unstable();
            u.dedup();
            for &x in &u {
                for &y in &u {
                    if x != y {
                        both[x * s + y] += 1;
                    }
                }
            }
        }
        let mut pairs = Vec::new();
        for x in 0..s {
            for y in 0..s {
                if x != y && both[x * s + y] > 0 && !single[x].is_empty() && !single[y].is_empty() {
                    pairs.push((x, y));
                }
            }
        }
        if pairs.is_empty() {
            return Ok(ArithmeticResult::empty(
                a,
                b,
                k,
                "no class pair has single-label moments of each and a moment with both".into(),
            ));
        }
        // Fused gallery.
        let mut fused = vec![0f64; n * d];
        for m in &self.normed {
            for (f, &x) in fused.iter_mut().zip(m) {
                *f += x;
            }
        }
        for row in fused.chunks_exact_mut(d) {
            if !normalise(row) {
                // Modalities cancelling exactly: an all-zero gallery item
                // scores 0 against every query.
                row.fill(0.0);
            }
        }
        let gallery = Tensor::from_slice(&fused, (n, d), &Device::Cpu)?;
        // Similarity rows of every query half, computed once per moment.
        let take = |c: usize| &single[c][..single[c].len().min(TOP)];
        let mut a_moments: Vec<usize> = pairs.iter().flat_map(|&(x, _)| take(x)).copied().collect();
        let mut b_moments: Vec<usize> = pairs.iter().flat_map(|&(_, y)| take(y)).copied().collect();
        a_moments.sort_unstable();
        a_moments.dedup();
        b_moments.sort_unstable();
        b_moments.dedup();
        let rows_of = |m: usize, moments: &[usize]| -> Result<Vec<f64>, ReportError> {
            let mut q = Vec::with_capacity(moments.len() * d);
            for &i in moments {
                q.extend_from_slice(&self.normed[m][i * d..(i + 1) * d]);
            }
            similarities(&q, &gallery, d)
        };
        let a_sims = rows_of(ma, &a_moments)?;
        let b_sims = rows_of(mb, &b_moments)?;
        // Row range of moment i in a similarity block of `moments` (sorted,
        // containing i by construction).
        let row = |moments: &[usize], i: usize| -> std::ops::Range<usize> {
            let r = moments.binary_search(&i).unwrap_or(0);
            r * n..(r + 1) * n
        };
        let kk = k.min(n);
        let mut top = vec![(0usize, 0f64); kk];
        let mut precision = |score: &dyn Fn(usize) -> f64, x: usize, y: usize| -> f64 {
            top_k(n, kk, score, &mut top);
            let hits = top
                .iter()
                .filter(|&&(j, _)| self.labels.has(j, x) && self.labels.has(j, y))
                .count();
            hits as f64 / kk as f64
        };
        let mut res = ArithmeticResult {
            a: a.into(),
            b: b.into(),
            k,
            ..Default::default()
        };
        let (mut p_sum, mut p_a, mut p_b, mut base) = (0.0, 0.0, 0.0, 0.0);
        for &(x, y) in &pairs {
            let base_xy = both[x * s + y] as f64 / n as f64;
            let mut used = false;
            for (&ia, &ib) in take(x).iter().zip(take(y)) {
                let ea = &self.normed[ma][ia * d..(ia + 1) * d];
                let eb = &self.normed[mb][ib * d..(ib + 1) * d];
                // |e_a + e_b| of unit vectors; a (numerically) zero sum has no
                // direction and is skipped.
                let norm2 = 2.0 + 2.0 * dot(ea, eb);
                if norm2 <= 1e-12 {
                    continue;
                }
                let norm = norm2.sqrt();
                let sa = &a_sims[row(&a_moments, ia)];
                let sb = &b_sims[row(&b_moments, ib)];
                p_sum += precision(&|j| (sa[j] + sb[j]) / norm, x, y);
                p_a += precision(&|j| sa[j], x, y);
                p_b += precision(&|j| sb[j], x, y);
                base += base_xy;
                res.queries += 1;
                used = true;
            }
            if used {
                res.class_pairs.push(format!(
                    "{}+{}",
                    self.set.situations[x], self.set.situations[y]
                ));
            }
        }
        if res.queries == 0 {
            return Ok(ArithmeticResult::empty(
                a,
                b,
                k,
                "every query summed to the zero vector".into(),
            ));
        }
        let q = res.queries as f64;
        res.precision_at_k = p_sum / q;
        res.precision_a_only = p_a / q;
        res.precision_b_only = p_b / q;
        res.base_rate = base / q;
        Ok(res)
    }
}

/// The top `out.len()` of `score(0..n)`, best first, ties to the lower index.
fn top_k(n: usize, k: usize, score: &dyn Fn(usize) -> f64, out: &mut [(usize, f64)]) {
    let mut len = 0;
    for j in 0..n {
        let s = score(j);
        if len == k {
            if s <= out[k - 1].1 {
                continue;
            }
            len -= 1;
        }
        let mut pos = len;
        while pos > 0 && out[pos - 1].1 < s {
            out[pos] = out[pos - 1];
            pos -= 1;
        }
        out[pos] = (j, s);
        len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: [f32; 3] = [1.0, 0.0, 0.0];
    const Y: [f32; 3] = [0.0, 1.0, 0.0];
    const NEG_Y: [f32; 3] = [0.0, -1.0, 0.0];
    const Z: [f32; 3] = [0.0, 0.0, 1.0];

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn rows(r: &[[f32; 3]]) -> Vec<Vec<f32>> {
        r.iter().map(|v| v.to_vec()).collect()
    }

    /// 8 moments, classes c0 (x), c1 (y), c2 (z): five class-2 fillers first,
    /// then [0], [1] and the two-label [0, 1]. Modality b gets moment 5
    /// wrong (y) and moment 6 anti-aligned (-y).
    fn retrieval_set() -> EvalSet {
        let labels = vec![
            vec![2],
            vec![2],
            vec![2],
            vec![2],
            vec![2],
            vec![0],
            vec![1],
            vec![0, 1],
        ];
        let a = rows(&[Z, Z, Z, Z, Z, X, Y, Y]);
        let b = rows(&[Z, Z, Z, Z, Z, Y, NEG_Y, X]);
        EvalSet {
            situations: names(&["c0", "c1", "c2"]),
            labels,
            embeddings: [("a".to_string(), a), ("b".to_string(), b)].into(),
        }
    }

    fn classes3() -> Vec<Vec<f32>> {
        rows(&[X, Y, Z])
    }

    #[test]
    fn class_embeddings_average_and_renormalise() {
        let c = class_embeddings(&[vec![vec![1.0, 0.0], vec![0.0, 1.0]], vec![vec![0.0, 2.0]]])
            .unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (c[0][0] - h).abs() < 1e-7 && (c[0][1] - h).abs() < 1e-7,
            "{c:?}"
        );
        assert_eq!(c[1], vec![0.0, 1.0]);
    }

    #[test]
    fn class_embeddings_reject_bad_input() {
        assert_eq!(
            class_embeddings(&[]),
            Err(ReportError::Empty("prompts".into()))
        );
        assert_eq!(
            class_embeddings(&[vec![vec![1.0, 0.0]], vec![]]),
            Err(ReportError::Empty("prompts[1]".into()))
        );
        assert_eq!(
            class_embeddings(&[vec![vec![1.0, 0.0]], vec![vec![1.0, 0.0, 0.0]]]),
            Err(ReportError::Dimension {
                what: "prompts[1][0]".into(),
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            class_embeddings(&[vec![vec![f32::NAN, 0.0]]]),
            Err(ReportError::NonFinite("prompts[0][0]".into()))
        );
        assert_eq!(
            class_embeddings(&[vec![vec![1.0, 0.0], vec![-1.0, 0.0]]]),
            Err(ReportError::ZeroVector("mean of prompts[0]".into()))
        );
    }

    /// 3 classes in 2-d: x, y, -x. A wrong prediction, a tie (to the lower
    /// class) that a two-label moment accepts, and a tie that is wrong.
    #[test]
    fn zero_shot_and_confusion_exact() {
        let classes = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]];
        let emb = vec![
            vec![0.8, 0.6],  // [0] -> 0 right
            vec![0.6, 0.8],  // [1] -> 1 right
            vec![-1.0, 0.0], // [0] -> 2 wrong
            vec![0.0, -1.0], // [0, 2] -> tie 0/2 -> 0 right
            vec![0.0, -1.0], // [2] -> tie -> 0 wrong
        ];
        let labels = vec![vec![0], vec![1], vec![0], vec![0, 2], vec![2]];
        assert_eq!(predict(&emb, &classes).unwrap(), vec![0, 1, 2, 0, 0]);
        assert_eq!(zero_shot_top1(&emb, &labels, &classes).unwrap(), 0.6);
        assert_eq!(
            confusion(&emb, &labels, &classes).unwrap(),
            vec![vec![2, 0, 1], vec![0, 1, 0], vec![1, 0, 0]]
        );
        // Primary 0: moments 0 (right), 2 (wrong), 3 (right on its second
        // label); 1: moment 1; 2: moment 4 (wrong).
        let per = by_situation(&emb, &labels, &classes).unwrap();
        assert_eq!(per, vec![[2, 3], [1, 1], [0, 1]]);
        let (right, of) = per.iter().fold((0, 0), |(r, n), c| (r + c[0], n + c[1]));
        assert_eq!(right as f64 / of as f64, 0.6);
        assert!(by_situation(&emb, &labels[..4], &classes).is_err());
        let set = EvalSet {
            situations: names(&["a", "b", "c"]),
            labels,
            embeddings: [("v".to_string(), emb)].into(),
        };
        // (1 + 1 + 1 + 2 + 1) / 3 / 5
        assert_eq!(chance(&set).unwrap().zero_shot, 6.0 / 15.0);
    }

    #[test]
    fn zero_shot_rejects_bad_input() {
        let classes = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let emb = vec![vec![1.0, 0.0]];
        assert_eq!(
            zero_shot_top1(&emb, &[vec![0], vec![1]], &classes),
            Err(ReportError::Length {
                what: "embeddings".into(),
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            zero_shot_top1(&emb, &[vec![2]], &classes),
            Err(ReportError::Label {
                what: "labels[0]".into(),
                label: 2,
                classes: 2
            })
        );
        assert_eq!(
            zero_shot_top1(&emb, &[vec![]], &classes),
            Err(ReportError::Empty("labels[0]".into()))
        );
        assert_eq!(
            zero_shot_top1(&emb, &[vec![0]], &[]),
            Err(ReportError::Empty("classes".into()))
        );
        assert_eq!(
            zero_shot_top1(&[vec![1.0, 0.0, 0.0]], &[vec![0]], &classes),
            Err(ReportError::Dimension {
                what: "embeddings[0]".into(),
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            zero_shot_top1(&[vec![0.0, f32::INFINITY]], &[vec![0]], &classes),
            Err(ReportError::NonFinite("embeddings[0]".into()))
        );
        assert_eq!(
            zero_shot_top1(&[vec![0.0, 0.0]], &[vec![0]], &classes),
            Err(ReportError::ZeroVector("embeddings[0]".into()))
        );
        assert!(zero_shot_top1(&[], &[], &classes).is_err());
    }

    #[test]
    fn retrieval_exact_with_ties_and_multi_label() {
        let set = retrieval_set();
        let r = retrieval(&set).unwrap();
        // a->b: only query 6 (y, [1]) misses: its best b item is 5 ([0]),
        // and after it the zero-score ties go to fillers 0..3.
        assert_eq!(r.r1["a->b"], 7.0 / 8.0);
        assert_eq!(r.r5["a->b"], 7.0 / 8.0);
        // b->a: query 5 (y, [0]) ties between a-moments 6 and 7 and takes
        // 6 ([1], wrong) at rank 1, 7 ([0, 1]) at rank 2; query 6 (-y)
        // ranks the fillers first.
        assert_eq!(r.r1["b->a"], 6.0 / 8.0);
        assert_eq!(r.r5["b->a"], 7.0 / 8.0);
        assert_eq!(r.r1.len(), 2);
        let c = chance(&set).unwrap();
        // fillers 5/8 each, [0] 2/8, [1] 2/8, [0, 1] 3/8: (25 + 7) / 8 / 8
        assert_eq!(c.retrieval_r1, 0.5);
        assert_eq!(c.zero_shot, 9.0 / 24.0);
    }

    #[test]
    fn retrieval_covers_every_ordered_pair() {
        let mut set = retrieval_set();
        let a = set.embeddings["a"].clone();
        set.embeddings.insert("c".into(), a);
        let r = retrieval(&set).unwrap();
        let keys: Vec<&str> = r.r1.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a->b", "a->c", "b->a", "b->c", "c->a", "c->b"]);
        // c is a copy of a: a->c is a retrieving itself, ties to the lower
        // index (query 6 y -> 6, query 7 y -> 6 ([1] meets [0, 1])).
        assert_eq!(r.r1["a->c"], 1.0);
        assert_eq!(r.r1["c->b"], r.r1["a->b"]);
        set.embeddings.remove("b");
        set.embeddings.remove("c");
        assert!(retrieval(&set).unwrap().r1.is_empty());
    }

    /// Brute-force reference over random data spanning several blocks.
    #[test]
    fn retrieval_matches_brute_force() {
        let set = random_set(300, 3, 16, 7, 11);
        let r = retrieval(&set).unwrap();
        let labels = &set.labels;
        let meets = |i: usize, j: usize| labels[i].iter().any(|c| labels[j].contains(c));
        for (a, ea) in &set.embeddings {
            for (b, eb) in &set.embeddings {
                if a == b {
                    continue;
                }
                let (mut h1, mut h5) = (0, 0);
                for (i, q) in ea.iter().enumerate() {
                    let mut s: Vec<(f64, usize)> =
                        eb.iter().enumerate().map(|(j, g)| (cos(q, g), j)).collect();
                    s.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
                    h1 += usize::from(meets(i, s[0].1));
                    h5 += usize::from(s[..5].iter().any(|&(_, j)| meets(i, j)));
                }
                let key = format!("{a}->{b}");
                assert_eq!(r.r1[&key], h1 as f64 / 300.0, "{key}");
                assert_eq!(r.r5[&key], h5 as f64 / 300.0, "{key}");
            }
        }
    }

    fn cos(a: &[f32], b: &[f32]) -> f64 {
        let d = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum::<f64>()
        };
        d(a, b) / (d(a, a).sqrt() * d(b, b).sqrt())
    }

    /// Class prototypes plus noise, every fifth moment two-labelled.
    fn random_set(n: usize, mods: usize, d: usize, s: usize, seed: u64) -> EvalSet {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let protos: Vec<Vec<f64>> = (0..s).map(|_| (0..d).map(|_| rnd()).collect()).collect();
        let labels: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let c = i % s;
                if i % 5 == 0 {
                    let mut l = vec![c, (c + 1 + i / s) % s];
                    l.sort_unstable();
                    l.dedup();
                    l
                } else {
                    vec![c]
                }
            })
            .collect();
        let mut embeddings = BTreeMap::new();
        for m in 0..mods {
            let e = labels
                .iter()
                .map(|l| {
                    let mut v: Vec<f64> = (0..d).map(|_| 1.5 * rnd()).collect();
                    for &c in l {
                        for (x, p) in v.iter_mut().zip(&protos[c]) {
                            *x += p;
                        }
                    }
                    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    v.iter().map(|x| (x / norm) as f32).collect()
                })
                .collect();
            embeddings.insert(format!("m{m}"), e);
        }
        EvalSet {
            situations: (0..s).map(|c| format!("s{c}")).collect(),
            labels,
            embeddings,
        }
    }

    /// 4-d: class 0 along e1, class 1 along e2, class 2 along e3; one
    /// composite moment (e1 + e2) labelled [0, 1].
    fn arithmetic_set() -> EvalSet {
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let e = |i: usize| {
            let mut v = vec![0.0f32; 4];
            v[i] = 1.0;
            v
        };
        let both = vec![h, h, 0.0, 0.0];
        let emb = vec![e(0), e(1), both, e(2), e(2)];
        EvalSet {
            situations: names(&["dog", "rain", "fire"]),
            labels: vec![vec![0], vec![1], vec![0, 1], vec![2], vec![2]],
            embeddings: [("a".to_string(), emb.clone()), ("b".to_string(), emb)].into(),
        }
    }

    #[test]
    fn arithmetic_finds_the_composite() {
        let set = arithmetic_set();
        let r = arithmetic(&set, "a", "b", 1);
        assert_eq!(r.skipped, None);
        assert_eq!(r.class_pairs, ["dog+rain", "rain+dog"]);
        assert_eq!(r.queries, 2);
        // e1 + e2 ranks the composite first; e1 alone ranks moment 0 first.
        assert_eq!(r.precision_at_k, 1.0);
        assert_eq!(r.precision_a_only, 0.0);
        assert_eq!(r.precision_b_only, 0.0);
        assert_eq!(r.base_rate, 0.2);
        // k = 3: sum -> 2, 0, 1 (tie 0/1 to the lower); e1 -> 0, 2, then
        // the zero ties 1, 3, 4 -> 1.
        let r = arithmetic(&set, "a", "b", 3);
        assert_eq!(r.precision_at_k, 1.0 / 3.0);
        assert_eq!(r.precision_a_only, 1.0 / 3.0);
        // k larger than the gallery: all 5 ranked, precision over 5.
        assert_eq!(arithmetic(&set, "a", "b", 9).precision_at_k, 0.2);
    }

    #[test]
    fn arithmetic_without_a_qualifying_pair_is_empty() {
        let mut set = arithmetic_set();
        set.labels[2] = vec![2];
        let r = arithmetic(&set, "a", "b", 1);
        assert_eq!(r.queries, 0);
        assert!(r.skipped.is_some());
        assert!(r.class_pairs.is_empty());
        let set = arithmetic_set();
        assert_eq!(arithmetic(&set, "a", "b", 0).queries, 0);
        let r = arithmetic(&set, "a", "thermal", 1);
        assert_eq!(r.queries, 0);
        assert_eq!(
            r.skipped.as_deref(),
            Some("modality \"thermal\" is not in the set")
        );
        let bad = EvalSet::default();
        assert_eq!(arithmetic(&bad, "a", "b", 1).queries, 0);
    }

    #[test]
    fn arithmetic_skips_a_zero_sum_query() {
        let mut set = arithmetic_set();
        // b's dog-only moment is -e2: rain (a, e2) + dog (b, -e2) = 0.
        set.embeddings.get_mut("b").unwrap()[0] = vec![0.0, -1.0, 0.0, 0.0];
        let r = arithmetic(&set, "a", "b", 1);
        assert_eq!(r.queries, 1);
        assert_eq!(r.class_pairs, ["dog+rain"]);
    }

    #[test]
    fn eval_set_validation() {
        let good = retrieval_set();
        assert_eq!(good.validate(), Ok(3));
        let mut s = good.clone();
        s.embeddings.get_mut("b").unwrap().pop();
        assert_eq!(
            s.validate(),
            Err(ReportError::Length {
                what: "embeddings[b]".into(),
                expected: 8,
                got: 7
            })
        );
        let mut s = good.clone();
        s.embeddings.insert("c".into(), vec![vec![1.0, 0.0]; 8]);
        assert!(matches!(s.validate(), Err(ReportError::Dimension { .. })));
        let mut s = good.clone();
        s.embeddings.get_mut("a").unwrap()[3][1] = f32::NAN;
        assert_eq!(
            s.validate(),
            Err(ReportError::NonFinite("embeddings[a][3]".into()))
        );
        let mut s = good.clone();
        s.labels[4] = vec![3];
        assert!(matches!(
            s.validate(),
            Err(ReportError::Label { label: 3, .. })
        ));
        let mut s = good.clone();
        s.embeddings.clear();
        assert_eq!(s.validate(), Err(ReportError::Empty("embeddings".into())));
        assert!(EvalSet::default().validate().is_err());
        assert!(retrieval(&EvalSet::default()).is_err());
        assert!(chance(&EvalSet::default()).is_err());
    }

    #[test]
    fn report_builds_checks_bars_and_round_trips() {
        let set = retrieval_set();
        let mut paired = set.clone();
        let a = paired.embeddings["a"].clone();
        paired.embeddings.insert("b".into(), a);
        let report = Report::build(&set, &classes3(), Some(&paired)).unwrap();
        assert_eq!(report.moments, 8);
        assert_eq!(report.situations, names(&["c0", "c1", "c2"]));
        assert_eq!(report.zero_shot_top1["a"], 1.0);
        // b: moment 5 (y, [0]) -> 1 wrong; moment 6 (-y) ties 0/2 -> 0 wrong.
        assert_eq!(report.zero_shot_top1["b"], 0.75);
        assert_eq!(report.paired_zero_shot_top1["b"], 1.0);
        assert_eq!(report.emergent_over_paired["a"], 1.0);
        assert_eq!(report.emergent_over_paired["b"], 0.75);
        assert_eq!(report.retrieval_r1["a->b"], 0.875);
        assert_eq!(report.retrieval_r1["b->a"], 0.75);
        assert_eq!(report.chance.retrieval_r1, 0.5);
        // primary 0: moment 5 -> 1, moment 7 -> 0; primary 1: moment 6 -> 0.
        assert_eq!(report.confusion["b"][0], vec![1, 1, 0]);
        assert_eq!(report.confusion["b"][1], vec![1, 0, 0]);
        let per_b = &report.zero_shot_by_situation["b"];
        let (right, of) = per_b.iter().fold((0, 0), |(r, n), c| (r + c[0], n + c[1]));
        assert_eq!((right, of), (6, 8));
        assert_eq!(right as f64 / of as f64, report.zero_shot_top1["b"]);
        assert_eq!(report.arithmetic.len(), 1);
        assert_eq!(report.arithmetic[0].a, "a");
        assert_eq!(report.arithmetic[0].b, "b");

        assert!(report.check_bars(0.5, 0.5, 0.5, &["a", "b"]).is_empty());
        let fails = report.check_bars(0.8, 0.8, 0.9, &["b", "a", "thermal"]);
        assert_eq!(fails.len(), 4, "{fails:#?}");
        assert!(
            fails[0].contains("zero-shot top-1 of b is 0.750"),
            "{}",
            fails[0]
        );
        assert!(fails[1].contains("R@1 b->a is 0.750"), "{}", fails[1]);
        assert!(fails[2].contains("of b is 0.750"), "{}", fails[2]);
        assert!(fails[3].contains("thermal is missing"), "{}", fails[3]);

        let json = serde_json::to_value(&report).unwrap();
        for field in [
            "zero_shot_top1",
            "retrieval_r1",
            "retrieval_r5",
            "paired_zero_shot_top1",
            "emergent_over_paired",
            "chance",
            "moments",
            "situations",
            "arithmetic",
            "confusion",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["chance"]["zero_shot"], 0.375);
        assert_eq!(json["chance"]["retrieval_r1"], 0.5);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);

        let t = report.table();
        assert!(t.contains("8 moments, 3 situations"), "{t}");
        assert!(t.contains("0.875"), "{t}");
        assert!(t.contains("chance 0.375"), "{t}");
        assert!(t.contains("a+b:"), "{t}");
        assert!(t.contains("one clip per modality"), "{t}");
        assert!(t.contains("per situation"), "{t}");
        let c0 = t
            .lines()
            .find(|l| l.trim_start().starts_with("c0 "))
            .expect("c0 row");
        assert_eq!(
            c0.split_whitespace().collect::<Vec<_>>(),
            [
                "c0",
                &format!(
                    "{}/{}",
                    report.zero_shot_by_situation["a"][0][0],
                    report.zero_shot_by_situation["a"][0][1]
                ),
                &format!("{}/{}", per_b[0][0], per_b[0][1])
            ]
        );

        // A multi-clip report keeps the single-clip figures beside it.
        let mut mc = report.clone();
        mc.clip_span_s = 5.0;
        mc.single_clip_zero_shot_top1 = BTreeMap::from([("a".to_string(), 0.625)]);
        let t = mc.table();
        assert!(t.contains("clips averaged over 5 s"), "{t}");
        assert!(t.contains("0.625"), "{t}");
        let json = serde_json::to_value(&mc).unwrap();
        assert_eq!(json["clip_span_s"], 5.0);
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), mc);

        // The supervised ceiling: here `paired` (b scores 1.0), so b's
        // emergent 0.75 is 0.75 of its ceiling; a moment set that differs
        // is refused.
        assert!(json_has_no_supervised(&report));
        let mut sup = report.clone();
        sup.add_supervised(&set, &paired, &classes3()).unwrap();
        assert_eq!(sup.supervised_zero_shot_top1["b"], 1.0);
        assert_eq!(sup.emergent_over_supervised["b"], 0.75);
        assert_eq!(sup.emergent_over_supervised["a"], 1.0);
        assert_eq!(sup.supervised_confusion["b"][1], vec![0, 1, 0]);
        let t = sup.table();
        assert!(t.contains("supervised"), "{t}");
        let json = serde_json::to_value(&sup).unwrap();
        assert_eq!(json["emergent_over_supervised"]["b"], 0.75);
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), sup);
        let mut shifted = paired.clone();
        shifted.labels[0] = vec![0];
        assert!(
            report
                .clone()
                .add_supervised(&set, &shifted, &classes3())
                .is_err()
        );
    }

    fn json_has_no_supervised(r: &Report) -> bool {
        let json = serde_json::to_value(r).unwrap();
        json.get("supervised_zero_shot_top1").is_none()
            && json.get("emergent_over_supervised").is_none()
    }

    #[test]
    fn report_without_paired_and_bad_inputs() {
        let set = retrieval_set();
        let report = Report::build(&set, &classes3(), None).unwrap();
        assert!(report.paired_zero_shot_top1.is_empty());
        assert!(report.emergent_over_paired.is_empty());
        assert_eq!(report.check_bars(0.0, 0.0, 0.5, &["b"]).len(), 1);
        assert!(report.table().contains("  b "));
        assert!(matches!(
            Report::build(&set, &classes3()[..2], None),
            Err(ReportError::Length { .. })
        ));
        let mut other = set.clone();
        other.situations[0] = "other".into();
        assert!(Report::build(&set, &classes3(), Some(&other)).is_err());
        assert!(Report::build(&EvalSet::default(), &classes3(), None).is_err());
        let mut nan = report.clone();
        nan.zero_shot_top1.insert("a".into(), f64::NAN);
        assert_eq!(nan.check_bars(0.0, 0.0, 0.0, &[]).len(), 1);
    }

    /// Run with `--ignored --nocapture`: the size the trainer evaluates.
    #[test]
    #[ignore]
    fn timing_3000_moments_5_modalities() {
        let set = random_set(3000, 5, 384, 12, 3);
        let classes: Vec<Vec<f32>> = (0..12).map(|c| set.embeddings["m0"][c].clone()).collect();
        let t = std::time::Instant::now();
        let report = Report::build(&set, &classes, Some(&set)).unwrap();
        let took = t.elapsed();
        println!("{}", report.table());
        println!("Report::build over 3000 moments x 5 modalities x 384-d: {took:?}");
        let t = std::time::Instant::now();
        retrieval(&set).unwrap();
        println!("retrieval (20 ordered pairs): {:?}", t.elapsed());
        let t = std::time::Instant::now();
        arithmetic(&set, "m0", "m1", ARITHMETIC_K);
        println!("arithmetic (one modality pair): {:?}", t.elapsed());
        let t = std::time::Instant::now();
        chance(&set).unwrap();
        println!("chance: {:?}", t.elapsed());
    }
}
