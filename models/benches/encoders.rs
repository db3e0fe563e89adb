//! `cargo bench -p edgebind-models --bench encoders`: encoder latency and
//! preprocessing cost on this machine, printed as figures (median of runs).
//!
//! * image anchor (MobileNetV2 -> text space, `models/zoo/`) through tract:
//!   ms per image at batch 1 and 8, on 1 and 2 threads, with edgebind's
//!   depthwise kernel (the backend's plan) and with tract's stock kernels;
//! * text tower (all-MiniLM-L6-v2, needs `scripts/fetch-models.sh`): ms per
//!   prompt at batch 1, 8 and 16, on 1 and 2 threads (tokenisation, the graph
//!   and mean pooling, as `TextTower::embed` runs them);
//! * preprocessing: vision (PIL-exact resize of a 640x480 frame) and audio
//!   (2 s at 44.1 kHz -> 3 clips of fbank) in ms, and the fbank alone.
//!
//! `EDGEBIND_BENCH_JSON=PATH` also writes the encoder and fbank figures as
//! JSON (what `scripts/bench-vs-ort.sh` compares with ONNX Runtime and
//! torchaudio, `models/scripts/bench_reference.py`).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::preprocess::Tensor;
use edgebind_models::preprocess::audio::{AudioParams, AudioPreprocessor};
use edgebind_models::preprocess::fbank::{Fbank, FbankParams};
use edgebind_models::preprocess::vision::{VisionParams, preprocess_rgb8};
use edgebind_models::text::{TextTower, default_dir};
use serde_json::json;
use tract_linalg::multithread::{Executor, multithread_tract_scope};

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        3
    } else {
        9
    };
    println!("edgebind-models bench (median of {runs} runs)");
    // (case, threads, batch, ms for the whole call) for EDGEBIND_BENCH_JSON.
    let mut figures: Vec<(&str, usize, usize, f64)> = Vec::new();
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo/image_anchor_mobilenetv2.onnx");
    let img = Tensor::new(
        vec![3, 224, 224],
        (0..3 * 224 * 224)
            .map(|i| ((i % 251) as f32 / 125.0) - 1.0)
            .collect(),
    );
    // edgebind's plan (its depthwise kernel, `backend/dwconv.rs`) and tract's
    // stock plan on the same file, for the before / after.
    for (case, stock) in [("image_anchor", false), ("image_anchor_stock", true)] {
        for threads in [1, 2] {
            let opts = BackendOptions {
                threads,
                max_batch: 8,
            };
            let enc = if stock {
                TractEncoder::load_stock(&zoo, &opts)
            } else {
                TractEncoder::load(&zoo, &opts)
            }
            .unwrap();
            for batch in [1, 8] {
                let items = vec![img.clone(); batch];
                let ms = median_ms(runs, || {
                    black_box(enc.encode(&items).unwrap());
                });
                println!(
                    "image anchor (MobileNetV2 + text projection), tract{}, {threads} thread(s), batch {batch}: {:.1} ms per image",
                    if stock { " stock kernels" } else { "" },
                    ms / batch as f64
                );
                figures.push((case, threads, batch, ms));
            }
        }
    }
    match TextTower::load(&default_dir()) {
        Ok(t) => {
            let prompts: Vec<String> = (0..16)
                .map(|i| format!("a dog barking in a yard number {i}"))
                .collect();
            let refs: Vec<&str> = prompts.iter().map(|s| s.as_str()).collect();
            let tokens = t.token_ids(refs[0]).unwrap().len();
            for threads in [1, 2] {
                let executor = (threads > 1).then(|| Executor::multithread(threads));
                for batch in [1, 8, 16] {
                    let ms = median_ms(runs, || {
                        let run = || black_box(t.embed(&refs[..batch]).unwrap());
                        match &executor {
                            Some(ex) => multithread_tract_scope(ex.clone(), run),
                            None => run(),
                        };
                    });
                    println!(
                        "text tower (all-MiniLM-L6-v2), tract, {threads} thread(s), batch {batch} ({tokens} tokens): {:.2} ms per prompt",
                        ms / batch as f64
                    );
                    figures.push(("text_tower", threads, batch, ms));
                }
            }
        }
        Err(e) => println!("text tower skipped: {e}"),
    }
    let frame: Vec<u8> = (0..640 * 480 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let ms = median_ms(runs, || {
        black_box(preprocess_rgb8(&frame, 640, 480, &VisionParams::default()).unwrap());
    });
    println!(
        "vision preprocessing, 640x480 RGB -> [3, 2, 224, 224] (PIL-exact bicubic): {ms:.2} ms"
    );
    let mut audio = AudioPreprocessor::new(AudioParams::default()).unwrap();
    let wave: Vec<f32> = (0..88_200)
        .map(|i| ((i as f32) * 0.031).sin() * 0.3)
        .collect();
    let ms = median_ms(runs, || {
        black_box(audio.process(&wave, 1, 44_100).unwrap());
    });
    println!(
        "audio preprocessing, 2 s at 44.1 kHz -> resample + 3 clips x fbank [1, 128, 204]: {ms:.2} ms"
    );
    let fb = Fbank::new(FbankParams::default()).unwrap();
    let clip: Vec<f32> = (0..32_000)
        .map(|i| ((i as f32) * 0.031).sin() * 0.3)
        .collect();
    let ms = median_ms(runs, || {
        for _ in 0..3 {
            black_box(fb.compute(black_box(&clip)));
        }
    });
    println!("fbank alone, 3 clips of 2 s at 16 kHz (3 x 198 frames x 128 mel): {ms:.2} ms");
    figures.push(("fbank_3x2s", 1, 3, ms));
    if let Some(path) = std::env::var_os("EDGEBIND_BENCH_JSON") {
        let cases: Vec<_> = figures
            .iter()
            .map(|&(case, threads, batch, ms)| {
                json!({"case": case, "threads": threads, "batch": batch, "ms": ms,
                       "ms_per_item": ms / batch as f64})
            })
            .collect();
        let doc = json!({"engine": "tract", "runs": runs, "cases": cases});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        println!("figures written to {}", Path::new(&path).display());
    }
}
