//! # edgebind (the daemon)
//!
//! Composes `edgebind-sensors` and `edgebind-models` into the live topology the
//! `edgebind` binary runs:
//!
//! ```text
//! sensor threads --rings--> windower thread --bounded queues (drop oldest)-->
//! encoder workers (batch up to max_batch or max_wait) --> fusion + matcher thread
//! --> events --> outbox (disk) --> MQTT publisher (tokio) ; history ; status
//! ```
//!
//! Modules: [`config`] (the TOML file), [`daemon`] (the topology and `run`),
//! [`concepts`] (the matcher state machine), [`fusion`], [`matcher`] (the
//! matcher thread and the control plane), [`history`], [`outbox`], [`mqtt`],
//! [`broker`] (embedded rumqttd), [`stats`], [`prometheus`] and [`slideshow`]
//! (photo recordings for the demo and the tests).

#![warn(missing_docs)]

pub mod broker;
pub mod concepts;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod fusion;
pub mod history;
pub mod matcher;
pub mod mqtt;
pub mod outbox;
pub mod prometheus;
pub mod slideshow;
pub mod stats;
