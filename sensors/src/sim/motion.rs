//! The wearer's motion: the rig is worn on the chest/head (egocentric, like
//! Ego4D), so what the wearer does is visible to the IMU (accelerations,
//! rotation rates, the gravity direction), to the imagers (camera shake), and
//! to the microphone (footsteps, breathing).
//!
//! Motion is a sum of analytic components (oscillations, damped impulses,
//! smooth turns, windowed bursts), so angles and their rates stay consistent
//! and any time can be evaluated directly.

use std::f32::consts::{PI, TAU};

use super::actors::Actor;
use super::rng::Rng;
use super::situation::Situation;

const OSC: u8 = 0;
const DECAY: u8 = 1;
const STEP: u8 = 2;
const BURST: u8 = 3;

/// Ramp length at the edges of a component's window (s).
const RAMP: f32 = 0.25;

/// One motion component (world frame: x forward, y left, z up; angles roll,
/// pitch, yaw).
#[derive(Debug, Clone, Copy, Default)]
struct Comp {
    kind: u8,
    acc: [f32; 3],
    ang: [f32; 3],
    freq: f32,
    phase: f32,
    t0: f32,
    t1: f32,
    tau: f32,
    /// Clip window and whether its edges ramp.
    w0: f32,
    w1: f32,
    ramp_in: bool,
    ramp_out: bool,
    /// Scaled by the walking level (pauses while walking the dog).
    gated: bool,
}

/// A footstep generator for the microphone: steps at
/// `t_k = (k + 0.25 - phase / 2pi) / cadence` inside `[t0, t1)`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stepper {
    pub cadence: f32,
    pub phase: f32,
    pub loud: f32,
    pub t0: f32,
    pub t1: f32,
    pub gated: bool,
    pub run: bool,
}

/// The wearer's motion at one instant (world frame).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MotionState {
    /// Linear acceleration without gravity, m/s^2.
    pub acc: [f32; 3],
    /// Roll, pitch, yaw (rad).
    pub ang: [f32; 3],
    /// Their rates (rad/s).
    pub rate: [f32; 3],
    /// Vertical displacement (m).
    pub bob: f32,
}

/// What the wearer's body does, by priority (a higher one wins when two
/// situations overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gait {
    Rest,
    Seated,
    SeatedLean,
    Stand,
    SlowWalk,
    Brisk,
    Run,
}

fn gait_of(s: Situation) -> Gait {
    match s {
        Situation::QuietRoom => Gait::Rest,
        Situation::PeopleTalking => Gait::Seated,
        Situation::Fire => Gait::SeatedLean,
        Situation::CarPassing
        | Situation::GlassBreaking
        | Situation::MachineHumming
        | Situation::DoorSlamming => Gait::Stand,
        Situation::DogBarking => Gait::SlowWalk,
        Situation::Rain => Gait::Brisk,
        Situation::PersonRunning => Gait::Run,
    }
}

/// The motion of one episode.
#[derive(Debug, Clone)]
pub(crate) struct Motion {
    comps: Vec<Comp>,
    pauses: Vec<[f32; 2]>,
    pub steppers: Vec<Stepper>,
    dur: f32,
}

impl Motion {
    pub fn new() -> Self {
        Motion {
            comps: Vec::with_capacity(160),
            pauses: Vec::with_capacity(16),
            steppers: Vec::with_capacity(4),
            dur: 0.0,
        }
    }

    fn add(&mut self, mut c: Comp, w0: f32, w1: f32) {
        c.w0 = w0;
        c.w1 = w1;
        c.ramp_in = w0 > 0.0;
        c.ramp_out = w1 < self.dur;
        if self.comps.len() < self.comps.capacity() {
            self.comps.push(c);
        }
    }

    /// Builds the motion from the episode's actors.
    pub fn build(&mut self, rng: &mut Rng, actors: &[Actor], dur: f32, primary: Situation) {
        self.comps.clear();
        self.pauses.clear();
        self.steppers.clear();
        self.dur = dur;
        let g0 = gait_of(primary);
        match actors.get(1) {
            Some(a1) if gait_of(a1.kind) > g0 => {
                self.add_gait(rng, g0, 0.0, a1.from);
                self.add_gait(rng, gait_of(a1.kind), a1.from, a1.to);
                self.add_gait(rng, g0, a1.to, dur);
            }
            _ => self.add_gait(rng, g0, 0.0, dur),
        }
        for a in actors {
            self.add_events(rng, a);
        }
    }

    fn osc(acc: [f32; 3], ang: [f32; 3], freq: f32, phase: f32) -> Comp {
        Comp {
            kind: OSC,
            acc,
            ang,
            freq,
            phase,
            ..Comp::default()
        }
    }

    fn add_gait(&mut self, rng: &mut Rng, g: Gait, t0: f32, t1: f32) {
        if t1 <= t0 {
            return;
        }
        match g {
            Gait::Rest => {}
            Gait::Seated | Gait::SeatedLean => {
                self.add(
                    Self::osc(
                        [0.0, 0.0, 0.03],
                        [0.0, 0.008, 0.0],
                        rng.range(0.2, 0.3),
                        rng.range(0.0, TAU),
                    ),
                    t0,
                    t1,
                );
                self.add(
                    Self::osc(
                        [0.02, 0.02, 0.0],
                        [0.006, 0.0, 0.01],
                        rng.range(0.1, 0.2),
                        rng.range(0.0, TAU),
                    ),
                    t0,
                    t1,
                );
                let mut t = t0 + rng.range(0.3, 2.0);
                while t < t1 - 0.8 {
                    let len = rng.range(0.8, 1.6);
                    let c = Comp {
                        kind: BURST,
                        acc: [0.15, 0.0, 0.1],
                        ang: [0.0, rng.range(0.04, 0.1), 0.0],
                        freq: rng.range(1.2, 2.0),
                        t0: t,
                        t1: t + len,
                        ..Comp::default()
                    };
                    self.add(c, t0, t1);
                    t += len + rng.range(0.8, 3.0);
                }
                if g == Gait::SeatedLean {
                    let lean = rng.range(0.08, 0.15);
                    let st = if t0 <= 0.0 { -1.0 } else { t0 };
                    let c = Comp {
                        kind: STEP,
                        ang: [0.0, lean, 0.0],
                        t0: st,
                        tau: 1.0,
                        ..Comp::default()
                    };
                    self.add(c, t0, t1);
                }
            }
            Gait::Stand => {
                let a = rng.range(0.05, 0.15);
                self.add(
                    Self::osc(
                        [a, 0.0, 0.0],
                        [0.0, rng.range(0.006, 0.015), 0.0],
                        rng.range(0.2, 0.4),
                        rng.range(0.0, TAU),
                    ),
                    t0,
                    t1,
                );
                self.add(
                    Self::osc(
                        [0.0, a, 0.0],
                        [rng.range(0.006, 0.015), 0.0, 0.0],
                        rng.range(0.15, 0.35),
                        rng.range(0.0, TAU),
                    ),
                    t0,
                    t1,
                );
                self.add(
                    Self::osc(
                        [0.0, 0.0, 0.03],
                        [0.0; 3],
                        rng.range(0.2, 0.3),
                        rng.range(0.0, TAU),
                    ),
                    t0,
                    t1,
                );
            }
            Gait::SlowWalk | Gait::Brisk | Gait::Run => {
                let (f, av, pitch, roll, yaw, loud) = match g {
                    Gait::SlowWalk => (
                        rng.range(1.4, 1.8),
                        rng.range(1.5, 2.5),
                        0.012,
                        0.02,
                        0.015,
                        0.45,
                    ),
                    Gait::Brisk => (
                        rng.range(1.9, 2.2),
                        rng.range(2.5, 4.0),
                        0.018,
                        0.025,
                        0.02,
                        0.65,
                    ),
                    _ => (
                        rng.range(2.6, 3.0),
                        rng.range(7.0, 12.0),
                        0.035,
                        0.04,
                        0.03,
                        1.0,
                    ),
                };
                let gated = g == Gait::SlowWalk;
                let phase = rng.range(0.0, TAU);
                let push = |m: &mut Self, c: Comp| {
                    let c = Comp { gated, ..c };
                    m.add(c, t0, t1);
                };
                push(self, Self::osc([0.0, 0.0, av], [0.0, pitch, 0.0], f, phase));
                let h2 = if g == Gait::Run { 0.5 } else { 0.3 };
                push(
                    self,
                    Self::osc(
                        [0.0, 0.0, h2 * av],
                        [0.0; 3],
                        2.0 * f,
                        2.0 * phase + rng.range(-0.5, 0.5),
                    ),
                );
                if g == Gait::Run {
                    push(
                        self,
                        Self::osc(
                            [0.0, 0.0, 0.25 * av],
                            [0.0; 3],
                            3.0 * f,
                            3.0 * phase + rng.range(-0.5, 0.5),
                        ),
                    );
                }
                push(
                    self,
                    Self::osc(
                        [0.0, 0.25 * av, 0.0],
                        [roll, 0.0, yaw],
                        0.5 * f,
                        0.5 * phase,
                    ),
                );
                push(
                    self,
                    Self::osc([0.35 * av, 0.0, 0.0], [0.0; 3], f, phase + 1.0),
                );
                if self.steppers.len() < self.steppers.capacity() {
                    self.steppers.push(Stepper {
                        cadence: f,
                        phase,
                        loud,
                        t0,
                        t1,
                        gated,
                        run: g == Gait::Run,
                    });
                }
                if gated {
                    let mut t = t0 + rng.range(1.5, 4.0);
                    while t < t1 - 0.5 && self.pauses.len() < self.pauses.capacity() {
                        let e = t + rng.range(0.8, 2.5);
                        self.pauses.push([t, e]);
                        t = e + rng.range(1.5, 4.0);
                    }
                }
            }
        }
    }

    fn add_events(&mut self, rng: &mut Rng, a: &Actor) {
        let (w0, w1) = (a.from, a.to);
        match a.kind {
            Situation::DogBarking => {
                let n = 1 + ((w1 - w0) / 4.0) as u32 + rng.below(2) as u32;
                for _ in 0..n {
                    let t = rng.range(w0 + 0.4, (w1 - 0.3).max(w0 + 0.45));
                    let amp = rng.range(3.0, 6.0);
                    let s = rng.sign();
                    let c = Comp {
                        kind: DECAY,
                        acc: [amp, 0.3 * amp * s, -0.3 * amp],
                        ang: [0.02 * s, 0.01, rng.range(0.03, 0.07) * s],
                        freq: rng.range(2.5, 4.0),
                        t0: t,
                        tau: rng.range(0.06, 0.12),
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                }
            }
            Situation::CarPassing => {
                for e in &a.ev {
                    let amp = rng.range(0.15, 0.4);
                    let c = Comp {
                        kind: BURST,
                        acc: [0.4 * amp, 0.2 * amp, amp],
                        ang: [0.001, 0.001, 0.0],
                        freq: rng.range(10.0, 18.0),
                        t0: e.t - 2.0,
                        t1: e.t + 2.0,
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                }
            }
            Situation::GlassBreaking => {
                if let Some(e) = a.ev.first() {
                    let tb = e.t + rng.range(0.1, 0.2);
                    let amp = rng.range(3.0, 7.0);
                    let c = Comp {
                        kind: DECAY,
                        acc: [
                            rng.range(-1.0, 1.0) * amp,
                            rng.range(-1.0, 1.0) * amp,
                            0.7 * amp,
                        ],
                        ang: [0.02, 0.04, rng.range(0.06, 0.1) * rng.sign()],
                        freq: rng.range(2.0, 3.5),
                        t0: tb,
                        tau: rng.range(0.1, 0.2),
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                    let tr = rng.range(0.06, 0.15);
                    let c = Comp {
                        kind: DECAY,
                        acc: [tr * rng.sign(), tr * rng.sign(), tr],
                        ang: [0.002, 0.002, 0.002],
                        freq: rng.range(8.0, 11.0),
                        t0: tb + 0.3,
                        tau: rng.range(2.0, 4.0),
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                }
            }
            Situation::MachineHumming => {
                let s = a.p[3] * rng.range(0.05, 0.3);
                let v = [
                    rng.range(0.3, 1.0),
                    rng.range(0.3, 1.0),
                    rng.range(0.3, 1.0),
                ];
                self.add(
                    Self::osc(
                        [s * v[0], s * v[1], s * v[2]],
                        [0.0008; 3],
                        a.p[1],
                        rng.range(0.0, TAU),
                    ),
                    w0,
                    w1,
                );
                let s2 = 0.4 * s;
                self.add(
                    Self::osc(
                        [s2 * v[2], s2 * v[0], s2 * v[1]],
                        [0.0; 3],
                        2.0 * a.p[1],
                        rng.range(0.0, TAU),
                    ),
                    w0,
                    w1,
                );
            }
            Situation::DoorSlamming => {
                let s = rng.sign();
                for e in &a.ev {
                    let amp = rng.range(1.5, 4.0) * e.b;
                    let c = Comp {
                        kind: DECAY,
                        acc: [amp, 0.2 * amp * s, 0.3 * amp],
                        ang: [0.003, 0.006, 0.0],
                        freq: rng.range(6.0, 12.0),
                        t0: e.t + 0.01,
                        tau: rng.range(0.05, 0.09),
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                }
            }
            Situation::PeopleTalking => {
                let mut cur = 0.0;
                for e in &a.ev {
                    let target = if e.a < 0.5 { -0.06 } else { 0.06 };
                    if target != cur {
                        let c = Comp {
                            kind: STEP,
                            ang: [0.0, 0.0, target - cur],
                            t0: e.t + rng.range(0.1, 0.3),
                            tau: 0.5,
                            ..Comp::default()
                        };
                        self.add(c, w0, w1);
                        cur = target;
                    }
                }
            }
            Situation::Fire => {
                for e in &a.ev {
                    let amp = rng.range(1.0, 2.0);
                    let c = Comp {
                        kind: BURST,
                        acc: [1.5 * amp, 0.5 * amp, 1.0 * amp],
                        ang: [0.0, 0.03, 0.01],
                        freq: rng.range(2.0, 3.0),
                        t0: e.t,
                        t1: e.t + e.dur,
                        ..Comp::default()
                    };
                    self.add(c, w0, w1);
                }
            }
            Situation::QuietRoom | Situation::Rain | Situation::PersonRunning => {}
        }
    }

    /// Walking level 0..1 (0 during the pauses of a dog walk).
    pub fn walk_level(&self, t: f32) -> f32 {
        let mut l: f32 = 1.0;
        for p in &self.pauses {
            if t > p[0] - 0.3 && t < p[1] + 0.3 {
                l = l.min(((p[0] - t).max(t - p[1]) / 0.3).clamp(0.0, 1.0));
            }
        }
        l
    }

    /// Evaluates the motion at `t` (seconds from the episode start).
    pub fn eval(&self, t: f32) -> MotionState {
        let mut st = MotionState::default();
        let walk = if self.pauses.is_empty() {
            1.0
        } else {
            self.walk_level(t)
        };
        for c in &self.comps {
            if t < c.w0 || t >= c.w1 {
                continue;
            }
            let mut g = 1.0;
            if c.ramp_in {
                g = ((t - c.w0) / RAMP).min(g);
            }
            if c.ramp_out {
                g = ((c.w1 - t) / RAMP).min(g);
            }
            if c.gated {
                g *= walk;
            }
            if g <= 0.0 {
                continue;
            }
            let (a, r, bobk) = match c.kind {
                OSC => {
                    let w = TAU * c.freq;
                    let (s, co) = (w * t + c.phase).sin_cos();
                    (s, co * w, -s / (w * w))
                }
                DECAY => {
                    let d = t - c.t0;
                    if d < 0.0 || d > 10.0 * c.tau {
                        continue;
                    }
                    let w = TAU * c.freq;
                    let e = (-d / c.tau).exp();
                    let (s, co) = (w * d).sin_cos();
                    (e * s, e * (w * co - s / c.tau), 0.0)
                }
                STEP => {
                    let x = ((t - c.t0) / c.tau).clamp(0.0, 1.0);
                    let sm = x * x * (3.0 - 2.0 * x);
                    for i in 0..3 {
                        st.ang[i] += g * c.ang[i] * sm;
                        st.rate[i] += g * c.ang[i] * 6.0 * x * (1.0 - x) / c.tau;
                    }
                    continue;
                }
                _ => {
                    if t < c.t0 || t >= c.t1 {
                        continue;
                    }
                    let x = (t - c.t0) / (c.t1 - c.t0);
                    let win = (PI * x).sin().powi(2);
                    let w = TAU * c.freq;
                    let (s, co) = (w * (t - c.t0)).sin_cos();
                    (win * s, win * co * w, 0.0)
                }
            };
            for i in 0..3 {
                st.acc[i] += g * c.acc[i] * a;
                st.ang[i] += g * c.ang[i] * a;
                st.rate[i] += g * c.ang[i] * r;
            }
            st.bob += g * c.acc[2] * bobk;
        }
        st
    }

    /// Camera shake in scene units `(du, dv)` (yaw and pitch, plus the bob).
    pub fn shake(&self, t: f32) -> (f32, f32) {
        let st = self.eval(t);
        let du = st.ang[2];
        let dv = -st.ang[1] - st.bob / 3.0;
        (du.clamp(-0.11, 0.11), dv.clamp(-0.11, 0.11))
    }
}
