//! The default backend: tract, pure Rust, CPU.
//!
//! Loading reads the ONNX protobuf once: the contract comes from its metadata
//! (or sidecar) and is checked against the graph's declared inputs and outputs
//! before tract sees the model; vendor-domain operators are refused up front
//! (tract panics on some); any remaining panic inside tract is caught and
//! reported as an error naming the file. The input gets a symbolic batch
//! dimension, so one optimised plan serves every batch size.

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
pub struct TractEncoder {
    path: PathBuf,
    contract: Contract,
    space: Arc<str>,
    single: Plan,
    full: Plan,
    opts: BackendOptions,
    executor: Option<Executor>,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

impl TractEncoder {
    /// Loads `path`, checks its contract and prepares an optimised plan.
    pub fn load(path: &Path, opts: &BackendOptions) -> Result<Self, ModelError> {
        let (proto, contract) = load_checked(path)?;
        let foreign = foreign_ops(&proto, &[]);
        if !foreign.is_empty() {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                backend: "tract",
                ops: foreign.join(", "),
            });
        }
        let backend_err = |detail: String| ModelError::Backend {
            path: path.to_path_buf(),
            backend: "tract",
            detail,
        };
        let max_batch = opts.max_batch.max(1);
        let plan_for = |batch: usize| {
            catch_unwind(AssertUnwindSafe(|| build(&proto, &contract, batch)))
                .map_err(|p| {
                    backend_err(format!(
                        "tract panicked while preparing the model: {}",
                        panic_text(p)
                    ))
                })?
                .map_err(|e| backend_err(format!("{e:#}")))
        };
        let single = plan_for(1)?;
        let full = if max_batch == 1 {
            single.clone()
        } else {
            plan_for(max_batch)?
        };
        let threads = opts.threads.max(1);
        Ok(TractEncoder {
            path: path.to_path_buf(),
            space: contract.space.as_str().into(),
            contract,
            single,
            full,
            executor: (threads > 1).then(|| Executor::multithread(threads)),
            opts: BackendOptions { threads, max_batch },
        })
    }

    fn run_batch(&self, item_shape: &[usize], items: &[Input]) -> TractResult<Vec<f32>> {
        let mut shape = vec![items.len()];
        shape.extend_from_slice(item_shape);
        let mut data = Vec::with_capacity(items.len() * item_shape.iter().product::<usize>());
        for t in items {
            data.extend_from_slice(&t.data);
        }
        let input = tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into_tensor();
        let plan = if items.len() == 1 {
            &self.single
        } else {
            &self.full
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

fn build(
    proto: &tract_onnx::pb::ModelProto,
    contract: &Contract,
    batch: usize,
) -> TractResult<Plan> {
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
    model.into_optimized()?.into_runnable()
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
        let full = items.len() / self.opts.max_batch * self.opts.max_batch;
        let chunks = items[..full]
            .chunks(self.opts.max_batch)
            .chain(items[full..].chunks(1));
        for chunk in chunks {
            let rows = catch_unwind(AssertUnwindSafe(|| self.run_batch(&item_shape, chunk)))
                .map_err(|p| ModelError::Backend {
                    path: self.path.clone(),
                    backend: "tract",
                    detail: format!("tract panicked while running: {}", panic_text(p)),
                })?
                .map_err(|e| ModelError::Backend {
                    path: self.path.clone(),
                    backend: "tract",
                    detail: format!("{e:#}"),
                })?;
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
