//! Time: every sample carries a monotonic timestamp (for ordering, windows and
//! latency) and the wall-clock time it corresponds to (for humans and logs).
//!
//! Live adapters read both from the OS ([`SystemClock`]); the simulated rig uses
//! sim time with a fixed wall-clock epoch ([`Timestamp::sim`]) so recordings of
//! the same seed are byte-identical.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Nanoseconds in one second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Wall-clock epoch of simulated time: 2026-01-01T00:00:00Z, in Unix nanoseconds.
pub const SIM_WALL_EPOCH_NS: u64 = 1_767_225_600 * NS_PER_SEC;

/// A point in time, on two clocks.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Monotonic nanoseconds (never jumps; the origin is arbitrary but shared by
    /// all streams of one rig). Windows and ordering use this clock.
    pub mono_ns: u64,
    /// Wall-clock Unix nanoseconds at the same instant.
    pub wall_ns: u64,
}

impl Timestamp {
    /// A timestamp in simulated time: `sim_ns` after the start of the simulation.
    pub fn sim(sim_ns: u64) -> Self {
        Timestamp {
            mono_ns: sim_ns,
            wall_ns: SIM_WALL_EPOCH_NS + sim_ns,
        }
    }

    /// Seconds on the monotonic clock, for printing.
    pub fn mono_secs(&self) -> f64 {
        self.mono_ns as f64 / NS_PER_SEC as f64
    }
}

/// A source of timestamps.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The OS clocks: monotonic from a process-wide origin, wall from `SystemTime`.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let mono_ns = self.origin.elapsed().as_nanos() as u64;
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Timestamp { mono_ns, wall_ns }
    }
}

/// Converts seconds (config values) to nanoseconds, rounding to the nearest ns.
pub fn secs_to_ns(secs: f64) -> u64 {
    (secs * NS_PER_SEC as f64).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b.mono_ns >= a.mono_ns);
        assert!(a.wall_ns > SIM_WALL_EPOCH_NS);
    }

    #[test]
    fn sim_time_has_fixed_epoch() {
        let t = Timestamp::sim(1_500_000_000);
        assert_eq!(t.mono_ns, 1_500_000_000);
        assert_eq!(t.wall_ns, SIM_WALL_EPOCH_NS + 1_500_000_000);
        assert_eq!(secs_to_ns(1.5), 1_500_000_000);
    }
}
