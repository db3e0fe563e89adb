//! What edgebind's own kernels inside tract ([`super::conv1x1`],
//! [`super::dwconv`]) share: reading constants and activation chains out of a
//! tract graph, replacing a chain of nodes by one, comparing float
//! parameters, writing an op's f32 output, and the tests' helpers.

use std::sync::Arc;

use tract_onnx::prelude::tract_data::prelude::PlainView;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::ensure;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// `impl Op` for one of edgebind's ops: its name, one line of info (`$info`,
/// with `$s` bound to the op), and rounding-level validation (results differ
/// from tract's by float rounding only).
macro_rules! native_op {
    ($ty:ty, $name:literal, |$s:ident| $info:expr) => {
        impl Op for $ty {
            fn name(&self) -> StaticName {
                $name.into()
            }

            fn info(&self) -> TractResult<Vec<String>> {
                let $s = self;
                Ok(vec![$info])
            }

            fn validation(&self) -> Validation {
                Validation::Rounding
            }

            op_as_typed_op!();
        }
    };
}
pub(crate) use native_op;

/// The inputs of op `name` that takes `x` and, when `residual`, a tensor
/// of the output's `shape` added last: both checked and viewed.
pub(crate) fn inputs_with_residual<'a>(
    name: &str,
    inputs: &'a [TValue],
    residual: bool,
    shape: &[usize],
) -> TractResult<(PlainView<'a>, Option<PlainView<'a>>)> {
    ensure!(
        inputs.len() == 1 + residual as usize,
        "{name}: {} inputs",
        inputs.len()
    );
    let res = inputs
        .get(1)
        .map(|t| {
            ensure!(
                t.shape() == shape,
                "{name}: residual {:?}, output {shape:?}",
                t.shape()
            );
            t.try_as_plain_ram()
        })
        .transpose()?;
    Ok((inputs[0].try_as_plain_ram()?, res))
}

/// The axis labels `[first input, second input, output]` of an f32,
/// not quantised, two-input `EinSum`, each with no repeated label.
pub(crate) fn einsum_labels(node: &TypedNode) -> Option<[Vec<char>; 3]> {
    let op = node.op_as::<EinSum>()?;
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return None;
    }
    let (ins, outs) = op.axes.to_strs();
    let labels = [&ins[0], &ins[1], &outs[0]].map(|s| s.chars().collect::<Vec<_>>());
    let distinct = |v: &[char]| v.iter().enumerate().all(|(i, x)| !v[..i].contains(x));
    labels.iter().all(|v| distinct(v)).then_some(labels)
}

/// The f32 output fact of `shape` for op `name`, after checking its
/// residual input (the second), if it has one, has that shape too.
pub(crate) fn output_with_residual(
    name: &str,
    residual: bool,
    inputs: &[&TypedFact],
    shape: TVec<TDim>,
) -> TractResult<TVec<TypedFact>> {
    if residual {
        ensure!(
            inputs.len() == 2 && inputs[1].shape.iter().eq(shape.iter()),
            "{name}: residual {:?}, output {shape:?}",
            inputs.get(1).map(|f| &f.shape)
        );
    }
    Ok(tvec!(f32::fact(shape)))
}

/// Equal float parameters, bit for bit (ops must be `Eq` for tract).
pub(crate) fn same_f32s(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Equal optional clamps, bit for bit.
pub(crate) fn same_clamp(a: Option<(f32, f32)>, b: Option<(f32, f32)>) -> bool {
    a.map(|(l, h)| (l.to_bits(), h.to_bits())) == b.map(|(l, h)| (l.to_bits(), h.to_bits()))
}

/// The f32 value of a constant outlet, looking through `Cast` nodes (before
/// declutter, ONNX initializers reach a `Conv` through a `Cast`).
pub(crate) fn const_f32(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let fact = model.outlet_fact(outlet).ok()?;
    if let Some(k) = &fact.konst {
        return if k.datum_type() == f32::datum_type() {
            Some(k.clone())
        } else {
            k.cast_to::<f32>()
                .ok()
                .map(|t| t.into_owned().into_arc_tensor())
        };
    }
    let node = model.node(outlet.node);
    if node.op_as::<Cast>().is_some() && node.inputs.len() == 1 {
        return const_f32(model, node.inputs[0]).filter(|_| fact.datum_type == f32::datum_type());
    }
    None
}

/// The values of a constant f32 outlet.
pub(crate) fn const_values(model: &TypedModel, outlet: OutletId) -> Option<Vec<f32>> {
    let k = const_f32(model, outlet)?;
    Some(k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec())
}

/// `id`'s only consumer, when it is a binary op named `name` and `id`'s
/// output is not a model output.
pub(crate) fn single_bin<'m>(
    model: &'m TypedModel,
    id: usize,
    name: &str,
) -> Option<&'m TypedNode> {
    if model.outputs.contains(&OutletId::new(id, 0)) {
        return None;
    }
    let succ = model.single_succ(id).ok()??;
    let op = succ.op_as::<TypedBinOp>()?;
    (op.0.name() == name && succ.inputs.len() == 2).then_some(succ)
}

/// `Some((node, bound))` when `id`'s only consumer is `Max` / `Min` with a
/// scalar constant as its other operand and `id`'s shape as its own.
fn clamp_step<'m>(model: &'m TypedModel, id: usize, name: &str) -> Option<(&'m TypedNode, f32)> {
    let succ = single_bin(model, id, name)?;
    let other = succ.inputs.iter().find(|o| o.node != id)?;
    if model.outlet_fact(succ.id.into()).ok()?.shape != model.outlet_fact(id.into()).ok()?.shape {
        return None;
    }
    match const_values(model, *other)?.as_slice() {
        [v] => Some((succ, *v)),
        _ => None,
    }
}

/// A clamp right after node `id` (ONNX `Clip`, e.g. ReLU6: `Max(x, lo)`
/// then `Min(., hi)`, nothing else reading the values in between), as `(the
/// Min node, lo, hi)`.
pub(crate) fn clamp_after(model: &TypedModel, id: usize) -> Option<(usize, f32, f32)> {
    let (max, lo) = clamp_step(model, id, "Max")?;
    let (min, hi) = clamp_step(model, max.id, "Min")?;
    (lo <= hi).then_some((min.id, lo, hi))
}

/// Replaces the chain from node `first` to node `last` (their output) by
/// `op` on `inputs`, then drops the dead nodes so the next scan does not see
/// them.
fn replace(
    model: &mut TypedModel,
    first: usize,
    last: usize,
    inputs: &[OutletId],
    op: impl Into<Box<dyn TypedOp>>,
) -> TractResult<()> {
    let mut patch = TypedModelPatch::default();
    let taps = inputs
        .iter()
        .map(|&o| patch.tap_model(model, o))
        .collect::<TractResult<TVec<_>>>()?;
    let y = patch.wire_node(&model.node(first).name, op.into(), &taps)?[0];
    patch.shunt_outside(model, OutletId::new(last, 0), y)?;
    patch.apply(model)?;
    model.compact()
}

/// Applies a rewrite until nothing matches: `find` looks at node `id` and
/// returns the chain it replaces (from `id` to the returned last node), the
/// new op's inputs and the op; returns how many chains it replaced.
pub(crate) fn replace_all<O: Into<Box<dyn TypedOp>>>(
    model: &mut TypedModel,
    find: impl Fn(&TypedModel, usize) -> Option<(usize, Vec<OutletId>, TractResult<O>)>,
) -> TractResult<usize> {
    let mut done = 0;
    loop {
        let found = model
            .eval_order()?
            .into_iter()
            .find_map(|id| find(model, id).map(|(last, inputs, op)| (id, last, inputs, op)));
        let Some((first, last, inputs, op)) = found else {
            return Ok(done);
        };
        replace(model, first, last, &inputs, op?)?;
        done += 1;
    }
}

/// `Some((add node, other input))` when `last`'s only consumer adds a
/// non-constant tensor of `last`'s shape (a residual connection) and the
/// sum keeps that shape.
pub(crate) fn residual_after(model: &TypedModel, last: usize) -> Option<(usize, OutletId)> {
    let shape = &model.outlet_fact(OutletId::new(last, 0)).ok()?.shape;
    let add = single_bin(model, last, "Add")?;
    let other = *add.inputs.iter().find(|o| o.node != last)?;
    let fact = model.outlet_fact(other).ok()?;
    (fact.shape == *shape
        && fact.konst.is_none()
        && model.outlet_fact(add.id.into()).ok()?.shape == *shape)
        .then_some((add.id, other))
}

/// A `Conv` node in the form edgebind's convolution kernels take: f32 (not
/// quantised), channel-first input of a concrete shape, OIHW weights and a
/// bias, both constant, a 2-D kernel, no dilation, explicit or no padding.
pub(crate) struct PlainConv {
    pub ci: usize,
    pub co: usize,
    pub group: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    /// top, left, bottom, right.
    pub pad: [usize; 4],
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// `node` as a [`PlainConv`], if it is one.
pub(crate) fn plain_conv(model: &TypedModel, node: &TypedNode) -> Option<PlainConv> {
    let conv = node.op_as::<Conv>()?;
    let spec = &conv.pool_spec;
    let x = model.outlet_fact(node.inputs[0]).ok()?;
    let &[kh, kw] = spec.kernel_shape.as_slice() else {
        return None;
    };
    let stride = match spec.strides.as_deref() {
        None => (1, 1),
        Some(&[a, b]) => (a, b),
        _ => return None,
    };
    let pad = match &spec.padding {
        PaddingSpec::Valid => [0; 4],
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => [b[0], b[1], a[0], a[1]],
        _ => return None,
    };
    let ok = conv.q_params.is_none()
        && node.inputs.len() == 3
        && matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec
            .dilations
            .as_ref()
            .is_none_or(|d| d.iter().all(|&d| d == 1))
        && x.datum_type == f32::datum_type()
        && x.shape.as_concrete().is_some();
    if !ok {
        return None;
    }
    let (ci, co, group) = (spec.input_channels, spec.output_channels, conv.group);
    let weights = const_values(model, node.inputs[1])?;
    let bias = const_values(model, node.inputs[2])?;
    let sizes = group > 0
        && ci.is_multiple_of(group)
        && weights.len() == co * ci / group * kh * kw
        && bias.len() == co;
    sizes.then_some(PlainConv {
        ci,
        co,
        group,
        kernel: (kh, kw),
        stride,
        pad,
        weights,
        bias,
    })
}

/// Checks an op's input fact: f32, `[C, H, W]` or `[N, C, H, W]` with
/// `channels` channels; returns its shape.
pub(crate) fn channel_first_input(
    name: &str,
    fact: &TypedFact,
    channels: usize,
) -> TractResult<TVec<TDim>> {
    ensure!(
        fact.datum_type == f32::datum_type(),
        "{name}: f32 only, got {:?}",
        fact.datum_type
    );
    let r = fact.rank();
    ensure!(r == 3 || r == 4, "{name}: input of rank {r}");
    ensure!(
        fact.shape[r - 3] == channels.to_dim(),
        "{name}: {channels} channels expected, input {:?}",
        fact.shape
    );
    Ok(fact.shape.iter().cloned().collect())
}

/// An op's single f32 output of `shape`, filled by `fill` (which must write
/// every element).
pub(crate) fn f32_output(
    shape: &[usize],
    fill: impl FnOnce(&mut [f32]) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    // SAFETY: `fill` writes every element (the callers' kernels do).
    let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
    {
        let mut view = out.try_as_plain_ram_mut()?;
        fill(view.as_slice_mut::<f32>()?)?;
    }
    Ok(tvec!(out.into_tvalue()))
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// Deterministic values in [-1, 1).
    pub fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Largest absolute difference; a NaN on either side counts as infinite.
    pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(
                0.0,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
    }

    /// Wires a square-kernel NCHW `Conv` (constant noise weights and bias)
    /// on `x`.
    #[allow(clippy::too_many_arguments)]
    pub fn wire_conv(
        m: &mut TypedModel,
        x: OutletId,
        (ci, co, group): (usize, usize, usize),
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> OutletId {
        let k = Tensor::from_shape(
            &[co, ci / group, kernel, kernel],
            &noise(co * ci / group * kernel * kernel, 3),
        )
        .unwrap();
        let k = m.add_const(m.unique_name("k"), k).unwrap();
        let b = m
            .add_const(
                m.unique_name("b"),
                Tensor::from_shape(&[co], &noise(co, 4)).unwrap(),
            )
            .unwrap();
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec!(kernel, kernel),
            PaddingSpec::Explicit(tvec!(pad, pad), tvec!(pad, pad)),
            Some(tvec!(1, 1)),
            Some(tvec!(stride, stride)),
            ci,
            co,
        );
        m.wire_node(
            m.unique_name("conv"),
            Conv::new(spec, KernelFormat::OIHW, group, None),
            &[x, k, b],
        )
        .unwrap()[0]
    }

    /// Optimises and runs `m`, every output as a flat vector.
    pub fn run(m: TypedModel, inputs: &[&Tensor]) -> Vec<Vec<f32>> {
        let plan = m.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(inputs.iter().map(|t| (*t).clone().into()).collect())
            .unwrap()
            .iter()
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }
}
