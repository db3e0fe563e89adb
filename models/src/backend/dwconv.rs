//! edgebind's own depthwise 3x3 convolution for tract, with the ReLU6 that
//! follows it fused in.
//!
//! Why: on the bundled image anchor (MobileNetV2) tract 0.23's `DepthWiseConv`
//! took ~40% of a batch-1 run (perf: `depthwise_w_f32`, `contiguous`,
//! `process_zone_*`, zone scanning) for ~7% of the multiply-adds, and each of
//! the 17 ReLU6 after it was one more pass over the activations. Every
//! depthwise convolution in MobileNet-style networks is the same shape: a 3x3
//! kernel, padding 1, stride 1 or 2, one filter per channel. For that shape a
//! plane-at-a-time kernel is simple and fast: the plane is copied once into a
//! zero-bordered scratch (for stride 2 split into even and odd columns, so
//! every tap reads consecutive floats), then each output row is 9 multiply-adds
//! over three scratch rows, with the bias and the clamp applied in the same
//! pass. Chosen at run time: AVX-512 (masked loads, permutes and stores, 16
//! lanes, FMA), else AVX2 + FMA, else a portable loop the compiler vectorises
//! (NEON on aarch64).
//!
//! [`fuse`] rewrites a tract model (before or after declutter): every f32 `Conv` with
//! `group == input channels == output channels`, a constant 3x3 kernel and
//! bias, padding 1 on every side, stride 1 or 2 and no dilation, on channel-first
//! data, becomes a [`DwConv3x3`] node; a `Max(x, lo)` then `Min(., hi)` with
//! scalar constants right after it (ONNX `Clip`, i.e. ReLU6) is folded into
//! the node. Anything else is left to tract. The rewrite is exact up to float
//! rounding order (the tests compare with a direct reference and with tract's
//! own plan on the bundled anchor).

use std::sync::Arc;

use super::native::{
    channel_first_input, clamp_after, f32_output, native_op, plain_conv, replace_all, same_clamp,
    same_f32s,
};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// A depthwise 3x3 convolution (padding 1, stride 1 or 2) on `[C, H, W]` or
/// `[N, C, H, W]` f32 data, with per-channel bias and an optional clamp.
#[derive(Debug, Clone)]
pub struct DwConv3x3 {
    channels: usize,
    stride: usize,
    /// `[C, 3, 3]`, row-major.
    weights: Arc<[f32]>,
    bias: Arc<[f32]>,
    clamp: Option<(f32, f32)>,
}

impl PartialEq for DwConv3x3 {
    fn eq(&self, other: &Self) -> bool {
        (self.channels, self.stride) == (other.channels, other.stride)
            && same_f32s(&self.weights, &other.weights)
            && same_f32s(&self.bias, &other.bias)
            && same_clamp(self.clamp, other.clamp)
    }
}
impl Eq for DwConv3x3 {}

/// Output length of one spatial axis (kernel 3, padding 1 each side).
fn out_len(n: usize, stride: usize) -> usize {
    (n - 1) / stride + 1
}

impl DwConv3x3 {
    /// `weights` `[channels, 3, 3]`, `bias` `[channels]`.
    pub fn new(
        channels: usize,
        stride: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
        clamp: Option<(f32, f32)>,
    ) -> TractResult<Self> {
        ensure!(stride == 1 || stride == 2, "stride {stride}: only 1 and 2");
        ensure!(channels > 0, "no channels");
        ensure!(
            weights.len() == channels * 9 && bias.len() == channels,
            "{channels} channels need 9 weights and 1 bias each, got {} and {}",
            weights.len(),
            bias.len()
        );
        Ok(DwConv3x3 {
            channels,
            stride,
            weights: weights.into(),
            bias: bias.into(),
            clamp,
        })
    }

    /// Runs on a contiguous `[planes, h, w]` buffer where plane `p` is
    /// channel `p % channels`; `out` is `[planes, ho, wo]`. Planes are split
    /// over tract's executor when it has several threads (`threads` in the
    /// backend options), by tract's own size threshold.
    pub fn run(&self, input: &[f32], h: usize, w: usize, out: &mut [f32]) -> TractResult<()> {
        self.run_with(input, h, w, out, false)
    }

    /// `run`; `portable` skips the x86 kernels (for the tests).
    fn run_with(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        out: &mut [f32],
        portable: bool,
    ) -> TractResult<()> {
        ensure!(h > 0 && w > 0, "{}: empty {h}x{w} planes", self.name());
        let (ho, wo) = (out_len(h, self.stride), out_len(w, self.stride));
        let (plane_in, plane_out) = (h * w, ho * wo);
        ensure!(
            input.len().is_multiple_of(plane_in) && out.len() == input.len() / plane_in * plane_out,
            "{}: {} input values for planes of {h}x{w}, {} output values",
            self.name(),
            input.len(),
            out.len()
        );
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let total = out.len();
        tract_linalg::multithread::par_chunks_mut(out, plane_out, total, |first, chunk| {
            let mut scratch = Scratch::new(h, w, self.stride);
            for (i, plane) in chunk.chunks_exact_mut(plane_out).enumerate() {
                let p = first + i;
                let c = p % self.channels;
                let k: &[f32; 9] = self.weights[c * 9..c * 9 + 9].try_into()?;
                let src = &input[p * plane_in..(p + 1) * plane_in];
                if portable {
                    scratch.load_portable(src);
                    rows_generic(&mut scratch, k, self.bias[c], lo, hi, plane);
                } else {
                    scratch.load(src);
                    rows(&mut scratch, k, self.bias[c], lo, hi, plane);
                }
            }
            Ok(())
        })
    }
}

/// One input plane with a zero border, laid out so that every tap of an
/// output row reads `wp` consecutive floats, `wp` being the output width
/// rounded up to a multiple of 8 (whole vectors; the extra columns read zeros
/// and are computed, then dropped).
///
/// Stride 1: rows of `wp + 2` (`[0, x0 .. x(w-1), 0, ..]`); output column
/// `x`, tap `dx` reads column `x + dx`.
/// Stride 2: each row is `odd` (`wp + 1` floats: `[0, x1, x3, .., 0..]`)
/// then `even` (`wp`: `[x0, x2, .., 0..]`); tap 0 reads `odd[x]`, tap 1
/// `even[x]`, tap 2 `odd[x + 1]`.
/// Row 0 and row `h + 1` are zeros.
struct Scratch {
    h: usize,
    w: usize,
    stride: usize,
    row: usize,
    wo: usize,
    wp: usize,
    data: Vec<f32>,
    /// One output row of `wp` values before the copy to the output.
    line: Vec<f32>,
}

impl Scratch {
    fn new(h: usize, w: usize, stride: usize) -> Self {
        let wo = out_len(w, stride);
        // Whole 16-float vectors (AVX-512; two AVX2 vectors).
        let wp = wo.div_ceil(16) * 16;
        let row = if stride == 1 { wp + 2 } else { 2 * wp + 1 };
        Scratch {
            h,
            w,
            stride,
            row,
            wo,
            wp,
            data: vec![0.0; (h + 2) * row],
            line: vec![0.0; wp],
        }
    }

    fn load(&mut self, plane: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; bounds as in `load_portable`.
            return unsafe { self.load_avx512(plane) };
        }
        self.load_portable(plane)
    }

    /// `load` with masked AVX-512 moves: no memcpy call per short row, and
    /// stride 2 splits even and odd columns with two permutes per 32 floats.
    /// Writes exactly the positions `load_portable` writes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_avx512(&mut self, plane: &[f32]) {
        use std::arch::x86_64::*;
        let (w, row, wo, wp) = (self.w, self.row, self.wo, self.wp);
        let mask = |n: usize| -> __mmask16 { if n >= 16 { 0xFFFF } else { (1u16 << n) - 1 } };
        let even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let pairs = w / 2; // odd columns
        for (y, src) in plane.chunks_exact(w).enumerate().take(self.h) {
            let dst = &mut self.data[(y + 1) * row..(y + 2) * row];
            let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
            // SAFETY: every masked lane is inside `src` (w floats) or `dst`
            // (`row` floats: stride 1 writes 1..=w <= wp + 1, stride 2 writes
            // even[0..wo] and odd[1..=pairs], pairs <= wo <= wp).
            unsafe {
                if self.stride == 1 {
                    for x in (0..w).step_by(16) {
                        let m = mask(w - x);
                        let v = _mm512_maskz_loadu_ps(m, sp.add(x));
                        _mm512_mask_storeu_ps(dp.add(1 + x), m, v);
                    }
                } else {
                    let (odd, even) = (dp, dp.add(wp + 1));
                    for x in (0..wo).step_by(16) {
                        let at = 2 * x;
                        let v0 = _mm512_maskz_loadu_ps(mask(w - at), sp.add(at));
                        let v1 = if w > at + 16 {
                            _mm512_maskz_loadu_ps(mask(w - at - 16), sp.add(at + 16))
                        } else {
                            _mm512_setzero_ps()
                        };
                        let e = _mm512_permutex2var_ps(v0, even_idx, v1);
                        _mm512_mask_storeu_ps(even.add(x), mask(wo - x), e);
                        if pairs > x {
                            let o = _mm512_permutex2var_ps(v0, odd_idx, v1);
                            _mm512_mask_storeu_ps(odd.add(x + 1), mask(pairs - x), o);
                        }
                    }
                }
            }
        }
    }

    fn load_portable(&mut self, plane: &[f32]) {
        let (w, row, wo, wp) = (self.w, self.row, self.wo, self.wp);
        for (y, src) in plane.chunks_exact(w).enumerate().take(self.h) {
            let dst = &mut self.data[(y + 1) * row..(y + 2) * row];
            if self.stride == 1 {
                // A plain loop: rows are short (7-112), a memcpy call costs more.
                for (d, v) in dst[1..=w].iter_mut().zip(src) {
                    *d = *v;
                }
            } else {
                let (odd, even) = dst.split_at_mut(wp + 1);
                let pairs = w / 2;
                for (x, p) in src[..2 * pairs].chunks_exact(2).enumerate() {
                    even[x] = p[0];
                    odd[x + 1] = p[1];
                }
                if w % 2 == 1 {
                    even[wo - 1] = src[w - 1];
                }
            }
        }
    }

    /// The three taps' source slices (each `wp` long) of padded row `r`.
    #[inline(always)]
    fn taps(&self, r: usize) -> [&[f32]; 3] {
        let row = &self.data[r * self.row..(r + 1) * self.row];
        let wp = self.wp;
        if self.stride == 1 {
            [&row[0..wp], &row[1..wp + 1], &row[2..wp + 2]]
        } else {
            let (odd, even) = row.split_at(wp + 1);
            [&odd[0..wp], &even[0..wp], &odd[1..wp + 1]]
        }
    }
}

fn rows(s: &mut Scratch, k: &[f32; 9], bias: f32, lo: f32, hi: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { rows_avx512(s, k, bias, lo, hi, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { rows_avx2(s, k, bias, lo, hi, out) };
    }
    rows_generic(s, k, bias, lo, hi, out)
}

/// AVX-512: 16 outputs per step, 9 fused multiply-adds, the bias first and
/// the clamp last; the ragged end of a row is a masked store straight into
/// `out` (no staging line).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512(s: &mut Scratch, k: &[f32; 9], bias: f32, lo: f32, hi: f32, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (wo, wp) = (s.wo, s.wp);
    let kv = k.map(|w| _mm512_set1_ps(w));
    let (b, lo, hi) = (_mm512_set1_ps(bias), _mm512_set1_ps(lo), _mm512_set1_ps(hi));
    for (y, o) in out.chunks_exact_mut(wo).enumerate() {
        let r = y * s.stride;
        let t = [s.taps(r), s.taps(r + 1), s.taps(r + 2)];
        for x in (0..wo).step_by(16) {
            let m: __mmask16 = if wo - x >= 16 {
                0xFFFF
            } else {
                (1u16 << (wo - x)) - 1
            };
            let mut acc = b;
            for (i, taps) in t.iter().enumerate() {
                for (j, tap) in taps.iter().enumerate() {
                    // SAFETY: every tap slice is `wp` long and x + 16 <= wp.
                    let v = unsafe { _mm512_loadu_ps(tap.as_ptr().add(x)) };
                    acc = _mm512_fmadd_ps(kv[i * 3 + j], v, acc);
                }
            }
            // Operand order keeps a NaN a NaN, as the portable path does.
            let y = _mm512_min_ps(hi, _mm512_max_ps(lo, acc));
            // SAFETY: lanes past `wo - x` are masked off.
            unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr().add(x), m, y) };
        }
    }
    debug_assert!(wp >= wo.div_ceil(16) * 16);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(s: &mut Scratch, k: &[f32; 9], b: f32, lo: f32, hi: f32, out: &mut [f32]) {
    rows_generic(s, k, b, lo, hi, out)
}

#[inline(always)]
fn rows_generic(s: &mut Scratch, k: &[f32; 9], bias: f32, lo: f32, hi: f32, out: &mut [f32]) {
    let (wo, wp) = (s.wo, s.wp);
    // Rows of whole vectors are written in place; others go through `line`.
    let direct = wo == wp;
    let mut line = std::mem::take(&mut s.line);
    for (y, o) in out.chunks_exact_mut(wo).enumerate() {
        let r = y * s.stride; // padded row of tap row 0
        let [a0, a1, a2] = s.taps(r);
        let [b0, b1, b2] = s.taps(r + 1);
        let [c0, c1, c2] = s.taps(r + 2);
        // Equal lengths let the compiler drop the bounds checks and vectorise.
        let (a0, a1, a2, b0, b1, b2, c0, c1, c2) = (
            &a0[..wp],
            &a1[..wp],
            &a2[..wp],
            &b0[..wp],
            &b1[..wp],
            &b2[..wp],
            &c0[..wp],
            &c1[..wp],
            &c2[..wp],
        );
        let l: &mut [f32] = if direct {
            &mut o[..wp]
        } else {
            &mut line[..wp]
        };
        for x in 0..wp {
            let v = bias
                + k[0] * a0[x]
                + k[1] * a1[x]
                + k[2] * a2[x]
                + k[3] * b0[x]
                + k[4] * b1[x]
                + k[5] * b2[x]
                + k[6] * c0[x]
                + k[7] * c1[x]
                + k[8] * c2[x];
            // Compare-and-select, not f32::max/min: no NaN bookkeeping, so
            // it compiles to plain vector max/min (a NaN stays a NaN).
            let v = if v < lo { lo } else { v };
            l[x] = if v > hi { hi } else { v };
        }
        if !direct {
            // A plain loop: these rows are short (7-28), a memcpy call costs more.
            for (d, v) in o.iter_mut().zip(&line[..wo]) {
                *d = *v;
            }
        }
    }
    s.line = line;
}

native_op!(DwConv3x3, "EdgebindDwConv3x3", |op| format!(
    "{} channels, stride {}, clamp {:?}",
    op.channels, op.stride, op.clamp
));

impl EvalOp for DwConv3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        let r = shape.len();
        ensure!(r >= 3, "{}: input of rank {r}", self.name());
        let (h, w) = (shape[r - 2], shape[r - 1]);
        ensure!(h > 0 && w > 0, "{}: empty input {shape:?}", self.name());
        ensure!(
            shape[r - 3] == self.channels,
            "{}: {} channels, input {shape:?}",
            self.name(),
            self.channels
        );
        let mut oshape: TVec<usize> = shape.into();
        oshape[r - 2] = out_len(h, self.stride);
        oshape[r - 1] = out_len(w, self.stride);
        let input = x.try_as_plain_ram()?;
        f32_output(&oshape, |out| self.run(input.as_slice::<f32>()?, h, w, out))
    }
}

impl TypedOp for DwConv3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        let mut shape = channel_first_input(&self.name(), fact, self.channels)?;
        let r = shape.len();
        for d in &mut shape[r - 2..] {
            let n = d.to_usize()?;
            ensure!(
                n > 0,
                "{}: empty spatial axis in {:?}",
                self.name(),
                fact.shape
            );
            *d = out_len(n, self.stride).to_dim();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            out[0].shape.volume() * 9
        )))
    }

    as_op!();
}

/// A depthwise convolution this module handles, as `(channels, stride,
/// weights, bias)`, or `None`.
fn as_depthwise(
    model: &TypedModel,
    node: &TypedNode,
) -> Option<(usize, usize, Vec<f32>, Vec<f32>)> {
    let c = plain_conv(model, node)?;
    let ok = c.group == c.ci
        && c.co == c.ci
        && c.kernel == (3, 3)
        && c.stride.0 == c.stride.1
        && (c.stride.0 == 1 || c.stride.0 == 2)
        && c.pad == [1; 4];
    ok.then_some((c.ci, c.stride.0, c.weights, c.bias))
}

/// Replaces every depthwise 3x3 convolution of `model` (decluttered or not) that
/// [`DwConv3x3`] handles (and the ReLU6 after it); returns how many it
/// replaced.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    replace_all(model, |model, id| {
        let (c, stride, weights, bias) = as_depthwise(model, model.node(id))?;
        let clamp = clamp_after(model, id);
        let op = DwConv3x3::new(c, stride, weights, bias, clamp.map(|(_, lo, hi)| (lo, hi)));
        let last = clamp.map_or(id, |(min, ..)| min);
        Some((last, vec![model.node(id).inputs[0]], op))
    })
}

#[cfg(test)]
mod tests {
    use super::super::native::test_util::{max_diff, noise, run, wire_conv};
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// The definition, one output at a time, in f64.
    fn reference(op: &DwConv3x3, x: &[f32], h: usize, w: usize) -> Vec<f32> {
        let s = op.stride;
        let (ho, wo) = (out_len(h, s), out_len(w, s));
        let planes = x.len() / (h * w);
        let mut out = Vec::with_capacity(planes * ho * wo);
        for p in 0..planes {
            let c = p % op.channels;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut v = op.bias[c] as f64;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let (iy, ix) = ((oy * s + dy) as isize - 1, (ox * s + dx) as isize - 1);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                v += op.weights[c * 9 + dy * 3 + dx] as f64
                                    * x[p * h * w + iy as usize * w + ix as usize] as f64;
                            }
                        }
                    }
                    if let Some((lo, hi)) = op.clamp {
                        v = v.clamp(lo as f64, hi as f64);
                    }
                    out.push(v as f32);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_every_size_and_stride() {
        let channels = 3;
        for (h, w) in [
            (1, 1),
            (2, 3),
            (5, 4),
            (7, 7),
            (9, 14),
            (14, 14),
            (16, 17),
            (28, 33),
        ] {
            for stride in [1, 2] {
                for clamp in [None, Some((0.0, 0.5))] {
                    let op = DwConv3x3::new(
                        channels,
                        stride,
                        noise(channels * 9, 1),
                        noise(channels, 2),
                        clamp,
                    )
                    .unwrap();
                    let x = noise(2 * channels * h * w, (h * 100 + w) as u64); // batch of 2
                    let (ho, wo) = (out_len(h, stride), out_len(w, stride));
                    let want = reference(&op, &x, h, w);
                    for portable in [false, true] {
                        let mut got = vec![f32::NAN; 2 * channels * ho * wo];
                        op.run_with(&x, h, w, &mut got, portable).unwrap();
                        let max = max_diff(&got, &want);
                        assert!(
                            max <= 2e-6,
                            "{h}x{w} stride {stride} clamp {clamp:?} portable {portable}: max diff {max:e}"
                        );
                        if clamp.is_some() {
                            assert!(got.iter().all(|v| (0.0..=0.5).contains(v)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert!(DwConv3x3::new(2, 3, vec![0.0; 18], vec![0.0; 2], None).is_err());
        assert!(DwConv3x3::new(2, 1, vec![0.0; 17], vec![0.0; 2], None).is_err());
        assert!(DwConv3x3::new(0, 1, vec![], vec![], None).is_err());
        let op = DwConv3x3::new(1, 1, vec![0.0; 9], vec![0.0], None).unwrap();
        let err = op.run(&[0.0; 10], 3, 3, &mut [0.0; 9]).unwrap_err();
        assert!(format!("{err}").contains("10 input values"), "{err}");
        let err = op.run(&[], 0, 3, &mut []).unwrap_err();
        assert!(format!("{err}").contains("empty 0x3 planes"), "{err}");
    }

    /// `x [1, c, h, w] -> depthwise conv (stride, pad) -> Max(0) -> Min(6)`,
    /// plus `Add(max, 1)` as a second consumer of the Max when `tap_max`.
    fn model(c: usize, h: usize, w: usize, stride: usize, pad: usize, tap_max: bool) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, c, h, w])).unwrap();
        let y = wire_conv(&mut m, x, (c, c, c), 3, stride, pad);
        let zero = m.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
        let six = m.add_const("six", tensor4(&[[[[0.75f32]]]])).unwrap();
        let y = m.wire_node("max", math::max(), &[y, zero]).unwrap()[0];
        let mut outputs = vec![m.wire_node("min", math::min(), &[y, six]).unwrap()[0]];
        if tap_max {
            let one = m.add_const("one", tensor4(&[[[[1f32]]]])).unwrap();
            outputs.push(m.wire_node("add", math::add(), &[y, one]).unwrap()[0]);
        }
        m.select_output_outlets(&outputs).unwrap();
        m
    }

    #[test]
    fn fuse_replaces_the_conv_and_its_relu6_and_nothing_else() {
        let (c, h, w) = (5, 11, 12);
        let x = Tensor::from_shape(&[1, c, h, w], &noise(c * h * w, 9)).unwrap();
        // (stride, pad, second consumer of the Max) -> convs replaced, ops left
        for (stride, pad, tap_max, replaced) in [
            (1, 1, false, 1),
            (2, 1, false, 1),
            (2, 1, true, 1),
            (1, 0, false, 0),
        ] {
            let stock = model(c, h, w, stride, pad, tap_max);
            // The backend fuses before declutter; after works as well.
            let mut decluttered = stock.clone();
            decluttered.declutter().unwrap();
            assert_eq!(fuse(&mut decluttered).unwrap(), replaced);
            let mut fused = stock.clone();
            let n = fuse(&mut fused).unwrap();
            let case = format!("stride {stride} pad {pad} tap_max {tap_max}");
            assert_eq!(n, replaced, "{case}");
            let ours: Vec<&DwConv3x3> = fused
                .nodes
                .iter()
                .filter_map(|n| n.op_as::<DwConv3x3>())
                .collect();
            assert_eq!(ours.len(), replaced, "{case}");
            // The ReLU6 is folded in only when the conv is its only producer path.
            if let Some(op) = ours.first() {
                assert_eq!(op.clamp, (!tap_max).then_some((0.0, 0.75)), "{case}");
            }
            let (a, b) = (run(stock, &[&x]), run(fused, &[&x]));
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(&b) {
                let max = max_diff(a, b);
                assert!(max <= 1e-6, "{case}: max diff {max:e}");
                assert!(a.iter().any(|v| *v != 0.0), "{case}: degenerate output");
            }
        }
    }
}
