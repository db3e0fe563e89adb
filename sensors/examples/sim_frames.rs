//! Dumps the simulated camera's frames with their ground truth, for probing
//! what an image model can read from the sim outside the trainer.
//!
//! `cargo run --release -p edgebind-sensors --example sim_frames -- SEED SECONDS SIZE FPS OUT_DIR`
//! writes `OUT_DIR/camera.u8` (SIZE x SIZE RGB8 frames back to back) and
//! `OUT_DIR/index.tsv` (frame, t_ns, active situations joined by `+`).
use edgebind_sensors::modality::Modality;
use edgebind_sensors::sample::{Payload, Sample};
use edgebind_sensors::sim::{FrameStreamConfig, SimConfig, SimWorld};
use std::io::Write;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: sim_frames SEED SECONDS SIZE FPS OUT_DIR");
        std::process::exit(2);
    }
    let seed: u64 = a[1].parse().expect("SEED");
    let secs: f64 = a[2].parse().expect("SECONDS");
    let size: u32 = a[3].parse().expect("SIZE");
    let fps: f64 = a[4].parse().expect("FPS");
    let out = std::path::PathBuf::from(&a[5]);
    std::fs::create_dir_all(&out).unwrap();
    let slow = FrameStreamConfig {
        width: 8,
        height: 8,
        fps: 1.0,
    };
    let cfg = SimConfig {
        seed,
        camera: FrameStreamConfig {
            width: size,
            height: size,
            fps,
        },
        depth: slow,
        thermal: slow,
        audio_rate: 8000,
        audio_chunk_ms: 1000,
        imu_rate: 10.0,
    };
    let mut w = SimWorld::new(cfg).unwrap();
    let spans = w.truth_until((secs * 1e9) as u64);
    let mut idx = std::io::BufWriter::new(std::fs::File::create(out.join("index.tsv")).unwrap());
    let mut raw = std::io::BufWriter::new(std::fs::File::create(out.join("camera.u8")).unwrap());
    let mut s = Sample::empty(Modality::Vision);
    let mut n = 0u64;
    loop {
        let (m, t) = w.peek();
        if t.mono_ns as f64 > secs * 1e9 {
            break;
        }
        w.next_into(&mut s);
        if m != Modality::Vision {
            continue;
        }
        let t = s.t.mono_ns;
        let Some(span) = spans.iter().find(|sp| sp.start_ns <= t && t < sp.end_ns) else {
            continue;
        };
        if let Payload::Frame(f) = &s.payload {
            raw.write_all(&f.data).unwrap();
            let ids: Vec<&str> = span.situations.iter().map(|s| s.id()).collect();
            writeln!(idx, "{n}\t{t}\t{}\t{}", ids.join("+"), span.start_ns).unwrap();
            n += 1;
        }
    }
}
