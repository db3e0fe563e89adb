//! Checkpoints: one safetensors file holding an encoder's parameters
//! (`param/<name>`), the AdamW moments (`adam_m/<name>`, `adam_v/<name>`), the
//! moving average of the weights if one is kept (`ema/<name>`, its decay in
//! the metadata as `ema`) and, in the file's metadata, the step, the random source's state and the
//! encoder configuration (JSON). Resuming checks the configuration and every
//! tensor's shape, so a checkpoint of another architecture is refused with
//! the first difference named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::model::{Encoder, EncoderConfig};
use crate::optim::AdamW;
use crate::params::Rng;

/// Format tag in the metadata.
pub const FORMAT: &str = "edgebind-trainer-checkpoint-1";

/// A checkpoint that cannot be written or used.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {detail}")]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub detail: String,
}

/// Writes `enc`'s parameters, `opt`'s state, `rng`'s state and the moving
/// average `ema` (decay, one tensor per parameter), if any, to `path`.
pub fn save(
    path: &Path,
    enc: &Encoder,
    opt: &AdamW,
    rng: &Rng,
    ema: Option<(f64, &[Tensor])>,
) -> Result<(), CheckpointError> {
    let err = |detail: String| CheckpointError {
        path: path.to_path_buf(),
        detail,
    };
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (i, p) in enc.params.iter().enumerate() {
        tensors.push((format!("param/{}", p.name), p.var.as_tensor().clone()));
        tensors.push((format!("adam_m/{}", p.name), opt.m[i].clone()));
        tensors.push((format!("adam_v/{}", p.name), opt.v[i].clone()));
        if let Some((_, sh)) = ema {
            let t = sh.get(i).ok_or_else(|| {
                err(format!(
                    "moving average has {} tensors, the encoder {}",
                    sh.len(),
                    enc.params.iter().count()
                ))
            })?;
            tensors.push((format!("ema/{}", p.name), t.clone()));
        }
    }
    let mut meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), opt.step.to_string()),
        ("total_steps".to_string(), opt.total_steps.to_string()),
        ("rng".to_string(), rng.state().to_string()),
        (
            "encoder".to_string(),
            serde_json::to_string(&enc.cfg).map_err(|e| err(e.to_string()))?,
        ),
    ]);
    if let Some((decay, _)) = ema {
        meta.insert("ema".to_string(), decay.to_string());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    // Write beside, then rename: a crash mid-write leaves the previous checkpoint.
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(tensors, Some(meta), &tmp).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// The encoder configuration stored in a checkpoint.
pub fn config_of(path: &Path) -> Result<EncoderConfig, CheckpointError> {
    let (meta, _) = read(path)?;
    meta_config(path, &meta)
}

type Meta = HashMap<String, String>;

fn read(path: &Path) -> Result<(Meta, Vec<u8>), CheckpointError> {
    let err = |detail: String| CheckpointError {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let meta = md.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(err(format!(
            "not an edgebind trainer checkpoint (format is not {FORMAT})"
        )));
    }
    Ok((meta, bytes))
}

fn meta_config(path: &Path, meta: &Meta) -> Result<EncoderConfig, CheckpointError> {
    serde_json::from_str(meta.get("encoder").map(String::as_str).unwrap_or("")).map_err(|e| {
        CheckpointError {
            path: path.to_path_buf(),
            detail: format!("encoder configuration: {e}"),
        }
    })
}

/// A moving average as saved: its decay and one tensor per parameter.
pub type SavedEma = (f64, Vec<Tensor>);

/// Restores parameters, optimiser state and random state saved by [`save`]
/// into `enc`, `opt` and `rng` (built from the same configuration), and
/// returns the moving average of the weights if the checkpoint has one.
pub fn resume(
    path: &Path,
    enc: &Encoder,
    opt: &mut AdamW,
    rng: &mut Rng,
) -> Result<Option<SavedEma>, CheckpointError> {
    let err = |detail: String| CheckpointError {
        path: path.to_path_buf(),
        detail,
    };
    let (meta, bytes) = read(path)?;
    let cfg = meta_config(path, &meta)?;
    if cfg != enc.cfg {
        return Err(err(format!(
            "was written for encoder {} but this run builds {}",
            serde_json::to_string(&cfg).unwrap_or_default(),
            serde_json::to_string(&enc.cfg).unwrap_or_default()
        )));
    }
    let num = |k: &str| -> Result<u64, CheckpointError> {
        meta.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| err(format!("metadata `{k}` missing or not a number")))
    };
    let tensors = candle_core::safetensors::load_buffer(
        &bytes,
        enc.params
            .iter()
            .next()
            .map(|p| p.var.device())
            .unwrap_or(&candle_core::Device::Cpu),
    )
    .map_err(|e| err(e.to_string()))?;
    let get = |k: String, like: &Tensor| -> Result<Tensor, CheckpointError> {
        let t = tensors
            .get(&k)
            .ok_or_else(|| err(format!("tensor `{k}` is missing")))?;
        if t.dims() != like.dims() {
            return Err(err(format!(
                "tensor `{k}` has shape {:?}, the encoder needs {:?}",
                t.dims(),
                like.dims()
            )));
        }
        Ok(t.clone())
    };
    for (i, p) in enc.params.iter().enumerate() {
        let t = get(format!("param/{}", p.name), p.var.as_tensor())?;
        p.var.set(&t).map_err(|e| err(e.to_string()))?;
        opt.m[i] = get(format!("adam_m/{}", p.name), p.var.as_tensor())?;
        opt.v[i] = get(format!("adam_v/{}", p.name), p.var.as_tensor())?;
    }
    opt.step = num("step")? as usize;
    opt.total_steps = num("total_steps")? as usize;
    *rng = Rng::new(num("rng")?);
    let Some(decay) = meta.get("ema") else {
        return Ok(None);
    };
    let decay: f64 = decay
        .parse()
        .map_err(|_| err(format!("metadata `ema` is {decay:?}, not a number")))?;
    let shadow = enc
        .params
        .iter()
        .map(|p| get(format!("ema/{}", p.name), p.var.as_tensor()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((decay, shadow)))
}
