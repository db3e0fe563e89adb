//! The daemon on a replayed recording, in process, with its embedded broker:
//!
//! * throughput: the replay at `fast` pace (lossless; windows wait for the
//!   encoder), moments per second;
//! * latency: the same recording at `real_time` pace, window emitted -> moment
//!   matched (every moment) and window emitted -> PUBACK of the events it
//!   caused, p50 and p99;
//! * peak RSS of the process (VmHWM).
//!
//! `cargo bench -p edgebind --bench daemon` (`-- --seconds N` for a longer
//! real-time phase). Needs the text tower (scripts/fetch-models.sh).

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgebind::daemon::{RunOptions, run};
use edgebind::slideshow::{Slide, Slideshow};

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("..")
}

fn slide(name: Option<(&str, u32, u32)>, secs: f64) -> Slide {
    Slide {
        file: name.map(|(n, _, _)| root().join(format!("models/fixtures/vision/{n}.rgb8"))),
        width: name.map_or(0, |(_, w, _)| w),
        height: name.map_or(0, |(_, _, h)| h),
        seconds: secs,
        label: name.map(|(n, _, _)| n.to_string()),
    }
}

fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn config(dir: &Path, rec: &Path, pace: &str, port: u16) -> edgebind::config::Config {
    let text = format!(
        r#"device_id = "bench"
[rig]
kind = "replay"
[rig.replay]
path = "{rec}"
pace = "{pace}"
[windows]
vision = {{ length_s = 0.5, hop_s = 0.5 }}
[encoders.vision]
model = "{model}"
[broker]
embedded_port = {port}
[state]
dir = "{state}"
[[concept]]
name = "cat"
text = "a cat"
watch = "vision"
enter = 0.35
exit = 0.25
[[concept]]
name = "coffee"
text = "a cup of coffee"
watch = "vision"
enter = 0.3
exit = 0.2
"#,
        rec = rec.display(),
        model = root()
            .join("models/zoo/image_anchor_mobilenetv2.onnx")
            .display(),
        state = dir.join(format!("state-{pace}")).display(),
    );
    edgebind::config::parse(&text, dir).expect("bench config")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(24.0);
    let dir = std::env::temp_dir().join(format!("edgebind-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Cat, grey, coffee, grey, repeated: an event start and end every 3 s.
    let mut slides = Vec::new();
    let mut t = 0.0;
    while t < seconds {
        slides.push(slide(Some(("chelsea", 451, 300)), 3.0));
        slides.push(slide(None, 3.0));
        slides.push(slide(Some(("coffee", 600, 400)), 3.0));
        slides.push(slide(None, 3.0));
        t += 12.0;
    }
    let rec = dir.join("bench.mcap");
    let sched = Slideshow { fps: 15.0, slides }.record(&rec).unwrap();
    let span = sched.last().unwrap().end_ns as f64 / 1e9;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = RunOptions {
        exit_at_end: true,
        drain_timeout: Duration::from_secs(10),
        summary: false,
    };
    println!(
        "recording: {span:.0} s of 15 fps camera, one vision window per 0.5 s, image anchor on tract (1 thread)"
    );
    let fast = run(config(&dir, &rec, "fast", port), opts.clone()).expect("fast run");
    println!(
        "throughput (fast pace): {} moments in {:.2} s = {:.1} moments/s ({:.1}x real time); {} event messages, {} acknowledged",
        fast.moments,
        fast.seconds,
        fast.moments as f64 / fast.seconds,
        span / fast.seconds,
        fast.events,
        fast.events_published
    );
    // The embedded broker of the first run keeps its port; the second run uses a new one.
    let port2 = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let live = run(config(&dir, &rec, "real_time", port2), opts).expect("real-time run");
    let l = &live.status["latency"];
    let enc = &live.status["encoders"]["vision"]["latency"];
    println!(
        "latency (real-time pace, {} moments, {} events): window -> embedding p50 {:.1} ms p99 {:.1} ms; window -> match p50 {:.1} ms p99 {:.1} ms; window -> PUBACK p50 {:.1} ms p99 {:.1} ms ({} events)",
        live.moments,
        live.events,
        enc["p50_ms"].as_f64().unwrap_or(f64::NAN),
        enc["p99_ms"].as_f64().unwrap_or(f64::NAN),
        l["window_to_match"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
        l["window_to_match"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
        l["window_to_puback"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
        l["window_to_puback"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
        l["window_to_puback"]["count"],
    );
    println!(
        "dropped windows (real time): {}; peak RSS (VmHWM) {:.1} MiB",
        live.status["encoders"]["vision"]["queue_dropped"],
        vm_hwm_mib()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
