//! The clock of real devices: the kernel's `CLOCK_MONOTONIC`.
//!
//! V4L2 drivers stamp buffers with `CLOCK_MONOTONIC` (flag
//! `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`) and IIO can stamp scans with it
//! (`current_timestamp_clock`), so device adapters use that clock, unchanged, as
//! [`Timestamp::mono_ns`]: driver timestamps pass straight through, every device
//! stream of a rig shares one origin (boot), and a consumer that wants the
//! latency of a sample compares it with [`DeviceClock::now`]. The wall clock of
//! the same instant is `CLOCK_REALTIME` now minus the time elapsed since.

use crate::clock::{Clock, Timestamp};

/// `CLOCK_MONOTONIC` / `CLOCK_REALTIME`, read through `clock_gettime`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceClock;

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl DeviceClock {
    /// `CLOCK_MONOTONIC` now, in ns.
    pub fn mono_now_ns(&self) -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }

    /// `CLOCK_REALTIME` now, in ns.
    pub fn real_now_ns(&self) -> u64 {
        read(libc::CLOCK_REALTIME)
    }

    /// The timestamp of a past (or present) `CLOCK_MONOTONIC` instant.
    pub fn at_mono(&self, mono_ns: u64) -> Timestamp {
        let now = self.mono_now_ns();
        let wall = self.real_now_ns();
        Timestamp {
            mono_ns,
            wall_ns: wall.saturating_sub(now.saturating_sub(mono_ns)),
        }
    }

    /// The timestamp of a `CLOCK_REALTIME` instant (IIO's default timestamp clock).
    pub fn at_realtime(&self, real_ns: u64) -> Timestamp {
        let now = self.mono_now_ns();
        let wall = self.real_now_ns();
        Timestamp {
            mono_ns: now.saturating_sub(wall.saturating_sub(real_ns)),
            wall_ns: real_ns,
        }
    }
}

impl Clock for DeviceClock {
    fn now(&self) -> Timestamp {
        self.at_mono(self.mono_now_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_matches_std_and_converts_both_ways() {
        let c = DeviceClock;
        let a = c.now();
        let b = c.now();
        assert!(b.mono_ns >= a.mono_ns && a.mono_ns > 0);
        assert!(a.wall_ns > crate::clock::SIM_WALL_EPOCH_NS);
        let past = c.at_mono(a.mono_ns - 1_000_000_000);
        assert!((a.wall_ns as i64 - past.wall_ns as i64 - 1_000_000_000).abs() < 5_000_000);
        let back = c.at_realtime(past.wall_ns);
        assert!((back.mono_ns as i64 - past.mono_ns as i64).abs() < 5_000_000);
    }
}
