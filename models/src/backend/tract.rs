//! The default backend: tract, pure Rust, CPU.
//!
//! Loading reads the ONNX protobuf once: the contract comes from its metadata
//! (or sidecar) and is checked against the graph's declared inputs and outputs
//! before tract sees the model; vendor-domain operators are refused up front
//! (tract panics on some); any remaining panic inside tract is caught and
//! reported as an error naming the file. The input gets a symbolic batch
//! dimension, so one optimised plan serves every batch size.
//!
//! Before tract optimises the graph, edgebind puts its own kernels in place
//! of tract's for 1x1 convolutions ([`super::conv1x1`], with the bias, ReLU6
//! and residual add after them), depthwise 3x3 convolutions
//! ([`super::dwconv`], with the ReLU6) and convolutions of few input
//! channels such as a stem ([`super::im2col`], with the padding and the
//! ReLU6): on the bundled MobileNetV2 anchor they took a batch-1 run from
//! ~21 ms to ~8-9 ms, results within 1.4e-6 of tract's own plan.
//! [`TractEncoder::load_stock`] keeps tract's own kernels, for comparison.
//! (The transformer kernels [`super::linear`] and [`super::attention`] run
//! in the text tower, `crate::text`; encoders loaded here do not use them
//! yet.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

use super::{BackendOptions, Encoder, check_items, rows_to_embeddings};
use crate::contract::{Contract, Dim};
use crate::onnx::{ModelError, foreign_ops, load_checked};
use crate::preprocess::Tensor as Input;
use crate::space::Embedding;

type Plan = Arc<TypedRunnableModel>;

/// An ONNX encoder run by tract.
///
/// tract runs a plan with a symbolic batch dimension by re-planning some
/// operators at every run (a MobileNetV2 took 122 ms instead of ~20), so the
/// encoder keeps two plans with concrete batch sizes: `max_batch` for full
/// chunks and 1 for the rest (both built at load, so a bad model fails there).
///
/// A bigger batch is not always faster on tract: the MobileNetV2 anchor ran
/// 3-4x slower per image as one batch of 8 than as 8 single runs (tract moves
/// axes around every 1x1 convolution and loses its fused element-wise ops). So
/// with `max_batch` > 1 the encoder times both on a zero input at load (one
/// warm-up and two timed runs of each) and runs full chunks as single items
/// when that was faster; [`TractEncoder::batch_plan`] says which it chose.
pub struct TractEncoder {
    path: PathBuf,
    contract: Contract,
    space: Arc<str>,
    single: Plan,
    /// `None` when running full chunks item by item was faster.
    full: Option<Plan>,
    opts: BackendOptions,
    executor: Option<Executor>,
    native_nodes: usize,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f` (tract work on the model at `path`), turning its error or panic
/// into a backend error naming the file; `doing` completes "tract panicked
/// while ...".
pub(crate) fn guarded<T>(
    path: &Path,
    doing: &str,
    f: impl FnOnce() -> TractResult<T>,
) -> Result<T, ModelError> {
    let detail = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => format!("{e:#}"),
        Err(p) => format!("tract panicked while {doing}: {}", panic_text(p)),
    };
    Err(ModelError::Backend {
        path: path.to_path_buf(),
        backend: "tract",
        detail,
    })
}

impl TractEncoder {
    /// Loads `path`, checks its contract and prepares an optimised plan.
    pub fn load(path: &Path, opts: &BackendOptions) -> Result<Self, ModelError> {
        Self::load_with(path, opts, true, BatchChoice::Timed)
    }

    /// Like [`TractEncoder::load`], but full chunks always run at
    /// `opts.max_batch`, without timing the batch plan against single runs
    /// at load. The timed choice depends on the machine's load at that
    /// moment, and the two plans sum in different orders (results differ by
    /// ~1e-7), so two loads of one model could embed the same inputs
    /// differently. Offline work whose results must repeat bit for bit (the
    /// trainer's anchor tables, `edgebind-train eval`) loads this way.
    pub fn load_reproducible(path: &Path, opts: &BackendOptions) -> Result<Self, ModelError> {
        Self::load_with(path, opts, true, BatchChoice::Always)
    }

    /// Like [`TractEncoder::load`], with tract's own kernels everywhere (no
    /// edgebind rewrite): what the benchmark and the tests compare with.
    pub fn load_stock(path: &Path, opts: &BackendOptions) -> Result<Self, ModelError> {
        Self::load_with(path, opts, false, BatchChoice::Timed)
    }

    fn load_with(
        path: &Path,
        opts: &BackendOptions,
        native: bool,
        batch: BatchChoice,
    ) -> Result<Self, ModelError> {
        let (proto, contract) = load_checked(path)?;
        let foreign = foreign_ops(&proto, &[]);
        if !foreign.is_empty() {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                backend: "tract",
                ops: foreign.join(", "),
            });
        }
        let max_batch = opts.max_batch.max(1);
        let plan_for = |batch: usize| {
            guarded(path, "preparing the model", || {
                build(&proto, &contract, batch, native)
            })
        };
        let (single, native_nodes) = plan_for(1)?;
        let threads = opts.threads.max(1);
        let executor = (threads > 1).then(|| Executor::multithread(threads));
        let full = if max_batch == 1 {
            None
        } else {
            let full = plan_for(max_batch)?.0;
            let pays = match batch {
                BatchChoice::Always => true,
                BatchChoice::Timed => guarded(path, "running", || {
                    batch_pays(&single, &full, &contract, max_batch, executor.as_ref())
                })?,
            };
            pays.then_some(full)
        };
        Ok(TractEncoder {
            path: path.to_path_buf(),
            space: contract.space.as_str().into(),
            contract,
            single,
            full,
            executor,
            opts: BackendOptions { threads, max_batch },
            native_nodes,
        })
    }

    /// The batch size full chunks run at: `max_batch`, or 1 where the load
    /// found item-by-item runs faster (see the type's doc).
    pub fn batch_plan(&self) -> usize {
        if self.full.is_some() {
            self.opts.max_batch
        } else {
            1
        }
    }

    /// How many nodes of the plan run edgebind's own kernels
    /// ([`super::conv1x1`], [`super::dwconv`], [`super::im2col`]) instead of
    /// tract's; 0 for
    /// [`TractEncoder::load_stock`].
    pub fn native_nodes(&self) -> usize {
        self.native_nodes
    }

    fn run_batch(&self, item_shape: &[usize], items: &[Input]) -> TractResult<Vec<f32>> {
        let mut shape = vec![items.len()];
        shape.extend_from_slice(item_shape);
        let mut data = Vec::with_capacity(items.len() * item_shape.iter().product::<usize>());
        for t in items {
            data.extend_from_slice(&t.data);
        }
        let input = tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into_tensor();
        let plan = match &self.full {
            Some(full) if items.len() > 1 => full,
            _ => &self.single,
        };
        let run = || plan.run(tvec!(input.into()));
        let out = match &self.executor {
            Some(ex) => multithread_tract_scope(ex.clone(), run)?,
            None => run()?,
        };
        let view = out[0].to_plain_array_view::<f32>()?;
        Ok(view.iter().copied().collect())
    }
}

/// How a load with `max_batch > 1` picks between the batch plan and item
/// by item runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchChoice {
    /// The faster of the two on this machine now ([`batch_pays`]).
    Timed,
    /// The batch plan (reproducible).
    Always,
}

/// Whether one run of `full` (batch `n`) beat `n` runs of `single`, on zeros
/// (best of two timed runs each, after a warm-up). Models with a symbolic
/// item dimension keep the batch plan.
fn batch_pays(
    single: &Plan,
    full: &Plan,
    contract: &Contract,
    n: usize,
    executor: Option<&Executor>,
) -> TractResult<bool> {
    let mut item = Vec::new();
    for d in &contract.input.shape[1..] {
        match d {
            Dim::Fixed(k) => item.push(*k),
            _ => return Ok(true),
        }
    }
    let input = |b: usize| {
        let mut shape = vec![b];
        shape.extend_from_slice(&item);
        Tensor::zero::<f32>(&shape)
    };
    let (one, many) = (input(1)?, input(n)?);
    let time = |f: &dyn Fn() -> TractResult<()>| -> TractResult<f64> {
        f()?;
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            let t = std::time::Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let measure = || -> TractResult<(f64, f64)> {
        let batched = time(&|| full.run(tvec!(many.clone().into())).map(drop))?;
        let singles = time(&|| {
            for _ in 0..n {
                single.run(tvec!(one.clone().into()))?;
            }
            Ok(())
        })?;
        Ok((batched, singles))
    };
    let (batched, singles) = match executor {
        Some(ex) => multithread_tract_scope(ex.clone(), measure)?,
        None => measure()?,
    };
    Ok(batched < singles)
}

fn build(
    proto: &tract_onnx::pb::ModelProto,
    contract: &Contract,
    batch: usize,
    native: bool,
) -> TractResult<(Plan, usize)> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
    let idx = model
        .input_outlets()?
        .iter()
        .position(|o| model.node(o.node).name == contract.input.name)
        .ok_or_else(|| anyhow::anyhow!("graph input `{}` not found", contract.input.name))?;
    let shape: TVec<TDim> = contract
        .input
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Fixed(n) if i > 0 => (*n).to_dim(),
            _ => batch.to_dim(),
        })
        .collect();
    model.set_input_fact(idx, InferenceFact::dt_shape(f32::datum_type(), shape))?;
    model.select_output_outlets(&[model
        .output_outlets()?
        .iter()
        .copied()
        .find(|o| {
            model.node(o.node).name == contract.output.name
                || model.outlet_label(*o) == Some(contract.output.name.as_str())
        })
        .unwrap_or(model.output_outlets()?[0])])?;
    let mut typed = model.into_typed()?;
    let mut native_nodes = 0;
    if native {
        native_nodes = super::fuse_convolutions(&mut typed)?;
    }
    Ok((typed.into_optimized()?.into_runnable()?, native_nodes))
}

impl Encoder for TractEncoder {
    fn contract(&self) -> &Contract {
        &self.contract
    }

    fn backend(&self) -> &'static str {
        "tract"
    }

    fn encode(&self, items: &[Input]) -> Result<Vec<Embedding>, ModelError> {
        let item_shape = check_items(&self.path, &self.contract, items)?;
        let dim = self.contract.output.dim;
        let mut out = Vec::with_capacity(items.len());
        let step = self.batch_plan();
        let full = items.len() / step * step;
        let chunks = items[..full].chunks(step).chain(items[full..].chunks(1));
        for chunk in chunks {
            let rows = guarded(&self.path, "running", || self.run_batch(&item_shape, chunk))?;
            if rows.len() != chunk.len() * dim {
                return Err(ModelError::Backend {
                    path: self.path.clone(),
                    backend: "tract",
                    detail: format!(
                        "output holds {} values for {} items of {dim}",
                        rows.len(),
                        chunk.len()
                    ),
                });
            }
            out.extend(rows_to_embeddings(&self.path, &self.space, &rows, dim)?);
        }
        Ok(out)
    }
}
