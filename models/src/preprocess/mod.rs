//! Preprocessing: a sensor [`Window`](edgebind_sensors::window::Window) becomes
//! the tensor an encoder's contract asks for. This is the only place it
//! happens: the daemon and the trainer both call it, so a trained encoder sees
//! at run time exactly what it saw in training.
//!
//! Defaults reproduce ImageBind's transforms exactly (verified against the
//! Python references on the fixtures in `models/fixtures/`); every value can be
//! overridden by an encoder's contract.

pub mod audio;
pub mod depth;
pub mod fbank;
pub mod imu;
pub mod resample;
pub mod resize;
pub mod thermal;
pub mod vision;
pub mod window;

pub use window::Preprocessor;

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor; panics in debug builds if the data does not fill the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    /// Frames `[C, H, W]` (all the same shape), earliest first ->
    /// `[C, T, H, W]`: the time axis after the channels, as ImageBind's
    /// video-style inputs lay it out. `None` if empty or shapes differ.
    pub fn stack_time(frames: &[&Tensor]) -> Option<Tensor> {
        let first = frames.first()?;
        if first.shape.len() != 3 || frames.iter().any(|f| f.shape != first.shape) {
            return None;
        }
        let (c, t) = (first.shape[0], frames.len());
        let plane = first.shape[1] * first.shape[2];
        let mut data = Vec::with_capacity(c * t * plane);
        for ch in 0..c {
            for f in frames {
                data.extend_from_slice(&f.data[ch * plane..(ch + 1) * plane]);
            }
        }
        Some(Tensor::new(
            vec![c, t, first.shape[1], first.shape[2]],
            data,
        ))
    }
}

/// `[C, H, W]` -> itself for `frames` = 0, else `[C, frames, H, W]` with the
/// image repeated (a still image as a clip with no motion, ImageBind's way).
pub(crate) fn repeat_frames(t: Tensor, frames: usize) -> Result<Tensor, PreprocessError> {
    if frames == 0 {
        return Ok(t);
    }
    Tensor::stack_time(&vec![&t; frames])
        .ok_or_else(|| PreprocessError::Shape(format!("cannot repeat a {:?} tensor", t.shape)))
}

/// Errors of preprocessing: bad parameters (from a contract) or bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    /// A parameter that cannot work.
    #[error("preprocessing parameter: {0}")]
    Params(String),
    /// Input of the wrong size or shape.
    #[error("preprocessing input: {0}")]
    Shape(String),
}
