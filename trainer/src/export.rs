//! ONNX export of a student encoder: opset 17, only plain operators tract
//! runs (Conv, MatMul, Add, Sub, Mul, Div, Sqrt, Erf, ReduceMean, ReduceSumSquare,
//! Softmax, Concat, Reshape, Transpose, Shape, Slice, Expand, Gather), with
//! the encoder's contract as JSON in `metadata_props["edgebind.contract"]`,
//! so `edgebind-models` loads the file like any other encoder.
//!
//! Every operation mirrors [`crate::model`] one for one (same patchify
//! reshapes, LayerNorm written out, GELU through Erf, L2 norm as
//! `y / sqrt(sum(y^2))`), which is what keeps the parity within 1e-4.
//!
//! Not here: dynamic shapes other than the batch; quantisation.

use std::path::Path;

use candle_core::Var;
use edgebind_models::contract::{CONTRACT_KEY, Contract};
use prost::Message as _;
use tract_onnx::pb;

use crate::model::{Attention, ConvGelu, Encoder, LayerNorm, Linear};

/// Graph under construction.
struct Graph {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    next: usize,
}

pub(crate) fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => dimension::Value::DimValue(*n as i64),
                                None => dimension::Value::DimParam("batch".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(pb::NodeProto {
            name: out.clone(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    fn f32s(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.inits.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data,
            ..Default::default()
        });
        name.into()
    }

    fn scalar(&mut self, hint: &str, v: f32) -> String {
        let name = self.fresh(hint);
        self.f32s(&name, &[], vec![v])
    }

    fn i64s(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    fn var(&mut self, name: &str, v: &Var) -> anyhow::Result<String> {
        let t = v.as_tensor();
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        Ok(self.f32s(name, t.dims(), data))
    }

    fn linear(&mut self, x: &str, l: &Linear, name: &str) -> anyhow::Result<String> {
        let w = self.var(&format!("{name}.w"), &l.w)?;
        let y = self.node("MatMul", &[x, &w], vec![]);
        Ok(match &l.b {
            Some(b) => {
                let b = self.var(&format!("{name}.b"), b)?;
                self.node("Add", &[&y, &b], vec![])
            }
            None => y,
        })
    }

    fn layer_norm(&mut self, x: &str, ln: &LayerNorm, name: &str) -> anyhow::Result<String> {
        let mean = self.node(
            "ReduceMean",
            &[x],
            vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
        );
        let xc = self.node("Sub", &[x, &mean], vec![]);
        let sq = self.node("Mul", &[&xc, &xc], vec![]);
        let var = self.node(
            "ReduceMean",
            &[&sq],
            vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
        );
        let eps = self.scalar("eps", ln.eps as f32);
        let ve = self.node("Add", &[&var, &eps], vec![]);
        let sd = self.node("Sqrt", &[&ve], vec![]);
        let y = self.node("Div", &[&xc, &sd], vec![]);
        let g = self.var(&format!("{name}.g"), &ln.g)?;
        let b = self.var(&format!("{name}.b"), &ln.b)?;
        let y = self.node("Mul", &[&y, &g], vec![]);
        Ok(self.node("Add", &[&y, &b], vec![]))
    }

    /// `[1, 1, D]` parameter broadcast to `[B, 1, D]` (`b1d` is that shape).
    fn expand_token(&mut self, v: &Var, name: &str, b1d: &str) -> anyhow::Result<String> {
        let t = self.var(name, v)?;
        Ok(self.node("Expand", &[&t, b1d], vec![]))
    }

    fn attention(
        &mut self,
        x: &str,
        a: &Attention,
        name: &str,
        dim: usize,
        b1d: &str,
    ) -> anyhow::Result<String> {
        let hd = dim / a.heads;
        let q = self.linear(x, &a.q, &format!("{name}.q"))?;
        let mut k = self.linear(x, &a.k, &format!("{name}.k"))?;
        let mut v = self.linear(x, &a.v, &format!("{name}.v"))?;
        if let Some((bk, bv)) = &a.bias_kv {
            let bk = self.expand_token(bk, &format!("{name}.bias_k"), b1d)?;
            let bv = self.expand_token(bv, &format!("{name}.bias_v"), b1d)?;
            k = self.node("Concat", &[&k, &bk], vec![attr_int("axis", 1)]);
            v = self.node("Concat", &[&v, &bv], vec![attr_int("axis", 1)]);
        }
        let split = self.i64s("heads_shape", &[0, -1, a.heads as i64, hd as i64]);
        let heads = |g: &mut Graph, t: &str, perm: &[i64]| {
            let r = g.node("Reshape", &[t, &split], vec![]);
            g.node("Transpose", &[&r], vec![attr_ints("perm", perm)])
        };
        let q = heads(self, &q, &[0, 2, 1, 3]);
        let kt = heads(self, &k, &[0, 2, 3, 1]);
        let v = heads(self, &v, &[0, 2, 1, 3]);
        let s = self.node("MatMul", &[&q, &kt], vec![]);
        let scale = self.scalar("scale", (1.0 / (hd as f64).sqrt()) as f32);
        let s = self.node("Mul", &[&s, &scale], vec![]);
        let p = self.node("Softmax", &[&s], vec![attr_int("axis", -1)]);
        let y = self.node("MatMul", &[&p, &v], vec![]);
        let y = self.node("Transpose", &[&y], vec![attr_ints("perm", &[0, 2, 1, 3])]);
        let merge = self.i64s("merge_shape", &[0, -1, dim as i64]);
        let y = self.node("Reshape", &[&y, &merge], vec![]);
        self.linear(&y, &a.o, &format!("{name}.o"))
    }

    fn gelu(&mut self, x: &str) -> String {
        let inv_sqrt2 = self.scalar("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
        let half = self.scalar("half", 0.5);
        let one = self.scalar("one", 1.0);
        let s = self.node("Mul", &[x, &inv_sqrt2], vec![]);
        let e = self.node("Erf", &[&s], vec![]);
        let e1 = self.node("Add", &[&e, &one], vec![]);
        let xe = self.node("Mul", &[x, &e1], vec![]);
        self.node("Mul", &[&xe, &half], vec![])
    }
}

/// The ONNX model of `enc` (inference mode) carrying `contract`.
pub fn to_onnx(enc: &Encoder, contract: &Contract) -> anyhow::Result<pb::ModelProto> {
    contract.validate()?;
    let cfg = &enc.cfg;
    let mut want: Vec<usize> = vec![0];
    want.extend(&cfg.input);
    let declared: Vec<usize> = contract
        .input
        .shape
        .iter()
        .map(|d| match d {
            edgebind_models::contract::Dim::Fixed(n) => *n,
            edgebind_models::contract::Dim::Symbol(_) => 0,
        })
        .collect();
    anyhow::ensure!(
        declared == want && contract.output.dim == cfg.out_dim && contract.modality == cfg.modality,
        "contract ({} {:?} -> {}) does not describe this encoder ({} {:?} -> {})",
        contract.modality.as_str(),
        &declared[1..],
        contract.output.dim,
        cfg.modality.as_str(),
        cfg.input,
        cfg.out_dim
    );
    let mut g = Graph {
        nodes: Vec::new(),
        inits: Vec::new(),
        next: 0,
    };
    let input = contract.input.name.clone();
    let d = cfg.dim;

    // [B, 1, D] as a shape tensor, for broadcasting tokens over the batch.
    let shape = g.node("Shape", &[&input], vec![]);
    let (s0, s1) = (g.i64s("zero", &[0]), g.i64s("one", &[1]));
    let batch = g.node("Slice", &[&shape, &s0, &s1], vec![]);
    let one_d = g.i64s("one_d", &[1, d as i64]);
    let b1d = g.node("Concat", &[&batch, &one_d], vec![attr_int("axis", 0)]);

    // Conv stem (if any): frames folded into channels, then Conv + GELU layers.
    let mut stem_in = input.clone();
    if !enc.convs.is_empty() {
        let n = cfg.input.len();
        let folded = g.i64s(
            "conv_in",
            &[
                -1,
                cfg.conv_in() as i64,
                cfg.input[n - 2] as i64,
                cfg.input[n - 1] as i64,
            ],
        );
        let mut x = g.node("Reshape", &[&input, &folded], vec![]);
        let cg = ConvGelu::GEOMETRY;
        let (k, st, pad) = (cg.k as i64, cg.stride as i64, cg.pad as i64);
        for (i, c) in enc.convs.iter().enumerate() {
            let w = g.var(&format!("conv.{i}.w"), &c.w)?;
            let b = g.var(&format!("conv.{i}.b"), &c.b)?;
            x = g.node(
                "Conv",
                &[&x, &w, &b],
                vec![
                    attr_ints("kernel_shape", &[k, k]),
                    attr_ints("strides", &[st, st]),
                    attr_ints("pads", &[pad, pad, pad, pad]),
                ],
            );
            x = g.gelu(&x);
        }
        stem_in = x;
    }

    // Stem: patchify (the model's reshape and permutation), linear, LayerNorm.
    let (split, perm) = enc.patchify_plan();
    let mut split_shape = vec![-1i64];
    split_shape.extend(split.iter().map(|&n| n as i64));
    let split_shape = g.i64s("patch_split", &split_shape);
    let x = g.node("Reshape", &[&stem_in, &split_shape], vec![]);
    let perm: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
    let x = g.node("Transpose", &[&x], vec![attr_ints("perm", &perm)]);
    let tok_shape = g.i64s(
        "tokens",
        &[-1, cfg.patches() as i64, cfg.patch_len() as i64],
    );
    let x = g.node("Reshape", &[&x, &tok_shape], vec![]);
    let x = g.linear(&x, &enc.stem, "stem")?;
    let x = g.layer_norm(&x, &enc.stem_ln, "stem_ln")?;
    let cls = g.expand_token(&enc.cls, "cls", &b1d)?;
    let x = g.node("Concat", &[&cls, &x], vec![attr_int("axis", 1)]);
    let pos = g.var("pos", &enc.pos)?;
    let mut h = g.node("Add", &[&x, &pos], vec![]);

    for (i, b) in enc.blocks.iter().enumerate() {
        let n = format!("blocks.{i}");
        let a = g.layer_norm(&h, &b.ln1, &format!("{n}.ln1"))?;
        let a = g.attention(&a, &b.attn, &format!("{n}.attn"), d, &b1d)?;
        h = g.node("Add", &[&h, &a], vec![]);
        let m = g.layer_norm(&h, &b.ln2, &format!("{n}.ln2"))?;
        let m = g.linear(&m, &b.mlp.fc1, &format!("{n}.mlp.fc1"))?;
        let m = g.gelu(&m);
        let m = g.linear(&m, &b.mlp.fc2, &format!("{n}.mlp.fc2"))?;
        h = g.node("Add", &[&h, &m], vec![]);
    }

    let h = g.layer_norm(&h, &enc.head_ln, "head_ln")?;
    let idx = {
        let name = g.fresh("token0");
        g.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: vec![0],
            ..Default::default()
        });
        name
    };
    let t0 = g.node("Gather", &[&h, &idx], vec![attr_int("axis", 1)]);
    let y = g.linear(&t0, &enc.head, "head")?;
    let ss = g.node(
        "ReduceSumSquare",
        &[&y],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    let n = g.node("Sqrt", &[&ss], vec![]);
    g.nodes.push(pb::NodeProto {
        name: contract.output.name.clone(),
        op_type: "Div".into(),
        input: vec![y, n],
        output: vec![contract.output.name.clone()],
        ..Default::default()
    });

    let mut in_dims = vec![None];
    in_dims.extend(cfg.input.iter().map(|&n| Some(n)));
    Ok(pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "edgebind-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(pb::GraphProto {
            name: format!("edgebind-{}", cfg.modality.as_str()),
            node: g.nodes,
            initializer: g.inits,
            input: vec![value_info(&input, &in_dims)],
            output: vec![value_info(
                &contract.output.name,
                &[None, Some(cfg.out_dim)],
            )],
            ..Default::default()
        }),
        metadata_props: vec![pb::StringStringEntryProto {
            key: CONTRACT_KEY.into(),
            value: contract.to_json(),
        }],
        ..Default::default()
    })
}

/// Writes [`to_onnx`] to `path`.
pub fn write_onnx(enc: &Encoder, contract: &Contract, path: &Path) -> anyhow::Result<()> {
    let model = to_onnx(enc, contract)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, model.encode_to_vec())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
