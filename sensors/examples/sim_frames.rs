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

fn arg<T: std::str::FromStr>(a: &[String], i: usize, name: &str) -> Result<T, String> {
    a[i].parse()
        .map_err(|_| format!("sim_frames: {name} must be a number, got {:?}", a[i]))
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: sim_frames SEED SECONDS SIZE FPS OUT_DIR");
        std::process::exit(2);
    }
    let (seed, secs, size, fps): (u64, f64, u32, f64) = (
        arg(&a, 1, "SEED")?,
        arg(&a, 2, "SECONDS")?,
        arg(&a, 3, "SIZE")?,
        arg(&a, 4, "FPS")?,
    );
    let out = std::path::PathBuf::from(&a[5]);
    let io = |e: std::io::Error| format!("sim_frames: {}: {e}", out.display());
    std::fs::create_dir_all(&out).map_err(io)?;
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
    let mut w = SimWorld::new(cfg).map_err(|e| e.to_string())?;
    let spans = w.truth_until((secs * 1e9) as u64);
    let create = |name: &str| std::fs::File::create(out.join(name)).map(std::io::BufWriter::new);
    let (mut idx, mut raw) = (
        create("index.tsv").map_err(io)?,
        create("camera.u8").map_err(io)?,
    );
    let mut s = Sample::empty(Modality::Vision);
    let (mut n, mut k) = (0u64, 0usize);
    loop {
        let (m, t) = w.peek();
        if t.mono_ns as f64 > secs * 1e9 {
            break;
        }
        w.next_into(&mut s);
        if m != Modality::Vision {
            continue;
        }
        // Spans are consecutive and frames come in time order: advance a cursor.
        let t = s.t.mono_ns;
        while k < spans.len() && spans[k].end_ns <= t {
            k += 1;
        }
        let (Some(span), Payload::Frame(f)) = (spans.get(k), &s.payload) else {
            continue;
        };
        raw.write_all(&f.data).map_err(io)?;
        let ids: Vec<&str> = span.situations.iter().map(|s| s.id()).collect();
        writeln!(idx, "{n}\t{t}\t{}\t{}", ids.join("+"), span.start_ns).map_err(io)?;
        n += 1;
    }
    idx.flush().map_err(io)?;
    raw.flush().map_err(io)
}
