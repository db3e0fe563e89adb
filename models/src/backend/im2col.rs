//! Convolutions with few input channels (a network's stem, e.g. MobileNetV2's
//! 3 -> 32, 3x3, stride 2) as one patch matrix and [`super::conv1x1`]'s
//! kernel, the padding and the clamp after it folded in.
//!
//! Why: tract ran MobileNetV2's stem as an explicit `Pad`, a lazy im2col
//! matrix product at ~12 GMAC/s (its kernels want a long reduction; this one
//! has 27 terms) and a separate ReLU6 pass: ~1.4 ms of a ~10 ms image, for
//! 3.6% of the multiply-adds. Here the patches are written once as a
//! `[ci * kh * kw, oh * ow]` matrix (rows are plain strided copies of input
//! rows, zeros where the window leaves the image), and the pointwise kernel
//! runs on it with the bias and clamp in its epilogue. The matrix lives in a
//! per-thread scratch buffer reused across runs.
//!
//! [`fuse`] rewrites a tract model *before* declutter: every f32 `Conv` with
//! group 1, `ci * kh * kw` <= [`MAX_PATCH`], dilation 1, explicit or no
//! padding, channel-first data, constant weights and bias and an output
//! channel count that is a multiple of 8 (and not a 1x1 kernel, which
//! [`super::conv1x1`] takes whole) becomes a [`SmallConv`] node, taking
//! along a `Max`/`Min` clamp with scalar constants when it follows.

use std::cell::RefCell;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv1x1::Conv1x1;
use super::native::{
    PlainConv, channel_first_input, clamp_after, f32_output, native_op, plain_conv, replace_all,
};

/// Largest patch (`ci * kh * kw`) taken: the patch matrix is this many times
/// the output plane; beyond it tract's own convolution is the better deal.
pub const MAX_PATCH: usize = 64;

/// Output columns per band of patches (whole output rows).
const BAND: usize = 448;

thread_local! {
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A `kh` x `kw` convolution of `ci` channels, as patches times weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallConv {
    ci: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    /// top, left, bottom, right.
    pad: [usize; 4],
    /// `ci * kh * kw` -> `co`, with the bias and the clamp.
    inner: Conv1x1,
}

impl SmallConv {
    /// `weights` `[co, ci, kh, kw]` row-major, `bias` `[co]`; `co` a
    /// multiple of 8.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ci: usize,
        co: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: [usize; 4],
        weights: &[f32],
        bias: Vec<f32>,
        clamp: Option<(f32, f32)>,
    ) -> TractResult<Self> {
        ensure!(
            kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0,
            "kernel {kernel:?}, stride {stride:?}"
        );
        let inner = Conv1x1::new(ci * kernel.0 * kernel.1, co, weights, bias, clamp, false)?;
        Ok(SmallConv {
            ci,
            kernel,
            stride,
            pad,
            inner,
        })
    }

    /// Output plane for an input plane of `h` x `w`.
    fn out_hw<D: DimLike>(&self, h: D, w: D) -> TractResult<(D, D)> {
        let [t, l, b, r] = self.pad;
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (h, w) = (h + t + b, w + l + r);
        let ok = |d: &D, k: usize| d.to_usize().map_or(true, |v| v >= k);
        ensure!(
            ok(&h, kh) && ok(&w, kw),
            "{}: padded plane {h:?} x {w:?} smaller than the {kh}x{kw} kernel",
            self.name()
        );
        Ok(((h - kh) / sh + 1, (w - kw) / sw + 1))
    }

    /// Writes the patches of output rows `rows` of one image `x` `[ci, h, w]`
    /// into `cols` `[ci * kh * kw, rows.len() * ow]`.
    fn patches(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        ow: usize,
        rows: std::ops::Range<usize>,
        cols: &mut [f32],
    ) {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let [pt, pl, ..] = self.pad;
        let mut planes = cols.chunks_exact_mut(rows.len() * ow);
        for c in 0..self.ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    let plane = planes.next().expect("ci * kh * kw rows");
                    // Output columns whose input column ox * sw + kx - pl is
                    // inside the image.
                    let lo = pl.saturating_sub(kx).div_ceil(sw).min(ow);
                    let hi = if w + pl > kx {
                        ((w + pl - kx - 1) / sw + 1).min(ow)
                    } else {
                        0
                    }
                    .max(lo);
                    for (oy, dst) in rows.clone().zip(plane.chunks_exact_mut(ow)) {
                        let iy = (oy * sh + ky).wrapping_sub(pt);
                        if iy >= h {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &x[(c * h + iy) * w..(c * h + iy + 1) * w];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if hi == lo {
                            continue;
                        }
                        let first = lo * sw + kx - pl;
                        if sw == 1 {
                            dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                        } else {
                            let n = hi - lo;
                            strided(&src[first..first + (n - 1) * sw + 1], sw, &mut dst[lo..hi]);
                        }
                    }
                }
            }
        }
    }

    /// `x` `[n, ci, h, w]` -> `out` `[n, co, oh, ow]`, contiguous.
    fn run(&self, x: &[f32], hw: (usize, usize), out: &mut [f32]) -> TractResult<()> {
        let (oh, ow) = self.out_hw(hw.0, hw.1)?;
        let (plane_in, plane) = (self.ci * hw.0 * hw.1, oh * ow);
        let k = self.ci * self.kernel.0 * self.kernel.1;
        ensure!(
            plane_in > 0 && x.len().is_multiple_of(plane_in),
            "{}: {} input values for {} channels of {hw:?}",
            self.name(),
            x.len(),
            self.ci
        );
        let co = self.inner.output_channels();
        ensure!(
            out.len() == x.len() / plane_in * co * plane,
            "{}: {} output values for {} images of {co} x {oh} x {ow}",
            self.name(),
            out.len(),
            x.len() / plane_in
        );
        // Bands of whole output rows, ~BAND columns: their patches (k x
        // BAND floats) stay in cache between being written and being read.
        let band = (BAND / ow).max(1);
        for (x_n, out_n) in x
            .chunks_exact(plane_in)
            .zip(out.chunks_exact_mut(co * plane))
        {
            // Threads take row blocks (each writes its own patches);
            // tract's threshold counts ~1 ns elements, ~48 MACs each.
            let total = co * plane * k / 48;
            tract_linalg::multithread::par_chunks_mut(out_n, 8 * plane, total, |first, chunk| {
                let blocks = first..first + chunk.len() / (8 * plane);
                PATCHES.with_borrow_mut(|cols| {
                    for oy0 in (0..oh).step_by(band) {
                        let rows = oy0..(oy0 + band).min(oh);
                        let n = rows.len() * ow;
                        cols.resize(k * n, 0.0);
                        self.patches(x_n, hw, ow, rows, &mut cols[..k * n]);
                        let start = oy0 * ow;
                        let len = (blocks.len() * 8 - 1) * plane + n;
                        self.inner.run_band(
                            &cols[..k * n],
                            n,
                            blocks.clone(),
                            plane,
                            &mut chunk[start..start + len],
                        );
                    }
                });
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// `dst[i] = src[i * stride]` (`src` at least `(dst.len() - 1) * stride + 1`
/// long); stride 2 with AVX-512 permutes where the CPU has them.
fn strided(src: &[f32], stride: usize, dst: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if stride == 2 && std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; see `even_avx512`.
        done = unsafe { even_avx512(src, dst) };
    }
    for (i, d) in dst.iter_mut().enumerate().skip(done) {
        *d = src[i * stride];
    }
}

/// The even elements of `src` into `dst`, 16 at a time while 32 source
/// elements remain; returns how many it wrote.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn even_avx512(src: &[f32], dst: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut i = 0;
    while i + 16 <= dst.len() && 2 * i + 32 <= src.len() {
        // SAFETY: src[2i..2i + 32] and dst[i..i + 16] are in bounds (loop test).
        unsafe {
            let a = _mm512_loadu_ps(src.as_ptr().add(2 * i));
            let b = _mm512_loadu_ps(src.as_ptr().add(2 * i + 16));
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_permutex2var_ps(a, idx, b));
        }
        i += 16;
    }
    i
}

native_op!(SmallConv, "EdgebindSmallConv", |op| format!(
    "{} channels, kernel {:?}, stride {:?}, padding {:?}",
    op.ci, op.kernel, op.stride, op.pad
));

impl EvalOp for SmallConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 1,
            "{}: {} inputs",
            self.name(),
            inputs.len()
        );
        let fact = f32::fact(inputs[0].shape());
        let oshape = self.output_facts(&[&fact])?[0]
            .shape
            .as_concrete()
            .map(TVec::from)
            .ok_or_else(|| anyhow::anyhow!("{}: output shape", self.name()))?;
        let shape = inputs[0].shape();
        let r = shape.len();
        let x = inputs[0].try_as_plain_ram()?;
        f32_output(&oshape, |out| {
            self.run(x.as_slice::<f32>()?, (shape[r - 2], shape[r - 1]), out)
        })
    }
}

impl TypedOp for SmallConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = channel_first_input(&self.name(), inputs[0], self.ci)?;
        let r = shape.len();
        let (oh, ow) = self.out_hw(shape[r - 2].clone(), shape[r - 1].clone())?;
        shape[r - 3] = (self.inner.output_channels()).to_dim();
        shape[r - 2] = oh;
        shape[r - 1] = ow;
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            out[0].shape.volume() * (self.ci * self.kernel.0 * self.kernel.1)
        )))
    }

    as_op!();
}

/// `node` when it is a `Conv` [`SmallConv`] runs.
fn as_small_conv(model: &TypedModel, node: &TypedNode) -> Option<PlainConv> {
    let c = plain_conv(model, node)?;
    let ok = c.group == 1
        && c.co.is_multiple_of(8)
        && c.kernel != (1, 1)
        && c.ci * c.kernel.0 * c.kernel.1 <= MAX_PATCH;
    ok.then_some(c)
}

/// Replaces every convolution of a not-yet-decluttered `model` that
/// [`SmallConv`] handles (with the clamp after it); returns how many it
/// replaced.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    replace_all(model, |model, id| {
        let c = as_small_conv(model, model.node(id))?;
        let clamp = clamp_after(model, id);
        let last = clamp.map_or(id, |(min, ..)| min);
        let clamp = clamp.map(|(_, lo, hi)| (lo, hi));
        let op = SmallConv::new(
            c.ci, c.co, c.kernel, c.stride, c.pad, &c.weights, c.bias, clamp,
        );
        Some((last, vec![model.node(id).inputs[0]], op))
    })
}

#[cfg(test)]
mod tests {
    use super::super::native::test_util::{max_diff, noise, run, wire_conv};
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// The definition in f64 (one image, square padding `pad`).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        (ci, co): (usize, usize),
        (h, wd): (usize, usize),
        k: usize,
        s: usize,
        pad: usize,
        clamp: Option<(f32, f32)>,
    ) -> Vec<f32> {
        let oh = (h + 2 * pad - k) / s + 1;
        let ow = (wd + 2 * pad - k) / s + 1;
        let mut out = vec![0f32; co * oh * ow];
        for o in 0..co {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut v = b[o] as f64;
                    for c in 0..ci {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (y * s + ky) as isize - pad as isize;
                                let ix = (xx * s + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                v += w[((o * ci + c) * k + ky) * k + kx] as f64
                                    * x[(c * h + iy as usize) * wd + ix as usize] as f64;
                            }
                        }
                    }
                    if let Some((lo, hi)) = clamp {
                        v = v.clamp(lo as f64, hi as f64);
                    }
                    out[(o * oh + y) * ow + xx] = v as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        for (ci, co) in [(1, 8), (3, 32), (7, 16)] {
            for (h, wd) in [(1, 1), (5, 7), (16, 16), (17, 33)] {
                for (k, s, pad) in [(3, 1, 1), (3, 2, 1), (3, 2, 0), (2, 2, 0), (5, 3, 2)] {
                    if h + 2 * pad < k || wd + 2 * pad < k {
                        continue;
                    }
                    for clamp in [None, Some((0.0, 0.5))] {
                        let w = noise(co * ci * k * k, 1);
                        let b = noise(co, 2);
                        let x = noise(2 * ci * h * wd, (h * 100 + wd) as u64);
                        let op =
                            SmallConv::new(ci, co, (k, k), (s, s), [pad; 4], &w, b.clone(), clamp)
                                .unwrap();
                        let one =
                            |x: &[f32]| reference(x, &w, &b, (ci, co), (h, wd), k, s, pad, clamp);
                        let want: Vec<f32> = one(&x[..ci * h * wd])
                            .into_iter()
                            .chain(one(&x[ci * h * wd..]))
                            .collect();
                        let mut got = vec![f32::NAN; want.len()];
                        op.run(&x, (h, wd), &mut got).unwrap();
                        let max = max_diff(&got, &want);
                        let case =
                            format!("ci {ci} co {co} {h}x{wd} k {k} s {s} pad {pad} {clamp:?}");
                        assert!(max <= 1e-5, "{case}: max diff {max:e}");
                    }
                }
            }
        }
    }

    #[test]
    fn two_threads_and_bands_match_the_definition() {
        // 16 row blocks x 4096 outputs x 27 MACs: over tract's threading
        // threshold, so the row blocks split across the 2 threads; 64x70
        // output rows make bands of 6 rows and a ragged last band.
        let (ci, co, h, wd) = (3, 128, 128, 140);
        let w = noise(co * ci * 9, 1);
        let b = noise(co, 2);
        let x = noise(ci * h * wd, 3);
        let op = SmallConv::new(
            ci,
            co,
            (3, 3),
            (2, 2),
            [1; 4],
            &w,
            b.clone(),
            Some((0.0, 0.5)),
        )
        .unwrap();
        let want = reference(&x, &w, &b, (ci, co), (h, wd), 3, 2, 1, Some((0.0, 0.5)));
        let mut got = vec![f32::NAN; want.len()];
        let two = tract_linalg::multithread::Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(two, || {
            op.run(&x, (h, wd), &mut got).unwrap()
        });
        let max = max_diff(&got, &want);
        assert!(max <= 1e-5, "max diff {max:e}");
    }

    #[test]
    fn fuse_takes_the_stem_and_its_clamp() {
        let build = || {
            let mut m = TypedModel::default();
            let x = m.add_source("x", f32::fact([1, 3, 23, 20])).unwrap();
            let y = wire_conv(&mut m, x, (3, 16, 1), 3, 2, 1);
            let zero = m.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
            let six = m.add_const("six", tensor4(&[[[[0.75f32]]]])).unwrap();
            let y = m.wire_node("max", math::max(), &[y, zero]).unwrap()[0];
            let y = m.wire_node("min", math::min(), &[y, six]).unwrap()[0];
            // A 1x1 conv and a conv with a big patch stay as they are.
            let z = wire_conv(&mut m, y, (16, 8, 1), 1, 1, 0);
            let z = wire_conv(&mut m, z, (8, 8, 1), 3, 1, 1);
            m.select_output_outlets(&[z]).unwrap();
            m
        };
        let stock = build();
        let mut fused = build();
        assert_eq!(fuse(&mut fused).unwrap(), 1);
        let names: Vec<_> = fused
            .nodes()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        assert!(!names.iter().any(|n| n == "Max" || n == "Min"), "{names:?}");
        assert_eq!(
            names.iter().filter(|n| *n == "Conv").count(),
            2,
            "{names:?}"
        );
        let x = Tensor::from_shape(&[1, 3, 23, 20], &noise(3 * 23 * 20, 5)).unwrap();
        let max = max_diff(&run(stock, &[&x])[0], &run(fused, &[&x])[0]);
        assert!(max <= 1e-5, "max diff {max:e}");
    }
}
