//! Depth preprocessing: millimetres -> metres -> disparity
//! (`baseline * fx / depth`, the scale-normalised form ImageBind trains depth
//! on), clipped to `[0, max_disparity]` and scaled to [0, 1], short-side resize
//! (PIL bilinear, antialiased) and centre crop, then `(x - mean) / std`.
//! Invalid pixels (0 mm: no measurement) become disparity 0, i.e. "far".
//!
//! ImageBind's code does not publish its depth normalisation constants, so the
//! defaults here are edgebind's: a RealSense D435-like rig (50 mm baseline,
//! fx 385 px), nearest depth 0.2 m, and mean/std mapping [0, 1] to [-1, 1].

use super::resize::{Filter, resize_crop_f32};
use super::{PreprocessError, Tensor};

/// Parameters of the depth transform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DepthParams {
    /// Stereo baseline, metres.
    pub baseline_m: f32,
    /// Focal length, pixels.
    pub fx_px: f32,
    /// Depths nearer than this are clipped to it, metres.
    pub min_depth_m: f32,
    /// Short side after resizing.
    pub resize: u32,
    /// Square centre crop.
    pub crop: u32,
    /// Subtracted after scaling to [0, 1].
    pub mean: f32,
    /// Divided by.
    pub std: f32,
    /// Frames in the model input: 0 (the default) for a plain `[1, crop,
    /// crop]` image; 2 for a `[1, 2, crop, crop]` clip (see `clip_s`; without
    /// it the frame is repeated).
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub frames: usize,
    /// Seconds between the frames of a real clip (`frames` >= 2, evenly
    /// spaced; ImageBind's video takes 2): the
    /// window's earlier frames (nearest `t_end - k * clip_s`) come first, its
    /// own frame last, so the encoder sees motion; 0 = no clip.
    #[serde(skip_serializing_if = "super::vision::is_zero")]
    pub clip_s: f64,
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

impl Default for DepthParams {
    fn default() -> Self {
        DepthParams {
            baseline_m: 0.05,
            fx_px: 385.0,
            min_depth_m: 0.2,
            resize: 224,
            crop: 224,
            mean: 0.5,
            std: 0.5,
            frames: 0,
            clip_s: 0.0,
        }
    }
}

impl DepthParams {
    /// The largest disparity (at `min_depth_m`), pixels.
    pub fn max_disparity(&self) -> f32 {
        self.baseline_m * self.fx_px / self.min_depth_m
    }
}

/// Z16 millimetres (`w * h` values) -> `[1, crop, crop]` (`[1, frames,
/// crop, crop]`, the frame repeated, if `frames` > 0).
pub fn preprocess_depth_mm(
    mm: &[u16],
    w: usize,
    h: usize,
    p: &DepthParams,
) -> Result<Tensor, PreprocessError> {
    if [p.baseline_m, p.fx_px, p.min_depth_m]
        .iter()
        .any(|v| v.is_nan() || *v <= 0.0)
        || p.std == 0.0
    {
        return Err(PreprocessError::Params(format!(
            "depth baseline_m {}, fx_px {}, min_depth_m {} must be > 0 and std non-zero",
            p.baseline_m, p.fx_px, p.min_depth_m
        )));
    }
    let max_d = p.max_disparity();
    let disp: Vec<f32> = mm
        .iter()
        .map(|&v| {
            if v == 0 {
                0.0
            } else {
                let m = (v as f32 / 1000.0).max(p.min_depth_m);
                (p.baseline_m * p.fx_px / m).min(max_d) / max_d
            }
        })
        .collect();
    let crop = p.crop as usize;
    let img = resize_crop_f32(&disp, w, h, p.resize as usize, crop, Filter::Bilinear)?;
    let data = img.into_iter().map(|v| (v - p.mean) / p.std).collect();
    super::repeat_frames(Tensor::new(vec![1, crop, crop], data), p.frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disparity_is_inverse_depth_and_holes_are_far() {
        let p = DepthParams {
            resize: 2,
            crop: 2,
            mean: 0.0,
            std: 1.0,
            ..Default::default()
        };
        // 0.2 m (nearest) -> 1, 0.4 m -> 0.5, 2 m -> 0.1, hole -> 0.
        let t = preprocess_depth_mm(&[200, 400, 2000, 0], 2, 2, &p).unwrap();
        let want = [1.0, 0.5, 0.1, 0.0];
        for (g, w) in t.data.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{:?}", t.data);
        }
        // Nearer than min_depth clips.
        let t = preprocess_depth_mm(&[50, 50, 50, 50], 2, 2, &p).unwrap();
        assert!(t.data.iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(preprocess_depth_mm(&[1, 2, 3], 2, 2, &p).is_err());
    }
}
