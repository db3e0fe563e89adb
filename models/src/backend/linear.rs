//! edgebind's own dense layer for tract: `Y = X W + b`, optionally `+ R` (a
//! residual), for transformer blocks whose activations are token-major.
//!
//! Why: in the text tower (all-MiniLM-L6-v2, batch 8 x 10 tokens) tract's
//! matrix products were 80% of a run, and tract 0.23.9 picks its matrix
//! kernel from the token count: for 80 rows it picks a 16x12 tile that ran
//! the 384x384 and 384x1536 products at ~34 GMAC/s where this core reaches
//! ~48, and it packs the activations before every product (another ~6%).
//! Token-major `X [m, k]` needs no packing for a tile that broadcasts its
//! elements: the kernel keeps an 8-row x 48-column tile of `Y` in registers
//! (24 AVX-512 accumulators) and, for each `k`, loads 48 weights and
//! broadcasts 8 activations, one from each of 8 rows. The weights are packed
//! once at load into 48-column panels (`[k][48]` each, so a panel streams
//! sequentially); panels run outermost so a panel stays in cache for every
//! row block. The epilogue adds the bias and the residual before the store.
//! It is the transpose of [`super::conv1x1`]'s tile. Without AVX-512 a
//! portable version of the same tiling runs, vectorised by the compiler.
//!
//! [`fuse`] rewrites a *decluttered* tract model: every f32 `EinSum` that
//! contracts the trailing axes of its first input with the leading axes of a
//! constant second input (`...c,cn->...n`, also `...hd,hdn->...n`), with `n`
//! a multiple of 16, becomes a [`Linear`] node, taking along the bias `Add`
//! and then a residual `Add` of a same-shaped tensor when they follow it
//! (and nothing else reads the intermediate values).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::native::{
    const_values, einsum_labels, f32_output, inputs_with_residual, native_op, output_with_residual,
    replace_all, residual_after, same_f32s, single_bin,
};

/// Rows (tokens) per register tile.
const MR: usize = 8;
/// Floats per vector.
const LANES: usize = 16;
/// Columns per weight panel (3 vectors).
const PANEL: usize = 48;

/// `Y[.., n] = X[.., k] W[k, n] + b (+ R)` on f32, `X`'s last `contracted`
/// axes flattened into `k`.
#[derive(Debug, Clone)]
pub struct Linear {
    k: usize,
    n: usize,
    contracted: usize,
    /// Panels of [`PANEL`] columns (the last one 16 or 32 wide), panel `p`
    /// at `p * PANEL * k`, each `[k][width]`.
    packed: Arc<[f32]>,
    bias: Arc<[f32]>,
    residual: bool,
}

impl PartialEq for Linear {
    fn eq(&self, other: &Self) -> bool {
        (self.k, self.n, self.contracted, self.residual)
            == (other.k, other.n, other.contracted, other.residual)
            && same_f32s(&self.packed, &other.packed)
            && same_f32s(&self.bias, &other.bias)
    }
}
impl Eq for Linear {}

impl Linear {
    /// `weights` `[k, n]` row-major, `bias` `[n]`; `n` a multiple of 16;
    /// the input's last `contracted` axes make `k`.
    pub fn new(
        k: usize,
        n: usize,
        contracted: usize,
        weights: &[f32],
        bias: Vec<f32>,
        residual: bool,
    ) -> TractResult<Self> {
        ensure!(k > 0 && n > 0 && contracted > 0, "{k}x{n} weights");
        ensure!(
            n.is_multiple_of(LANES),
            "{n} output columns: a multiple of {LANES} only"
        );
        ensure!(
            weights.len() == k * n && bias.len() == n,
            "{k}x{n} weights and {n} biases expected, got {} and {}",
            weights.len(),
            bias.len()
        );
        let mut packed = Vec::with_capacity(k * n);
        for c0 in (0..n).step_by(PANEL) {
            let w = PANEL.min(n - c0);
            for kk in 0..k {
                packed.extend_from_slice(&weights[kk * n + c0..kk * n + c0 + w]);
            }
        }
        Ok(Linear {
            k,
            n,
            contracted,
            packed: packed.into(),
            bias: bias.into(),
            residual,
        })
    }

    /// `x` `[m, k]`, `res` (when the op has a residual) and `out` `[m, n]`,
    /// contiguous.
    pub fn run(&self, x: &[f32], res: Option<&[f32]>, out: &mut [f32]) -> TractResult<()> {
        let (k, n) = (self.k, self.n);
        ensure!(
            x.len().is_multiple_of(k)
                && out.len() == x.len() / k * n
                && res.is_none_or(|r| r.len() == out.len())
                && res.is_some() == self.residual,
            "{}: {} input values, {} output values, residual {:?} for {k}x{n} weights",
            self.name(),
            x.len(),
            out.len(),
            res.map(|r| r.len()),
        );
        let m = x.len() / k;
        // Whole 8-row blocks split across threads (by work: tract's threshold
        // counts elements of ~1 ns, a row block costs 8 * k * n MACs at ~48
        // per ns); the ragged rows after them run here.
        let full = m / MR * MR;
        if full > 0 {
            let total = full * k * n / 48;
            tract_linalg::multithread::par_chunks_mut(
                &mut out[..full * n],
                MR * n,
                total,
                |first, chunk| {
                    let rows = first * MR..first * MR + chunk.len() / n;
                    let res = res.map(|r| &r[rows.start * n..rows.end * n]);
                    self.rows(&x[rows.start * k..rows.end * k], res, chunk);
                    Ok(())
                },
            )?;
        }
        if full < m {
            self.rows(
                &x[full * k..],
                res.map(|r| &r[full * n..]),
                &mut out[full * n..],
            );
        }
        Ok(())
    }

    /// `x` `[rows, k]` -> `out` `[rows, n]`.
    fn rows(&self, x: &[f32], res: Option<&[f32]>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; `rows_avx512` stays inside the
            // slices' bounds (see its comments).
            return unsafe { self.rows_avx512(x, res, out) };
        }
        self.rows_portable(x, res, out)
    }

    /// The same tiling in plain Rust: 8 rows x 16 columns per tile.
    fn rows_portable(&self, x: &[f32], res: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let m = x.len() / k;
        for c0 in (0..n).step_by(PANEL) {
            let width = PANEL.min(n - c0);
            let panel = &self.packed[c0 * k..c0 * k + width * k];
            for r0 in (0..m).step_by(MR) {
                let rows = MR.min(m - r0);
                for v0 in (0..width).step_by(LANES) {
                    let mut acc = [[0f32; LANES]; MR];
                    for kk in 0..k {
                        let w: &[f32; LANES] = panel[kk * width + v0..kk * width + v0 + LANES]
                            .try_into()
                            .expect("16 columns");
                        for (r, a) in acc.iter_mut().enumerate().take(rows) {
                            let xv = x[(r0 + r) * k + kk];
                            for (s, &wc) in a.iter_mut().zip(w) {
                                *s += xv * wc;
                            }
                        }
                    }
                    for (r, a) in acc.iter().enumerate().take(rows) {
                        let at = (r0 + r) * n + c0 + v0;
                        for (c, &s) in a.iter().enumerate() {
                            let mut y = s + self.bias[c0 + v0 + c];
                            if let Some(res) = res {
                                y += res[at + c];
                            }
                            out[at + c] = y;
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(&self, x: &[f32], res: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let m = x.len() / k;
        for c0 in (0..n).step_by(PANEL) {
            let width = PANEL.min(n - c0);
            for r0 in (0..m).step_by(MR) {
                let rows = MR.min(m - r0);
                // SAFETY: `tile` reads rows r0..r0 + rows of x (k floats
                // each), the panel at c0 (width * k floats), and writes
                // columns c0..c0 + width of those rows of out (and reads
                // them of res): all in bounds as m = x.len() / k and
                // out.len() = m * n were checked by `run`.
                unsafe {
                    macro_rules! go {
                        ($nv:literal, $($r:literal)+) => {
                            match rows {
                                $($r => self.tile::<$nv, $r>(x, res, out, r0, c0),)+
                                _ => unreachable!("1..=8 rows"),
                            }
                        };
                    }
                    match width / LANES {
                        3 => go!(3, 1 2 3 4 5 6 7 8),
                        2 => go!(2, 1 2 3 4 5 6 7 8),
                        _ => go!(1, 1 2 3 4 5 6 7 8),
                    }
                }
            }
        }
    }

    /// One R x (NV * 16) tile: rows r0.., columns c0...
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const NV: usize, const R: usize>(
        &self,
        x: &[f32],
        res: Option<&[f32]>,
        out: &mut [f32],
        r0: usize,
        c0: usize,
    ) {
        use std::arch::x86_64::*;
        let (k, n) = (self.k, self.n);
        let width = NV * LANES;
        // SAFETY (all pointer arithmetic below): see `rows_avx512`.
        let panel = unsafe { self.packed.as_ptr().add(c0 * k) };
        let xr = unsafe { x.as_ptr().add(r0 * k) };
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        for kk in 0..k {
            let mut wv = [_mm512_setzero_ps(); NV];
            for (v, slot) in wv.iter_mut().enumerate() {
                *slot = unsafe { _mm512_loadu_ps(panel.add(kk * width + v * LANES)) };
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_ps(unsafe { *xr.add(r * k + kk) });
                for (s, w) in a.iter_mut().zip(&wv) {
                    *s = _mm512_fmadd_ps(xb, *w, *s);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let at = (r0 + r) * n + c0;
            for (v, s) in a.iter().enumerate() {
                unsafe {
                    let y =
                        _mm512_add_ps(*s, _mm512_loadu_ps(self.bias.as_ptr().add(c0 + v * LANES)));
                    let y = match res {
                        Some(res) => {
                            _mm512_add_ps(y, _mm512_loadu_ps(res.as_ptr().add(at + v * LANES)))
                        }
                        None => y,
                    };
                    _mm512_storeu_ps(out.as_mut_ptr().add(at + v * LANES), y);
                }
            }
        }
    }

    /// The output shape for an input of `shape`.
    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        let r = shape.len();
        ensure!(
            r > self.contracted,
            "{}: input of rank {r} for {} contracted axes",
            self.name(),
            self.contracted
        );
        let k: D = shape[r - self.contracted..].iter().cloned().product();
        ensure!(
            k == self.k.into(),
            "{}: input {shape:?}, {} values per row expected",
            self.name(),
            self.k
        );
        let mut out: TVec<D> = shape[..r - self.contracted].into();
        out.push(self.n.into());
        Ok(out)
    }
}

native_op!(Linear, "EdgebindLinear", |op| format!(
    "{} -> {} (last {} axes), residual {}",
    op.k, op.n, op.contracted, op.residual
));

impl EvalOp for Linear {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let first = inputs.first().map(|t| t.shape()).unwrap_or_default();
        let oshape = self.output_shape(first)?;
        let (x, res) = inputs_with_residual(&self.name(), &inputs, self.residual, &oshape)?;
        let res = res.as_ref().map(|v| v.as_slice::<f32>()).transpose()?;
        f32_output(&oshape, |out| self.run(x.as_slice::<f32>()?, res, out))
    }
}

impl TypedOp for Linear {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs[0].datum_type == f32::datum_type(),
            "{}: f32 only, got {:?}",
            self.name(),
            inputs[0].datum_type
        );
        let shape = self.output_shape(&inputs[0].shape.to_tvec())?;
        output_with_residual(&self.name(), self.residual, inputs, shape)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            out[0].shape.volume() * self.k
        )))
    }

    as_op!();
}

/// `(k, n, contracted, weights [k, n])` when `node` is an f32 `EinSum`
/// `...c,cn->...n` with constant weights and `n` a multiple of 16.
fn as_linear(model: &TypedModel, node: &TypedNode) -> Option<(usize, usize, usize, Vec<f32>)> {
    let [a, w, o] = einsum_labels(node)?;
    let c = w.len().checked_sub(1)?;
    let lead = a.len().checked_sub(c)?;
    let shaped = c > 0
        && lead > 0
        && a[lead..] == w[..c]
        && o.len() == lead + 1
        && o[..lead] == a[..lead]
        && o[lead] == w[c]
        && !a.contains(&w[c]);
    if !shaped {
        return None;
    }
    let x = model.outlet_fact(node.inputs[0]).ok()?;
    let wf = model.outlet_fact(node.inputs[1]).ok()?;
    let wshape = wf.shape.as_concrete()?;
    let k: usize = wshape[..c].iter().product();
    let n = wshape[c];
    let k_x = x.shape[lead..].iter().cloned().product::<TDim>();
    if x.datum_type != f32::datum_type() || k_x != k.to_dim() || !n.is_multiple_of(LANES) {
        return None;
    }
    let weights = const_values(model, node.inputs[1])?;
    (weights.len() == k * n).then_some((k, n, c, weights))
}

/// Replaces every dense layer of a decluttered `model` that [`Linear`]
/// handles (with the bias and residual adds after it); returns how many it
/// replaced.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    replace_all(model, |model, id| {
        let (k, n, c, w) = as_linear(model, model.node(id))?;
        let shape = &model.outlet_fact(OutletId::new(id, 0)).ok()?.shape;
        // The bias: a constant of n values broadcast along the last axis.
        let bias = single_bin(model, id, "Add").and_then(|add| {
            let other = *add.inputs.iter().find(|o| o.node != id)?;
            let f = model.outlet_fact(other).ok()?;
            let last_only = f.shape.iter().rev().skip(1).all(|d| *d == 1.to_dim());
            let same = model.outlet_fact(add.id.into()).ok()?.shape == *shape;
            let values = const_values(model, other)?;
            (same && last_only && values.len() == n).then_some((add.id, values))
        });
        let mut last = bias.as_ref().map_or(id, |(add, _)| *add);
        let residual = residual_after(model, last);
        let mut inputs = vec![model.node(id).inputs[0]];
        if let Some((add, other)) = residual {
            last = add;
            inputs.push(other);
        }
        let bias = bias.map_or_else(|| vec![0.0; n], |(_, b)| b);
        Some((
            last,
            inputs,
            Linear::new(k, n, c, &w, bias, residual.is_some()),
        ))
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
        w: &[f32],
        b: &[f32],
        x: &[f32],
        res: Option<&[f32]>,
        k: usize,
        n: usize,
    ) -> Vec<f32> {
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut v = b[j] as f64;
                for kk in 0..k {
                    v += x[i * k + kk] as f64 * w[kk * n + j] as f64;
                }
                out[i * n + j] = (v + res.map_or(0.0, |r| r[i * n + j] as f64)) as f32;
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_ragged_sizes_both_paths() {
        for (k, n) in [(1, 16), (3, 32), (37, 48), (64, 80), (384, 112)] {
            for m in [1, 2, 7, 8, 9, 10, 16, 23, 80] {
                for residual in [false, true] {
                    let w = noise(k * n, 1);
                    let b = noise(n, 2);
                    let x = noise(m * k, (k * 1000 + m) as u64);
                    let res = residual.then(|| noise(m * n, 7));
                    let op = Linear::new(k, n, 1, &w, b.clone(), residual).unwrap();
                    let want = reference(&w, &b, &x, res.as_deref(), k, n);
                    let mut got = vec![f32::NAN; want.len()];
                    op.run(&x, res.as_deref(), &mut got).unwrap();
                    let mut portable = vec![f32::NAN; want.len()];
                    op.rows_portable(&x, res.as_deref(), &mut portable);
                    let case = format!("k {k} n {n} m {m} residual {residual}");
                    for (name, got) in [("dispatched", &got), ("portable", &portable)] {
                        let max = max_diff(got, &want);
                        // Sums of k products of values in [-1, 1).
                        let tol = 2e-6 * (k as f32).sqrt().max(1.0) * 4.0;
                        assert!(max <= tol, "{case} {name}: max diff {max:e} > {tol:e}");
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_wrong_sizes() {
        assert!(Linear::new(4, 24, 1, &[0.0; 96], vec![0.0; 24], false).is_err());
        assert!(Linear::new(4, 16, 1, &[0.0; 63], vec![0.0; 16], false).is_err());
        let op = Linear::new(4, 16, 1, &[0.0; 64], vec![0.0; 16], false).unwrap();
        let mut out = vec![0.0; 16];
        assert!(op.run(&[0.0; 5], None, &mut out).is_err());
        assert!(op.run(&[0.0; 4], Some(&[0.0; 16]), &mut out).is_err());
    }

    /// `x [b, s, 12, 4]` (symbolic `s`) -> einsum with `[12, 4, 32]`, plus
    /// a bias, plus `r [b, s, 32]`; then a second dense layer `[32, 16]`
    /// with a bias whose sum is read twice (a model output and a `Mul`), so
    /// no residual add is taken there.
    fn graph() -> TypedModel {
        let mut m = TypedModel::default();
        let s = m.symbols.sym("s");
        let x = m
            .add_source("x", f32::fact(dims![2, s.clone(), 12, 4]))
            .unwrap();
        let r = m
            .add_source("r", f32::fact(dims![2, s.clone(), 32]))
            .unwrap();
        let w1 = m
            .add_const(
                "w1",
                Tensor::from_shape(&[12, 4, 32], &noise(12 * 4 * 32, 3)).unwrap(),
            )
            .unwrap();
        let e1 = m
            .wire_node(
                "e1",
                EinSum::new("bshd,hdn->bsn".parse().unwrap(), f32::datum_type()),
                &[x, w1],
            )
            .unwrap()[0];
        let b1 = m
            .add_const(
                "b1",
                Tensor::from_shape(&[1, 1, 32], &noise(32, 4)).unwrap(),
            )
            .unwrap();
        let a1 = m.wire_node("a1", math::add(), &[b1, e1]).unwrap()[0];
        let y1 = m.wire_node("y1", math::add(), &[a1, r]).unwrap()[0];
        let w2 = m
            .add_const(
                "w2",
                Tensor::from_shape(&[32, 16], &noise(32 * 16, 5)).unwrap(),
            )
            .unwrap();
        let e2 = m
            .wire_node(
                "e2",
                EinSum::new("bsk,kn->bsn".parse().unwrap(), f32::datum_type()),
                &[y1, w2],
            )
            .unwrap()[0];
        let b2 = m
            .add_const(
                "b2",
                Tensor::from_shape(&[1, 1, 16], &noise(16, 6)).unwrap(),
            )
            .unwrap();
        let a2 = m.wire_node("a2", math::add(), &[e2, b2]).unwrap()[0];
        let twice = m.wire_node("twice", math::mul(), &[a2, a2]).unwrap()[0];
        m.select_output_outlets(&[twice, a2]).unwrap();
        m
    }

    #[test]
    fn fuse_matches_tracts_plan_with_symbolic_rows() {
        let stock = graph();
        let mut native = graph();
        assert_eq!(fuse(&mut native).unwrap(), 2);
        let names: Vec<_> = native
            .nodes()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        assert_eq!(names.iter().filter(|n| *n == "EdgebindLinear").count(), 2);
        // The first took its bias and residual adds; the second its bias
        // (read twice after it, which is fine: it is the chain's end).
        assert!(!names.iter().any(|n| n == "EinSum"), "{names:?}");
        assert_eq!(names.iter().filter(|n| *n == "Add").count(), 0, "{names:?}");
        for s in [1, 5, 9] {
            let x = Tensor::from_shape(&[2, s, 12, 4], &noise(2 * s * 48, s as u64)).unwrap();
            let r = Tensor::from_shape(&[2, s, 32], &noise(2 * s * 32, 11)).unwrap();
            let want = run(stock.clone(), &[&x, &r]);
            let got = run(native.clone(), &[&x, &r]);
            for (g, w) in got.iter().zip(&want) {
                let max = max_diff(g, w);
                assert!(max <= 1e-5, "s {s}: max diff {max:e}");
            }
        }
    }

    #[test]
    fn fuse_leaves_what_it_does_not_cover() {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([3, 8])).unwrap();
        // n = 24 is not a multiple of 16; the weights are not constant in
        // the second product.
        let w = m
            .add_const(
                "w",
                Tensor::from_shape(&[8, 24], &noise(8 * 24, 1)).unwrap(),
            )
            .unwrap();
        let e = m
            .wire_node(
                "e",
                EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type()),
                &[x, w],
            )
            .unwrap()[0];
        let y = m.add_source("y", f32::fact([8, 16])).unwrap();
        let e2 = m
            .wire_node(
                "e2",
                EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type()),
                &[x, y],
            )
            .unwrap()[0];
        m.select_output_outlets(&[e, e2]).unwrap();
        assert_eq!(fuse(&mut m).unwrap(), 0);
    }
}
