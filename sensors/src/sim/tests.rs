//! Behaviour and numbers of the simulated world.

use super::scene::Scene;
use super::timeline::{EpisodeHeader, TimelineGen};
use super::*;
use crate::sample::{Frame, ImuSample};

const S: u64 = NS_PER_SEC;

fn small(seed: u64) -> SimConfig {
    let mut c = SimConfig {
        seed,
        ..SimConfig::default()
    };
    c.camera.width = 64;
    c.camera.height = 48;
    c.depth.width = 64;
    c.depth.height = 48;
    c.thermal.width = 40;
    c.thermal.height = 30;
    c
}

/// Every sample before `until`, in merged order.
fn run(cfg: SimConfig, until: u64, mut between: impl FnMut(&mut SimWorld)) -> Vec<Sample> {
    let mut w = SimWorld::new(cfg).unwrap();
    let mut out = Vec::new();
    while w.peek().1.mono_ns < until {
        let mut s = Sample::empty(Modality::Vision);
        w.next_into(&mut s);
        out.push(s);
        between(&mut w);
    }
    out
}

fn episodes(seed: u64, n: usize) -> Vec<EpisodeHeader> {
    let mut g = TimelineGen::new(seed);
    (0..n).map(|_| g.next_episode()).collect()
}

fn scene_for(seed: u64, ep: &EpisodeHeader) -> Scene {
    let mut sc = Scene::new();
    sc.rebuild(seed, ep);
    sc
}

/// End of the part of an episode where only the primary situation is active.
fn primary_only_end(ep: &EpisodeHeader) -> f32 {
    match ep.overlap {
        Some(o) => ep.rel_s(o.start_ns),
        None => ep.duration_s(),
    }
}

fn thermal_c(f: &Frame, i: usize) -> f32 {
    f.u16_at(i) as f32 / 100.0 - 273.15
}

#[test]
fn same_seed_gives_identical_bytes_and_truth_queries_do_not_disturb() {
    let until = 3 * S;
    let a = run(
        SimConfig {
            seed: 5,
            ..SimConfig::default()
        },
        until,
        |_| {},
    );
    let mut k = 0u64;
    let b = run(
        SimConfig {
            seed: 5,
            ..SimConfig::default()
        },
        until,
        |w| {
            k += 1;
            if k.is_multiple_of(7) {
                let _ = w.truth_until(k * 50_000_000);
                let _ = w.situations_at((k * 37_000_000) % (20 * S));
            }
        },
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "same seed must give bit-identical samples");
    let c = run(
        SimConfig {
            seed: 6,
            ..SimConfig::default()
        },
        until,
        |_| {},
    );
    assert_eq!(a.len(), c.len());
    for m in Modality::ALL {
        let pa: Vec<_> = a.iter().filter(|s| s.modality == m).collect();
        let pc: Vec<_> = c.iter().filter(|s| s.modality == m).collect();
        assert_eq!(pa.len(), pc.len());
        let differ = pa
            .iter()
            .zip(&pc)
            .filter(|(x, y)| x.payload != y.payload)
            .count();
        assert!(
            differ * 10 >= pa.len() * 9,
            "{m}: only {differ}/{} samples differ between seeds",
            pa.len()
        );
    }
}

#[test]
fn streams_do_not_depend_on_other_streams_config() {
    // The camera stream is the same whatever the other sensors' sizes and rates.
    let until = 2 * S;
    let a = run(small(3), until, |_| {});
    let mut other = small(3);
    other.depth.width = 32;
    other.depth.fps = 30.0;
    other.thermal.fps = 4.0;
    other.audio_chunk_ms = 7;
    other.imu_rate = 100.0;
    let b = run(other, until, |_| {});
    let vis = |v: &[Sample]| -> Vec<Sample> {
        v.iter()
            .filter(|s| s.modality == Modality::Vision)
            .cloned()
            .collect()
    };
    assert!(
        vis(&a) == vis(&b),
        "the camera changed with other streams' config"
    );
    let aud = |v: &[Sample]| -> Vec<f32> {
        v.iter()
            .filter_map(|s| s.audio())
            .flat_map(|a| a.samples.clone())
            .collect()
    };
    let (x, y) = (aud(&a), aud(&b));
    let n = x.len().min(y.len());
    assert!(n > 30_000);
    assert_eq!(
        x[..n],
        y[..n],
        "audio samples do not depend on the chunking"
    );
}

#[test]
fn timestamps_follow_the_rates_exactly() {
    let secs = 4;
    let samples = run(small(1), secs * S, |_| {});
    let mut counts = [0usize; 5];
    let mut prev: Option<(u64, usize)> = None;
    for s in &samples {
        let k = s.modality.index();
        counts[k] += 1;
        if let Some((pt, pk)) = prev {
            assert!(
                s.t.mono_ns > pt || (s.t.mono_ns == pt && k > pk),
                "merged order broken at {}",
                s.t.mono_ns
            );
        }
        prev = Some((s.t.mono_ns, k));
        assert_eq!(s.t, Timestamp::sim(s.t.mono_ns));
    }
    // vision, audio (20 ms chunks), depth, thermal, imu over 4 s
    assert_eq!(counts, [60, 200, 60, 36, 800]);
    let vis: Vec<u64> = samples
        .iter()
        .filter(|s| s.modality == Modality::Vision)
        .map(|s| s.t.mono_ns)
        .collect();
    assert_eq!(vis[1], 66_666_667);
    assert_eq!(vis[2], 133_333_333);
    assert_eq!(vis[59], 3_933_333_333);
    let aud: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.modality == Modality::Audio)
        .collect();
    for (k, s) in aud.iter().enumerate() {
        let a = s.audio().unwrap();
        assert_eq!(
            (a.sample_rate, a.channels, a.samples.len()),
            (16_000, 1, 320)
        );
        assert_eq!(s.t.mono_ns, k as u64 * 20_000_000);
    }
    // Fractional rates and chunk lengths: computed from the index, integer math.
    let mut cfg = small(1);
    cfg.camera.fps = 29.97;
    cfg.audio_rate = 44_100;
    cfg.audio_chunk_ms = 1;
    cfg.imu_rate = 333.0;
    let samples = run(cfg, S, |_| {});
    let vis: Vec<u64> = samples
        .iter()
        .filter(|s| s.modality == Modality::Vision)
        .map(|s| s.t.mono_ns)
        .collect();
    assert_eq!(vis.len(), 30);
    assert_eq!(vis[29], (29.0f64 * 1e9 / 29.97).round() as u64);
    let aud: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.modality == Modality::Audio)
        .collect();
    assert_eq!(aud[0].audio().unwrap().samples.len(), 44);
    assert_eq!(aud[3].t.mono_ns, 3 * 44 * S / 44_100);
    let imu = samples
        .iter()
        .filter(|s| s.modality == Modality::Imu)
        .count();
    assert_eq!(imu, 333);
}

#[test]
fn truth_spans_cover_the_timeline_and_every_situation_appears() {
    for seed in [0u64, 1, 99] {
        let mut w = SimWorld::new(small(seed)).unwrap();
        let until = 600 * S;
        let spans = w.truth_until(until);
        assert_eq!(spans[0].start_ns, 0);
        for pair in spans.windows(2) {
            assert_eq!(pair[0].end_ns, pair[1].start_ns, "spans must be contiguous");
            assert_ne!(
                pair[0].situations, pair[1].situations,
                "adjacent spans differ"
            );
        }
        let last = spans.last().unwrap();
        assert!(last.start_ns < until && last.end_ns >= until);
        let mut seen = std::collections::BTreeSet::new();
        let mut overlaps = 0;
        for s in &spans {
            assert!(s.start_ns < s.end_ns);
            assert!(!s.situations.is_empty() && s.situations.len() <= 2);
            assert!(s.situations.windows(2).all(|p| p[0] < p[1]), "sorted");
            seen.extend(s.situations.iter().copied());
            overlaps += (s.situations.len() == 2) as usize;
        }
        assert_eq!(
            seen.len(),
            Situation::ALL.len(),
            "seed {seed}: every situation within 10 minutes"
        );
        let n_eps = spans.iter().filter(|s| s.situations.len() == 1).count();
        assert!(
            overlaps * 100 >= n_eps * 10,
            "seed {seed}: {overlaps} overlaps among ~{n_eps} spans"
        );
        // A shorter query is a prefix; the straddling span is whole.
        let short = w.truth_until(spans[3].start_ns + 1);
        assert_eq!(short[..], spans[..4]);
        assert!(w.truth_until(0).is_empty());
        // situations_at agrees with the spans, also when going backwards in time.
        for s in spans.iter().rev().step_by(7) {
            assert_eq!(w.situations_at(s.start_ns), s.situations);
            assert_eq!(w.situations_at(s.end_ns - 1), s.situations);
        }
        let json = serde_json::to_string(&spans[0]).unwrap();
        assert!(json.contains("\"situations\":[\""), "{json}");
    }
}

#[test]
fn frames_have_their_sizes_formats_and_plausible_values() {
    let samples = run(small(4), 3 * S, |_| {});
    for s in &samples {
        match s.modality {
            Modality::Vision => {
                let f = s.frame().unwrap();
                assert_eq!((f.width, f.height, f.format), (64, 48, PixelFormat::Rgb8));
                f.validate().unwrap();
            }
            Modality::Depth => {
                let f = s.frame().unwrap();
                assert_eq!(
                    (f.width, f.height, f.format),
                    (64, 48, PixelFormat::DepthZ16)
                );
                f.validate().unwrap();
                let n = (f.width * f.height) as usize;
                let mut valid = 0;
                for i in 0..n {
                    let d = f.u16_at(i);
                    assert!(d == 0 || (100..=20_000).contains(&d), "depth {d} mm");
                    valid += (d != 0) as usize;
                }
                assert!(valid * 2 > n, "most depth pixels measure something");
            }
            Modality::Thermal => {
                let f = s.frame().unwrap();
                assert_eq!(
                    (f.width, f.height, f.format),
                    (40, 30, PixelFormat::ThermalY16)
                );
                f.validate().unwrap();
                for i in 0..(f.width * f.height) as usize {
                    let k = f.u16_at(i);
                    assert!((23_315..=42_315).contains(&k), "thermal {k} cK");
                }
            }
            Modality::Audio => {
                assert!(
                    s.audio()
                        .unwrap()
                        .samples
                        .iter()
                        .all(|x| x.is_finite() && x.abs() <= 1.0)
                );
            }
            Modality::Imu => {
                let m = s.imu().unwrap();
                assert!(m.accel.iter().chain(&m.gyro).all(|x| x.is_finite()));
            }
        }
    }
}

#[test]
fn buffers_are_reused_across_samples_and_episodes() {
    let mut w = SimWorld::new(small(8)).unwrap();
    let mut bufs: Vec<Sample> = Modality::ALL.iter().map(|&m| Sample::empty(m)).collect();
    let mut ptrs = [0usize; 5];
    while w.peek().1.mono_ns < 30 * S {
        let m = w.peek().0;
        let s = &mut bufs[m.index()];
        w.next_into(s);
        let p = match &s.payload {
            Payload::Frame(f) => f.data.as_ptr() as usize,
            Payload::Audio(a) => a.samples.as_ptr() as usize,
            Payload::Imu(_) => 1,
        };
        if ptrs[m.index()] == 0 {
            ptrs[m.index()] = p;
        }
        assert_eq!(ptrs[m.index()], p, "{m} buffer reallocated");
    }
}

#[test]
fn world_can_move_to_a_sensor_thread() {
    fn send<T: Send + 'static>() {}
    send::<SimWorld>();
}

#[test]
fn config_is_validated_with_field_and_range() {
    assert!(SimConfig::default().validate().is_ok());
    let mut c = SimConfig::default();
    c.camera.fps = 0.0;
    let e = SimWorld::new(c).unwrap_err().to_string();
    assert!(e.contains("camera.fps") && e.contains("1..=120"), "{e}");
    let mut c = SimConfig::default();
    c.thermal.width = 5000;
    let e = SimWorld::new(c).unwrap_err().to_string();
    assert!(e.contains("thermal.width") && e.contains("8..=4096"), "{e}");
    let c = SimConfig {
        audio_rate: 4000,
        ..SimConfig::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("audio_rate"));
    let c = SimConfig {
        audio_chunk_ms: 0,
        ..SimConfig::default()
    };
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("audio_chunk_ms")
    );
    let c = SimConfig {
        imu_rate: f64::NAN,
        ..SimConfig::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("imu_rate"));
    // serde: defaults fill missing fields, unknown fields are rejected
    let c: SimConfig = serde_json::from_str(r#"{"seed": 3}"#).unwrap();
    assert_eq!(
        c,
        SimConfig {
            seed: 3,
            ..SimConfig::default()
        }
    );
    assert!(serde_json::from_str::<SimConfig>(r#"{"sed": 3}"#).is_err());
    let back: SimConfig =
        serde_json::from_str(&serde_json::to_string(&SimConfig::default()).unwrap()).unwrap();
    assert_eq!(back, SimConfig::default());
    assert_eq!(SimConfig::default().audio_chunk_len(), 320);
}

#[test]
fn imu_at_rest_reads_gravity_and_running_shakes() {
    let seed = 12;
    let eps = episodes(seed, 40);
    let mut checked = [false; 2];
    for ep in &eps {
        let kind = match ep.primary {
            Situation::QuietRoom => 0,
            Situation::PersonRunning => 1,
            _ => continue,
        };
        let sc = scene_for(seed, ep);
        let mut imu = imu::Imu::new(seed);
        imu.begin(ep.index);
        let end = primary_only_end(ep).min(4.0);
        let n = (end * 200.0) as usize;
        let reads: Vec<ImuSample> = (0..n)
            .map(|i| imu.sample(&sc.motion.eval(i as f32 / 200.0), i as u64))
            .collect();
        let mags: Vec<f32> = reads
            .iter()
            .map(|r| r.accel.iter().map(|a| a * a).sum::<f32>().sqrt())
            .collect();
        let mean = mags.iter().sum::<f32>() / n as f32;
        let sd = (mags.iter().map(|m| (m - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
        if kind == 0 {
            assert!((mean - 9.81).abs() < 0.6, "at rest |a| = {mean}");
            assert!(sd < 0.2, "at rest sd = {sd}");
            let gyro = reads
                .iter()
                .map(|r| r.gyro.iter().map(|g| g.abs()).sum::<f32>())
                .sum::<f32>()
                / n as f32;
            assert!(gyro < 0.05, "at rest gyro {gyro}");
        } else {
            assert!(sd > 3.0, "running sd = {sd}");
        }
        checked[kind] = true;
    }
    assert_eq!(checked, [true, true]);
}

/// Per-episode features for the nuisance test.
struct Feat {
    class: usize,
    brightness: f32,
    rms: f32,
    acc_mag: f32,
}

fn features(seed: u64, n_eps: usize) -> Vec<Feat> {
    let mut out = Vec::new();
    for ep in episodes(seed, n_eps) {
        let sc = scene_for(seed, &ep);
        let end = primary_only_end(&ep);
        let t = (0.5 * end).min(3.0);
        let mut vis = vision::Vision::new(seed, 112, 112);
        vis.begin(&sc);
        let mut buf = vec![0u8; 112 * 112 * 3];
        vis.render(&sc, t, t as f64, 0, &mut buf);
        let brightness = buf.iter().map(|&b| b as f32).sum::<f32>() / buf.len() as f32;
        let mut au = audio::Audio::new(seed, 16_000);
        au.begin(&sc);
        let n = ((end.min(3.0)) * 16_000.0) as usize;
        let rms = ((0..n)
            .map(|i| au.sample(&sc, i as f64 / 16_000.0, i as u64).powi(2))
            .sum::<f32>()
            / n as f32)
            .sqrt();
        let mut imu = imu::Imu::new(seed);
        imu.begin(ep.index);
        let m = (end.min(3.0) * 100.0) as usize;
        let acc_mag = (0..m)
            .map(|i| {
                let r = imu.sample(&sc.motion.eval(i as f32 / 100.0), i as u64);
                r.accel.iter().map(|a| a * a).sum::<f32>().sqrt()
            })
            .sum::<f32>()
            / m as f32;
        out.push(Feat {
            class: ep.primary.index(),
            brightness,
            rms,
            acc_mag,
        });
    }
    out
}

/// Accuracy of a nearest-class-mean classifier on one scalar feature
/// (class means from `train`, evaluated on `test`).
fn ncm_accuracy(train: &[Feat], test: &[Feat], f: impl Fn(&Feat) -> f32) -> f32 {
    let mut sum = [0f32; 10];
    let mut cnt = [0f32; 10];
    for x in train {
        sum[x.class] += f(x);
        cnt[x.class] += 1.0;
    }
    let means: Vec<f32> = (0..10).map(|c| sum[c] / cnt[c].max(1.0)).collect();
    let ok = test
        .iter()
        .filter(|x| {
            let v = f(x);
            let best = (0..10)
                .min_by(|&a, &b| (means[a] - v).abs().total_cmp(&(means[b] - v).abs()))
                .unwrap();
            best == x.class
        })
        .count();
    ok as f32 / test.len() as f32
}

#[test]
fn trivial_features_do_not_give_the_situation_away() {
    let train = features(100, 200);
    let test = features(200, 200);
    let acc_b = ncm_accuracy(&train, &test, |x| x.brightness);
    let acc_r = ncm_accuracy(&train, &test, |x| x.rms);
    let acc_i = ncm_accuracy(&train, &test, |x| x.acc_mag);
    println!(
        "nearest-class-mean accuracy over 10 classes (chance 0.10): mean brightness {acc_b:.2}, audio RMS {acc_r:.2}, IMU |accel| mean {acc_i:.2}"
    );
    assert!(acc_b < 0.4, "mean brightness classifies {acc_b}");
    assert!(acc_r < 0.4, "audio RMS classifies {acc_r}");
    assert!(acc_i < 0.5, "IMU accel magnitude classifies {acc_i}");
}

#[test]
fn each_situation_leaves_its_signature() {
    let seed = 31;
    let eps = episodes(seed, 60);
    let mut fire_seen = false;
    let mut dog_seen = false;
    for ep in &eps {
        let sc = scene_for(seed, ep);
        let end = primary_only_end(ep);
        match ep.primary {
            Situation::Fire => {
                let mut th = thermal::Thermal::new(seed, 160, 120);
                th.begin(&sc);
                let mut buf = vec![0u8; 160 * 120 * 2];
                th.render(&sc, 0.5 * end, 0.0, 0, &mut buf);
                let f = Frame {
                    width: 160,
                    height: 120,
                    format: PixelFormat::ThermalY16,
                    data: buf,
                };
                let max = (0..160 * 120)
                    .map(|i| thermal_c(&f, i))
                    .fold(f32::MIN, f32::max);
                assert!(max > 100.0, "fire max {max} °C");
                fire_seen = true;
            }
            Situation::DogBarking => {
                let mut au = audio::Audio::new(seed, 16_000);
                au.begin(&sc);
                let frames = (end * 50.0) as usize;
                let mut e: Vec<f32> = (0..frames)
                    .map(|k| {
                        (0..320)
                            .map(|j| {
                                au.sample(
                                    &sc,
                                    (k * 320 + j) as f64 / 16_000.0,
                                    (k * 320 + j) as u64,
                                )
                                .powi(2)
                            })
                            .sum()
                    })
                    .collect();
                e.sort_by(f32::total_cmp);
                let (med, max) = (e[e.len() / 2], e[e.len() - 1]);
                assert!(max > 8.0 * med, "barks stand out: max {max} median {med}");
                dog_seen = true;
            }
            _ => {}
        }
    }
    assert!(fire_seen && dog_seen);
}

/// Prints the raw RMS of each situation's sound (gain 1) for `NOMINAL_RMS`.
#[test]
#[ignore]
fn nominal_rms_table() {
    let mut sum = [0f32; 10];
    let mut cnt = [0f32; 10];
    for seed in 0..4 {
        for ep in episodes(seed, 100) {
            let sc = scene_for(seed, &ep);
            let mut au = audio::Audio::new(seed, 16_000);
            au.calibrate = true;
            au.begin(&sc);
            let n = (primary_only_end(&ep).min(4.0) * 16_000.0) as usize;
            let ms = (0..n)
                .map(|i| au.sample(&sc, i as f64 / 16_000.0, i as u64).powi(2))
                .sum::<f32>()
                / n as f32;
            sum[ep.primary.index()] += ms;
            cnt[ep.primary.index()] += 1.0;
        }
    }
    for s in Situation::ALL {
        println!(
            "{:16} {:.4}",
            s.id(),
            (sum[s.index()] / cnt[s.index()]).sqrt()
        );
    }
}
