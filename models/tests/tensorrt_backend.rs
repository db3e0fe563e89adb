//! The `tensorrt` backend's code path (ONNX Runtime loaded at run time) on
//! whatever `libonnxruntime.so` `ORT_DYLIB_PATH` names. With a CPU-only build
//! the TensorRT and CUDA providers are unavailable and ONNX Runtime runs the
//! model on its CPU kernels, which still checks loading, input and output
//! plumbing and the numbers against tract. Run with:
//!
//! ```sh
//! ORT_DYLIB_PATH=.../onnxruntime/capi/libonnxruntime.so.1.32.0 \
//!   cargo test -p edgebind-models --features tensorrt --test tensorrt_backend
//! ```
#![cfg(feature = "tensorrt")]

use std::path::Path;

use edgebind_models::backend::tensorrt::{TensorRtEncoder, TensorRtOptions};
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::preprocess::Tensor;

#[test]
fn onnx_runtime_route_matches_tract() {
    let lib = std::env::var_os("ORT_DYLIB_PATH")
        .expect("set ORT_DYLIB_PATH to a libonnxruntime.so (see the module doc)");
    let model =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("zoo/image_anchor_mobilenetv2.onnx");
    let opts = BackendOptions {
        threads: 1,
        max_batch: 2,
    };
    let trt = TensorRtEncoder::load(
        &model,
        &opts,
        &TensorRtOptions {
            library: lib.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let tract = TractEncoder::load(&model, &opts).unwrap();
    let items: Vec<Tensor> = (0..3)
        .map(|k| {
            Tensor::new(
                vec![3, 224, 224],
                (0..3 * 224 * 224)
                    .map(|i| (((i * 7 + k * 13) % 255) as f32 / 127.0) - 1.0)
                    .collect(),
            )
        })
        .collect();
    let a = trt.encode(&items).unwrap();
    let b = tract.encode(&items).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let max = x
            .vector
            .iter()
            .zip(&y.vector)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        println!("onnxruntime vs tract max abs diff {max:.2e}");
        assert!(max < 1e-4, "{max}");
    }
    // A second encoder in the same process shares ONNX Runtime's one environment.
    let again = TensorRtEncoder::load(
        &model,
        &opts,
        &TensorRtOptions {
            library: std::env::var_os("ORT_DYLIB_PATH").unwrap().into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(again.encode(&items[..1]).unwrap()[0], a[0]);
    // Another library in the same process is refused with both settings named.
    let e = TensorRtEncoder::load(
        &model,
        &opts,
        &TensorRtOptions {
            library: "/nonexistent/libonnxruntime.so".into(),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("/nonexistent/libonnxruntime.so")
            && e.to_string().contains("already"),
        "{e}"
    );
}
