//! The sensor adapter contract, and the [`Rig`] that runs adapters into rings.
//!
//! An adapter owns one thread. `start` hands it one ring producer per stream;
//! the thread pushes samples (never blocking, never allocating per sample in
//! steady state: see [`crate::ring`]) until `stop`, then hands the producers
//! back, so `reconnect` is a stop and a start on the same rings: the consumer
//! side never notices, apart from the gap and the health state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::modality::Modality;
use crate::ring::{self, RingConsumer, RingCounters, RingMonitor, RingProducer};
use crate::sample::Sample;

/// Ring producer of samples.
pub type SampleProducer = RingProducer<Sample>;
/// Ring consumer of samples.
pub type SampleConsumer = RingConsumer<Sample>;

/// One stream an adapter offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// Its modality.
    pub modality: Modality,
    /// Human description (device, format, size).
    pub description: String,
    /// Nominal samples per second (frames, audio chunks or IMU readings).
    pub rate_hz: f64,
}

/// State of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SensorState {
    /// Created, not started.
    Idle,
    /// Delivering samples.
    Up,
    /// Not delivering; `reason` says why.
    Down {
        /// Why.
        reason: String,
    },
    /// Finished its input (replay at the end of a file, a sim run of fixed length).
    Finished,
    /// Stopped by the user.
    Stopped,
}

/// Health of an adapter and its streams.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// Adapter name.
    pub adapter: String,
    /// Current state.
    pub state: SensorState,
    /// Per-stream ring counters (pushed, dropped...), in [`SensorAdapter::streams`] order.
    pub streams: Vec<(Modality, RingCounters)>,
    /// Times the adapter was (re)started.
    pub starts: u64,
}

/// Errors of adapters.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// `start` got the wrong number of producers.
    #[error("adapter {adapter} has {expected} streams, start got {got} ring producers")]
    Outputs {
        /// Adapter.
        adapter: String,
        /// Streams it has.
        expected: usize,
        /// Producers given.
        got: usize,
    },
    /// Started twice.
    #[error("adapter {0} is already running")]
    AlreadyRunning(String),
    /// Not started (or its rings were lost).
    #[error("adapter {0} is not running")]
    NotRunning(String),
    /// The device or source failed.
    #[error("adapter {adapter}: {detail}")]
    Device {
        /// Adapter.
        adapter: String,
        /// What failed.
        detail: String,
    },
}

/// A sensor adapter: one thread that pushes samples into rings.
pub trait SensorAdapter: Send {
    /// Name used in health and logs.
    fn name(&self) -> &str;
    /// Streams it produces; `start` takes one producer per stream, in this order.
    fn streams(&self) -> Vec<StreamInfo>;
    /// Starts the thread.
    fn start(&mut self, outputs: Vec<SampleProducer>) -> Result<(), SensorError>;
    /// The thread runner every adapter keeps (behind the defaults below).
    fn thread(&self) -> &AdapterThread;
    /// The same, mutably.
    fn thread_mut(&mut self) -> &mut AdapterThread;
    /// Stops the thread and waits for it; keeps the producers for a restart.
    fn stop(&mut self) -> Result<(), SensorError> {
        self.thread_mut().stop()
    }
    /// Current health.
    fn health(&self) -> Health {
        self.thread().health()
    }
    /// Stops and starts again on the same rings (after a device error; a
    /// replay starts again from the beginning of its file).
    fn reconnect(&mut self) -> Result<(), SensorError> {
        let outs = self.thread_mut().stop_for_restart()?;
        self.start(outs)
    }
}

/// Shared state between an adapter handle and its thread; the pieces every
/// adapter needs, so each one implements only its sample loop.
#[derive(Debug)]
pub struct AdapterCore {
    /// Adapter name.
    pub name: String,
    running: AtomicBool,
    starts: AtomicU64,
    state: Mutex<SensorState>,
}

impl AdapterCore {
    /// A core for adapter `name`.
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(AdapterCore {
            name: name.to_string(),
            running: AtomicBool::new(false),
            starts: AtomicU64::new(0),
            state: Mutex::new(SensorState::Idle),
        })
    }

    /// Whether the thread should keep going.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Sets the state (a rare transition, never per sample).
    pub fn set_state(&self, s: SensorState) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
    }

    /// The state.
    pub fn state(&self) -> SensorState {
        self.state
            .lock()
            .map(|g| g.clone())
            .unwrap_or(SensorState::Down {
                reason: "state lock poisoned".into(),
            })
    }
}

/// Runs a sample loop on a thread; the common body of adapters' `start`/`stop`.
pub struct AdapterThread {
    core: Arc<AdapterCore>,
    monitors: Vec<(Modality, RingMonitor<Sample>)>,
    parked: Option<Vec<SampleProducer>>,
    handle: Option<std::thread::JoinHandle<Vec<SampleProducer>>>,
}

impl AdapterThread {
    /// A thread runner for `core`.
    pub fn new(core: Arc<AdapterCore>) -> Self {
        AdapterThread {
            core,
            monitors: Vec::new(),
            parked: None,
            handle: None,
        }
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<AdapterCore> {
        &self.core
    }

    /// Spawns `body`, which runs until `core.running()` turns false or its input
    /// ends, and returns the producers.
    pub fn start(
        &mut self,
        streams: &[StreamInfo],
        outputs: Vec<SampleProducer>,
        body: impl FnOnce(Arc<AdapterCore>, Vec<SampleProducer>) -> Vec<SampleProducer> + Send + 'static,
    ) -> Result<(), SensorError> {
        if self.handle.is_some() {
            return Err(SensorError::AlreadyRunning(self.core.name.clone()));
        }
        if outputs.len() != streams.len() {
            return Err(SensorError::Outputs {
                adapter: self.core.name.clone(),
                expected: streams.len(),
                got: outputs.len(),
            });
        }
        self.monitors = streams
            .iter()
            .zip(&outputs)
            .map(|(s, p)| (s.modality, p.monitor()))
            .collect();
        self.core.running.store(true, Ordering::Release);
        self.core.starts.fetch_add(1, Ordering::AcqRel);
        self.core.set_state(SensorState::Up);
        let core = self.core.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sensor-{}", self.core.name))
            .spawn(move || body(core, outputs))
            .map_err(|e| SensorError::Device {
                adapter: self.core.name.clone(),
                detail: format!("cannot spawn thread: {e}"),
            })?;
        self.handle = Some(handle);
        Ok(())
    }

    /// Signals the thread to stop, joins it and keeps its producers.
    pub fn stop(&mut self) -> Result<(), SensorError> {
        self.core.running.store(false, Ordering::Release);
        let Some(h) = self.handle.take() else {
            return Ok(());
        };
        match h.join() {
            Ok(producers) => {
                self.parked = Some(producers);
                if !matches!(
                    self.core.state(),
                    SensorState::Finished | SensorState::Down { .. }
                ) {
                    self.core.set_state(SensorState::Stopped);
                }
                Ok(())
            }
            Err(_) => {
                self.core.set_state(SensorState::Down {
                    reason: "sensor thread panicked".into(),
                });
                Err(SensorError::Device {
                    adapter: self.core.name.clone(),
                    detail: "sensor thread panicked; its rings are lost".into(),
                })
            }
        }
    }

    /// Producers kept by the last `stop`, for a restart.
    pub fn take_parked(&mut self) -> Option<Vec<SampleProducer>> {
        self.parked.take()
    }

    /// Stops the thread and returns its producers: the first half of every
    /// adapter's `reconnect` (the second is its own `start`).
    pub fn stop_for_restart(&mut self) -> Result<Vec<SampleProducer>, SensorError> {
        self.stop()?;
        self.take_parked()
            .ok_or_else(|| SensorError::NotRunning(self.core.name.clone()))
    }

    /// Health snapshot.
    pub fn health(&self) -> Health {
        Health {
            adapter: self.core.name.clone(),
            state: self.core.state(),
            streams: self
                .monitors
                .iter()
                .map(|(m, mon)| (*m, mon.counters()))
                .collect(),
            starts: self.core.starts.load(Ordering::Acquire),
        }
    }

    /// Whether the thread has exited on its own (input ended or failed).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| h.is_finished())
    }
}

impl Drop for AdapterThread {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Adapters started on rings of a given capacity; the consumers go to the windowers.
pub struct Rig {
    adapters: Vec<Box<dyn SensorAdapter>>,
}

impl Rig {
    /// Creates one ring of `capacity` samples per stream of each adapter, starts
    /// the adapters, and returns the running rig and the consumers.
    pub fn start(
        mut adapters: Vec<Box<dyn SensorAdapter>>,
        capacity: usize,
    ) -> Result<(Rig, Vec<(Modality, SampleConsumer)>), SensorError> {
        let mut consumers = Vec::new();
        for a in adapters.iter_mut() {
            let mut producers = Vec::new();
            for s in a.streams() {
                let m = s.modality;
                let (p, c) = ring::channel(capacity, move || Sample::empty(m));
                producers.push(p);
                consumers.push((m, c));
            }
            a.start(producers)?;
        }
        Ok((Rig { adapters }, consumers))
    }

    /// Health of every adapter.
    pub fn health(&self) -> Vec<Health> {
        self.adapters.iter().map(|a| a.health()).collect()
    }

    /// Stops every adapter.
    pub fn stop(&mut self) -> Result<(), SensorError> {
        for a in self.adapters.iter_mut() {
            a.stop()?;
        }
        Ok(())
    }

    /// Whether every adapter has finished its input.
    pub fn all_finished(&self) -> bool {
        self.adapters.iter().all(|a| {
            matches!(
                a.health().state,
                SensorState::Finished | SensorState::Down { .. }
            )
        })
    }
}
