//! The `sim` adapter: the simulated world of [`crate::sim`] on a sensor thread,
//! five streams into five rings, paced in real time (like a live rig) or as
//! fast as the consumer goes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Pace, sleep_until, wait_for_room};
use crate::adapter::{
    AdapterThread, SampleProducer, SensorAdapter, SensorError, SensorState, StreamInfo,
};
use crate::modality::Modality;
use crate::sim::{SimConfig, SimConfigError, SimWorld};

/// The simulated rig as a sensor adapter.
pub struct SimAdapter {
    cfg: SimConfig,
    pace: Pace,
    until_ns: Option<u64>,
    world: Arc<Mutex<Option<SimWorld>>>,
    thread: AdapterThread,
}

impl SimAdapter {
    /// A sim rig; `until_ns` ends it (state `Finished`) at that sim time.
    pub fn new(cfg: SimConfig, pace: Pace, until_ns: Option<u64>) -> Result<Self, SimConfigError> {
        let world = SimWorld::new(cfg.clone())?;
        Ok(SimAdapter {
            cfg,
            pace,
            until_ns,
            world: Arc::new(Mutex::new(Some(world))),
            thread: AdapterThread::new(crate::adapter::AdapterCore::new("sim")),
        })
    }
}

impl SensorAdapter for SimAdapter {
    fn name(&self) -> &str {
        "sim"
    }

    fn streams(&self) -> Vec<StreamInfo> {
        let c = &self.cfg;
        let chunk_hz = 1000.0 / c.audio_chunk_ms as f64;
        vec![
            StreamInfo {
                modality: Modality::Vision,
                description: format!("sim camera {}x{} rgb8", c.camera.width, c.camera.height),
                rate_hz: c.camera.fps,
            },
            StreamInfo {
                modality: Modality::Audio,
                description: format!(
                    "sim microphone {} Hz mono, {} ms chunks",
                    c.audio_rate, c.audio_chunk_ms
                ),
                rate_hz: chunk_hz,
            },
            StreamInfo {
                modality: Modality::Depth,
                description: format!("sim depth {}x{} z16 mm", c.depth.width, c.depth.height),
                rate_hz: c.depth.fps,
            },
            StreamInfo {
                modality: Modality::Thermal,
                description: format!(
                    "sim thermal {}x{} y16 centi-kelvin",
                    c.thermal.width, c.thermal.height
                ),
                rate_hz: c.thermal.fps,
            },
            StreamInfo {
                modality: Modality::Imu,
                description: "sim IMU accel+gyro".to_string(),
                rate_hz: c.imu_rate,
            },
        ]
    }

    fn start(&mut self, outputs: Vec<SampleProducer>) -> Result<(), SensorError> {
        let slot = self.world.clone();
        let pace = self.pace;
        let until = self.until_ns;
        let streams = self.streams();
        self.thread.start(&streams, outputs, move |core, mut outs| {
            let Some(mut world) = slot.lock().ok().and_then(|mut g| g.take()) else {
                core.set_state(SensorState::Down {
                    reason: "sim world unavailable".into(),
                });
                return outs;
            };
            let t0 = world.peek().1.mono_ns;
            let wall0 = Instant::now();
            while core.running() {
                let (m, t) = world.peek();
                if until.is_some_and(|u| t.mono_ns >= u) {
                    core.set_state(SensorState::Finished);
                    break;
                }
                let out = &mut outs[m.index()];
                let go = match pace {
                    Pace::RealTime => {
                        let due = wall0 + Duration::from_nanos(t.mono_ns - t0);
                        sleep_until(due, || core.running())
                    }
                    Pace::Fast => wait_for_room(|| out.free_len(), || core.running()),
                };
                if !go {
                    break;
                }
                out.push_with(|s| world.next_into(s));
            }
            if let Ok(mut g) = slot.lock() {
                *g = Some(world);
            }
            outs
        })
    }

    fn thread(&self) -> &AdapterThread {
        &self.thread
    }

    fn thread_mut(&mut self) -> &mut AdapterThread {
        &mut self.thread
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Rig;

    fn small() -> SimConfig {
        let mut c = SimConfig {
            seed: 3,
            ..SimConfig::default()
        };
        c.camera.width = 32;
        c.camera.height = 32;
        c.depth.width = 32;
        c.depth.height = 32;
        c
    }

    #[test]
    fn fast_rig_delivers_every_sample_in_order_and_finishes() {
        let sim = SimAdapter::new(small(), Pace::Fast, Some(2_000_000_000)).unwrap();
        let (mut rig, mut consumers) = Rig::start(vec![Box::new(sim)], 4).unwrap();
        let mut counts = [0u64; 5];
        let mut last = [None::<u64>; 5];
        loop {
            let mut any = false;
            for (m, c) in consumers.iter_mut() {
                while let Some(t) = c.pop_with(|s| s.t.mono_ns) {
                    assert!(last[m.index()].is_none_or(|l| t > l));
                    last[m.index()] = Some(t);
                    counts[m.index()] += 1;
                    any = true;
                }
            }
            if !any && rig.all_finished() {
                // Drain once more: the thread may have pushed after our last pass.
                let left: u64 = consumers.iter().map(|(_, c)| c.counters().len).sum();
                if left == 0 {
                    break;
                }
            }
            std::thread::yield_now();
        }
        rig.stop().unwrap();
        let cfg = small();
        // Exact counts for 2 s: 15 fps camera/depth, 9 fps thermal, 50 chunks/s, 200 Hz IMU.
        assert_eq!(counts, [30, 100, 30, 18, 400]);
        let h = &rig.health()[0];
        assert_eq!(h.state, SensorState::Finished);
        assert!(
            h.streams.iter().all(|(_, k)| k.dropped == 0),
            "fast pace is lossless"
        );
        assert_eq!(cfg.imu_rate, 200.0);
    }

    #[test]
    fn reconnect_resumes_on_the_same_rings() {
        // Real-time pace: the unread rings overflow (drop-oldest) instead of holding the thread.
        let mut sim = SimAdapter::new(small(), Pace::RealTime, None).unwrap();
        let (p, mut c) = crate::ring::channel(1024, || crate::sample::Sample::empty(Modality::Imu));
        // Only the IMU ring is read here; the others are tiny and overflow (drop-oldest).
        let mut outs = Vec::new();
        let mut keep = Vec::new();
        for m in Modality::ALL {
            if m == Modality::Imu {
                continue;
            }
            let (p2, c2) = crate::ring::channel(1, move || crate::sample::Sample::empty(m));
            outs.push(p2);
            keep.push(c2);
        }
        outs.push(p);
        sim.start(outs).unwrap();
        let mut ts = Vec::new();
        while ts.len() < 50 {
            if let Some(t) = c.pop_with(|s| s.t.mono_ns) {
                ts.push(t);
            }
        }
        sim.reconnect().unwrap();
        assert_eq!(sim.health().starts, 2);
        assert_eq!(sim.health().state, SensorState::Up);
        while ts.len() < 100 {
            if let Some(t) = c.pop_with(|s| s.t.mono_ns) {
                ts.push(t);
            }
        }
        sim.stop().unwrap();
        assert_eq!(sim.health().state, SensorState::Stopped);
        // The world continued where it stopped: IMU times stay strictly increasing
        // with the nominal 5 ms spacing.
        assert!(ts.windows(2).all(|w| w[1] - w[0] == 5_000_000), "{ts:?}");
    }
}
