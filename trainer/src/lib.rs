//! edgebind-trainer: binds modalities into one space the ImageBind way.
//!
//! A [`plan::Plan`] names a spanning tree: one frozen root (the text tower,
//! or a frozen image encoder) and edges `learner -> anchor`. Each learner is a
//! small ViT-style [`model::Encoder`] (candle) trained with symmetric
//! [`loss::info_nce`] against its frozen anchor's embeddings, with
//! [`optim::AdamW`]; [`checkpoint`] saves and resumes; [`export`] writes the
//! result as an ONNX file with its contract, which `edgebind-models` loads
//! like any other encoder.
//!
//! [`data`] reads paired windows from recordings through the sensors
//! windowing and models preprocessing; [`bind`] trains a plan's edges with
//! cached anchor embeddings and [`augment`]ations.

pub mod alloc;
pub mod augment;
pub mod bind;
pub mod center;
pub mod checkpoint;
pub mod conv;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod har;
pub mod loss;
pub mod model;
pub mod optim;
pub mod params;
pub mod plan;
pub mod plots;
pub mod prompts;
pub mod report;
pub mod student;
