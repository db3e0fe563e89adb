//! # edgebind-sensors
//!
//! The sensor layer of edgebind: everything between a physical (or simulated,
//! or recorded) sensor and a [`Window`](window::Window) of data ready for an encoder.
//!
//! ```text
//! adapter thread --push--> ring (drop-oldest, never blocks) --> Windower --> Window
//!                                                           \-> MomentAligner --> Moment
//! ```
//!
//! * [`sample`]: timestamped frames, audio chunks and IMU samples.
//! * [`ring`]: the lock-free single-producer single-consumer ring every adapter
//!   pushes into; overflow drops the oldest sample and counts it.
//! * [`window`] and [`moment`]: per-modality windows on a shared time grid, and
//!   the grouping of windows of different modalities that cover the same moment.
//! * [`adapter`]: the sensor adapter trait (start, stop, health, reconnect) and
//!   the [`adapters`] that implement it: the simulated rig and replay.
//! * [`devices`]: real sensors (V4L2 cameras, ALSA microphone, IIO IMU) with
//!   reconnect, and their pure format conversions.
//! * [`sim`]: the seeded, deterministic simulated world behind the `sim` rig.
//! * [`recording`]: MCAP recording, reading, inspection and replay.
//!
//! This crate knows nothing about models or MQTT; `models/` and `pipeline/` build on it.

#![warn(missing_docs)]

pub mod adapter;
pub mod adapters;
pub mod clock;
pub mod devices;
pub mod modality;
pub mod moment;
pub mod recording;
pub mod ring;
pub mod sample;
pub mod sim;
pub mod window;

pub use clock::{Clock, SystemClock, Timestamp};
pub use modality::Modality;
pub use sample::{AudioChunk, Frame, ImuSample, Payload, PixelFormat, Sample};
