//! The IMU: the wearer's motion seen through a per-episode mounting rotation
//! (so the gravity direction in the device frame varies), with accelerometer
//! scale error, biases and white noise.

use super::motion::MotionState;
use super::rng::{Rng, cell, gauss, streams};
use crate::sample::ImuSample;

/// Standard gravity, m/s^2.
pub(crate) const G: f32 = 9.806_65;

type Mat = [[f32; 3]; 3];

fn mul(a: &Mat, b: &Mat) -> Mat {
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    r
}

fn rot_x(a: f32) -> Mat {
    let (s, c) = a.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}
fn rot_y(a: f32) -> Mat {
    let (s, c) = a.sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}
fn rot_z(a: f32) -> Mat {
    let (s, c) = a.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// `m^T v`.
#[inline]
fn mul_t(m: &Mat, v: [f32; 3]) -> [f32; 3] {
    [
        m[0][0] * v[0] + m[1][0] * v[1] + m[2][0] * v[2],
        m[0][1] * v[0] + m[1][1] * v[1] + m[2][1] * v[2],
        m[0][2] * v[0] + m[1][2] * v[1] + m[2][2] * v[2],
    ]
}

/// IMU sensor model.
#[derive(Debug, Clone)]
pub(crate) struct Imu {
    seed: u64,
    /// Device-to-body rotation.
    mount: Mat,
    acc_bias: [f32; 3],
    gyro_bias: [f32; 3],
    acc_scale: [f32; 3],
    acc_noise: f32,
    gyro_noise: f32,
    nkey: u64,
}

impl Imu {
    pub fn new(seed: u64) -> Self {
        Imu {
            seed,
            mount: rot_x(0.0),
            acc_bias: [0.0; 3],
            gyro_bias: [0.0; 3],
            acc_scale: [1.0; 3],
            acc_noise: 0.0,
            gyro_noise: 0.0,
            nkey: 0,
        }
    }

    /// New episode: mounting orientation, biases, noise.
    pub fn begin(&mut self, index: u64) {
        let mut rng = Rng::new(self.seed, streams::IMU, index);
        let q = std::f32::consts::FRAC_PI_2;
        let a = rng.below(4) as f32 * q + rng.range(-0.3, 0.3);
        let b = rng.below(4) as f32 * q + rng.range(-0.3, 0.3);
        let c = rng.range(0.0, std::f32::consts::TAU);
        self.mount = mul(&rot_z(c), &mul(&rot_y(b), &rot_x(a)));
        for i in 0..3 {
            self.acc_bias[i] = rng.range(-0.15, 0.15);
            self.gyro_bias[i] = rng.range(-0.01, 0.01);
            self.acc_scale[i] = rng.range(0.97, 1.03);
        }
        self.acc_noise = rng.range(0.02, 0.06);
        self.gyro_noise = rng.range(0.002, 0.006);
        self.nkey = rng.next_u64();
    }

    /// The reading for motion `st`; `n` is the absolute sample index.
    pub fn sample(&self, st: &MotionState, n: u64) -> ImuSample {
        let [roll, pitch, yaw] = st.ang;
        let body = mul(&rot_z(yaw), &mul(&rot_y(pitch), &rot_x(roll)));
        let f_w = [st.acc[0], st.acc[1], st.acc[2] + G];
        let f_b = mul_t(&body, f_w);
        let f_d = mul_t(&self.mount, f_b);
        let w_d = mul_t(&self.mount, st.rate);
        let mut noise = [0.0; 6];
        for (i, x) in noise.iter_mut().enumerate() {
            *x = gauss(cell(self.nkey, 6 * n + i as u64));
        }
        let mut s = ImuSample::default();
        for i in 0..3 {
            s.accel[i] = f_d[i] * self.acc_scale[i] + self.acc_bias[i] + noise[i] * self.acc_noise;
            s.gyro[i] = w_d[i] + self.gyro_bias[i] + noise[3 + i] * self.gyro_noise;
        }
        s
    }
}
