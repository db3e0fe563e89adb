//! Shared by the trainer's integration tests.

use std::collections::BTreeMap;
use std::path::Path;

use edgebind_sensors::recording::Recorder;
use edgebind_sensors::sim::{FrameStreamConfig, SimConfig, SimWorld};

/// Records `seconds` of the simulated rig (world `seed`) to `path`, the
/// imagers at 32 x 32 and `fps` frames a second (camera, depth, thermal).
pub fn record_small(path: &Path, seconds: u64, seed: u64, fps: [f64; 3]) {
    let small = |fps| FrameStreamConfig {
        width: 32,
        height: 32,
        fps,
    };
    let cfg = SimConfig {
        seed,
        camera: small(fps[0]),
        depth: small(fps[1]),
        thermal: small(fps[2]),
        ..SimConfig::default()
    };
    let mut world = SimWorld::new(cfg).unwrap();
    let mut rec = Recorder::create(path, &BTreeMap::new()).unwrap();
    rec.record_sim(&mut world, seconds * 1_000_000_000, None, |_| {})
        .unwrap();
    rec.finish().unwrap();
}
