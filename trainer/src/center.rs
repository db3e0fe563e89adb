//! `edgebind-train center`: each encoder's outputs re-centred on its own
//! mean, baked into the ONNX file.
//!
//! # Why
//! A student bound to a frozen anchor regresses the anchor's embeddings.
//! Where its input cannot tell two moments apart, it outputs their mean, and
//! its embeddings gather in a cone around the mean of all it saw. Zero-shot
//! then favours the situations whose prompts point along that cone (a hub:
//! the bundle's depth and thermal sent door slamming and a humming machine
//! to glass breaking), an effect of the mapping, not of what the sensor
//! sees (Dinu et al., "Improving zero-shot learning by mitigating the
//! hubness problem", 2015; Liang et al., "Mind the gap", 2022, on the cone
//! of each modality in CLIP-like spaces).
//!
//! # What
//! The mean `mu` of an encoder's unit embeddings over every moment of one
//! or more recordings (no labels: its own training data), then the
//! encoder's output `y` becomes `(y - mu) / |y - mu|`. Against text prompts
//! this subtracts `mu . t` from the score of each prompt `t`: the prior of
//! the cone. Nothing else changes: the same contract, input, output name
//! and dimension, so the daemon, `eval` and every backend run the centred
//! file like any other. The graph gains four plain operators at its end
//! (Sub, ReduceSumSquare, Sqrt, Div: what [`crate::export`] already uses)
//! and `metadata_props["edgebind.center"]` records the mean's source.
//! A file that has it is refused: centring twice would centre on a mean
//! that is no longer the encoder's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebind_models::backend::Encoder as _;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::contract::{CONTRACT_KEY, Contract};
use edgebind_sensors::window::WindowConfig;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::data::{self, LoadSpec, frozen_backend};
use crate::export::{attr_int, attr_ints};

/// Metadata key of the centring record.
pub const CENTER_KEY: &str = "edgebind.center";

/// What `metadata_props["edgebind.center"]` says (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CenterRecord {
    /// Moments averaged.
    pub moments: usize,
    /// The recordings they came from (file names).
    pub recordings: Vec<String>,
    /// `|mu|`: 0 for outputs spread evenly, towards 1 for a narrow cone.
    pub mean_norm: f32,
}

/// The mean of `enc`'s unit embeddings over every moment of `recordings`
/// (its contract's preprocessing, the default windows), and the number of
/// moments.
pub fn mean_embedding(
    enc: &TractEncoder,
    recordings: &[PathBuf],
    mut progress: impl FnMut(&Path, u64, u64),
) -> anyhow::Result<(Vec<f32>, usize)> {
    let c = enc.contract();
    let m = c.modality;
    let ds = data::load(
        recordings,
        &LoadSpec {
            preprocess: BTreeMap::from([(m, c.preprocess.clone())]),
            windows: WindowConfig::default(),
            segment_s: 60.0,
            holdout: 0.0,
        },
        &mut progress,
    )?;
    let n = ds.moments.len();
    anyhow::ensure!(
        n > 0,
        "{}: no {} window to average",
        names(recordings).join(", "),
        m.as_str()
    );
    let inputs = ds.inputs.get(&m).ok_or_else(|| {
        anyhow::anyhow!("{}: no {} stream", names(recordings).join(", "), m.as_str())
    })?;
    let idx: Vec<usize> = (0..n).collect();
    let dim = c.output.dim;
    let mut sum = vec![0f64; dim];
    for chunk in idx.chunks(1024) {
        for e in inputs.embed(enc, chunk)? {
            anyhow::ensure!(
                e.len() == dim,
                "the encoder returned {} values, its contract says {dim}",
                e.len()
            );
            for (s, v) in sum.iter_mut().zip(e) {
                *s += v as f64;
            }
        }
    }
    Ok((sum.into_iter().map(|s| (s / n as f64) as f32).collect(), n))
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn meta<'a>(model: &'a pb::ModelProto, key: &str) -> Option<&'a str> {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

/// Appends `(y - mean) / |y - mean|` to the graph's output `y` (named by the
/// contract in the metadata) and records `record` under [`CENTER_KEY`].
/// Errors: no embedded contract, already centred, a mean of the wrong
/// length or not finite, an output no node produces.
pub fn append_centring(
    model: &mut pb::ModelProto,
    mean: &[f32],
    record: &CenterRecord,
) -> anyhow::Result<()> {
    let contract = Contract::from_json(meta(model, CONTRACT_KEY).ok_or_else(|| {
        anyhow::anyhow!("no `{CONTRACT_KEY}` metadata: only edgebind exports can be centred")
    })?)?;
    anyhow::ensure!(
        meta(model, CENTER_KEY).is_none(),
        "already centred (`{CENTER_KEY}` metadata): centre the file `edgebind-train bind` wrote"
    );
    anyhow::ensure!(
        mean.len() == contract.output.dim,
        "a mean of {} values for a {}-d output",
        mean.len(),
        contract.output.dim
    );
    anyhow::ensure!(mean.iter().all(|v| v.is_finite()), "the mean is not finite");
    let out = contract.output.name.clone();
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the model has no graph"))?;
    anyhow::ensure!(
        graph.output.iter().any(|o| o.name == out),
        "the contract's output `{out}` is not a graph output"
    );
    let raw = format!("{out}.uncentred");
    let mut producers = 0;
    for node in graph.node.iter_mut() {
        for o in node.output.iter_mut() {
            if *o == out {
                *o = raw.clone();
                producers += 1;
            }
        }
        for i in node.input.iter_mut() {
            if *i == out {
                *i = raw.clone();
            }
        }
    }
    anyhow::ensure!(producers == 1, "no single node produces `{out}`");
    let name = |s: &str| format!("center.{s}");
    graph.initializer.push(pb::TensorProto {
        name: name("mean"),
        dims: vec![1, mean.len() as i64],
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: mean.to_vec(),
        ..Default::default()
    });
    // Node names are the outputs' with the `center.` prefix: unique (the
    // exporter names its last node after the contract's output).
    let node = |op: &str, inputs: &[String], output: String, attribute| pb::NodeProto {
        name: if output.starts_with("center.") {
            output.clone()
        } else {
            format!("center.{output}")
        },
        op_type: op.into(),
        input: inputs.to_vec(),
        output: vec![output],
        attribute,
        ..Default::default()
    };
    // The L2 norm exactly as the exporter writes it (`y / sqrt(sum(y^2))`).
    let (axes, keepdims) = (attr_ints("axes", &[-1]), attr_int("keepdims", 1));
    graph.node.extend([
        node("Sub", &[raw, name("mean")], name("sub"), vec![]),
        node(
            "ReduceSumSquare",
            &[name("sub")],
            name("ss"),
            vec![axes, keepdims],
        ),
        node("Sqrt", &[name("ss")], name("norm"), vec![]),
        node("Div", &[name("sub"), name("norm")], out, vec![]),
    ]);
    model.metadata_props.push(pb::StringStringEntryProto {
        key: CENTER_KEY.into(),
        value: serde_json::to_string(record)?,
    });
    Ok(())
}

/// One centred file.
#[derive(Debug, Clone)]
pub struct Centred {
    pub input: PathBuf,
    pub output: PathBuf,
    pub record: CenterRecord,
}

/// Centres `encoder` on its mean over `recordings` and writes the result to
/// `output` (which may be `encoder` itself: the file is read first).
pub fn center_file(
    encoder: &Path,
    recordings: &[PathBuf],
    output: &Path,
    progress: impl FnMut(&Path, u64, u64),
) -> anyhow::Result<Centred> {
    let bytes =
        std::fs::read(encoder).map_err(|e| anyhow::anyhow!("{}: {e}", encoder.display()))?;
    let mut model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: not an ONNX model: {e}", encoder.display()))?;
    anyhow::ensure!(
        meta(&model, CENTER_KEY).is_none(),
        "{}: already centred (`{CENTER_KEY}` metadata)",
        encoder.display()
    );
    let enc = TractEncoder::load_reproducible(encoder, &frozen_backend())
        .map_err(|e| anyhow::anyhow!("{}: {e}", encoder.display()))?;
    let (mean, moments) = mean_embedding(&enc, recordings, progress)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", encoder.display()))?;
    let record = CenterRecord {
        moments,
        recordings: names(recordings),
        mean_norm: mean.iter().map(|v| v * v).sum::<f32>().sqrt(),
    };
    append_centring(&mut model, &mean, &record)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", encoder.display()))?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    std::fs::write(output, model.encode_to_vec())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", output.display()))?;
    Ok(Centred {
        input: encoder.to_path_buf(),
        output: output.to_path_buf(),
        record,
    })
}

/// The centring record of an ONNX file, if it has one.
pub fn record_of(path: &Path) -> anyhow::Result<Option<CenterRecord>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: not an ONNX model: {e}", path.display()))?;
    meta(&model, CENTER_KEY)
        .map(|j| {
            serde_json::from_str(j)
                .map_err(|e| anyhow::anyhow!("{}: `{CENTER_KEY}`: {e}", path.display()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Encoder, EncoderConfig};
    use crate::params::{Rng, randn};
    use edgebind_models::backend::BackendOptions;
    use edgebind_models::contract::ContractModality;
    use edgebind_models::preprocess::Tensor as Item;

    fn run(p: &Path, cfg: &EncoderConfig, item: &[f32]) -> Vec<f32> {
        let enc = TractEncoder::load(p, &BackendOptions::default()).unwrap();
        enc.encode(&[Item::new(cfg.input.clone(), item.to_vec())])
            .unwrap()
            .remove(0)
            .vector
    }

    #[test]
    fn the_centred_graph_computes_the_unit_difference_and_refuses_a_second_pass() {
        let dir = std::env::temp_dir().join(format!("edgebind-center-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = EncoderConfig::small(ContractModality::Imu).unwrap();
        let mut rng = Rng::new(5);
        let enc = Encoder::new(&cfg, &mut rng, &candle_core::Device::Cpu).unwrap();
        let contract = cfg.contract("center-space", "nothing (test)", "edgebind-train test");
        let p = dir.join("imu.onnx");
        crate::export::write_onnx(&enc, &contract, &p).unwrap();
        let len: usize = cfg.input.iter().product();
        let item = randn(&mut rng, &[len], &candle_core::Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = run(&p, &cfg, &item);
        // A mean of the size a narrow cone has (|mu| ~ 0.8), near y.
        let mean: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(i, v)| 0.7 * v + 0.02 * ((i % 7) as f32 - 3.0))
            .collect();

        let bytes = std::fs::read(&p).unwrap();
        let mut model = pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let record = CenterRecord {
            moments: 1,
            recordings: vec!["x.mcap".into()],
            mean_norm: 0.7,
        };
        append_centring(&mut model, &mean, &record).unwrap();
        let c = dir.join("c.onnx");
        std::fs::write(&c, model.encode_to_vec()).unwrap();
        let got = run(&c, &cfg, &item);
        let d: Vec<f32> = y.iter().zip(&mean).map(|(a, b)| a - b).collect();
        let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        let max = got
            .iter()
            .zip(&d)
            .map(|(g, w)| (g - w / n).abs())
            .fold(0f32, f32::max);
        assert!(max <= 1e-5, "centred output differs by {max}");
        let gn = got.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((gn - 1.0).abs() < 1e-5, "|centred| = {gn}");
        let moved = got
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(moved > 1e-2, "centring changed the output by only {moved}");
        // Same contract: the daemon loads it like the original.
        let again = TractEncoder::load(&c, &BackendOptions::default()).unwrap();
        assert_eq!(again.contract(), &contract);
        assert_eq!(record_of(&c).unwrap(), Some(record.clone()));
        assert_eq!(record_of(&p).unwrap(), None);

        let err = append_centring(&mut model, &mean, &record).unwrap_err();
        assert!(err.to_string().contains("already centred"), "{err}");
        let mut fresh = pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let err = append_centring(&mut fresh, &mean[1..], &record).unwrap_err();
        assert!(err.to_string().contains("a mean of"), "{err}");
        let mut nan = mean.clone();
        nan[0] = f32::NAN;
        let err = append_centring(&mut fresh, &nan, &record).unwrap_err();
        assert!(err.to_string().contains("not finite"), "{err}");
        fresh.metadata_props.clear();
        let err = append_centring(&mut fresh, &mean, &record).unwrap_err();
        assert!(err.to_string().contains("only edgebind exports"), "{err}");
        let err = center_file(
            &c,
            &[dir.join("none.mcap")],
            &dir.join("cc.onnx"),
            |_, _, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("already centred"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
