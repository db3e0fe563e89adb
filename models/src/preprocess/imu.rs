//! IMU preprocessing: 6 channels (accelerometer xyz, gyroscope xyz) resampled
//! to the contract rate by linear interpolation on the sample timestamps over
//! the window span, to exactly `length` samples (ImageBind: 2000), then each
//! channel `(x - mean) / std`. Output `[6, length]`, the layout ImageBind's IMU
//! stem cuts into patches of 8.
//!
//! Before the first reading (or after the last) the nearest reading is held; a
//! window with no reading at all is an error rather than a tensor of zeros.
//!
//! `detrend` (off by default, ImageBind has no such step) then subtracts each
//! channel's mean over the window. Gravity on a rig mounted at an unknown
//! angle and the sensors' biases are constant over a window and say nothing
//! about what happens; the wearer's sway (about 0.01 g and 0.01 rad/s, as
//! large as a gyro's bias) is what is left.

use super::{PreprocessError, Tensor};

/// Parameters of the IMU transform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImuParams {
    /// Samples per second after resampling.
    pub sample_rate: f64,
    /// Samples per window.
    pub length: usize,
    /// Per-channel mean (accel x y z, gyro x y z).
    pub mean: [f32; 6],
    /// Per-channel std.
    pub std: [f32; 6],
    /// Subtract each channel's mean over the window (after the scaling).
    pub detrend: bool,
}

impl Default for ImuParams {
    fn default() -> Self {
        ImuParams {
            sample_rate: 400.0,
            length: 2000,
            mean: [0.0; 6],
            std: [9.80665, 9.80665, 9.80665, 1.0, 1.0, 1.0],
            detrend: false,
        }
    }
}

/// Readings `(mono ns, [ax, ay, az, gx, gy, gz])` of a window starting at
/// `t_start` -> `[6, length]`.
pub fn preprocess_imu(
    readings: &[(u64, [f32; 6])],
    t_start: u64,
    p: &ImuParams,
) -> Result<Tensor, PreprocessError> {
    if p.length == 0 || p.sample_rate.is_nan() || p.sample_rate <= 0.0 || p.std.contains(&0.0) {
        return Err(PreprocessError::Params(format!(
            "imu length {} / rate {} / std {:?} must be positive",
            p.length, p.sample_rate, p.std
        )));
    }
    if readings.is_empty() {
        return Err(PreprocessError::Shape(
            "IMU window holds no readings".into(),
        ));
    }
    if readings.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(PreprocessError::Shape(
            "IMU readings are not in time order".into(),
        ));
    }
    let mut out = vec![0f32; 6 * p.length];
    let mut j = 0usize;
    for i in 0..p.length {
        let t = t_start as f64 + i as f64 * 1e9 / p.sample_rate;
        while j + 1 < readings.len() && (readings[j + 1].0 as f64) <= t {
            j += 1;
        }
        let (t0, a) = readings[j];
        let v: [f32; 6] = if (t0 as f64) >= t || j + 1 == readings.len() {
            a
        } else {
            let (t1, b) = readings[j + 1];
            let f = ((t - t0 as f64) / (t1 - t0) as f64) as f32;
            std::array::from_fn(|c| a[c] + (b[c] - a[c]) * f)
        };
        for c in 0..6 {
            out[c * p.length + i] = (v[c] - p.mean[c]) / p.std[c];
        }
    }
    if p.detrend {
        for ch in out.chunks_exact_mut(p.length) {
            // f64 sum: 2000 values of ~1 g would lose bits in f32.
            let m = (ch.iter().map(|&x| x as f64).sum::<f64>() / p.length as f64) as f32;
            ch.iter_mut().for_each(|x| *x -= m);
        }
    }
    Ok(Tensor::new(vec![6, p.length], out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_signal_resamples_exactly() {
        // 100 Hz readings of a ramp; resampled at 400 Hz the ramp is interpolated.
        let readings: Vec<(u64, [f32; 6])> = (0..=100)
            .map(|k| {
                (
                    k * 10_000_000,
                    [k as f32, 0.0, 9.80665, 0.0, 0.0, -(k as f32)],
                )
            })
            .collect();
        let p = ImuParams {
            length: 400,
            ..Default::default()
        };
        let t = preprocess_imu(&readings, 0, &p).unwrap();
        assert_eq!(t.shape, vec![6, 400]);
        for i in 0..400 {
            let want = i as f32 / 4.0;
            assert!((t.data[i] * 9.80665 - want).abs() < 1e-3, "ax[{i}]");
            assert!((t.data[5 * 400 + i] + want).abs() < 1e-3, "gz[{i}]");
            assert!((t.data[2 * 400 + i] - 1.0).abs() < 1e-6);
        }
        assert!(preprocess_imu(&[], 0, &p).is_err());

        // Detrended: each channel minus its window mean. The ramp 0..99.75
        // has mean 49.875; gravity (a constant) becomes 0.
        let d = preprocess_imu(
            &readings,
            0,
            &ImuParams {
                detrend: true,
                ..p.clone()
            },
        )
        .unwrap();
        for i in 0..400 {
            let want = i as f32 / 4.0 - 49.875;
            assert!((d.data[i] * 9.80665 - want).abs() < 1e-3, "ax[{i}]");
            assert!((d.data[5 * 400 + i] + want).abs() < 1e-3, "gz[{i}]");
            assert!(d.data[2 * 400 + i].abs() < 1e-6, "az[{i}]");
        }
    }
}
