//! Kaldi-compatible log-mel filter banks, as `torchaudio.compliance.kaldi.fbank`
//! computes them with ImageBind's arguments (128 mel bins, 25 ms frames, 10 ms
//! shift, Hanning window, `htk_compat`, no energy, dither 0).
//!
//! Input and output are f32. Framing, DC removal, pre-emphasis, window and
//! `realfft`'s FFT run in f64; the power spectrum, mel sums and log in f32.
//! The reference of record is the same torchaudio function evaluated on the
//! f32 input widened to float64: in an f32 FFT, cells whose mel energy is
//! within a few nats of the `FLT_EPSILON` floor (or 60 dB below their frame's
//! peak) are decided by the FFT's rounding noise (cancellation between large
//! terms), which differs between any two FFTs by up to ~1e-2 in the log; in
//! f64 that noise lies orders of magnitude below every energy the floor lets
//! through, so the output is the algorithm's, not the rounding's. After the
//! FFT nothing cancels any more (powers, weights and mel sums are all
//! non-negative), so f32 there costs at most a few f32 ulps relative, ~1e-6 in
//! the log. `models/tests/parity.rs` checks both references: within 1e-3 of
//! the f64 one on every cell (see the test for the measured figure);
//! ImageBind's own float32 evaluation differs from the f64 one by up to
//! 6.8e-3, in those cells only.
//! The mel weights are computed in f32 exactly as torchaudio does for every
//! input dtype; the log floor is `FLT_EPSILON` for f64 input too.
//!
//! Per frame: remove the frame's DC offset, pre-emphasis 0.97 (the first sample
//! against itself), symmetric Hann window, zero-pad to a power of two, power
//! spectrum, triangular mel filters between 20 Hz and Nyquist on the
//! `1127 ln(1 + f/700)` scale, `ln(max(energy, FLT_EPSILON))`.
//!
//! Speed (3 clips of 2 s = 594 frames: ~0.45-0.5 ms, 5x torchaudio's
//! `kaldi.fbank`; `scripts/bench-vs-ort.sh`): no allocation per frame; DC
//! removal, pre-emphasis and window in one pass; frames processed in blocks of
//! `BLOCK` (8) so that the sparse mel sums vectorise across frames; a
//! branch-free `fast_ln` instead of 76k scalar `ln` calls; on x86-64 the
//! loops are compiled for AVX2 when the CPU has it. The f64 FFT itself
//! (`realfft`, including its real-to-complex post-processing) is about 60% of
//! the time; an f32 FFT would be ~25% faster but fails the 1e-3 bar (5e-3 on
//! `tones_chirp`, for the reason above).

use std::sync::Arc;

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

/// Frames processed together: their power spectra are stored interleaved
/// (bin-major, `BLOCK` frames per bin) so that every mel filter's sums run
/// over `BLOCK` frames at once, one vector lane per frame, with no horizontal
/// additions; the logs then run over `BLOCK` x mel bins contiguous values.
const BLOCK: usize = 8;

/// One mel filter: power bins `first .. first + len` weighted by
/// `weights[offset .. offset + len]` (its non-zero weights only).
#[derive(Debug, Clone, Copy)]
struct MelFilter {
    first: usize,
    offset: usize,
    len: usize,
}

/// A reusable filter bank: window, FFT plan and sparse mel matrix built once.
pub struct Fbank {
    p: FbankParams,
    window_size: usize,
    shift: usize,
    padded: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// Per mel bin, its non-zero weights (see [`MelFilter`]).
    filters: Vec<MelFilter>,
    /// All filters' weights, computed in f32 like torchaudio's `get_mel_banks`
    /// (the Nyquist bin weighs 0 there, so it is never read).
    weights: Vec<f32>,
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
        let mut filters = Vec::with_capacity(p.num_mel_bins);
        let mut weights = Vec::new();
        let mut row = vec![0f32; num_fft_bins];
        for b in 0..p.num_mel_bins {
            let left = mel_low + b as f32 * delta;
            let center = mel_low + (b as f32 + 1.0) * delta;
            let right = mel_low + (b as f32 + 2.0) * delta;
            for (w, m) in row.iter_mut().zip(&fft_mel) {
                let up = (m - left) / (center - left);
                let down = (right - m) / (right - center);
                *w = up.min(down).max(0.0);
            }
            let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&w| w > 0.0).map_or(0, |k| k + 1);
            filters.push(MelFilter {
                first,
                offset: weights.len(),
                len: end.saturating_sub(first),
            });
            weights.extend_from_slice(&row[first..end.max(first)]);
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(padded);
        Ok(Fbank {
            p,
            window_size,
            shift,
            padded,
            window,
            fft,
            filters,
            weights,
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
        let mut out = vec![0f32; self.num_frames(wave.len()) * self.p.num_mel_bins];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.frames_avx2(wave, &mut out) };
            return out;
        }
        self.frames(wave, &mut out);
        out
    }

    /// [`Fbank::frames`] compiled for AVX2 (twice the vector width of x86-64's
    /// baseline SSE2). The same operations in the same order: the output is
    /// bit-identical to the baseline build's.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn frames_avx2(&self, wave: &[f32], out: &mut [f32]) {
        self.frames(wave, out)
    }

    /// Fills `out` (`[frames, num_mel_bins]`) from `wave`, [`BLOCK`] frames
    /// at a time.
    #[inline(always)]
    fn frames(&self, wave: &[f32], out: &mut [f32]) {
        let bins = self.p.num_mel_bins;
        if out.is_empty() {
            return;
        }
        // Buffers for all frames: FFT input (its zero padding is never
        // written), spectrum, FFT scratch; a block's power spectra
        // (`power[k * BLOCK + j]`: bin k of the block's frame j) and its
        // log-mel energies (`mel[b * BLOCK + j]`).
        let mut buf = vec![0f64; self.padded];
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spec.len() * BLOCK];
        let mut mel = vec![0f32; bins * BLOCK];
        // The samples before frame 0's (the first one: itself); later frames
        // read theirs from `wave`.
        let n = self.window_size;
        let head: Vec<f32> = std::iter::once(wave[0])
            .chain(wave[..n - 1].iter().copied())
            .collect();
        for (blk, rows) in out.chunks_mut(BLOCK * bins).enumerate() {
            for j in 0..rows.len() / bins {
                let start = (blk * BLOCK + j) * self.shift;
                let prev = if start == 0 {
                    &head
                } else {
                    &wave[start - 1..start + n - 1]
                };
                self.window_frame(&wave[start..start + n], prev, &mut buf);
                // realfft only fails on wrong buffer lengths, which are fixed above.
                if self
                    .fft
                    .process_with_scratch(&mut buf, &mut spec, &mut scratch)
                    .is_err()
                {
                    unreachable!("FFT buffers sized by the plan");
                }
                for (k, c) in spec.iter().enumerate() {
                    power[k * BLOCK + j] = (c.re * c.re + c.im * c.im) as f32;
                }
            }
            // Mel sums for all BLOCK lanes (a short last block computes unused
            // lanes from stale spectra, and drops them below).
            for (acc, m) in mel.chunks_exact_mut(BLOCK).zip(&self.filters) {
                let mut sum = [0f32; BLOCK];
                let w = &self.weights[m.offset..m.offset + m.len];
                let p = &power[m.first * BLOCK..(m.first + m.len) * BLOCK];
                for (&w, p) in w.iter().zip(p.chunks_exact(BLOCK)) {
                    for (s, &p) in sum.iter_mut().zip(p) {
                        *s += w * p;
                    }
                }
                // torchaudio clamps at float32's epsilon whatever the input dtype.
                for (a, s) in acc.iter_mut().zip(sum) {
                    *a = fast_ln(s.max(f32::EPSILON));
                }
            }
            for (j, row) in rows.chunks_exact_mut(bins).enumerate() {
                for (b, r) in row.iter_mut().enumerate() {
                    *r = mel[b * BLOCK + j];
                }
            }
        }
    }

    /// DC removal, pre-emphasis and the window in one pass over `frame` (with
    /// `prev[i]` the sample before `frame[i]`), into `buf`'s first
    /// `window_size` values, all in f64: `((x[i] - mean) - pre (x[i-1] - mean)) w[i]`,
    /// the first sample pre-emphasised against itself. (Written from index 0 so
    /// that the vector loads and stores stay aligned with the buffers.)
    #[inline(always)]
    fn window_frame(&self, frame: &[f32], prev: &[f32], buf: &mut [f64]) {
        let n = frame.len();
        let pre = self.p.preemphasis;
        let mean = sum_f64(frame) / n as f64;
        let dc = mean * (1.0 - pre);
        for (((d, &x), &prev), &w) in buf[..n].iter_mut().zip(frame).zip(prev).zip(&self.window) {
            *d = (x as f64 - pre * prev as f64 - dc) * w;
        }
        buf[0] = (frame[0] as f64 - mean) * (1.0 - pre) * self.window[0];
    }
}

/// Sum of `x` in f64, in 16 partial sums so that the loop vectorises (and
/// four vector additions are in flight at once).
#[inline(always)]
fn sum_f64(x: &[f32]) -> f64 {
    let mut partial = [0f64; 16];
    let mut chunks = x.chunks_exact(partial.len());
    for c in &mut chunks {
        for (s, &v) in partial.iter_mut().zip(c) {
            *s += v as f64;
        }
    }
    let rest: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    partial.iter().sum::<f64>() + rest
}

/// Natural log of a positive normal f32, branch-free so loops over slices
/// vectorise.
///
/// `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))` (exponent and mantissa read
/// from the bits), `ln x = e ln 2 + 2 atanh(s)` with `s = (m - 1) / (m + 1)`,
/// `|s| <= 0.1716`, and `atanh` as its series to `s^9`: the truncated tail is
/// below `2 |s|^11 / 11 / (1 - s^2) < 7e-10`. `ln 2` is split so that `e ln 2`
/// is exact in its high part (`m - 1` is exact too). What remains is f32
/// rounding: the error against the exact log is at most `2e-7 max(1, |ln x|)`
/// (measured 1.2e-7, about one f32 ulp, by `fast_ln_error_bound` over every
/// 61st f32 of the positive normal range against f64 `ln`; `f32::ln` itself
/// is within half an ulp). For the fbank's outputs (`|ln x|` < 40) that is
/// below 8e-6, against a parity bar of 1e-3. `+inf`
/// maps to `+inf`; the caller never passes 0, subnormals, negatives or NaN
/// (energies are clamped at `FLT_EPSILON` first).
#[inline(always)]
fn fast_ln(x: f32) -> f32 {
    const SQRT_HALF_BITS: i32 = 0x3f35_04f3; // 0.70710677
    const LN2_HI: f32 = 0.693_359_4; // 355 / 512: e * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
    let bits = x.to_bits() as i32;
    let e = (bits - SQRT_HALF_BITS) >> 23;
    let m = f32::from_bits((bits - (e << 23)) as u32);
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let series = 1.0 + z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
    let e = e as f32;
    let ln = e * LN2_HI + (2.0 * s * series + e * LN2_LO);
    if x == f32::INFINITY { x } else { ln }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_ln_error_bound() {
        // Every 61st bit pattern of the positive normal f32 range, plus both ends
        // and the neighbours of 1.
        let (lo, hi) = (f32::MIN_POSITIVE.to_bits(), f32::MAX.to_bits());
        let one = 1f32.to_bits();
        let (mut worst, mut worst_std) = (0f64, 0f64);
        for bits in (lo..=hi).step_by(61).chain([hi, one - 1, one, one + 1]) {
            let x = f32::from_bits(bits);
            let want = (x as f64).ln();
            let scale = want.abs().max(1.0);
            let got = fast_ln(x);
            worst = worst.max((got as f64 - want).abs() / scale);
            worst_std = worst_std.max((got as f64 - x.ln() as f64).abs() / scale);
        }
        println!(
            "fast_ln: max |err| / max(1, |ln x|) {worst:.3e} vs f64 ln, {worst_std:.3e} vs f32::ln"
        );
        assert!(
            worst <= 2e-7,
            "fast_ln error {worst:e} exceeds its documented bound"
        );
        assert!(
            worst_std <= 2.5e-7,
            "fast_ln differs from f32::ln by {worst_std:e}"
        );
        assert_eq!(fast_ln(1.0), 0.0);
        assert_eq!(fast_ln(f32::INFINITY), f32::INFINITY);
        assert!((fast_ln(f32::EPSILON) - f32::EPSILON.ln()).abs() <= 4e-6);
    }

    #[test]
    fn avx2_and_baseline_builds_agree_bit_for_bit() {
        let fb = Fbank::new(FbankParams::default()).unwrap();
        // 16_000 + 1_234 samples: 106 frames, a short last block of 2.
        let wave: Vec<f32> = (0..17_234u32)
            .map(|i| {
                ((i as f32 * 0.013).sin() + (i.wrapping_mul(2_654_435_761) >> 20) as f32 * 1e-4)
                    * 0.2
            })
            .collect();
        let mut base = vec![0f32; fb.num_frames(wave.len()) * fb.num_bins()];
        fb.frames(&wave, &mut base);
        assert_eq!(base.len(), 106 * 128);
        assert_eq!(fb.compute(&wave), base);
    }

    #[test]
    fn shapes_and_floor() {
        let fb = Fbank::new(FbankParams::default()).unwrap();
        assert_eq!(fb.num_frames(399), 0);
        assert_eq!(fb.num_frames(400), 1);
        assert_eq!(fb.num_frames(32_000), 198);
        assert!(fb.compute(&[0.5; 399]).is_empty());
        assert!(fb.compute(&[]).is_empty());
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
