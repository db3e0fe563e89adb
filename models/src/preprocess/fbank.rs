//! Kaldi-compatible log-mel filter banks, as `torchaudio.compliance.kaldi.fbank`
//! computes them with ImageBind's arguments (128 mel bins, 25 ms frames, 10 ms
//! shift, Hanning window, `htk_compat`, no energy, dither 0).
//!
//! Input and output are f32; everything in between runs in f64 (framing, DC
//! removal, pre-emphasis, window, `realfft`'s FFT, power, mel sums, log). The
//! reference of record is the same torchaudio function evaluated on the f32
//! input widened to float64: in f32, cells whose mel energy is within a few
//! nats of the `FLT_EPSILON` floor (or 60 dB below their frame's peak) are
//! decided by FFT rounding noise, which differs between any two FFTs by up to
//! ~1e-2 in the log; in f64 that noise lies orders of magnitude below every
//! energy the floor lets through, so the output is the algorithm's, not the
//! rounding's. `models/tests/parity.rs` checks both references: within 1.8e-4
//! of the f64 one on every cell; ImageBind's own float32 evaluation differs
//! from the f64 one by up to 6.8e-3, in those cells only.
//! The mel weights are computed in f32 and widened, exactly as torchaudio does
//! for every input dtype; the log floor is `FLT_EPSILON` for f64 input too.
//!
//! Per frame: remove the frame's DC offset, pre-emphasis 0.97 (the first sample
//! against itself), symmetric Hann window, zero-pad to a power of two, power
//! spectrum, triangular mel filters between 20 Hz and Nyquist on the
//! `1127 ln(1 + f/700)` scale, `ln(max(energy, FLT_EPSILON))`.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Parameters of the filter bank (ImageBind's values by default).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FbankParams {
    /// Input sample rate, Hz.
    pub sample_rate: u32,
    /// Mel bins.
    pub num_mel_bins: usize,
    /// Frame length, ms.
    pub frame_length_ms: f64,
    /// Frame shift, ms.
    pub frame_shift_ms: f64,
    /// Lowest mel filter edge, Hz.
    pub low_freq: f64,
    /// Highest edge, Hz; <= 0 means Nyquist plus this value.
    pub high_freq: f64,
    /// Pre-emphasis coefficient.
    pub preemphasis: f64,
}

impl Default for FbankParams {
    fn default() -> Self {
        FbankParams {
            sample_rate: 16_000,
            num_mel_bins: 128,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            low_freq: 20.0,
            high_freq: 0.0,
            preemphasis: 0.97,
        }
    }
}

/// A reusable filter bank: window, FFT plan and mel matrix built once.
pub struct Fbank {
    p: FbankParams,
    window_size: usize,
    shift: usize,
    padded: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// `num_mel_bins` rows of `padded / 2` weights (the Nyquist bin weighs 0),
    /// computed in f32 like torchaudio's `get_mel_banks`, stored widened.
    mel: Vec<f64>,
    /// Per mel bin, the range of FFT bins with non-zero weight.
    spans: Vec<(usize, usize)>,
}

fn mel_scale(f: f32) -> f32 {
    1127.0f32 * (1.0f32 + f / 700.0f32).ln()
}

impl Fbank {
    /// Builds the bank. Errors name an impossible parameter.
    pub fn new(p: FbankParams) -> Result<Self, super::PreprocessError> {
        let bad = |m: String| super::PreprocessError::Params(m);
        let window_size = (p.sample_rate as f64 * p.frame_length_ms * 0.001) as usize;
        let shift = (p.sample_rate as f64 * p.frame_shift_ms * 0.001) as usize;
        if window_size < 2 || shift == 0 {
            return Err(bad(format!(
                "fbank frame {} ms / shift {} ms at {} Hz is too short",
                p.frame_length_ms, p.frame_shift_ms, p.sample_rate
            )));
        }
        if p.num_mel_bins < 3 {
            return Err(bad(format!(
                "fbank needs at least 3 mel bins, got {}",
                p.num_mel_bins
            )));
        }
        let padded = window_size.next_power_of_two();
        let nyquist = 0.5 * p.sample_rate as f64;
        let high = if p.high_freq <= 0.0 {
            nyquist + p.high_freq
        } else {
            p.high_freq
        };
        if !(0.0 <= p.low_freq && p.low_freq < high && high <= nyquist) {
            return Err(bad(format!(
                "fbank needs 0 <= low_freq < high_freq <= Nyquist, got {} .. {high}",
                p.low_freq
            )));
        }
        // torch.hann_window(N, periodic=False) in float64.
        let window: Vec<f64> = (0..window_size)
            .map(|n| {
                let x = 2.0 * std::f64::consts::PI * n as f64 / (window_size - 1) as f64;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        let num_fft_bins = padded / 2;
        let fft_bin_width = p.sample_rate as f64 / padded as f64;
        let mel_low = 1127.0 * (1.0 + p.low_freq / 700.0).ln();
        let mel_high = 1127.0 * (1.0 + high / 700.0).ln();
        let delta = (mel_high - mel_low) / (p.num_mel_bins + 1) as f64;
        let (mel_low, delta) = (mel_low as f32, delta as f32);
        let fft_mel: Vec<f32> = (0..num_fft_bins)
            .map(|k| mel_scale(fft_bin_width as f32 * k as f32))
            .collect();
        let mut mel = vec![0f64; p.num_mel_bins * num_fft_bins];
        let mut spans = Vec::with_capacity(p.num_mel_bins);
        for b in 0..p.num_mel_bins {
            let left = mel_low + b as f32 * delta;
            let center = mel_low + (b as f32 + 1.0) * delta;
            let right = mel_low + (b as f32 + 2.0) * delta;
            let (mut lo, mut hi) = (usize::MAX, 0);
            for (k, m) in fft_mel.iter().enumerate() {
                let up = (m - left) / (center - left);
                let down = (right - m) / (right - center);
                let w = up.min(down).max(0.0);
                mel[b * num_fft_bins + k] = w as f64;
                if w > 0.0 {
                    lo = lo.min(k);
                    hi = hi.max(k + 1);
                }
            }
            spans.push(if lo == usize::MAX { (0, 0) } else { (lo, hi) });
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(padded);
        Ok(Fbank {
            p,
            window_size,
            shift,
            padded,
            window,
            fft,
            mel,
            spans,
        })
    }

    /// Frames `compute` returns for `n` samples (snip_edges: whole frames only).
    pub fn num_frames(&self, n: usize) -> usize {
        if n < self.window_size {
            0
        } else {
            1 + (n - self.window_size) / self.shift
        }
    }

    /// Mel bins per frame.
    pub fn num_bins(&self) -> usize {
        self.p.num_mel_bins
    }

    /// Log-mel energies of `wave`, `[frames, num_mel_bins]` row-major. The
    /// caller subtracts the waveform mean first if it wants ImageBind's input.
    pub fn compute(&self, wave: &[f32]) -> Vec<f32> {
        let frames = self.num_frames(wave.len());
        let bins = self.p.num_mel_bins;
        let nfft = self.padded / 2;
        let n = self.window_size;
        let mut out = vec![0f32; frames * bins];
        let mut buf = vec![0f64; self.padded];
        let mut spec = vec![Complex::new(0f64, 0f64); nfft + 1];
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; nfft + 1];
        // torchaudio clamps at float32's epsilon whatever the input dtype.
        let eps = f32::EPSILON as f64;
        let pre = self.p.preemphasis;
        for f in 0..frames {
            let frame = &wave[f * self.shift..f * self.shift + n];
            let mean = frame.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            // DC removal, then pre-emphasis from the end backwards (in place).
            for (d, &s) in buf.iter_mut().zip(frame) {
                *d = s as f64 - mean;
            }
            for i in (1..n).rev() {
                buf[i] -= pre * buf[i - 1];
            }
            buf[0] -= pre * buf[0];
            for (d, w) in buf.iter_mut().zip(&self.window) {
                *d *= w;
            }
            buf[n..].fill(0.0);
            // realfft only fails on wrong buffer lengths, which are fixed above.
            if self
                .fft
                .process_with_scratch(&mut buf, &mut spec, &mut scratch)
                .is_err()
            {
                unreachable!("FFT buffers sized by the plan");
            }
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.norm_sqr();
            }
            let row = &mut out[f * bins..(f + 1) * bins];
            for (b, r) in row.iter_mut().enumerate() {
                let (lo, hi) = self.spans[b];
                let w = &self.mel[b * nfft..(b + 1) * nfft];
                let e: f64 = power[lo..hi]
                    .iter()
                    .zip(&w[lo..hi])
                    .map(|(p, w)| p * w)
                    .sum();
                *r = e.max(eps).ln() as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_floor() {
        let fb = Fbank::new(FbankParams::default()).unwrap();
        assert_eq!(fb.num_frames(399), 0);
        assert_eq!(fb.num_frames(400), 1);
        assert_eq!(fb.num_frames(32_000), 198);
        let out = fb.compute(&vec![0.0; 32_000]);
        assert_eq!(out.len(), 198 * 128);
        assert!(out.iter().all(|&v| v == f32::EPSILON.ln()));
    }

    #[test]
    fn a_tone_lights_its_mel_bin() {
        let fb = Fbank::new(FbankParams::default()).unwrap();
        let wave: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let out = fb.compute(&wave);
        let row = &out[50 * 128..51 * 128];
        let peak = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        // 1 kHz on the 20 Hz .. 8 kHz mel scale with 128 bins.
        let mel = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
        let want =
            ((mel(1000.0) - mel(20.0)) / ((mel(8000.0) - mel(20.0)) / 129.0)).round() as usize - 1;
        assert!(
            (peak as i64 - want as i64).abs() <= 1,
            "peak {peak}, want {want}"
        );
    }

    #[test]
    fn impossible_params_are_errors() {
        let e = Fbank::new(FbankParams {
            num_mel_bins: 1,
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("mel bins"));
    }
}
