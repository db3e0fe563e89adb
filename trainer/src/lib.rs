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
//! Not yet here: reading paired windows from recordings and caching anchor
//! embeddings (the data pipeline), augmentations, evaluation.

pub mod checkpoint;
pub mod export;
pub mod har;
pub mod loss;
pub mod model;
pub mod optim;
pub mod params;
pub mod plan;
pub mod student;
