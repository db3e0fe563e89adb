//! The conv stem's convolution on the CPU as im2col + one matrix product.
//!
//! candle 0.9's CPU `conv2d` runs its forward and weight gradient as
//! per-pixel dot products and its input gradient through a direct
//! `conv_transpose2d`: measured on the bundle's vision encoder (batch 64,
//! 2x64x64 clips, `conv_stem = [24, 48]`, one thread) those took about a
//! third of each training step. Here the patches are gathered once
//! ([`Im2Col`], rows = output pixels, columns = `(channel, ky, kx)` in the
//! weight's own order), the convolution is one `[B*Ho*Wo, C*k*k] x [C*k*k,
//! out]` product (gemm, forward and both gradients), and the input gradient
//! scatters the patch gradients back (`Col2Im`). Same arithmetic as the
//! exported ONNX `Conv`, summed in another order (differences ~1e-7).
//! CUDA keeps candle's `conv2d`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Square kernel, stride and zero padding of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl Geometry {
    /// Output side for an input side `n`.
    pub fn out(&self, n: usize) -> usize {
        (n + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// `[B, C, H, W]` (contiguous f32) -> `[B * Ho * Wo, C * k * k]` patches,
/// zeros where the kernel hangs over the padding. Backward: `Col2Im`.
#[derive(Debug, Clone, Copy)]
pub struct Im2Col {
    /// The convolution.
    pub g: Geometry,
}

/// Calls `f(o, input index or None)` for every patch element, `o` its flat
/// index in the row-major `[B*Ho*Wo, C*k*k]` matrix (`None`: padding).
fn for_each_tap(dims: [usize; 4], g: Geometry, mut f: impl FnMut(usize, Option<usize>)) {
    let [b, c, h, w] = dims;
    let (ho, wo) = (g.out(h), g.out(w));
    let mut o = 0;
    for bi in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ci in 0..c {
                    let plane = (bi * c + ci) * h * w;
                    for ky in 0..g.k {
                        let iy = (oy * g.stride + ky).wrapping_sub(g.pad);
                        for kx in 0..g.k {
                            let ix = (ox * g.stride + kx).wrapping_sub(g.pad);
                            let src = (iy < h && ix < w).then(|| plane + iy * w + ix);
                            f(o, src);
                            o += 1;
                        }
                    }
                }
            }
        }
    }
}

fn dims4(shape: &Shape, what: &str) -> Result<[usize; 4]> {
    match *shape.dims() {
        [b, c, h, w] => Ok([b, c, h, w]),
        _ => candle_core::bail!("{what}: expected [B, C, H, W], got {shape:?}"),
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: f32 only");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "im2col")?;
        let d = dims4(l.shape(), "im2col")?;
        let rows = d[0] * self.g.out(d[2]) * self.g.out(d[3]);
        let cols = d[1] * self.g.k * self.g.k;
        let mut out = vec![0f32; rows * cols];
        for_each_tap(d, self.g, |o, src| {
            if let Some(i) = src {
                out[o] = x[i];
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, cols))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let col2im = Col2Im {
            dims: dims4(arg.shape(), "im2col backward")?,
            g: self.g,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&col2im)?))
    }
}

/// The input gradient of [`Im2Col`]: patch gradients `[B*Ho*Wo, C*k*k]`
/// summed back into `[B, C, H, W]` (`dims`).
struct Col2Im {
    dims: [usize; 4],
    g: Geometry,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let gc = f32_slice(s, l, "col2im")?;
        let mut out = vec![0f32; self.dims.iter().product()];
        for_each_tap(self.dims, self.g, |o, src| {
            if let Some(i) = src {
                out[i] += gc[o];
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(self.dims.to_vec())))
    }
}

/// `x [B, C, H, W]` convolved with `w [O, C, k, k]` (no bias): im2col + gemm
/// on the CPU (f32), candle's `conv2d` elsewhere. Returns `[B, O, Ho, Wo]`.
pub fn conv2d(x: &Tensor, w: &Tensor, g: Geometry) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return x.conv2d(w, g.pad, g.stride, 1, 1);
    }
    let [b, _, h, wd] = dims4(x.shape(), "conv2d")?;
    let o = w.dims()[0];
    let (ho, wo) = (g.out(h), g.out(wd));
    let cols = x.contiguous()?.apply_op1(Im2Col { g })?;
    let y = cols.matmul(&w.reshape((o, ()))?.t()?)?; // [B*Ho*Wo, O]
    y.reshape((b, ho, wo, o))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Rng;
    use candle_core::{Device, Var};

    fn rand(dims: &[usize], seed: u64) -> Tensor {
        crate::params::randn(&mut Rng::new(seed), dims, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Forward and both gradients against candle's own conv2d, on even and
    /// odd sides, stride 1 and 2.
    #[test]
    fn matches_candle_conv2d_forward_and_gradients() {
        // (input dims, (kernel, stride, pad))
        for (dims, (k, stride, pad)) in [
            ([2, 3, 8, 8], (3, 2, 1)),
            ([3, 2, 7, 9], (3, 2, 1)),
            ([1, 4, 6, 5], (3, 1, 1)),
            ([2, 1, 9, 9], (2, 2, 0)),
        ] {
            let g = Geometry { k, stride, pad };
            let o = 5;
            let x = Var::from_tensor(&rand(&dims, 1)).unwrap();
            let w = Var::from_tensor(&rand(&[o, dims[1], g.k, g.k], 2)).unwrap();
            let up = rand(&[dims[0], o, g.out(dims[2]), g.out(dims[3])], 3);
            let ours = conv2d(x.as_tensor(), w.as_tensor(), g).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), g.pad, g.stride, 1, 1)
                .unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-5, "{dims:?} {g:?} forward");
            let ga = (&ours * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gb = (&theirs * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w] {
                let (a, b) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(max_diff(a, b) < 1e-5, "{dims:?} {g:?} gradient");
                assert!(
                    b.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                        > 0.1
                );
            }
        }
    }
}
