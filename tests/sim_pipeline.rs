//! Sensor layer end to end: simulated rig -> adapter thread -> rings ->
//! windows -> moments, and record -> MCAP -> replay -> rings, all bit-exact
//! against generating the world directly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgebind_sensors::adapter::{Rig, SampleConsumer, SensorAdapter};
use edgebind_sensors::adapters::{Pace, ReplayAdapter, SimAdapter};
use edgebind_sensors::moment::MomentAligner;
use edgebind_sensors::recording::Recorder;
use edgebind_sensors::sim::{SimConfig, SimWorld};
use edgebind_sensors::window::{Window, WindowConfig, Windower};
use edgebind_sensors::{Modality, Sample};

const S: u64 = 1_000_000_000;

fn config(seed: u64) -> SimConfig {
    let mut c = SimConfig {
        seed,
        ..SimConfig::default()
    };
    // Small frames keep the test quick; the bench measures full size.
    c.camera.width = 64;
    c.camera.height = 48;
    c.depth.width = 64;
    c.depth.height = 48;
    c
}

fn direct_samples(seed: u64, until: u64) -> Vec<Sample> {
    let mut w = SimWorld::new(config(seed)).unwrap();
    let mut out = Vec::new();
    while w.peek().1.mono_ns < until {
        let mut s = Sample::empty(Modality::Vision);
        w.next_into(&mut s);
        out.push(s);
    }
    out
}

/// Drains a running rig until every adapter finished; samples grouped per modality.
fn drain(
    rig: &Rig,
    consumers: &mut [(Modality, SampleConsumer)],
) -> BTreeMap<Modality, Vec<Sample>> {
    let mut got: BTreeMap<Modality, Vec<Sample>> = BTreeMap::new();
    loop {
        let mut any = false;
        for (m, c) in consumers.iter_mut() {
            while let Some(s) = c.pop_with(|s| s.clone()) {
                got.entry(*m).or_default().push(s);
                any = true;
            }
        }
        if !any {
            if rig.all_finished() && consumers.iter().all(|(_, c)| c.counters().len == 0) {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn by_modality(samples: &[Sample]) -> BTreeMap<Modality, Vec<Sample>> {
    let mut m: BTreeMap<Modality, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        m.entry(s.modality).or_default().push(s.clone());
    }
    m
}

fn windows(streams: &BTreeMap<Modality, Vec<Sample>>) -> Vec<Window> {
    let cfg = WindowConfig::default();
    let mut out = Vec::new();
    for (m, samples) in streams {
        let mut w = Windower::new(*m, cfg.spec(*m)).unwrap();
        for s in samples {
            w.push(s, &mut out).unwrap();
        }
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgebind-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn live_rig_delivers_exactly_the_simulated_world() {
    let until = 6 * S;
    let sim = SimAdapter::new(config(21), Pace::Fast, Some(until)).unwrap();
    let (mut rig, mut consumers) = Rig::start(vec![Box::new(sim)], 16).unwrap();
    let live = drain(&rig, &mut consumers);
    rig.stop().unwrap();
    let direct = by_modality(&direct_samples(21, until));
    assert_eq!(live.len(), 5);
    for m in Modality::ALL {
        assert_eq!(live[&m].len(), direct[&m].len(), "{m}");
        assert!(
            live[&m] == direct[&m],
            "{m}: live samples differ from the world"
        );
    }
    assert_eq!(windows(&live), windows(&direct));
}

#[test]
fn moments_group_windows_of_all_five_sensors() {
    let until = 9 * S;
    let streams = by_modality(&direct_samples(4, until));
    let mut ws = windows(&streams);
    // Windows arrive per modality in order; interleave by end time like a live run.
    ws.sort_by_key(|w| (w.t_end, w.modality));
    let mut aligner = MomentAligner::new(&Modality::ALL, S, S, 3 * S);
    let mut moments = Vec::new();
    for w in ws {
        aligner.push(w, &mut moments);
    }
    aligner.finish(&mut moments);
    let summary: Vec<(u64, Vec<Modality>)> =
        moments.iter().map(|m| (m.t / S, m.modalities())).collect();
    use Modality::*;
    // Frames from 1 s; 2 s audio clips from 2 s; 5 s IMU windows from 5 s. The data
    // stops at 9 s: the last audio chunk ends exactly at 9 s (window 9 complete), but
    // no frame or IMU reading at or after 9 s exists, so those windows stay open.
    let mut want = vec![(1, vec![Vision, Depth, Thermal])];
    for t in 2..=4 {
        want.push((t, vec![Vision, Audio, Depth, Thermal]));
    }
    for t in 5..=8 {
        want.push((t, vec![Vision, Audio, Depth, Thermal, Imu]));
    }
    want.push((9, vec![Audio]));
    assert_eq!(summary, want);
    for m in &moments[4..8] {
        let imu = m.window(Imu).unwrap();
        assert_eq!((imu.t_start, imu.t_end), (m.t - 5 * S, m.t));
        let edgebind_sensors::window::WindowData::Imu { samples } = &imu.data else {
            panic!("imu window without imu data")
        };
        assert_eq!(samples.len(), 1000, "5 s at 200 Hz");
        let edgebind_sensors::window::WindowData::Audio {
            samples, missing, ..
        } = &m.window(Audio).unwrap().data
        else {
            panic!("audio window without audio")
        };
        assert_eq!(
            (samples.len(), *missing),
            (32_000, 0),
            "2 s at 16 kHz, nothing lost"
        );
    }
}

#[test]
fn recording_replays_bit_exact_through_rings() {
    let until = 3 * S;
    let original = direct_samples(33, until);
    let path = tmp("roundtrip.mcap");
    let mut rec = Recorder::create(&path, &BTreeMap::new()).unwrap();
    for s in &original {
        rec.write_sample(s).unwrap();
    }
    rec.finish().unwrap();

    let replay = ReplayAdapter::new(&path, Pace::Fast).unwrap();
    assert_eq!(replay.streams().len(), 5);
    let (mut rig, mut consumers) = Rig::start(vec![Box::new(replay)], 8).unwrap();
    let back = drain(&rig, &mut consumers);
    rig.stop().unwrap();
    let want = by_modality(&original);
    for m in Modality::ALL {
        assert!(
            back[&m] == want[&m],
            "{m}: replay differs from the recording"
        );
    }
    let h = &rig.health()[0];
    assert!(h.streams.iter().all(|(_, k)| k.dropped == 0));
}

#[test]
fn damaged_recording_is_refused_before_replay() {
    let original = direct_samples(2, S);
    let path = tmp("damaged.mcap");
    let mut rec = Recorder::create(&path, &BTreeMap::new()).unwrap();
    for s in &original {
        rec.write_sample(s).unwrap();
    }
    rec.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = ReplayAdapter::new(&path, Pace::Fast)
        .err()
        .expect("damaged file refused");
    let msg = err.to_string();
    assert!(
        msg.contains("byte offset") && msg.contains("damaged.mcap"),
        "{msg}"
    );
}
