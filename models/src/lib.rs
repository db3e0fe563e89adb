//! # edgebind-models
//!
//! Everything that turns a window into a vector of the shared space. Today:
//! the encoder [`contract`], ImageBind-exact [`preprocess`]ing and the
//! [`space`] operations. The backends and the text tower build on them.

#![warn(missing_docs)]

pub mod backend;
pub mod contract;
pub mod onnx;
pub mod preprocess;
pub mod space;
pub mod text;
