//! Real data: binding IMU windows to the text tower on UCI HAPT, then
//! zero-shot classification with paraphrased label prompts, beside a
//! supervised classifier of the same size.
//!
//! Data: `scripts/fetch-hapt.sh` writes `hapt.json` plus little-endian
//! `float32 [N, 6, 128]` windows (acc x,y,z in g, gyro x,y,z in rad/s, 50 Hz),
//! `u8` class indices and `u8` user ids per split; train = users 1-21,
//! test = users 22-30.
//!
//! Binding: each training window's anchor is the text tower's embedding of a
//! caption of its activity, drawn per step from the `[train]` prompts of
//! `configs/hapt-prompts.toml` (embedded once). Zero-shot evaluation uses the
//! `[eval]` prompts, a different set: per class the prompt embeddings are
//! averaged and renormalised, and each test window goes to the most similar
//! class. The baseline is the same encoder with a linear head on its
//! 384-d output, trained with cross-entropy for the same steps, batch and
//! optimiser.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use candle_core::{D, DType, Device, Tensor, Var};
use edgebind_models::contract::ContractModality;
use serde::{Deserialize, Serialize};

use crate::loss::info_nce;
use crate::model::{Encoder, EncoderConfig, l2_normalize};
use crate::optim::{AdamW, OptimConfig};
use crate::params::{Init, Rng};

/// `edgebind-train har`: bind IMU to text on UCI HAPT and compare zero-shot
/// with supervised accuracy on held-out users.
#[derive(Debug, Clone, clap::Args)]
pub struct HarArgs {
    /// Directory written by scripts/fetch-hapt.sh (default
    /// ~/.cache/edgebind/data/hapt).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Label prompts (TOML with [train] and [eval] tables: class -> prompts).
    #[arg(long, default_value = "configs/hapt-prompts.toml")]
    pub prompts: PathBuf,
    /// Training steps (each of the two models).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// InfoNCE temperature; also the logit scale (1/T) of the supervised head.
    #[arg(long, default_value_t = 0.07)]
    pub temperature: f64,
    /// Binding loss: `class` counts every window of the same activity in the
    /// batch as a positive (captions of one class are paraphrases); `infonce`
    /// is ImageBind's plain symmetric InfoNCE (item i's own caption only).
    #[arg(long, value_enum, default_value_t = BindLoss::Class)]
    pub loss: BindLoss,
    /// Peak learning rate (AdamW, warm-up then cosine).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Encoder width.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Encoder depth.
    #[arg(long, default_value_t = 2)]
    pub depth: usize,
    /// Seed (weights, batches, caption draws, drop path).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print a progress line every this many steps.
    #[arg(long, default_value_t = 100)]
    pub log_every: usize,
    /// Skip the supervised baseline.
    #[arg(long)]
    pub no_supervised: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The binding loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BindLoss {
    /// Multi-positive symmetric InfoNCE: same-class items are positives.
    Class,
    /// Plain symmetric InfoNCE (diagonal positives).
    Infonce,
}

// ---------------------------------------------------------------- data

/// The header `hapt.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Channel names.
    pub channels: Vec<String>,
    /// Samples per second.
    pub sample_rate_hz: f64,
    /// Samples per window.
    pub window: usize,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// `train` and `test`.
    pub splits: std::collections::BTreeMap<String, SplitHeader>,
}

/// One split's files.
#[derive(Debug, Clone, Deserialize)]
pub struct SplitHeader {
    /// Windows file (f32 LE `[N, C, L]`).
    pub x: String,
    /// Labels file (u8).
    pub y: String,
    /// User ids file (u8).
    pub user: String,
    /// Number of windows.
    pub windows: usize,
    /// User ids present.
    pub users: Vec<u32>,
}

/// Windows `[N, C, L]` (flat, channels-first) with class labels.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Channels.
    pub channels: usize,
    /// Samples per window.
    pub len: usize,
    /// `N * channels * len` values.
    pub x: Vec<f32>,
    /// Class per window.
    pub y: Vec<usize>,
}

impl Windows {
    /// Number of windows.
    pub fn n(&self) -> usize {
        self.y.len()
    }

    /// A batch `[k, C, L]` of the windows at `idx`.
    pub fn batch(&self, idx: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
        let w = self.channels * self.len;
        let mut v = Vec::with_capacity(idx.len() * w);
        for &i in idx {
            v.extend_from_slice(&self.x[i * w..(i + 1) * w]);
        }
        Tensor::from_vec(v, (idx.len(), self.channels, self.len), dev)
    }
}

/// Reads the header and one split from `dir`.
pub fn load_split(dir: &Path, split: &str) -> anyhow::Result<(Header, Windows)> {
    let hp = dir.join("hapt.json");
    let header: Header = serde_json::from_str(
        &std::fs::read_to_string(&hp)
            .with_context(|| format!("{} (run scripts/fetch-hapt.sh)", hp.display()))?,
    )
    .with_context(|| format!("{}: not a HAPT header", hp.display()))?;
    let s = header
        .splits
        .get(split)
        .with_context(|| format!("{}: no split {split:?}", hp.display()))?;
    let (c, l) = (header.channels.len(), header.window);
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("{}", p.display()))
    };
    let xb = read(&s.x)?;
    ensure!(
        xb.len() == s.windows * c * l * 4,
        "{}: {} bytes, expected {} windows x {c} x {l} x 4",
        s.x,
        xb.len(),
        s.windows
    );
    let x = xb
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let y: Vec<usize> = read(&s.y)?.into_iter().map(usize::from).collect();
    ensure!(
        y.len() == s.windows && y.iter().all(|&k| k < header.classes.len()),
        "{}: {} labels (expected {}) or a label outside 0..{}",
        s.y,
        y.len(),
        s.windows,
        header.classes.len()
    );
    Ok((
        header.clone(),
        Windows {
            channels: c,
            len: l,
            x,
            y,
        },
    ))
}

/// Per-channel mean and standard deviation (over windows and time).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelNorm {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel (floored at 1e-6).
    pub std: Vec<f32>,
}

impl ChannelNorm {
    /// Statistics of `w` (use the training split only).
    pub fn fit(w: &Windows) -> ChannelNorm {
        let (c, l) = (w.channels, w.len);
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for win in w.x.chunks_exact(c * l) {
            for (ch, row) in win.chunks_exact(l).enumerate() {
                for &v in row {
                    sum[ch] += v as f64;
                    sq[ch] += (v as f64) * (v as f64);
                }
            }
        }
        let n = (w.n() * l).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt().max(1e-6)) as f32)
            .collect();
        ChannelNorm {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Normalises `w` in place: `(x - mean) / std` per channel.
    pub fn apply(&self, w: &mut Windows) {
        let l = w.len;
        for win in w.x.chunks_exact_mut(w.channels * l) {
            for (ch, row) in win.chunks_exact_mut(l).enumerate() {
                for v in row {
                    *v = (*v - self.mean[ch]) / self.std[ch];
                }
            }
        }
    }
}

// ---------------------------------------------------------------- prompts

/// Prompts per class, in the header's class order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompts {
    /// Training captions per class.
    pub train: Vec<Vec<String>>,
    /// Evaluation prompts per class.
    pub eval: Vec<Vec<String>>,
}

impl Prompts {
    /// Reads a prompt file; `classes` must each have prompts in both tables.
    pub fn load(path: &Path, classes: &[String]) -> anyhow::Result<Prompts> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read prompt file {}", path.display()))?;
        Prompts::parse(&text, &path.display().to_string(), classes)
    }

    /// Parses prompt-file text; errors name `origin` and the key.
    pub fn parse(text: &str, origin: &str, classes: &[String]) -> anyhow::Result<Prompts> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("{origin}: not valid TOML: {e}"))?;
        for k in doc.keys() {
            if k != "train" && k != "eval" {
                bail!("{origin}: unknown table [{k}] (expected [train] and [eval])");
            }
        }
        let table = |name: &str| -> anyhow::Result<Vec<Vec<String>>> {
            let t = doc
                .get(name)
                .with_context(|| format!("{origin}: missing table [{name}]"))?
                .as_table()
                .with_context(|| {
                    format!("{origin}: {name} must be a table of class = [prompts]")
                })?;
            for k in t.keys() {
                ensure!(
                    classes.contains(k),
                    "{origin}: [{name}] {k}: not a class of the data (classes: {})",
                    classes.join(", ")
                );
            }
            classes
                .iter()
                .map(|c| {
                    let v = t
                        .get(c)
                        .with_context(|| format!("{origin}: [{name}] has no prompts for {c}"))?
                        .as_array()
                        .with_context(|| {
                            format!("{origin}: [{name}] {c} must be a list of strings")
                        })?;
                    let ps = v
                        .iter()
                        .map(|p| {
                            p.as_str()
                                .filter(|s| !s.trim().is_empty())
                                .map(str::to_owned)
                                .with_context(|| {
                                    format!(
                                        "{origin}: [{name}] {c}: {p:?} is not a non-empty string"
                                    )
                                })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    ensure!(!ps.is_empty(), "{origin}: [{name}] {c} is an empty list");
                    Ok(ps)
                })
                .collect()
        };
        Ok(Prompts {
            train: table("train")?,
            eval: table("eval")?,
        })
    }
}

// ---------------------------------------------------------------- losses

/// Mean cross-entropy of `logits [N, K]` against class indices `labels [N]`
/// (u32), via log-softmax.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    picked.mean_all()?.neg()
}

/// Symmetric multi-positive InfoNCE: logits `s·a / T`; for row i every column
/// j with `class[j] == class[i]` is a positive (`-log Σ_pos softmax`), both
/// directions averaged. With all classes distinct it equals plain InfoNCE.
pub fn class_info_nce(
    student: &Tensor,
    anchor: &Tensor,
    class: &[usize],
    temperature: f64,
) -> candle_core::Result<Tensor> {
    let n = class.len();
    let mask: Vec<f32> = (0..n * n)
        .map(|k| {
            if class[k / n] == class[k % n] {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (n, n), student.device())?;
    let logits = (student.matmul(&anchor.detach().t()?)? / temperature)?;
    let one_way = |l: &Tensor| -> candle_core::Result<Tensor> {
        let all = l.log_sum_exp(D::Minus1)?;
        let pos = (l + &mask)?.log_sum_exp(D::Minus1)?;
        (all - pos)?.mean_all()
    };
    ((one_way(&logits)? + one_way(&logits.t()?.contiguous()?)?)? * 0.5)?.to_dtype(DType::F32)
}

// ---------------------------------------------------------------- training

/// Settings shared by both models.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSettings {
    /// Steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Temperature (InfoNCE; 1/T scales the supervised logits).
    pub temperature: f64,
    /// Binding loss.
    pub loss: BindLoss,
    /// Optimiser.
    #[serde(skip)]
    pub optim: OptimConfig,
    /// Seed.
    pub seed: u64,
    /// Progress every this many steps (0 = never).
    pub log_every: usize,
}

/// The IMU encoder for `[channels, len]` windows: patch 8 (0.16 s at 50 Hz),
/// so 128 samples give 16 tokens + CLS.
pub fn har_encoder(channels: usize, len: usize, dim: usize, depth: usize) -> EncoderConfig {
    let mut cfg = EncoderConfig::small(ContractModality::Imu).expect("IMU has a small config");
    cfg.input = vec![channels, len];
    cfg.patch = vec![8];
    cfg.dim = dim;
    cfg.depth = depth;
    cfg.heads = 4;
    cfg.drop_path = 0.1;
    cfg
}

fn sample(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    (0..k)
        .map(|_| (rng.next_u64() % n as u64) as usize)
        .collect()
}

/// Mean loss per logging interval, printed with rate and ETA.
struct LossLog {
    what: &'static str,
    steps: usize,
    every: usize,
    t0: Instant,
    acc: (f64, usize),
    curve: Vec<f64>,
}

impl LossLog {
    fn new(what: &'static str, steps: usize, every: usize) -> LossLog {
        LossLog {
            what,
            steps,
            every,
            t0: Instant::now(),
            acc: (0.0, 0),
            curve: Vec::new(),
        }
    }

    fn push(&mut self, step: usize, loss: f64) {
        self.acc.0 += loss;
        self.acc.1 += 1;
        if self.every > 0 && (step.is_multiple_of(self.every) || step == self.steps) {
            let mean = self.acc.0 / self.acc.1 as f64;
            let el = self.t0.elapsed().as_secs_f64();
            let rate = step as f64 / el.max(1e-9);
            eprintln!(
                "[{}] step {step:>5}/{}  loss {mean:.4}  {rate:.1} steps/s  elapsed {el:.0}s  ETA {:.0}s",
                self.what,
                self.steps,
                (self.steps - step) as f64 / rate.max(1e-9)
            );
            self.curve.push(mean);
            self.acc = (0.0, 0);
        }
    }
}

/// Trains an encoder to bind `data` to caption embeddings: `captions[c]` are
/// the unit vectors of class c's training captions; each window's anchor is
/// one of them drawn at random per step. Returns the encoder and the last
/// logged mean loss values (first, last).
pub fn train_binding(
    cfg: &EncoderConfig,
    data: &Windows,
    captions: &[Vec<Vec<f32>>],
    s: &TrainSettings,
    dev: &Device,
) -> anyhow::Result<(Encoder, Vec<f64>)> {
    let mut rng = Rng::new(s.seed);
    let enc = Encoder::new(cfg, &mut rng, dev)?;
    let mut opt = AdamW::new(s.optim.clone(), s.steps, &enc.params)?;
    let dim = cfg.out_dim;
    let mut log = LossLog::new("bind", s.steps, s.log_every);
    for step in 1..=s.steps {
        let idx = sample(&mut rng, data.n(), s.batch);
        let x = data.batch(&idx, dev)?;
        let class: Vec<usize> = idx.iter().map(|&i| data.y[i]).collect();
        let mut a = Vec::with_capacity(idx.len() * dim);
        for &c in &class {
            let list = &captions[c];
            a.extend_from_slice(&list[(rng.next_u64() % list.len() as u64) as usize]);
        }
        let anchor = Tensor::from_vec(a, (idx.len(), dim), dev)?;
        let emb = enc.forward(&x, Some(&mut rng))?;
        let loss = match s.loss {
            BindLoss::Class => class_info_nce(&emb, &anchor, &class, s.temperature)?,
            BindLoss::Infonce => info_nce(&emb, &anchor, s.temperature)?,
        };
        opt.step(&enc.params, &loss.backward()?)?;
        log.push(step, loss.to_scalar::<f32>()? as f64);
    }
    Ok((enc, log.curve))
}

/// An encoder plus a linear head on its 384-d unit output, logits scaled by
/// `1 / temperature` (so the head sees what the zero-shot classifier sees).
#[derive(Debug)]
pub struct Classifier {
    /// The encoder (its `params` also hold the head).
    pub enc: Encoder,
    /// Head weight `[out_dim, K]`.
    pub w: Var,
    /// Head bias `[K]`.
    pub b: Var,
    /// Logit scale.
    pub scale: f64,
}

impl Classifier {
    /// Logits `[N, K]`.
    pub fn logits(&self, x: &Tensor, rng: Option<&mut Rng>) -> candle_core::Result<Tensor> {
        let e = self.enc.forward(x, rng)?;
        e.matmul(self.w.as_tensor())?
            .broadcast_add(self.b.as_tensor())?
            * self.scale
    }
}

/// Trains the supervised baseline (same encoder + linear head, cross-entropy).
pub fn train_supervised(
    cfg: &EncoderConfig,
    data: &Windows,
    classes: usize,
    s: &TrainSettings,
    dev: &Device,
) -> anyhow::Result<(Classifier, Vec<f64>)> {
    let mut rng = Rng::new(s.seed);
    let mut enc = Encoder::new(cfg, &mut rng, dev)?;
    let w = enc.params.add(
        "cls_head.w".into(),
        &[cfg.out_dim, classes],
        // Unit-scale logits at the start (not ViT's 0.02): with 0.02 the
        // encoder's own 0.02-initialised output layer and this one multiply
        // to a vanishing gradient and the baseline trains far slower.
        Init::TruncNormal(1.0 / (cfg.out_dim as f64).sqrt()),
        true,
        &mut rng,
        dev,
    )?;
    let b = enc.params.add(
        "cls_head.b".into(),
        &[classes],
        Init::Zeros,
        false,
        &mut rng,
        dev,
    )?;
    let clf = Classifier {
        enc,
        w,
        b,
        scale: 1.0 / s.temperature,
    };
    let mut opt = AdamW::new(s.optim.clone(), s.steps, &clf.enc.params)?;
    let mut log = LossLog::new("supervised", s.steps, s.log_every);
    for step in 1..=s.steps {
        let idx = sample(&mut rng, data.n(), s.batch);
        let x = data.batch(&idx, dev)?;
        let y: Vec<u32> = idx.iter().map(|&i| data.y[i] as u32).collect();
        let y = Tensor::new(y.as_slice(), dev)?;
        let loss = cross_entropy(&clf.logits(&x, Some(&mut rng))?, &y)?;
        opt.step(&clf.enc.params, &loss.backward()?)?;
        log.push(step, loss.to_scalar::<f32>()? as f64);
    }
    Ok((clf, log.curve))
}

// ---------------------------------------------------------------- evaluation

/// Accuracy figures of one classifier.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    /// Top-1 accuracy.
    pub top1: f64,
    /// Accuracy per class (recall), in class order.
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Scores predictions against labels for `k` classes.
pub fn score(pred: &[usize], truth: &[usize], k: usize) -> Scores {
    let mut confusion = vec![vec![0usize; k]; k];
    for (&p, &t) in pred.iter().zip(truth) {
        confusion[t][p] += 1;
    }
    let hits: usize = (0..k).map(|c| confusion[c][c]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    Scores {
        top1: hits as f64 / truth.len().max(1) as f64,
        per_class,
        confusion,
    }
}

/// Class prototypes: per class the mean of its prompt embeddings,
/// renormalised; `[K, dim]`.
pub fn prototypes(per_class: &[Vec<Vec<f32>>], dev: &Device) -> anyhow::Result<Tensor> {
    let dim = per_class[0][0].len();
    let mut v = Vec::with_capacity(per_class.len() * dim);
    for list in per_class {
        let mut m = vec![0f32; dim];
        for e in list {
            m.iter_mut().zip(e).for_each(|(a, b)| *a += b);
        }
        v.extend(m);
    }
    Ok(l2_normalize(&Tensor::from_vec(
        v,
        (per_class.len(), dim),
        dev,
    )?)?)
}

fn predict(
    data: &Windows,
    dev: &Device,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::with_capacity(data.n());
    let idx: Vec<usize> = (0..data.n()).collect();
    for chunk in idx.chunks(256) {
        let scores = f(&data.batch(chunk, dev)?)?;
        out.extend(
            scores
                .argmax(1)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|p| p as usize),
        );
    }
    Ok(out)
}

/// Zero-shot: each window goes to the prototype most similar to its embedding.
pub fn eval_zero_shot(
    enc: &Encoder,
    protos: &Tensor,
    data: &Windows,
    dev: &Device,
) -> anyhow::Result<Scores> {
    let pred = predict(data, dev, |x| enc.forward(x, None)?.matmul(&protos.t()?))?;
    Ok(score(&pred, &data.y, protos.dim(0)?))
}

/// Supervised: argmax of the head's logits.
pub fn eval_supervised(clf: &Classifier, data: &Windows, dev: &Device) -> anyhow::Result<Scores> {
    let k = clf.b.as_tensor().dim(0)?;
    let pred = predict(data, dev, |x| clf.logits(x, None))?;
    Ok(score(&pred, &data.y, k))
}

// ---------------------------------------------------------------- the command

/// The JSON report of `edgebind-train har`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Data directory.
    pub data: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Windows per split.
    pub train_windows: usize,
    /// Test windows (users 22-30).
    pub test_windows: usize,
    /// Encoder configuration (both models).
    pub encoder: EncoderConfig,
    /// Parameters of the encoder.
    pub encoder_params: usize,
    /// Training settings.
    pub settings: TrainSettings,
    /// Peak learning rate.
    pub lr: f64,
    /// Channel statistics of the training users.
    pub norm: ChannelNorm,
    /// Zero-shot top-1 on the test users.
    pub zero_shot_top1: f64,
    /// Zero-shot details.
    pub zero_shot: Scores,
    /// Supervised top-1 (null when skipped).
    pub supervised_top1: Option<f64>,
    /// Supervised details.
    pub supervised: Option<Scores>,
    /// Accuracy of always predicting the most frequent test class.
    pub majority: f64,
    /// 1 / classes.
    pub chance: f64,
    /// Binding loss, mean per logging interval.
    pub bind_loss_curve: Vec<f64>,
    /// Supervised loss, mean per logging interval.
    pub supervised_loss_curve: Vec<f64>,
    /// Seconds of binding training.
    pub bind_seconds: f64,
    /// Seconds of supervised training.
    pub supervised_seconds: f64,
    /// Total wall time (including loading and text embedding).
    pub seconds: f64,
    /// Seed.
    pub seed: u64,
    /// Prompts used.
    pub prompts: Prompts,
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("EDGEBIND_DATA")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/edgebind/data")))
        .unwrap_or_else(|| PathBuf::from(".cache/edgebind/data"));
    base.join("hapt")
}

/// Runs `edgebind-train har`.
pub fn run(args: HarArgs) -> anyhow::Result<()> {
    let t_all = Instant::now();
    ensure!(
        args.steps >= 1 && args.batch >= 2,
        "--steps must be >= 1 and --batch >= 2"
    );
    ensure!(args.temperature > 0.0, "--temperature must be positive");
    let dev = Device::Cpu;
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let (header, mut train) = load_split(&dir, "train")?;
    let (_, mut test) = load_split(&dir, "test")?;
    let k = header.classes.len();
    let prompts = Prompts::load(&args.prompts, &header.classes)?;
    let norm = ChannelNorm::fit(&train);
    norm.apply(&mut train);
    norm.apply(&mut test);
    eprintln!(
        "data {}: train {} windows (users {:?}), test {} windows (users {:?}), {} classes, [{}, {}] at {} Hz",
        dir.display(),
        train.n(),
        header.splits["train"].users,
        test.n(),
        header.splits["test"].users,
        k,
        train.channels,
        train.len,
        header.sample_rate_hz
    );

    let tower = edgebind_models::text::TextTower::load_default()
        .context("text tower (run scripts/fetch-models.sh)")?;
    let embed = |lists: &[Vec<String>]| -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
        lists
            .iter()
            .map(|ps| {
                let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                Ok(tower.embed(&refs)?.into_iter().map(|e| e.vector).collect())
            })
            .collect()
    };
    let train_caps = embed(&prompts.train)?;
    let protos = prototypes(&embed(&prompts.eval)?, &dev)?;

    let cfg = har_encoder(train.channels, train.len, args.dim, args.depth);
    let settings = TrainSettings {
        steps: args.steps,
        batch: args.batch,
        temperature: args.temperature,
        loss: args.loss,
        optim: OptimConfig {
            lr: args.lr,
            warmup_steps: (args.steps / 10).clamp(1, 100),
            ..OptimConfig::default()
        },
        seed: args.seed,
        log_every: args.log_every,
    };
    let t = Instant::now();
    let (enc, bind_curve) = train_binding(&cfg, &train, &train_caps, &settings, &dev)?;
    let bind_seconds = t.elapsed().as_secs_f64();
    let zs = eval_zero_shot(&enc, &protos, &test, &dev)?;
    eprintln!(
        "zero-shot top-1 {:.3} ({:.1} steps/s)",
        zs.top1,
        args.steps as f64 / bind_seconds
    );
    let (sup, sup_curve, sup_seconds) = if args.no_supervised {
        (None, Vec::new(), 0.0)
    } else {
        let t = Instant::now();
        let (clf, curve) = train_supervised(&cfg, &train, k, &settings, &dev)?;
        let secs = t.elapsed().as_secs_f64();
        (Some(eval_supervised(&clf, &test, &dev)?), curve, secs)
    };
    let mut counts = vec![0usize; k];
    test.y.iter().for_each(|&c| counts[c] += 1);
    let majority = *counts.iter().max().unwrap_or(&0) as f64 / test.n().max(1) as f64;
    let report = Report {
        data: dir.display().to_string(),
        classes: header.classes.clone(),
        train_windows: train.n(),
        test_windows: test.n(),
        encoder_params: enc.params.count(),
        encoder: cfg,
        settings,
        lr: args.lr,
        norm,
        zero_shot_top1: zs.top1,
        zero_shot: zs,
        supervised_top1: sup.as_ref().map(|s| s.top1),
        supervised: sup,
        majority,
        chance: 1.0 / k as f64,
        bind_loss_curve: bind_curve,
        supervised_loss_curve: sup_curve,
        bind_seconds,
        supervised_seconds: sup_seconds,
        seconds: t_all.elapsed().as_secs_f64(),
        seed: args.seed,
        prompts,
    };
    print!("{}", table(&report));
    if let Some(p) = &args.report {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// The human-readable summary.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "UCI HAPT, test users 22-30 ({} windows); encoder dim {} depth {} ({} params); {} steps, batch {}, T {}, loss {:?}\n",
        r.test_windows,
        r.encoder.dim,
        r.encoder.depth,
        r.encoder_params,
        r.settings.steps,
        r.settings.batch,
        r.settings.temperature,
        r.settings.loss
    );
    s += &format!("{:<20} {:>10} {:>11}\n", "class", "zero-shot", "supervised");
    for (c, name) in r.classes.iter().enumerate() {
        let sup = r
            .supervised
            .as_ref()
            .map_or("-".to_string(), |x| format!("{:.3}", x.per_class[c]));
        s += &format!("{name:<20} {:>10.3} {sup:>11}\n", r.zero_shot.per_class[c]);
    }
    let sup = r
        .supervised_top1
        .map_or("-".to_string(), |x| format!("{x:.3}"));
    s += &format!("{:<20} {:>10.3} {sup:>11}\n", "top-1", r.zero_shot_top1);
    s += &format!(
        "chance {:.3}, majority class {:.3}; bind {:.1}s ({:.1} steps/s), supervised {:.1}s, total {:.1}s\n",
        r.chance,
        r.majority,
        r.bind_seconds,
        r.settings.steps as f64 / r.bind_seconds.max(1e-9),
        r.supervised_seconds,
        r.seconds
    );
    s += "zero-shot confusion (rows true, columns predicted):\n";
    for row in &r.zero_shot.confusion {
        s += &format!(
            "  {}\n",
            row.iter().map(|v| format!("{v:>5}")).collect::<String>()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn channel_norm_uses_given_stats_per_channel() {
        // 2 windows, 2 channels, 2 samples: channel 0 = 1,3,5,7; channel 1 = 10 everywhere.
        let mut w = Windows {
            channels: 2,
            len: 2,
            x: vec![1.0, 3.0, 10.0, 10.0, 5.0, 7.0, 10.0, 10.0],
            y: vec![0, 1],
        };
        let n = ChannelNorm::fit(&w);
        assert_eq!(n.mean, vec![4.0, 10.0]);
        assert!((n.std[0] - 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(n.std[1], 1e-6);
        n.apply(&mut w);
        let s = 5f32.sqrt();
        let want = [-3.0 / s, -1.0 / s, 0.0, 0.0, 1.0 / s, 3.0 / s, 0.0, 0.0];
        for (a, b) in w.x.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{:?}", w.x);
        }
    }

    #[test]
    fn prompts_parse_in_class_order() {
        let p = Prompts::parse(
            "[train]\nb = [\"bee\"]\na = [\"ay\", \"aa\"]\n[eval]\na = [\"x\"]\nb = [\"y\"]\n",
            "p.toml",
            &classes(),
        )
        .unwrap();
        assert_eq!(p.train, vec![vec!["ay", "aa"], vec!["bee"]]);
        assert_eq!(p.eval, vec![vec!["x"], vec!["y"]]);
    }

    #[test]
    fn prompt_errors_name_the_file_and_key() {
        let err = |text: &str| {
            Prompts::parse(text, "p.toml", &classes())
                .unwrap_err()
                .to_string()
        };
        let e = err("[train]\na = [\"x\"]\nb = [\"y\"]\n");
        assert!(e.contains("p.toml") && e.contains("[eval]"), "{e}");
        let e = err("[train]\na = [\"x\"]\n[eval]\na = [\"x\"]\nb = [\"y\"]\n");
        assert!(
            e.contains("p.toml") && e.contains("[train] has no prompts for b"),
            "{e}"
        );
        let e = err(
            "[train]\na = [\"x\"]\nb = [\"y\"]\nc = [\"z\"]\n[eval]\na = [\"x\"]\nb = [\"y\"]\n",
        );
        assert!(e.contains("[train] c: not a class"), "{e}");
        let e = err("[train]\na = [\"x\"]\nb = []\n[eval]\na = [\"x\"]\nb = [\"y\"]\n");
        assert!(e.contains("[train] b is an empty list"), "{e}");
        let e = err("[train]\na = [3]\nb = [\"y\"]\n[eval]\na = [\"x\"]\nb = [\"y\"]\n");
        assert!(
            e.contains("[train] a: ") && e.contains("is not a non-empty string"),
            "{e}"
        );
        let e = err("[train\n");
        assert!(e.contains("p.toml: not valid TOML"), "{e}");
    }

    #[test]
    fn the_shipped_prompt_file_parses_and_keeps_eval_apart_from_train() {
        let classes: Vec<String> = [
            "walking",
            "walking_upstairs",
            "walking_downstairs",
            "sitting",
            "standing",
            "lying",
        ]
        .map(String::from)
        .to_vec();
        let path =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                .join("../configs/hapt-prompts.toml");
        let p = Prompts::load(&path, &classes).unwrap();
        let train: Vec<&String> = p.train.iter().flatten().collect();
        for e in p.eval.iter().flatten() {
            assert!(
                !train.contains(&e),
                "eval prompt {e:?} is also a train prompt"
            );
        }
    }

    #[test]
    fn cross_entropy_matches_a_hand_computed_case() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0f32, 0.0], [1.0, 2.0]], &dev)?;
        let y = Tensor::new(&[0u32, 1], &dev)?;
        let got = cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64;
        let want = (2f64.ln() + (1.0 + (-1f64).exp()).ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn class_info_nce_equals_info_nce_when_classes_are_distinct() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let s = l2_normalize(&Tensor::new(&[[1f32, 0.2], [0.1, 1.0], [0.5, 0.5]], &dev)?)?;
        let a = l2_normalize(&Tensor::new(
            &[[0.9f32, 0.1], [0.0, 1.0], [1.0, 1.0]],
            &dev,
        )?)?;
        let x = class_info_nce(&s, &a, &[0, 1, 2], 0.5)?.to_scalar::<f32>()?;
        let y = info_nce(&s, &a, 0.5)?.to_scalar::<f32>()?;
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        // Two same-class rows: each counts the other as a positive too (lower loss).
        let z = class_info_nce(&s, &a, &[0, 0, 1], 0.5)?.to_scalar::<f32>()?;
        assert!(z < x, "{z} vs {x}");
        Ok(())
    }

    #[test]
    fn score_counts_confusion_and_per_class() {
        let s = score(&[0, 1, 1, 1], &[0, 0, 1, 1], 2);
        assert_eq!(s.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(s.top1, 0.75);
        assert_eq!(s.per_class, vec![0.5, 1.0]);
    }

    /// Two synthetic classes of [6, 32] windows (a slow sine vs a fast one,
    /// random phase and noise); random unit "caption" embeddings per class.
    fn synthetic(n: usize, rng: &mut Rng) -> Windows {
        let (c, l) = (6, 32);
        let mut x = Vec::with_capacity(n * c * l);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let k = i % 2;
            let f = if k == 0 { 1.0 } else { 4.0 };
            let ph = rng.uniform() * std::f64::consts::TAU;
            for ch in 0..c {
                for t in 0..l {
                    let v =
                        (f * t as f64 * std::f64::consts::TAU / l as f64 + ph + ch as f64).sin();
                    x.push((v + 0.2 * rng.normal()) as f32);
                }
            }
            y.push(k);
        }
        Windows {
            channels: c,
            len: l,
            x,
            y,
        }
    }

    fn unit(rng: &mut Rng, d: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..d).map(|_| rng.normal() as f32).collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect()
    }

    #[test]
    fn both_paths_learn_a_synthetic_two_class_task() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(7);
        let mut train = synthetic(128, &mut rng);
        let mut test = synthetic(64, &mut rng);
        let norm = ChannelNorm::fit(&train);
        norm.apply(&mut train);
        norm.apply(&mut test);
        let mut cfg = har_encoder(6, 32, 32, 1);
        cfg.out_dim = 16;
        cfg.drop_path = 0.0;
        // Train captions: a class direction plus small paraphrase noise;
        // eval prompts: other noisy copies of the same direction.
        let dirs = [unit(&mut rng, 16), unit(&mut rng, 16)];
        let noisy = |rng: &mut Rng, d: &[f32]| -> Vec<f32> {
            let e = unit(rng, 16);
            let v: Vec<f32> = d.iter().zip(&e).map(|(a, b)| a + 0.3 * b).collect();
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.into_iter().map(|a| a / n).collect()
        };
        let caps: Vec<Vec<Vec<f32>>> = dirs
            .iter()
            .map(|d| (0..3).map(|_| noisy(&mut rng, d)).collect())
            .collect();
        let evals: Vec<Vec<Vec<f32>>> = dirs
            .iter()
            .map(|d| (0..2).map(|_| noisy(&mut rng, d)).collect())
            .collect();
        for loss in [BindLoss::Class, BindLoss::Infonce] {
            let s = TrainSettings {
                steps: 80,
                batch: 16,
                temperature: 0.1,
                loss,
                optim: OptimConfig {
                    lr: 3e-3,
                    warmup_steps: 4,
                    ..OptimConfig::default()
                },
                seed: 3,
                log_every: 0,
            };
            let (enc, _) = train_binding(&cfg, &train, &caps, &s, &dev)?;
            let zs = eval_zero_shot(&enc, &prototypes(&evals, &dev)?, &test, &dev)?;
            assert!(zs.top1 > 0.9, "zero-shot ({loss:?}) {zs:?}");
            if loss == BindLoss::Class {
                let (clf, _) = train_supervised(&cfg, &train, 2, &s, &dev)?;
                let sup = eval_supervised(&clf, &test, &dev)?;
                assert!(sup.top1 > 0.9, "supervised {sup:?}");
            }
        }
        Ok(())
    }
}
