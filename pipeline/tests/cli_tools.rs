//! `edgebind preprocess` and `edgebind embed` as a user runs them, on real
//! files (PNG, WAV, CSV, the bundled ONNX encoders, the text tower), against
//! the models crate called directly. The text-tower tests need
//! `scripts/fetch-models.sh` (as the models crate's tests do).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::contract::Preprocess;
use edgebind_models::preprocess::audio::{AudioParams, AudioPreprocessor};
use edgebind_models::preprocess::depth::{DepthParams, preprocess_depth_mm};
use edgebind_models::preprocess::imu::{ImuParams, preprocess_imu};
use edgebind_models::preprocess::thermal::{ThermalParams, counts_to_celsius, preprocess_celsius};
use edgebind_models::preprocess::vision::{VisionParams, preprocess_rgb8, preprocess_rgb8_clip};
use edgebind_models::text::TextTower;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgebind"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgebind-cli-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn repo() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("..")
}

fn fixtures() -> PathBuf {
    repo().join("models/fixtures")
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("run edgebind");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "edgebind panicked: {err}");
    o
}

fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Runs a command that must fail with `code` and a message containing every one of `want`.
fn fails(cmd: &mut Command, code: i32, want: &[&str]) -> String {
    let o = run(cmd);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    for w in want {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
    err
}

/// Reads a `.npy` v1.0 little-endian float32 C-order file.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00", "magic and version");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header padded to 64 bytes");
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.ends_with('\n'), "{header}");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let open = header.find("'shape': (").unwrap() + "'shape': (".len();
    let close = open + header[open..].find(')').unwrap();
    let shape: Vec<usize> = header[open..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{header}");
    (shape, data)
}

fn preprocess(
    modality: &str,
    input: &Path,
    out: &Path,
    contract: Option<&Path>,
) -> (Vec<usize>, Vec<f32>) {
    let mut cmd = bin();
    cmd.args(["preprocess", "--modality", modality, "--input"])
        .arg(input)
        .arg("--out")
        .arg(out);
    if let Some(c) = contract {
        cmd.arg("--contract").arg(c);
    }
    ok(&mut cmd);
    read_npy(out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
        .unwrap()
}

/// A vision fixture (`name`.rgb8, its size from the manifest) written as PNG.
fn fixture_png(name: &str) -> (PathBuf, Vec<u8>, usize, usize) {
    let m = manifest();
    let c = m["vision"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("fixture {name}"));
    let (w, h) = (
        c["width"].as_u64().unwrap() as u32,
        c["height"].as_u64().unwrap() as u32,
    );
    let rgb = std::fs::read(fixtures().join(c["input"].as_str().unwrap())).unwrap();
    // A fresh file per call: tests run in parallel.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let png = tmp(&format!(
        "{name}-{}.png",
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    image::RgbImage::from_raw(w, h, rgb.clone())
        .unwrap()
        .save(&png)
        .unwrap();
    (png, rgb, w as usize, h as usize)
}

fn f32_file(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn save_png16(path: &Path, w: u32, h: u32, values: Vec<u16>) {
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, values)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn preprocess_vision_png_equals_the_pil_torchvision_fixtures() {
    let m = manifest();
    for c in m["vision"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (png, rgb, w, h) = fixture_png(name);
        let (shape, got) = preprocess("vision", &png, &tmp(&format!("{name}.npy")), None);
        assert_eq!(shape, vec![3, 224, 224], "{name}");
        // The crate's tensor, bit for bit ...
        let lib = preprocess_rgb8(
            &rgb,
            w,
            h,
            &VisionParams {
                frames: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(lib.shape, shape);
        assert!(got == lib.data, "{name}: differs from preprocess_rgb8");
        // ... and the PIL + torchvision reference tensor (bit-exact today).
        let want = f32_file(&fixtures().join(c["output"].as_str().unwrap()));
        let d = max_diff(&got, &want);
        println!("vision {name}: max abs diff to the reference {d:.2e}");
        assert!(d <= 1e-6, "{name}: max abs diff {d}");
    }
}

#[test]
fn preprocess_vision_jpeg_matches_the_library_on_the_decoded_pixels() {
    let (_, rgb, w, h) = fixture_png("rocket_portrait");
    let jpg = tmp("rocket.jpg");
    image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .unwrap()
        .save(&jpg)
        .unwrap();
    let (shape, got) = preprocess("vision", &jpg, &tmp("rocket-jpg.npy"), None);
    assert_eq!(shape, vec![3, 224, 224]);
    let decoded = image::open(&jpg).unwrap().into_rgb8();
    let p = VisionParams {
        frames: 0,
        ..Default::default()
    };
    let lib = preprocess_rgb8(decoded.as_raw(), w, h, &p).unwrap();
    assert!(
        got == lib.data,
        "JPEG differs from preprocess_rgb8 of its pixels"
    );
}

fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn preprocess_audio_wav_matches_the_library() {
    // 16-bit PCM, 44.1 kHz stereo, 2.5 s: a chirp on the left, noise-like on the right.
    let (rate, n) = (44_100u32, 110_250usize);
    let mut pcm = Vec::with_capacity(2 * n);
    for i in 0..n {
        let t = i as f32 / rate as f32;
        pcm.push(((t * (300.0 + 800.0 * t) * std::f32::consts::TAU).sin() * 12_000.0) as i16);
        pcm.push((((i * 7919) % 2001) as i32 - 1000) as i16);
    }
    let wav = tmp("chirp.wav");
    write_wav_i16(&wav, rate, 2, &pcm);
    let (shape, got) = preprocess("audio", &wav, &tmp("chirp.npy"), None);
    assert_eq!(shape, vec![3, 1, 128, 204]);
    let floats: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
    let lib = AudioPreprocessor::new(AudioParams::default())
        .unwrap()
        .process(&floats, 2, rate)
        .unwrap();
    assert_eq!(lib.shape, shape);
    assert!(got == lib.data, "differs from AudioPreprocessor::process");

    // 32-bit float, 16 kHz mono, shorter than one clip.
    let samples: Vec<f32> = (0..12_000).map(|i| (i as f32 * 0.07).sin() * 0.3).collect();
    let wav = tmp("short.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for s in &samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    let (shape, got) = preprocess("audio", &wav, &tmp("short.npy"), None);
    assert_eq!(shape, vec![3, 1, 128, 204]);
    let lib = AudioPreprocessor::new(AudioParams::default())
        .unwrap()
        .process(&samples, 1, 16_000)
        .unwrap();
    assert!(
        got == lib.data,
        "float WAV differs from AudioPreprocessor::process"
    );
}

#[test]
fn preprocess_depth_and_thermal_16bit_pngs_match_the_library() {
    // Depth: 320x240 millimetres, a ramp from 0.3 to 4 m with a hole (0 = no measurement).
    let (w, h) = (320u32, 240u32);
    let mm: Vec<u16> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if (100..140).contains(&x) && (50..90).contains(&y) {
                0
            } else {
                (300 + x * 11 + y * 2) as u16
            }
        })
        .collect();
    let png = tmp("depth.png");
    save_png16(&png, w, h, mm.clone());
    let (shape, got) = preprocess("depth", &png, &tmp("depth.npy"), None);
    assert_eq!(shape, vec![1, 224, 224]);
    let lib = preprocess_depth_mm(&mm, w as usize, h as usize, &DepthParams::default()).unwrap();
    assert!(got == lib.data, "depth differs from preprocess_depth_mm");

    // Thermal: 160x120 Y16 centi-kelvin, 0 .. 70 °C.
    let (w, h) = (160u32, 120u32);
    let ck: Vec<u16> = (0..w * h)
        .map(|i| 27_315 + ((i % w) * 40 + (i / w) * 5) as u16)
        .collect();
    let png = tmp("thermal.png");
    save_png16(&png, w, h, ck.clone());
    let (shape, got) = preprocess("thermal", &png, &tmp("thermal.npy"), None);
    assert_eq!(shape, vec![1, 224, 224]);
    let p = ThermalParams::default();
    let lib = preprocess_celsius(&counts_to_celsius(&ck, &p), w as usize, h as usize, &p).unwrap();
    assert!(got == lib.data, "thermal differs from the library");
    let (lo, hi) = got
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 0.5, "a flat thermal tensor: {lo} .. {hi}");
}

#[test]
fn preprocess_imu_csv_matches_the_library() {
    // 6 s at 256 Hz starting at t = 12 s (exact binary times and values).
    let mut csv = String::from("t_s,ax,ay,az,gx,gy,gz\n");
    let mut readings = Vec::new();
    for i in 0..1536u64 {
        let v: [f32; 6] =
            std::array::from_fn(|c| ((i as usize * (c + 3)) % 17) as f32 * 0.25 - 2.0);
        let t = 12.0 + i as f64 / 256.0;
        csv.push_str(&format!(
            "{t},{},{},{},{},{},{}\n",
            v[0], v[1], v[2], v[3], v[4], v[5]
        ));
        readings.push((i * 3_906_250, v));
    }
    let path = tmp("imu.csv");
    std::fs::write(&path, csv).unwrap();
    let (shape, got) = preprocess("imu", &path, &tmp("imu.npy"), None);
    assert_eq!(shape, vec![6, 2000]);
    let lib = preprocess_imu(&readings, 0, &ImuParams::default()).unwrap();
    assert!(got == lib.data, "IMU differs from preprocess_imu");
}

#[test]
fn preprocess_with_a_contract_writes_its_own_item_shape() {
    let (png, rgb, w, h) = fixture_png("coffee");
    // An ONNX file's embedded contract (the image anchor: ImageNet mean/std, one frame).
    let zoo = repo().join("models/zoo/image_anchor_mobilenetv2.onnx");
    let (_, contract) = edgebind_models::onnx::load_checked(&zoo).unwrap();
    let Preprocess::Vision(p) = &contract.preprocess else {
        panic!("the image anchor is a vision encoder")
    };
    let (shape, got) = preprocess("vision", &png, &tmp("coffee-anchor.npy"), Some(&zoo));
    assert_eq!(shape, vec![3, 224, 224]);
    assert!(got == preprocess_rgb8(&rgb, w, h, p).unwrap().data);

    // A sidecar TOML: a 2-frame clip contract gets the still image repeated.
    let toml = tmp("clip.contract.toml");
    std::fs::write(
        &toml,
        "modality = \"vision\"\nspace = \"test\"\n[input]\nshape = [\"batch\", 3, 2, 64, 64]\n\
         [preprocess]\nresize = 64\ncrop = 64\nframes = 2\nclip_s = 0.5\n",
    )
    .unwrap();
    let (shape, got) = preprocess("vision", &png, &tmp("coffee-clip.npy"), Some(&toml));
    assert_eq!(shape, vec![3, 2, 64, 64]);
    let p = VisionParams {
        resize: 64,
        crop: 64,
        frames: 2,
        clip_s: 0.5,
        ..Default::default()
    };
    let lib = preprocess_rgb8_clip((&rgb, w, h), (&rgb, w, h), &p).unwrap();
    assert!(got == lib.data);
    for c in 0..3 {
        let at = |t: usize| &got[(c * 2 + t) * 64 * 64..(c * 2 + t + 1) * 64 * 64];
        assert_eq!(at(0), at(1), "channel {c}: both time steps are the image");
    }

    // An audio sidecar with one clip keeps the clips axis.
    let toml = tmp("one-clip.contract.toml");
    std::fs::write(
        &toml,
        "modality = \"audio\"\n[input]\nshape = [\"batch\", 1, 128, 204]\n[preprocess]\nclips = 1\n",
    )
    .unwrap();
    let wav = tmp("one-clip.wav");
    let pcm: Vec<i16> = (0..40_000)
        .map(|i| ((i as f32 * 0.01).sin() * 9000.0) as i16)
        .collect();
    write_wav_i16(&wav, 16_000, 1, &pcm);
    let (shape, _) = preprocess("audio", &wav, &tmp("one-clip.npy"), Some(&toml));
    assert_eq!(shape, vec![1, 1, 128, 204]);

    // A contract of another modality is refused.
    fails(
        bin()
            .args(["preprocess", "--modality", "audio", "--input"])
            .arg(&wav)
            .arg("--out")
            .arg(tmp("never.npy"))
            .arg("--contract")
            .arg(&zoo),
        1,
        &["image_anchor_mobilenetv2.onnx is for vision, not audio"],
    );
    assert!(!tmp("never.npy").exists());
}

fn embed_json(args: &[&str]) -> Value {
    let o = ok(bin().arg("embed").args(args).arg("--json"));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one JSON line: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    v
}

fn vector(v: &Value) -> Vec<f32> {
    v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_unit(v: &[f32]) {
    let n = dot(v, v).sqrt();
    assert!((n - 1.0).abs() < 1e-4, "norm {n}");
}

#[test]
fn embed_text_json_equals_the_text_tower() {
    let text = "a dog barking in the yard";
    let v = embed_json(&["--text", text]);
    assert_eq!(v["space"], "minilm-l6-v2-text");
    assert_eq!(v["modality"], "text");
    let got = vector(&v);
    assert_eq!(got.len(), 384);
    assert_unit(&got);
    let tower = TextTower::load_default().expect("text tower (scripts/fetch-models.sh)");
    let lib = tower.embed(&[text]).unwrap().remove(0);
    let cos = dot(&got, &lib.vector);
    assert!(cos > 0.9999, "cosine {cos}");
}

#[test]
fn embed_image_anchor_puts_a_cat_photo_nearer_a_cat_than_a_rocket() {
    let (png, _, _, _) = fixture_png("chelsea");
    let zoo = repo().join("models/zoo/image_anchor_mobilenetv2.onnx");
    let zoo_s = zoo.to_str().unwrap();
    let png_s = png.to_str().unwrap();
    let img = embed_json(&["--model", zoo_s, "--input", png_s]);
    assert_eq!(img["space"], "minilm-l6-v2-text");
    assert_eq!(img["modality"], "vision");
    let img = vector(&img);
    assert_eq!(img.len(), 384);
    assert_unit(&img);
    let cat = vector(&embed_json(&["--text", "a cat"]));
    let rocket = vector(&embed_json(&["--text", "a rocket"]));
    let (c, r) = (dot(&img, &cat), dot(&img, &rocket));
    println!("chelsea: cos(a cat) {c:.3}, cos(a rocket) {r:.3}");
    assert!(c > r, "cat {c} vs rocket {r}");

    // The plain output: a header line, then the same numbers.
    let o = ok(bin().args(["embed", "--model", zoo_s, "--input", png_s]));
    let text = String::from_utf8(o.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "space=minilm-l6-v2-text modality=vision dim=384"
    );
    let plain: Vec<f32> = lines
        .flat_map(|l| l.split_whitespace().map(|x| x.parse::<f32>().unwrap()))
        .collect();
    assert_eq!(plain, img);
}

#[test]
fn embed_bundled_vision_encoder_on_a_png() {
    let (png, _, _, _) = fixture_png("astronaut");
    let model = repo().join("encoders/bundle/vision.onnx");
    let v = embed_json(&[
        "--model",
        model.to_str().unwrap(),
        "--input",
        png.to_str().unwrap(),
    ]);
    let got = vector(&v);
    assert_eq!(got.len(), 384);
    assert_unit(&got);
}

#[test]
fn embed_audio_averages_the_clips_and_renormalises() {
    // The bundled audio encoder with its contract changed to 3 clips (same
    // byte length, so the protobuf stays valid): three clip embeddings.
    let src = std::fs::read(repo().join("encoders/bundle/audio.onnx")).unwrap();
    let (from, to) = (b"\"clips\":1,", b"\"clips\":3,");
    let at: Vec<usize> = (0..src.len() - from.len())
        .filter(|&i| &src[i..i + from.len()] == from)
        .collect();
    assert_eq!(at.len(), 1, "the bundled audio contract has one clip");
    let mut bytes = src.clone();
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
    let model = tmp("audio-3clips.onnx");
    std::fs::write(&model, bytes).unwrap();

    let (rate, n) = (22_050u32, 66_150usize);
    let pcm: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f = if t < 1.5 { 440.0 } else { 1800.0 };
            ((t * f * std::f32::consts::TAU).sin() * 8000.0) as i16
        })
        .collect();
    let wav = tmp("two-tones.wav");
    write_wav_i16(&wav, rate, 1, &pcm);
    let v = embed_json(&[
        "--model",
        model.to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(v["modality"], "audio");
    let got = vector(&v);

    let enc = TractEncoder::load(&model, &BackendOptions::default()).unwrap();
    let Preprocess::Audio(p) = &enc.contract().preprocess else {
        panic!("audio contract")
    };
    assert_eq!(p.clips, 3);
    let floats: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
    let t = AudioPreprocessor::new(p.clone())
        .unwrap()
        .process(&floats, 1, rate)
        .unwrap();
    let per: usize = t.shape[1..].iter().product();
    let items: Vec<_> = t
        .data
        .chunks(per)
        .map(|d| edgebind_models::preprocess::Tensor::new(t.shape[1..].to_vec(), d.to_vec()))
        .collect();
    let embs = enc.encode(&items).unwrap();
    assert_eq!(embs.len(), 3);
    let mut mean = vec![0f32; got.len()];
    for e in &embs {
        for (m, x) in mean.iter_mut().zip(&e.vector) {
            *m += x / 3.0;
        }
    }
    let norm = dot(&mean, &mean).sqrt();
    mean.iter_mut().for_each(|m| *m /= norm);
    assert_unit(&got);
    assert!(
        max_diff(&got, &mean) < 1e-5,
        "not the renormalised clip mean"
    );
    // The clips differ (so the mean is not just one of them).
    assert!(dot(&embs[0].vector, &embs[2].vector) < 0.9999);
}

#[test]
fn bad_inputs_exit_1_naming_the_file_and_usage_errors_exit_2() {
    let zoo = repo().join("models/zoo/image_anchor_mobilenetv2.onnx");
    let out = tmp("bad.npy");
    let pre = |modality: &str, input: &Path| {
        let mut c = bin();
        c.args(["preprocess", "--modality", modality, "--input"])
            .arg(input)
            .arg("--out")
            .arg(&out);
        c
    };
    let embed = |model: &Path, input: &Path| {
        let mut c = bin();
        c.args(["embed", "--model"])
            .arg(model)
            .arg("--input")
            .arg(input);
        c
    };

    // A missing file.
    let missing = tmp("no-such-photo.png");
    fails(
        &mut pre("vision", &missing),
        1,
        &["cannot read", "no-such-photo.png"],
    );
    fails(
        &mut embed(&zoo, &missing),
        1,
        &["cannot read", "no-such-photo.png"],
    );

    // An undecodable image.
    let broken = tmp("broken.png");
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend_from_slice(&[7u8; 300]);
    std::fs::write(&broken, b).unwrap();
    fails(
        &mut pre("vision", &broken),
        1,
        &["broken.png", "cannot decode the PNG image"],
    );
    let text = tmp("notes.png");
    std::fs::write(&text, "hello").unwrap();
    fails(
        &mut pre("vision", &text),
        1,
        &[
            "notes.png is neither a WAV file nor a PNG or JPEG image",
            "vision takes a PNG or JPEG",
        ],
    );

    // An 8-bit PNG where depth wants 16-bit millimetres.
    let rgb = tmp("rgb-as-depth.png");
    image::RgbImage::new(8, 8).save(&rgb).unwrap();
    fails(
        &mut pre("depth", &rgb),
        1,
        &["rgb-as-depth.png is a Rgb8 PNG", "16-bit greyscale"],
    );

    // A WAV with no samples.
    let empty = tmp("empty.wav");
    write_wav_i16(&empty, 16_000, 1, &[]);
    fails(
        &mut pre("audio", &empty),
        1,
        &["empty.wav: the WAV file holds no samples"],
    );

    // A CSV with a bad row: line and column named.
    let csv = tmp("bad.csv");
    std::fs::write(
        &csv,
        "t_s,ax,ay,az,gx,gy,gz\n0,0,0,9.8,0,0,0\n0.01,0,0,nine,0,0,0\n",
    )
    .unwrap();
    fails(
        &mut pre("imu", &csv),
        1,
        &["bad.csv line 3, column 4 (az): `nine`"],
    );
    std::fs::write(&csv, "0,0,0,9.8,0,0,0\n0.01,0,0\n").unwrap();
    fails(
        &mut pre("imu", &csv),
        1,
        &["bad.csv line 2: 3 columns, expected 7"],
    );

    // Input of the wrong modality for the model's contract.
    let wav = tmp("tone.wav");
    write_wav_i16(&wav, 16_000, 1, &[1000; 16_000]);
    fails(
        &mut embed(&zoo, &wav),
        1,
        &[
            "encodes vision",
            "tone.wav is a WAV file (audio)",
            "PNG or JPEG",
        ],
    );

    // A model that is not ONNX.
    let fake = tmp("fake.onnx");
    std::fs::write(&fake, "this is not a model").unwrap();
    let (png, _, _, _) = fixture_png("small_synthetic");
    fails(
        &mut embed(&fake, &png),
        1,
        &["fake.onnx is not a readable ONNX file"],
    );
    fails(
        bin()
            .args(["preprocess", "--modality", "vision", "--input"])
            .arg(&png)
            .arg("--out")
            .arg(&out)
            .arg("--contract")
            .arg(&fake),
        1,
        &["fake.onnx is not a readable ONNX file"],
    );
    assert!(!out.exists(), "nothing written on errors");

    // Usage errors.
    fails(bin().args(["embed"]), 2, &["--model", "--text"]);
    fails(bin().arg("embed").arg("--model").arg(&zoo), 2, &["--input"]);
    fails(
        bin().args(["embed", "--text", "a cat", "--model", "x.onnx"]),
        2,
        &["cannot be used"],
    );
    fails(
        bin().args([
            "preprocess",
            "--modality",
            "smell",
            "--input",
            "a",
            "--out",
            "b",
        ]),
        2,
        &["smell"],
    );
}
