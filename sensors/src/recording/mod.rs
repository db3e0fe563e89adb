//! Recordings: MCAP files of any rig's streams, plus ground truth.
//!
//! * [`writer`]: [`Recorder`] writes samples with the `mcap` crate (Foxglove's
//!   `RawImage` for frames, so files open in Foxglove).
//! * [`reader`]: [`McapReader`] reads them back bit-exactly and reports damage
//!   with byte offsets and channel names, never panicking.
//! * [`inspect`]: per-channel counts, rates and time span of a file.

pub mod inspect;
pub mod reader;
pub mod schema;
pub mod writer;

#[cfg(test)]
mod tests;

pub use inspect::{ChannelSummary, Inspection, TruthSpan, inspect};
pub use reader::{ChannelInfo, McapReader, MessageRef, RecordingError, decode_sample};
pub use writer::{Recorder, TRUTH_TOPIC, WriteError, topic_for};
