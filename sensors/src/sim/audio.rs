//! The microphone: every actor's sound plus the wearer's footsteps and
//! breathing, distractor sounds, a noise floor, a per-episode automatic gain
//! (so loudness does not give the situation away) and a soft limiter.
//!
//! Event sounds are analytic functions of time (barks, slams, crash, tinkles,
//! drops and crackles on hashed time slots), so they line up exactly with what
//! the camera and IMU show; only the noise colouring filters carry state.

use std::f32::consts::{PI, TAU};
use std::sync::OnceLock;

use super::actors::Actor;
use super::rng::{Rng, cell, signed, streams, unit, vnoise};
use super::scene::{Place, Scene};
use super::situation::{N_SITUATIONS, Situation};

const SIN_LEN: usize = 4096;

fn sin_table() -> &'static [f32] {
    static T: OnceLock<Vec<f32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..SIN_LEN)
            .map(|i| (i as f64 / SIN_LEN as f64 * std::f64::consts::TAU).sin() as f32)
            .collect()
    })
}

/// sin(2 pi x) by table.
#[inline(always)]
fn sin_c(tab: &[f32], cycles: f64) -> f32 {
    let f = cycles - cycles.floor();
    tab[((f * SIN_LEN as f64) as usize) & (SIN_LEN - 1)]
}

/// RMS of each situation's sound before the automatic gain (measured with
/// `nominal_rms_table` in the tests, averaged over many episodes).
const NOMINAL_RMS: [f32; N_SITUATIONS] = [
    0.011, 0.084, 0.051, 0.206, 0.037, 0.100, 0.053, 0.028, 0.116, 0.057,
];

/// Vowel formants (Hz): a, e, i, o, u.
const VOWELS: [[f32; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
];

const MAX_HARM: usize = 48;

/// Microphone synthesiser.
#[derive(Debug, Clone)]
pub(crate) struct Audio {
    rate: f32,
    seed: u64,
    nkey: u64,
    dkey: u64,
    pub(crate) calibrate: bool,
    gain: f32,
    floor: f32,
    birds: f32,
    clicks: f32,
    traffic: f32,
    hvac: f32,
    hvac_f: f32,
    wind: f32,
    /// One-pole filter states and coefficients.
    lp: [f32; 12],
    c_floor: f32,
    c_300: f32,
    c_600: f32,
    c_900: f32,
    c_1200: f32,
    c_5k: f32,
    c_150: f32,
    syl_id: u64,
    syl_amp: [f32; MAX_HARM],
    syl_n: usize,
}

impl Audio {
    pub fn new(seed: u64, rate: u32) -> Self {
        let r = rate as f32;
        let c = |fc: f32| 1.0 - (-TAU * fc / r).exp();
        Audio {
            rate: r,
            seed,
            nkey: 0,
            dkey: 0,
            calibrate: false,
            gain: 1.0,
            floor: 0.0,
            birds: 0.0,
            clicks: 0.0,
            traffic: 0.0,
            hvac: 0.0,
            hvac_f: 120.0,
            wind: 0.0,
            lp: [0.0; 12],
            c_floor: c(2500.0),
            c_300: c(300.0),
            c_600: c(600.0),
            c_900: c(900.0),
            c_1200: c(1200.0),
            c_5k: c(5000.0_f32.min(0.4 * r)),
            c_150: c(150.0),
            syl_id: 0,
            syl_amp: [0.0; MAX_HARM],
            syl_n: 0,
        }
    }

    /// New episode: microphone nuisance (level, distractors, noise floor).
    pub fn begin(&mut self, sc: &Scene) {
        let mut rng = Rng::new(self.seed, streams::AUDIO, sc.ep.index);
        self.nkey = rng.next_u64();
        self.dkey = rng.next_u64();
        let outdoor = sc.bg.place != Place::Indoor;
        let level = 10f32.powf(rng.range(-30.0, -14.0) / 20.0);
        self.gain = if self.calibrate {
            1.0
        } else {
            level / NOMINAL_RMS[sc.ep.primary.index()]
        };
        self.floor = rng.log_range(0.002, 0.008);
        let d = |rng: &mut Rng, p: f32, lo: f32, hi: f32| {
            if rng.chance(p) {
                rng.log_range(lo, hi)
            } else {
                0.0
            }
        };
        self.birds = d(&mut rng, if outdoor { 0.5 } else { 0.15 }, 0.01, 0.08);
        self.clicks = d(&mut rng, 0.3, 0.02, 0.2);
        self.traffic = d(&mut rng, if outdoor { 0.5 } else { 0.25 }, 0.02, 0.12);
        self.hvac = d(&mut rng, if outdoor { 0.05 } else { 0.3 }, 0.003, 0.02);
        self.hvac_f = if rng.chance(0.5) { 100.0 } else { 120.0 };
        self.wind = d(&mut rng, if outdoor { 0.35 } else { 0.0 }, 0.02, 0.1);
        self.lp = [0.0; 12];
        self.syl_id = 0;
    }

    /// One output sample at `t` seconds from the episode start; `n` is the
    /// absolute sample index.
    pub fn sample(&mut self, sc: &Scene, t: f64, n: u64) -> f32 {
        let tab = sin_table();
        let t32 = t as f32;
        let h = cell(self.nkey, n);
        let n1 = signed(h);
        let n2 = (h & 0xFFFF) as f32 * (1.0 / 32768.0) - 1.0;
        let n3 = ((h >> 16) & 0xFFFF) as f32 * (1.0 / 32768.0) - 1.0;
        let lp = &mut self.lp;
        // noise colouring (always advanced, so the state does not depend on what is active)
        lp[0] += self.c_floor * (n1 - lp[0]);
        lp[1] += self.c_1200 * (n2 - lp[1]);
        lp[2] += self.c_300 * (n3 - lp[2]);
        lp[3] += self.c_600 * (n1 - lp[3]);
        let hp600 = n1 - lp[3];
        lp[4] += self.c_5k * (hp600 - lp[4]);
        lp[6] += self.c_900 * (n2 - lp[6]);
        lp[7] += self.c_150 * (n3 - lp[7]);
        let (f_lp1, f_lp2, band, f_lp6, f_lp7) = (lp[1], lp[2], lp[4], lp[6], lp[7]);

        let mut dry = self.floor * (2.0 * lp[0] + 0.3 * n2);
        let mut outside = 0.0;
        for a in sc.actors() {
            let f = a.fade(t32);
            if f <= 0.0 {
                continue;
            }
            match a.kind {
                Situation::QuietRoom => {}
                Situation::DogBarking => dry += f * self.bark(a, t32, tab, n3),
                Situation::CarPassing => outside += f * self.cars(a, t, tab, f_lp1),
                Situation::Fire => dry += f * fire(a, t32, f_lp2, n2),
                Situation::Rain => outside += f * rain(a, t32, band, self.rate),
                Situation::PersonRunning => {}
                Situation::GlassBreaking => dry += f * glass(a, t32, n1, n2, self.rate),
                Situation::MachineHumming => dry += f * machine(a, t, tab, f_lp6, self.rate),
                Situation::DoorSlamming => dry += f * door(a, t32, n2, f_lp6, f_lp2),
                Situation::PeopleTalking => dry += f * self.talk(a, t32, tab, n1 - n2),
            }
        }
        // the wearer: footsteps and (running) breathing
        for st in &sc.motion.steppers {
            if t32 < st.t0 || t32 >= st.t1 {
                continue;
            }
            let x = t32 * st.cadence - 0.25 + st.phase / TAU;
            let tk = (x.floor() + 0.25 - st.phase / TAU) / st.cadence;
            let tau = t32 - tk;
            if tau < 0.15 {
                let g = if st.gated {
                    sc.motion.walk_level(tk)
                } else {
                    1.0
                };
                let thump =
                    (-tau / 0.03).exp() * (TAU * 75.0 * tau).sin() + 0.5 * (-tau / 0.01).exp() * n3;
                dry += 0.3 * st.loud * g * thump;
            }
            if st.run {
                let e = (TAU * st.cadence * 0.25 * t32).sin().max(0.0);
                dry += 0.12 * e * e * band;
            }
        }
        // distractors
        if self.birds > 0.0 {
            dry += self.birds * birds(self.dkey, t32, tab);
        }
        if self.clicks > 0.0 {
            let s = (t32 / 0.5).floor();
            let hh = cell(self.dkey ^ 0xC1, s as i64 as u64);
            if unit(hh) < 0.3 {
                let tau = t32 - (s + 0.9 * unit(hh >> 24)) * 0.5;
                if (0.0..0.01).contains(&tau) {
                    dry += self.clicks * (-tau / 0.001).exp() * n2;
                }
            }
        }
        dry += self.traffic * 3.0 * f_lp7 * (0.7 + 0.3 * vnoise(self.dkey, t32, 0.2));
        if self.hvac > 0.0 {
            dry += self.hvac
                * (sin_c(tab, self.hvac_f as f64 * t)
                    + 0.5 * sin_c(tab, 2.0 * self.hvac_f as f64 * t)
                    + 2.0 * f_lp2);
        }
        if self.wind > 0.0 {
            dry += self.wind * 3.0 * f_lp7 * vnoise(self.dkey ^ 0x77, t32, 0.4);
        }
        if sc.bg.place == Place::Indoor {
            // heard through the window: muffled
            self.lp[5] += self.c_900 * (outside - self.lp[5]);
            outside = 0.7 * self.lp[5];
        }
        let x = (dry + outside) * self.gain;
        soft_clip(x)
    }

    fn bark(&self, a: &Actor, t: f32, tab: &[f32], noise: f32) -> f32 {
        let Some((k, tau)) = a.bark_at(t) else {
            return 0.0;
        };
        let e = &a.ev[k];
        let d = e.dur;
        let mut env = (tau / 0.008).min(1.0) * (-(tau - 0.02).max(0.0) / (0.45 * d)).exp();
        if tau > d {
            env *= (1.0 - (tau - d) / 0.04).max(0.0);
        }
        let f0 = a.p[0] * e.b;
        let phase = f0 as f64 * (tau + 0.3 * d / PI * (1.0 - (PI * tau / d).cos())) as f64;
        let mut s = 0.0;
        for k in 1..=7 {
            let fk = k as f32 * f0;
            if fk > 0.45 * self.rate {
                break;
            }
            let r = (fk - 1100.0) / 700.0;
            let w = 1.0 / (1.0 + r * r) + 0.3 / k as f32;
            s += w * sin_c(tab, k as f64 * phase);
        }
        0.35 * e.a * env * (0.5 * s + 0.3 * noise)
    }

    fn cars(&self, a: &Actor, t: f64, tab: &[f32], tyre_noise: f32) -> f32 {
        let z = a.z as f64;
        let mut s = 0.0;
        let mut amp_sum = 0.0;
        for e in &a.ev {
            let (tc, v) = (e.t as f64, e.a as f64);
            if (t - tc).abs() > 8.0 {
                continue;
            }
            // emission time: t = te + d(te) / c (Doppler and delay, exactly)
            let mut te = t;
            for _ in 0..3 {
                let x = v * (te - tc);
                te = t - (x * x + z * z).sqrt() / 343.0;
            }
            let x = v * (te - tc);
            let d = (x * x + z * z).sqrt();
            let amp = (z / d) as f32;
            let fe = a.p[0] as f64 * (0.85 + 0.3 * (e.c as f64 * 7.31).fract());
            let ph = fe * te;
            let eng = sin_c(tab, ph)
                + 0.6 * sin_c(tab, 2.0 * ph)
                + 0.4 * sin_c(tab, 3.0 * ph)
                + 0.25 * sin_c(tab, 4.0 * ph + 0.3);
            s += 0.1 * amp * eng;
            amp_sum += amp * amp;
        }
        s + 1.2 * amp_sum * tyre_noise
    }

    fn talk(&mut self, a: &Actor, t: f32, tab: &[f32], hiss: f32) -> f32 {
        let Some(s) = a.syllable_at(t) else {
            return 0.0;
        };
        let tau = t - s.t0;
        let x = tau / s.dur;
        let env = (PI * x).sin().max(0.0).sqrt();
        if s.id != self.syl_id {
            self.syl_id = s.id;
            let f0m = 0.5 * (s.f0a + s.f0b);
            let scale = if s.speaker == 1 { 1.17 } else { 1.0 };
            let fm = VOWELS[s.vowel];
            let n = ((0.45 * self.rate / f0m) as usize).min(MAX_HARM);
            let mut sum = 0.0;
            for k in 1..=n {
                let f = k as f32 * f0m;
                let mut w = 0.0;
                for (j, fj) in fm.iter().enumerate() {
                    let bw = 90.0 + 40.0 * j as f32;
                    let r = (f - fj * scale) / bw;
                    w += [1.0, 0.6, 0.3][j] / (1.0 + r * r);
                }
                w *= (k as f32).powf(-0.4);
                self.syl_amp[k - 1] = w;
                sum += w;
            }
            for w in &mut self.syl_amp[..n] {
                *w /= sum.max(1e-6);
            }
            self.syl_n = n;
        }
        let phase = (s.f0a * tau + (s.f0b - s.f0a) * tau * tau / (2.0 * s.dur)) as f64;
        let mut v = 0.0;
        for (k, w) in self.syl_amp[..self.syl_n].iter().enumerate() {
            v += w * sin_c(tab, (k + 1) as f64 * phase);
        }
        let mut out = 0.6 * env * v;
        if s.fric && tau < 0.05 {
            out += 0.12 * (1.0 - tau / 0.05) * hiss;
        }
        out
    }
}

fn fire(a: &Actor, t: f32, roar_noise: f32, noise: f32) -> f32 {
    let roar = 0.25 * roar_noise * (0.6 + 0.4 * vnoise(a.key, t, 3.0)) * a.p[1];
    let poke = a.ev.iter().any(|e| t >= e.t && t < e.t + e.dur);
    let p = 0.16 * a.p[1] * if poke { 3.0 } else { 1.0 };
    let slot = (t / 0.008).floor();
    let mut c = 0.0;
    for s in [slot - 1.0, slot] {
        let h = cell(a.key ^ 0xC7, s as i64 as u64);
        if unit(h) < p {
            let tau = t - (s + unit(h >> 24)) * 0.008;
            if (0.0..0.012).contains(&tau) {
                let u = unit(h >> 40);
                c += (0.05 + 0.6 * u * u * u) * (-tau / 0.0015).exp() * noise;
            }
        }
    }
    roar + c
}

fn rain(a: &Actor, t: f32, band: f32, rate: f32) -> f32 {
    let hiss = 0.35 * a.p[4] * band * (0.8 + 0.3 * vnoise(a.key, t, 0.7));
    let slot = (t / 0.004).floor();
    let mut d = 0.0;
    for k in 0..3 {
        let s = slot - k as f32;
        let h = cell(a.key ^ 0xD2, s as i64 as u64);
        if unit(h) < a.p[5] {
            let tau = t - (s + unit(h >> 24)) * 0.004;
            if (0.0..0.01).contains(&tau) {
                let fd = (1500.0 + 3500.0 * unit(h >> 40)).min(0.45 * rate);
                d += (0.03 + 0.1 * unit(h >> 52)) * (-tau / 0.0015).exp() * (TAU * fd * tau).sin();
            }
        }
    }
    hiss + d
}

fn glass(a: &Actor, t: f32, n1: f32, n2: f32, rate: f32) -> f32 {
    let e = &a.ev[0];
    let tau = t - e.t;
    if tau < 0.0 {
        return 0.0;
    }
    let mut s = 0.0;
    if tau < 1.5 {
        let env = (tau / 0.001).min(1.0) * (0.7 * (-tau / 0.06).exp() + 0.3 * (-tau / 0.35).exp());
        s += 0.6 * e.c * env * (n1 - n2) * 0.5;
    }
    let now = (tau / 0.015).floor();
    for k in 0..5 {
        let sl = now - k as f32;
        if sl < 0.0 {
            break;
        }
        let h = cell(a.key ^ 0x71, sl as u64);
        let ti = (sl + unit(h >> 24)) * 0.015;
        let prob = 0.9 * (-ti / 0.6).exp() + 0.04;
        if unit(h) < prob {
            let d = tau - ti;
            if (0.0..0.08).contains(&d) {
                let f1 = (2500.0 + 5500.0 * unit(h >> 36)).min(0.4 * rate);
                let f2 = (2.76 * f1).min(0.45 * rate);
                let amp = (0.04 + 0.12 * unit(h >> 48)) * (0.3 + 0.7 * (-ti / 1.5).exp());
                s += amp * (-d / 0.025).exp() * ((TAU * f1 * d).sin() + 0.5 * (TAU * f2 * d).sin());
            }
        }
    }
    s
}

fn machine(a: &Actor, t: f64, tab: &[f32], fan: f32, rate: f32) -> f32 {
    const W: [f32; 8] = [0.25, 1.0, 0.3, 0.45, 0.15, 0.25, 0.08, 0.12];
    let fm = a.p[0] as f64;
    let mut s = 0.0;
    for (k, w) in W.iter().enumerate() {
        let f = (k + 1) as f64 * fm;
        if f > 0.45 * rate as f64 {
            break;
        }
        s += w * sin_c(tab, f * t);
    }
    let rot = 0.3 * sin_c(tab, 2.0 * a.p[1] as f64 * t);
    let m = 1.0 + 0.1 * (TAU * 0.7 * t as f32).sin();
    0.1 * m * (s + rot) + 0.3 * fan
}

fn door(a: &Actor, t: f32, click_noise: f32, tail_noise: f32, low_noise: f32) -> f32 {
    let ft = 55.0 + 30.0 * unit(a.key);
    let trev = 0.15 + 0.25 * unit(a.key >> 20);
    let mut s = 0.0;
    let Some(k) = a.last_ev(t) else { return 0.0 };
    let e = &a.ev[k];
    let tau = t - e.t;
    if tau < 1.2 {
        let thump = (-tau / 0.09).exp() * (TAU * ft * tau).sin();
        let click = (-tau / 0.004).exp() * click_noise;
        let tail = (-tau / trev).exp() * (tail_noise + low_noise);
        let rattle = if tau > 0.07 {
            (-(tau - 0.07) / 0.006).exp() * click_noise
        } else {
            0.0
        };
        s += e.b * (0.6 * thump + 0.35 * click + 0.5 * tail + 0.2 * rattle);
    }
    s
}

fn birds(k: u64, t: f32, tab: &[f32]) -> f32 {
    let slot = (t / 0.25).floor();
    let mut s = 0.0;
    for sl in [slot - 1.0, slot] {
        let h = cell(k ^ 0xB1, sl as i64 as u64);
        if unit(h) < 0.25 {
            let ti = (sl + 0.6 * unit(h >> 20)) * 0.25;
            let d = 0.05 + 0.1 * unit(h >> 30);
            let tau = t - ti;
            if (0.0..d).contains(&tau) {
                let fa = 2500.0 + 2500.0 * unit(h >> 40);
                let fb = fa * (0.7 + 0.7 * unit(h >> 50));
                let ph = fa * tau + (fb - fa) * tau * tau / (2.0 * d);
                let w = (PI * tau / d).sin();
                s += w * w * sin_c(tab, ph as f64);
            }
        }
    }
    s
}

/// Linear below 0.75, then a tanh knee to +-1.
#[inline]
fn soft_clip(x: f32) -> f32 {
    let a = x.abs();
    if a <= 0.75 {
        x
    } else {
        (0.75 + 0.25 * ((a - 0.75) / 0.25).tanh()).copysign(x)
    }
}
