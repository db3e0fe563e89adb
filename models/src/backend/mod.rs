//! Encoder backends: a batch of preprocessed tensors in, L2-normalised
//! embeddings of the contract's space out.
//!
//! * [`tract`] (default): pure Rust on the CPU, an optimised plan with a
//!   symbolic batch dimension, matrix products on `threads` threads.
//! * `tensorrt` (cargo feature): the same trait over ONNX Runtime's TensorRT
//!   execution provider, for Jetson-class boards (see that module for why this
//!   route).

use std::path::Path;
use std::sync::Arc;

use crate::contract::Contract;
use crate::onnx::ModelError;
use crate::preprocess::Tensor;
use crate::space::Embedding;

pub mod attention;
pub mod conv1x1;
pub mod dwconv;
pub mod im2col;
pub mod linear;
pub(crate) mod native;
#[cfg(feature = "tensorrt")]
pub mod tensorrt;
pub mod tract;

/// edgebind's convolution kernels put in place of tract's on a typed model
/// *not yet decluttered* (while ONNX convolutions are still `Conv` nodes;
/// declutter turns 1x1 ones into matrix products): [`conv1x1`], [`dwconv`],
/// [`im2col`], in that order. Returns how many nodes they replaced.
pub fn fuse_convolutions(
    model: &mut tract_onnx::prelude::TypedModel,
) -> tract_onnx::prelude::TractResult<usize> {
    Ok(conv1x1::fuse(model)? + dwconv::fuse(model)? + im2col::fuse(model)?)
}

/// edgebind's transformer kernels put in place of tract's on a *decluttered*
/// typed model: [`linear`] (dense layers), then [`attention`] (attention
/// cores). Returns how many nodes they replaced.
pub fn fuse_transformer(
    model: &mut tract_onnx::prelude::TypedModel,
) -> tract_onnx::prelude::TractResult<usize> {
    Ok(linear::fuse(model)? + attention::fuse(model)?)
}

/// Backend settings (from the daemon's config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendOptions {
    /// Threads for matrix products (1 = the calling thread only).
    pub threads: usize,
    /// Largest batch run at once; bigger requests are split. Default 1: on
    /// tract a batch-8 MobileNetV2 plan ran at 54-59 ms per image against
    /// 15-20 ms one at a time (`cargo bench -p edgebind-models --bench
    /// encoders`), so batching is opt-in per model, and the tract backend
    /// times the batch plan against single runs at load and keeps the faster
    /// (`TractEncoder::batch_plan`).
    pub max_batch: usize,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            threads: 1,
            max_batch: 1,
        }
    }
}

/// An encoder: preprocessed inputs -> embeddings.
pub trait Encoder: Send + Sync {
    /// Its contract.
    fn contract(&self) -> &Contract;
    /// Encodes items shaped like the contract's input without the batch
    /// dimension; one embedding per item, in order.
    fn encode(&self, items: &[Tensor]) -> Result<Vec<Embedding>, ModelError>;
    /// Backend name for logs and health.
    fn backend(&self) -> &'static str;
}

/// Checks every item's shape against the contract's per-item shape.
pub(crate) fn check_items(
    path: &Path,
    contract: &Contract,
    items: &[Tensor],
) -> Result<Vec<usize>, ModelError> {
    let want: Vec<usize> = contract.input.shape[1..]
        .iter()
        .map(|d| match d {
            crate::contract::Dim::Fixed(n) => *n,
            crate::contract::Dim::Symbol(_) => 0,
        })
        .collect();
    for (i, t) in items.iter().enumerate() {
        if t.shape != want {
            return Err(ModelError::Input {
                path: path.to_path_buf(),
                detail: format!(
                    "item {i} has shape {:?}, the contract wants {want:?}",
                    t.shape
                ),
            });
        }
        if t.data.len() != want.iter().product::<usize>() {
            return Err(ModelError::Input {
                path: path.to_path_buf(),
                detail: format!("item {i} holds {} values for shape {want:?}", t.data.len()),
            });
        }
    }
    Ok(want)
}

/// Turns `[n, dim]` rows into embeddings of `space`; a zero or non-finite row is an error.
pub(crate) fn rows_to_embeddings(
    path: &Path,
    space: &Arc<str>,
    rows: &[f32],
    dim: usize,
) -> Result<Vec<Embedding>, ModelError> {
    rows.chunks(dim)
        .enumerate()
        .map(|(i, r)| {
            Embedding::new(space.clone(), r.to_vec()).ok_or_else(|| ModelError::Backend {
                path: path.to_path_buf(),
                backend: "output",
                detail: format!("row {i} of the output is zero or not finite"),
            })
        })
        .collect()
}
