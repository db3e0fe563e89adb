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
