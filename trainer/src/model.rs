//! The student encoders, in the style of ImageBind at small size.
//!
//! ```text
//! input [B, C, S1..Sk] --patch stem (a convolution whose stride equals its
//!   kernel, computed as patchify + linear; IMU: linear patches of 8 samples)
//!   --> LayerNorm --> [CLS] + tokens + learned positions
//!   --> depth x pre-norm block: x + DropPath(Attn(LN(x)))  (learned k/v bias
//!       token when `bias_kv`), x + DropPath(MLP(LN(x)))  (GELU (erf), ratio 4)
//!   --> head: LayerNorm --> token 0 --> linear (no bias) --> L2 normalise
//! ```
//!
//! Images may take an optional **convolutional stem** before the patch stem
//! (`conv_stem = [24, 48]`: 3x3 convolutions with stride 2, padding 1 and
//! GELU, the clip's frames folded into channels), the "early convolutions"
//! of Xiao et al. 2021: the patch stem then cuts the downsampled feature map
//! into the same tokens. On the simulated camera (64x64, 2-frame clips) a
//! PyTorch replica of this encoder trained supervised for 2500 steps reached
//! 0.72 top-1 with the conv stem against 0.64 without (and 0.41 vs 0.28 with
//! single frames): small from-scratch ViTs see small objects badly through a
//! single 8x8 patch projection.
//!
//! One architecture serves every modality; [`EncoderConfig`] picks the input
//! shape and patch. Vision takes ImageBind's `[3, 2, H, W]` clip (the frame
//! repeated) with a time patch of 2, as ImageBind's 3-D convolution with
//! kernel 2 over time does. The stem differs from ImageBind in two documented
//! ways: one LayerNorm after the stem for every modality (ImageBind normalises
//! vision after adding positions instead), and audio patches do not overlap
//! (ImageBind: 16x16 with stride 10). The exact same arithmetic is written to
//! ONNX by [`crate::export`].
//!
//! Not here: the anchor (frozen) encoders, which are ONNX models run by
//! `edgebind-models`.

use candle_core::{D, Device, Result, Tensor, Var};
use edgebind_models::contract::{
    CONTRACT_VERSION, Contract, ContractModality, Dim, InputSpec, OutputSpec, Preprocess,
};
use edgebind_models::preprocess::audio::AudioParams;
use edgebind_models::preprocess::depth::DepthParams;
use edgebind_models::preprocess::imu::ImuParams;
use edgebind_models::preprocess::thermal::ThermalParams;
use edgebind_models::preprocess::vision::VisionParams;
use serde::{Deserialize, Serialize};

use crate::params::{Init, ParamSet, Rng};

/// Architecture of one student encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// What it encodes (not text: the text tower is never trained here).
    pub modality: ContractModality,
    /// Item shape, channels first (vision `[3, 2, H, W]` or `[3, H, W]`,
    /// audio `[1, mel, frames]`, depth/thermal `[1, H, W]` or `[1, 2, H, W]`,
    /// imu `[6, L]`).
    pub input: Vec<usize>,
    /// Patch size per dimension after the channels; each must divide its
    /// dimension.
    pub patch: Vec<usize>,
    /// Token width.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads (`dim` must be a multiple).
    pub heads: usize,
    /// MLP hidden width = `mlp_ratio * dim`.
    pub mlp_ratio: usize,
    /// Embedding size (the space's dimension).
    pub out_dim: usize,
    /// Learned key/value bias token in every attention (ImageBind: on for
    /// the modalities bound to the image).
    pub bias_kv: bool,
    /// Largest drop-path rate (the last block's; rates rise linearly from 0).
    pub drop_path: f64,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Output channels of the convolutional stem's layers (3x3, stride 2,
    /// padding 1, bias, GELU), applied before the patch stem; empty = none.
    /// Images only; every spatial patch size must be a multiple of
    /// `2^len`, and a clip's time patch must cover all its frames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv_stem: Vec<usize>,
    /// Overrides of the contract's preprocessing parameters, merged onto
    /// the modality's defaults (e.g. `{ min_depth_m = 1.0 }` for depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<serde_json::Value>,
}

/// A configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("encoder ({modality}): {detail}")]
pub struct ConfigError {
    /// The encoder's modality.
    pub modality: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl EncoderConfig {
    /// The small default of `modality`, sized so the whole bundle trains on a
    /// 2-core CPU (measured step times in trainer/README.md).
    /// `None` for text.
    pub fn small(modality: ContractModality) -> Option<EncoderConfig> {
        let (input, patch, bias_kv, drop_path) = match modality {
            ContractModality::Vision => (vec![3, 2, 64, 64], vec![2, 8, 8], false, 0.1),
            ContractModality::Audio => (vec![1, 128, 204], vec![16, 12], true, 0.1),
            ContractModality::Depth => (vec![1, 64, 64], vec![8, 8], true, 0.0),
            ContractModality::Thermal => (vec![1, 64, 64], vec![8, 8], true, 0.0),
            ContractModality::Imu => (vec![6, 1000], vec![8], true, 0.2),
            ContractModality::Text => return None,
        };
        Some(EncoderConfig {
            modality,
            input,
            patch,
            dim: 128,
            depth: 4,
            heads: 4,
            mlp_ratio: 4,
            out_dim: 384,
            bias_kv,
            drop_path,
            ln_eps: 1e-6,
            conv_stem: Vec::new(),
            preprocess: None,
        })
    }

    fn err(&self, detail: String) -> ConfigError {
        ConfigError {
            modality: self.modality.as_str(),
            detail,
        }
    }

    /// Checks sizes against each other and the modality.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let channels = match self.modality {
            ContractModality::Vision => 3,
            ContractModality::Audio | ContractModality::Depth | ContractModality::Thermal => 1,
            ContractModality::Imu => 6,
            ContractModality::Text => {
                return Err(self.err(
                    "text is the frozen tower's job; the trainer has no text encoder".into(),
                ));
            }
        };
        let ranks: &[usize] = match self.modality {
            ContractModality::Vision | ContractModality::Depth | ContractModality::Thermal => {
                &[3, 4]
            }
            ContractModality::Imu => &[2],
            _ => &[3],
        };
        if !ranks.contains(&self.input.len()) {
            return Err(self.err(format!(
                "input {:?} has {} dimensions; {} takes {}",
                self.input,
                self.input.len(),
                self.modality.as_str(),
                match self.modality {
                    ContractModality::Vision => "[3, frames, H, W] or [3, H, W]",
                    ContractModality::Imu => "[6, length]",
                    ContractModality::Audio => "[1, mel, frames]",
                    _ => "[1, frames, H, W] or [1, H, W]",
                }
            )));
        }
        if self.input[0] != channels {
            return Err(self.err(format!(
                "input has {} channels, {} needs {channels}",
                self.input[0],
                self.modality.as_str()
            )));
        }
        if self.patch.len() + 1 != self.input.len() {
            return Err(self.err(format!(
                "patch {:?} needs one size per input dimension after the channels ({})",
                self.patch,
                self.input.len() - 1
            )));
        }
        for (i, (&n, &p)) in self.input[1..].iter().zip(&self.patch).enumerate() {
            if p == 0 || n % p != 0 {
                return Err(self.err(format!(
                    "patch {p} does not divide input dimension {} of size {n}",
                    i + 1
                )));
            }
        }
        if !self.conv_stem.is_empty() {
            let k = self.conv_stem.len();
            let image = matches!(
                self.modality,
                ContractModality::Vision | ContractModality::Depth | ContractModality::Thermal
            );
            if !image {
                return Err(self.err("conv_stem is for images (vision, depth, thermal)".into()));
            }
            if self.input.len() == 4 && self.patch[0] != self.input[1] {
                return Err(self.err(format!(
                    "with conv_stem the time patch {} must cover all {} frames",
                    self.patch[0], self.input[1]
                )));
            }
            let n = self.patch.len();
            if k > 8
                || self.conv_stem.contains(&0)
                || self.patch[n - 2..]
                    .iter()
                    .any(|p| !p.is_multiple_of(1 << k))
            {
                return Err(self.err(format!(
                    "conv_stem {:?}: {k} stride-2 layers need spatial patches that are multiples of {} (got {:?}) and positive widths",
                    self.conv_stem,
                    1usize << k.min(8),
                    &self.patch[n - 2..]
                )));
            }
        }
        if self.dim == 0 || self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(self.err(format!(
                "dim {} must be a positive multiple of heads {}",
                self.dim, self.heads
            )));
        }
        if self.depth == 0 || self.mlp_ratio == 0 || self.out_dim == 0 {
            return Err(self.err("depth, mlp_ratio and out_dim must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(self.err(format!("drop_path {} is not in [0, 1)", self.drop_path)));
        }
        self.preprocess_with_overrides(self.default_preprocess().0)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What the patch stem cuts: `(item shape, patch)`. Without a conv stem
    /// the input and `patch`; with one, the conv stem's output
    /// `[C', H / 2^k, W / 2^k]` and the spatial patches divided by `2^k`.
    pub fn stem_view(&self) -> (Vec<usize>, Vec<usize>) {
        let Some(&c) = self.conv_stem.last() else {
            return (self.input.clone(), self.patch.clone());
        };
        let f = 1usize << self.conv_stem.len();
        let (n, m) = (self.input.len(), self.patch.len());
        (
            vec![c, self.input[n - 2] / f, self.input[n - 1] / f],
            vec![self.patch[m - 2] / f, self.patch[m - 1] / f],
        )
    }

    /// Input channels of the conv stem: channels times frames.
    pub fn conv_in(&self) -> usize {
        self.input[..self.input.len() - 2].iter().product()
    }

    /// Tokens after the stem (without CLS).
    pub fn patches(&self) -> usize {
        let (input, patch) = self.stem_view();
        input[1..].iter().zip(&patch).map(|(n, p)| n / p).product()
    }

    /// Values per patch (the stem's input width).
    pub fn patch_len(&self) -> usize {
        let (input, patch) = self.stem_view();
        input[0] * patch.iter().product::<usize>()
    }

    /// The contract the exported file carries: this input shape, the
    /// matching preprocessing (ImageBind's parameters otherwise), `space` and
    /// what it was bound against.
    pub fn contract(&self, space: &str, trained_against: &str, source: &str) -> Contract {
        let (base, window_s) = self.default_preprocess();
        // Validated configs merge cleanly; an unvalidated bad override keeps the defaults.
        let preprocess = self.preprocess_with_overrides(base.clone()).unwrap_or(base);
        let mut shape = vec![Dim::Symbol("batch".into())];
        shape.extend(self.input.iter().map(|&n| Dim::Fixed(n)));
        Contract {
            version: CONTRACT_VERSION,
            modality: self.modality,
            space: space.into(),
            input: InputSpec {
                name: self.modality.as_str().into(),
                shape,
            },
            output: OutputSpec {
                name: "embedding".into(),
                dim: self.out_dim,
            },
            preprocess,
            window_s: Some(window_s),
            trained_against: trained_against.into(),
            source: source.into(),
        }
    }

    /// `preprocess` merged onto `base`; the kind cannot change.
    fn preprocess_with_overrides(
        &self,
        base: Preprocess,
    ) -> std::result::Result<Preprocess, String> {
        let Some(over) = &self.preprocess else {
            return Ok(base);
        };
        if over.get("kind").is_some() {
            return Err("preprocess: `kind` comes from the modality".into());
        }
        let mut v = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        edgebind_models::contract::merge_json(&mut v, over.clone());
        serde_json::from_value(v).map_err(|e| format!("preprocess: {e}"))
    }

    /// The preprocessing matching this input shape (ImageBind's parameters
    /// otherwise) and the window length in seconds.
    fn default_preprocess(&self) -> (Preprocess, f64) {
        let side = |i: usize| self.input[i] as u32;
        // Image inputs: `[C, H, W]`, or `[C, T, H, W]` for a clip.
        let frames = if self.input.len() == 4 {
            self.input[1]
        } else {
            0
        };
        let last = side(self.input.len() - 1);
        match self.modality {
            ContractModality::Vision => (
                Preprocess::Vision(VisionParams {
                    resize: last,
                    crop: last,
                    frames,
                    ..Default::default()
                }),
                1.0,
            ),
            ContractModality::Audio => {
                // One clip per window: the window is the clip (2 s), so
                // ImageBind's three clips would be three identical passes.
                let mut p = AudioParams {
                    target_length: self.input[2],
                    clips: 1,
                    ..Default::default()
                };
                p.fbank.num_mel_bins = self.input[1];
                (Preprocess::Audio(p), 2.0)
            }
            ContractModality::Depth => (
                Preprocess::Depth(DepthParams {
                    resize: last,
                    crop: last,
                    frames,
                    ..Default::default()
                }),
                1.0,
            ),
            ContractModality::Thermal => (
                Preprocess::Thermal(ThermalParams {
                    resize: last,
                    crop: last,
                    frames,
                    ..Default::default()
                }),
                1.0,
            ),
            ContractModality::Imu | ContractModality::Text => {
                let p = ImuParams {
                    length: self.input[1],
                    sample_rate: 200.0,
                    ..Default::default()
                };
                let w = p.length as f64 / p.sample_rate;
                (Preprocess::Imu(p), w)
            }
        }
    }
}

/// `x @ w + b` over the last dimension, `w` stored `[in, out]` (ONNX MatMul's layout).
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[in, out]`.
    pub w: Var,
    /// Bias `[out]`.
    pub b: Option<Var>,
}

impl Linear {
    fn new(
        ps: &mut ParamSet,
        name: &str,
        dims: (usize, usize),
        bias: bool,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Linear> {
        let w = ps.add(
            format!("{name}.w"),
            &[dims.0, dims.1],
            Init::TruncNormal(0.02),
            true,
            rng,
            dev,
        )?;
        let b = if bias {
            Some(ps.add(format!("{name}.b"), &[dims.1], Init::Zeros, false, rng, dev)?)
        } else {
            None
        };
        Ok(Linear { w, b })
    }

    /// Applies the layer to `[..., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (lead, inner) = dims.split_at(dims.len() - 1);
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, inner[0]))?.matmul(self.w.as_tensor())?;
        let y = match &self.b {
            Some(b) => y.broadcast_add(b.as_tensor())?,
            None => y,
        };
        let mut out = lead.to_vec();
        out.push(self.w.dim(1)?);
        y.reshape(out)
    }
}

/// A 3x3 convolution with stride 2 and padding 1, bias, then GELU (one
/// layer of the conv stem). Weight `[out, in, 3, 3]` (ONNX Conv's layout).
#[derive(Debug, Clone)]
pub struct ConvGelu {
    /// Weight `[out, in, 3, 3]`.
    pub w: Var,
    /// Bias `[out]`.
    pub b: Var,
}

impl ConvGelu {
    /// 3x3, stride 2, padding 1 (the export writes the same `Conv`).
    pub const GEOMETRY: crate::conv::Geometry = crate::conv::Geometry {
        k: 3,
        stride: 2,
        pad: 1,
    };

    fn new(
        ps: &mut ParamSet,
        name: &str,
        (cin, cout): (usize, usize),
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<ConvGelu> {
        // He initialisation for the GELU that follows.
        let std = (2.0 / (cin * 9) as f64).sqrt();
        let w = ps.add(
            format!("{name}.w"),
            &[cout, cin, 3, 3],
            Init::TruncNormal(std),
            true,
            rng,
            dev,
        )?;
        let b = ps.add(format!("{name}.b"), &[cout], Init::Zeros, false, rng, dev)?;
        Ok(ConvGelu { w, b })
    }

    /// `[B, in, H, W]` -> `[B, out, H / 2, W / 2]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::conv::conv2d(x, self.w.as_tensor(), Self::GEOMETRY)?;
        let b = self.b.as_tensor().reshape((1, (), 1, 1))?;
        y.broadcast_add(&b)?.gelu_erf()
    }
}

/// LayerNorm over the last dimension, written out in plain operations (the
/// export repeats them one for one).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale.
    pub g: Var,
    /// Shift.
    pub b: Var,
    /// Epsilon.
    pub eps: f64,
}

impl LayerNorm {
    fn new(
        ps: &mut ParamSet,
        name: &str,
        dim: usize,
        eps: f64,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        Ok(LayerNorm {
            g: ps.add(format!("{name}.g"), &[dim], Init::Ones, false, rng, dev)?,
            b: ps.add(format!("{name}.b"), &[dim], Init::Zeros, false, rng, dev)?,
            eps,
        })
    }

    /// Normalises `[..., dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(self.g.as_tensor())?
            .broadcast_add(self.b.as_tensor())
    }
}

/// Multi-head self-attention with an optional learned key/value bias token
/// (PyTorch's `add_bias_kv`: one extra key and value appended after the projections).
#[derive(Debug, Clone)]
pub struct Attention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Learned key and value tokens `[1, 1, dim]` each.
    pub bias_kv: Option<(Var, Var)>,
    /// Heads.
    pub heads: usize,
}

impl Attention {
    fn new(
        ps: &mut ParamSet,
        name: &str,
        cfg: &EncoderConfig,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let d = cfg.dim;
        let lin = |ps: &mut ParamSet, n: &str, rng: &mut Rng| {
            Linear::new(ps, &format!("{name}.{n}"), (d, d), true, rng, dev)
        };
        let q = lin(ps, "q", rng)?;
        let k = lin(ps, "k", rng)?;
        let v = lin(ps, "v", rng)?;
        let o = lin(ps, "o", rng)?;
        let bias_kv = if cfg.bias_kv {
            let t = Init::TruncNormal(0.02);
            Some((
                ps.add(format!("{name}.bias_k"), &[1, 1, d], t, false, rng, dev)?,
                ps.add(format!("{name}.bias_v"), &[1, 1, d], t, false, rng, dev)?,
            ))
        } else {
            None
        };
        Ok(Attention {
            q,
            k,
            v,
            o,
            bias_kv,
            heads: cfg.heads,
        })
    }

    /// `[B, T, D]` -> `[B, T, D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.heads;
        let (mut k, mut v) = (self.k.forward(x)?, self.v.forward(x)?);
        if let Some((bk, bv)) = &self.bias_kv {
            k = Tensor::cat(&[&k, &bk.as_tensor().broadcast_as((b, 1, d))?], 1)?;
            v = Tensor::cat(&[&v, &bv.as_tensor().broadcast_as((b, 1, d))?], 1)?;
        }
        let heads = |x: Tensor| -> Result<Tensor> {
            let s = x.dim(1)?;
            x.reshape((b, s, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(self.q.forward(x)?)?, heads(k)?, heads(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (hd as f64).sqrt()))?;
        let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.o.forward(&y)
    }
}

/// The MLP: linear, GELU (erf), linear.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Expansion.
    pub fc1: Linear,
    /// Projection back.
    pub fc2: Linear,
}

impl Mlp {
    /// `[..., D]` -> `[..., D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu_erf()?)
    }
}

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Norm before attention.
    pub ln1: LayerNorm,
    /// Attention.
    pub attn: Attention,
    /// Norm before the MLP.
    pub ln2: LayerNorm,
    /// MLP.
    pub mlp: Mlp,
    /// This block's drop-path rate.
    pub drop_path: f64,
}

/// Adds a residual branch, dropping it per sample with probability `rate`
/// when training (survivors scaled by `1 / (1 - rate)`).
fn residual(x: &Tensor, branch: Tensor, rate: f64, rng: Option<&mut Rng>) -> Result<Tensor> {
    match rng {
        Some(rng) if rate > 0.0 => {
            let b = x.dim(0)?;
            let keep = 1.0 - rate;
            let mask: Vec<f32> = (0..b)
                .map(|_| {
                    if rng.uniform() < keep {
                        (1.0 / keep) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (b, 1, 1), x.device())?;
            x + branch.broadcast_mul(&mask)?
        }
        _ => x + branch,
    }
}

impl Block {
    /// `[B, T, D]` -> `[B, T, D]`; `rng` = training (drop path on).
    pub fn forward(&self, x: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let x = residual(
            x,
            self.attn.forward(&self.ln1.forward(x)?)?,
            self.drop_path,
            rng.as_deref_mut(),
        )?;
        residual(
            &x,
            self.mlp.forward(&self.ln2.forward(&x)?)?,
            self.drop_path,
            rng,
        )
    }
}

/// A student encoder.
#[derive(Debug)]
pub struct Encoder {
    /// Its architecture.
    pub cfg: EncoderConfig,
    /// All its parameters.
    pub params: ParamSet,
    /// Convolutional stem layers (empty without one).
    pub convs: Vec<ConvGelu>,
    /// Patch projection.
    pub stem: Linear,
    /// Norm after the patch projection.
    pub stem_ln: LayerNorm,
    /// CLS token `[1, 1, D]`.
    pub cls: Var,
    /// Positions `[1, 1 + patches, D]`.
    pub pos: Var,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Head norm.
    pub head_ln: LayerNorm,
    /// Head projection `[D, out_dim]`, no bias.
    pub head: Linear,
}

impl Encoder {
    /// A freshly initialised encoder (weights from `rng`).
    pub fn new(cfg: &EncoderConfig, rng: &mut Rng, dev: &Device) -> anyhow::Result<Encoder> {
        cfg.validate()?;
        let mut ps = ParamSet::default();
        let d = cfg.dim;
        let eps = cfg.ln_eps;
        let mut convs = Vec::with_capacity(cfg.conv_stem.len());
        let mut cin = cfg.conv_in();
        for (i, &cout) in cfg.conv_stem.iter().enumerate() {
            convs.push(ConvGelu::new(
                &mut ps,
                &format!("conv.{i}"),
                (cin, cout),
                rng,
                dev,
            )?);
            cin = cout;
        }
        let stem = Linear::new(&mut ps, "stem", (cfg.patch_len(), d), true, rng, dev)?;
        let stem_ln = LayerNorm::new(&mut ps, "stem_ln", d, eps, rng, dev)?;
        let t = Init::TruncNormal(0.02);
        let cls = ps.add("cls".into(), &[1, 1, d], t, false, rng, dev)?;
        let pos = ps.add("pos".into(), &[1, 1 + cfg.patches(), d], t, false, rng, dev)?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let n = format!("blocks.{i}");
            let rate = if cfg.depth > 1 {
                cfg.drop_path * i as f64 / (cfg.depth - 1) as f64
            } else {
                cfg.drop_path
            };
            let ln1 = LayerNorm::new(&mut ps, &format!("{n}.ln1"), d, eps, rng, dev)?;
            let attn = Attention::new(&mut ps, &format!("{n}.attn"), cfg, rng, dev)?;
            let ln2 = LayerNorm::new(&mut ps, &format!("{n}.ln2"), d, eps, rng, dev)?;
            let h = d * cfg.mlp_ratio;
            let fc1 = Linear::new(&mut ps, &format!("{n}.mlp.fc1"), (d, h), true, rng, dev)?;
            let fc2 = Linear::new(&mut ps, &format!("{n}.mlp.fc2"), (h, d), true, rng, dev)?;
            blocks.push(Block {
                ln1,
                attn,
                ln2,
                mlp: Mlp { fc1, fc2 },
                drop_path: rate,
            });
        }
        let head_ln = LayerNorm::new(&mut ps, "head_ln", d, eps, rng, dev)?;
        let head = Linear::new(&mut ps, "head", (d, cfg.out_dim), false, rng, dev)?;
        Ok(Encoder {
            cfg: cfg.clone(),
            params: ps,
            convs,
            stem,
            stem_ln,
            cls,
            pos,
            blocks,
            head_ln,
            head,
        })
    }

    /// The patchify reshape/permutation of `[B, C, S1..Sk]` into
    /// `[B, patches, C * p1 * .. * pk]`: split every `Si` into `(Si / pi, pi)`,
    /// then order (grid..., C, patch...). The export uses the same shapes.
    pub fn patchify_plan(&self) -> (Vec<usize>, Vec<usize>) {
        let (input, patch) = self.cfg.stem_view();
        let mut split = vec![input[0]];
        for (&n, &p) in input[1..].iter().zip(&patch) {
            split.push(n / p);
            split.push(p);
        }
        let k = patch.len();
        // Axes of `split` with the batch in front: 0 = batch, 1 = C, then (grid_i, patch_i) pairs.
        let mut perm = vec![0];
        perm.extend((0..k).map(|i| 2 + 2 * i));
        perm.push(1);
        perm.extend((0..k).map(|i| 3 + 2 * i));
        (split, perm)
    }

    /// `[B, ...input]` -> `[B, out_dim]`, unit length. `rng` = training mode
    /// (drop path); `None` = inference, as exported.
    pub fn forward(&self, x: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let b = x.dim(0)?;
        let mut x = x.clone();
        if !self.convs.is_empty() {
            let n = self.cfg.input.len();
            let (h, w) = (self.cfg.input[n - 2], self.cfg.input[n - 1]);
            x = x.reshape((b, self.cfg.conv_in(), h, w))?;
            for c in &self.convs {
                x = c.forward(&x)?;
            }
        }
        let (split, perm) = self.patchify_plan();
        let mut shape = vec![b];
        shape.extend(&split);
        let tokens = x.reshape(shape)?.permute(perm)?.contiguous()?.reshape((
            b,
            self.cfg.patches(),
            self.cfg.patch_len(),
        ))?;
        let tokens = self.stem_ln.forward(&self.stem.forward(&tokens)?)?;
        let cls = self.cls.as_tensor().broadcast_as((b, 1, self.cfg.dim))?;
        let mut h = Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(self.pos.as_tensor())?;
        for block in &self.blocks {
            h = block.forward(&h, rng.as_deref_mut())?;
        }
        let h = self.head_ln.forward(&h)?;
        let y = self.head.forward(&h.narrow(1, 0, 1)?.squeeze(1)?)?;
        l2_normalize(&y)
    }
}

/// Rows to unit length.
pub fn l2_normalize(y: &Tensor) -> Result<Tensor> {
    y.broadcast_div(&y.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_defaults_are_valid_and_contracts_match_inputs() {
        for m in ContractModality::SENSORS {
            let c = EncoderConfig::small(m).unwrap();
            c.validate().unwrap();
            c.contract("s", "t", "").validate().unwrap();
        }
        assert!(EncoderConfig::small(ContractModality::Text).is_none());
    }

    #[test]
    fn preprocessing_overrides_reach_the_contract_and_bad_ones_are_refused() {
        let mut c = EncoderConfig::small(ContractModality::Depth).unwrap();
        c.preprocess = Some(serde_json::json!({"min_depth_m": 1.0}));
        c.validate().unwrap();
        match c.contract("s", "t", "").preprocess {
            Preprocess::Depth(p) => assert_eq!((p.min_depth_m, p.crop), (1.0, 64)),
            other => panic!("{other:?}"),
        }
        c.preprocess = Some(serde_json::json!({"min_depth": 1.0}));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("preprocess") && e.contains("min_depth"), "{e}");
        c.preprocess = Some(serde_json::json!({"kind": "audio"}));
        assert!(c.validate().unwrap_err().to_string().contains("kind"));
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let mut c = EncoderConfig::small(ContractModality::Audio).unwrap();
        c.patch = vec![16, 16];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("patch 16 does not divide input dimension 2 of size 204"),
            "{e}"
        );
        let mut c = EncoderConfig::small(ContractModality::Imu).unwrap();
        c.heads = 3;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("multiple of heads 3")
        );
        c.heads = 4;
        c.input = vec![3, 1000];
        assert!(c.validate().unwrap_err().to_string().contains("needs 6"));
        c.input = vec![6, 1000];
        c.conv_stem = vec![16];
        assert!(c.validate().unwrap_err().to_string().contains("for images"));
        // Vision 64x64 with 8x8 patches: 3 stride-2 layers fit, 4 do not.
        let mut v = EncoderConfig::small(ContractModality::Vision).unwrap();
        v.conv_stem = vec![8, 16, 32];
        v.validate().unwrap();
        assert_eq!(v.stem_view(), (vec![32, 8, 8], vec![1, 1]));
        assert_eq!((v.patches(), v.patch_len(), v.conv_in()), (64, 32, 6));
        v.conv_stem.push(64);
        let e = v.validate().unwrap_err().to_string();
        assert!(e.contains("multiples of 16"), "{e}");
        v.conv_stem = vec![8];
        v.patch = vec![1, 8, 8];
        let e = v.validate().unwrap_err().to_string();
        assert!(e.contains("must cover all 2 frames"), "{e}");
        // Depth and thermal take clips too: [1, 2, H, W], frames into channels.
        let mut d = EncoderConfig::small(ContractModality::Depth).unwrap();
        d.input = vec![1, 2, 64, 64];
        d.patch = vec![2, 8, 8];
        d.conv_stem = vec![24, 48];
        d.preprocess = Some(serde_json::json!({ "clip_s": 0.5, "min_depth_m": 1.0 }));
        d.validate().unwrap();
        assert_eq!((d.conv_in(), d.patches(), d.patch_len()), (2, 64, 192));
        let c = d.contract("s", "vision", "test");
        c.validate().unwrap();
        assert_eq!(c.preprocess.item_shape(), Some(vec![1, 2, 64, 64]));
        assert_eq!(c.preprocess.clip_s(), 0.5);
        d.input = vec![1, 2, 2, 64, 64];
        let e = d.validate().unwrap_err().to_string();
        assert!(e.contains("[1, frames, H, W] or [1, H, W]"), "{e}");
    }

    #[test]
    fn output_is_unit_length_and_drop_path_only_trains() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let mut cfg = EncoderConfig::small(ContractModality::Imu).unwrap();
        cfg.input = vec![6, 64];
        cfg.dim = 32;
        cfg.depth = 2;
        cfg.drop_path = 0.5;
        let mut rng = Rng::new(1);
        let enc = Encoder::new(&cfg, &mut rng, &dev)?;
        let x = crate::params::randn(&mut rng, &[4, 6, 64], &dev)?;
        let y = enc.forward(&x, None)?;
        assert_eq!(y.dims(), &[4, 384]);
        for n in y.sqr()?.sum(1)?.to_vec1::<f32>()? {
            assert!((n - 1.0).abs() < 1e-5, "{n}");
        }
        let y2 = enc.forward(&x, None)?;
        assert_eq!(y.to_vec2::<f32>()?, y2.to_vec2::<f32>()?);
        let yt = enc.forward(&x, Some(&mut Rng::new(5)))?;
        assert_ne!(y.to_vec2::<f32>()?, yt.to_vec2::<f32>()?);
        Ok(())
    }
}
