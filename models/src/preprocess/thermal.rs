//! Thermal preprocessing: radiometric counts (Lepton TLinear: centi-kelvin) or
//! Celsius -> Celsius, mapped from `[min_c, max_c]` to [0, 1] (clipped), short-side
//! resize (PIL bilinear) and centre crop, `(x - mean) / std`: one channel, as
//! ImageBind's thermal encoder takes it.
//!
//! The temperature window is a contract value: the defaults (-10 .. 60 °C) cover
//! people, animals, engines and rooms; a fire saturates at 1.

use super::resize::{Filter, resize_crop_f32};
use super::{PreprocessError, Tensor};

/// Parameters of the thermal transform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThermalParams {
    /// Kelvin per Y16 count (Lepton TLinear high resolution: 0.01).
    pub kelvin_per_count: f32,
    /// Kelvin at count 0.
    pub kelvin_offset: f32,
    /// Temperature mapped to 0, °C.
    pub min_c: f32,
    /// Temperature mapped to 1, °C.
    pub max_c: f32,
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

impl Default for ThermalParams {
    fn default() -> Self {
        ThermalParams {
            kelvin_per_count: 0.01,
            kelvin_offset: 0.0,
            min_c: -10.0,
            max_c: 60.0,
            resize: 224,
            crop: 224,
            mean: 0.5,
            std: 0.5,
            frames: 0,
            clip_s: 0.0,
        }
    }
}

/// Celsius values (`w * h`) -> `[1, crop, crop]` (`[1, frames, crop, crop]`,
/// the frame repeated, if `frames` > 0).
pub fn preprocess_celsius(
    c: &[f32],
    w: usize,
    h: usize,
    p: &ThermalParams,
) -> Result<Tensor, PreprocessError> {
    if p.max_c.is_nan() || p.min_c.is_nan() || p.max_c <= p.min_c || p.std == 0.0 {
        return Err(PreprocessError::Params(format!(
            "thermal needs max_c > min_c and std != 0, got {} .. {} std {}",
            p.min_c, p.max_c, p.std
        )));
    }
    let span = p.max_c - p.min_c;
    let unit: Vec<f32> = c
        .iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - p.min_c) / span).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    let crop = p.crop as usize;
    let img = resize_crop_f32(&unit, w, h, p.resize as usize, crop, Filter::Bilinear)?;
    let t = Tensor::new(
        vec![1, crop, crop],
        img.into_iter().map(|v| (v - p.mean) / p.std).collect(),
    );
    super::repeat_frames(t, p.frames)
}

/// Y16 counts -> Celsius with the contract's calibration.
pub fn counts_to_celsius(counts: &[u16], p: &ThermalParams) -> Vec<f32> {
    counts
        .iter()
        .map(|&n| n as f32 * p.kelvin_per_count + p.kelvin_offset - 273.15)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_and_window() {
        let p = ThermalParams {
            resize: 2,
            crop: 2,
            mean: 0.0,
            std: 1.0,
            ..Default::default()
        };
        let c = counts_to_celsius(&[27315, 30315, 37315, 26315], &p);
        assert!(
            (c[0] - 0.0).abs() < 0.01 && (c[1] - 30.0).abs() < 0.01 && (c[2] - 100.0).abs() < 0.01
        );
        let t = preprocess_celsius(&c, 2, 2, &p).unwrap();
        let want = [10.0 / 70.0, 40.0 / 70.0, 1.0, 0.0];
        for (g, w) in t.data.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{:?}", t.data);
        }
        assert!(preprocess_celsius(&c, 2, 2, &ThermalParams { max_c: -20.0, ..p }).is_err());
    }
}
