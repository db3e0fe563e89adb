//! A frame buffer with an episode-long background cache.
//!
//! The static background (place + clutter) is rendered once per episode into a
//! cache a margin larger than the frame; each frame copies a window of it,
//! shifted by the camera shake, and draws the moving actors on top. Per-pixel
//! work per frame is then one row copy, the actors' footprints, and the
//! sensor's final pass.

use super::prim::{Prim, View, raster};

/// Frame buffer + background cache for one imager.
#[derive(Debug, Clone)]
pub(crate) struct Canvas<T: Copy> {
    pub w: usize,
    pub h: usize,
    /// Cache margin in pixels on each side.
    pub m: usize,
    pub cw: usize,
    pub chh: usize,
    /// Values per pixel.
    pub chans: usize,
    /// Pixels per scene unit.
    pub s: f32,
    pub cache: Vec<T>,
    pub work: Vec<T>,
}

impl<T: Copy> Canvas<T> {
    pub fn new(w: usize, h: usize, chans: usize, zero: T) -> Self {
        let s = w.min(h) as f32;
        let m = (0.12 * s).ceil() as usize + 1;
        let (cw, chh) = (w + 2 * m, h + 2 * m);
        Canvas {
            w,
            h,
            m,
            cw,
            chh,
            chans,
            s,
            cache: vec![zero; cw * chh * chans],
            work: vec![zero; w * h * chans],
        }
    }

    /// The view of the background cache.
    pub fn cache_view(&self) -> View {
        View {
            w: self.cw,
            h: self.chh,
            s: self.s,
            cx: self.w as f32 * 0.5 + self.m as f32,
            cy: self.h as f32 * 0.5 + self.m as f32,
        }
    }

    /// Pixel shift for a camera shake of `(du, dv)` scene units.
    pub fn shift(&self, du: f32, dv: f32) -> (isize, isize) {
        let m = self.m as isize;
        let sx = ((du * self.s).round() as isize).clamp(-m, m);
        let sy = ((dv * self.s).round() as isize).clamp(-m, m);
        (sx, sy)
    }

    /// The view of a frame shifted by `(sx, sy)` pixels.
    pub fn frame_view(&self, sx: isize, sy: isize) -> View {
        View {
            w: self.w,
            h: self.h,
            s: self.s,
            cx: self.w as f32 * 0.5 - sx as f32,
            cy: self.h as f32 * 0.5 - sy as f32,
        }
    }

    /// Fills the cache from a per-pixel background function of `(u, v)`.
    pub fn fill_cache(&mut self, mut f: impl FnMut(f32, f32, &mut [T])) {
        let view = self.cache_view();
        let c = self.chans;
        for y in 0..self.chh {
            let v = view.v(y);
            for x in 0..self.cw {
                let i = (y * self.cw + x) * c;
                f(view.u(x), v, &mut self.cache[i..i + c]);
            }
        }
    }

    /// Rasterises primitives into the cache.
    pub fn draw_cache(
        &mut self,
        prims: &[Prim],
        layer: u8,
        mut put: impl FnMut(&Prim, usize, &mut [T], usize, f32),
    ) {
        let view = self.cache_view();
        for (k, p) in prims.iter().enumerate() {
            if p.flags & layer != 0 {
                raster(p, &view, |i, w| put(p, k, &mut self.cache, i, w));
            }
        }
    }

    /// Copies the shifted window of the cache into the frame buffer.
    pub fn copy_shifted(&mut self, sx: isize, sy: isize) {
        let c = self.chans;
        let x0 = (self.m as isize + sx) as usize;
        for y in 0..self.h {
            let sy_row = (y as isize + self.m as isize + sy) as usize;
            let src = (sy_row * self.cw + x0) * c;
            let dst = y * self.w * c;
            self.work[dst..dst + self.w * c].copy_from_slice(&self.cache[src..src + self.w * c]);
        }
    }

    /// Rasterises primitives into the frame buffer.
    pub fn draw_frame(
        &mut self,
        prims: &[Prim],
        view: &View,
        layer: u8,
        mut put: impl FnMut(&Prim, usize, &mut [T], usize, f32),
    ) {
        for (k, p) in prims.iter().enumerate() {
            if p.flags & layer != 0 {
                raster(p, view, |i, w| put(p, k, &mut self.work, i, w));
            }
        }
    }
}
