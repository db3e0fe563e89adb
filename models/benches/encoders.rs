//! `cargo bench -p edgebind-models --bench encoders`: encoder latency and
//! preprocessing cost on this machine, printed as figures (median of runs).
//!
//! * image anchor (MobileNetV2 -> text space, `models/zoo/`) through tract:
//!   ms per image at batch 1 and 8, on 1 and 2 threads, with edgebind's
//!   kernels (the backend's plan) and with tract's stock kernels; with
//!   `--features tensorrt` and `ORT_DYLIB_PATH`, also tract and ONNX Runtime
//!   alternating run by run in this process (1 thread);
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// With `--features tensorrt` and `ORT_DYLIB_PATH` naming a
/// `libonnxruntime.so` (the PyPI wheel's CPU build: the tensorrt backend then
/// runs ONNX Runtime's CPU kernels): the image anchor on tract and on ONNX
/// Runtime in this process, alternating run by run on the same input, so
/// both see the same machine load (on this VM the speed of both drifts by
/// 10-20% from minute to minute). Prints the medians and the median of the
/// per-round ratios; `image_anchor_ab` / `image_anchor_ab_ort` in the JSON.
#[cfg(feature = "tensorrt")]
fn interleaved_with_ort(
    zoo: &Path,
    img: &Tensor,
    runs: usize,
    figures: &mut Vec<(&'static str, usize, usize, f64)>,
) {
    use edgebind_models::backend::tensorrt::{TensorRtEncoder, TensorRtOptions};
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        println!("interleaved tract / ONNX Runtime skipped: ORT_DYLIB_PATH not set");
        return;
    }
    let rounds = runs * 3;
    // One thread only: with 2, each side's pool threads spin after a run
    // (ONNX Runtime's intra-op workers, rayon's) and take the cores from the
    // other side's next run (tract measured 9.9-15.3 ms at 2 threads
    // interleaved vs 6.0-7.9 alone), so 2-thread figures stay sequential.
    let threads = 1;
    let opts = BackendOptions {
        threads,
        max_batch: 8,
    };
    let tract = TractEncoder::load(zoo, &opts).unwrap();
    let ort = match TensorRtEncoder::load(zoo, &opts, &TensorRtOptions::default()) {
        Ok(e) => e,
        Err(e) => {
            println!("interleaved tract / ONNX Runtime skipped: {e}");
            return;
        }
    };
    for batch in [1, 8] {
        let items = vec![img.clone(); batch];
        let time = |enc: &dyn Encoder| {
            let t = Instant::now();
            black_box(enc.encode(&items).unwrap());
            t.elapsed().as_secs_f64() * 1e3
        };
        time(&tract);
        time(&ort);
        let (mut a, mut b, mut r) = (vec![], vec![], vec![]);
        for round in 0..rounds {
            // Alternate which goes first.
            let (x, y) = if round % 2 == 0 {
                let x = time(&tract);
                (x, time(&ort))
            } else {
                let y = time(&ort);
                (time(&tract), y)
            };
            a.push(x);
            b.push(y);
            r.push(x / y);
        }
        let (ma, mb, mr) = (median(a), median(b), median(r));
        println!(
            "image anchor, interleaved in one process ({rounds} rounds), {threads} thread(s), batch {batch}: tract {:.2} ms, ONNX Runtime {:.2} ms per image; ratio of medians {:.2}, median per-round ratio {mr:.2}",
            ma / batch as f64,
            mb / batch as f64,
            ma / mb
        );
        figures.push(("image_anchor_ab", threads, batch, ma));
        figures.push(("image_anchor_ab_ort", threads, batch, mb));
    }
}

fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        3
    } else {
        9
    };
    println!("edgebind-models bench (median of {runs} runs)");
    // (case, threads, batch, ms for the whole call) for EDGEBIND_BENCH_JSON.
    let mut figures: Vec<(&'static str, usize, usize, f64)> = Vec::new();
    let zoo =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("zoo/image_anchor_mobilenetv2.onnx");
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
    #[cfg(feature = "tensorrt")]
    interleaved_with_ort(&zoo, &img, runs, &mut figures);
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
