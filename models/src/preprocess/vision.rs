//! Vision preprocessing, ImageBind's image transform reproduced exactly:
//! `Resize(short side, BICUBIC)` on a PIL image, `CenterCrop`, `ToTensor`,
//! `Normalize(CLIP mean, std)`, then the frame repeated to the contract's
//! number of frames (ImageBind's vision input is a 2-frame clip).
//!
//! The resize is PIL's algorithm, not a generic bicubic: a separable two-pass
//! convolution (horizontal first) whose filter support widens with the
//! downscale factor (antialiasing), bicubic kernel with `a = -0.5`, coefficients
//! quantised to 22-bit fixed point, and an 8-bit clipped intermediate image.
//! Matching it bit for bit is what makes embeddings computed here equal to the
//! ones the reference encoders were trained and evaluated on.

use super::{PreprocessError, Tensor};

/// CLIP's per-channel mean (RGB), ImageBind's default (digits as published).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel std (RGB), ImageBind's default (digits as published).
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Parameters of the vision transform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionParams {
    /// Short side after resizing, pixels.
    pub resize: u32,
    /// Side of the square centre crop, pixels.
    pub crop: u32,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel std divided by.
    pub std: [f32; 3],
    /// Frames in the model input (the frame is repeated): 2 for ImageBind, 0
    /// for a plain image model taking `[3, crop, crop]`.
    pub frames: usize,
    /// Seconds between the frames of a real clip (`frames` >= 2, evenly
    /// spaced; ImageBind's video takes 2): the
    /// window's earlier frames (nearest `t_end - k * clip_s`) come first and
    /// its own frame last, so the encoder sees motion. 0 (ImageBind's
    /// images, the default): the one frame repeated. A still image given to a
    /// clip encoder (`edgebind embed`) is repeated too: a clip with no motion.
    #[serde(skip_serializing_if = "is_zero")]
    pub clip_s: f64,
}

pub(crate) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for VisionParams {
    fn default() -> Self {
        VisionParams {
            resize: 224,
            crop: 224,
            mean: CLIP_MEAN,
            std: CLIP_STD,
            frames: 2,
            clip_s: 0.0,
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point taps of one axis (PIL's 8-bit path).
struct FixedTaps {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn taps(in_size: usize, out_size: usize) -> FixedTaps {
    let t = super::resize::taps(in_size, out_size, super::resize::Filter::Bicubic);
    let one = (1u32 << PRECISION_BITS) as f64;
    let weights = t
        .weights
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (w * one - 0.5) as i32
            } else {
                (w * one + 0.5) as i32
            }
        })
        .collect();
    FixedTaps {
        bounds: t.bounds,
        ksize: t.ksize,
        weights,
    }
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes interleaved RGB8 exactly as PIL's `Image.resize(..., BICUBIC)`.
pub fn resize_bicubic_rgb8(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
) -> Result<Vec<u8>, PreprocessError> {
    if w == 0 || h == 0 || out_w == 0 || out_h == 0 {
        return Err(PreprocessError::Shape(format!(
            "cannot resize {w}x{h} to {out_w}x{out_h}"
        )));
    }
    if src.len() != w * h * 3 {
        return Err(PreprocessError::Shape(format!(
            "RGB8 image {w}x{h} needs {} bytes, got {}",
            w * h * 3,
            src.len()
        )));
    }
    let hz = taps(w, out_w);
    let vt = taps(h, out_h);
    let need_h = out_w != w;
    let need_v = out_h != h;
    // Rows of the source the vertical pass reads.
    let (y_first, y_last) = {
        let (first, _) = vt.bounds[0];
        let (lmin, ln) = vt.bounds[out_h - 1];
        (first, lmin + ln)
    };
    let round = 1i64 << (PRECISION_BITS - 1);
    let (tmp, tmp_w, row0) = if need_h {
        let rows = y_last - y_first;
        let mut tmp = vec![0u8; out_w * rows * 3];
        for y in 0..rows {
            let src_row = &src[(y + y_first) * w * 3..(y + y_first + 1) * w * 3];
            for xx in 0..out_w {
                let (xmin, n) = hz.bounds[xx];
                let k = &hz.weights[xx * hz.ksize..xx * hz.ksize + n];
                for c in 0..3 {
                    let mut ss = round;
                    for (x, kx) in k.iter().enumerate() {
                        ss += src_row[(xmin + x) * 3 + c] as i64 * *kx as i64;
                    }
                    tmp[(y * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        (tmp, out_w, y_first)
    } else {
        (src.to_vec(), w, 0)
    };
    if !need_v {
        return Ok(tmp);
    }
    let mut out = vec![0u8; out_w * out_h * 3];
    for yy in 0..out_h {
        let (ymin, n) = vt.bounds[yy];
        let k = &vt.weights[yy * vt.ksize..yy * vt.ksize + n];
        for xx in 0..out_w {
            for c in 0..3 {
                let mut ss = round;
                for (y, ky) in k.iter().enumerate() {
                    ss += tmp[((ymin - row0 + y) * tmp_w + xx) * 3 + c] as i64 * *ky as i64;
                }
                out[(yy * out_w + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    Ok(out)
}

/// torchvision's `Resize(size)` output size for an int size: the short side
/// becomes `size`, the long side `int(size * long / short)`.
pub fn resized_size(w: usize, h: usize, short: usize) -> (usize, usize) {
    if w <= h {
        (short, (short as f64 * h as f64 / w as f64) as usize)
    } else {
        ((short as f64 * w as f64 / h as f64) as usize, short)
    }
}

/// torchvision's `CenterCrop` offsets: `int(round((size - crop) / 2))`.
/// Python rounds halves to even, which `f64::round_ties_even` matches.
pub(crate) fn crop_offset(size: usize, crop: usize) -> usize {
    ((size as f64 - crop as f64) / 2.0)
        .round_ties_even()
        .max(0.0) as usize
}

/// Two RGB8 frames (earlier, later) -> normalised `[3, 2, crop, crop]`
/// clip, each frame transformed exactly as [`preprocess_rgb8`] does.
pub fn preprocess_rgb8_clip(
    earlier: (&[u8], usize, usize),
    later: (&[u8], usize, usize),
    p: &VisionParams,
) -> Result<Tensor, PreprocessError> {
    if p.frames != 2 {
        return Err(PreprocessError::Shape(format!(
            "a 2-frame clip needs `frames` = 2 in the contract, not {}",
            p.frames
        )));
    }
    let single = VisionParams {
        frames: 0,
        ..p.clone()
    };
    let a = preprocess_rgb8(earlier.0, earlier.1, earlier.2, &single)?;
    let b = preprocess_rgb8(later.0, later.1, later.2, &single)?;
    Tensor::stack_time(&[&a, &b])
        .ok_or_else(|| PreprocessError::Shape("clip frames differ in shape".into()))
}

/// RGB8 image -> normalised `[3, crop, crop]` (or `[3, frames, crop, crop]`) tensor.
pub fn preprocess_rgb8(
    src: &[u8],
    w: usize,
    h: usize,
    p: &VisionParams,
) -> Result<Tensor, PreprocessError> {
    let (rw, rh) = resized_size(w, h, p.resize as usize);
    let resized = resize_bicubic_rgb8(src, w, h, rw, rh)?;
    let crop = p.crop as usize;
    if crop > rw || crop > rh {
        // torchvision pads with zeros when the crop is larger; ImageBind never does this.
        return Err(PreprocessError::Shape(format!(
            "crop {crop} is larger than the resized image {rw}x{rh}"
        )));
    }
    let (x0, y0) = (crop_offset(rw, crop), crop_offset(rh, crop));
    let mut chw = vec![0f32; 3 * crop * crop];
    for c in 0..3 {
        let (m, s) = (p.mean[c], p.std[c]);
        for y in 0..crop {
            for x in 0..crop {
                let v = resized[((y0 + y) * rw + x0 + x) * 3 + c] as f32 / 255.0;
                chw[(c * crop + y) * crop + x] = (v - m) / s;
            }
        }
    }
    let t = Tensor::new(vec![3, crop, crop], chw);
    super::repeat_frames(t, p.frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_stack_two_transformed_frames_in_time_order() {
        let p = VisionParams {
            resize: 4,
            crop: 4,
            clip_s: 0.5,
            ..VisionParams::default()
        };
        let a = vec![10u8; 6 * 4 * 3];
        let b: Vec<u8> = (0..6 * 4 * 3).map(|i| (i * 5 % 256) as u8).collect();
        let clip = preprocess_rgb8_clip((&a, 6, 4), (&b, 6, 4), &p).unwrap();
        assert_eq!(clip.shape, vec![3, 2, 4, 4]);
        let single = VisionParams {
            frames: 0,
            ..p.clone()
        };
        let ta = preprocess_rgb8(&a, 6, 4, &single).unwrap();
        let tb = preprocess_rgb8(&b, 6, 4, &single).unwrap();
        for c in 0..3 {
            assert_eq!(
                clip.data[(2 * c) * 16..(2 * c + 1) * 16],
                ta.data[c * 16..(c + 1) * 16]
            );
            assert_eq!(
                clip.data[(2 * c + 1) * 16..(2 * c + 2) * 16],
                tb.data[c * 16..(c + 1) * 16]
            );
        }
        let three = VisionParams { frames: 3, ..p };
        assert!(preprocess_rgb8_clip((&a, 6, 4), (&b, 6, 4), &three).is_err());
    }

    #[test]
    fn sizes_follow_torchvision() {
        assert_eq!(resized_size(451, 300, 224), (336, 224));
        assert_eq!(resized_size(300, 451, 224), (224, 336));
        assert_eq!(resized_size(97, 61, 224), (356, 224));
        assert_eq!(crop_offset(336, 224), 56);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) = 0 in Python
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) = 2
    }

    #[test]
    fn identity_and_constant_images() {
        let img: Vec<u8> = (0..(7 * 5 * 3)).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(resize_bicubic_rgb8(&img, 7, 5, 7, 5).unwrap(), img);
        let flat = vec![200u8; 40 * 30 * 3];
        let r = resize_bicubic_rgb8(&flat, 40, 30, 13, 9).unwrap();
        assert!(r.iter().all(|&v| v == 200), "a flat image stays flat");
        let up = resize_bicubic_rgb8(&flat, 40, 30, 97, 71).unwrap();
        assert!(up.iter().all(|&v| v == 200));
    }

    #[test]
    fn output_is_normalised_and_repeated() {
        let img = vec![255u8; 300 * 250 * 3];
        let t = preprocess_rgb8(&img, 300, 250, &VisionParams::default()).unwrap();
        assert_eq!(t.shape, vec![3, 2, 224, 224]);
        let want0 = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0];
        assert!((t.data[0] - want0).abs() < 1e-6);
        let plane = 224 * 224;
        assert_eq!(t.data[..plane], t.data[plane..2 * plane]);
        let e = preprocess_rgb8(&img[1..], 300, 250, &VisionParams::default()).unwrap_err();
        assert!(e.to_string().contains("needs 225000 bytes"), "{e}");
    }
}
