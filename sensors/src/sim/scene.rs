//! The hidden scene state of one episode: the place (room, yard or street)
//! with its clutter, the actors of the active situations, and the wearer's
//! motion. Built from `(seed, episode index)` alone, so every stream rebuilds
//! the same scene independently.

use super::actors::{Actor, CAR_COLOURS, HAIR, Look, Pose, SKIN, draw_car, draw_person};
use super::motion::Motion;
use super::prim::{ALL, EMIT, Painter, Prim, THM, VIS};
use super::rng::{Rng, cell, streams, unit, vnoise2};
use super::situation::Situation;
use super::timeline::EpisodeHeader;

/// Capacity of the clutter list.
const MAX_CLUTTER: usize = 256;

/// Where an episode takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A room: back wall, floor, ceiling, a window.
    Indoor,
    /// A garden: lawn, fence, trees, sky.
    Yard,
    /// A street: pavement, kerb, road, buildings, sky.
    Street,
}

/// What a background pixel shows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Region {
    Wall(f32),
    Ceiling(f32),
    Floor(f32),
    Window,
    Sky,
    Ground(f32),
    Fence(f32),
    Pavement(f32),
    Kerb(f32),
    Road(f32),
    Building(f32),
}

/// The static part of a scene.
#[derive(Debug, Clone)]
pub(crate) struct Background {
    pub place: Place,
    /// Horizon row (scene units) and camera height (m).
    pub v_h: f32,
    pub h_cam: f32,
    pub wall_z: f32,
    pub wall_tilt: f32,
    pub ceil_h: f32,
    pub wall_rgb: [f32; 3],
    pub ceil_rgb: [f32; 3],
    pub floor_rgb: [f32; 3],
    pub trim_rgb: [f32; 3],
    pub floor_kind: u8,
    pub stripes: f32,
    /// Indoor window, scene units `[u0, v0, u1, v1]`.
    pub window: [f32; 4],
    pub sky_top: [f32; 3],
    pub sky_bot: [f32; 3],
    pub overcast: f32,
    pub ground_rgb: [f32; 3],
    pub ground_kind: u8,
    pub fence_z: f32,
    pub fence_h: f32,
    pub fence_rgb: [f32; 3],
    pub road_z0: f32,
    pub road_z1: f32,
    pub build_z: f32,
    pub tex: u64,
    /// Indoor and outdoor air temperature, sky temperature (°C), sunshine 0..1.
    pub t_in: f32,
    pub t_out: f32,
    pub t_sky: f32,
    pub sun: f32,
    pub clutter: Vec<Prim>,
}

impl Background {
    fn empty() -> Self {
        Background {
            place: Place::Indoor,
            v_h: 0.45,
            h_cam: 1.4,
            wall_z: 4.0,
            wall_tilt: 0.0,
            ceil_h: 2.6,
            wall_rgb: [0.7; 3],
            ceil_rgb: [0.9; 3],
            floor_rgb: [0.5; 3],
            trim_rgb: [0.9; 3],
            floor_kind: 0,
            stripes: 0.0,
            window: [0.0; 4],
            sky_top: [0.4, 0.6, 0.9],
            sky_bot: [0.8, 0.85, 0.9],
            overcast: 0.0,
            ground_rgb: [0.3, 0.5, 0.2],
            ground_kind: 0,
            fence_z: 8.0,
            fence_h: 1.5,
            fence_rgb: [0.5, 0.4, 0.3],
            road_z0: 5.0,
            road_z1: 11.0,
            build_z: 16.0,
            tex: 0,
            t_in: 21.0,
            t_out: 15.0,
            t_sky: -10.0,
            sun: 0.0,
            clutter: Vec::with_capacity(MAX_CLUTTER),
        }
    }

    /// Ambient air temperature where the wearer is.
    pub fn t_amb(&self) -> f32 {
        if self.place == Place::Indoor {
            self.t_in
        } else {
            self.t_out
        }
    }

    /// Depth of the (slightly angled) back wall at column `u`.
    #[inline]
    pub fn wall_z_at(&self, u: f32) -> f32 {
        self.wall_z * (1.0 + self.wall_tilt * (u - 0.5))
    }

    fn building_height(&self, u: f32) -> (f32, u64) {
        let xw = (u - 0.5) * self.build_z + 1000.0;
        let seg = (xw / 9.0).floor() as i64 as u64;
        let h = cell(self.tex ^ 0xB1, seg);
        (5.0 + 10.0 * unit(h), h)
    }

    /// What the background shows at scene point `(u, v)`.
    pub fn region(&self, u: f32, v: f32) -> Region {
        match self.place {
            Place::Indoor => {
                let zw = self.wall_z_at(u);
                let v_floor = self.v_h + self.h_cam / zw;
                let v_ceil = self.v_h - (self.ceil_h - self.h_cam) / zw;
                if v >= v_floor {
                    Region::Floor(self.h_cam / (v - self.v_h))
                } else if v <= v_ceil {
                    Region::Ceiling((self.ceil_h - self.h_cam) / (self.v_h - v))
                } else {
                    let w = self.window;
                    if u >= w[0] && u < w[2] && v >= w[1] && v < w[3] {
                        Region::Window
                    } else {
                        Region::Wall(zw)
                    }
                }
            }
            Place::Yard => {
                let v_fg = self.v_h + self.h_cam / self.fence_z;
                let v_ft = self.v_h + (self.h_cam - self.fence_h) / self.fence_z;
                if v >= v_fg {
                    Region::Ground(self.h_cam / (v - self.v_h))
                } else if v >= v_ft {
                    Region::Fence(self.fence_z)
                } else {
                    Region::Sky
                }
            }
            Place::Street => {
                let v_bg = self.v_h + self.h_cam / self.build_z;
                if v >= v_bg {
                    let z = self.h_cam / (v - self.v_h);
                    if z < self.road_z0 - 0.3 {
                        Region::Pavement(z)
                    } else if z < self.road_z0 {
                        Region::Kerb(z)
                    } else if z < self.road_z1 {
                        Region::Road(z)
                    } else {
                        Region::Pavement(z)
                    }
                } else {
                    let (bh, _) = self.building_height(u);
                    if v >= self.v_h + (self.h_cam - bh) / self.build_z {
                        Region::Building(self.build_z)
                    } else {
                        Region::Sky
                    }
                }
            }
        }
    }

    /// Background colour at `(u, v)` (reflectance 0..1).
    pub fn rgb(&self, u: f32, v: f32) -> [f32; 3] {
        let k = self.tex;
        let sc = |c: [f32; 3], f: f32| [c[0] * f, c[1] * f, c[2] * f];
        match self.region(u, v) {
            Region::Wall(z) => {
                let xw = (u - 0.5) * z;
                let mut f = 0.93 + 0.14 * vnoise2(k, xw * 3.0, v * z * 3.0);
                if self.stripes > 0.0 && (xw * self.stripes).fract().abs() < 0.5 {
                    f *= 0.93;
                }
                let v_floor = self.v_h + self.h_cam / z;
                if v > v_floor - 0.12 / z {
                    return self.trim_rgb;
                }
                sc(self.wall_rgb, f)
            }
            Region::Ceiling(_) => sc(self.ceil_rgb, 0.95 + 0.05 * vnoise2(k, u * 5.0, v * 5.0)),
            Region::Floor(z) => {
                let xw = (u - 0.5) * z;
                match self.floor_kind {
                    0 => {
                        let plank = (xw / 0.18).floor();
                        let fr = xw / 0.18 - plank;
                        if fr < 0.06 {
                            return sc(self.floor_rgb, 0.55);
                        }
                        let f = 0.8
                            + 0.35 * unit(cell(k, plank as i64 as u64))
                            + 0.08 * vnoise2(k ^ 1, xw * 2.0, z * 0.3);
                        sc(self.floor_rgb, f)
                    }
                    1 => sc(
                        self.floor_rgb,
                        0.85 + 0.25 * vnoise2(k ^ 2, xw * 9.0, z * 9.0),
                    ),
                    _ => {
                        let (a, b) = (xw / 0.45, z / 0.45);
                        if a.fract().abs() < 0.05 || b.fract() < 0.05 {
                            return sc(self.floor_rgb, 0.6);
                        }
                        let par = (a.floor() as i64 + b.floor() as i64) & 1;
                        sc(self.floor_rgb, if par == 0 { 1.0 } else { 0.85 })
                    }
                }
            }
            Region::Window => self.outside_rgb(u, v),
            Region::Sky => self.sky_rgb(u, v),
            Region::Ground(z) => {
                let xw = (u - 0.5) * z;
                let n = vnoise2(k ^ 3, xw * 4.0, z * 4.0);
                match self.ground_kind {
                    0 => sc(self.ground_rgb, 0.75 + 0.45 * n),
                    1 => sc(
                        self.ground_rgb,
                        0.7 + 0.5 * vnoise2(k ^ 4, xw * 15.0, z * 15.0),
                    ),
                    _ => {
                        let (a, b) = (xw / 0.6, z / 0.6);
                        if a.fract().abs() < 0.04 || b.fract() < 0.04 {
                            sc(self.ground_rgb, 0.6)
                        } else {
                            sc(self.ground_rgb, 0.9 + 0.2 * n)
                        }
                    }
                }
            }
            Region::Fence(z) => {
                let xw = (u - 0.5) * z;
                if (xw / 0.15).fract().abs() < 0.12 {
                    sc(self.fence_rgb, 0.5)
                } else {
                    sc(
                        self.fence_rgb,
                        0.9 + 0.15 * vnoise2(k ^ 5, xw * 6.0, v * 40.0),
                    )
                }
            }
            Region::Pavement(z) => {
                let xw = (u - 0.5) * z;
                let (a, b) = (xw / 0.7, z / 0.7);
                let base = [0.55, 0.54, 0.52];
                if a.fract().abs() < 0.03 || b.fract() < 0.03 {
                    sc(base, 0.7)
                } else {
                    sc(base, 0.9 + 0.2 * vnoise2(k ^ 6, xw * 3.0, z * 3.0))
                }
            }
            Region::Kerb(_) => [0.7, 0.7, 0.68],
            Region::Road(z) => {
                let xw = (u - 0.5) * z;
                let zm = 0.5 * (self.road_z0 + self.road_z1);
                if (z - zm).abs() < 0.12 && ((xw + 100.0) / 3.0).fract() < 0.5 {
                    return [0.85, 0.85, 0.8];
                }
                sc(
                    [0.27, 0.27, 0.28],
                    0.85 + 0.3 * vnoise2(k ^ 7, xw * 8.0, z * 8.0),
                )
            }
            Region::Building(z) => {
                let (_, h) = self.building_height(u);
                let col = super::rng::hsv_to_rgb(
                    unit(h >> 3),
                    0.1 + 0.3 * unit(h >> 13),
                    0.35 + 0.45 * unit(h >> 23),
                );
                let xw = (u - 0.5) * z + 1000.0;
                let yw = self.h_cam - (v - self.v_h) * z;
                let (fx, fy) = ((xw / 1.6).fract(), (yw / 3.0).fract());
                if (0.3..0.7).contains(&fx) && (0.35..0.75).contains(&fy) && yw > 1.0 {
                    let lit = unit(cell(h, ((xw / 1.6) as u64) << 8 | (yw / 3.0) as u64)) < 0.2;
                    return if lit {
                        [0.9, 0.8, 0.5]
                    } else {
                        [0.15, 0.18, 0.24]
                    };
                }
                col
            }
        }
    }

    fn sky_rgb(&self, u: f32, v: f32) -> [f32; 3] {
        let g = ((self.v_h - v) / 0.6).clamp(0.0, 1.0);
        let mut c = [0.0; 3];
        for (i, ci) in c.iter_mut().enumerate() {
            *ci = self.sky_bot[i] + (self.sky_top[i] - self.sky_bot[i]) * g;
        }
        let cl = vnoise2(self.tex ^ 9, u * 4.0, v * 9.0);
        let f = ((cl - 0.55 + 0.4 * self.overcast) * 3.0).clamp(0.0, 1.0);
        let grey = 0.92 - 0.35 * self.overcast;
        for ci in c.iter_mut() {
            *ci += (grey - *ci) * f;
        }
        c
    }

    fn outside_rgb(&self, u: f32, v: f32) -> [f32; 3] {
        let w = self.window;
        let (cu, cv) = (0.5 * (w[0] + w[2]), 0.5 * (w[1] + w[3]));
        if (u - cu).abs() < 0.006 || (v - cv).abs() < 0.006 {
            return self.trim_rgb;
        }
        if v > w[1] + 0.7 * (w[3] - w[1]) + 0.03 * (u * 40.0).sin() {
            return [0.25, 0.4, 0.2];
        }
        let s = self.sky_rgb(u, v - 0.3);
        [s[0] * 1.1 + 0.05, s[1] * 1.1 + 0.05, s[2] * 1.1 + 0.05]
    }

    /// Background depth (m, 0 = no return) at `(u, v)`.
    pub fn depth(&self, u: f32, v: f32) -> f32 {
        match self.region(u, v) {
            Region::Wall(z)
            | Region::Ceiling(z)
            | Region::Floor(z)
            | Region::Ground(z)
            | Region::Fence(z)
            | Region::Pavement(z)
            | Region::Kerb(z)
            | Region::Road(z)
            | Region::Building(z) => {
                if z > 20.0 {
                    0.0
                } else {
                    z
                }
            }
            Region::Window | Region::Sky => 0.0,
        }
    }

    /// Background temperature (°C) at `(u, v)`.
    pub fn temp(&self, u: f32, v: f32) -> f32 {
        let k = self.tex;
        match self.region(u, v) {
            Region::Wall(z) => self.t_in + 0.6 * (0.5 - v) + 0.4 * vnoise2(k ^ 11, u * z, v * z),
            Region::Ceiling(_) => self.t_in + 1.2,
            Region::Floor(_) => self.t_in - 1.2 + 0.3 * vnoise2(k ^ 12, u * 8.0, v * 8.0),
            Region::Window => self.t_in + (self.t_out - self.t_in) * 0.6,
            Region::Sky => self.t_sky + 3.0 * (v - self.v_h + 0.5).clamp(0.0, 1.0),
            Region::Ground(_) => self.t_out + self.sun * 5.0 + vnoise2(k ^ 13, u * 10.0, v * 10.0),
            Region::Fence(_) => self.t_out + self.sun * 6.0,
            Region::Pavement(_) | Region::Kerb(_) => self.t_out + self.sun * 8.0,
            Region::Road(_) => self.t_out + self.sun * 13.0,
            Region::Building(z) => {
                let xw = (u - 0.5) * z + 1000.0;
                let yw = self.h_cam - (v - self.v_h) * z;
                let (fx, fy) = ((xw / 1.6).fract(), (yw / 3.0).fract());
                if (0.3..0.7).contains(&fx) && (0.35..0.75).contains(&fy) && yw > 1.0 {
                    self.t_out - 2.0
                } else {
                    self.t_out + 1.5 + self.sun * 5.0
                }
            }
        }
    }

    /// Draws the place for one episode.
    fn generate(&mut self, rng: &mut Rng, primary: Situation, rain: bool) {
        self.tex = rng.next_u64();
        let outdoor = rng.chance(primary.p_outdoor());
        self.place = if !outdoor {
            Place::Indoor
        } else if rng.chance(0.5) {
            Place::Yard
        } else {
            Place::Street
        };
        self.v_h = rng.range(0.3, 0.52);
        self.h_cam = rng.range(1.25, 1.6);
        self.t_in = rng.range(19.0, 25.0);
        self.t_out = rng.range(-5.0, 32.0);
        self.overcast = if rain {
            rng.range(0.7, 1.0)
        } else {
            rng.range(0.0, 1.0)
        };
        self.sun = if rain {
            0.0
        } else {
            rng.range(0.0, 1.0) * (1.0 - self.overcast)
        };
        self.t_sky = (self.t_out - 38.0 + 30.0 * self.overcast).max(-40.0);
        let blue = [
            rng.range(0.25, 0.45),
            rng.range(0.45, 0.65),
            rng.range(0.8, 0.95),
        ];
        self.sky_top = blue;
        self.sky_bot = [0.75, 0.82, 0.9];
        // The wall stands far enough for its foot to be in view (v <= 0.85).
        self.wall_z = rng
            .range(2.5, 6.0)
            .max(self.h_cam / (0.85 - self.v_h) / 0.85);
        self.wall_tilt = rng.range(-0.3, 0.3);
        self.ceil_h = rng.range(2.4, 3.0);
        self.wall_rgb = rng.hsv((0.05, 0.4), (0.45, 0.9));
        self.ceil_rgb = rng.tint([0.92, 0.92, 0.9], 0.05);
        self.trim_rgb = if rng.chance(0.6) {
            [0.93, 0.93, 0.9]
        } else {
            rng.hsv((0.2, 0.5), (0.2, 0.5))
        };
        self.floor_kind = rng.below(3) as u8;
        self.floor_rgb = match self.floor_kind {
            0 => rng.tint([0.55, 0.38, 0.22], 0.3),
            1 => rng.hsv((0.1, 0.6), (0.25, 0.7)),
            _ => rng.hsv((0.0, 0.2), (0.4, 0.9)),
        };
        self.stripes = if rng.chance(0.3) {
            rng.range(2.0, 6.0)
        } else {
            0.0
        };
        let zw = self.wall_z_at(0.5);
        let v_floor = self.v_h + self.h_cam / zw;
        let v_ceil = self.v_h - (self.ceil_h - self.h_cam) / zw;
        let ww = rng.range(1.0, 2.2) / zw;
        let wu = rng.range(0.05, 0.95 - ww.min(0.8));
        let wv0 = (self.v_h - (2.1 - self.h_cam) / zw).max(v_ceil + 0.02);
        let wv1 = (self.v_h + (self.h_cam - 0.9) / zw).min(v_floor - 0.05);
        self.window = [wu, wv0, wu + ww, wv1.max(wv0 + 0.05)];
        self.ground_kind = rng.below(3) as u8;
        self.ground_rgb = match self.ground_kind {
            0 => rng.tint([0.3, 0.5, 0.18], 0.25),
            1 => rng.tint([0.5, 0.42, 0.32], 0.2),
            _ => rng.tint([0.6, 0.58, 0.55], 0.15),
        };
        self.fence_z = rng.range(7.0, 14.0);
        self.fence_h = rng.range(1.0, 1.9);
        self.fence_rgb = if rng.chance(0.5) {
            rng.tint([0.5, 0.36, 0.22], 0.25)
        } else {
            rng.hsv((0.0, 0.4), (0.4, 0.9))
        };
        self.road_z0 = rng.range(4.5, 7.0);
        self.road_z1 = self.road_z0 + rng.range(5.0, 8.0);
        self.build_z = (self.road_z1 + rng.range(2.5, 5.0)).min(19.5);
        self.clutter.clear();
        self.generate_clutter(rng);
    }

    fn generate_clutter(&mut self, rng: &mut Rng) {
        let mut out = std::mem::take(&mut self.clutter);
        let amb = self.t_amb();
        let (vh, hc) = (self.v_h, self.h_cam);
        match self.place {
            Place::Indoor => {
                let n = rng.int(2, 6);
                for _ in 0..n {
                    let u = rng.range(0.0, 1.0);
                    let zw = self.wall_z_at(u);
                    let item = rng.below(10);
                    let z = if item == 2 || item == 0 || item == 9 {
                        zw - rng.range(0.4, 1.0)
                    } else {
                        zw - 0.05
                    };
                    let x = (u - 0.5) * z;
                    let mut p = Painter::new(&mut out, vh, hc, z, x);
                    let wood = rng.tint([0.5, 0.34, 0.2], 0.3);
                    match item {
                        0 => {
                            // table
                            let w = rng.range(0.5, 0.9);
                            p.rect(-w, 0.72, w, 0.78, wood, amb);
                            p.rect(-w + 0.05, 0.0, -w + 0.11, 0.72, wood, amb);
                            p.rect(w - 0.11, 0.0, w - 0.05, 0.72, wood, amb);
                            if rng.chance(0.5) {
                                let c = rng.hsv((0.3, 0.9), (0.3, 0.9));
                                p.ellipse(
                                    rng.range(-w, w) * 0.7,
                                    0.85,
                                    0.07,
                                    0.08,
                                    c,
                                    amb + rng.range(-2.0, 40.0),
                                );
                            }
                        }
                        1 => {
                            // bookcase
                            let (w, h) = (rng.range(0.4, 0.7), rng.range(1.2, 2.0));
                            p.rect(-w, 0.0, w, h, wood, amb);
                            let shelves = (h / 0.4) as usize;
                            for s in 0..shelves {
                                let y = 0.05 + s as f32 * 0.4;
                                let mut bx = -w + 0.05;
                                while bx < w - 0.1 {
                                    let bw = rng.range(0.03, 0.08);
                                    let bh = rng.range(0.2, 0.32);
                                    let c = rng.hsv((0.3, 0.9), (0.2, 0.8));
                                    p.rect(bx, y, bx + bw, y + bh, c, amb);
                                    bx += bw + 0.01;
                                }
                            }
                        }
                        2 => {
                            // sofa
                            let c = rng.hsv((0.1, 0.7), (0.2, 0.7));
                            let w = rng.range(0.8, 1.1);
                            p.rect(-w, 0.35, w, 0.9, c, amb + 0.5);
                            p.rect(
                                -w,
                                0.1,
                                w,
                                0.5,
                                [c[0] * 0.85, c[1] * 0.85, c[2] * 0.85],
                                amb + 0.5,
                            );
                            p.ellipse(-w, 0.5, 0.15, 0.2, c, amb + 0.5);
                            p.ellipse(w, 0.5, 0.15, 0.2, c, amb + 0.5);
                        }
                        3 => {
                            // picture
                            let (w, h) = (rng.range(0.2, 0.5), rng.range(0.2, 0.4));
                            let y = rng.range(1.4, 1.8);
                            p.rect(
                                -w,
                                y - h,
                                w,
                                y + h,
                                rng.pick(&[[0.1, 0.1, 0.1], [0.8, 0.7, 0.4], wood]),
                                amb,
                            );
                            p.rect(
                                -w + 0.04,
                                y - h + 0.04,
                                w - 0.04,
                                y + h - 0.04,
                                rng.hsv((0.2, 0.8), (0.3, 0.9)),
                                amb,
                            );
                            p.ellipse(
                                0.0,
                                y,
                                w * 0.4,
                                h * 0.4,
                                rng.hsv((0.2, 0.8), (0.3, 0.9)),
                                amb,
                            );
                        }
                        4 => {
                            // floor lamp, switched on or off
                            let on = rng.chance(0.6);
                            p.capsule(0.0, 0.0, 0.0, 1.5, 0.02, [0.2, 0.2, 0.2], amb);
                            let shade = rng.tint([0.9, 0.85, 0.7], 0.1);
                            if on {
                                p.flags = ALL | EMIT;
                            }
                            p.tri([-0.12, 1.75, 0.12, 1.75, 0.0, 1.75], shade, amb);
                            p.rect(
                                -0.2,
                                1.45,
                                0.2,
                                1.75,
                                shade,
                                if on { amb + 15.0 } else { amb },
                            );
                            p.flags = ALL;
                            if on {
                                p.glow(0.0, 1.6, 0.8, 0.6, [0.25, 0.2, 0.1], 4.0, VIS | THM);
                            }
                        }
                        5 => {
                            // plant
                            p.rect(
                                -0.15,
                                0.0,
                                0.15,
                                0.3,
                                rng.pick(&[[0.6, 0.3, 0.2], [0.9, 0.9, 0.9], [0.2, 0.2, 0.25]]),
                                amb,
                            );
                            let g = rng.tint([0.2, 0.45, 0.15], 0.3);
                            for _ in 0..5 {
                                p.ellipse(
                                    rng.range(-0.25, 0.25),
                                    rng.range(0.45, 0.9),
                                    0.14,
                                    0.1,
                                    g,
                                    amb - 1.5,
                                );
                            }
                        }
                        6 => {
                            // radiator, heating when it is cold outside
                            let hot = self.t_out < 15.0 && rng.chance(0.8);
                            let w = rng.range(0.4, 0.7);
                            let t = if hot { rng.range(38.0, 60.0) } else { amb };
                            p.rect(-w, 0.15, w, 0.75, [0.9, 0.9, 0.88], t);
                            let mut x = -w + 0.04;
                            while x < w {
                                p.rect(x, 0.17, x + 0.015, 0.73, [0.7, 0.7, 0.68], t);
                                x += 0.07;
                            }
                        }
                        7 => {
                            // television (on: bright, warm)
                            let on = rng.chance(0.4);
                            let (w, y) = (rng.range(0.35, 0.6), rng.range(0.9, 1.4));
                            p.rect(
                                -w,
                                y - 0.6 * w,
                                w,
                                y + 0.6 * w,
                                [0.03, 0.03, 0.04],
                                amb + if on { 9.0 } else { 0.5 },
                            );
                            if on {
                                p.flags = ALL | EMIT;
                                let c = rng.hsv((0.2, 0.6), (0.4, 0.9));
                                p.rect(
                                    -w + 0.03,
                                    y - 0.6 * w + 0.03,
                                    w - 0.03,
                                    y + 0.6 * w - 0.03,
                                    c,
                                    amb + 12.0,
                                );
                                p.flags = ALL;
                            }
                        }
                        8 => {
                            // closed door
                            let c = rng.pick(&super::actors::FRAME);
                            p.rect(-0.5, 0.0, 0.5, 2.08, c, amb);
                            p.rect(
                                -0.44,
                                0.0,
                                0.44,
                                2.0,
                                rng.tint([0.85, 0.82, 0.75], 0.2),
                                amb + 0.3,
                            );
                            p.ellipse(0.36, 1.0, 0.03, 0.03, [0.75, 0.7, 0.4], amb);
                        }
                        _ => {
                            // somebody sitting quietly (reading): people do not imply talking
                            let lk = random_look(rng, amb);
                            let pose = Pose {
                                upper_arm: [0.5, 0.5],
                                elbow: [1.2, 1.2],
                                look: rng.range(-1.0, 1.0),
                                front: true,
                                seated: true,
                                ..Pose::default()
                            };
                            draw_person(&mut p, &pose, &lk);
                        }
                    }
                }
            }
            Place::Yard | Place::Street => {
                let street = self.place == Place::Street;
                let far = if street {
                    self.build_z - 0.5
                } else {
                    self.fence_z + 4.0
                };
                let n = rng.int(2, 6);
                for _ in 0..n {
                    let item = rng.below(6);
                    let z = match (street, item) {
                        (true, 0) | (true, 1) => self.road_z0 - rng.range(0.3, 1.0),
                        (true, 2) => self.road_z0 + rng.range(0.5, 1.5),
                        (false, 0) => rng.range(self.fence_z - 0.5, far),
                        _ => rng
                            .range(
                                3.5,
                                if street {
                                    self.road_z0 - 0.3
                                } else {
                                    self.fence_z - 0.5
                                },
                            )
                            .max(3.0),
                    };
                    let x = rng.range(-0.6, 0.6) * z;
                    let mut p = Painter::new(&mut out, vh, hc, z, x);
                    match (street, item) {
                        (false, 0) | (true, 3) => {
                            // tree
                            let h = rng.range(2.5, 6.0);
                            let bark = rng.tint([0.35, 0.25, 0.15], 0.2);
                            p.rect(-0.15, 0.0, 0.15, h * 0.6, bark, self.t_out + self.sun * 3.0);
                            let g = rng.tint([0.2, 0.42, 0.15], 0.3);
                            for _ in 0..4 {
                                p.ellipse(
                                    rng.range(-0.8, 0.8),
                                    h * rng.range(0.6, 0.9),
                                    rng.range(0.7, 1.3),
                                    rng.range(0.6, 1.0),
                                    g,
                                    self.t_out - 1.0,
                                );
                            }
                        }
                        (_, 1) if !street => {
                            // bush
                            let g = rng.tint([0.22, 0.4, 0.15], 0.3);
                            p.ellipse(0.0, 0.4, rng.range(0.5, 1.0), 0.45, g, self.t_out - 0.5);
                        }
                        (true, 0) => {
                            // lamp post / sign post
                            p.capsule(
                                0.0,
                                0.0,
                                0.0,
                                rng.range(2.5, 4.5),
                                0.06,
                                [0.25, 0.27, 0.3],
                                self.t_out + self.sun * 4.0,
                            );
                            if rng.chance(0.5) {
                                p.rect(
                                    -0.3,
                                    2.0,
                                    0.3,
                                    2.5,
                                    rng.pick(&[[0.1, 0.3, 0.7], [0.8, 0.1, 0.1], [0.9, 0.9, 0.9]]),
                                    self.t_out,
                                );
                            }
                        }
                        (true, 2) | (false, 2) if street || rng.chance(0.3) => {
                            // parked car: cars do not imply a car passing
                            let temps = [
                                self.t_out + self.sun * 8.0,
                                self.t_out + rng.range(0.0, 15.0),
                                0.0,
                                0.0,
                            ];
                            p.dir = rng.sign();
                            draw_car(
                                &mut p,
                                rng.pick(&CAR_COLOURS),
                                rng.range(0.0, 6.0),
                                temps,
                                false,
                            );
                        }
                        (_, 4) => {
                            // bench or garden chair
                            let c = rng.tint([0.45, 0.3, 0.18], 0.3);
                            p.rect(-0.7, 0.42, 0.7, 0.5, c, self.t_out + self.sun * 5.0);
                            p.rect(-0.7, 0.6, 0.7, 0.85, c, self.t_out + self.sun * 5.0);
                            p.rect(-0.65, 0.0, -0.58, 0.42, [0.2, 0.2, 0.2], self.t_out);
                            p.rect(0.58, 0.0, 0.65, 0.42, [0.2, 0.2, 0.2], self.t_out);
                        }
                        (_, 5) => {
                            // somebody standing still far away
                            let lk = random_look(rng, self.t_out);
                            let pose = Pose {
                                upper_arm: [0.1, 0.1],
                                elbow: [0.2, 0.2],
                                look: rng.range(-1.0, 1.0),
                                front: true,
                                ..Pose::default()
                            };
                            draw_person(&mut p, &pose, &lk);
                        }
                        _ => {
                            // bin / box
                            let c = rng.hsv((0.2, 0.7), (0.2, 0.6));
                            p.rect(
                                -0.3,
                                0.0,
                                0.3,
                                rng.range(0.5, 1.0),
                                c,
                                self.t_out + self.sun * 6.0,
                            );
                        }
                    }
                }
            }
        }
        self.clutter = out;
    }
}

fn random_look(rng: &mut Rng, amb: f32) -> Look {
    Look {
        shirt: rng.hsv((0.2, 0.9), (0.2, 0.9)),
        trousers: rng.hsv((0.0, 0.5), (0.1, 0.5)),
        skin: rng.pick(&SKIN),
        hair: rng.pick(&HAIR),
        t_face: amb + (36.5 - amb) * 0.8,
        t_cloth: amb + (37.0 - amb) * rng.range(0.4, 0.6),
        t_legs: amb + (37.0 - amb) * 0.45,
        t_hair: amb + (37.0 - amb) * 0.5,
        size: rng.range(0.85, 1.1),
    }
}

/// Everything hidden about one episode.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub ep: EpisodeHeader,
    pub dur: f32,
    pub bg: Background,
    pub actors: [Actor; 2],
    pub n_actors: usize,
    pub motion: Motion,
}

impl Scene {
    /// An empty scene with all capacities reserved.
    pub fn new() -> Self {
        Scene {
            ep: EpisodeHeader {
                index: u64::MAX,
                start_ns: 0,
                end_ns: 0,
                primary: Situation::QuietRoom,
                overlap: None,
            },
            dur: 0.0,
            bg: Background::empty(),
            actors: [Actor::empty(), Actor::empty()],
            n_actors: 0,
            motion: Motion::new(),
        }
    }

    /// Rebuilds the scene in place for episode `ep` of `seed` (no allocation).
    pub fn rebuild(&mut self, seed: u64, ep: &EpisodeHeader) {
        let mut rng = Rng::new(seed, streams::SCENE, ep.index);
        self.ep = *ep;
        self.dur = ep.duration_s();
        let rain = ep.primary == Situation::Rain
            || ep.overlap.is_some_and(|o| o.situation == Situation::Rain);
        self.bg.generate(&mut rng, ep.primary, rain);
        let dur = self.dur;
        self.actors[0].generate(ep.primary, 0.0, dur, &mut rng, &self.bg);
        self.n_actors = 1;
        if let Some(o) = ep.overlap {
            let (a, b) = (ep.rel_s(o.start_ns), ep.rel_s(o.end_ns));
            self.actors[1].generate(o.situation, a, b, &mut rng, &self.bg);
            self.n_actors = 2;
        }
        let mut mrng = Rng::new(seed, streams::SCENE, ep.index ^ 0x4D4F_5449_4F4E_0000);
        self.motion
            .build(&mut mrng, &self.actors[..self.n_actors], dur, ep.primary);
    }

    /// The active actors.
    pub fn actors(&self) -> &[Actor] {
        &self.actors[..self.n_actors]
    }

    /// Ambient temperature where the wearer is.
    pub fn t_amb(&self) -> f32 {
        self.bg.t_amb()
    }

    /// Pushes every actor's primitives at `t` (seconds from the episode start),
    /// far actors first.
    pub fn emit(&self, t: f32, out: &mut Vec<Prim>) {
        out.clear();
        let acts = self.actors();
        if acts.len() == 2 && acts[1].z > acts[0].z {
            acts[1].emit(self, t, out);
            acts[0].emit(self, t, out);
        } else {
            for a in acts {
                a.emit(self, t, out);
            }
        }
    }

    /// Rain cooling of outdoor surfaces at `t`: (blend factor, wet temperature).
    pub fn rain_cooling(&self, t: f32) -> (f32, f32) {
        self.actors()
            .iter()
            .map(|a| a.rain_cooling(t))
            .fold((0.0, 0.0), |acc, c| if c.0 > acc.0 { c } else { acc })
    }
}
