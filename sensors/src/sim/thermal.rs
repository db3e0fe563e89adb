//! The thermal camera (a FLIR Lepton in radiometric TLinear mode): u16
//! centi-kelvin. Scene temperatures in °C, then the sensor: slow per-episode
//! gain/offset drift, column fixed-pattern noise, temporal noise, and the
//! high-gain range clip (-40..150 °C).

use std::f32::consts::TAU;

use super::canvas::Canvas;
use super::prim::{ADD, Prim, THM};
use super::rng::{Rng, cell, gauss, key, streams};
use super::scene::Scene;

/// Clip range of the sensor (°C).
pub(crate) const T_MIN_C: f32 = -40.0;
pub(crate) const T_MAX_C: f32 = 150.0;

/// Thermal renderer.
#[derive(Debug, Clone)]
pub(crate) struct Thermal {
    cv: Canvas<f32>,
    prims: Vec<Prim>,
    fpn: Vec<f32>,
    seed: u64,
    gain: f32,
    offset: f32,
    drift: (f32, f32, f32),
    noise: f32,
}

#[inline]
fn put(p: &Prim, buf: &mut [f32], i: usize, w: f32) {
    let a = p.alpha * w;
    if p.flags & ADD != 0 {
        buf[i] += p.temp * a;
    } else {
        buf[i] += (p.temp - buf[i]) * a;
    }
}

impl Thermal {
    pub fn new(seed: u64, w: usize, h: usize) -> Self {
        Thermal {
            cv: Canvas::new(w, h, 1, 0.0),
            prims: Vec::with_capacity(1024),
            fpn: vec![0.0; w],
            seed,
            gain: 1.0,
            offset: 0.0,
            drift: (0.0, 0.0, 0.0),
            noise: 0.05,
        }
    }

    /// New episode: sensor nuisance and the background cache.
    pub fn begin(&mut self, sc: &Scene) {
        let mut rng = Rng::new(self.seed, streams::THERMAL, sc.ep.index);
        self.gain = rng.range(0.97, 1.03);
        self.offset = rng.range(-1.0, 1.0);
        self.drift = (
            rng.range(0.2, 1.0),
            rng.range(0.01, 0.05),
            rng.range(0.0, TAU),
        );
        self.noise = rng.range(0.04, 0.12);
        let f = rng.range(0.05, 0.2);
        for c in self.fpn.iter_mut() {
            *c = rng.gauss() * f;
        }
        let bg = &sc.bg;
        self.cv.fill_cache(|u, v, px| px[0] = bg.temp(u, v));
        self.cv
            .draw_cache(&bg.clutter, THM, |p, _, buf, i, w| put(p, buf, i, w));
    }

    /// Renders the frame at `t` into `out` (Y16 LE centi-kelvin, w*h*2 bytes).
    pub fn render(&mut self, sc: &Scene, t: f32, t_abs: f64, frame: u64, out: &mut [u8]) {
        let (du, dv) = sc.motion.shake(t);
        let (sx, sy) = self.cv.shift(du, dv);
        self.cv.copy_shifted(sx, sy);
        sc.emit(t, &mut self.prims);
        let view = self.cv.frame_view(sx, sy);
        let prims = std::mem::take(&mut self.prims);
        self.cv
            .draw_frame(&prims, &view, THM, |p, _, buf, i, w| put(p, buf, i, w));
        self.prims = prims;
        // Wet surfaces cool towards the rain temperature: T' = T + (T_wet - T) * c.
        let (c, t_wet) = sc.rain_cooling(t);
        let off =
            self.offset + self.drift.0 * (TAU * self.drift.1 * t_abs as f32 + self.drift.2).sin();
        let g = self.gain * (1.0 - c);
        let o = self.gain * c * t_wet + off + 273.15;
        let base = key(self.seed, streams::THERMAL, frame);
        let w = self.cv.w;
        let sigma = self.noise;
        for (i, (&tc, out)) in self.cv.work.iter().zip(out.chunks_exact_mut(2)).enumerate() {
            let n = gauss(cell(base, i as u64)) * sigma + self.fpn[i % w];
            let k = (tc.clamp(T_MIN_C - 10.0, T_MAX_C + 10.0) * g + o + n)
                .clamp(T_MIN_C + 273.15, T_MAX_C + 273.15);
            let ck = (k * 100.0 + 0.5) as u16;
            out.copy_from_slice(&ck.to_le_bytes());
        }
    }
}
