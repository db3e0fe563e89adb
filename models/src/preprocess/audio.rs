//! Audio preprocessing, ImageBind's `load_and_transform_audio_data` reproduced:
//! resample to 16 kHz, cut `clips` clips of `clip_duration_s` with
//! pytorchvideo's constant-clips sampler, and per clip (in order): subtract the
//! clip's mean, Kaldi fbank, transpose to `[mel, frames]`, zero-pad or crop to
//! `target_length` frames, normalise with (-4.268, 9.138). Output
//! `[clips, 1, mel, target_length]`; the encoder's embeddings of the clips are
//! averaged.
//!
//! Two reference quirks are kept on purpose, because the released encoders saw
//! them:
//! * the mean is subtracted **in place** on the shared waveform, so where clips
//!   overlap a later clip sees the earlier clips' means already removed;
//! * clip starts are `i * M / clips` with `M = max(duration - clip, 0)` as an
//!   exact rational (not `/(clips - 1)`), so the audio's tail is never used, and
//!   sample indices are computed in exact integer arithmetic (f64 is one sample
//!   off for many lengths).
//!
//! Multichannel input: Kaldi's fbank reads channel 0 only, so the reference
//! effectively uses the first channel; so do we.

use std::collections::BTreeMap;

use super::fbank::{Fbank, FbankParams};
use super::resample::{ResampleParams, Resampler};
use super::{PreprocessError, Tensor};

/// Parameters of the audio transform (ImageBind's by default).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioParams {
    /// Rate the model expects, Hz.
    pub sample_rate: u32,
    /// Clip length, seconds (`clip_duration_s * sample_rate` must be whole samples).
    pub clip_duration_s: f64,
    /// Clips per input.
    pub clips: usize,
    /// Frames per clip after padding/cropping.
    pub target_length: usize,
    /// Normalisation mean.
    pub mean: f32,
    /// Normalisation std.
    pub std: f32,
    /// Filter bank.
    pub fbank: FbankParams,
    /// Resampler.
    pub resample: ResampleParams,
}

impl Default for AudioParams {
    fn default() -> Self {
        AudioParams {
            sample_rate: 16_000,
            clip_duration_s: 2.0,
            clips: 3,
            target_length: 204,
            mean: -4.268,
            std: 9.138,
            fbank: FbankParams::default(),
            resample: ResampleParams::default(),
        }
    }
}

/// Sample ranges `[a, b)` of the clips of a `len`-sample waveform at `rate`,
/// as pytorchvideo's `ConstantClipsPerVideoSampler` places them.
pub fn clip_ranges(
    len: usize,
    rate: u32,
    clip_samples: usize,
    clips: usize,
) -> Vec<(usize, usize)> {
    let duration = len as f64 / rate as f64;
    let clip_s = clip_samples as f64 / rate as f64;
    let m = (duration - clip_s).max(0.0);
    // m as an exact rational: mant * 2^exp.
    let (mant, exp) = if m == 0.0 {
        (0u64, 0i32)
    } else {
        let bits = m.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i32;
        let f = bits & ((1u64 << 52) - 1);
        if e == 0 {
            (f, -1074)
        } else {
            (f | (1u64 << 52), e - 1075)
        }
    };
    (0..clips)
        .map(|i| {
            // a = floor(i * m * rate / clips), exactly.
            let num = i as u128 * rate as u128 * mant as u128;
            let a = if exp >= 0 {
                (num << exp.min(40)) / clips as u128
            } else if -exp >= 100 {
                0
            } else {
                num / ((clips as u128) << (-exp))
            };
            let a = (a as usize).min(len);
            (a, (a + clip_samples).min(len))
        })
        .collect()
}

/// A reusable audio transform (filter bank and resamplers cached).
pub struct AudioPreprocessor {
    p: AudioParams,
    fbank: Fbank,
    clip_samples: usize,
    resamplers: BTreeMap<u32, Resampler>,
}

impl AudioPreprocessor {
    /// Builds the transform; errors name the bad parameter.
    pub fn new(p: AudioParams) -> Result<Self, PreprocessError> {
        let clip = p.clip_duration_s * p.sample_rate as f64;
        if !(clip >= 1.0 && (clip - clip.round()).abs() < 1e-9) {
            return Err(PreprocessError::Params(format!(
                "audio clip_duration_s {} at {} Hz is not a whole number of samples",
                p.clip_duration_s, p.sample_rate
            )));
        }
        if p.clips == 0 || p.target_length == 0 || p.std == 0.0 {
            return Err(PreprocessError::Params(
                "audio clips, target_length and std must be non-zero".into(),
            ));
        }
        let fbank = Fbank::new(FbankParams {
            sample_rate: p.sample_rate,
            ..p.fbank.clone()
        })?;
        Ok(AudioPreprocessor {
            clip_samples: clip.round() as usize,
            fbank,
            resamplers: BTreeMap::new(),
            p,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &AudioParams {
        &self.p
    }

    /// Resamples mono `wave` from `rate` to the model rate.
    pub fn resample(&mut self, wave: &[f32], rate: u32) -> Result<Vec<f32>, PreprocessError> {
        if rate == self.p.sample_rate {
            return Ok(wave.to_vec());
        }
        if !self.resamplers.contains_key(&rate) {
            let r = Resampler::new(rate, self.p.sample_rate, self.p.resample)?;
            self.resamplers.insert(rate, r);
        }
        Ok(self.resamplers[&rate].process(wave))
    }

    /// Interleaved PCM at `rate` with `channels` -> `[clips, 1, mel, target_length]`.
    pub fn process(
        &mut self,
        interleaved: &[f32],
        channels: u16,
        rate: u32,
    ) -> Result<Tensor, PreprocessError> {
        if channels == 0 || !interleaved.len().is_multiple_of(channels as usize) {
            return Err(PreprocessError::Shape(format!(
                "{} samples do not divide into {channels} channels",
                interleaved.len()
            )));
        }
        if interleaved.is_empty() {
            return Err(PreprocessError::Shape("empty audio".into()));
        }
        let first: Vec<f32> = interleaved
            .iter()
            .step_by(channels as usize)
            .copied()
            .collect();
        let mut wave = self.resample(&first, rate)?;
        self.clips_to_tensor(&mut wave)
    }

    /// The clip, fbank and normalisation steps on a waveform already at the
    /// model rate. The waveform is modified (the in-place mean subtraction).
    pub fn clips_to_tensor(&self, wave: &mut [f32]) -> Result<Tensor, PreprocessError> {
        let bins = self.fbank.num_bins();
        let tl = self.p.target_length;
        let ranges = clip_ranges(
            wave.len(),
            self.p.sample_rate,
            self.clip_samples,
            self.p.clips,
        );
        let mut out = Vec::with_capacity(ranges.len() * bins * tl);
        for (a, b) in ranges {
            let clip = &mut wave[a..b];
            if !clip.is_empty() {
                let mean = (clip.iter().map(|&v| v as f64).sum::<f64>() / clip.len() as f64) as f32;
                for v in clip.iter_mut() {
                    *v -= mean;
                }
            }
            let fb = self.fbank.compute(clip);
            let frames = fb.len() / bins;
            let pad = (0.0 - self.p.mean) / self.p.std;
            for m in 0..bins {
                for f in 0..tl {
                    out.push(if f < frames {
                        (fb[f * bins + m] - self.p.mean) / self.p.std
                    } else {
                        pad
                    });
                }
            }
        }
        Ok(Tensor::new(vec![self.p.clips, 1, bins, tl], out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_placement_follows_the_reference() {
        // 4 s: starts 0, 2/3, 4/3 s.
        assert_eq!(
            clip_ranges(64_000, 16_000, 32_000, 3),
            vec![(0, 32_000), (10_666, 42_666), (21_333, 53_333)]
        );
        // Shorter than a clip: three identical clips of what there is.
        assert_eq!(clip_ranges(24_000, 16_000, 32_000, 3), vec![(0, 24_000); 3]);
        // Exactly one clip long.
        assert_eq!(clip_ranges(32_000, 16_000, 32_000, 3), vec![(0, 32_000); 3]);
    }

    #[test]
    fn output_shape_and_padding() {
        let mut p = AudioPreprocessor::new(AudioParams::default()).unwrap();
        let t = p.process(&vec![0.0; 2 * 44_100], 2, 44_100).unwrap();
        assert_eq!(t.shape, vec![3, 1, 128, 204]);
        // Silence: every value is the log floor, normalised; the 6 padded frames are 0, normalised.
        let floor = (f32::EPSILON.ln() + 4.268) / 9.138;
        let pad = 4.268f32 / 9.138;
        assert!((t.data[0] - floor).abs() < 1e-6);
        assert!((t.data[203] - pad).abs() < 1e-6);
        assert!(p.process(&[0.0; 3], 2, 16_000).is_err());
        assert!(
            AudioPreprocessor::new(AudioParams {
                clip_duration_s: 0.00001,
                ..Default::default()
            })
            .is_err()
        );
    }
}
