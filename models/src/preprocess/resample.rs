//! Band-limited resampling, reproducing `torchaudio.functional.resample` with
//! its defaults (windowed sinc, Hann window, 6 zero crossings, rolloff 0.99),
//! which is what ImageBind's audio loader applies.
//!
//! The rates are reduced by their gcd; each of the `new` output phases has its
//! own kernel of `2 * width + orig` taps; the input is zero-padded by `width`
//! on the left and `width + orig` on the right and convolved with stride
//! `orig`; the output is cut to `ceil(new * len / orig)` (the quotient rounded
//! to f32 first, as the reference does). Kernels are built in f32 like the
//! reference's.

/// Resampling parameters (torchaudio's defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResampleParams {
    /// Zero crossings of the sinc on each side.
    pub lowpass_filter_width: u32,
    /// Cut-off as a fraction of the lower Nyquist rate.
    pub rolloff: f64,
}

impl Default for ResampleParams {
    fn default() -> Self {
        ResampleParams {
            lowpass_filter_width: 6,
            rolloff: 0.99,
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A resampler between two fixed rates.
#[derive(Debug, Clone)]
pub struct Resampler {
    orig: usize,
    new: usize,
    width: usize,
    /// `new` kernels of `2 * width + orig` taps.
    kernels: Vec<f32>,
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`.
    pub fn new(
        from_hz: u32,
        to_hz: u32,
        p: ResampleParams,
    ) -> Result<Self, super::PreprocessError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(super::PreprocessError::Params(format!(
                "cannot resample {from_hz} Hz -> {to_hz} Hz"
            )));
        }
        let g = gcd(from_hz as u64, to_hz as u64);
        let (orig, new) = ((from_hz as u64 / g) as usize, (to_hz as u64 / g) as usize);
        if orig == new {
            return Ok(Resampler {
                orig,
                new,
                width: 0,
                kernels: Vec::new(),
            });
        }
        let lw = p.lowpass_filter_width as f64;
        let base_freq = orig.min(new) as f64 * p.rolloff;
        let width = (lw * orig as f64 / base_freq).ceil() as usize;
        let taps = 2 * width + orig;
        let mut kernels = vec![0f32; new * taps];
        let (base32, lw32) = (base_freq as f32, lw as f32);
        let pi = std::f64::consts::PI as f32;
        let scale = (base_freq / orig as f64) as f32;
        for j in 0..new {
            for i in 0..taps {
                let idx = (i as f32 - width as f32) / orig as f32;
                let mut t = -(j as f32) / new as f32 + idx;
                t *= base32;
                t = t.clamp(-lw32, lw32);
                let c = (t * pi / lw32 / 2.0).cos();
                let window = c * c;
                t *= pi;
                let k = if t == 0.0 { 1.0 } else { t.sin() / t };
                kernels[j * taps + i] = k * (window * scale);
            }
        }
        Ok(Resampler {
            orig,
            new,
            width,
            kernels,
        })
    }

    /// Output length for `n` input samples.
    pub fn output_len(&self, n: usize) -> usize {
        if self.orig == self.new {
            return n;
        }
        ((self.new as f64 * n as f64 / self.orig as f64) as f32).ceil() as usize
    }

    /// Resamples `x`.
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        if self.orig == self.new {
            return x.to_vec();
        }
        let n = x.len();
        let taps = 2 * self.width + self.orig;
        let target = self.output_len(n);
        let mut out = Vec::with_capacity(target);
        // padded[p] = x[p - width] inside, 0 outside.
        let at = |p: usize| -> f32 {
            if p >= self.width && p - self.width < n {
                x[p - self.width]
            } else {
                0.0
            }
        };
        let steps = n / self.orig + 1;
        'outer: for k in 0..steps {
            let start = k * self.orig;
            for j in 0..self.new {
                if out.len() == target {
                    break 'outer;
                }
                let kern = &self.kernels[j * taps..(j + 1) * taps];
                let mut acc = 0f32;
                if start >= self.width && start + taps <= n + self.width {
                    let s = &x[start - self.width..start - self.width + taps];
                    for (a, b) in s.iter().zip(kern) {
                        acc += a * b;
                    }
                } else {
                    for (i, b) in kern.iter().enumerate() {
                        acc += at(start + i) * b;
                    }
                }
                out.push(acc);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_identity() {
        let r = Resampler::new(44_100, 16_000, ResampleParams::default()).unwrap();
        assert_eq!(r.output_len(176_400), 64_000);
        assert_eq!(r.process(&vec![0.1; 176_400]).len(), 64_000);
        let same = Resampler::new(16_000, 16_000, ResampleParams::default()).unwrap();
        assert_eq!(same.process(&[1.0, 2.0]), vec![1.0, 2.0]);
        assert!(Resampler::new(0, 16_000, ResampleParams::default()).is_err());
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_level() {
        let r = Resampler::new(48_000, 16_000, ResampleParams::default()).unwrap();
        let x: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin() as f32)
            .collect();
        let y = r.process(&x);
        for (i, v) in y.iter().enumerate().skip(100).take(15_800) {
            let want = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16_000.0).sin() as f32;
            assert!((v - want).abs() < 2e-3, "sample {i}: {v} vs {want}");
        }
    }
}
