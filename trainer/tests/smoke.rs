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

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn weights(s: &Student) -> Vec<Tensor> {
    s.encoder
        .params
        .iter()
        .map(|p| p.var.as_tensor().copy().unwrap())
        .collect()
}

/// The moving average follows `w_ema <- d w_ema + (1 - d) w` with the warm-up
/// `d = min(decay, (1 + step) / (10 + step))`, never changes training, swaps
/// in and out exactly, and survives a checkpoint.
#[test]
fn ema_averages_without_touching_training() {
    let dev = Device::Cpu;
    let (x, e) = data(&dev);
    let steps = 6;
    let mut plain = Student::new(&tiny(), optim(), steps, 3, &dev).unwrap();
    let mut avg = Student::new(&tiny(), optim(), steps, 3, &dev).unwrap();
    avg.set_ema(Some(0.5)).unwrap();
    let mut want = weights(&avg);
    let (mut r1, mut r2) = (Rng::new(4), Rng::new(4));
    for step in 1..=steps {
        let (bx, be) = batch(&mut r1, &x, &e);
        let lp = plain.step(&bx, &be, &HARD_0_1).unwrap().loss;
        let (bx, be) = batch(&mut r2, &x, &e);
        let la = avg.step(&bx, &be, &HARD_0_1).unwrap().loss;
        assert_eq!(lp, la, "step {step}: the average changed training");
        let d = 0.5f64.min((1.0 + step as f64) / (10.0 + step as f64));
        assert_eq!(avg.ema.as_ref().unwrap().decay_at(step), d);
        for (w, p) in want.iter_mut().zip(avg.encoder.params.iter()) {
            *w = ((&*w * d).unwrap() + (p.var.as_tensor() * (1.0 - d)).unwrap()).unwrap();
        }
    }
    let raw = weights(&avg);
    for (a, b) in raw.iter().zip(weights(&plain)) {
        assert_eq!(max_diff(a, &b), 0.0);
    }
    // The warm-up: (1 + 1) / 11 = 0.18 at step 1, then 0.25, ... up to 0.5.
    avg.swap_ema().unwrap();
    let mut moved = 0.0f32;
    for ((w, p), r) in want.iter().zip(avg.encoder.params.iter()).zip(&raw) {
        assert!(max_diff(w, p.var.as_tensor()) < 1e-6, "{}", p.name);
        moved = moved.max(max_diff(w, r));
    }
    assert!(moved > 1e-4, "the average equals the last weights: {moved}");
    avg.swap_ema().unwrap();
    for (r, p) in raw.iter().zip(avg.encoder.params.iter()) {
        assert_eq!(max_diff(r, p.var.as_tensor()), 0.0, "{}", p.name);
    }

    // Checkpoint: the shadow and its decay come back.
    let path = std::env::temp_dir().join(format!(
        "edgebind-train-ema-{}/s.safetensors",
        std::process::id()
    ));
    avg.save(&path).unwrap();
    let back = Student::resume(&path, optim(), &dev).unwrap();
    let ema = back.ema.as_ref().expect("the checkpoint keeps the average");
    assert_eq!(ema.decay, 0.5);
    for (a, b) in ema.shadow.iter().zip(&avg.ema.as_ref().unwrap().shadow) {
        assert_eq!(max_diff(a, b), 0.0);
    }
    // Without one, resume has none.
    plain.save(&path).unwrap();
    assert!(Student::resume(&path, optim(), &dev).unwrap().ema.is_none());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
