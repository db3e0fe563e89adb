//! Augmentations of a learner's preprocessed input, as ImageBind trains:
//! random resized crop and flip for images (vision, depth, thermal), colour
//! jitter for camera frames, gain, time shift and time/frequency masking for
//! spectrograms, noise and time shift for IMU. They act on the tensor the
//! encoder receives (after the contract's preprocessing), one item at a time,
//! in place; the anchor side is never augmented (its embeddings are cached).
//!
//! Parameters (fixed, ImageBind-like at this scale): crop area 0.5..1 of the
//! frame with aspect 3/4..4/3, bilinear back to full size; flip p = 0.5;
//! brightness/contrast x0.7..1.3 and saturation x0.6..1.4; gain ±6 dB;
//! shift up to 10 % of the length (circular); one frequency mask of up to
//! 1/8 of the mel bins and one time mask of up to 1/10 of the frames
//! (SpecAugment, set to 0 = the normalised mean); noise sigma 0.05 in
//! normalised units.

use edgebind_models::contract::{ContractModality, Preprocess};

use crate::params::Rng;
use crate::plan::Augment;

/// Applies `augs` to one item of shape `shape` (channels first).
pub fn apply(
    augs: &[Augment],
    modality: ContractModality,
    pre: &Preprocess,
    shape: &[usize],
    x: &mut [f32],
    rng: &mut Rng,
) {
    debug_assert_eq!(shape.iter().product::<usize>(), x.len());
    for &a in augs {
        match a {
            Augment::RandomResizedCrop => random_resized_crop(shape, x, rng),
            Augment::HorizontalFlip => {
                if rng.uniform() < 0.5 {
                    flip(shape, x);
                }
            }
            Augment::ColorJitter => {
                if let Preprocess::Vision(p) = pre {
                    color_jitter(shape, x, &p.mean, &p.std, rng);
                }
            }
            Augment::Gain => {
                if let Preprocess::Audio(p) = pre {
                    // log-mel energy is ln(power): +g dB adds g * ln(10) / 10;
                    // the contract's normalisation divides by 2 * std.
                    let db = (rng.uniform() * 12.0 - 6.0) as f32;
                    let shift = db * std::f32::consts::LN_10 / 10.0 / (2.0 * p.std);
                    x.iter_mut().for_each(|v| *v += shift);
                }
            }
            Augment::TimeShift => {
                let len = *shape.last().unwrap_or(&1);
                let max = (len / 10).max(1);
                let k = (rng.next_u64() % (2 * max as u64 + 1)) as isize - max as isize;
                for row in x.chunks_exact_mut(len) {
                    row.rotate_right(k.rem_euclid(len as isize) as usize);
                }
            }
            Augment::Noise => {
                x.iter_mut().for_each(|v| *v += 0.05 * rng.normal() as f32);
            }
            Augment::SpecMask => {
                if modality == ContractModality::Audio && shape.len() == 3 {
                    spec_mask(shape, x, rng);
                }
            }
        }
    }
}

/// `[.., H, W]` planes.
fn planes(shape: &[usize]) -> (usize, usize, usize) {
    let n = shape.len();
    let (h, w) = (shape[n - 2], shape[n - 1]);
    (shape[..n - 2].iter().product(), h, w)
}

fn random_resized_crop(shape: &[usize], x: &mut [f32], rng: &mut Rng) {
    if shape.len() < 3 {
        return;
    }
    let (planes_n, h, w) = planes(shape);
    let area = (h * w) as f64;
    let mut crop = (h as f64, w as f64, 0.0, 0.0);
    for _ in 0..10 {
        let a = area * (0.5 + 0.5 * rng.uniform());
        let ratio =
            ((3f64 / 4.0).ln() + rng.uniform() * ((4f64 / 3.0).ln() - (3f64 / 4.0).ln())).exp();
        let cw = (a * ratio).sqrt();
        let ch = (a / ratio).sqrt();
        if cw <= w as f64 && ch <= h as f64 {
            let y0 = rng.uniform() * (h as f64 - ch);
            let x0 = rng.uniform() * (w as f64 - cw);
            crop = (ch, cw, y0, x0);
            break;
        }
    }
    let (ch, cw, y0, x0) = crop;
    let mut out = vec![0f32; h * w];
    for p in 0..planes_n {
        let plane = &mut x[p * h * w..(p + 1) * h * w];
        for oy in 0..h {
            let sy = (y0 + (oy as f64 + 0.5) * ch / h as f64 - 0.5).clamp(0.0, (h - 1) as f64);
            let (y1, fy) = (sy.floor() as usize, (sy - sy.floor()) as f32);
            let y2 = (y1 + 1).min(h - 1);
            for ox in 0..w {
                let sx = (x0 + (ox as f64 + 0.5) * cw / w as f64 - 0.5).clamp(0.0, (w - 1) as f64);
                let (x1, fx) = (sx.floor() as usize, (sx - sx.floor()) as f32);
                let x2 = (x1 + 1).min(w - 1);
                let top = plane[y1 * w + x1] * (1.0 - fx) + plane[y1 * w + x2] * fx;
                let bot = plane[y2 * w + x1] * (1.0 - fx) + plane[y2 * w + x2] * fx;
                out[oy * w + ox] = top * (1.0 - fy) + bot * fy;
            }
        }
        plane.copy_from_slice(&out);
    }
}

fn flip(shape: &[usize], x: &mut [f32]) {
    if shape.len() < 3 {
        return;
    }
    let w = shape[shape.len() - 1];
    for row in x.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Brightness, contrast and saturation on the unnormalised pixels of a
/// `[3, (F,) H, W]` item.
fn color_jitter(shape: &[usize], x: &mut [f32], mean: &[f32; 3], std: &[f32; 3], rng: &mut Rng) {
    if shape.first() != Some(&3) {
        return;
    }
    let per = x.len() / 3;
    let b = (0.7 + 0.6 * rng.uniform()) as f32;
    let c = (0.7 + 0.6 * rng.uniform()) as f32;
    let s = (0.6 + 0.8 * rng.uniform()) as f32;
    let mut raw = x.to_vec();
    for ch in 0..3 {
        for v in &mut raw[ch * per..(ch + 1) * per] {
            *v = (*v * std[ch] + mean[ch]) * b;
        }
    }
    let grey_mean: f32 = (0..per)
        .map(|i| 0.299 * raw[i] + 0.587 * raw[per + i] + 0.114 * raw[2 * per + i])
        .sum::<f32>()
        / per as f32;
    for i in 0..per {
        let g = 0.299 * raw[i] + 0.587 * raw[per + i] + 0.114 * raw[2 * per + i];
        for ch in 0..3 {
            let v = raw[ch * per + i];
            let v = g + (v - g) * s;
            let v = grey_mean + (v - grey_mean) * c;
            x[ch * per + i] = (v.clamp(0.0, 1.0) - mean[ch]) / std[ch];
        }
    }
}

fn spec_mask(shape: &[usize], x: &mut [f32], rng: &mut Rng) {
    let (mel, frames) = (shape[1], shape[2]);
    let fw = (rng.next_u64() % (mel as u64 / 8 + 1)) as usize;
    let f0 = (rng.next_u64() % ((mel - fw) as u64 + 1)) as usize;
    for f in f0..f0 + fw {
        x[f * frames..(f + 1) * frames].fill(0.0);
    }
    let tw = (rng.next_u64() % (frames as u64 / 10 + 1)) as usize;
    let t0 = (rng.next_u64() % ((frames - tw) as u64 + 1)) as usize;
    for f in 0..mel {
        x[f * frames + t0..f * frames + t0 + tw].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebind_models::preprocess::audio::AudioParams;
    use edgebind_models::preprocess::vision::VisionParams;

    #[test]
    fn flip_and_shift_move_values_and_keep_them() {
        let mut rng = Rng::new(3);
        let shape = [1, 2, 4];
        let mut x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        flip(&shape, &mut x);
        assert_eq!(x, [3., 2., 1., 0., 7., 6., 5., 4.]);
        let mut y: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let pre = Preprocess::Audio(AudioParams::default());
        apply(
            &[Augment::TimeShift],
            ContractModality::Imu,
            &pre,
            &[2, 20],
            &mut y,
            &mut rng,
        );
        let mut sorted = y.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, (0..40).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn crop_of_a_constant_image_is_constant_and_jitter_stays_in_range() {
        let mut rng = Rng::new(5);
        let shape = [3, 2, 16, 16];
        let mut x = vec![0.25f32; 3 * 2 * 16 * 16];
        random_resized_crop(&shape, &mut x, &mut rng);
        assert!(x.iter().all(|v| (v - 0.25).abs() < 1e-6));
        let p = VisionParams::default();
        let pre = Preprocess::Vision(p.clone());
        let mut y: Vec<f32> = (0..x.len()).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect();
        apply(
            &[Augment::ColorJitter],
            ContractModality::Vision,
            &pre,
            &shape,
            &mut y,
            &mut rng,
        );
        let per = y.len() / 3;
        for ch in 0..3 {
            for v in &y[ch * per..(ch + 1) * per] {
                let raw = v * p.std[ch] + p.mean[ch];
                assert!((-1e-5..=1.0 + 1e-5).contains(&raw), "{raw}");
            }
        }
    }

    #[test]
    fn spec_mask_zeroes_bands_only() {
        let mut rng = Rng::new(9);
        let shape = [1, 16, 40];
        let mut x = vec![1f32; 16 * 40];
        for _ in 0..20 {
            spec_mask(&shape, &mut x, &mut rng);
        }
        let zeros = x.iter().filter(|v| **v == 0.0).count();
        assert!(zeros > 0 && zeros < x.len(), "{zeros}");
        assert!(x.iter().all(|v| *v == 0.0 || *v == 1.0));
    }
}
