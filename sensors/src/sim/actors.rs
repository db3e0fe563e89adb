//! Situation objects ("actors"): their per-episode parameters, their event
//! schedules (barks, slams, car passes, turns of speech...) and the primitives
//! they show at a given time. Audio, IMU and the three imagers all read the
//! same actor, so a bark opens the dog's mouth (camera, thermal) exactly when
//! the microphone hears it.

use std::f32::consts::{PI, TAU};

use super::prim::{
    ALL, D_HOLES, D_SOLID, D_SPARSE, DEP, EMIT, NO_CLIP, Painter, Prim, Shape, THM, VIS, push,
};
use super::rng::{Rng, cell, signed, unit, vnoise};
use super::scene::{Background, Place, Scene};
use super::situation::Situation;

/// Most events one actor schedules in an episode.
pub(crate) const MAX_EVENTS: usize = 64;

/// A scheduled moment of an actor (times in seconds from the episode start).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ev {
    pub t: f32,
    pub dur: f32,
    pub a: f32,
    pub b: f32,
    pub c: f32,
}

/// One situation's object(s) in one episode.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub kind: Situation,
    /// Active window, seconds from the episode start.
    pub from: f32,
    pub to: f32,
    /// Depth (m); also the painter's order (far first).
    pub z: f32,
    /// Lateral position (m).
    pub x: f32,
    pub size: f32,
    pub dir: f32,
    pub variant: u8,
    pub col: [[f32; 3]; 4],
    pub temp: [f32; 4],
    pub p: [f32; 8],
    pub key: u64,
    pub ev: Vec<Ev>,
}

impl Actor {
    pub fn empty() -> Self {
        Actor {
            kind: Situation::QuietRoom,
            from: 0.0,
            to: 0.0,
            z: 1.0,
            x: 0.0,
            size: 1.0,
            dir: 1.0,
            variant: 0,
            col: [[0.5; 3]; 4],
            temp: [20.0; 4],
            p: [0.0; 8],
            key: 0,
            ev: Vec::with_capacity(MAX_EVENTS),
        }
    }

    #[inline]
    pub fn active(&self, t: f32) -> bool {
        t >= self.from && t < self.to
    }

    /// 0..1 gain with 40 ms ramps at the edges of the active window.
    #[inline]
    pub fn fade(&self, t: f32) -> f32 {
        if !self.active(t) {
            return 0.0;
        }
        ((t - self.from) * 25.0).min((self.to - t) * 25.0).min(1.0)
    }

    fn push_ev(&mut self, e: Ev) {
        if self.ev.len() < self.ev.capacity() {
            self.ev.push(e);
        }
    }

    /// Index of the last event starting at or before `t`.
    pub fn last_ev(&self, t: f32) -> Option<usize> {
        let k = self.ev.partition_point(|e| e.t <= t);
        k.checked_sub(1)
    }

    /// Draws this actor's parameters and schedule for an episode.
    pub fn generate(
        &mut self,
        kind: Situation,
        from: f32,
        to: f32,
        rng: &mut Rng,
        bg: &Background,
    ) {
        self.kind = kind;
        self.from = from;
        self.to = to;
        self.key = rng.next_u64();
        self.ev.clear();
        self.variant = 0;
        self.dir = rng.sign();
        self.size = 1.0;
        self.p = [0.0; 8];
        let amb = bg.t_amb();
        let len = to - from;
        let indoor = bg.place == Place::Indoor;
        // Free floor in front of the wall / fence / kerb, and the nearest depth
        // at which something standing on the floor is seen whole (feet at v = 0.9).
        let back = match bg.place {
            Place::Indoor => bg.wall_z * (1.0 - 0.5 * bg.wall_tilt.abs()) - 0.4,
            Place::Yard => bg.fence_z - 0.8,
            Place::Street => bg.road_z0 - 0.2,
        };
        let zvis = bg.h_cam / (0.9 - bg.v_h);
        let floor_z = |rng: &mut Rng, lo: f32, hi: f32| {
            let lo = lo.max(zvis).min(back);
            let hi = hi.min(back).max(lo + 0.01);
            rng.range(lo, hi)
        };
        let zmax = (back - 0.4).max(1.9);
        match kind {
            Situation::QuietRoom => {
                self.z = 1.0;
            }
            Situation::PeopleTalking => {
                self.z = floor_z(rng, 1.6, 4.5);
                self.x = rng.range(-0.15, 0.15) * self.z;
                self.variant = rng.chance(0.5) as u8; // 1: seated behind a table
                self.p[0] = rng.range(95.0, 140.0); // speaker 0 f0
                self.p[1] = rng.range(170.0, 240.0); // speaker 1 f0
                self.p[2] = rng.range(3.5, 5.5); // syllables/s
                self.p[3] = rng.range(3.5, 5.5);
                self.p[4] = rng.range(0.7, 1.2); // spacing (m)
                self.p[5] = rng.range(0.0, 100.0); // gesture noise phase
                self.col = [
                    rng.hsv((0.2, 0.8), (0.2, 0.8)),
                    rng.hsv((0.2, 0.8), (0.2, 0.8)),
                    rng.pick(&SKIN),
                    rng.pick(&SKIN),
                ];
                self.temp = [
                    amb + (36.5 - amb) * rng.range(0.75, 0.85),
                    amb + (37.0 - amb) * rng.range(0.45, 0.65),
                    amb + (37.0 - amb) * 0.5,
                    0.0,
                ];
                let mut t = from + rng.range(0.0, 0.25);
                let mut spk = rng.below(2) as f32;
                while t < to - 0.3 {
                    let d = rng.range(0.8, 2.6).min(to - t);
                    self.push_ev(Ev {
                        t,
                        dur: d,
                        a: spk,
                        ..Ev::default()
                    });
                    t += d + rng.range(0.1, 0.5);
                    if rng.chance(0.85) {
                        spk = 1.0 - spk;
                    }
                }
            }
            Situation::DogBarking => {
                self.size = rng.range(0.6, 1.25);
                self.z = floor_z(rng, 1.8, 5.5);
                self.x = rng.range(-0.22, 0.22) * self.z;
                self.col = [
                    rng.pick(&FUR),
                    rng.pick(&FUR),
                    rng.hsv((0.6, 1.0), (0.5, 0.9)),
                    [0.0; 3],
                ];
                self.p[0] = (rng.range(420.0, 700.0) / self.size.powf(0.7)).clamp(250.0, 1000.0); // bark f0
                self.p[1] = rng.range(3.0, 6.0); // tail wag Hz
                self.p[2] = rng.range(0.05, 0.35); // wander (m)
                self.p[3] = rng.range(0.0, TAU);
                self.temp = [
                    amb + (38.5 - amb) * rng.range(0.5, 0.65),
                    amb + (38.5 - amb) * rng.range(0.72, 0.85),
                    37.5,
                    0.0,
                ];
                let mut t = from + rng.range(0.05, 0.7);
                while t < to - 0.2 {
                    let n = rng.int(1, 4);
                    for _ in 0..n {
                        if t >= to - 0.2 {
                            break;
                        }
                        let dur = rng.range(0.12, 0.25);
                        self.push_ev(Ev {
                            t,
                            dur,
                            a: rng.range(0.6, 1.0),
                            b: rng.range(0.9, 1.12),
                            c: 0.0,
                        });
                        t += dur + rng.range(0.12, 0.3);
                    }
                    t += rng.range(0.3, 2.0);
                }
            }
            Situation::CarPassing => {
                self.z = match bg.place {
                    Place::Street => rng.range(bg.road_z0 + 1.0, bg.road_z1 - 0.8),
                    Place::Yard => rng.range(4.0, (bg.fence_z - 1.0).max(4.5)),
                    Place::Indoor => bg.wall_z + rng.range(3.0, 9.0),
                };
                if indoor {
                    let w = bg.window;
                    self.variant = 1;
                    self.p[4] = w[0];
                    self.p[5] = w[1];
                    self.p[6] = w[2];
                    self.p[7] = w[3];
                }
                self.p[0] = rng.range(25.0, 45.0); // engine firing frequency
                self.temp = [
                    amb + rng.range(2.0, 6.0),
                    rng.range(45.0, 75.0),
                    amb + rng.range(12.0, 25.0),
                    0.0,
                ];
                let mut t = from + rng.range(0.2, 0.6) * len.min(4.0);
                while t < to {
                    self.push_ev(Ev {
                        t,
                        dur: 0.0,
                        a: rng.range(5.0, 12.0), // speed m/s
                        b: rng.sign(),           // direction
                        c: rng.below(CAR_COLOURS.len()) as f32 + 0.5, // colour
                    });
                    t += rng.range(1.8, 4.5);
                }
            }
            Situation::Fire => {
                self.variant = indoor as u8; // 1: fireplace
                let u = rng.range(0.32, 0.68);
                self.z = if indoor {
                    (bg.wall_z_at(u) - 0.35).max(1.5)
                } else {
                    floor_z(rng, 1.6, 4.5)
                };
                self.x = (u - 0.5) * self.z;
                self.size = rng.range(0.35, 0.8);
                self.p[0] = rng.int(5, 9) as f32;
                self.p[1] = rng.range(0.8, 1.3); // intensity
                self.col = [
                    rng.pick(&STONE),
                    rng.tint([0.35, 0.22, 0.12], 0.2),
                    [0.0; 3],
                    [0.0; 3],
                ];
                self.temp = [
                    rng.range(500.0, 900.0),
                    rng.range(250.0, 400.0),
                    rng.range(15.0, 35.0),
                    0.0,
                ];
                let n = rng.int(0, 3);
                for _ in 0..n {
                    let t = rng.range(from + 0.3, (to - 1.2).max(from + 0.35));
                    self.push_ev(Ev {
                        t,
                        dur: rng.range(0.8, 1.5),
                        ..Ev::default()
                    });
                }
                self.ev.sort_by(|a, b| a.t.total_cmp(&b.t));
            }
            Situation::Rain => {
                self.z = 0.3;
                self.variant = indoor as u8; // 1: seen through the window
                self.p[0] = rng.range(60.0, 180.0); // streaks
                self.p[1] = rng.range(-0.25, 0.25); // slant
                self.p[2] = rng.range(0.04, 0.1); // streak length
                self.p[3] = rng.range(2.0, 4.0); // fall speed units/s
                self.p[4] = rng.range(0.6, 1.0); // intensity
                self.p[5] = rng.range(0.25, 0.7); // drop tick probability per 4 ms
                self.temp = [bg.t_out - rng.range(1.0, 3.0), 0.0, 0.0, 0.0];
            }
            Situation::PersonRunning => {
                self.variant = rng.chance(0.5) as u8; // 0: runner ahead, 1: runners crossing
                self.z = rng.range(3.0, 8.0).min(zmax.max(3.0) + 2.0);
                self.x = rng.range(-0.15, 0.15) * self.z;
                self.size = rng.range(0.9, 1.1);
                self.p[0] = rng.range(2.6, 3.2); // runner cadence
                self.p[1] = rng.range(3.0, 5.0); // crossing speed
                self.col = [
                    rng.hsv((0.4, 1.0), (0.3, 0.9)),
                    rng.hsv((0.0, 0.6), (0.1, 0.5)),
                    rng.pick(&SKIN),
                    rng.pick(&HAIR),
                ];
                self.temp = [
                    amb + (36.5 - amb) * 0.85,
                    amb + (37.0 - amb) * rng.range(0.6, 0.75),
                    amb + (37.0 - amb) * 0.75,
                    amb + (37.0 - amb) * 0.55,
                ];
                if self.variant == 1 {
                    let mut t = from + rng.range(0.2, 0.5) * len.min(3.0);
                    while t < to {
                        self.push_ev(Ev {
                            t,
                            a: rng.sign(),
                            b: rng.range(0.0, 1000.0),
                            ..Ev::default()
                        });
                        t += rng.range(1.2, 2.5);
                    }
                }
            }
            Situation::GlassBreaking => {
                let u = rng.range(0.3, 0.7);
                self.z = if indoor {
                    bg.wall_z_at(u) - 0.05
                } else {
                    rng.range(3.0, 7.0)
                };
                self.x = (u - 0.5) * self.z;
                self.size = rng.range(0.7, 1.3); // pane width
                self.p[0] = rng.range(0.8, 1.1); // pane bottom height
                self.p[1] = rng.range(0.9, 1.3); // pane height
                self.col = [
                    rng.tint([0.55, 0.65, 0.72], 0.15),
                    rng.pick(&FRAME),
                    rng.hsv((0.05, 0.4), (0.35, 0.85)),
                    [0.0; 3],
                ];
                // Pane, air beyond it (the other side), inside air.
                let beyond = if indoor { bg.t_out } else { bg.t_in };
                self.temp = [0.5 * (beyond + amb), beyond, amb, 0.0];
                let t = from + rng.range(0.05, 0.3) * len;
                self.push_ev(Ev {
                    t,
                    a: rng.range(0.3, 0.7),
                    b: rng.range(0.3, 0.7),
                    c: rng.range(0.6, 1.0),
                    ..Ev::default()
                });
            }
            Situation::MachineHumming => {
                self.z = floor_z(rng, 1.5, 4.5);
                self.x = rng.range(-0.25, 0.25) * self.z;
                self.size = rng.range(0.5, 1.1); // width
                self.p[0] = if rng.chance(0.5) { 50.0 } else { 60.0 }; // mains
                self.p[1] = rng.range(30.0, 60.0); // rotation Hz (IMU vibration)
                self.p[2] = rng.range(0.5, 2.0); // LED period
                self.p[3] = rng.range(0.4, 1.0); // vibration strength
                self.p[4] = rng.range(0.5, 1.5); // height
                self.col = [
                    rng.pick(&MACHINE),
                    rng.hsv((0.0, 0.2), (0.1, 0.3)),
                    [0.0; 3],
                    [0.0; 3],
                ];
                self.temp = [rng.range(35.0, 50.0), rng.range(45.0, 65.0), 0.0, 0.0];
            }
            Situation::DoorSlamming => {
                let u = rng.range(0.3, 0.7);
                self.z = if indoor {
                    bg.wall_z_at(u) - 0.03
                } else {
                    rng.range(3.0, 7.0)
                };
                self.x = (u - 0.5) * self.z;
                self.p[0] = rng.range(2.5, 5.0); // room behind depth
                self.col = [
                    rng.pick(&FRAME),
                    rng.hsv((0.0, 0.5), (0.3, 0.9)),
                    rng.hsv((0.0, 0.3), (0.15, 0.5)),
                    rng.hsv((0.05, 0.4), (0.35, 0.85)),
                ];
                let behind = amb + rng.sign() * rng.range(3.0, 10.0);
                self.temp = [amb + 0.5, behind, 0.0, 0.0];
                let mut t = from + rng.range(0.4, 1.4);
                while t < to - 0.1 {
                    let open = rng.range(0.6, 1.6);
                    self.push_ev(Ev {
                        t,
                        dur: open,
                        a: rng.range(0.8, 1.4), // max angle (rad)
                        b: rng.range(0.6, 1.0), // strength
                        c: 0.0,
                    });
                    t += 0.35 + rng.range(0.2, 0.8) + open + 0.6;
                }
            }
        }
    }

    /// Pushes this actor's primitives at time `t` (seconds from the episode start).
    pub fn emit(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        if !self.active(t) {
            return;
        }
        match self.kind {
            Situation::QuietRoom => {}
            Situation::PeopleTalking => self.emit_talking(sc, t, out),
            Situation::DogBarking => self.emit_dog(sc, t, out),
            Situation::CarPassing => self.emit_cars(sc, t, out),
            Situation::Fire => self.emit_fire(sc, t, out),
            Situation::Rain => self.emit_rain(sc, t, out),
            Situation::PersonRunning => self.emit_runner(sc, t, out),
            Situation::GlassBreaking => self.emit_glass(sc, t, out),
            Situation::MachineHumming => self.emit_machine(sc, t, out),
            Situation::DoorSlamming => self.emit_door(sc, t, out),
        }
    }

    fn painter<'a>(&self, sc: &Scene, out: &'a mut Vec<Prim>, z: f32, x: f32) -> Painter<'a> {
        Painter::new(out, sc.bg.v_h, sc.bg.h_cam, z, x)
    }

    // ----- dog -----

    /// Bark loudness envelope at `t` (0 when silent): (event index, time into the bark).
    pub fn bark_at(&self, t: f32) -> Option<(usize, f32)> {
        let k = self.last_ev(t)?;
        let e = &self.ev[k];
        let tau = t - e.t;
        (tau < e.dur + 0.04).then_some((k, tau))
    }

    fn emit_dog(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let s = self.size;
        let walk = sc.motion.walk_level(t);
        let x = self.x + self.p[2] * (0.5 * t + self.p[3]).sin();
        let open = match self.bark_at(t) {
            Some((k, tau)) => {
                let d = self.ev[k].dur;
                (PI * (tau / d).min(1.0)).sin().max(0.0) * self.ev[k].a
            }
            None => 0.0,
        };
        let (fur, patch, collar) = (self.col[0], self.col[1], self.col[2]);
        let (t_fur, t_head, t_mouth) = (self.temp[0], self.temp[1], self.temp[2]);
        let mut p = self.painter(sc, out, self.z, x);
        p.dir = self.dir;
        let ph = TAU * 1.9 * t;
        let wag = (TAU * self.p[1] * t).sin();
        // tail
        p.capsule(
            -0.33 * s,
            0.46 * s,
            -0.5 * s,
            (0.55 + 0.12 * wag) * s,
            0.03 * s,
            fur,
            t_fur - 2.0,
        );
        // legs (far pair darker)
        let dark = [fur[0] * 0.7, fur[1] * 0.7, fur[2] * 0.7];
        for (i, lx) in [-0.26f32, 0.22, -0.2, 0.28].into_iter().enumerate() {
            let sw = 0.08
                * s
                * walk
                * (ph + if i % 2 == 0 { 0.0 } else { PI } + if i >= 2 { PI } else { 0.0 }).sin();
            let c = if i < 2 { dark } else { fur };
            p.capsule(
                lx * s,
                0.33 * s,
                lx * s + sw,
                0.03 * s,
                0.045 * s,
                c,
                t_fur - 3.0,
            );
        }
        p.ellipse(0.0, 0.41 * s, 0.36 * s, 0.14 * s, fur, t_fur);
        p.ellipse(-0.08 * s, 0.45 * s, 0.14 * s, 0.08 * s, patch, t_fur);
        let hy = (0.63 + 0.04 * open) * s;
        p.capsule(
            0.25 * s,
            0.45 * s,
            0.37 * s,
            hy - 0.04 * s,
            0.075 * s,
            fur,
            t_fur,
        );
        p.capsule(
            0.3 * s,
            0.5 * s,
            0.37 * s,
            0.56 * s,
            0.05 * s,
            collar,
            t_fur - 1.0,
        );
        p.ellipse(0.41 * s, hy, 0.11 * s, 0.09 * s, fur, t_head);
        p.tri(
            [
                0.33 * s,
                hy + 0.07 * s,
                0.3 * s,
                hy - 0.06 * s,
                0.4 * s,
                hy + 0.03 * s,
            ],
            patch,
            t_head - 1.0,
        );
        if open > 0.05 {
            p.ellipse(
                0.53 * s,
                hy - 0.06 * s,
                0.06 * s,
                (0.01 + 0.035 * open) * s,
                [0.45, 0.08, 0.1],
                t_mouth,
            );
        }
        p.capsule(
            0.46 * s,
            hy - 0.01 * s,
            0.6 * s,
            hy - 0.03 * s,
            0.035 * s,
            fur,
            t_head - 1.0,
        );
        let ja = 0.7 * open;
        p.capsule(
            0.46 * s,
            hy - 0.05 * s,
            (0.46 + 0.12 * ja.cos()) * s,
            hy - (0.05 + 0.12 * ja.sin()) * s,
            0.025 * s,
            fur,
            t_head,
        );
        p.ellipse(
            0.61 * s,
            hy - 0.03 * s,
            0.02 * s,
            0.018 * s,
            [0.05, 0.04, 0.04],
            t_head - 4.0,
        );
        p.ellipse(
            0.44 * s,
            hy + 0.025 * s,
            0.015 * s,
            0.015 * s,
            [0.05, 0.04, 0.03],
            t_head + 0.5,
        );
    }

    // ----- cars -----

    /// Lateral position (m) of car pass `e` at time `t`.
    #[inline]
    pub fn car_x(e: &Ev, t: f32) -> f32 {
        e.b * e.a * (t - e.t)
    }

    fn emit_cars(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let z = self.z;
        for e in &self.ev {
            let x = Actor::car_x(e, t);
            if x.abs() > 0.8 * z + 3.0 {
                continue;
            }
            let colour = CAR_COLOURS[(e.c as usize).min(CAR_COLOURS.len() - 1)];
            let mut p = self.painter(sc, out, z, x);
            p.dir = e.b;
            if self.variant == 1 {
                // Seen through the window: the thermal camera sees the glass, not the car.
                p.clip = [self.p[4], self.p[5], self.p[6], self.p[7]];
                p.flags = VIS | DEP;
            }
            draw_car(&mut p, colour, -x / 0.33, self.temp, true);
        }
    }

    // ----- fire -----

    fn emit_fire(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let w = self.size;
        let k = self.key;
        let flick = 0.7 + 0.3 * vnoise(k ^ 7, t, 8.0);
        let (t_flame, t_log) = (self.temp[0], self.temp[1]);
        let mut p = self.painter(sc, out, self.z, self.x);
        if self.variant == 1 {
            // fireplace: surround on the wall, dark hearth
            p.z = self.z + 0.3;
            p.rect(
                -0.9 * w - 0.2,
                0.0,
                0.9 * w + 0.2,
                1.1 * w + 0.5,
                self.col[0],
                sc.bg.t_in + 6.0,
            );
            p.rect(
                -0.7 * w - 0.1,
                1.1 * w + 0.45,
                0.7 * w + 0.1,
                1.1 * w + 0.55,
                self.col[0],
                sc.bg.t_in + 4.0,
            );
            p.z = self.z + 0.2;
            p.rect(
                -0.75 * w,
                0.0,
                0.75 * w,
                0.9 * w + 0.2,
                [0.06, 0.05, 0.05],
                sc.bg.t_in + 25.0,
            );
            p.z = self.z;
        } else {
            for i in 0..7 {
                let a = i as f32 / 7.0 * PI;
                p.ellipse(
                    a.cos() * 0.7 * w,
                    0.06,
                    0.09,
                    0.07,
                    self.col[0],
                    sc.bg.t_out + 15.0,
                );
            }
        }
        // logs and embers
        p.capsule(
            -0.5 * w,
            0.05,
            0.5 * w,
            0.12,
            0.06,
            self.col[1],
            t_log * 0.3,
        );
        p.capsule(
            -0.45 * w,
            0.13,
            0.45 * w,
            0.04,
            0.055,
            self.col[1],
            t_log * 0.3,
        );
        p.flags = ALL | EMIT;
        for i in 0..5 {
            let h = cell(k, 50 + i);
            let on = vnoise(k ^ (60 + i), t, 3.0);
            p.ellipse(
                signed(h) * 0.4 * w,
                0.1,
                0.03 * w,
                0.02 * w,
                [0.9 + on, 0.25 + 0.2 * on, 0.05],
                t_log,
            );
        }
        // flames: emissive, hot, and transparent to the depth projector
        p.dmode = D_HOLES;
        p.dprob = 0.7;
        let n = self.p[0] as usize;
        for i in 0..n {
            let fi = i as f32 / (n - 1).max(1) as f32 - 0.5;
            let bx = fi * 0.8 * w;
            let hgt = w
                * self.p[1]
                * (0.5 + 0.9 * vnoise(k.wrapping_add(i as u64), t, 9.0))
                * (1.0 - fi.abs());
            let sway = 0.15 * w * (vnoise(k.wrapping_add(100 + i as u64), t, 5.0) - 0.5);
            let bw = 0.13 * w;
            p.alpha = 0.9;
            p.tri(
                [bx - bw, 0.12, bx + bw, 0.12, bx + sway, 0.12 + hgt],
                [1.0, 0.38, 0.06],
                t_flame,
            );
            p.alpha = 1.0;
            p.tri(
                [
                    bx - 0.6 * bw,
                    0.12,
                    bx + 0.6 * bw,
                    0.12,
                    bx + 0.7 * sway,
                    0.12 + 0.65 * hgt,
                ],
                [1.15, 0.8, 0.2],
                t_flame,
            );
            p.tri(
                [
                    bx - 0.3 * bw,
                    0.12,
                    bx + 0.3 * bw,
                    0.12,
                    bx + 0.4 * sway,
                    0.12 + 0.3 * hgt,
                ],
                [1.3, 1.2, 0.8],
                t_flame,
            );
        }
        // sparks
        p.alpha = 1.0;
        for i in 0..5u64 {
            let h = cell(k, 200 + i);
            let ph = (t * (0.6 + 0.5 * unit(h)) + unit(h >> 7)).fract();
            let sx = signed(h >> 14) * 0.4 * w + 0.1 * (t * 3.0 + i as f32).sin();
            p.ellipse(
                sx,
                0.2 + ph * 1.4 * w,
                0.012,
                0.012,
                [1.3, 0.9, 0.3],
                t_flame * 0.5,
            );
        }
        p.dmode = D_SOLID;
        p.flags = ALL;
        p.glow(
            0.0,
            0.3 * w,
            2.6 * w,
            1.8 * w,
            [0.5 * flick, 0.22 * flick, 0.05 * flick],
            self.temp[2] * flick,
            VIS | THM,
        );
        // poking the fire with a stick (the wearer's arm)
        for e in &self.ev {
            let tau = t - e.t;
            if (0.0..e.dur).contains(&tau) {
                let f = 0.55 + 0.35 * (PI * tau / e.dur).sin() + 0.05 * (TAU * 2.5 * tau).sin();
                let (fu, fv) = (p.u(0.0), p.v(0.2));
                let (su, sv) = (0.95, 1.25);
                let (eu, ev) = (su + (fu - su) * f, sv + (fv - sv) * f);
                let stick = Prim {
                    shape: Shape::Capsule([su, sv, eu, ev, 0.012]),
                    rgb: [0.3, 0.2, 0.1],
                    alpha: 1.0,
                    z: 0.8,
                    temp: sc.t_amb() + 3.0,
                    flags: ALL,
                    dmode: D_SOLID,
                    dprob: 0.0,
                    clip: NO_CLIP,
                };
                push(p.out, stick);
                let mut tip = stick;
                tip.shape = Shape::Ellipse([eu, ev, 0.012, 0.012]);
                tip.rgb = [1.0, 0.35, 0.05];
                tip.temp = 120.0;
                tip.flags = ALL | EMIT;
                push(p.out, tip);
            }
        }
    }

    // ----- rain -----

    fn emit_rain(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let n = self.p[0] as u64;
        let (slant, len, speed) = (self.p[1], self.p[2], self.p[3]);
        let clip = if self.variant == 1 {
            sc.bg.window
        } else {
            NO_CLIP
        };
        let t_drop = self.temp[0] - 3.0;
        // Rain beyond the window: the depth sensor sees the (empty) window, not the drops.
        let layers = if self.variant == 1 { VIS | THM } else { ALL };
        let ramp = ((t - self.from) * 2.0).min(1.0);
        let n = (n as f32 * ramp) as u64;
        for i in 0..n {
            let h = cell(self.key, i);
            let period = 1.4 / speed * (0.8 + 0.4 * unit(h));
            let c = t / period + unit(h >> 11);
            let cycle = c.floor();
            let f = c - cycle;
            let hc = cell(self.key ^ 0x5555, i * 4096 + cycle as i64 as u64);
            let v = -0.3 + 1.6 * f;
            let u = -0.35 + 1.7 * unit(hc) + slant * v;
            let zd = 0.5 + 2.5 * unit(hc >> 9);
            push(
                out,
                Prim {
                    shape: Shape::Capsule([u, v, u - slant * len, v - len, 0.0022]),
                    rgb: [0.85, 0.88, 0.92],
                    alpha: 0.3 + 0.2 * unit(hc >> 30),
                    z: zd,
                    temp: t_drop,
                    flags: layers,
                    dmode: D_SPARSE,
                    dprob: 0.3,
                    clip,
                },
            );
        }
        if self.variant == 1 {
            // droplets sitting on the window pane
            let w = clip;
            for i in 0..24u64 {
                let h = cell(self.key ^ 0xD0, i);
                let life = (t * 0.3 + unit(h)).fract();
                let u = w[0] + (w[2] - w[0]) * unit(h >> 8);
                let v = w[1] + (w[3] - w[1]) * (unit(h >> 20) + 0.3 * life).fract();
                push(
                    out,
                    Prim {
                        shape: Shape::Ellipse([u, v, 0.004, 0.006]),
                        rgb: [0.75, 0.8, 0.85],
                        alpha: 0.5,
                        z: 0.0,
                        temp: t_drop,
                        flags: VIS | THM,
                        dmode: D_SOLID,
                        dprob: 0.0,
                        clip,
                    },
                );
            }
        } else {
            // splashes on the ground
            for i in 0..12u64 {
                let slot = (t * 6.0).floor() as i64 as u64;
                let h = cell(self.key ^ 0x5A, slot * 64 + i);
                let zz = 2.0 + 8.0 * unit(h);
                let mut p = self.painter(sc, out, zz, signed(h >> 8) * 0.6 * zz);
                p.flags = VIS;
                p.alpha = 0.35;
                p.ellipse(0.0, 0.0, 0.08, 0.02, [0.8, 0.82, 0.85], 0.0);
            }
        }
    }

    /// Thermal cooling of outdoor surfaces by rain: (blend factor, wet temperature).
    pub fn rain_cooling(&self, t: f32) -> (f32, f32) {
        if self.kind != Situation::Rain || self.variant == 1 || t < self.from {
            return (0.0, 0.0);
        }
        let on = ((t - self.from) / 3.0).min(1.0);
        let off = if t >= self.to {
            (1.0 - (t - self.to) / 3.0).max(0.0)
        } else {
            1.0
        };
        (0.45 * on * off * self.p[4], self.temp[0])
    }

    // ----- runner -----

    fn emit_runner(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let lk = Look {
            shirt: self.col[0],
            trousers: self.col[1],
            skin: self.col[2],
            hair: self.col[3],
            t_face: self.temp[0],
            t_cloth: self.temp[1],
            t_legs: self.temp[2],
            t_hair: self.temp[3],
            size: self.size,
        };
        let cad = self.p[0];
        if self.variant == 0 {
            // running ahead, seen from behind, bobbing, legs alternating
            let x = self.x + 0.4 * (0.31 * t).sin();
            let z = self.z + 0.6 * (0.23 * t + 1.0).sin();
            let ph = PI * cad * t;
            let mut p = self.painter(sc, out, z, x);
            let pose = Pose {
                thigh: [0.7 * ph.sin().max(0.0), 0.7 * (-ph.sin()).max(0.0)],
                knee: [
                    1.2 * ph.sin().max(0.0) + 0.3,
                    1.2 * (-ph.sin()).max(0.0) + 0.3,
                ],
                upper_arm: [0.3 + 0.3 * ph.sin(), 0.3 - 0.3 * ph.sin()],
                elbow: [1.4, 1.4],
                bob: 0.05 * (2.0 * ph).cos(),
                front: true,
                back: true,
                ..Pose::default()
            };
            draw_person(&mut p, &pose, &lk);
        } else {
            for e in &self.ev {
                let x = e.a * self.p[1] * (t - e.t);
                if x.abs() > 0.8 * self.z + 1.0 {
                    continue;
                }
                let h = cell(self.key, e.b as u64);
                let lk2 = Look {
                    shirt: super::rng::hsv_to_rgb(
                        unit(h),
                        0.3 + 0.6 * unit(h >> 8),
                        0.3 + 0.6 * unit(h >> 16),
                    ),
                    ..lk
                };
                let ph = PI * cad * (t - e.t);
                let mut p = self.painter(sc, out, self.z, x);
                p.dir = e.a;
                let pose = Pose {
                    thigh: [0.75 * ph.sin(), -0.75 * ph.sin()],
                    knee: [0.9 + 0.6 * ph.cos(), 0.9 - 0.6 * ph.cos()],
                    upper_arm: [-0.8 * ph.sin(), 0.8 * ph.sin()],
                    elbow: [1.5, 1.5],
                    lean: 0.15,
                    bob: 0.05 * (2.0 * ph).cos(),
                    front: false,
                    ..Pose::default()
                };
                draw_person(&mut p, &pose, &lk2);
            }
        }
    }

    // ----- glass -----

    fn emit_glass(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let e = self.ev[0];
        let (w, y0, hgt) = (self.size, self.p[0], self.p[1]);
        let (x0, x1, y1) = (-0.5 * w, 0.5 * w, y0 + hgt);
        let (t_pane, t_beyond) = (self.temp[0], self.temp[1]);
        let indoor = sc.bg.place == Place::Indoor;
        let mut p = self.painter(sc, out, self.z, self.x);
        if !indoor {
            // the pane sits in the wall of a shed / shop front
            p.z = self.z + 0.05;
            p.rect(
                -1.4 * w - 0.6,
                0.0,
                1.4 * w + 0.6,
                y1 + 0.6,
                self.col[2],
                sc.t_amb() + 2.0 * sc.bg.sun,
            );
        }
        p.z = self.z + 0.02;
        p.rect(
            x0 - 0.06,
            y0 - 0.06,
            x1 + 0.06,
            y1 + 0.06,
            self.col[1],
            sc.t_amb(),
        );
        p.z = self.z;
        p.alpha = 0.9;
        p.dmode = D_HOLES;
        p.dprob = 0.35;
        p.rect(x0, y0, x1, y1, self.col[0], t_pane);
        p.alpha = 0.25;
        p.flags = VIS;
        p.tri(
            [x0 + 0.1 * w, y1, x0 + 0.35 * w, y1, x0, y0 + 0.3 * hgt],
            [1.0, 1.0, 1.0],
            0.0,
        );
        p.alpha = 1.0;
        p.flags = ALL;
        p.dmode = D_SOLID;
        let dt = t - e.t;
        if dt < 0.0 {
            return;
        }
        let (ix, iy) = (x0 + e.a * w, y0 + e.b * hgt);
        let k = self.key;
        // hole: a fan of irregular triangles showing what lies beyond
        if dt > 0.03 {
            let beyond_rgb = if indoor {
                sc.bg.sky_bot
            } else {
                [0.08, 0.08, 0.1]
            };
            let mut prev = None;
            let rmax = 0.3 * w.min(hgt) * e.c;
            for i in 0..=8u64 {
                let a = i as f32 / 8.0 * TAU;
                let r = rmax * (0.6 + 0.5 * unit(cell(k, 300 + (i % 8))));
                let pt = (ix + r * a.cos(), iy + r * a.sin());
                if let Some((px, py)) = prev {
                    p.z = if indoor { 0.0 } else { self.z + 3.0 };
                    p.tri([ix, iy, px, py, pt.0, pt.1], beyond_rgb, t_beyond);
                }
                prev = Some(pt);
            }
            p.z = self.z;
            // cold or warm air flowing in through the hole
            let grow = (dt / 2.5).min(1.0);
            p.glow(
                ix,
                iy,
                0.3 + 0.9 * grow,
                0.3 + 0.7 * grow,
                [0.0; 3],
                (t_beyond - self.temp[2]) * 0.6 * grow,
                THM,
            );
        }
        // cracks
        p.flags = VIS | THM;
        for i in 0..12u64 {
            let h = cell(k, 400 + i);
            let a = (i as f32 + unit(h)) / 12.0 * TAU;
            let l = (0.35 + 0.6 * unit(h >> 10)) * 0.6 * w.max(hgt);
            let (ex, ey) = (
                (ix + l * a.cos()).clamp(x0, x1),
                (iy + l * a.sin()).clamp(y0, y1),
            );
            p.capsule(ix, iy, ex, ey, 0.006, [0.85, 0.9, 0.95], t_pane - 0.5);
        }
        p.flags = ALL;
        // shards falling, then lying on the floor
        for i in 0..16u64 {
            let h = cell(k, 500 + i);
            let sx0 = ix + signed(h) * 0.25 * w;
            let sy0 = iy + signed(h >> 8) * 0.2 * hgt;
            let vx = signed(h >> 16) * 0.8;
            let fall = 0.5 * 9.81 * dt * dt * (0.7 + 0.3 * unit(h >> 24));
            let floor = 0.01 + 0.03 * unit(h >> 32);
            let sy = (sy0 - fall).max(floor);
            let t_land = ((sy0 - floor) / (0.5 * 9.81 * (0.7 + 0.3 * unit(h >> 24))))
                .max(0.0)
                .sqrt();
            let sx = sx0 + vx * dt.min(t_land);
            let sz = self.z - 0.4 * unit(h >> 40) * dt.min(t_land);
            let sz_sz = 0.03 + 0.06 * unit(h >> 48);
            let rot = unit(h >> 52) * TAU + dt.min(t_land) * 8.0;
            p.z = sz.max(0.4);
            let (c, s) = (rot.cos(), rot.sin());
            p.tri(
                [
                    sx + sz_sz * c,
                    sy + sz_sz * s,
                    sx - sz_sz * s * 0.6,
                    sy + sz_sz * c * 0.6,
                    sx - sz_sz * c * 0.7,
                    sy - sz_sz * s * 0.4,
                ],
                [0.8, 0.88, 0.92],
                t_pane,
            );
        }
    }

    // ----- machine -----

    fn emit_machine(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let (w, h) = (self.size, self.p[4]);
        let slot = (t * 90.0).floor() as i64 as u64;
        let jh = cell(self.key ^ 0x77, slot);
        let jx = signed(jh) * 0.006 * self.p[3];
        let jy = signed(jh >> 20) * 0.004 * self.p[3];
        let (casing, panel) = (self.col[0], self.col[1]);
        let (t_case, t_vent) = (self.temp[0], self.temp[1]);
        let mut p = self.painter(sc, out, self.z, self.x + jx);
        p.oy = jy;
        // cable to the wall
        p.capsule(
            0.5 * w,
            0.3 * h,
            0.5 * w + 0.6,
            0.03,
            0.02,
            [0.05, 0.05, 0.05],
            t_case - 5.0,
        );
        p.rect(-0.5 * w, 0.0, 0.5 * w, 0.08, [0.1, 0.1, 0.1], t_case - 8.0);
        p.rect(-0.5 * w, 0.06, 0.5 * w, h, casing, t_case);
        let dark = [casing[0] * 0.3, casing[1] * 0.3, casing[2] * 0.3];
        for k in 0..7 {
            let y = 0.18 * h + k as f32 * 0.075 * h;
            p.rect(-0.42 * w, y, 0.1 * w, y + 0.035 * h, dark, t_vent);
        }
        p.rect(0.18 * w, 0.55 * h, 0.43 * w, 0.85 * h, panel, t_case - 2.0);
        let on = (t / self.p[2]).fract() < 0.5;
        p.flags = ALL | EMIT;
        let led = if on {
            [0.2, 1.3, 0.3]
        } else {
            [0.05, 0.2, 0.05]
        };
        p.ellipse(0.3 * w, 0.75 * h, 0.025, 0.025, led, t_case);
        p.flags = ALL;
        p.glow(
            -0.15 * w,
            0.45 * h,
            0.5 * w,
            0.4 * h,
            [0.0; 3],
            0.4 * (t_vent - t_case),
            THM,
        );
    }

    // ----- door -----

    /// Opening angle of the door (rad) at `t`.
    pub fn door_angle(&self, t: f32) -> f32 {
        let bounce = |e: &Ev, t: f32| {
            let d = t - e.t;
            0.1 * e.a * (-d / 0.12).exp() * (TAU * 5.0 * d).sin().abs()
        };
        let mut prev: Option<&Ev> = None;
        for (k, e) in self.ev.iter().enumerate() {
            if t < e.t {
                let close0 = e.t - 0.2;
                let open1 = close0 - 0.35;
                let open0 = open1 - e.dur;
                if k > 0 && t < open0 {
                    return prev.map_or(0.0, |pe| bounce(pe, t));
                }
                if t < open1 {
                    let x = if k == 0 {
                        1.0
                    } else {
                        ((t - open0) / e.dur).clamp(0.0, 1.0)
                    };
                    return e.a * x * x * (3.0 - 2.0 * x);
                }
                if t < close0 {
                    return e.a;
                }
                let x = (t - close0) / 0.2;
                return e.a * (1.0 - x * x);
            }
            prev = Some(e);
        }
        prev.map_or(0.0, |pe| bounce(pe, t))
    }

    fn emit_door(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let th = self.door_angle(t);
        let (t_door, t_behind) = (self.temp[0], self.temp[1]);
        let z = self.z;
        let behind = self.p[0];
        let mut p = self.painter(sc, out, z, self.x);
        p.dir = self.dir;
        if sc.bg.place != Place::Indoor {
            // the door of a house / shed
            p.z = z + 0.03;
            p.rect(-1.8, 0.0, 1.8, 2.7, self.col[3], t_door + 1.5 * sc.bg.sun);
        }
        p.z = z + 0.01;
        p.rect(-0.52, 0.0, 0.52, 2.1, self.col[0], t_door);
        // the room behind the doorway
        p.z = z + behind;
        let open_frac = (th / 0.3).min(1.0);
        p.rect(
            -0.45,
            0.0,
            0.45,
            2.0,
            self.col[2],
            t_door + (t_behind - t_door) * open_frac,
        );
        // the panel, hinged on the left, swinging towards the camera
        let wd = 0.9;
        let zf = (z - wd * th.sin()).max(0.5);
        let xf = -0.45 + wd * th.cos();
        let shade = 0.7 + 0.3 * th.cos();
        let rgb = [
            self.col[1][0] * shade,
            self.col[1][1] * shade,
            self.col[1][2] * shade,
        ];
        let (uh, uf) = (p.u(-0.45), 0.5 + (self.x + self.dir * xf) / zf);
        let (vh0, vh1) = (p.v(0.0), p.v(2.0));
        let vf0 = sc.bg.v_h + sc.bg.h_cam / zf;
        let vf1 = sc.bg.v_h + (sc.bg.h_cam - 2.0) / zf;
        p.z = 0.5 * (z + zf);
        p.shape(Shape::Tri([uh, vh0, uh, vh1, uf, vf1]), rgb, t_door);
        p.shape(Shape::Tri([uh, vh0, uf, vf1, uf, vf0]), rgb, t_door);
        // handle near the free edge
        let hu = uh + 0.88 * (uf - uh);
        let hv = 0.5 * (vh0 + vh1) + 0.88 * (0.5 * (vf0 + vf1) - 0.5 * (vh0 + vh1));
        p.shape(
            Shape::Ellipse([hu, hv, 0.05 / zf, 0.03 / zf]),
            [0.75, 0.7, 0.4],
            t_door - 1.0,
        );
        // draught along the gap after each slam
        if let Some(k) = self.last_ev(t) {
            let d = t - self.ev[k].t;
            if d < 2.5 {
                p.z = z;
                p.glow(
                    0.45,
                    1.0,
                    0.25,
                    1.1,
                    [0.0; 3],
                    (t_behind - t_door) * 0.5 * (1.0 - d / 2.5),
                    THM,
                );
            }
        }
    }

    // ----- talking -----

    /// The syllable being spoken at `t`, if any.
    pub fn syllable_at(&self, t: f32) -> Option<Syl> {
        let k = self.last_ev(t)?;
        let turn = &self.ev[k];
        let tt = t - turn.t;
        if tt >= turn.dur {
            return None;
        }
        let spk = turn.a as usize;
        let per = 1.0 / self.p[2 + spk];
        let j = (tt / per).floor();
        let h = cell(self.key ^ (k as u64) << 32, j as u64);
        if unit(h) < 0.12 {
            return None;
        }
        let t0 = turn.t + j * per + 0.08 * per * unit(h >> 8);
        let dur = per * (0.55 + 0.3 * unit(h >> 16));
        if t < t0 || t >= t0 + dur || t0 + dur > turn.t + turn.dur {
            return None;
        }
        let base = self.p[spk];
        Some(Syl {
            speaker: spk,
            t0,
            dur,
            vowel: ((h >> 24) % 5) as usize,
            f0a: base * (0.95 + 0.25 * unit(h >> 32)),
            f0b: base * (0.82 + 0.2 * unit(h >> 44)),
            id: h,
            fric: unit(h >> 56) < 0.4,
        })
    }

    fn emit_talking(&self, sc: &Scene, t: f32, out: &mut Vec<Prim>) {
        let syl = self.syllable_at(t);
        let turn = self
            .last_ev(t)
            .map(|k| self.ev[k])
            .filter(|e| t < e.t + e.dur + 0.3);
        let seated = self.variant == 1;
        for spk in 0..2usize {
            let side = if spk == 0 { -1.0 } else { 1.0 };
            let x = self.x + side * 0.5 * self.p[4];
            let speaking = turn.is_some_and(|e| e.a as usize == spk);
            let mouth = match syl {
                Some(s) if s.speaker == spk => (PI * (t - s.t0) / s.dur).sin().max(0.0),
                _ => 0.0,
            };
            let g = vnoise(self.key.wrapping_add(spk as u64), t + self.p[5], 1.7);
            let g2 = vnoise(self.key.wrapping_add(10 + spk as u64), t, 1.3);
            let act = if speaking { 1.0 } else { 0.25 };
            let lk = Look {
                shirt: self.col[spk],
                trousers: [0.15, 0.15, 0.2],
                skin: self.col[2 + spk],
                hair: HAIR[(self.key >> (8 * spk)) as usize % HAIR.len()],
                t_face: self.temp[0],
                t_cloth: self.temp[1],
                t_legs: self.temp[1] - 1.0,
                t_hair: self.temp[2],
                size: 0.95 + 0.1 * spk as f32,
            };
            let pose = Pose {
                upper_arm: [0.1 + act * 0.55 * g, 0.1 + act * 0.4 * g2],
                elbow: [0.4 + act * 1.3 * g2, 0.4 + act * 1.1 * g],
                mouth,
                look: -side * 0.6,
                front: true,
                seated,
                bob: 0.01 * (t * 2.0 + spk as f32).sin(),
                ..Pose::default()
            };
            let mut p = self.painter(sc, out, self.z + 0.05 * spk as f32, x);
            draw_person(&mut p, &pose, &lk);
        }
        if seated {
            let mut p = self.painter(sc, out, self.z - 0.35, self.x);
            let wood = [0.45, 0.3, 0.18];
            p.rect(
                -0.5 * self.p[4] - 0.5,
                0.0,
                0.5 * self.p[4] + 0.5,
                0.75,
                wood,
                sc.t_amb(),
            );
        }
    }
}

/// A syllable of speech (shared by the microphone and the mouths on camera).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syl {
    pub speaker: usize,
    pub t0: f32,
    pub dur: f32,
    pub vowel: usize,
    pub f0a: f32,
    pub f0b: f32,
    pub id: u64,
    pub fric: bool,
}

/// Appearance and temperatures of a person.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    pub shirt: [f32; 3],
    pub trousers: [f32; 3],
    pub skin: [f32; 3],
    pub hair: [f32; 3],
    pub t_face: f32,
    pub t_cloth: f32,
    pub t_legs: f32,
    pub t_hair: f32,
    pub size: f32,
}

/// Joint angles of a person (radians, 0 = hanging straight down).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pose {
    pub thigh: [f32; 2],
    pub knee: [f32; 2],
    pub upper_arm: [f32; 2],
    pub elbow: [f32; 2],
    pub lean: f32,
    pub mouth: f32,
    /// Face features offset (-1..1) towards where the person looks.
    pub look: f32,
    pub bob: f32,
    /// Facing the camera (or, with `back`, facing away); else side view.
    pub front: bool,
    pub back: bool,
    pub seated: bool,
}

/// Draws a stick-and-ellipse person standing (or seated) at the painter's origin.
pub(crate) fn draw_person(p: &mut Painter, pose: &Pose, lk: &Look) {
    let s = lk.size;
    let hip_y = if pose.seated { 0.5 * s } else { 0.95 * s } + pose.bob;
    let (sl, cl) = pose.lean.sin_cos();
    let (shx, shy) = (0.5 * s * sl, hip_y + 0.5 * s * cl);
    let (hx, hy) = (shx + 0.05 * s * sl, shy + 0.2 * s);
    let legs_x = if pose.front {
        [-0.1 * s, 0.1 * s]
    } else {
        [0.0, 0.0]
    };
    let arms_x = if pose.front {
        [-0.2 * s, 0.2 * s]
    } else {
        [0.0, 0.0]
    };
    // legs
    for (i, &lx) in legs_x.iter().enumerate() {
        let (a, k) = (pose.thigh[i], pose.knee[i]);
        let (kx, ky, fx, fy);
        if pose.seated {
            kx = lx * 1.3;
            ky = hip_y;
            fx = kx;
            fy = 0.02;
        } else if pose.front {
            kx = lx;
            ky = hip_y - 0.46 * s * a.cos();
            fx = kx;
            fy = ky - 0.46 * s * (a - k).cos();
        } else {
            kx = 0.46 * s * a.sin();
            ky = hip_y - 0.46 * s * a.cos();
            fx = kx + 0.46 * s * (a - k).sin();
            fy = ky - 0.46 * s * (a - k).cos();
        }
        if !pose.seated {
            p.capsule(lx, hip_y, kx, ky, 0.07 * s, lk.trousers, lk.t_legs);
        }
        p.capsule(kx, ky, fx, fy, 0.055 * s, lk.trousers, lk.t_legs);
        p.ellipse(
            fx + if pose.front { 0.0 } else { 0.06 * s },
            fy.max(0.03),
            0.07 * s,
            0.035 * s,
            [0.1, 0.1, 0.1],
            lk.t_legs - 2.0,
        );
    }
    // torso
    let tr = if pose.front { 0.17 * s } else { 0.12 * s };
    p.capsule(
        0.0,
        hip_y + 0.05 * s,
        shx,
        shy - 0.05 * s,
        tr,
        lk.shirt,
        lk.t_cloth,
    );
    // arms
    for (i, &ax) in arms_x.iter().enumerate() {
        let side = if pose.front {
            if i == 0 { -1.0 } else { 1.0 }
        } else {
            1.0
        };
        let (ua, el) = (pose.upper_arm[i], pose.elbow[i]);
        let (sx, sy) = (shx + ax, shy - 0.04 * s);
        let (ex, ey) = (sx + side * 0.3 * s * ua.sin(), sy - 0.3 * s * ua.cos());
        let fa = ua + el;
        let (wx, wy) = (ex + side * 0.28 * s * fa.sin(), ey - 0.28 * s * fa.cos());
        p.capsule(sx, sy, ex, ey, 0.05 * s, lk.shirt, lk.t_cloth);
        p.capsule(ex, ey, wx, wy, 0.04 * s, lk.skin, lk.t_face - 1.5);
        p.ellipse(wx, wy, 0.045 * s, 0.045 * s, lk.skin, lk.t_face - 2.0);
    }
    // neck and head
    p.capsule(
        shx,
        shy - 0.02 * s,
        hx,
        hy - 0.08 * s,
        0.045 * s,
        lk.skin,
        lk.t_face - 0.5,
    );
    p.ellipse(hx, hy, 0.1 * s, 0.12 * s, lk.skin, lk.t_face);
    if pose.back {
        p.ellipse(hx, hy + 0.01 * s, 0.105 * s, 0.12 * s, lk.hair, lk.t_hair);
    } else {
        p.ellipse(hx, hy + 0.07 * s, 0.1 * s, 0.06 * s, lk.hair, lk.t_hair);
        if pose.front {
            let lx = pose.look * 0.035 * s;
            for ex in [-0.04 * s, 0.04 * s] {
                p.ellipse(
                    hx + ex + lx,
                    hy + 0.02 * s,
                    0.013 * s,
                    0.01 * s,
                    [0.06, 0.05, 0.05],
                    lk.t_face + 0.5,
                );
            }
            let mh = 0.006 * s + 0.03 * s * pose.mouth;
            p.ellipse(
                hx + lx,
                hy - 0.055 * s,
                0.03 * s,
                mh,
                [0.4, 0.12, 0.12],
                lk.t_face + 1.5 * pose.mouth,
            );
        } else {
            p.ellipse(
                hx + 0.09 * s,
                hy + 0.02 * s,
                0.012 * s,
                0.01 * s,
                [0.06, 0.05, 0.05],
                lk.t_face,
            );
        }
    }
}

/// Draws a car (side view) centred at the painter's origin, front towards +x.
/// `temps`: body, engine, exhaust (added).
pub(crate) fn draw_car(
    p: &mut Painter,
    body: [f32; 3],
    wheel_angle: f32,
    temps: [f32; 4],
    lights: bool,
) {
    let flags = p.flags;
    let (t_body, t_engine, t_exh) = (temps[0], temps[1], temps[2]);
    let glass = [0.12, 0.16, 0.2];
    p.rect(-2.15, 0.3, 2.15, 0.95, body, t_body);
    p.rect(-1.3, 0.95, 0.85, 1.42, body, t_body);
    p.tri([0.85, 0.95, 1.5, 0.95, 0.85, 1.42], body, t_body);
    p.tri([-1.3, 0.95, -1.3, 1.42, -1.85, 0.95], body, t_body);
    p.rect(-1.15, 1.0, 0.78, 1.36, glass, t_body - 6.0);
    p.tri([0.85, 1.0, 1.38, 1.0, 0.85, 1.36], glass, t_body - 6.0);
    p.rect(-0.22, 0.98, -0.12, 1.4, body, t_body);
    p.rect(-2.2, 0.28, 2.2, 0.4, [0.08, 0.08, 0.08], t_body);
    // engine bay (thermal only: the bonnet glows warm)
    p.flags = flags & THM;
    if p.flags != 0 {
        p.rect(1.2, 0.35, 2.15, 0.9, body, t_engine);
    }
    p.flags = flags;
    for wx in [-1.35, 1.35] {
        p.ellipse(
            wx,
            0.33,
            0.33,
            0.33,
            [0.04, 0.04, 0.04],
            t_engine * 0.5 + t_body * 0.5 - 5.0,
        );
        p.ellipse(wx, 0.33, 0.16, 0.16, [0.55, 0.55, 0.58], t_body);
        p.capsule(
            wx,
            0.33,
            wx + 0.14 * wheel_angle.cos(),
            0.33 + 0.14 * wheel_angle.sin(),
            0.025,
            [0.2, 0.2, 0.2],
            t_body,
        );
    }
    if lights {
        p.flags = flags | EMIT;
        p.ellipse(2.1, 0.75, 0.06, 0.05, [1.2, 1.15, 0.9], t_body + 10.0);
        p.ellipse(-2.12, 0.78, 0.05, 0.05, [1.0, 0.1, 0.08], t_body + 5.0);
        p.flags = flags;
    }
    if flags & THM != 0 && t_exh > 0.0 {
        p.glow(-2.2, 0.3, 0.4, 0.25, [0.0; 3], t_exh, THM);
    }
}

/// Fur colours.
pub(crate) const FUR: [[f32; 3]; 8] = [
    [0.1, 0.08, 0.07],
    [0.45, 0.3, 0.18],
    [0.75, 0.6, 0.4],
    [0.9, 0.88, 0.84],
    [0.5, 0.5, 0.5],
    [0.8, 0.55, 0.25],
    [0.3, 0.2, 0.12],
    [0.6, 0.45, 0.3],
];
/// Skin tones.
pub(crate) const SKIN: [[f32; 3]; 6] = [
    [0.95, 0.78, 0.66],
    [0.87, 0.64, 0.48],
    [0.7, 0.5, 0.36],
    [0.5, 0.34, 0.24],
    [0.36, 0.24, 0.16],
    [0.98, 0.86, 0.76],
];
/// Hair colours.
pub(crate) const HAIR: [[f32; 3]; 6] = [
    [0.05, 0.04, 0.04],
    [0.3, 0.18, 0.1],
    [0.8, 0.65, 0.35],
    [0.6, 0.6, 0.6],
    [0.55, 0.2, 0.08],
    [0.18, 0.12, 0.08],
];
/// Car paints.
pub(crate) const CAR_COLOURS: [[f32; 3]; 9] = [
    [0.7, 0.08, 0.08],
    [0.1, 0.2, 0.6],
    [0.92, 0.92, 0.92],
    [0.06, 0.06, 0.08],
    [0.6, 0.62, 0.65],
    [0.15, 0.4, 0.2],
    [0.9, 0.75, 0.1],
    [0.3, 0.3, 0.32],
    [0.45, 0.12, 0.35],
];
/// Stone and brick colours.
pub(crate) const STONE: [[f32; 3]; 4] = [
    [0.5, 0.48, 0.45],
    [0.55, 0.3, 0.22],
    [0.35, 0.33, 0.32],
    [0.65, 0.6, 0.52],
];
/// Door and window frame colours.
pub(crate) const FRAME: [[f32; 3]; 5] = [
    [0.92, 0.92, 0.9],
    [0.45, 0.3, 0.18],
    [0.3, 0.2, 0.12],
    [0.2, 0.3, 0.45],
    [0.55, 0.15, 0.12],
];
/// Machine casing colours.
pub(crate) const MACHINE: [[f32; 3]; 6] = [
    [0.6, 0.62, 0.64],
    [0.85, 0.83, 0.76],
    [0.2, 0.4, 0.25],
    [0.2, 0.3, 0.55],
    [0.92, 0.92, 0.94],
    [0.75, 0.5, 0.15],
];
