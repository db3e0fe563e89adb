//! edgebind's own multi-head attention core for tract: from the per-head
//! queries, keys and values to the per-head context, in one pass.
//!
//! Why: for short prompts (a text tower at batch 8 x 10 tokens) the attention
//! core is ~1% of the multiply-adds but tract ran it as eight operators per
//! layer (two batched matrix products with their packing, the scale, the
//! mask add, a softmax over rows of 10, axis moves): ~4.5 ms of a 23 ms
//! batch once [`super::linear`] had taken the dense layers. Here each
//! (item, head) does its whole softmax(`Q K^T * scale + mask`) `V` with `K`
//! transposed into a small scratch, so every inner loop runs along a
//! contiguous row (vectorised by the compiler; AVX-512 where the CPU has it)
//! and no intermediate tensor is materialised. `exp` is Cephes' single
//! precision polynomial (relative error ~1e-7), vectorisable, unlike libm's.
//!
//! [`fuse`] rewrites a *decluttered* tract model: `EinSum(q [b,s,h,d],
//! k [b,t,h,d]) -> [b,h,s,t]`, optionally `Mul` by a scalar constant, `Add`
//! of an additive mask `[b or 1, 1, 1, t]`, `Softmax` over the last axis,
//! `EinSum(p, v [b,t,h,d]) -> [b,s,h,d]` (the shape of BERT-family exports,
//! nothing else reading the intermediate values) becomes one [`Attention`]
//! node on `q`, `k`, `v` and the mask.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::native::{const_values, einsum_labels, f32_output, native_op, replace_all, single_bin};

/// softmax(`q k^T * scale + mask`) `v` per (item, head).
#[derive(Debug, Clone)]
pub struct Attention {
    scale: f32,
}

impl PartialEq for Attention {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits()
    }
}
impl Eq for Attention {}

/// Sizes of one call: `q` `[b, s, h, d]`, `k` and `v` `[b, t, h, d]`, mask
/// `[mb, 1, 1, t]` with `mb` 1 or `b`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    t: usize,
    h: usize,
    d: usize,
    mask_per_item: bool,
}

impl Attention {
    /// The core with scores multiplied by `scale` before the mask is added.
    pub fn new(scale: f32) -> Attention {
        Attention { scale }
    }

    /// Checks the four input shapes; returns the sizes.
    fn dims<D: DimLike>(&self, shapes: [&[D]; 4]) -> TractResult<Dims> {
        let [q, k, v, m] = shapes;
        let name = self.name();
        ensure!(
            q.len() == 4 && k.len() == 4 && v.len() == 4 && m.len() == 4,
            "{name}: q {q:?}, k {k:?}, v {v:?}, mask {m:?}: rank 4 expected"
        );
        ensure!(
            k == v && k[0] == q[0] && k[2] == q[2] && k[3] == q[3],
            "{name}: q {q:?}, k {k:?}, v {v:?}: [b, s, h, d] and [b, t, h, d] expected"
        );
        ensure!(
            (m[0] == q[0] || m[0] == D::one())
                && m[1] == D::one()
                && m[2] == D::one()
                && m[3] == k[1],
            "{name}: mask {m:?} for keys {k:?}: [b or 1, 1, 1, t] expected"
        );
        let c = |x: &D| x.to_usize();
        Ok(Dims {
            b: c(&q[0]).unwrap_or(0),
            s: c(&q[1]).unwrap_or(0),
            t: c(&k[1]).unwrap_or(0),
            h: c(&q[2])?,
            d: c(&q[3])?,
            mask_per_item: m[0] != D::one() || q[0] == D::one(),
        })
    }

    /// `out` `[b, s, h, d]`.
    fn run(
        &self,
        dims: Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: &[f32],
        out: &mut [f32],
    ) -> TractResult<()> {
        let Dims {
            b,
            s,
            t,
            h,
            d,
            mask_per_item,
        } = dims;
        ensure!(
            q.len() == b * s * h * d
                && k.len() == b * t * h * d
                && v.len() == k.len()
                && mask.len() == if mask_per_item { b * t } else { t }
                && out.len() == q.len(),
            "{}: buffer sizes for {dims:?}",
            self.name()
        );
        if out.is_empty() {
            return Ok(());
        }
        // 2 products of s * t * d per head, ~1 ns per 48.
        let total = b * h * s * t * d / 24;
        tract_linalg::multithread::par_chunks_mut(out, s * h * d, total, |first, chunk| {
            let mut scratch = vec![0f32; t * d + t];
            for (i, out_b) in chunk.chunks_exact_mut(s * h * d).enumerate() {
                let item = first + i;
                let at = item * t * h * d..(item + 1) * t * h * d;
                let m = if mask_per_item {
                    &mask[item * t..(item + 1) * t]
                } else {
                    mask
                };
                let one = Item {
                    q: &q[item * s * h * d..(item + 1) * s * h * d],
                    k: &k[at.clone()],
                    v: &v[at],
                    mask: m,
                    s,
                    t,
                    h,
                    d,
                    scale: self.scale,
                };
                one.run(&mut scratch, out_b);
            }
            Ok(())
        })
    }
}

/// One batch item.
struct Item<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: &'a [f32],
    s: usize,
    t: usize,
    h: usize,
    d: usize,
    scale: f32,
}

impl Item<'_> {
    fn run(&self, scratch: &mut [f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the body is safe code.
            return unsafe { self.run_avx512(scratch, out) };
        }
        self.run_portable(scratch, out)
    }

    /// Per query row: one dot product per key (the head's `d` values as
    /// masked 16-lane vectors, summed across lanes), the softmax on 16 keys
    /// at a time, then `p V` with up to 4 vectors of `d` in registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, scratch: &mut [f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let Item { s, t, h, d, .. } = *self;
        let row = &mut scratch[..t];
        let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xFFFF } else { (1u16 << n) - 1 } };
        let nd = d.div_ceil(16);
        let dmask = |v: usize| lanes(d - v * 16);
        for head in 0..h {
            for i in 0..s {
                // SAFETY (pointer reads and writes below): rows (i, head) of
                // q and out and (j, head) of k and v hold d floats at
                // (row * h + head) * d, j < t, i < s, and every access is
                // masked to the d (or t) valid lanes.
                let qp = unsafe { self.q.as_ptr().add((i * h + head) * d) };
                let mut max = f32::NEG_INFINITY;
                for (j, r) in row.iter_mut().enumerate() {
                    let kp = unsafe { self.k.as_ptr().add((j * h + head) * d) };
                    let mut acc = _mm512_setzero_ps();
                    for v in 0..nd {
                        let m = dmask(v);
                        unsafe {
                            acc = _mm512_fmadd_ps(
                                _mm512_maskz_loadu_ps(m, qp.add(v * 16)),
                                _mm512_maskz_loadu_ps(m, kp.add(v * 16)),
                                acc,
                            );
                        }
                    }
                    *r = _mm512_reduce_add_ps(acc) * self.scale + self.mask[j];
                    max = max.max(*r);
                }
                let maxv = _mm512_set1_ps(max);
                let mut sum = _mm512_setzero_ps();
                for j0 in (0..t).step_by(16) {
                    let m = lanes(t - j0);
                    unsafe {
                        let p = row.as_mut_ptr().add(j0);
                        let e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p), maxv));
                        let e = _mm512_maskz_mov_ps(m, e);
                        _mm512_mask_storeu_ps(p, m, e);
                        sum = _mm512_add_ps(sum, e);
                    }
                }
                let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
                let op = unsafe { out.as_mut_ptr().add((i * h + head) * d) };
                for v0 in (0..nd).step_by(4) {
                    let mut acc = [_mm512_setzero_ps(); 4];
                    let w = 4.min(nd - v0);
                    for (j, &p) in row.iter().enumerate() {
                        let pv = _mm512_set1_ps(p);
                        let vp = unsafe { self.v.as_ptr().add((j * h + head) * d) };
                        for (u, a) in acc.iter_mut().enumerate().take(w) {
                            let v = v0 + u;
                            unsafe {
                                *a = _mm512_fmadd_ps(
                                    pv,
                                    _mm512_maskz_loadu_ps(dmask(v), vp.add(v * 16)),
                                    *a,
                                );
                            }
                        }
                    }
                    for (u, a) in acc.iter().enumerate().take(w) {
                        let v = v0 + u;
                        unsafe {
                            _mm512_mask_storeu_ps(op.add(v * 16), dmask(v), _mm512_mul_ps(*a, inv));
                        }
                    }
                }
            }
        }
    }

    /// Plain loops, each along a contiguous row (`inline(always)` so the
    /// AVX-512 copy above vectorises them for its target).
    #[inline(always)]
    fn run_portable(&self, scratch: &mut [f32], out: &mut [f32]) {
        let Item { s, t, h, d, .. } = *self;
        let (kt, row) = scratch.split_at_mut(t * d);
        for head in 0..h {
            // K^T for this head: kt[dd * t + j] = k[j, head, dd].
            for j in 0..t {
                let kr = &self.k[(j * h + head) * d..(j * h + head + 1) * d];
                for (dd, &x) in kr.iter().enumerate() {
                    kt[dd * t + j] = x;
                }
            }
            for i in 0..s {
                let qr = &self.q[(i * h + head) * d..(i * h + head + 1) * d];
                row.fill(0.0);
                for (dd, &qv) in qr.iter().enumerate() {
                    for (r, &kv) in row.iter_mut().zip(&kt[dd * t..(dd + 1) * t]) {
                        *r += qv * kv;
                    }
                }
                let mut max = f32::NEG_INFINITY;
                for (r, &m) in row.iter_mut().zip(self.mask) {
                    *r = *r * self.scale + m;
                    max = max.max(*r);
                }
                for r in row.iter_mut() {
                    *r = exp(*r - max);
                }
                let sum: f32 = row.iter().sum();
                let inv = 1.0 / sum;
                let o = &mut out[(i * h + head) * d..(i * h + head + 1) * d];
                o.fill(0.0);
                for (j, &p) in row.iter().enumerate() {
                    let p = p * inv;
                    let vr = &self.v[(j * h + head) * d..(j * h + head + 1) * d];
                    for (ov, &vv) in o.iter_mut().zip(vr) {
                        *ov += p * vv;
                    }
                }
            }
        }
    }
}

/// `e^x` for `x <= 0` (softmax after subtracting the row maximum), Cephes'
/// `expf`: `2^n * p(r)`, `r = x - n ln 2`; 0 below `-87.3` (where `e^x`
/// leaves the normal range). Written branch-free so loops over it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.max(-87.3);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let pow2 = f32::from_bits((((n as i32) + 127) << 23) as u32);
    if x < -87.3 { 0.0 } else { y * pow2 }
}

/// [`exp`] on 16 lanes: the same polynomial, with fused multiply-adds, and
/// `2^n` applied by `vscalefps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let low = _mm512_set1_ps(-87.3);
    let xc = _mm512_max_ps(x, low);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), xc);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let y = _mm512_add_ps(
        _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
        _mm512_set1_ps(1.0),
    );
    let e = _mm512_scalef_ps(y, n);
    // 0 where x < -87.3; NaN stays NaN (the comparison is unordered-true).
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, low), e)
}

native_op!(Attention, "EdgebindAttention", |op| format!(
    "scale {}",
    op.scale
));

impl EvalOp for Attention {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 4,
            "{}: {} inputs",
            self.name(),
            inputs.len()
        );
        let dims = self.dims([
            inputs[0].shape(),
            inputs[1].shape(),
            inputs[2].shape(),
            inputs[3].shape(),
        ])?;
        let views = inputs
            .iter()
            .map(|t| t.try_as_plain_ram())
            .collect::<TractResult<TVec<_>>>()?;
        let [q, k, v, m] = [0, 1, 2, 3].map(|i| views[i].as_slice::<f32>());
        f32_output(inputs[0].shape(), |out| self.run(dims, q?, k?, v?, m?, out))
    }
}

impl TypedOp for Attention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 4,
            "{}: {} inputs",
            self.name(),
            inputs.len()
        );
        ensure!(
            inputs.iter().all(|f| f.datum_type == f32::datum_type()),
            "{}: f32 only",
            self.name()
        );
        let shapes = inputs.iter().map(|f| f.shape.to_tvec()).collect::<Vec<_>>();
        self.dims([&shapes[0], &shapes[1], &shapes[2], &shapes[3]])?;
        Ok(tvec!(f32::fact(shapes[0].clone())))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        // 2 s t d per head; s t exps.
        let q = &inputs[0].shape;
        let t = inputs[1].shape[1].clone();
        Ok(tvec!((Cost::FMA(f32::datum_type()), q.volume() * t * 2)))
    }

    as_op!();
}

/// Labels of a 2-input f32 einsum of rank-4 tensors.
fn einsum4(node: &TypedNode) -> Option<[Vec<char>; 3]> {
    einsum_labels(node).filter(|l| l.iter().all(|v| v.len() == 4))
}

/// `(last node, [q, k, v, mask], scale)` for the attention core starting at
/// einsum `id`.
fn as_attention(model: &TypedModel, id: usize) -> Option<(usize, [OutletId; 4], f32)> {
    // q [B S H D], k [B T H D] -> [B H S T]
    let [q, k, o] = einsum4(model.node(id))?;
    let scores = q[0] == k[0]
        && o == [q[0], q[2], q[1], k[1]]
        && k[2] == q[2]
        && k[3] == q[3]
        && k[1] != q[1];
    if !scores {
        return None;
    }
    let mut at = id;
    let mut scale = 1.0;
    if let Some(mul) = single_bin(model, at, "Mul") {
        let other = *mul.inputs.iter().find(|o| o.node != at)?;
        match const_values(model, other)?.as_slice() {
            [v] => scale = *v,
            _ => return None,
        }
        at = mul.id;
    }
    let add = single_bin(model, at, "Add")?;
    let mask = *add.inputs.iter().find(|o| o.node != at)?;
    let softmax_node = model.single_succ(add.id).ok()??;
    let sm = softmax_node.op_as::<Softmax>()?;
    if sm.kind != SoftmaxKind::Softmax || sm.quant_output_dt.is_some() || sm.axes.as_slice() != [3]
    {
        return None;
    }
    let ctx = model.single_succ(softmax_node.id).ok()??;
    if ctx.inputs.first() != Some(&OutletId::new(softmax_node.id, 0)) {
        return None;
    }
    // p [B H S T], v [B T H D] -> [B S H D]
    let [p, v, c] = einsum4(ctx)?;
    let context = p[0] == v[0] && v[1] == p[3] && v[2] == p[1] && c == [p[0], p[2], p[1], v[3]];
    let outputs = &model.outputs;
    let internal = [id, at, add.id, softmax_node.id]
        .iter()
        .all(|n| !outputs.contains(&OutletId::new(*n, 0)));
    if !context || !internal {
        return None;
    }
    let node = model.node(id);
    let inputs = [node.inputs[0], node.inputs[1], ctx.inputs[1], mask];
    let facts = inputs
        .iter()
        .map(|o| model.outlet_fact(*o).ok().map(|f| f.shape.to_tvec()))
        .collect::<Option<Vec<_>>>()?;
    let mask_fact = model.outlet_fact(mask).ok()?;
    let op = Attention::new(scale);
    let f32s = inputs.iter().all(|o| {
        model
            .outlet_fact(*o)
            .is_ok_and(|f| f.datum_type == f32::datum_type())
    });
    (f32s
        && mask_fact.konst.is_none()
        && op
            .dims([&facts[0], &facts[1], &facts[2], &facts[3]])
            .is_ok())
    .then_some((ctx.id, inputs, scale))
}

/// Replaces every attention core of a decluttered `model` that [`Attention`]
/// handles; returns how many it replaced.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    replace_all(model, |model, id| {
        let (last, inputs, scale) = as_attention(model, id)?;
        Some((last, inputs.to_vec(), Ok(Attention::new(scale))))
    })
}

#[cfg(test)]
mod tests {
    use super::super::native::test_util::{max_diff, noise, run};
    use super::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::math;

    /// The definition in f64.
    fn reference(
        dims: Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: &[f32],
        scale: f32,
    ) -> Vec<f32> {
        let Dims {
            b,
            s,
            t,
            h,
            d,
            mask_per_item,
        } = dims;
        let mut out = vec![0f32; b * s * h * d];
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..s {
                    let qr = &q[((bi * s + i) * h + hi) * d..][..d];
                    let sc: Vec<f64> = (0..t)
                        .map(|j| {
                            let kr = &k[((bi * t + j) * h + hi) * d..][..d];
                            let dot: f64 =
                                qr.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64).sum();
                            dot * scale as f64
                                + mask[if mask_per_item { bi * t + j } else { j }] as f64
                        })
                        .collect();
                    let max = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = sc.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for dd in 0..d {
                        let acc: f64 = (0..t)
                            .map(|j| e[j] / sum * v[((bi * t + j) * h + hi) * d + dd] as f64)
                            .sum();
                        out[((bi * s + i) * h + hi) * d + dd] = acc as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn exp_is_within_a_few_ulps_and_zero_far_below() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(-3.4e38), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp512_matches_exp() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        use std::arch::x86_64::*;
        let xs: Vec<f32> = (0..=4096)
            .map(|i| -90.0 * i as f32 / 4096.0)
            .chain([-3.4e38, f32::NEG_INFINITY, -87.29, -87.31])
            .collect();
        for chunk in xs.chunks(16) {
            let mut buf = [0f32; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            let mut got = [0f32; 16];
            // SAFETY: the CPU has AVX-512F; 16 floats each side.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp512(_mm512_loadu_ps(buf.as_ptr()))) };
            for (x, g) in buf.iter().zip(got) {
                let want = (*x as f64).exp();
                if *x < -87.3 {
                    assert_eq!(g, 0.0, "x {x}");
                } else {
                    let rel = ((g as f64 - want) / want).abs();
                    assert!(rel < 3e-7, "x {x}: {g} vs {want} ({rel:e})");
                }
            }
        }
    }

    #[test]
    fn matches_the_definition_both_paths() {
        for (b, s, t, h, d) in [
            (1, 1, 1, 1, 1),
            (2, 3, 3, 2, 5),
            (3, 10, 10, 12, 32),
            (1, 17, 9, 4, 16),
        ] {
            for mask_per_item in [true, false] {
                let dims = Dims {
                    b,
                    s,
                    t,
                    h,
                    d,
                    mask_per_item,
                };
                let q = noise(b * s * h * d, 1);
                let k = noise(b * t * h * d, 2);
                let v = noise(b * t * h * d, 3);
                // Some keys masked out the way BERT exports do it.
                let mut mask = vec![0f32; if mask_per_item { b * t } else { t }];
                if t > 1 {
                    mask[t - 1] = -3.402_823_5e38;
                }
                let op = Attention::new(0.35);
                let want = reference(dims, &q, &k, &v, &mask, 0.35);
                let mut got = vec![f32::NAN; want.len()];
                op.run(dims, &q, &k, &v, &mask, &mut got).unwrap();
                let mut portable = vec![f32::NAN; want.len()];
                let mut scratch = vec![0f32; t * d + t];
                for bi in 0..b {
                    let m = if mask_per_item {
                        &mask[bi * t..(bi + 1) * t]
                    } else {
                        &mask[..]
                    };
                    Item {
                        q: &q[bi * s * h * d..(bi + 1) * s * h * d],
                        k: &k[bi * t * h * d..(bi + 1) * t * h * d],
                        v: &v[bi * t * h * d..(bi + 1) * t * h * d],
                        mask: m,
                        s,
                        t,
                        h,
                        d,
                        scale: 0.35,
                    }
                    .run_portable(
                        &mut scratch,
                        &mut portable[bi * s * h * d..(bi + 1) * s * h * d],
                    );
                }
                for (name, got) in [("dispatched", &got), ("portable", &portable)] {
                    let max = max_diff(got, &want);
                    assert!(max <= 2e-6, "{dims:?} {name}: max diff {max:e}");
                }
            }
        }
    }

    /// BERT's attention core on `q`, `k`, `v` `[2, s, 3, 8]` (symbolic `s`)
    /// with the mask built from a 0/1 input the way the exports do.
    fn graph(scaled: bool) -> TypedModel {
        let mut m = TypedModel::default();
        let s = m.symbols.sym("s");
        let fact = f32::fact(dims![2, s.clone(), 3, 8]);
        let q = m.add_source("q", fact.clone()).unwrap();
        let k = m.add_source("k", fact.clone()).unwrap();
        let v = m.add_source("v", fact).unwrap();
        let keep = m
            .add_source("keep", f32::fact(dims![2, 1, 1, s.clone()]))
            .unwrap();
        let one = m.add_const("one", tensor4(&[[[[1f32]]]])).unwrap();
        let big = m
            .add_const("big", tensor4(&[[[[-3.402_823_5e38f32]]]]))
            .unwrap();
        let inv = m.wire_node("inv", math::sub(), &[one, keep]).unwrap()[0];
        let mask = m.wire_node("mask", math::mul(), &[inv, big]).unwrap()[0];
        let mut x = m
            .wire_node(
                "qk",
                EinSum::new("bshd,bthd->bhst".parse().unwrap(), f32::datum_type()),
                &[q, k],
            )
            .unwrap()[0];
        if scaled {
            let c = m.add_const("c", tensor4(&[[[[0.3535f32]]]])).unwrap();
            x = m.wire_node("scale", math::mul(), &[x, c]).unwrap()[0];
        }
        let x = m.wire_node("add", math::add(), &[x, mask]).unwrap()[0];
        let p = m
            .wire_node(
                "softmax",
                Softmax::new(tvec![3], None, SoftmaxKind::Softmax),
                &[x],
            )
            .unwrap()[0];
        let ctx = m
            .wire_node(
                "pv",
                EinSum::new("bhst,bthd->bshd".parse().unwrap(), f32::datum_type()),
                &[p, v],
            )
            .unwrap()[0];
        m.select_output_outlets(&[ctx]).unwrap();
        m
    }

    #[test]
    fn fuse_matches_tracts_plan_with_symbolic_tokens() {
        for scaled in [true, false] {
            let stock = graph(scaled);
            let mut native = graph(scaled);
            assert_eq!(fuse(&mut native).unwrap(), 1);
            let names: Vec<_> = native
                .nodes()
                .iter()
                .map(|n| n.op.name().to_string())
                .collect();
            assert!(
                !names.iter().any(|n| n == "EinSum" || n == "Softmax"),
                "{names:?}"
            );
            for s in [1, 4, 10] {
                let fact =
                    |seed| Tensor::from_shape(&[2, s, 3, 8], &noise(2 * s * 24, seed)).unwrap();
                let keep: Vec<f32> = (0..2 * s)
                    .map(|i| if i == 2 * s - 1 && s > 1 { 0.0 } else { 1.0 })
                    .collect();
                let keep = Tensor::from_shape(&[2, 1, 1, s], &keep).unwrap();
                let inputs = [fact(1), fact(2), fact(3), keep];
                let refs: Vec<&Tensor> = inputs.iter().collect();
                let want = run(stock.clone(), &refs);
                let got = run(native.clone(), &refs);
                let max = max_diff(&got[0], &want[0]);
                assert!(max <= 1e-6, "scaled {scaled} s {s}: max diff {max:e}");
            }
        }
    }

    #[test]
    fn fuse_leaves_a_core_whose_scores_are_read_elsewhere() {
        let mut m = graph(true);
        let add = m.node_by_name("add").unwrap().id;
        let extra = m
            .wire_node("extra", math::square(), &[OutletId::new(add, 0)])
            .unwrap()[0];
        let out = m.outputs[0];
        m.select_output_outlets(&[out, extra]).unwrap();
        assert_eq!(fuse(&mut m).unwrap(), 0);
    }
}
