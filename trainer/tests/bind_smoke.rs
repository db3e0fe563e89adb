//! Smoke training on a real (short) recording of the simulated rig: every
//! edge's loss falls, the exported encoders load through the models crate,
//! the anchor cache is reused, and a stopped run resumed from its checkpoint
//! ends bit-identical to an uninterrupted one. Needs the text tower
//! (scripts/fetch-models.sh).

use std::path::{Path, PathBuf};

use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder as _};
use edgebind_models::contract::ContractModality;
use edgebind_trainer::bind::{BindOptions, EdgeLog, bind};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgebind-bind-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

mod common;

fn record(path: &Path, seconds: u64, seed: u64) {
    common::record_small(path, seconds, seed, [15.0, 15.0, 9.0]);
}

const PLAN: &str = r#"
seed = 3
space = "minilm-l6-v2-text"
out = "OUT"
[frozen.text]
model = "text"
[[edge]]
learner = "vision"
anchor = "text"
augment = ["random-resized-crop", "horizontal-flip", "color-jitter"]
[[edge]]
learner = "imu"
anchor = "vision"
augment = ["noise", "time-shift"]
[[edge]]
learner = "audio"
anchor = "vision"
augment = ["gain", "spec-mask"]
ema = 0.9
[encoders.vision]
input = [3, 2, 32, 32]
patch = [2, 8, 8]
dim = 32
depth = 1
heads = 2
preprocess = { clip_s = 0.5 }
[encoders.imu]
patch = [50]
dim = 32
depth = 1
heads = 2
[encoders.audio]
input = [1, 32, 204]
patch = [16, 12]
dim = 32
depth = 1
heads = 2
[train]
batch = 16
steps = 40
checkpoint_every = 10
eval_every = 10
paired_baseline = true
[optim]
lr = 2e-3
warmup_steps = 5
[data]
recordings = ["sim.mcap"]
cache = "cache"
captions = "captions.toml"
holdout = 0.2
segment_s = 20.0
"#;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn loss_falls(l: &EdgeLog) {
    let losses: Vec<f64> = l.train.iter().map(|p| p.loss).collect();
    assert!(losses.len() >= 6, "{}: {losses:?}", l.name);
    let (first, last) = (mean(&losses[..3]), mean(&losses[losses.len() - 3..]));
    assert!(
        last < first,
        "{}: loss did not fall: first {first:.3}, last {last:.3} ({losses:?})",
        l.name
    );
}

#[test]
fn bind_trains_exports_caches_and_resumes_exactly() {
    let d = dir();
    record(&d.join("sim.mcap"), 150, 11);
    std::fs::copy(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("../configs/captions-train.toml"),
        d.join("captions.toml"),
    )
    .unwrap();
    std::fs::write(d.join("a.toml"), PLAN.replace("OUT", "a")).unwrap();
    let quiet = BindOptions {
        quiet: true,
        ..Default::default()
    };
    let logs = bind(&d.join("a.toml"), &quiet).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["vision", "imu", "audio", "paired/imu", "paired/audio"]
    );
    for l in &logs {
        assert!(l.complete && l.steps == 40, "{l:?}");
        assert!(l.val_pairs > 0 && l.train_pairs > l.val_pairs, "{l:?}");
        assert!(!l.val.is_empty());
        loss_falls(l);
    }
    // Exports load like any encoder, with what they were bound against.
    for (file, against) in [
        ("a/vision.onnx", "text (text)"),
        ("a/imu.onnx", "vision"),
        ("a/audio.onnx", "vision"),
        ("a/paired/imu.onnx", "text (text)"),
    ] {
        let enc = TractEncoder::load(&d.join(file), &BackendOptions::default()).unwrap();
        assert_eq!(enc.contract().trained_against, against, "{file}");
        assert_eq!(enc.contract().space, "minilm-l6-v2-text");
        assert_eq!(enc.contract().output.dim, 384);
        // The vision encoder takes a real 2-frame clip, and says so.
        let clip = enc.contract().preprocess.clip_s();
        assert_eq!(
            clip,
            if file == "a/vision.onnx" { 0.5 } else { 0.0 },
            "{file}"
        );
    }
    assert!(d.join("a/bind.json").exists() && d.join("a/vision-log.json").exists());
    // The audio edges keep a moving average of their weights: validated both
    // ways, exported as the average with the last weights beside.
    for l in &logs {
        let averaged = l.learner == "audio";
        assert_eq!(l.ema, averaged.then_some(0.9), "{}", l.name);
        assert_eq!(
            l.val_raw.len(),
            if averaged { l.val.len() } else { 0 },
            "{}",
            l.name
        );
        if averaged {
            assert_ne!(l.val.last(), l.val_raw.last(), "{}", l.name);
        }
    }
    for f in ["audio.onnx", "paired/audio.onnx"] {
        let avg = std::fs::read(d.join("a").join(f)).unwrap();
        let raw = std::fs::read(d.join("a/no-ema").join(f)).unwrap();
        assert!(avg != raw, "{f}: the average is the last weights");
        TractEncoder::load(&d.join("a/no-ema").join(f), &BackendOptions::default()).unwrap();
    }
    assert!(!d.join("a/no-ema/imu.onnx").exists());
    // Caption and vision-anchor embeddings were cached.
    let cached = std::fs::read_dir(d.join("cache")).unwrap().count();
    assert_eq!(cached, 2, "caption table + vision anchor embeddings");

    // A run stopped after 15 steps and resumed ends where the uninterrupted one did.
    std::fs::write(d.join("b.toml"), PLAN.replace("OUT", "b")).unwrap();
    let stopped = bind(
        &d.join("b.toml"),
        &BindOptions {
            quiet: true,
            stop_after: Some(15),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(stopped.len(), 1);
    assert!(!stopped[0].complete);
    assert!(!d.join("b/vision.onnx").exists());
    assert!(d.join("b/checkpoints/vision.safetensors").exists());
    let resume = || {
        bind(
            &d.join("b.toml"),
            &BindOptions {
                quiet: true,
                resume: true,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let resumed = resume();
    assert_eq!(resumed.len(), 5);
    for f in ["vision.onnx", "imu.onnx", "audio.onnx", "paired/audio.onnx"] {
        let a = std::fs::read(d.join("a").join(f)).unwrap();
        let b = std::fs::read(d.join("b").join(f)).unwrap();
        assert!(
            a == b,
            "{f}: resumed run differs from the uninterrupted one"
        );
    }
    // Everything finished: a resume only skips.
    let again = resume();
    assert!(again.iter().all(|l| l.complete));
    // (`seconds` comes back from the JSON log: serde_json's float parsing
    // may differ in the last bit, so compare to far below any rerun's time.)
    assert!(
        (again[0].seconds - resumed[0].seconds).abs() < 1e-9,
        "a finished edge was trained again: {} s vs {} s",
        again[0].seconds,
        resumed[0].seconds
    );

    // `--only`: the anchor first, then the rest in two disjoint subsets (as
    // two processes would): the same files as one run.
    std::fs::write(d.join("c.toml"), PLAN.replace("OUT", "c")).unwrap();
    let only = |names: &[&str]| {
        bind(
            &d.join("c.toml"),
            &BindOptions {
                quiet: true,
                only: names.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            },
        )
    };
    assert_eq!(only(&["vision"]).unwrap().len(), 1);
    assert_eq!(only(&["audio", "paired/imu"]).unwrap().len(), 2);
    assert_eq!(only(&["imu", "paired/audio"]).unwrap().len(), 2);
    for f in [
        "vision.onnx",
        "imu.onnx",
        "audio.onnx",
        "paired/audio.onnx",
        "paired/imu.onnx",
    ] {
        let a = std::fs::read(d.join("a").join(f)).unwrap();
        let c = std::fs::read(d.join("c").join(f)).unwrap();
        assert!(a == c, "{f}: an --only run differs from the whole plan's");
    }
    assert!(d.join("c/bind-audio+paired-imu.json").exists());

    // An edge with its own recordings (here the IMU's: the plan's and a
    // second one) trains on more pairs; the other edges are trained on
    // exactly what they were before, byte for byte.
    record(&d.join("sim2.mcap"), 60, 12);
    let own = PLAN.replace("OUT", "e").replace(
        "augment = [\"noise\", \"time-shift\"]",
        "augment = [\"noise\", \"time-shift\"]\nrecordings = [\"sim.mcap\", \"sim2.mcap\"]",
    );
    std::fs::write(d.join("e.toml"), own).unwrap();
    let e_logs = bind(
        &d.join("e.toml"),
        &BindOptions {
            quiet: true,
            only: ["vision", "imu", "audio", "paired/imu"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
    let pairs = |logs: &[EdgeLog], name: &str| {
        let l = logs.iter().find(|l| l.name == name).unwrap();
        (l.train_pairs, l.recordings.len())
    };
    for name in ["imu", "paired/imu"] {
        let (before, after) = (pairs(&logs, name), pairs(&e_logs, name));
        assert_eq!((before.1, after.1), (1, 2), "{name}");
        assert!(after.0 > before.0 + 20, "{name}: {before:?} -> {after:?}");
    }
    assert_eq!(pairs(&e_logs, "audio"), pairs(&logs, "audio"));
    for (f, same) in [
        ("vision.onnx", true),
        ("audio.onnx", true),
        ("imu.onnx", false),
    ] {
        let a = std::fs::read(d.join("a").join(f)).unwrap();
        let e = std::fs::read(d.join("e").join(f)).unwrap();
        assert_eq!(a == e, same, "{f}");
    }
    // The supervised ceiling trains on the situation labels into
    // supervised/ (no anchor needed: vision is not trained here), says so in
    // its contract, and leaves the other edges' seeds alone.
    let sup = PLAN.replace("OUT", "s").replace(
        "paired_baseline = true",
        "paired_baseline = true\nsupervised_ceiling = true",
    );
    std::fs::write(d.join("s.toml"), sup).unwrap();
    let s_logs = bind(
        &d.join("s.toml"),
        &BindOptions {
            quiet: true,
            only: ["supervised/imu", "paired/imu"].map(String::from).to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = s_logs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["paired/imu", "supervised/imu"]);
    let sl = &s_logs[1];
    assert_eq!(sl.anchor, "labels");
    assert!(sl.complete && sl.val_pairs > 0, "{sl:?}");
    loss_falls(sl);
    let top1 = sl.val.last().and_then(|p| p.top1).unwrap();
    assert!((0.0..=1.0).contains(&top1), "{top1}");
    let enc =
        TractEncoder::load(&d.join("s/supervised/imu.onnx"), &BackendOptions::default()).unwrap();
    assert!(
        enc.contract()
            .trained_against
            .starts_with("situation labels (supervised ceiling: "),
        "{}",
        enc.contract().trained_against
    );
    assert_eq!(enc.contract().output.dim, 384);
    assert!(d.join("s/supervised-imu-loss.png").exists());
    let paired_a = std::fs::read(d.join("a/paired/imu.onnx")).unwrap();
    assert!(paired_a == std::fs::read(d.join("s/paired/imu.onnx")).unwrap());
    assert!(paired_a != std::fs::read(d.join("s/supervised/imu.onnx")).unwrap());

    let e = only(&["lidar"]).unwrap_err().to_string();
    assert!(
        e.contains("--only lidar") && e.contains("vision, imu, audio, paired/imu, paired/audio"),
        "{e}"
    );
    centring_the_export_subtracts_its_mean(&d);
    std::fs::remove_dir_all(&d).ok();
}

/// `center` on a trained export and its recording: the record counts the
/// recording's moments, and every output of the centred file is the unit
/// difference of the original's output and their mean, computed here
/// again from the original.
fn centring_the_export_subtracts_its_mean(d: &Path) {
    let raw_path = d.join("a/imu.onnx");
    let rec = [d.join("sim.mcap")];
    let c =
        edgebind_trainer::center::center_file(&raw_path, &rec, &d.join("c/imu.onnx"), |_, _, _| {})
            .unwrap();
    assert_eq!(c.record.recordings, ["sim.mcap"]);
    let raw = TractEncoder::load(&raw_path, &BackendOptions::default()).unwrap();
    let cen = TractEncoder::load(&c.output, &BackendOptions::default()).unwrap();
    assert_eq!(raw.contract(), cen.contract());
    let ds = edgebind_trainer::data::load(
        &rec,
        &edgebind_trainer::data::LoadSpec {
            preprocess: [(ContractModality::Imu, raw.contract().preprocess.clone())].into(),
            windows: edgebind_sensors::window::WindowConfig::default(),
            segment_s: 60.0,
            holdout: 0.0,
        },
        |_, _, _| {},
    )
    .unwrap();
    let rows: Vec<usize> = (0..ds.moments.len()).collect();
    assert_eq!(c.record.moments, rows.len());
    let store = &ds.inputs[&ContractModality::Imu];
    let (y, z) = (
        store.embed(&raw, &rows).unwrap(),
        store.embed(&cen, &rows).unwrap(),
    );
    let dim = y[0].len();
    let mu: Vec<f32> = (0..dim)
        .map(|k| y.iter().map(|v| v[k]).sum::<f32>() / y.len() as f32)
        .collect();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(&mu) - c.record.mean_norm).abs() < 1e-4);
    assert!(c.record.mean_norm > 0.05, "|mu| {}", c.record.mean_norm);
    let mut worst = 0f32;
    for (yi, zi) in y.iter().zip(&z) {
        let diff: Vec<f32> = yi.iter().zip(&mu).map(|(a, b)| a - b).collect();
        let n = norm(&diff);
        for (zk, dk) in zi.iter().zip(&diff) {
            worst = worst.max((zk - dk / n).abs());
        }
    }
    assert!(worst < 1e-4, "centred output off by {worst}");
    let err =
        edgebind_trainer::center::center_file(&c.output, &rec, &d.join("cc.onnx"), |_, _, _| {})
            .unwrap_err()
            .to_string();
    assert!(err.contains("already centred"), "{err}");
}

#[test]
fn plans_that_cannot_train_say_why() {
    let d = dir().join("bad");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("captions.toml"), "dog = [\"a dog\"]\n").unwrap();
    std::fs::write(d.join("p.toml"), PLAN.replace("OUT", "o")).unwrap();
    // No recording.
    let e = bind(&d.join("p.toml"), &BindOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sim.mcap"), "{e}");
    // A recording whose situations have no captions.
    record(&d.join("sim.mcap"), 40, 11);
    let e = format!(
        "{:#}",
        bind(&d.join("p.toml"), &BindOptions::default()).unwrap_err()
    );
    assert!(e.contains("no caption for situation"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}
