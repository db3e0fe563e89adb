//! The simulated world: a seeded, deterministic multi-sensor rig.
//!
//! A wearer carries an egocentric rig (chest/head mounted, as in Ego4D, where
//! ImageBind's IMU data came from) with an RGB camera, a microphone, a depth
//! sensor, a thermal camera and an IMU. A hidden scene state drives all five
//! consistently: the same dog whose mouth opens on camera is heard barking at
//! that instant, its warm body shows in the thermal image at the depth the
//! depth sensor measures, and the wearer walking it shakes the camera and the
//! IMU at the same cadence as the footsteps on the microphone.
//!
//! # Timeline
//! Sim time is cut into **episodes** of 4-12 s. Each has a primary
//! [`Situation`], dealt from a shuffled deck of all ten (every situation once
//! per ten episodes, never the same twice in a row), and with probability 0.3
//! a second situation from a plausible companion list (rain + dog barking,
//! machine humming + people talking, fire + people talking, rain + person
//! running, dog barking + car passing, ...) that overlaps the middle part of
//! the episode. Both then show in every modality at once. Within an episode
//! things change: objects move, barks, slams and car passes happen at random
//! times. [`SimWorld::truth_until`] gives the exact active set as contiguous
//! [`TruthSpan`]s.
//!
//! # What each sensor perceives
//!
//! | situation | camera | depth | thermal | microphone | IMU (wearer) |
//! |---|---|---|---|---|---|
//! | quiet_room | the place only | the place only | the place only | noise floor, distractors | device resting still (gravity only) |
//! | people_talking | two people (sometimes seated at a table), mouths open per syllable, gestures while speaking | two bodies at 1.6-4 m | faces ~33-35 °C, clothing cooler, mouths warm when open | two voices (f0 95-140 / 170-240 Hz), formant vowels, turns | seated: slow nods, head turns to the speaker |
//! | dog_barking | dog (body, head, legs trotting, tail wagging), jaw opens on each bark | dog at 1.8-5.5 m | fur warmer than people's clothes, open mouth ~37 °C | harmonic barks (f0 by dog size) in bursts | slow walk 1.4-1.8 Hz with pauses, leash tugs (jerks) |
//! | car_passing | cars crossing (body, windows, turning wheels, lights); behind the window when indoors | car at its lane depth | warm bonnet 45-75 °C, tyres, exhaust plume (glass is opaque to LWIR: nothing through a window) | engine harmonics + tyre noise, 1/r swell, exact Doppler | standing: sway + 10-18 Hz rumble swelling as each car passes |
//! | fire | flames (flickering triangles), logs, embers, sparks, glow; fireplace indoors, stone ring outdoors; poking stick | flames drop out (holes), logs solid | flames clip at the 150 °C sensor maximum, warm glow | roar + crackle impulses (more while poking) | seated, leaning forward, poking bursts |
//! | rain | streaks (full view outdoors, on the window indoors), splashes, droplets on the pane | sparse near returns from drops | wet surfaces cool towards rain temperature, cool streaks | band-passed hiss + drop ticks (muffled indoors) | brisk walk 1.9-2.2 Hz |
//! | person_running | a runner ahead (legs alternating, bobbing) or runners crossing | runner's body | warm skin, exercised | the wearer's footsteps + breathing | running 2.6-3.0 Hz, 7-12 m/s^2 vertical |
//! | glass_breaking | pane with frame; at the break: cracks, a hole, shards falling to the floor | pane partly transparent, hole, shards | cold/warm air from the other side flows through the hole | crash burst + decaying high tinkles | startle jolt, then stillness + 8-11 Hz tremor |
//! | machine_humming | box with grille, panel, blinking LED, vibrating | box | casing 35-50 °C, vent 45-65 °C | mains hum 50/60 Hz + harmonics, rotor tone, fan | sustained 30-60 Hz vibration |
//! | door_slamming | door swinging open slowly and slamming, the room behind visible when open | opening shows the room behind | room behind at ±3-10 °C, draught along the gap after a slam | thump + click + rattle + reverb tail | sharp damped impulse along one axis per slam |
//!
//! # Nuisance variables (so that no trivial feature gives a situation away)
//! * **Place** per episode: a room (wall 2.5-6 m, angled, floor of planks,
//!   carpet or tiles, ceiling, a window), a yard (lawn, fence, sky) or a
//!   street (pavement, kerb, road, buildings, sky); drawn with a
//!   situation-dependent probability that is never 0 or 1.
//! * **Clutter** per place, random per episode: tables, bookcases, sofas,
//!   pictures, lamps (lit or not), plants, radiators (hot in cold weather),
//!   televisions (on: bright and warm), closed doors, people sitting or standing
//!   still, trees, bushes, posts, benches, bins, parked cars (cold engines).
//! * **Camera**: exposure (0.4-1.35), white balance, slow exposure drift,
//!   sensor noise; camera shake from the wearer's motion.
//! * **Microphone**: an automatic gain normalises each episode to a random
//!   level (-30..-14 dBFS), so loudness says nothing; distractors (birds,
//!   clicks, distant traffic, HVAC hum, wind) at random levels; a noise floor.
//! * **Depth**: distance-squared noise (1-3 mm/m^2), random dropouts (more
//!   outdoors and in sunshine), a ±1 % scale error.
//! * **Thermal**: indoor air 19-25 °C, outdoor -5..32 °C, sunshine heating,
//!   cold sky, slow gain/offset drift, column fixed-pattern noise, NETD noise.
//! * **IMU**: a random mounting rotation per episode (any axis may point up,
//!   ±17° tilt, any heading), accelerometer scale (±3 %) and bias (±0.15
//!   m/s^2), gyro bias (±0.01 rad/s), white noise.
//!
//! # Streams and defaults
//! * camera: RGB8, 224x224 at 15 fps; depth: Z16 mm, 224x224 at 15 fps;
//!   thermal: Y16 centi-kelvin ((°C + 273.15) * 100, Lepton TLinear), 160x120
//!   at 9 fps, clipped to -40..150 °C. The three imagers are co-registered
//!   (same optical axis, ~1 rad vertical field; other aspect ratios see more
//!   or less horizontally).
//! * audio: mono f32 in [-1, 1] at 16 kHz, in 20 ms chunks; IMU: 200 Hz,
//!   accel (m/s^2, including gravity: at rest it reads 9.81 upwards) and gyro
//!   (rad/s) in the device frame.
//! * Frame `i` is at `round(i * 1e9 / fps)` ns; audio chunk `k` starts at
//!   sample `k * chunk_len` and is stamped `sample * 1e9 / rate` (integer
//!   division); IMU sample `i` at `round(i * 1e9 / imu_rate)`. All timestamps
//!   are [`Timestamp::sim`].
//! * [`SimWorld::peek`] / [`SimWorld::next_into`] merge the five streams in
//!   time order, ties broken by [`Modality::ALL`] order.
//!
//! # Determinism
//! Everything derives from `seed` through a SplitMix64 generator and a
//! stateless hash keyed by `(seed, stream, index)`: the timeline has its own
//! stream, the shared scene of episode `k` is built from `(seed, scene, k)`,
//! and each sensor has its own stream for its nuisance and noise (per-pixel
//! and per-sample noise is hashed from the frame/sample index). Each stream
//! rebuilds the scene it needs itself, so one modality's bytes never depend on
//! how calls interleave, and [`SimWorld::truth_until`] never disturbs the
//! streams. Same seed and config give bit-identical samples on one machine
//! (single-threaded f32/f64 math, no hash-map iteration).
//!
//! # Cost
//! The background of each episode is rendered once into a cache per imager;
//! a frame is a row copy, the actors' footprints and one pass of hash noise.
//! No allocation happens per sample once the caller's buffers have grown.

mod actors;
mod audio;
mod canvas;
mod depth;
mod imu;
mod motion;
mod prim;
mod rng;
mod scene;
mod situation;
mod thermal;
mod timeline;
mod vision;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use situation::Situation;
pub use timeline::TruthSpan;

use crate::clock::{NS_PER_SEC, Timestamp};
use crate::modality::Modality;
use crate::sample::{Payload, PixelFormat, Sample};
use scene::Scene;
use timeline::Cursor;

/// Size and rate of one frame stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameStreamConfig {
    /// Width in pixels (8..=4096).
    pub width: u32,
    /// Height in pixels (8..=4096).
    pub height: u32,
    /// Frames per second (1..=120).
    pub fps: f64,
}

/// Configuration of the simulated rig. Every field has a default (see
/// [`SimConfig::default`]); unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the world: same seed and config, same bytes.
    pub seed: u64,
    /// RGB8 camera (default 224x224 at 15 fps).
    pub camera: FrameStreamConfig,
    /// Z16 depth sensor (default 224x224 at 15 fps).
    pub depth: FrameStreamConfig,
    /// Y16 centi-kelvin thermal camera (default 160x120 at 9 fps, Lepton-like).
    pub thermal: FrameStreamConfig,
    /// Microphone sample rate, Hz (default 16000, mono; 8000..=96000).
    pub audio_rate: u32,
    /// Audio chunk length, ms (default 20; 1..=1000).
    pub audio_chunk_ms: u32,
    /// IMU sample rate, Hz (default 200; 10..=2000).
    pub imu_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            camera: FrameStreamConfig {
                width: 224,
                height: 224,
                fps: 15.0,
            },
            depth: FrameStreamConfig {
                width: 224,
                height: 224,
                fps: 15.0,
            },
            thermal: FrameStreamConfig {
                width: 160,
                height: 120,
                fps: 9.0,
            },
            audio_rate: 16_000,
            audio_chunk_ms: 20,
            imu_rate: 200.0,
        }
    }
}

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    /// `field` is `value`, outside `min..=max`.
    #[error("sim config: `{field}` = {value} is out of range (allowed {min}..={max})")]
    OutOfRange {
        /// Dotted field name, e.g. `camera.fps`.
        field: &'static str,
        /// The rejected value.
        value: f64,
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
}

impl SimConfig {
    /// Checks every field against its allowed range.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        fn check(
            field: &'static str,
            value: f64,
            min: f64,
            max: f64,
        ) -> Result<(), SimConfigError> {
            if value.is_finite() && (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(SimConfigError::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            }
        }
        let streams = [
            (
                &self.camera,
                ["camera.width", "camera.height", "camera.fps"],
            ),
            (&self.depth, ["depth.width", "depth.height", "depth.fps"]),
            (
                &self.thermal,
                ["thermal.width", "thermal.height", "thermal.fps"],
            ),
        ];
        for (s, names) in streams {
            check(names[0], s.width as f64, 8.0, 4096.0)?;
            check(names[1], s.height as f64, 8.0, 4096.0)?;
            check(names[2], s.fps, 1.0, 120.0)?;
        }
        check("audio_rate", self.audio_rate as f64, 8000.0, 96000.0)?;
        check("audio_chunk_ms", self.audio_chunk_ms as f64, 1.0, 1000.0)?;
        check("imu_rate", self.imu_rate, 10.0, 2000.0)
    }

    /// Samples per audio chunk.
    pub fn audio_chunk_len(&self) -> usize {
        ((self.audio_rate as u64 * self.audio_chunk_ms as u64 + 500) / 1000).max(1) as usize
    }
}

/// Timestamp (ns) of item `i` of a stream at `rate` Hz, rounded to the nearest ns.
fn rate_ts(i: u64, rate: f64) -> u64 {
    if rate.fract() == 0.0 {
        let r = rate as u128;
        ((i as u128 * NS_PER_SEC as u128 * 2 + r) / (2 * r)) as u64
    } else {
        (i as f64 * NS_PER_SEC as f64 / rate).round() as u64
    }
}

/// One stream's view of the timeline and its own copy of the current scene.
struct Track {
    seed: u64,
    cursor: Cursor,
    scene: Box<Scene>,
}

impl Track {
    fn new(seed: u64) -> Self {
        Track {
            seed,
            cursor: Cursor::new(seed),
            scene: Box::new(Scene::new()),
        }
    }

    /// Moves to the episode containing `t_ns`; true when the scene was rebuilt.
    fn seek(&mut self, t_ns: u64) -> bool {
        self.cursor.seek(t_ns);
        if self.scene.ep.index != self.cursor.ep.index
            || self.scene.ep.start_ns != self.cursor.ep.start_ns
        {
            self.scene.rebuild(self.seed, &self.cursor.ep);
            true
        } else {
            false
        }
    }
}

/// The simulated world: five sensor streams merged in time order, plus the
/// ground truth. See the [module docs](self).
pub struct SimWorld {
    cfg: SimConfig,
    chunk_len: usize,
    next: [u64; 5],
    next_t: [u64; 5],
    tracks: [Track; 5],
    vision: vision::Vision,
    depth: depth::Depth,
    thermal: thermal::Thermal,
    audio: audio::Audio,
    imu: imu::Imu,
    query: Cursor,
}

impl std::fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWorld")
            .field("cfg", &self.cfg)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SimWorld {
    /// A world for `cfg`, at sim time 0; the error names the bad field.
    pub fn new(cfg: SimConfig) -> Result<Self, SimConfigError> {
        cfg.validate()?;
        let seed = cfg.seed;
        let dims = |s: &FrameStreamConfig| (s.width as usize, s.height as usize);
        let (vw, vh) = dims(&cfg.camera);
        let (dw, dh) = dims(&cfg.depth);
        let (tw, th) = dims(&cfg.thermal);
        let mut w = SimWorld {
            chunk_len: cfg.audio_chunk_len(),
            next: [0; 5],
            next_t: [0; 5],
            tracks: std::array::from_fn(|_| Track::new(seed)),
            vision: vision::Vision::new(seed, vw, vh),
            depth: depth::Depth::new(seed, dw, dh),
            thermal: thermal::Thermal::new(seed, tw, th),
            audio: audio::Audio::new(seed, cfg.audio_rate),
            imu: imu::Imu::new(seed),
            query: Cursor::new(seed),
            cfg,
        };
        for m in Modality::ALL {
            w.next_t[m.index()] = w.stream_ts(m, 0);
        }
        Ok(w)
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    fn stream_ts(&self, m: Modality, i: u64) -> u64 {
        match m {
            Modality::Vision => rate_ts(i, self.cfg.camera.fps),
            Modality::Depth => rate_ts(i, self.cfg.depth.fps),
            Modality::Thermal => rate_ts(i, self.cfg.thermal.fps),
            Modality::Audio => self.audio_sample_ts(i * self.chunk_len as u64),
            Modality::Imu => rate_ts(i, self.cfg.imu_rate),
        }
    }

    fn audio_sample_ts(&self, n: u64) -> u64 {
        (n as u128 * NS_PER_SEC as u128 / self.cfg.audio_rate as u128) as u64
    }

    /// Modality and timestamp of the next sample: all five streams merged in
    /// time order, ties broken by [`Modality::ALL`] order.
    pub fn peek(&self) -> (Modality, Timestamp) {
        let mut best = Modality::Vision;
        for m in Modality::ALL {
            if self.next_t[m.index()] < self.next_t[best.index()] {
                best = m;
            }
        }
        (best, Timestamp::sim(self.next_t[best.index()]))
    }

    /// Writes the next sample into `out`, reusing its buffers (no allocation
    /// once their capacities are reached). Timestamps are [`Timestamp::sim`].
    pub fn next_into(&mut self, out: &mut Sample) {
        let (m, ts) = self.peek();
        let t = ts.mono_ns;
        let i = self.next[m.index()];
        out.modality = m;
        out.t = ts;
        let t_abs = t as f64 * 1e-9;
        match m {
            Modality::Vision | Modality::Depth | Modality::Thermal => {
                let (sc, format) = match m {
                    Modality::Vision => (&self.cfg.camera, PixelFormat::Rgb8),
                    Modality::Depth => (&self.cfg.depth, PixelFormat::DepthZ16),
                    _ => (&self.cfg.thermal, PixelFormat::ThermalY16),
                };
                let frame = out.frame_mut();
                frame.width = sc.width;
                frame.height = sc.height;
                frame.format = format;
                let n = frame.expected_len();
                frame.data.resize(n, 0);
                let tr = &mut self.tracks[m.index()];
                let changed = tr.seek(t);
                let scene = &tr.scene;
                let rel = scene.ep.rel_s(t);
                match m {
                    Modality::Vision => {
                        if changed {
                            self.vision.begin(scene);
                        }
                        self.vision.render(scene, rel, t_abs, i, &mut frame.data);
                    }
                    Modality::Depth => {
                        if changed {
                            self.depth.begin(scene);
                        }
                        self.depth.render(scene, rel, i, &mut frame.data);
                    }
                    _ => {
                        if changed {
                            self.thermal.begin(scene);
                        }
                        self.thermal.render(scene, rel, t_abs, i, &mut frame.data);
                    }
                }
            }
            Modality::Audio => {
                let rate = self.cfg.audio_rate;
                let n0 = i * self.chunk_len as u64;
                let chunk = out.audio_mut();
                chunk.sample_rate = rate;
                chunk.channels = 1;
                chunk.samples.clear();
                let tr = &mut self.tracks[Modality::Audio.index()];
                for n in n0..n0 + self.chunk_len as u64 {
                    let tn = (n as u128 * NS_PER_SEC as u128 / rate as u128) as u64;
                    if (tn >= tr.scene.ep.end_ns || tr.scene.ep.index == u64::MAX) && tr.seek(tn) {
                        self.audio.begin(&tr.scene);
                    }
                    let rel = n as f64 / rate as f64 - tr.scene.ep.start_ns as f64 * 1e-9;
                    chunk.samples.push(self.audio.sample(&tr.scene, rel, n));
                }
            }
            Modality::Imu => {
                let tr = &mut self.tracks[Modality::Imu.index()];
                if tr.seek(t) {
                    self.imu.begin(tr.scene.ep.index);
                }
                let st = tr.scene.motion.eval(tr.scene.ep.rel_s(t));
                out.payload = Payload::Imu(self.imu.sample(&st, i));
            }
        }
        self.next[m.index()] = i + 1;
        self.next_t[m.index()] = self.stream_ts(m, i + 1);
    }

    /// Ground truth: the consecutive, non-overlapping spans covering
    /// `[0, until_ns)` (a span that straddles `until_ns` is included whole).
    /// A pure function of the seed: never disturbs the sensor streams.
    pub fn truth_until(&mut self, until_ns: u64) -> Vec<TruthSpan> {
        timeline::truth_until(self.cfg.seed, until_ns)
    }

    /// The situations active at sim time `t_ns`, sorted.
    pub fn situations_at(&mut self, t_ns: u64) -> Vec<Situation> {
        self.query.seek(t_ns);
        self.query.ep.active_at(t_ns)
    }
}
