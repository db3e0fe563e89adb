//! The `tensorrt` backend (cargo feature `tensorrt`): ONNX Runtime with its
//! TensorRT execution provider, CUDA as the fallback for subgraphs TensorRT
//! does not take, then ONNX Runtime's CPU kernels.
//!
//! Why this route rather than TensorRT bindings: on a Jetson the user already
//! has JetPack's TensorRT and an ONNX Runtime GPU build (NVIDIA ships wheels
//! and the Jetson Zoo packages); ONNX Runtime parses the very ONNX file the CPU
//! backend runs, partitions it, and builds and caches the TensorRT engine
//! itself (fp16 on request), so one model file serves both backends. The
//! Rust TensorRT bindings on crates.io target TensorRT 5-7, are unmaintained,
//! and need TensorRT at build time. `ort` with `load-dynamic` links nothing
//! at build time: `libonnxruntime.so` is opened at run time from the path in
//! [`TensorRtOptions::library`] (default: `$ORT_DYLIB_PATH`), so this feature
//! builds anywhere and fails at load time, with a clear error, where the
//! library is missing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::ep;
use ort::session::Session;
use ort::value::Tensor as OrtTensor;

use super::{BackendOptions, Encoder, check_items, rows_to_embeddings};
use crate::contract::Contract;
use crate::onnx::{ModelError, load_checked};
use crate::preprocess::Tensor;
use crate::space::Embedding;

/// Settings of the TensorRT route.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorRtOptions {
    /// `libonnxruntime.so` of a GPU build with the TensorRT provider.
    pub library: PathBuf,
    /// CUDA device.
    pub device_id: i32,
    /// Let TensorRT use fp16 kernels.
    pub fp16: bool,
    /// Where built engines are cached (the first load of a model is slow).
    pub engine_cache: Option<PathBuf>,
}

impl Default for TensorRtOptions {
    fn default() -> Self {
        TensorRtOptions {
            library: std::env::var_os("ORT_DYLIB_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("libonnxruntime.so")),
            device_id: 0,
            fp16: true,
            engine_cache: None,
        }
    }
}

/// An ONNX encoder run by ONNX Runtime's TensorRT provider.
pub struct TensorRtEncoder {
    path: PathBuf,
    contract: Contract,
    space: Arc<str>,
    session: Mutex<Session>,
    max_batch: usize,
}

impl TensorRtEncoder {
    /// Loads `path` through ONNX Runtime at `trt.library`.
    pub fn load(
        path: &Path,
        opts: &BackendOptions,
        trt: &TensorRtOptions,
    ) -> Result<Self, ModelError> {
        let (_, contract) = load_checked(path)?;
        let err = |detail: String| ModelError::Backend {
            path: path.to_path_buf(),
            backend: "tensorrt",
            detail,
        };
        let env = environment(trt).map_err(err)?;
        let session = Session::builder(&env)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(opts.threads.max(1))
            .map_err(|e| err(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| err(e.to_string()))?;
        Ok(TensorRtEncoder {
            path: path.to_path_buf(),
            space: contract.space.as_str().into(),
            contract,
            session: Mutex::new(session),
            max_batch: opts.max_batch.max(1),
        })
    }
}

/// ONNX Runtime allows one environment per process, so every encoder shares
/// the first one (and so its library and provider settings).
static ENVIRONMENT: Mutex<Option<(TensorRtOptions, ort::environment::Environment)>> =
    Mutex::new(None);

fn environment(trt: &TensorRtOptions) -> Result<ort::environment::Environment, String> {
    let mut slot = ENVIRONMENT
        .lock()
        .map_err(|_| "ONNX Runtime environment lock poisoned".to_string())?;
    if let Some((opts, env)) = slot.as_ref() {
        if opts != trt {
            return Err(format!(
                "ONNX Runtime is already set up in this process with {opts:?}; one process can only use one library and provider setting, requested {trt:?}"
            ));
        }
        return Ok(env.clone());
    }
    let mut trt_ep = ep::TensorRT::default()
        .with_device_id(trt.device_id)
        .with_fp16(trt.fp16);
    if let Some(cache) = &trt.engine_cache {
        trt_ep = trt_ep
            .with_engine_cache(true)
            .with_engine_cache_path(cache.display());
    }
    let env = ort::init_from(&trt.library)
        .map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e}",
                trt.library.display()
            )
        })?
        .with_execution_providers([
            trt_ep.build(),
            ep::CUDA::default().with_device_id(trt.device_id).build(),
        ])
        .build()
        .map_err(|e| e.to_string())?;
    *slot = Some((trt.clone(), env.clone()));
    Ok(env)
}

impl Encoder for TensorRtEncoder {
    fn contract(&self) -> &Contract {
        &self.contract
    }

    fn backend(&self) -> &'static str {
        "tensorrt"
    }

    fn encode(&self, items: &[Tensor]) -> Result<Vec<Embedding>, ModelError> {
        let item_shape = check_items(&self.path, &self.contract, items)?;
        let err = |detail: String| ModelError::Backend {
            path: self.path.clone(),
            backend: "tensorrt",
            detail,
        };
        let dim = self.contract.output.dim;
        let mut out = Vec::with_capacity(items.len());
        let mut session = self
            .session
            .lock()
            .map_err(|_| err("session lock poisoned".into()))?;
        for chunk in items.chunks(self.max_batch) {
            let mut shape = vec![chunk.len() as i64];
            shape.extend(item_shape.iter().map(|&d| d as i64));
            let data: Vec<f32> = chunk.iter().flat_map(|t| t.data.iter().copied()).collect();
            let input = OrtTensor::from_array((shape, data)).map_err(|e| err(e.to_string()))?;
            let outputs = session
                .run(ort::inputs![self.contract.input.name.as_str() => input])
                .map_err(|e| err(e.to_string()))?;
            let value = outputs
                .get(self.contract.output.name.as_str())
                .ok_or_else(|| err(format!("no output `{}`", self.contract.output.name)))?;
            let (_, rows) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| err(e.to_string()))?;
            if rows.len() != chunk.len() * dim {
                return Err(err(format!(
                    "output holds {} values for {} items of {dim}",
                    rows.len(),
                    chunk.len()
                )));
            }
            out.extend(rows_to_embeddings(&self.path, &self.space, rows, dim)?);
        }
        Ok(out)
    }
}
