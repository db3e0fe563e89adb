//! `edgebind-train eval`: measures a folder of exported encoders on a
//! recording the way the daemon would run them (each ONNX file through the
//! models crate's tract backend with its own contract's preprocessing, on the
//! sensors crate's windows).
//!
//! Only **clean** moments are scored (one ground-truth span covers the
//! longest window of the moment, see [`crate::data`], and the multi-clip
//! span), so that every window of a moment shows the same situations.
//!
//! **Multi-clip** (`--clip-span-s`, default 5 s like the daemon's `[fusion]
//! clip_span_s`): a modality's embedding of a moment is the mean of its
//! window embeddings whose windows lie inside the span ending at the moment
//! (camera, depth, thermal: five 1 s windows; audio: four 2 s windows; IMU:
//! its one 5 s window), as ImageBind averages several clips of a sample
//! and as the daemon does. The report keeps the single-clip zero-shot
//! beside it. The embedding-arithmetic check stays single-clip and
//! takes the moments clean over the two windows it combines
//! ([`arithmetic_by_pair`]). Zero-shot: the prompt file's
//! paraphrases are embedded by the text tower and averaged per situation;
//! a moment counts as right when its best situation is one of those active.
//! Retrieval, chance levels and the embedding-arithmetic check are defined
//! in [`crate::report`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use edgebind_models::backend::Encoder as _;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::contract::{ContractModality, Preprocess};
use edgebind_models::text::TextTower;
use edgebind_sensors::window::WindowConfig;

use crate::data::{self, LoadSpec, frozen_backend};
use crate::prompts::Prompts;
use crate::report::{EvalSet, Report};

/// Options of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The held-out recording.
    pub recording: PathBuf,
    /// Evaluation prompts.
    pub prompts: PathBuf,
    /// Folder of `<modality>.onnx` encoders.
    pub encoders: PathBuf,
    /// Folder of text-paired baseline encoders (default `<encoders>/paired`
    /// when it exists).
    pub paired: Option<PathBuf>,
    /// Folder of supervised-ceiling encoders (default
    /// `<encoders>/supervised` when it exists; see `[train]
    /// supervised_ceiling`).
    pub supervised: Option<PathBuf>,
    /// JSON report path; the retrieval heatmap goes beside it as
    /// `<stem>-retrieval.png`.
    pub report: PathBuf,
    /// No progress output.
    pub quiet: bool,
    /// Multi-clip span (s): a moment's embedding per modality is the mean of
    /// that modality's clip embeddings whose windows lie inside the last
    /// `clip_span_s` before the moment (ImageBind averages several clips per
    /// sample the same way). 0: the moment's own clip only.
    pub clip_span_s: f64,
}

/// Where an encoders folder keeps the encoder of `m`: `<dir>/<modality>.onnx`.
pub fn encoder_file(dir: &Path, m: ContractModality) -> PathBuf {
    dir.join(format!("{}.onnx", m.as_str()))
}

fn load_dir(dir: &Path) -> anyhow::Result<BTreeMap<ContractModality, TractEncoder>> {
    let mut out = BTreeMap::new();
    for m in ContractModality::SENSORS {
        let p = encoder_file(dir, m);
        if p.exists() {
            let enc = TractEncoder::load_reproducible(&p, &frozen_backend())?;
            anyhow::ensure!(
                enc.contract().modality == m,
                "{}: the contract says {}, the file name says {}",
                p.display(),
                enc.contract().modality.as_str(),
                m.as_str()
            );
            out.insert(m, enc);
        }
    }
    Ok(out)
}

/// A folder of baseline encoders: `given`, else `<encoders>/<sub>` when it
/// exists; none is an empty set.
type Baselines = (Option<PathBuf>, BTreeMap<ContractModality, TractEncoder>);

fn baselines(encoders: &Path, given: Option<&PathBuf>, sub: &str) -> anyhow::Result<Baselines> {
    let dir = given.cloned().or_else(|| {
        let d = encoders.join(sub);
        d.is_dir().then_some(d)
    });
    let loaded = match &dir {
        Some(d) => load_dir(d)?,
        None => BTreeMap::new(),
    };
    Ok((dir, loaded))
}

/// One preprocessing per modality: the emergent and text-paired encoders of
/// a modality share the loaded windows, so they must agree on how a window
/// becomes their input. The error names both files and both preprocessings.
fn one_preprocess_per_modality(
    sources: Vec<(ContractModality, PathBuf, Preprocess)>,
) -> anyhow::Result<BTreeMap<ContractModality, Preprocess>> {
    let mut seen: BTreeMap<ContractModality, (PathBuf, Preprocess)> = BTreeMap::new();
    for (m, path, p) in sources {
        if let Some((first, q)) = seen.get(&m) {
            let json = |x: &Preprocess| serde_json::to_string(x).unwrap_or_else(|e| e.to_string());
            anyhow::ensure!(
                *q == p,
                "{} encoders disagree on preprocessing: {} has {}, {} has {}; they share the \
                 recording's windows, so evaluate them separately (--paired DIR)",
                m.as_str(),
                first.display(),
                json(q),
                path.display(),
                json(&p)
            );
        } else {
            seen.insert(m, (path, p));
        }
    }
    Ok(seen.into_iter().map(|(m, (_, p))| (m, p)).collect())
}

/// Runs the evaluation, writes the report and returns it.
pub fn eval(o: &EvalOptions) -> anyhow::Result<Report> {
    let t0 = Instant::now();
    let encoders = load_dir(&o.encoders)?;
    anyhow::ensure!(
        !encoders.is_empty(),
        "{}: no <modality>.onnx encoder found",
        o.encoders.display()
    );
    let (paired_dir, paired) = baselines(&o.encoders, o.paired.as_ref(), "paired")?;
    let (supervised_dir, supervised) = baselines(&o.encoders, o.supervised.as_ref(), "supervised")?;
    let spaces: Vec<&str> = encoders
        .values()
        .chain(paired.values())
        .chain(supervised.values())
        .map(|e| e.contract().space.as_str())
        .collect();
    let text = TextTower::load_default()
        .map_err(|e| anyhow::anyhow!("text tower: {e} (fetch it with scripts/fetch-models.sh)"))?;
    for s in &spaces {
        anyhow::ensure!(
            *s == &**text.space(),
            "an encoder lives in space `{s}`, the text tower in `{}`: they cannot be compared",
            text.space()
        );
    }
    let sources = |d: &Path, encs: &BTreeMap<ContractModality, TractEncoder>| {
        encs.iter()
            .map(|(m, e)| (*m, encoder_file(d, *m), e.contract().preprocess.clone()))
            .collect::<Vec<_>>()
    };
    let mut all = sources(&o.encoders, &encoders);
    if let Some(d) = &paired_dir {
        all.extend(sources(d, &paired));
    }
    if let Some(d) = &supervised_dir {
        all.extend(sources(d, &supervised));
    }
    let preprocess = one_preprocess_per_modality(all)?;
    let ds = data::load(
        std::slice::from_ref(&o.recording),
        &LoadSpec {
            preprocess,
            windows: WindowConfig::default(),
            segment_s: 60.0,
            holdout: 0.0,
        },
        |_, _, _| {},
    )?;
    anyhow::ensure!(
        o.clip_span_s.is_finite() && (0.0..=3600.0).contains(&o.clip_span_s),
        "--clip-span-s: must be between 0 and 3600 s, got {}",
        o.clip_span_s
    );
    let span_ns = (o.clip_span_s * 1e9) as u64;
    let prompts = Prompts::load(&o.prompts)?;
    let situations = prompts.situations();
    let keep: Vec<usize> = (0..ds.moments.len())
        // Clean over the multi-clip span too: every clip averaged into a
        // scored moment sees its situation.
        .filter(|&i| {
            let m = &ds.moments[i];
            m.clean && !m.label.is_empty() && m.stable_ns >= span_ns
        })
        .collect();
    anyhow::ensure!(
        !keep.is_empty(),
        "{}: no clean moment with ground truth (is it a sim recording with /ground_truth?)",
        o.recording.display()
    );
    let label_ids = |i: usize| -> anyhow::Result<Vec<usize>> {
        let mut l = Vec::new();
        for s in &ds.moments[i].label {
            let k = situations.iter().position(|x| x == s).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: situation `{s}` of the recording has no prompts in {}",
                    o.recording.display(),
                    o.prompts.display()
                )
            })?;
            l.push(k);
        }
        l.sort();
        Ok(l)
    };
    let labels = keep
        .iter()
        .map(|&i| label_ids(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Clean moments keep one truth span over the longest window, so every
    // modality's own window: they are all in `embed_stable`'s rows.
    let score = |rows: &Rows, span_ns: u64| -> anyhow::Result<Scored> {
        let mut out = BTreeMap::new();
        for (m, r) in rows {
            let avg = multi_clip(&ds.moments, r, span_ns.saturating_sub(window_ns(*m)));
            let v = keep
                .iter()
                .map(|i| {
                    avg.get(i).cloned().ok_or_else(|| {
                        anyhow::anyhow!("clean moment {i} has no {} embedding", m.as_str())
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.insert(m.as_str().to_string(), v);
        }
        Ok(out)
    };
    let rows = embed_stable(&ds, &encoders)?;
    let set = EvalSet {
        situations: situations.clone(),
        labels: labels.clone(),
        embeddings: score(&rows, span_ns)?,
    };
    let paired_set = if paired.is_empty() {
        None
    } else {
        Some(EvalSet {
            situations: situations.clone(),
            labels: labels.clone(),
            embeddings: score(&embed_stable(&ds, &paired)?, span_ns)?,
        })
    };
    let mut class_prompts = Vec::with_capacity(situations.len());
    for s in &situations {
        let ps = &prompts.by_situation[s];
        let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
        class_prompts.push(
            text.embed(&refs)?
                .into_iter()
                .map(|e| e.vector)
                .collect::<Vec<_>>(),
        );
    }
    let classes = crate::report::class_embeddings(&class_prompts)?;
    let mut report = Report::build(&set, &classes, paired_set.as_ref())?;
    if !supervised.is_empty() {
        let sup = EvalSet {
            situations: situations.clone(),
            labels: labels.clone(),
            embeddings: score(&embed_stable(&ds, &supervised)?, span_ns)?,
        };
        report.add_supervised(&set, &sup, &classes)?;
    }
    report.clip_span_s = o.clip_span_s;
    if span_ns > 0 {
        for (m, emb) in score(&rows, 0)? {
            let acc = crate::report::zero_shot_top1(&emb, &labels, &classes)?;
            report.single_clip_zero_shot_top1.insert(m, acc);
        }
    }
    for (prefix, dir, encs) in [
        ("", Some(&o.encoders), &encoders),
        ("paired/", paired_dir.as_ref(), &paired),
        ("supervised/", supervised_dir.as_ref(), &supervised),
    ] {
        let Some(dir) = dir else { continue };
        for m in encs.keys() {
            if let Some(c) = crate::center::record_of(&encoder_file(dir, *m))? {
                report
                    .centred
                    .insert(format!("{prefix}{}", m.as_str()), c.mean_norm);
            }
        }
    }
    report.arithmetic = arithmetic_by_pair(&ds, &encoders, &rows, &situations, &label_ids)?;
    let calibration = calibrate(&set, &classes);
    if let Some(d) = o.report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    }
    std::fs::write(&o.report, serde_json::to_vec_pretty(&report)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", o.report.display()))?;
    let mods: Vec<String> = set.embeddings.keys().cloned().collect();
    let matrix: Vec<Vec<f64>> = mods
        .iter()
        .map(|a| {
            mods.iter()
                .map(|b| {
                    report
                        .retrieval_r1
                        .get(&format!("{a}->{b}"))
                        .copied()
                        .unwrap_or(f64::NAN)
                })
                .collect()
        })
        .collect();
    let stem = o
        .report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let png = o.report.with_file_name(format!("{stem}-retrieval.png"));
    let cal_path = o.report.with_file_name(format!("{stem}-calibration.json"));
    std::fs::write(&cal_path, serde_json::to_vec_pretty(&calibration)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", cal_path.display()))?;
    if !o.quiet {
        eprintln!(
            "cosine to the situation prompts (for concept thresholds; {}):",
            cal_path.display()
        );
        for (m, c) in &calibration {
            eprintln!(
                "  {m:<8} right situation p10 {:.3} p50 {:.3} | best wrong situation p50 {:.3} p90 {:.3} p99 {:.3}",
                c.right_p10, c.right_p50, c.wrong_p50, c.wrong_p90, c.wrong_p99
            );
        }
    }
    crate::plots::heatmap(
        &png,
        &format!(
            "Retrieval R@1 (query row -> gallery column), {} moments",
            keep.len()
        ),
        &mods,
        &matrix,
    )?;
    if !o.quiet {
        eprintln!(
            "evaluated {} clean moments of {} ({} in all) in {:.1} s; wrote {} and {}",
            keep.len(),
            o.recording.display(),
            ds.moments.len(),
            t0.elapsed().as_secs_f64(),
            o.report.display(),
            png.display()
        );
    }
    Ok(report)
}

/// Cosine between a modality's embeddings and the situation prompts: where
/// the right situation lands and where the best wrong one does. A concept's
/// `enter` threshold belongs between the two.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    /// 10th percentile of the cosine to the (best) right situation.
    pub right_p10: f64,
    /// Median of the cosine to the right situation.
    pub right_p50: f64,
    /// Median of the cosine to the best wrong situation.
    pub wrong_p50: f64,
    /// 90th percentile of it.
    pub wrong_p90: f64,
    /// 99th percentile of it.
    pub wrong_p99: f64,
    /// Per situation: cosine to its prompts where it is active (median) and
    /// where it is not (90th and 99th percentiles): a concept defined by that
    /// situation's text fires well with `enter` between the two.
    pub per_situation: BTreeMap<String, SituationCosines>,
}

/// One situation's cosines (see [`Calibration::per_situation`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SituationCosines {
    /// Median where the situation is active.
    pub active_p50: f64,
    /// 90th percentile where it is not.
    pub inactive_p90: f64,
    /// 99th percentile where it is not.
    pub inactive_p99: f64,
}

/// Modality name -> embeddings of the scored (clean) moments, in order.
type Scored = BTreeMap<String, Vec<Vec<f32>>>;

/// Per modality, moment index -> embedding.
type Rows = BTreeMap<ContractModality, BTreeMap<usize, Vec<f32>>>;

/// Length of `m`'s window (ns) in the windows `eval` cuts.
fn window_ns(m: ContractModality) -> u64 {
    m.sensor().map_or(0, |s| {
        (WindowConfig::default().spec(s).length_s * 1e9) as u64
    })
}

/// Every row averaged with the rows of the moments of the same recording
/// that end at most `back_ns` before it (rows present only), L2-normalised:
/// the trainer's anchor-span average ([`crate::bind::average_over_span`])
/// over a table whose missing rows are zeros. Only moments with a row of
/// their own get one.
fn multi_clip(
    moments: &[data::MomentMeta],
    rows: &BTreeMap<usize, Vec<f32>>,
    back_ns: u64,
) -> BTreeMap<usize, Vec<f32>> {
    let Some(dim) = rows.values().next().map(Vec::len) else {
        return BTreeMap::new();
    };
    let mut table = vec![0f32; moments.len() * dim];
    for (&i, r) in rows {
        table[i * dim..(i + 1) * dim].copy_from_slice(r);
    }
    // `average_over_span` keeps moments ending less than its span before.
    let avg = crate::bind::average_over_span(moments, &table, dim, back_ns + 1, 0);
    rows.keys()
        .map(|&i| (i, avg[i * dim..(i + 1) * dim].to_vec()))
        .collect()
}

/// Each encoder run once, on every labelled moment its own window allows
/// (truth constant over it): a superset of the clean moments, so the scores
/// and the arithmetic check share one pass.
fn embed_stable(
    ds: &data::Dataset,
    encs: &BTreeMap<ContractModality, TractEncoder>,
) -> anyhow::Result<Rows> {
    let mut rows = Rows::new();
    for (m, enc) in encs {
        let w = window_ns(*m);
        let idx: Vec<usize> = (0..ds.moments.len())
            .filter(|&i| !ds.moments[i].label.is_empty() && ds.moments[i].stable_ns >= w)
            .collect();
        let embs = ds.inputs[m].embed(enc, &idx)?;
        rows.insert(*m, idx.into_iter().zip(embs).collect());
    }
    Ok(rows)
}

/// The embedding-arithmetic check per modality pair `(a, b)`, `a < b` by
/// name. A moment where two situations happen at once rarely keeps one truth
/// span over the longest window (IMU, 5 s: the sim's overlaps last 30-50 % of
/// a 4-12 s episode), so no clean moment has two labels. Each pair is
/// therefore tested on the moments whose truth is constant over the longer of
/// its two windows (`MomentMeta::stable_ns`), with a gallery fused over `a`
/// and `b` only: the other modalities' windows may straddle a change.
fn arithmetic_by_pair(
    ds: &data::Dataset,
    encoders: &BTreeMap<ContractModality, TractEncoder>,
    rows: &Rows,
    situations: &[String],
    label_ids: &dyn Fn(usize) -> anyhow::Result<Vec<usize>>,
) -> anyhow::Result<Vec<crate::report::ArithmeticResult>> {
    let usable = |i: usize, w: u64| {
        let m = &ds.moments[i];
        !m.label.is_empty() && m.stable_ns >= w
    };
    let mut by_name: Vec<(&str, ContractModality)> =
        encoders.keys().map(|m| (m.as_str(), *m)).collect();
    by_name.sort();
    let mut out = Vec::new();
    for (i, &(a, ma)) in by_name.iter().enumerate() {
        for &(b, mb) in &by_name[i + 1..] {
            let w = window_ns(ma).max(window_ns(mb));
            let idx: Vec<usize> = (0..ds.moments.len()).filter(|&i| usable(i, w)).collect();
            let pick = |m: ContractModality| -> Vec<Vec<f32>> {
                idx.iter().map(|i| rows[&m][i].clone()).collect()
            };
            let set = EvalSet {
                situations: situations.to_vec(),
                labels: idx
                    .iter()
                    .map(|&i| label_ids(i))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                embeddings: BTreeMap::from([(a.to_string(), pick(ma)), (b.to_string(), pick(mb))]),
            };
            out.push(crate::report::arithmetic(
                &set,
                a,
                b,
                crate::report::ARITHMETIC_K,
            ));
        }
    }
    Ok(out)
}

fn calibrate(set: &EvalSet, classes: &[Vec<f32>]) -> BTreeMap<String, Calibration> {
    let cos = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum::<f64>()
    };
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut out = BTreeMap::new();
    for (m, embs) in &set.embeddings {
        let (mut right, mut wrong) = (Vec::new(), Vec::new());
        let mut per: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); classes.len()];
        for (e, labels) in embs.iter().zip(&set.labels) {
            let mut r = f64::NEG_INFINITY;
            let mut w = f64::NEG_INFINITY;
            for (c, class) in classes.iter().enumerate() {
                let v = cos(e, class);
                if labels.contains(&c) {
                    per[c].0.push(v);
                } else {
                    per[c].1.push(v);
                }
                if labels.contains(&c) {
                    r = r.max(v);
                } else {
                    w = w.max(v);
                }
            }
            right.push(r);
            wrong.push(w);
        }
        out.insert(
            m.clone(),
            Calibration {
                right_p10: pct(&mut right, 0.1),
                right_p50: pct(&mut right, 0.5),
                wrong_p50: pct(&mut wrong, 0.5),
                wrong_p90: pct(&mut wrong, 0.9),
                wrong_p99: pct(&mut wrong, 0.99),
                per_situation: set
                    .situations
                    .iter()
                    .zip(per.iter_mut())
                    .map(|(name, (a, i))| {
                        (
                            name.clone(),
                            SituationCosines {
                                active_p50: pct(a, 0.5),
                                inactive_p90: pct(i, 0.9),
                                inactive_p99: pct(i, 0.99),
                            },
                        )
                    })
                    .collect(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{MomentMeta, Split};

    #[test]
    fn encoders_of_one_modality_must_share_their_preprocessing() {
        use edgebind_models::preprocess::depth::DepthParams;
        let depth = |clip_s: f64| {
            Preprocess::Depth(DepthParams {
                frames: 2,
                clip_s,
                ..DepthParams::default()
            })
        };
        let src = |d: &str, p: Preprocess| (ContractModality::Depth, PathBuf::from(d), p);
        let ok = one_preprocess_per_modality(vec![
            src("b/depth.onnx", depth(0.5)),
            src("b/paired/depth.onnx", depth(0.5)),
        ])
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[&ContractModality::Depth], depth(0.5));
        let e = one_preprocess_per_modality(vec![
            src("b/depth.onnx", depth(1.0)),
            src("b/paired/depth.onnx", depth(0.5)),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("depth encoders disagree on preprocessing"),
            "{e}"
        );
        assert!(
            e.contains("b/depth.onnx has {") && e.contains("\"clip_s\":1.0"),
            "{e}"
        );
        assert!(
            e.contains("b/paired/depth.onnx has {") && e.contains("\"clip_s\":0.5"),
            "{e}"
        );
    }

    const S: u64 = 1_000_000_000;

    fn moment(recording: usize, t: u64) -> MomentMeta {
        MomentMeta {
            recording,
            t_end: t * S,
            label: vec!["x".into()],
            clean: true,
            stable_ns: 0,
            split: Split::Train,
        }
    }

    #[test]
    fn multi_clip_averages_rows_inside_the_span_of_one_recording() {
        // Recording 0 has moments at 1..=4 s, recording 1 at 5 s.
        let moments: Vec<MomentMeta> = (1..=4)
            .map(|t| moment(0, t))
            .chain([moment(1, 5)])
            .collect();
        let rows: BTreeMap<usize, Vec<f32>> = BTreeMap::from([
            (0, vec![1.0, 0.0]),
            (1, vec![0.0, 1.0]),
            // moment 2 has no row (its window saw a change): skipped
            (3, vec![0.0, 1.0]),
            (4, vec![1.0, 0.0]),
        ]);
        // Back 2 s from 4 s: the rows of 2 s and 4 s ((0,1) twice).
        assert_eq!(multi_clip(&moments, &rows, 2 * S)[&3], vec![0.0, 1.0]);
        // Back 3 s: (1,0) + 2 x (0,1), normalised.
        let v = &multi_clip(&moments, &rows, 3 * S)[&3];
        assert!((v[0] - 0.447_213_6).abs() < 1e-6 && (v[1] - 0.894_427_2).abs() < 1e-6);
        // No span: the row itself; another recording never mixes in.
        assert_eq!(multi_clip(&moments, &rows, 0)[&3], vec![0.0, 1.0]);
        assert_eq!(multi_clip(&moments, &rows, 10 * S)[&4], vec![1.0, 0.0]);
        // A moment without a row of its own has none.
        assert!(!multi_clip(&moments, &rows, 10 * S).contains_key(&2));
    }
}
