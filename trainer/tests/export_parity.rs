//! Every architecture's ONNX export, loaded by edgebind-models' tract backend
//! like any other encoder, gives the trainer's (candle) embeddings within
//! 1e-4, on randomised weights (not the tidy initial ones).

use std::path::PathBuf;

use candle_core::Device;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder as _};
use edgebind_models::contract::ContractModality;
use edgebind_models::preprocess::Tensor as Item;
use edgebind_trainer::export::write_onnx;
use edgebind_trainer::model::{Encoder, EncoderConfig};
use edgebind_trainer::params::{Rng, randn};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgebind-train-parity-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn parity(cfg: &EncoderConfig) -> f32 {
    let dev = Device::Cpu;
    let mut rng = Rng::new(11);
    let enc = Encoder::new(cfg, &mut rng, &dev).unwrap();
    for p in enc.params.iter() {
        let noise = randn(&mut rng, p.var.dims(), &dev).unwrap();
        let t = (p.var.as_tensor() + (noise * 0.05).unwrap()).unwrap();
        p.var.set(&t).unwrap();
    }
    let contract = cfg.contract(
        "parity-space",
        "nothing (parity test)",
        "edgebind-train test",
    );
    let path = dir().join(format!("{}.onnx", cfg.modality.as_str()));
    write_onnx(&enc, &contract, &path).unwrap();

    let batch = 3;
    let mut shape = vec![batch];
    shape.extend(&cfg.input);
    let x = randn(&mut rng, &shape, &dev).unwrap();
    let ours = enc.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();

    let item_len: usize = cfg.input.iter().product();
    let flat = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let items: Vec<Item> = flat
        .chunks(item_len)
        .map(|c| Item::new(cfg.input.clone(), c.to_vec()))
        .collect();
    let mut worst = 0f32;
    for opts in [
        BackendOptions::default(),
        BackendOptions {
            threads: 1,
            max_batch: batch,
        },
    ] {
        let tract = TractEncoder::load(&path, &opts).unwrap();
        assert_eq!(tract.contract(), &contract);
        let theirs = tract.encode(&items).unwrap();
        assert_eq!(theirs.len(), batch);
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(b.vector.len(), cfg.out_dim);
            for (x, y) in a.iter().zip(b.vector.iter()) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    println!(
        "parity {:<8} input {:?} params {}: max abs diff {worst:.2e}",
        cfg.modality.as_str(),
        cfg.input,
        enc.params.count()
    );
    worst
}

#[test]
fn every_architecture_matches_tract_within_1e_4() {
    let mut vision_single_frame = EncoderConfig::small(ContractModality::Vision).unwrap();
    vision_single_frame.input = vec![3, 32, 32];
    vision_single_frame.patch = vec![8, 8];
    let mut configs: Vec<EncoderConfig> = ContractModality::SENSORS
        .into_iter()
        .filter_map(EncoderConfig::small)
        .collect();
    configs.push(vision_single_frame);
    // The conv stem (clip frames folded into channels, two stride-2 layers).
    let mut vision_conv = EncoderConfig::small(ContractModality::Vision).unwrap();
    vision_conv.input = vec![3, 2, 32, 32];
    vision_conv.conv_stem = vec![8, 16];
    let mut depth_conv = EncoderConfig::small(ContractModality::Depth).unwrap();
    depth_conv.input = vec![1, 32, 32];
    depth_conv.conv_stem = vec![8];
    // Depth and thermal clips [1, 2, H, W]: tubelet patches, and the conv stem.
    let mut depth_clip = EncoderConfig::small(ContractModality::Depth).unwrap();
    depth_clip.input = vec![1, 2, 32, 32];
    depth_clip.patch = vec![2, 8, 8];
    let mut thermal_clip_conv = EncoderConfig::small(ContractModality::Thermal).unwrap();
    thermal_clip_conv.input = vec![1, 2, 32, 32];
    thermal_clip_conv.patch = vec![2, 8, 8];
    thermal_clip_conv.conv_stem = vec![8, 16];
    // A 3-frame depth clip (t - 1 s, t - 0.5 s, t) through the conv stem,
    // with the clip in its contract.
    let mut depth_clip3 = EncoderConfig::small(ContractModality::Depth).unwrap();
    depth_clip3.input = vec![1, 3, 32, 32];
    depth_clip3.patch = vec![3, 8, 8];
    depth_clip3.conv_stem = vec![8, 16];
    depth_clip3.preprocess = Some(serde_json::json!({ "clip_s": 0.5 }));
    let c = depth_clip3.contract("s", "", "");
    assert_eq!((c.preprocess.frames(), c.preprocess.clip_s()), (3, 0.5));
    c.validate().unwrap();
    configs.extend([
        vision_conv,
        depth_conv,
        depth_clip,
        thermal_clip_conv,
        depth_clip3,
    ]);
    for cfg in &configs {
        let d = parity(cfg);
        assert!(d <= 1e-4, "{}: max abs diff {d}", cfg.modality.as_str());
    }
}

#[test]
fn a_contract_that_does_not_fit_the_encoder_is_refused() {
    let cfg = EncoderConfig::small(ContractModality::Depth).unwrap();
    let enc = Encoder::new(&cfg, &mut Rng::new(1), &Device::Cpu).unwrap();
    let mut other = cfg.clone();
    other.input = vec![1, 32, 32];
    let e = write_onnx(&enc, &other.contract("s", "", ""), &dir().join("bad.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not describe this encoder"), "{e}");
}
