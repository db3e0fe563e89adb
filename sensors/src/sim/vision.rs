//! The RGB camera: background cache + actors composed in linear radiance
//! (u16, 240 = white paper), then exposure / white balance through a per-frame
//! lookup table and hash noise into RGB8.

use std::f32::consts::TAU;

use super::canvas::Canvas;
use super::prim::{ADD, EMIT, Prim, VIS};
use super::rng::{Rng, cell, key, streams};
use super::scene::Scene;

/// Radiance of reflectance 1.0.
const WHITE: f32 = 240.0;
const LUT_LEN: usize = 1024;

/// Camera renderer.
#[derive(Debug, Clone)]
pub(crate) struct Vision {
    cv: Canvas<u16>,
    prims: Vec<Prim>,
    lut: Vec<u8>,
    seed: u64,
    gain: f32,
    wb: [f32; 3],
    noise_q: i32,
    drift: (f32, f32, f32),
}

impl Vision {
    pub fn new(seed: u64, w: usize, h: usize) -> Self {
        Vision {
            cv: Canvas::new(w, h, 3, 0),
            prims: Vec::with_capacity(1024),
            lut: vec![0; 3 * LUT_LEN],
            seed,
            gain: 1.0,
            wb: [1.0; 3],
            noise_q: 0,
            drift: (0.0, 0.0, 0.0),
        }
    }

    /// New episode: draws the camera nuisance and renders the background cache.
    pub fn begin(&mut self, sc: &Scene) {
        let mut rng = Rng::new(self.seed, streams::VISION, sc.ep.index);
        self.gain = rng.log_range(0.4, 1.35);
        let k = rng.range(-1.0, 1.0);
        let g = rng.range(-0.05, 0.05);
        self.wb = [1.0 + 0.22 * k, 1.0 + g, 1.0 - 0.22 * k];
        let noise = rng.range(1.5, 5.0) * (0.6 + 0.6 * self.gain);
        self.noise_q = (noise * 256.0) as i32;
        self.drift = (
            rng.range(0.0, 0.08),
            rng.range(0.05, 0.3),
            rng.range(0.0, TAU),
        );
        let bg = &sc.bg;
        self.cv.fill_cache(|u, v, px| {
            let c = bg.rgb(u, v);
            for i in 0..3 {
                px[i] = (c[i] * WHITE).clamp(0.0, 1023.0) as u16;
            }
        });
        let gain = self.gain;
        self.cv.draw_cache(&bg.clutter, VIS, |p, _, buf, i, w| {
            blend(p, gain, buf, i, w)
        });
    }

    /// Renders the frame at `t` (s from the episode start; `t_abs` from the
    /// simulation start) into `out` (RGB8, w*h*3 bytes).
    pub fn render(&mut self, sc: &Scene, t: f32, t_abs: f64, frame: u64, out: &mut [u8]) {
        let (du, dv) = sc.motion.shake(t);
        let (sx, sy) = self.cv.shift(du, dv);
        self.cv.copy_shifted(sx, sy);
        sc.emit(t, &mut self.prims);
        let view = self.cv.frame_view(sx, sy);
        let exposure = self.gain
            * (1.0 + self.drift.0 * (TAU * self.drift.1 * t_abs as f32 + self.drift.2).sin());
        let prims = std::mem::take(&mut self.prims);
        self.cv.draw_frame(&prims, &view, VIS, |p, _, buf, i, w| {
            blend(p, exposure, buf, i, w)
        });
        self.prims = prims;
        for c in 0..3 {
            let k = exposure * self.wb[c] * 255.0 / WHITE;
            for (i, l) in self.lut[c * LUT_LEN..(c + 1) * LUT_LEN]
                .iter_mut()
                .enumerate()
            {
                *l = (i as f32 * k + 0.5).min(255.0) as u8;
            }
        }
        let base = key(self.seed, streams::VISION, frame ^ 0xF00D_0000_0000_0000);
        let q = self.noise_q;
        let (lr, rest) = self.lut.split_at(LUT_LEN);
        let (lg, lb) = rest.split_at(LUT_LEN);
        for (i, (px, o)) in self
            .cv
            .work
            .chunks_exact(3)
            .zip(out.chunks_exact_mut(3))
            .enumerate()
        {
            let h = cell(base, i as u64);
            let n = |s: u32| {
                ((((h >> s) & 0xFF) as i32 + ((h >> (s + 8)) & 0xFF) as i32 - 255) * q) >> 16
            };
            let r = lr[(px[0] as usize).min(LUT_LEN - 1)] as i32 + n(0);
            let g = lg[(px[1] as usize).min(LUT_LEN - 1)] as i32 + n(16);
            let b = lb[(px[2] as usize).min(LUT_LEN - 1)] as i32 + n(32);
            o[0] = r.clamp(0, 255) as u8;
            o[1] = g.clamp(0, 255) as u8;
            o[2] = b.clamp(0, 255) as u8;
        }
    }
}

/// Paints (or adds light) into a radiance buffer.
#[inline]
fn blend(p: &Prim, exposure: f32, buf: &mut [u16], i: usize, w: f32) {
    let a = p.alpha * w;
    let k = if p.flags & EMIT != 0 {
        WHITE / exposure.max(0.05)
    } else {
        WHITE
    };
    let px = &mut buf[3 * i..3 * i + 3];
    if p.flags & ADD != 0 {
        for (v, c) in px.iter_mut().zip(p.rgb) {
            *v = (*v as f32 + c * k * a).min(1023.0) as u16;
        }
    } else {
        for (v, c) in px.iter_mut().zip(p.rgb) {
            let d = *v as f32;
            *v = (d + ((c * k).min(1023.0) - d) * a) as u16;
        }
    }
}
