//! The depth sensor (active stereo / structured light, like a RealSense):
//! u16 millimetres, 0 = no measurement. Noise grows with the square of the
//! distance, random dropouts (more outdoors, in sunlight), no return from the
//! sky or windows, beyond 20 m or nearer than 10 cm.

use super::canvas::Canvas;
use super::prim::{D_HOLES, D_SPARSE, DEP, Prim};
use super::rng::{Rng, cell, gauss, key, streams, unit};
use super::scene::{Place, Scene};

/// Nearest and farthest valid readings (mm).
pub(crate) const MIN_MM: f32 = 100.0;
pub(crate) const MAX_MM: f32 = 20_000.0;

/// Depth renderer.
#[derive(Debug, Clone)]
pub(crate) struct Depth {
    cv: Canvas<u16>,
    prims: Vec<Prim>,
    seed: u64,
    scale: f32,
    k_noise: f32,
    hole_q: u32,
}

#[inline]
fn put(p: &Prim, k: usize, base: u64, scale: f32, buf: &mut [u16], i: usize) {
    let z = if p.z <= 0.0 {
        0
    } else {
        (p.z * 1000.0 * scale).min(65535.0) as u16
    };
    match p.dmode {
        D_SPARSE => {
            if unit(cell(base ^ (k as u64) << 40, i as u64)) < p.dprob {
                buf[i] = z;
            }
        }
        D_HOLES => {
            buf[i] = if unit(cell(base ^ (k as u64) << 40, i as u64)) < p.dprob {
                0
            } else {
                z
            };
        }
        _ => buf[i] = z,
    }
}

impl Depth {
    pub fn new(seed: u64, w: usize, h: usize) -> Self {
        Depth {
            cv: Canvas::new(w, h, 1, 0),
            prims: Vec::with_capacity(1024),
            seed,
            scale: 1.0,
            k_noise: 1.0,
            hole_q: 0,
        }
    }

    /// New episode: sensor nuisance and the background cache.
    pub fn begin(&mut self, sc: &Scene) {
        let mut rng = Rng::new(self.seed, streams::DEPTH, sc.ep.index);
        self.scale = rng.range(0.99, 1.01);
        self.k_noise = rng.range(1.0, 3.0);
        let holes = if sc.bg.place == Place::Indoor {
            rng.range(0.003, 0.02)
        } else {
            rng.range(0.015, 0.05) * (0.6 + sc.bg.sun)
        };
        self.hole_q = (holes * 65536.0) as u32;
        let bg = &sc.bg;
        let scale = self.scale;
        self.cv.fill_cache(|u, v, px| {
            px[0] = (bg.depth(u, v) * 1000.0 * scale) as u16;
        });
        let base = key(self.seed, streams::DEPTH, sc.ep.index ^ 0xCAC4E);
        self.cv.draw_cache(&bg.clutter, DEP, |p, k, buf, i, _| {
            put(p, k, base, scale, buf, i)
        });
    }

    /// Renders the frame at `t` into `out` (Z16 LE, w*h*2 bytes).
    pub fn render(&mut self, sc: &Scene, t: f32, frame: u64, out: &mut [u8]) {
        let (du, dv) = sc.motion.shake(t);
        let (sx, sy) = self.cv.shift(du, dv);
        self.cv.copy_shifted(sx, sy);
        sc.emit(t, &mut self.prims);
        let view = self.cv.frame_view(sx, sy);
        let base = key(self.seed, streams::DEPTH, frame);
        let scale = self.scale;
        let prims = std::mem::take(&mut self.prims);
        self.cv.draw_frame(&prims, &view, DEP, |p, k, buf, i, w| {
            if p.flags & super::prim::ADD == 0 && w > 0.0 {
                put(p, k, base, scale, buf, i)
            }
        });
        self.prims = prims;
        let nbase = base ^ 0x0DE9_7400;
        let kn = self.k_noise * 1e-6;
        let hq = self.hole_q;
        for (i, (&z, o)) in self.cv.work.iter().zip(out.chunks_exact_mut(2)).enumerate() {
            let mut v = 0u16;
            if z != 0 {
                let h = cell(nbase, i as u64);
                if ((h & 0xFFFF) as u32) >= hq {
                    let zf = z as f32;
                    let zn = zf + gauss(h) * kn * zf * zf;
                    if (MIN_MM..=MAX_MM).contains(&zn) {
                        v = zn as u16;
                    }
                }
            }
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}
