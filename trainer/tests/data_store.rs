//! The trainer's input store on a real (short) recording of the simulated
//! rig: a 7-frame camera clip 0.5 s apart keeps each frame once although
//! neighbouring moments share most of their frames, and every row reads
//! back bit for bit what the daemon's windowing and preprocessing give for
//! that window, read here a second time, independently of the trainer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebind_models::contract::{ContractModality, Preprocess};
use edgebind_models::preprocess::Preprocessor;
use edgebind_models::preprocess::imu::ImuParams;
use edgebind_models::preprocess::vision::VisionParams;
use edgebind_sensors::recording::{McapReader, decode_sample};
use edgebind_sensors::sample::Sample;
use edgebind_sensors::window::{WindowConfig, Windower};
use edgebind_trainer::data::{LoadSpec, load};

mod common;

/// `m`'s items by window end, read without the trainer.
fn direct(path: &Path, m: ContractModality, p: &Preprocess) -> BTreeMap<u64, Vec<f32>> {
    let sm = m.sensor().unwrap();
    let mut windower = Windower::new(sm, WindowConfig::default().spec(sm))
        .unwrap()
        .with_clip_frames(p.clip_s(), p.frames())
        .unwrap();
    let mut pre = Preprocessor::new(p).unwrap();
    let mut sample = Sample::empty(sm);
    let (mut windows, mut out) = (Vec::new(), BTreeMap::new());
    let mut reader = McapReader::open(path).unwrap();
    let mut take = |windows: &mut Vec<_>, out: &mut BTreeMap<u64, Vec<f32>>| {
        for w in windows.drain(..) {
            let mut items = pre.window(&w).unwrap();
            assert_eq!(items.len(), 1);
            out.insert(w.t_end, items.pop().unwrap().data);
        }
    };
    while let Some(msg) = reader.next_message().unwrap() {
        if msg.channel.modality != Some(sm) {
            continue;
        }
        decode_sample(path, &msg, &mut sample).unwrap();
        windower.push(&sample, &mut windows).unwrap();
        take(&mut windows, &mut out);
    }
    windower.finish(&mut windows);
    take(&mut windows, &mut out);
    out
}

#[test]
fn clip_frames_are_stored_once_and_rows_read_back_exactly() {
    let d: PathBuf =
        std::env::temp_dir().join(format!("edgebind-data-store-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("sim.mcap");
    common::record_small(&path, 40, 21, [4.0, 4.0, 4.0]);

    let vision = Preprocess::Vision(VisionParams {
        resize: 32,
        crop: 32,
        frames: 7,
        clip_s: 0.5,
        ..VisionParams::default()
    });
    let imu = Preprocess::Imu(ImuParams::default());
    let spec = LoadSpec {
        preprocess: BTreeMap::from([
            (ContractModality::Vision, vision.clone()),
            (ContractModality::Imu, imu.clone()),
        ]),
        windows: WindowConfig::default(),
        segment_s: 10.0,
        holdout: 0.25,
    };
    let ds = load(std::slice::from_ref(&path), &spec, |_, _, _| {}).unwrap();
    let rows = ds.moments.len();
    assert!(rows >= 25, "{rows} moments from 40 s");

    let v = &ds.inputs[&ContractModality::Vision];
    assert_eq!(v.item, [3, 7, 32, 32]);
    assert_eq!(v.rows(), rows);
    // Moments 1 s apart, frames 0.5 s apart: every frame a clip takes sits
    // on the 0.5 s grid, so 40 s hold at most 81 distinct ones (windows
    // that make no moment, before the IMU's first 5 s window or at split
    // edges, add theirs), against 7 a moment stored as rows.
    let distinct = v.distinct_parts();
    assert!(distinct <= 81, "{distinct} distinct frames in 40 s");
    assert!(
        2 * distinct < 7 * rows,
        "{distinct} frames for {rows} moments: no sharing"
    );
    assert!(v.bytes() < rows * v.item_len() * 4 / 2);

    let i = &ds.inputs[&ContractModality::Imu];
    assert_eq!(i.rows(), rows);
    assert_eq!(i.parts(), 1);

    for (m, p, store) in [
        (ContractModality::Vision, &vision, v),
        (ContractModality::Imu, &imu, i),
    ] {
        let want = direct(&path, m, p);
        for (k, mm) in ds.moments.iter().enumerate() {
            let w = &want[&mm.t_end];
            let got = store.row(k);
            assert_eq!(got.len(), w.len());
            assert!(
                got.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} row {k} (t_end {} ns) differs from its window",
                m.as_str(),
                mm.t_end
            );
        }
    }
    std::fs::remove_dir_all(&d).ok();
}
