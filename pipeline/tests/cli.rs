//! The `edgebind` binary as a user runs it: record, inspect, errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgebind"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgebind-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run edgebind")
}

fn record(seed: u64, seconds: &str, out: &Path) -> Output {
    run(bin()
        .args([
            "record",
            "--rig",
            "sim",
            "--seed",
            &seed.to_string(),
            "--seconds",
            seconds,
            "--quiet",
            "-o",
        ])
        .arg(out))
}

/// `edgebind record --quiet ARGS -o OUT`, which must succeed.
fn record_ok(args: &[&str], out: &Path) {
    let o = run(bin()
        .arg("record")
        .args(args)
        .args(["--quiet", "-o"])
        .arg(out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn same_seed_gives_byte_identical_recordings() {
    let (a, b, c) = (tmp("a.mcap"), tmp("b.mcap"), tmp("c.mcap"));
    for (seed, p) in [(7, &a), (7, &b), (8, &c)] {
        let o = record(seed, "2", p);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert!(
        ba.len() > 1_000_000,
        "2 s of five sensors is megabytes, got {}",
        ba.len()
    );
    assert!(ba == bb, "same seed, different bytes");
    assert!(ba != bc, "different seed, same bytes");
}

#[test]
fn inspect_json_reports_channels_rates_and_span() {
    let p = tmp("inspect.mcap");
    assert!(record(7, "3", &p).status.success());
    let o = run(bin().args(["inspect", "--json"]).arg(&p));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let chans = v["channels"].as_array().unwrap();
    let find = |topic: &str| {
        chans
            .iter()
            .find(|c| c["topic"] == topic)
            .unwrap_or_else(|| panic!("{topic} missing: {v}"))
    };
    // Exact message counts for 3 s at the sim's default rates.
    for (topic, modality, n, hz) in [
        ("/camera/image", "vision", 45, 15.0),
        ("/depth/image", "depth", 45, 15.0),
        ("/thermal/image", "thermal", 27, 9.0),
        ("/audio", "audio", 150, 50.0),
        ("/imu", "imu", 600, 200.0),
    ] {
        let c = find(topic);
        assert_eq!(c["modality"], modality, "{topic}");
        assert_eq!(c["messages"], n, "{topic}");
        let rate = c["rate_hz"].as_f64().unwrap();
        assert!((rate - hz).abs() < 0.01, "{topic}: {rate} Hz");
    }
    let truth = find("/ground_truth");
    assert!(truth["modality"].is_null());
    assert!(truth["messages"].as_u64().unwrap() >= 1);
    // The truth spans themselves: contiguous from 0 to the end of the recording.
    let spans = v["truth"].as_array().unwrap();
    assert_eq!(spans.len() as u64, truth["messages"].as_u64().unwrap());
    assert_eq!(spans[0]["start_ns"], 0);
    for w in spans.windows(2) {
        assert_eq!(w[0]["end_ns"], w[1]["start_ns"], "{spans:?}");
    }
    assert!(!spans[0]["situations"].as_array().unwrap().is_empty());
    // --truth prints one line per span, in the sim's seconds.
    let o = run(bin().args(["inspect", "--truth"]).arg(&p));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), spans.len(), "{text}");
    let first = spans[0]["situations"][0].as_str().unwrap();
    assert!(
        lines[0].starts_with("    0.000 - ") && lines[0].ends_with(first),
        "{text}"
    );
    let span = v["duration_s"].as_f64().unwrap();
    assert!((2.9..3.0).contains(&span), "{span}");
    assert!(v["error"].is_null());
    assert_eq!(v["metadata"]["edgebind.recording"]["seed"], "7");
    // The text form names every topic too.
    let o = run(bin().arg("inspect").arg(&p));
    let text = String::from_utf8_lossy(&o.stdout);
    for t in [
        "/camera/image",
        "/depth/image",
        "/thermal/image",
        "/audio",
        "/imu",
        "/ground_truth",
    ] {
        assert!(text.contains(t), "{text}");
    }
}

#[test]
fn truncated_file_is_reported_with_offset_and_exit_code() {
    let p = tmp("cut.mcap");
    assert!(record(9, "1", &p).status.success());
    let bytes = std::fs::read(&p).unwrap();
    let cut = tmp("cut2.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = run(bin().arg("inspect").arg(&cut));
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("DAMAGED") && text.contains("byte offset"),
        "{text}"
    );
    // Messages before the damage are still counted.
    assert!(text.contains("/camera/image"), "{text}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let o = run(bin().args(["inspect", "/nonexistent/file.mcap"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/file.mcap"));

    let notmcap = tmp("not.mcap");
    std::fs::write(&notmcap, b"hello").unwrap();
    let o = run(bin().arg("inspect").arg(&notmcap));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an MCAP file"));

    let o = run(bin()
        .args(["record", "--seconds", "-3", "-o"])
        .arg(tmp("x.mcap")));
    assert!(!o.status.success());

    let o = run(bin()
        .args(["record", "--size", "224by224", "-o"])
        .arg(tmp("x.mcap")));
    assert!(String::from_utf8_lossy(&o.stderr).contains("WIDTHxHEIGHT"));

    let cfg = tmp("bad-sim.toml");
    std::fs::write(&cfg, "[sim]\nseed = 1\nfps = 30\n").unwrap();
    let o = run(bin()
        .args(["record", "--seconds", "1", "--config"])
        .arg(&cfg)
        .arg("-o")
        .arg(tmp("x.mcap")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 3") && err.contains("fps"), "{err}");

    let o = run(bin()
        .args(["record", "--rig", "replay", "-o"])
        .arg(tmp("x.mcap")));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--input"));
}

#[test]
fn replay_rerecords_through_the_live_path() {
    let src = tmp("src.mcap");
    assert!(record(5, "2", &src).status.success());
    let dst = tmp("dst.mcap");
    let o = run(bin()
        .args(["record", "--rig", "replay", "--quiet", "--input"])
        .arg(&src)
        .arg("-o")
        .arg(&dst));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let count = |p: &Path| {
        let o = run(bin().args(["inspect", "--json"]).arg(p));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["modality"].is_null())
            .map(|c| {
                (
                    c["topic"].as_str().unwrap().to_string(),
                    c["messages"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        count(&src),
        count(&dst),
        "every sensor message survives replay"
    );
}

/// The README's demo config with the committed bundled encoders: every model
/// loads, shares the text tower's space, and every text concept embeds.
#[test]
fn demo_config_loads_the_bundled_encoders() {
    let demo = format!(
        "{}/../configs/demo.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    );
    let o = run(bin().args(["config", "check", demo.as_str()]));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("rig Sim, 5 encoder(s) in space `minilm-l6-v2-text`, 3 concept(s)"),
        "{out}"
    );
}

#[test]
fn config_check_names_the_bad_field_and_line_and_run_refuses_bad_models() {
    let demo = format!(
        "{}/../configs/demo.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    );
    let o = run(bin().args(["config", "check", "--syntax-only", demo.as_str()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bad = tmp("bad.toml");
    std::fs::write(
        &bad,
        "device_id = \"x\"\n\n[[concept]]\nname = \"cat\"\ntext = \"a cat\"\nenter = 0.3\nexti = 0.2\n",
    )
    .unwrap();
    let o = run(bin().args(["config", "check"]).arg(&bad));
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bad.toml") && e.contains("line 7") && e.contains("exti"),
        "{e}"
    );
    // A multi-clip span out of range names the field and the value.
    let span = tmp("span.toml");
    std::fs::write(&span, "[fusion]\nclip_span_s = -1.0\n").unwrap();
    let o = run(bin().args(["config", "check", "--syntax-only"]).arg(&span));
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("fusion.clip_span_s") && e.contains("-1"), "{e}");
    // A model file that is not ONNX: a clear error naming it, exit 2, no panic.
    let junk = tmp("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let cfg = tmp("junk.toml");
    std::fs::write(
        &cfg,
        format!("[encoders.vision]\nmodel = \"{}\"\n", junk.display()),
    )
    .unwrap();
    let o = run(bin().args(["run", "--config"]).arg(&cfg));
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("encoders.vision") && e.contains("junk.onnx"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    let o = run(bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--broker", "tcp://x"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("mqtt://"));
}

#[test]
fn inspect_sheet_draws_every_imager_per_situation_and_refuses_audio_only() {
    let p = tmp("sheet.mcap");
    record_ok(&["--seed", "3", "--seconds", "40", "--size", "64x64"], &p);
    // The single-situation spans of at least 1 s, from the recording's own truth.
    let truth = run(bin().args(["inspect", "--truth"]).arg(&p));
    let truth = String::from_utf8(truth.stdout).unwrap();
    let mut want: Vec<String> = Vec::new();
    for line in truth.lines() {
        // `start - end s  situations`
        let (span, sits) = line.split_once(" s").unwrap();
        let (a, b) = span.split_once(" - ").unwrap();
        let len: f64 = b.trim().parse::<f64>().unwrap() - a.trim().parse::<f64>().unwrap();
        let sits: Vec<&str> = sits
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if sits.len() == 1 && len >= 1.0 && !want.contains(&sits[0].to_string()) {
            want.push(sits[0].to_string());
        }
    }
    assert!(
        want.len() >= 3,
        "40 s of sim should hold several situations: {truth}"
    );
    let png = tmp("sheet.png");
    let o = run(bin()
        .args(["inspect", "--per", "2", "--cell-height", "32", "--sheet"])
        .arg(&png)
        .arg(&p));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("each cell: vision | depth | thermal"), "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("row "))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    let mut sorted = want.clone();
    sorted.sort_by_key(|id| {
        edgebind_sensors::sim::Situation::from_id(id)
            .unwrap()
            .index()
    });
    assert_eq!(rows, sorted, "{out}");
    assert!(!out.contains("missing"), "{out}");
    // 32 px frames: camera and depth 64x64 -> 32 wide, thermal 160x120 -> 42;
    // 2 px between imagers, 6 px around cells.
    let img = image::open(&png).unwrap().to_rgb8();
    let cell_w = 32 + 32 + 42 + 2 * 2;
    assert_eq!(
        img.height(),
        rows.len() as u32 * 32 + (rows.len() as u32 + 1) * 6
    );
    let ncols = (img.width() - 6) / (cell_w + 6);
    assert!(ncols == 1 || ncols == 2, "width {}", img.width());
    assert_eq!(img.width(), ncols * cell_w + (ncols + 1) * 6);
    // Every imager's block of the first cell shows a picture, not a flat fill.
    for (x0, w) in [(6, 32), (6 + 34, 32), (6 + 68, 42)] {
        let px: std::collections::BTreeSet<[u8; 3]> = (0..32)
            .flat_map(|y| (0..w).map(move |x| (x0 + x, 6 + y)))
            .map(|(x, y)| img.get_pixel(x, y).0)
            .collect();
        assert!(px.len() > 8, "block at x {x0} has {} colours", px.len());
    }
    // A recording without imagers, and a bad --per, are refused by name.
    let a = tmp("sheet-audio.mcap");
    record_ok(&["--seconds", "2", "--modalities", "audio"], &a);
    let o = run(bin().args(["inspect", "--sheet"]).arg(tmp("x.png")).arg(&a));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("sheet-audio.mcap")
            && err.contains("no camera, depth or thermal"),
        "{err}"
    );
    let o = run(bin()
        .args(["inspect", "--per", "0", "--sheet"])
        .arg(tmp("x.png"))
        .arg(&p));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--per"));
}
