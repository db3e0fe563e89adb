//! Sensor adapters, one file each: the simulated rig and replay of recordings.
//! Real device adapters (V4L2, ALSA, IIO) join them here.

pub mod replay;
pub mod sim;

pub use replay::ReplayAdapter;
pub use sim::SimAdapter;

/// How fast a non-live source delivers samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// At the pace the timestamps say, like a live sensor (overflow drops the oldest).
    #[default]
    RealTime,
    /// As fast as the consumer takes them: waits for ring space instead of
    /// dropping, so nothing is lost (offline processing, benchmarks).
    Fast,
}

/// Sleeps until `due` in short slices, returning early (false) when `running` turns false.
pub(crate) fn sleep_until(due: std::time::Instant, running: impl Fn() -> bool) -> bool {
    loop {
        if !running() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(std::time::Duration::from_millis(20)));
    }
}

/// Waits (in 100 us naps) until `free()` reports room; false if `running` turned false.
pub(crate) fn wait_for_room(free: impl Fn() -> usize, running: impl Fn() -> bool) -> bool {
    while free() == 0 {
        if !running() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    true
}
