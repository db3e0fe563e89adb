//! Geometry shared by the three imaging sensors: primitives in scene units,
//! the pinhole projection that places them, and one rasteriser.
//!
//! Scene units: `u` grows to the right, `v` downwards; one unit is about one
//! radian of view (a 224x224 camera sees `u, v` in [0, 1]). A camera of another
//! aspect ratio sees the same vertical (or horizontal, when portrait) extent,
//! centred, so the three imagers are co-registered like an aligned RGB-D-T rig.
//! A point at lateral offset `x` metres, height `y` metres above the ground and
//! depth `z` metres projects to `u = 0.5 + x / z`, `v = v_h + (h_cam - y) / z`.

/// Drawn by the camera.
pub(crate) const VIS: u8 = 1;
/// Seen by the depth sensor.
pub(crate) const DEP: u8 = 2;
/// Seen by the thermal camera.
pub(crate) const THM: u8 = 4;
/// All three imagers.
pub(crate) const ALL: u8 = VIS | DEP | THM;
/// Additive (light or heat added, not painted over).
pub(crate) const ADD: u8 = 8;
/// Soft edge (weight falls to 0 at the rim).
pub(crate) const SOFT: u8 = 16;
/// Emits light: its colour is not scaled by the scene lighting.
pub(crate) const EMIT: u8 = 32;

/// Depth written as is.
pub(crate) const D_SOLID: u8 = 0;
/// Depth written on a random fraction `dprob` of the pixels (rain drops).
pub(crate) const D_SPARSE: u8 = 1;
/// Depth dropped (0) on a random fraction `dprob` of the pixels (flames, glass).
pub(crate) const D_HOLES: u8 = 2;

/// No clipping.
pub(crate) const NO_CLIP: [f32; 4] = [-1e4, -1e4, 1e4, 1e4];

/// A shape in scene units.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Axis-aligned rectangle `[u0, v0, u1, v1]`.
    Rect([f32; 4]),
    /// Axis-aligned ellipse `[cu, cv, ru, rv]`.
    Ellipse([f32; 4]),
    /// Segment with round caps `[au, av, bu, bv, r]`.
    Capsule([f32; 5]),
    /// Triangle `[u0, v0, u1, v1, u2, v2]`.
    Tri([f32; 6]),
}

impl Default for Shape {
    fn default() -> Self {
        Shape::Rect([0.0; 4])
    }
}

/// One drawable piece of the scene.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prim {
    pub shape: Shape,
    /// Colour, 0..1 reflectance (emitters may exceed 1).
    pub rgb: [f32; 3],
    /// Opacity for camera and thermal blending.
    pub alpha: f32,
    /// Depth in metres (0: no return).
    pub z: f32,
    /// Temperature in °C (for [`ADD`]: degrees added).
    pub temp: f32,
    pub flags: u8,
    pub dmode: u8,
    pub dprob: f32,
    /// Only pixels inside this scene-unit rectangle are touched.
    pub clip: [f32; 4],
}

/// Pushes without ever growing the vector past its capacity (no allocation
/// on the sample path; excess primitives are dropped).
#[inline]
pub(crate) fn push(out: &mut Vec<Prim>, p: Prim) {
    if out.len() < out.capacity() {
        out.push(p);
    }
}

/// Maps scene units to the pixels of one buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub w: usize,
    pub h: usize,
    /// Pixels per scene unit.
    pub s: f32,
    /// Pixel coordinate of `u = 0.5`.
    pub cx: f32,
    /// Pixel coordinate of `v = 0.5`.
    pub cy: f32,
}

impl View {
    #[inline]
    pub fn x(&self, u: f32) -> f32 {
        self.cx + (u - 0.5) * self.s
    }
    #[inline]
    pub fn y(&self, v: f32) -> f32 {
        self.cy + (v - 0.5) * self.s
    }
    /// Scene `u` at the centre of pixel column `x`.
    #[inline]
    pub fn u(&self, x: usize) -> f32 {
        (x as f32 + 0.5 - self.cx) / self.s + 0.5
    }
    /// Scene `v` at the centre of pixel row `y`.
    #[inline]
    pub fn v(&self, y: usize) -> f32 {
        (y as f32 + 0.5 - self.cy) / self.s + 0.5
    }
}

/// Pixel index range whose centres lie in `[a, b)`, at least one pixel when
/// `b > a`, clamped to `[0, lim)`.
#[inline]
fn span(a: f32, b: f32, lim: usize) -> (usize, usize) {
    if b.is_nan() || a.is_nan() || b <= a {
        return (0, 0);
    }
    let mut s = (a - 0.5).ceil();
    let mut e = (b - 0.5).ceil();
    if e <= s {
        s = (0.5 * (a + b) - 0.5).floor();
        e = s + 1.0;
    }
    let s = s.clamp(0.0, lim as f32) as usize;
    let e = e.clamp(0.0, lim as f32) as usize;
    (s, e)
}

/// Calls `put(pixel_index, weight)` for every pixel of `view` covered by `p`
/// (weight 1, or the soft falloff for [`SOFT`] shapes).
pub(crate) fn raster(p: &Prim, view: &View, mut put: impl FnMut(usize, f32)) {
    let soft = p.flags & SOFT != 0;
    let (clx0, cly0) = (view.x(p.clip[0]).max(0.0), view.y(p.clip[1]).max(0.0));
    let (clx1, cly1) = (
        view.x(p.clip[2]).min(view.w as f32),
        view.y(p.clip[3]).min(view.h as f32),
    );
    let w = view.w;
    match p.shape {
        Shape::Rect([u0, v0, u1, v1]) => {
            let (xs, xe) = span(view.x(u0).max(clx0), view.x(u1).min(clx1), w);
            let (ys, ye) = span(view.y(v0).max(cly0), view.y(v1).min(cly1), view.h);
            for y in ys..ye {
                let row = y * w;
                for x in xs..xe {
                    put(row + x, 1.0);
                }
            }
        }
        Shape::Ellipse([cu, cv, ru, rv]) => {
            let (cx, cy) = (view.x(cu), view.y(cv));
            let rx = (ru * view.s).max(0.55);
            let ry = (rv * view.s).max(0.55);
            let (ys, ye) = span((cy - ry).max(cly0), (cy + ry).min(cly1), view.h);
            let (irx, iry) = (1.0 / rx, 1.0 / ry);
            for y in ys..ye {
                let dy = (y as f32 + 0.5 - cy) * iry;
                let dy2 = dy * dy;
                if dy2 >= 1.0 {
                    continue;
                }
                let half = rx * (1.0 - dy2).sqrt();
                let (xs, xe) = span((cx - half).max(clx0), (cx + half).min(clx1), w);
                let row = y * w;
                if soft {
                    for x in xs..xe {
                        let dx = (x as f32 + 0.5 - cx) * irx;
                        let wgt = 1.0 - dx * dx - dy2;
                        if wgt > 0.0 {
                            put(row + x, wgt);
                        }
                    }
                } else {
                    for x in xs..xe {
                        put(row + x, 1.0);
                    }
                }
            }
        }
        Shape::Capsule([au, av, bu, bv, r]) => {
            let (ax, ay, bx, by) = (view.x(au), view.y(av), view.x(bu), view.y(bv));
            let r = (r * view.s).max(0.55);
            let r2 = r * r;
            let (dx, dy) = (bx - ax, by - ay);
            let l2 = (dx * dx + dy * dy).max(1e-6);
            let il2 = 1.0 / l2;
            let (xs, xe) = span((ax.min(bx) - r).max(clx0), (ax.max(bx) + r).min(clx1), w);
            let (ys, ye) = span(
                (ay.min(by) - r).max(cly0),
                (ay.max(by) + r).min(cly1),
                view.h,
            );
            for y in ys..ye {
                let py = y as f32 + 0.5 - ay;
                let row = y * w;
                for x in xs..xe {
                    let px = x as f32 + 0.5 - ax;
                    let t = ((px * dx + py * dy) * il2).clamp(0.0, 1.0);
                    let (ex, ey) = (px - t * dx, py - t * dy);
                    let d2 = ex * ex + ey * ey;
                    if d2 <= r2 {
                        let wgt = if soft { 1.0 - (d2 / r2).sqrt() } else { 1.0 };
                        put(row + x, wgt);
                    }
                }
            }
        }
        Shape::Tri([u0, v0, u1, v1, u2, v2]) => {
            let (x0, y0, x1, y1, x2, y2) = (
                view.x(u0),
                view.y(v0),
                view.x(u1),
                view.y(v1),
                view.x(u2),
                view.y(v2),
            );
            let area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
            if area.abs() < 1e-6 {
                return;
            }
            let sg = area.signum();
            let (xs, xe) = span(
                x0.min(x1).min(x2).max(clx0),
                x0.max(x1).max(x2).min(clx1),
                w,
            );
            let (ys, ye) = span(
                y0.min(y1).min(y2).max(cly0),
                y0.max(y1).max(y2).min(cly1),
                view.h,
            );
            let edge = |ax: f32, ay: f32, bx: f32, by: f32, px: f32, py: f32| {
                ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) * sg
            };
            for y in ys..ye {
                let py = y as f32 + 0.5;
                let row = y * w;
                for x in xs..xe {
                    let px = x as f32 + 0.5;
                    if edge(x0, y0, x1, y1, px, py) >= 0.0
                        && edge(x1, y1, x2, y2, px, py) >= 0.0
                        && edge(x2, y2, x0, y0, px, py) >= 0.0
                    {
                        put(row + x, 1.0);
                    }
                }
            }
        }
    }
}

/// Builds primitives for an object standing in the world: local coordinates
/// are metres (`x` along the object's facing, mirrored by `dir`; `y` up from
/// the ground plus `oy`), placed at lateral `ox` and depth `z`.
pub(crate) struct Painter<'a> {
    pub out: &'a mut Vec<Prim>,
    pub v_h: f32,
    pub h_cam: f32,
    pub z: f32,
    pub ox: f32,
    pub oy: f32,
    pub dir: f32,
    pub flags: u8,
    pub alpha: f32,
    pub dmode: u8,
    pub dprob: f32,
    pub clip: [f32; 4],
}

impl<'a> Painter<'a> {
    /// A painter for an object at depth `z`, lateral `ox`.
    pub fn new(out: &'a mut Vec<Prim>, v_h: f32, h_cam: f32, z: f32, ox: f32) -> Self {
        Painter {
            out,
            v_h,
            h_cam,
            z: z.max(0.3),
            ox,
            oy: 0.0,
            dir: 1.0,
            flags: ALL,
            alpha: 1.0,
            dmode: D_SOLID,
            dprob: 0.0,
            clip: NO_CLIP,
        }
    }

    #[inline]
    pub fn u(&self, x: f32) -> f32 {
        0.5 + (self.ox + self.dir * x) / self.z
    }
    #[inline]
    pub fn v(&self, y: f32) -> f32 {
        self.v_h + (self.h_cam - (self.oy + y)) / self.z
    }
    /// Metres to scene units at this depth.
    #[inline]
    pub fn len(&self, m: f32) -> f32 {
        m / self.z
    }

    /// Pushes a shape given in scene units with the current settings.
    pub fn shape(&mut self, shape: Shape, rgb: [f32; 3], temp: f32) {
        push(
            self.out,
            Prim {
                shape,
                rgb,
                alpha: self.alpha,
                z: self.z,
                temp,
                flags: self.flags,
                dmode: self.dmode,
                dprob: self.dprob,
                clip: self.clip,
            },
        );
    }

    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, rgb: [f32; 3], temp: f32) {
        let (ua, ub) = (self.u(x0), self.u(x1));
        let s = Shape::Rect([
            ua.min(ub),
            self.v(y0.max(y1)),
            ua.max(ub),
            self.v(y0.min(y1)),
        ]);
        self.shape(s, rgb, temp);
    }

    pub fn ellipse(&mut self, x: f32, y: f32, rx: f32, ry: f32, rgb: [f32; 3], temp: f32) {
        let s = Shape::Ellipse([self.u(x), self.v(y), self.len(rx), self.len(ry)]);
        self.shape(s, rgb, temp);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn capsule(
        &mut self,
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        r: f32,
        rgb: [f32; 3],
        temp: f32,
    ) {
        let s = Shape::Capsule([self.u(x0), self.v(y0), self.u(x1), self.v(y1), self.len(r)]);
        self.shape(s, rgb, temp);
    }

    pub fn tri(&mut self, p: [f32; 6], rgb: [f32; 3], temp: f32) {
        let s = Shape::Tri([
            self.u(p[0]),
            self.v(p[1]),
            self.u(p[2]),
            self.v(p[3]),
            self.u(p[4]),
            self.v(p[5]),
        ]);
        self.shape(s, rgb, temp);
    }

    /// Additive soft ellipse: light `rgb` (camera) and `dtemp` °C (thermal).
    #[allow(clippy::too_many_arguments)]
    pub fn glow(
        &mut self,
        x: f32,
        y: f32,
        rx: f32,
        ry: f32,
        rgb: [f32; 3],
        dtemp: f32,
        layers: u8,
    ) {
        let (f, a) = (self.flags, self.alpha);
        self.flags = layers | ADD | SOFT;
        self.alpha = 1.0;
        self.ellipse(x, y, rx, ry, rgb, dtemp);
        self.flags = f;
        self.alpha = a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(p: &Prim, view: &View) -> usize {
        let mut n = 0;
        raster(p, view, |_, _| n += 1);
        n
    }

    #[test]
    fn raster_covers_expected_areas() {
        let view = View {
            w: 100,
            h: 100,
            s: 100.0,
            cx: 50.0,
            cy: 50.0,
        };
        let mut p = Prim {
            shape: Shape::Rect([0.1, 0.1, 0.3, 0.5]),
            clip: NO_CLIP,
            ..Prim::default()
        };
        assert_eq!(count(&p, &view), 20 * 40);
        p.shape = Shape::Ellipse([0.5, 0.5, 0.2, 0.2]);
        let n = count(&p, &view) as f32;
        assert!((n - std::f32::consts::PI * 400.0).abs() < 40.0, "{n}");
        p.shape = Shape::Tri([0.0, 0.0, 0.5, 0.0, 0.0, 0.5]);
        let n = count(&p, &view) as f32;
        assert!((n - 1250.0).abs() < 60.0, "{n}");
        p.shape = Shape::Capsule([0.2, 0.5, 0.8, 0.5, 0.05]);
        let n = count(&p, &view) as f32;
        assert!(
            (n - (600.0 + std::f32::consts::PI * 25.0)).abs() < 40.0,
            "{n}"
        );
        p.clip = [0.0, 0.0, 0.5, 1.0];
        let m = count(&p, &view) as f32;
        assert!((m - n / 2.0).abs() < 20.0, "{m}");
        // Outside the view: nothing, no panic.
        p.shape = Shape::Ellipse([5.0, 5.0, 0.1, 0.1]);
        assert_eq!(count(&p, &view), 0);
    }
}
