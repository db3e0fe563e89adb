//! The microphone adapter through real ALSA with no sound card: the test
//! writes an `.asoundrc` defining a capture PCM made of ALSA's `file` plugin
//! (reading a raw file the test wrote) over the `null` plugin. The adapter
//! lists it, finds it by its ALSA id, opens it through cpal at 48 kHz in its
//! default config (stereo f32, so the file holds interleaved f32), and must
//! deliver contiguous 20 ms mono chunks equal, sample for sample, to the mean
//! of the two channels.
//!
//! What this cannot show: real-time pacing. The `null` plugin has no clock, so
//! ALSA delivers the file as fast as it is read (seconds of audio in
//! milliseconds); the chunk timestamps are checked for contiguity, not against
//! the wall clock. (Behind a `plug` PCM the same setup skips one period in
//! three: the `file` plugin reads its input as the clock-less `null` slave
//! advances, not as the application reads; so the test uses no `plug`.)
//!
//! ALSA reads `~/.asoundrc` once per process, so the capture runs in a child
//! process (this test binary again, the ignored test below) with `HOME` set to
//! the test's directory.

#![cfg(feature = "devices")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edgebind_sensors::adapter::{Rig, SensorState};
use edgebind_sensors::devices::list::list_devices;
use edgebind_sensors::devices::{DevicesConfig, MicConfig, ReconnectConfig, build_adapters};

const RATE: u32 = 48_000;
const SECONDS: usize = 3;

/// Left: 0.5 sin(2 pi 1000 t); right: a ramp of 0.25 steps per second.
fn signal(i: usize) -> (i16, i16) {
    let t = i as f64 / RATE as f64;
    let l = (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 32767.0).round() as i16;
    let r = ((t * 0.25).min(0.9) * 32767.0).round() as i16;
    (l, r)
}

fn setup(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let raw = dir.join("in.raw");
    let mut bytes = Vec::with_capacity(RATE as usize * SECONDS * 8);
    for i in 0..RATE as usize * SECONDS {
        let (l, r) = signal(i);
        bytes.extend_from_slice(&(l as f32 / 32768.0).to_le_bytes());
        bytes.extend_from_slice(&(r as f32 / 32768.0).to_le_bytes());
    }
    std::fs::write(&raw, bytes).unwrap();
    let rc = format!(
        r#"pcm.edgebind_test {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
    hint {{
        show on
        description "edgebind test capture (file plugin)"
    }}
}}
"#,
        raw = raw.display()
    );
    std::fs::write(dir.join(".asoundrc"), rc).unwrap();
    dir.to_path_buf()
}

#[test]
fn alsa_capture_through_the_file_plugin() {
    let dir = std::env::temp_dir().join(format!("edgebind-devices-mic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let home = setup(&dir);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_capture",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOME", &home)
        .env("EDGEBIND_MIC_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!("{text}");
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child ran no test:\n{text}");
}

#[test]
#[ignore = "run by alsa_capture_through_the_file_plugin in a child process with its own HOME"]
fn child_capture() {
    if std::env::var_os("EDGEBIND_MIC_CHILD").is_none() {
        return;
    }
    // The PCM is listed like any input device.
    let l = list_devices(Path::new("/nonexistent"), Path::new("/nonexistent"));
    let ours = l.audio_inputs.iter().find(|a| a.id == "edgebind_test");
    println!(
        "inputs: {:?}",
        l.audio_inputs.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    let ours = ours.expect("edgebind_test listed");
    println!("edgebind_test: {ours:?}");
    assert_eq!(ours.name, "edgebind test capture (file plugin)");
    assert!(
        ours.configs.iter().any(|c| c.starts_with("f32 x1-")),
        "{:?}",
        ours.configs
    );

    let cfg = DevicesConfig {
        microphone: Some(MicConfig {
            device: Some("edgebind_test".into()),
            sample_rate: Some(RATE),
            chunk_ms: 20,
        }),
        reconnect: ReconnectConfig {
            initial_s: 0.1,
            max_s: 0.5,
            stall_s: 3.0,
        },
        ..DevicesConfig::default()
    };
    let (mut rig, mut consumers) = Rig::start(build_adapters(&cfg).unwrap(), 1024).unwrap();
    let (_, c) = &mut consumers[0];
    let mut mono = Vec::new();
    let mut chunks = Vec::new();
    let start = Instant::now();
    while mono.len() < RATE as usize && start.elapsed() < Duration::from_secs(10) {
        while let Some((t, rate, ch, n)) = c.pop_with(|s| {
            let a = s.audio().unwrap();
            mono.extend_from_slice(&a.samples);
            (s.t.mono_ns, a.sample_rate, a.channels, a.samples.len())
        }) {
            chunks.push((t, rate, ch, n));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let health = rig.health();
    rig.stop().unwrap();
    println!("health: {health:?}");
    println!(
        "{} chunks, {} samples in {:.2} s",
        chunks.len(),
        mono.len(),
        elapsed.as_secs_f64()
    );
    assert!(mono.len() >= RATE as usize, "only {} samples", mono.len());
    assert!(
        chunks.iter().all(|c| c.1 == RATE && c.2 == 1 && c.3 == 960),
        "{:?}",
        &chunks[..3]
    );
    // Chunk timestamps are contiguous: 20 ms apart, by sample count.
    for w in chunks.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 20_000_000, "{:?}", &chunks[..5]);
    }
    // Mono is the mean of the channels, sample for sample from the file's start.
    let mut worst = 0f32;
    for (i, v) in mono.iter().take(RATE as usize).enumerate() {
        let (l, r) = signal(i);
        let want = (l as f32 / 32768.0 + r as f32 / 32768.0) / 2.0;
        worst = worst.max((v - want).abs());
    }
    println!("max error vs the file: {worst:e}");
    assert!(worst < 1e-4, "max error {worst}");
    assert_eq!(health[0].state, SensorState::Up);

    // A microphone that is not there: down, naming what is, retried.
    let cfg = DevicesConfig {
        microphone: Some(MicConfig {
            device: Some("no-such-mic".into()),
            sample_rate: None,
            chunk_ms: 20,
        }),
        ..cfg
    };
    let (mut rig, _c) = Rig::start(build_adapters(&cfg).unwrap(), 16).unwrap();
    let due = Instant::now() + Duration::from_secs(5);
    let reason = loop {
        if let SensorState::Down { reason } = &rig.health()[0].state {
            break reason.clone();
        }
        assert!(Instant::now() < due, "not down");
        std::thread::sleep(Duration::from_millis(5));
    };
    rig.stop().unwrap();
    println!("absent microphone: {reason}");
    assert!(
        reason.contains("no input device `no-such-mic`") && reason.contains("edgebind_test"),
        "{reason}"
    );
}
