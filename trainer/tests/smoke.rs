//! Smoke training: a tiny encoder learns, with InfoNCE and AdamW, to map
//! synthetic inputs to their partners in a fixed random embedding table (the
//! stand-in for a frozen anchor), and its loss falls by a clear margin.
//! Checkpoint and resume continue the run exactly.

use candle_core::{Device, Tensor};
use edgebind_models::contract::ContractModality;
use edgebind_trainer::loss::EdgeLoss;
use edgebind_trainer::model::{EncoderConfig, l2_normalize};
use edgebind_trainer::optim::OptimConfig;
use edgebind_trainer::params::{Rng, randn};
use edgebind_trainer::student::Student;

/// ImageBind's one-hot InfoNCE at temperature 0.1.
const HARD_0_1: EdgeLoss = EdgeLoss::info_nce(0.1);

const ITEMS: usize = 64;
const BATCH: usize = 16;

fn tiny() -> EncoderConfig {
    let mut c = EncoderConfig::small(ContractModality::Imu).unwrap();
    c.input = vec![6, 64];
    c.dim = 32;
    c.depth = 2;
    c.heads = 2;
    c.out_dim = 16;
    c.drop_path = 0.1;
    c
}

fn optim() -> OptimConfig {
    OptimConfig {
        lr: 3e-3,
        min_lr: 1e-4,
        warmup_steps: 5,
        ..Default::default()
    }
}

/// Inputs and their partner embeddings (unit rows).
fn data(dev: &Device) -> (Tensor, Tensor) {
    let mut rng = Rng::new(99);
    let x = randn(&mut rng, &[ITEMS, 6, 64], dev).unwrap();
    let e = l2_normalize(&randn(&mut rng, &[ITEMS, 16], dev).unwrap()).unwrap();
    (x, e)
}

fn batch(rng: &mut Rng, x: &Tensor, e: &Tensor) -> (Tensor, Tensor) {
    // Distinct indices: a partial Fisher-Yates shuffle.
    let mut idx: Vec<u32> = (0..ITEMS as u32).collect();
    for i in 0..BATCH {
        let j = i + (rng.next_u64() as usize) % (ITEMS - i);
        idx.swap(i, j);
    }
    let idx = Tensor::new(&idx[..BATCH], x.device()).unwrap();
    (
        x.index_select(&idx, 0).unwrap(),
        e.index_select(&idx, 0).unwrap(),
    )
}

#[test]
fn loss_falls() {
    let dev = Device::Cpu;
    let (x, e) = data(&dev);
    let steps = 60;
    let mut s = Student::new(&tiny(), optim(), steps, 3, &dev).unwrap();
    let mut data_rng = Rng::new(4);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (bx, be) = batch(&mut data_rng, &x, &e);
        losses.push(s.step(&bx, &be, &HARD_0_1).unwrap().loss);
    }
    let first = losses[..5].iter().sum::<f64>() / 5.0;
    let last = losses[steps - 5..].iter().sum::<f64>() / 5.0;
    println!(
        "smoke: {steps} steps of batch {BATCH}, loss first-5 mean {first:.3}, last-5 mean {last:.3}"
    );
    println!(
        "smoke: losses {:?}",
        losses
            .iter()
            .map(|l| (l * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    assert!(
        first > 2.0,
        "a fresh encoder starts at or above chance, ln({BATCH}) = 2.77: {first}"
    );
    assert!(
        last < 0.5 * first,
        "loss did not fall by half: {first} -> {last}"
    );
}

#[test]
fn resume_continues_exactly() {
    let dev = Device::Cpu;
    let (x, e) = data(&dev);
    let run = |s: &mut Student, rng: &mut Rng, n: usize| {
        for _ in 0..n {
            let (bx, be) = batch(rng, &x, &e);
            s.step(&bx, &be, &HARD_0_1).unwrap();
        }
    };
    let mut straight = Student::new(&tiny(), optim(), 8, 3, &dev).unwrap();
    let mut r1 = Rng::new(4);
    run(&mut straight, &mut r1, 8);

    let mut first = Student::new(&tiny(), optim(), 8, 3, &dev).unwrap();
    let mut r2 = Rng::new(4);
    run(&mut first, &mut r2, 4);
    let path = std::env::temp_dir().join(format!(
        "edgebind-train-ckpt-{}/s.safetensors",
        std::process::id()
    ));
    first.save(&path).unwrap();
    drop(first);
    let mut resumed = Student::resume(&path, optim(), &dev).unwrap();
    assert_eq!(resumed.opt.step, 4);
    run(&mut resumed, &mut r2, 4);

    for (a, b) in straight
        .encoder
        .params
        .iter()
        .zip(resumed.encoder.params.iter())
    {
        assert_eq!(a.name, b.name);
        let d = (a.var.as_tensor() - b.var.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 1e-6, "{}: {d}", a.name);
    }

    // A checkpoint of another architecture is refused, naming the difference.
    let mut other = tiny();
    other.depth = 3;
    let mut s = Student::new(&other, optim(), 8, 3, &dev).unwrap();
    let e = edgebind_trainer::checkpoint::resume(&path, &s.encoder, &mut s.opt, &mut s.rng)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("was written for encoder") && e.contains("\"depth\":2"),
        "{e}"
    );
}
