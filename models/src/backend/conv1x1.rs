//! edgebind's own 1x1 (pointwise) convolution for tract, with the bias, the
//! ReLU6 and the residual add that follow it fused into one pass.
//!
//! Why: after [`super::dwconv`], tract's matrix products for MobileNetV2's
//! 1x1 convolutions were ~58% of a batch-1 run, plus ~5% packing their input
//! (tract packs the activation matrix at every run), and every residual add a
//! separate pass. On channel-first data a 1x1 convolution is `Y[co, p] =
//! sum_ci W[co, ci] X[ci, p]` where each row `X[ci, ..]` is already
//! contiguous, so it needs no packing at all: the kernel keeps an 8-row x
//! 48-column tile of `Y` in registers (24 AVX-512 accumulators), and for each
//! `ci` loads 48 floats of `X` and broadcasts 8 weights, which are packed once
//! at load as `[co / 8][ci][8]`. The epilogue adds the bias, clamps, adds the
//! residual and stores, with masked loads and stores at the ragged end of a
//! row. Column tiles run outermost so one tile of `X` (`ci` x 48 floats) is
//! reused by every row block while it is in cache. Without AVX-512 (aarch64,
//! older x86) a portable version of the same tiling runs, vectorised by the
//! compiler.
//!
//! [`fuse`] rewrites a tract model *before* declutter (where ONNX `Conv`
//! nodes are still `Conv`): every f32 `Conv` with a 1x1 kernel, group 1,
//! stride 1, no padding, channel-first data, constant weights and bias and an
//! output channel count that is a multiple of 8 becomes a [`Conv1x1`] node,
//! taking along a `Max`/`Min` clamp with scalar constants and then an `Add`
//! of a same-shaped tensor when they follow it (and nothing else reads the
//! intermediate values).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::native::{
    channel_first_input, clamp_after, f32_output, inputs_with_residual, native_op,
    output_with_residual, plain_conv, replace_all, residual_after, same_clamp, same_f32s,
};

/// Output rows per register tile.
const MR: usize = 8;
/// Floats per vector.
const LANES: usize = 16;
/// Trailing columns (after whole tiles) run as matrix-vector products.
const GEMV_TAIL: usize = 8;

/// A 1x1 convolution on `[C, H, W]` or `[N, C, H, W]` f32 data, with bias,
/// an optional clamp and an optional residual input added last.
#[derive(Debug, Clone)]
pub struct Conv1x1 {
    ci: usize,
    co: usize,
    /// `[co / 8][ci][8]`.
    packed: Arc<[f32]>,
    bias: Arc<[f32]>,
    clamp: Option<(f32, f32)>,
    residual: bool,
}

impl PartialEq for Conv1x1 {
    fn eq(&self, other: &Self) -> bool {
        (self.ci, self.co, self.residual) == (other.ci, other.co, other.residual)
            && same_f32s(&self.packed, &other.packed)
            && same_f32s(&self.bias, &other.bias)
            && same_clamp(self.clamp, other.clamp)
    }
}
impl Eq for Conv1x1 {}

impl Conv1x1 {
    /// `weights` `[co, ci]` row-major, `bias` `[co]`; `co` a multiple of 8.
    pub fn new(
        ci: usize,
        co: usize,
        weights: &[f32],
        bias: Vec<f32>,
        clamp: Option<(f32, f32)>,
        residual: bool,
    ) -> TractResult<Self> {
        ensure!(ci > 0 && co > 0, "{co}x{ci} weights");
        ensure!(
            co.is_multiple_of(MR),
            "{co} output channels: a multiple of {MR} only"
        );
        ensure!(
            weights.len() == co * ci && bias.len() == co,
            "{co}x{ci} weights and {co} biases expected, got {} and {}",
            weights.len(),
            bias.len()
        );
        let mut packed = Vec::with_capacity(co * ci);
        for rb in 0..co / MR {
            for k in 0..ci {
                for r in 0..MR {
                    packed.push(weights[(rb * MR + r) * ci + k]);
                }
            }
        }
        Ok(Conv1x1 {
            ci,
            co,
            packed: packed.into(),
            bias: bias.into(),
            clamp,
            residual,
        })
    }

    /// Output channels.
    pub fn output_channels(&self) -> usize {
        self.co
    }

    /// One band of output columns for row blocks `blocks`: `x` `[ci, cols]`
    /// (contiguous) -> columns `0..cols` of `out`, whose rows are `ostride`
    /// apart (`out` starts at the band's first column in the first block's
    /// first row and is `(blocks * 8 - 1) * ostride + cols` long). No
    /// residual; the caller splits the work across threads.
    pub(crate) fn run_band(
        &self,
        x: &[f32],
        cols: usize,
        blocks: std::ops::Range<usize>,
        ostride: usize,
        out: &mut [f32],
    ) {
        debug_assert!(x.len() == self.ci * cols && cols <= ostride);
        debug_assert!(out.len() == (blocks.len() * MR - 1) * ostride + cols);
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let ci = self.ci;
        Tile {
            packed: &self.packed[blocks.start * ci * MR..blocks.end * ci * MR],
            bias: &self.bias[blocks.start * MR..blocks.end * MR],
            x,
            ci,
            hw: cols,
            ostride,
            lo,
            hi,
        }
        .run(None, out);
    }

    /// `x` `[n, ci, hw]`, `res` (when the op has a residual) and `out`
    /// `[n, co, hw]`, contiguous.
    pub fn run(
        &self,
        x: &[f32],
        res: Option<&[f32]>,
        hw: usize,
        out: &mut [f32],
    ) -> TractResult<()> {
        ensure!(hw > 0, "{}: empty planes", self.name());
        ensure!(
            x.len().is_multiple_of(self.ci * hw)
                && out.len() == x.len() / self.ci * self.co
                && res.is_none_or(|r| r.len() == out.len())
                && res.is_some() == self.residual,
            "{}: {} input values, {} output values, residual {:?} for {}x{} weights on planes of {hw}",
            self.name(),
            x.len(),
            out.len(),
            res.map(|r| r.len()),
            self.co,
            self.ci
        );
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (ci, co) = (self.ci, self.co);
        for (n, out_n) in out.chunks_exact_mut(co * hw).enumerate() {
            let x_n = &x[n * ci * hw..(n + 1) * ci * hw];
            let res_n = res.map(|r| &r[n * co * hw..(n + 1) * co * hw]);
            // tract's threading threshold counts elements of about 1 ns of
            // work each; an output here costs `ci` multiply-adds at ~48 per
            // ns. Counting work instead of outputs lets the small late layers
            // (7x7, 960 input channels) split too: 2 threads 7.7-9.0 ms ->
            // 6.1-7.5 ms per anchor image (median of 40, 6 runs each).
            let total = out_n.len() * ci / 48;
            tract_linalg::multithread::par_chunks_mut(out_n, MR * hw, total, |first, chunk| {
                let blocks = first..first + chunk.len() / (MR * hw);
                let res_c = res_n.map(|r| &r[first * MR * hw..first * MR * hw + chunk.len()]);
                let tile = Tile {
                    packed: &self.packed[blocks.start * ci * MR..blocks.end * ci * MR],
                    bias: &self.bias[blocks.start * MR..blocks.end * MR],
                    x: x_n,
                    ci,
                    hw,
                    ostride: hw,
                    lo,
                    hi,
                };
                tile.run(res_c, chunk);
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// One image's work over a range of row blocks.
struct Tile<'a> {
    /// The blocks' packed weights, `[blocks][ci][8]`.
    packed: &'a [f32],
    /// The blocks' biases.
    bias: &'a [f32],
    /// `[ci, hw]`.
    x: &'a [f32],
    ci: usize,
    hw: usize,
    /// Distance between output rows (`hw` unless the tile writes a column
    /// range of wider planes, as [`super::im2col`] does).
    ostride: usize,
    lo: f32,
    hi: f32,
}

impl Tile<'_> {
    /// `out` (and `res`) `[blocks * 8, ostride]`, the last row `hw` long.
    fn run(&self, res: Option<&[f32]>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; `run_avx512` stays inside the
            // slices' bounds (see its comments).
            return unsafe { self.run_avx512(res, out) };
        }
        self.run_portable(res, out)
    }

    /// The same tiling in plain Rust: 8 rows x 16 columns per register tile.
    fn run_portable(&self, res: Option<&[f32]>, out: &mut [f32]) {
        let (ci, hw) = (self.ci, self.hw);
        let blocks = out.len().div_ceil(MR * self.ostride);
        let mut j0 = 0;
        while j0 < hw {
            let n = LANES.min(hw - j0);
            for b in 0..blocks {
                let w = &self.packed[b * ci * MR..(b + 1) * ci * MR];
                let mut acc = [[0f32; LANES]; MR];
                let mut xv = [0f32; LANES];
                for k in 0..ci {
                    xv[..n].copy_from_slice(&self.x[k * hw + j0..k * hw + j0 + n]);
                    let wk = &w[k * MR..k * MR + MR];
                    for (a, &wr) in acc.iter_mut().zip(wk) {
                        for (s, &xx) in a.iter_mut().zip(&xv) {
                            *s += wr * xx;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let row = (b * MR + r) * self.ostride + j0;
                    let bias = self.bias[b * MR + r];
                    for (c, &s) in a[..n].iter().enumerate() {
                        let v = s + bias;
                        let v = if v < self.lo { self.lo } else { v };
                        let mut v = if v > self.hi { self.hi } else { v };
                        if let Some(res) = res {
                            v += res[row + c];
                        }
                        out[row + c] = v;
                    }
                }
            }
            j0 += n;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, res: Option<&[f32]>, out: &mut [f32]) {
        let hw = self.hw;
        let blocks = out.len().div_ceil(MR * self.ostride);
        let mut j0 = 0;
        while j0 < hw {
            let left = hw - j0;
            if left <= GEMV_TAIL {
                // SAFETY: columns j0..hw of x, out and res are in bounds.
                unsafe { self.columns(j0, res, out) };
                break;
            }
            // 3 vectors while at least 33 columns remain, else just enough.
            let nv = left.div_ceil(LANES).min(3);
            let cols = left.min(nv * LANES);
            for b in 0..blocks {
                // SAFETY: `tile` reads columns j0..j0 + cols of rows 0..ci of
                // `x` and of rows b*8..b*8+8 of `out` / `res`, all in bounds.
                unsafe {
                    match nv {
                        3 => self.tile::<3>(b, j0, cols, res, out),
                        2 => self.tile::<2>(b, j0, cols, res, out),
                        _ => self.tile::<1>(b, j0, cols, res, out),
                    }
                }
            }
            j0 += cols;
        }
    }

    /// The last few columns `j0..hw` one at a time, as matrix-vector
    /// products with the 8 output rows of a block in the lanes of a 256-bit
    /// vector: a 16-lane tile would spend a whole vector's work on each of
    /// them (7x7 planes are 3 vectors + 1 column; the 1 cost a third of the
    /// layer). Four accumulators over `ci` (mod 4) hide the FMA latency.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn columns(&self, j0: usize, res: Option<&[f32]>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (ci, hw) = (self.ci, self.hw);
        let blocks = out.len().div_ceil(MR * self.ostride);
        let mut col = vec![0f32; ci];
        for j in j0..hw {
            for (k, c) in col.iter_mut().enumerate() {
                *c = self.x[k * hw + j];
            }
            for b in 0..blocks {
                let w = &self.packed[b * ci * MR..(b + 1) * ci * MR];
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut quads = col.chunks_exact(4);
                for (q, xs) in (&mut quads).enumerate() {
                    for (u, a) in acc.iter_mut().enumerate() {
                        // SAFETY: w holds ci * 8 floats; row 4q + u < ci.
                        let wv = unsafe { _mm256_loadu_ps(w.as_ptr().add((4 * q + u) * MR)) };
                        *a = _mm256_fmadd_ps(wv, _mm256_set1_ps(xs[u]), *a);
                    }
                }
                let done = ci - quads.remainder().len();
                for (u, &xv) in quads.remainder().iter().enumerate() {
                    // SAFETY: row done + u < ci.
                    let wv = unsafe { _mm256_loadu_ps(w.as_ptr().add((done + u) * MR)) };
                    acc[u] = _mm256_fmadd_ps(wv, _mm256_set1_ps(xv), acc[u]);
                }
                let sum =
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let mut lanes = [0f32; MR];
                // SAFETY: 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
                for (r, &v) in lanes.iter().enumerate() {
                    let at = (b * MR + r) * self.ostride + j;
                    let v = v + self.bias[b * MR + r];
                    // The vector paths' operand order: a NaN stays a NaN.
                    let v = if v < self.lo { self.lo } else { v };
                    let mut v = if v > self.hi { self.hi } else { v };
                    if let Some(res) = res {
                        v += res[at];
                    }
                    out[at] = v;
                }
            }
        }
    }

    /// One 8 x (NV * 16) tile at row block `b`, column `j0`, `cols` <= NV * 16
    /// columns wide (the last vector masked).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const NV: usize>(
        &self,
        b: usize,
        j0: usize,
        cols: usize,
        res: Option<&[f32]>,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let (ci, hw) = (self.ci, self.hw);
        let tail = cols - (NV - 1) * LANES; // 1..=16 columns in the last vector
        let mask: __mmask16 = if tail >= LANES {
            0xFFFF
        } else {
            (1u16 << tail) - 1
        };
        let w = self.packed[b * ci * MR..(b + 1) * ci * MR].as_ptr();
        let x = self.x.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for k in 0..ci {
            // SAFETY: row k of x has hw floats; columns j0..j0 + cols exist and
            // the masked load touches no lane past `cols`.
            let xr = unsafe { x.add(k * hw + j0) };
            let mut xv = [_mm512_setzero_ps(); NV];
            for (v, slot) in xv.iter_mut().enumerate() {
                *slot = unsafe {
                    if v + 1 == NV {
                        _mm512_maskz_loadu_ps(mask, xr.add(v * LANES))
                    } else {
                        _mm512_loadu_ps(xr.add(v * LANES))
                    }
                };
            }
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: w holds ci * 8 floats for this block.
                let wb = _mm512_set1_ps(unsafe { *w.add(k * MR + r) });
                for (s, xx) in a.iter_mut().zip(&xv) {
                    *s = _mm512_fmadd_ps(wb, *xx, *s);
                }
            }
        }
        let (lo, hi) = (_mm512_set1_ps(self.lo), _mm512_set1_ps(self.hi));
        for (r, a) in acc.iter().enumerate() {
            let row = (b * MR + r) * self.ostride + j0;
            let bias = _mm512_set1_ps(self.bias[b * MR + r]);
            for (v, s) in a.iter().enumerate() {
                let m = if v + 1 == NV { mask } else { 0xFFFF };
                // Operand order keeps a NaN a NaN, as the portable path does.
                let y = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_add_ps(*s, bias)));
                // SAFETY: row `row` of out (and res) has columns up to j0 + cols.
                unsafe {
                    let y = match res {
                        Some(res) => _mm512_add_ps(
                            y,
                            _mm512_maskz_loadu_ps(m, res.as_ptr().add(row + v * LANES)),
                        ),
                        None => y,
                    };
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(row + v * LANES), m, y);
                }
            }
        }
    }
}

native_op!(Conv1x1, "EdgebindConv1x1", |op| format!(
    "{} -> {} channels, clamp {:?}, residual {}",
    op.ci, op.co, op.clamp, op.residual
));

impl EvalOp for Conv1x1 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs.first().map(|t| t.shape()).unwrap_or_default();
        let r = shape.len();
        ensure!(
            r >= 3 && shape[r - 3] == self.ci,
            "{}: input {shape:?}",
            self.name()
        );
        let hw = shape[r - 2] * shape[r - 1];
        let mut oshape: TVec<usize> = shape.into();
        oshape[r - 3] = self.co;
        let (x, res) = inputs_with_residual(&self.name(), &inputs, self.residual, &oshape)?;
        let res = res.as_ref().map(|v| v.as_slice::<f32>()).transpose()?;
        f32_output(&oshape, |out| self.run(x.as_slice::<f32>()?, res, hw, out))
    }
}

impl TypedOp for Conv1x1 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = channel_first_input(&self.name(), inputs[0], self.ci)?;
        let r = shape.len();
        shape[r - 3] = self.co.to_dim();
        output_with_residual(&self.name(), self.residual, inputs, shape)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            out[0].shape.volume() * self.ci
        )))
    }

    as_op!();
}

fn as_conv1x1(model: &TypedModel, node: &TypedNode) -> Option<(usize, usize, Vec<f32>, Vec<f32>)> {
    let c = plain_conv(model, node)?;
    let ok = c.group == 1
        && c.co.is_multiple_of(MR)
        && c.kernel == (1, 1)
        && c.stride == (1, 1)
        && c.pad == [0; 4];
    ok.then_some((c.ci, c.co, c.weights, c.bias))
}

/// Replaces every 1x1 convolution of a not-yet-decluttered `model` that
/// [`Conv1x1`] handles (with the clamp and residual add after it); returns
/// how many it replaced.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    replace_all(model, |model, id| {
        let (ci, co, w, b) = as_conv1x1(model, model.node(id))?;
        let clamp = clamp_after(model, id);
        let mut last = clamp.map_or(id, |(min, ..)| min);
        let residual = residual_after(model, last);
        let mut inputs = vec![model.node(id).inputs[0]];
        if let Some((add, other)) = residual {
            last = add;
            inputs.push(other);
        }
        let clamp = clamp.map(|(_, lo, hi)| (lo, hi));
        let op = Conv1x1::new(ci, co, &w, b, clamp, residual.is_some());
        Some((last, inputs, op))
    })
}

#[cfg(test)]
mod tests {
    use super::super::native::test_util::{max_diff, noise, run, wire_conv};
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// The definition in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        w: &[f32],
        b: &[f32],
        x: &[f32],
        res: Option<&[f32]>,
        ci: usize,
        co: usize,
        hw: usize,
        clamp: Option<(f32, f32)>,
    ) -> Vec<f32> {
        let n = x.len() / (ci * hw);
        let mut out = vec![0f32; n * co * hw];
        for i in 0..n {
            for o in 0..co {
                for p in 0..hw {
                    let mut v = b[o] as f64;
                    for k in 0..ci {
                        v += w[o * ci + k] as f64 * x[(i * ci + k) * hw + p] as f64;
                    }
                    if let Some((lo, hi)) = clamp {
                        v = v.clamp(lo as f64, hi as f64);
                    }
                    let at = (i * co + o) * hw + p;
                    out[at] = (v + res.map_or(0.0, |r| r[at] as f64)) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_ragged_sizes_both_paths() {
        for (ci, co) in [(1, 8), (3, 16), (16, 24), (37, 8)] {
            for hw in [1, 7, 16, 17, 33, 48, 49, 100, 196] {
                for (clamp, residual) in [
                    (None, false),
                    (Some((0.0, 0.5)), false),
                    (None, true),
                    (Some((-0.2, 0.3)), true),
                ] {
                    let w = noise(co * ci, 1);
                    let b = noise(co, 2);
                    let x = noise(2 * ci * hw, (ci * 1000 + hw) as u64); // batch of 2
                    let res = residual.then(|| noise(2 * co * hw, 7));
                    let op = Conv1x1::new(ci, co, &w, b.clone(), clamp, residual).unwrap();
                    let want = reference(&w, &b, &x, res.as_deref(), ci, co, hw, clamp);
                    let mut got = vec![f32::NAN; want.len()];
                    op.run(&x, res.as_deref(), hw, &mut got).unwrap();
                    // The portable path, on the first image, whatever the CPU.
                    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                    let tile = Tile {
                        packed: &op.packed,
                        bias: &op.bias,
                        x: &x[..ci * hw],
                        ci,
                        hw,
                        ostride: hw,
                        lo,
                        hi,
                    };
                    let mut portable = vec![f32::NAN; co * hw];
                    tile.run_portable(res.as_deref().map(|r| &r[..co * hw]), &mut portable);
                    let case =
                        format!("ci {ci} co {co} hw {hw} clamp {clamp:?} residual {residual}");
                    for (name, got, want) in [
                        ("dispatched", &got[..], &want[..]),
                        ("portable", &portable[..], &want[..co * hw]),
                    ] {
                        let max = max_diff(got, want);
                        assert!(max <= 2e-5, "{case} {name}: max diff {max:e}");
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert!(Conv1x1::new(4, 12, &[0.0; 48], vec![0.0; 12], None, false).is_err()); // co % 8
        assert!(Conv1x1::new(4, 8, &[0.0; 31], vec![0.0; 8], None, false).is_err());
        assert!(Conv1x1::new(0, 8, &[], vec![0.0; 8], None, false).is_err());
        let op = Conv1x1::new(2, 8, &[0.0; 16], vec![0.0; 8], None, true).unwrap();
        let err = op.run(&[0.0; 8], None, 4, &mut [0.0; 32]).unwrap_err();
        assert!(format!("{err}").contains("residual None"), "{err}");
        let err = op
            .run(&[0.0; 9], Some(&[0.0; 32]), 4, &mut [0.0; 32])
            .unwrap_err();
        assert!(format!("{err}").contains("9 input values"), "{err}");
    }

    /// `x [1, ci, h, w] -> conv 1x1 (co) -> [Max(0) -> Min(0.75)] -> [Add(r)]`
    /// where `r` is a second source, plus `Add(conv, 1)` as a second consumer
    /// of the conv when `tap`.
    fn model(
        ci: usize,
        co: usize,
        hw: (usize, usize),
        relu: bool,
        residual: bool,
        tap: bool,
    ) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, ci, hw.0, hw.1])).unwrap();
        let r = m.add_source("r", f32::fact([1, co, hw.0, hw.1])).unwrap();
        let mut y = wire_conv(&mut m, x, (ci, co, 1), 1, 1, 0);
        let mut outputs = vec![];
        if tap {
            let one = m.add_const("one", tensor4(&[[[[1f32]]]])).unwrap();
            outputs.push(m.wire_node("tap", math::add(), &[y, one]).unwrap()[0]);
        }
        if relu {
            let zero = m.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
            let six = m.add_const("six", tensor4(&[[[[0.75f32]]]])).unwrap();
            y = m.wire_node("max", math::max(), &[y, zero]).unwrap()[0];
            y = m.wire_node("min", math::min(), &[y, six]).unwrap()[0];
        }
        if residual {
            y = m.wire_node("res", math::add(), &[r, y]).unwrap()[0];
        }
        outputs.insert(0, y);
        m.select_output_outlets(&outputs).unwrap();
        m
    }

    #[test]
    fn fuse_takes_the_clamp_and_the_residual_when_nothing_else_reads_them() {
        let (ci, co, hw) = (12, 16, (5, 7));
        let x = Tensor::from_shape(&[1, ci, 5, 7], &noise(ci * 35, 9)).unwrap();
        let r = Tensor::from_shape(&[1, co, 5, 7], &noise(co * 35, 10)).unwrap();
        // (relu, residual, second consumer of the conv) -> clamp and residual fused
        for (relu, residual, tap) in [
            (true, true, false),
            (false, true, false),
            (true, false, false),
            (true, true, true),
        ] {
            let stock = model(ci, co, hw, relu, residual, tap);
            let mut fused = stock.clone();
            let case = format!("relu {relu} residual {residual} tap {tap}");
            assert_eq!(fuse(&mut fused).unwrap(), 1, "{case}");
            let ops: Vec<&Conv1x1> = fused
                .nodes
                .iter()
                .filter_map(|n| n.op_as::<Conv1x1>())
                .collect();
            assert_eq!(ops.len(), 1, "{case}");
            assert_eq!(
                ops[0].clamp,
                (relu && !tap).then_some((0.0, 0.75)),
                "{case}"
            );
            assert_eq!(ops[0].residual, residual && !tap, "{case}");
            let (a, b) = (run(stock, &[&x, &r]), run(fused, &[&x, &r]));
            assert_eq!(a.len(), b.len(), "{case}");
            for (a, b) in a.iter().zip(&b) {
                let max = max_diff(a, b);
                assert!(max <= 1e-5, "{case}: max diff {max:e}");
            }
        }
        // Strided 1x1 convolutions are left to tract.
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 4, 6, 6])).unwrap();
        let y = wire_conv(&mut m, x, (4, 8, 1), 1, 2, 0);
        m.select_output_outlets(&[y]).unwrap();
        assert_eq!(fuse(&mut m).unwrap(), 0);
    }
}
