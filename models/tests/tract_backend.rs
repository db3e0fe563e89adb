//! The tract backend on ONNX files written here with the ONNX protobuf types:
//! numbers against a hand computation, batching, and every way a model file
//! can be wrong.

use std::path::PathBuf;

use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::contract::{CONTRACT_KEY, Contract, ContractModality, Dim, Preprocess};
use edgebind_models::onnx::ModelError;
use edgebind_models::preprocess::Tensor;
use edgebind_models::preprocess::imu::ImuParams;
use prost::Message as _;
use tract_onnx::pb;

const LEN: usize = 8;
const DIM: usize = 5;

fn weights() -> Vec<f32> {
    (0..6 * LEN * DIM)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect()
}

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => dimension::Value::DimValue(*n),
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

fn contract() -> Contract {
    let mut c = Contract::imagebind(ContractModality::Imu);
    c.space = "test-space".into();
    c.input.name = "imu".into();
    c.input.shape = vec![Dim::Symbol("batch".into()), Dim::Fixed(6), Dim::Fixed(LEN)];
    c.output.dim = DIM;
    c.preprocess = Preprocess::Imu(ImuParams {
        length: LEN,
        ..Default::default()
    });
    c
}

/// imu [batch, 6, LEN] -> Flatten -> MatMul W [6*LEN, DIM] -> embedding [batch, DIM].
fn model(contract: Option<&Contract>, out_dim: i64, domain: &str) -> pb::ModelProto {
    let w = weights();
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "edgebind-test".into(),
        graph: Some(pb::GraphProto {
            name: "linear".into(),
            node: vec![
                pb::NodeProto {
                    name: "flatten".into(),
                    op_type: "Flatten".into(),
                    input: vec!["imu".into()],
                    output: vec!["flat".into()],
                    attribute: vec![pb::AttributeProto {
                        name: "axis".into(),
                        r#type: pb::attribute_proto::AttributeType::Int as i32,
                        i: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                pb::NodeProto {
                    name: "proj".into(),
                    op_type: "MatMul".into(),
                    domain: domain.into(),
                    input: vec!["flat".into(), "w".into()],
                    output: vec!["embedding".into()],
                    ..Default::default()
                },
            ],
            initializer: vec![pb::TensorProto {
                name: "w".into(),
                dims: vec![(6 * LEN) as i64, DIM as i64],
                data_type: 1,
                float_data: w,
                ..Default::default()
            }],
            input: vec![value_info("imu", &[None, Some(6), Some(LEN as i64)])],
            output: vec![value_info("embedding", &[None, Some(out_dim)])],
            ..Default::default()
        }),
        metadata_props: contract
            .map(|c| {
                vec![pb::StringStringEntryProto {
                    key: CONTRACT_KEY.into(),
                    value: c.to_json(),
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn write(name: &str, m: &pb::ModelProto) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgebind-tract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

fn item(seed: usize) -> Tensor {
    Tensor::new(
        vec![6, LEN],
        (0..6 * LEN)
            .map(|i| (((i + seed) * 13 % 17) as f32 - 8.0) / 5.0)
            .collect(),
    )
}

fn reference(t: &Tensor) -> Vec<f32> {
    let w = weights();
    let mut y = [0f32; DIM];
    for (k, x) in t.data.iter().enumerate() {
        for (j, yj) in y.iter_mut().enumerate() {
            *yj += x * w[k * DIM + j];
        }
    }
    let n = y.iter().map(|v| v * v).sum::<f32>().sqrt();
    y.iter().map(|v| v / n).collect()
}

#[test]
fn encodes_like_the_math_at_any_batch_size() {
    let path = write("ok.onnx", &model(Some(&contract()), DIM as i64, ""));
    for opts in [
        BackendOptions::default(),
        BackendOptions {
            threads: 2,
            max_batch: 2,
        },
    ] {
        let enc = TractEncoder::load(&path, &opts).unwrap();
        assert_eq!(enc.contract(), &contract());
        let items: Vec<Tensor> = (0..5).map(item).collect();
        let embs = enc.encode(&items).unwrap();
        assert_eq!(embs.len(), 5);
        for (e, t) in embs.iter().zip(&items) {
            assert_eq!(&*e.space, "test-space");
            for (a, b) in e.vector.iter().zip(reference(t)) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        // A single item gives the same vector as inside a batch (different plans:
        // equal up to float summation order).
        let single = &enc.encode(&items[3..4]).unwrap()[0];
        for (a, b) in single.vector.iter().zip(&embs[3].vector) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

/// `load_reproducible` always takes the batch plan (no timing at load), so
/// two loads embed the same items to the same bits.
#[test]
fn reproducible_loads_always_batch_and_repeat_bit_for_bit() {
    let path = write("repro.onnx", &model(Some(&contract()), DIM as i64, ""));
    let opts = BackendOptions {
        threads: 1,
        max_batch: 4,
    };
    let items: Vec<Tensor> = (0..10).map(item).collect();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let enc = TractEncoder::load_reproducible(&path, &opts).unwrap();
        assert_eq!(enc.batch_plan(), 4);
        let embs = enc.encode(&items).unwrap();
        assert_eq!(embs.len(), 10);
        for (e, t) in embs.iter().zip(&items) {
            for (a, b) in e.vector.iter().zip(reference(t)) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        runs.push(
            embs.iter()
                .flat_map(|e| e.vector.iter().map(|v| v.to_bits()))
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}

#[test]
fn wrong_inputs_are_errors() {
    let path = write("ok2.onnx", &model(Some(&contract()), DIM as i64, ""));
    let enc = TractEncoder::load(&path, &BackendOptions::default()).unwrap();
    let e = enc
        .encode(&[Tensor::new(vec![6, LEN + 1], vec![0.0; 6 * (LEN + 1)])])
        .unwrap_err();
    assert!(
        e.to_string().contains("shape [6, 9]") && e.to_string().contains("ok2.onnx"),
        "{e}"
    );
    // All-zero input gives a zero row: an error, not a NaN embedding.
    let e = enc
        .encode(&[Tensor::new(vec![6, LEN], vec![0.0; 6 * LEN])])
        .unwrap_err();
    assert!(e.to_string().contains("zero or not finite"), "{e}");
}

#[test]
fn bad_model_files_are_refused_with_the_reason() {
    // Contract and graph disagree on the output size.
    let p = write("mismatch.onnx", &model(Some(&contract()), 7, ""));
    let e = TractEncoder::load(&p, &BackendOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("mismatch.onnx") && e.contains("7") && e.contains("5"),
        "{e}"
    );
    // Vendor operators are refused before tract sees them.
    let p = write(
        "vendor.onnx",
        &model(Some(&contract()), DIM as i64, "com.microsoft"),
    );
    let e = TractEncoder::load(&p, &BackendOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("com.microsoft::MatMul"));
    // No contract: the error says where a sidecar would go; a sidecar then works.
    let p = write("bare.onnx", &model(None, DIM as i64, ""));
    let e = TractEncoder::load(&p, &BackendOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bare.contract.toml"), "{e}");
    std::fs::write(
        p.with_extension("contract.toml"),
        "modality = \"imu\"\nspace = \"sidecar-space\"\n[input]\nshape = [\"batch\", 6, 8]\n[output]\ndim = 5\n[preprocess]\nlength = 8\n",
    )
    .unwrap();
    let enc = TractEncoder::load(&p, &BackendOptions::default()).unwrap();
    assert_eq!(enc.contract().space, "sidecar-space");
    assert_eq!(enc.encode(&[item(1)]).unwrap()[0].vector.len(), DIM);
    // Not ONNX at all, and missing.
    let junk = p.with_file_name("junk.onnx");
    std::fs::write(&junk, b"\x08\x96\x01 definitely not a model").unwrap();
    let e = TractEncoder::load(&junk, &BackendOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::NotOnnx { .. }), "{e}");
    let e = TractEncoder::load(
        &p.with_file_name("missing.onnx"),
        &BackendOptions::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("missing.onnx"), "{e}");
}
