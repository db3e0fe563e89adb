//! # edgebind-models
//!
//! Everything that turns a window into a vector of the shared space. Today:
//! ImageBind-exact [`preprocess`]ing. The encoder contract, the backends and
//! the text tower build on it.

#![warn(missing_docs)]

pub mod preprocess;
