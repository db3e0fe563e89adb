//! Reading ONNX model files: the protobuf, the contract in its metadata (or a
//! sidecar), the graph's input/output facts, and a guard against operators
//! the CPU backend cannot run (tract panics, rather than erring, on some
//! vendor ops such as `com.microsoft` packed Attention).

use std::path::{Path, PathBuf};

use prost::Message as _;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension;

use crate::contract::{CONTRACT_KEY, Contract, ContractError};

/// Errors of loading or running a model. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Missing or unreadable file.
    #[error("model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not an ONNX protobuf (or a corrupt one).
    #[error("model {path} is not a readable ONNX file: {detail}")]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Operators from a domain the backend does not support.
    #[error("model {path} uses operators the {backend} backend cannot run: {ops}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Backend name.
        backend: &'static str,
        /// `domain::Op` list.
        ops: String,
    },
    /// No contract in the metadata and no sidecar.
    #[error(
        "model {path} carries no `{CONTRACT_KEY}` metadata and has no sidecar {sidecar}; write one (see models/README)"
    )]
    NoContract {
        /// The file.
        path: PathBuf,
        /// Where a sidecar was looked for.
        sidecar: PathBuf,
    },
    /// A contract that does not parse or does not fit the graph.
    #[error("model {path}: {source}")]
    Contract {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ContractError,
    },
    /// The backend failed to prepare or run the model.
    #[error("model {path}: {backend} backend: {detail}")]
    Backend {
        /// The file.
        path: PathBuf,
        /// Backend name.
        backend: &'static str,
        /// What failed.
        detail: String,
    },
    /// Input of the wrong shape.
    #[error("model {path}: input {detail}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Reads and decodes an ONNX file.
pub fn read_proto(path: &Path) -> Result<pb::ModelProto, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let proto = pb::ModelProto::decode(bytes.as_slice()).map_err(|e| ModelError::NotOnnx {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(ModelError::NotOnnx {
            path: path.to_path_buf(),
            detail: "no graph nodes".into(),
        });
    }
    Ok(proto)
}

/// Where the sidecar contract of `model` is looked for: `NAME.contract.toml` beside it.
pub fn sidecar_path(model: &Path) -> PathBuf {
    model.with_extension("contract.toml")
}

/// The contract of a model: its metadata, else its sidecar TOML.
pub fn contract_of(proto: &pb::ModelProto, path: &Path) -> Result<Contract, ModelError> {
    let err = |source| ModelError::Contract {
        path: path.to_path_buf(),
        source,
    };
    if let Some(entry) = proto.metadata_props.iter().find(|e| e.key == CONTRACT_KEY) {
        return Contract::from_json(&entry.value).map_err(err);
    }
    let sidecar = sidecar_path(path);
    match std::fs::read_to_string(&sidecar) {
        Ok(text) => Contract::from_sidecar_toml(&text).map_err(err),
        Err(_) => Err(ModelError::NoContract {
            path: path.to_path_buf(),
            sidecar,
        }),
    }
}

/// Nodes whose operator domain is not the standard ONNX one; `allowed`
/// domains (e.g. `ai.onnx.ml`) are let through.
pub fn foreign_ops(proto: &pb::ModelProto, allowed: &[&str]) -> Vec<String> {
    let mut ops: Vec<String> = proto
        .graph
        .iter()
        .flat_map(|g| g.node.iter())
        .filter(|n| {
            !(n.domain.is_empty() || n.domain == "ai.onnx" || allowed.contains(&n.domain.as_str()))
        })
        .map(|n| format!("{}::{}", n.domain, n.op_type))
        .collect();
    ops.sort();
    ops.dedup();
    ops
}

type Facts = Vec<(String, Vec<Option<usize>>)>;

fn facts(values: &[pb::ValueInfoProto], skip: &[&str]) -> Facts {
    values
        .iter()
        .filter(|v| !skip.contains(&v.name.as_str()))
        .map(|v| {
            let dims = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(pb::type_proto::Value::TensorType(t)) => t
                    .shape
                    .as_ref()
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match d.value {
                                Some(dimension::Value::DimValue(n)) if n > 0 => Some(n as usize),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            (v.name.clone(), dims)
        })
        .collect()
}

/// The graph's (inputs, outputs) with their dimensions (`None` = symbolic).
/// Initializers listed as inputs (old exporters do that) are left out.
pub fn graph_facts(proto: &pb::ModelProto) -> (Facts, Facts) {
    let Some(g) = proto.graph.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let inits: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    (facts(&g.input, &inits), facts(&g.output, &[]))
}

/// Reads `path`, finds its contract and checks it against the graph: the
/// common first step of every backend's `load`.
pub fn load_checked(path: &Path) -> Result<(pb::ModelProto, Contract), ModelError> {
    let proto = read_proto(path)?;
    let contract = contract_of(&proto, path)?;
    let (inputs, outputs) = graph_facts(&proto);
    contract
        .check_graph(&inputs, &outputs)
        .map_err(|source| ModelError::Contract {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((proto, contract))
}
