//! The supervisor every real device adapter runs on: one thread that opens the
//! device, pumps its data into the rings, and when the device fails or
//! disappears marks the adapter `Down { reason }`, closes it, waits (exponential
//! backoff) and opens it again, on the same rings, until it is back (`Up`).
//!
//! A device is a [`DeviceSource`] (its configuration; `open` finds and opens
//! it, and is called again for every reconnect, so a device found by name is
//! found again after a replug renumbers it) that yields a [`DeviceSession`]
//! (the open device; `pump` waits a bounded time for data and pushes what came).
//! Opening and pumping happen on the adapter thread, so a session need not be
//! `Send` (cpal streams are not everywhere).
//!
//! Failures that end a session: an error from `pump`, no data for
//! `stall` (a hung USB device), or a panic inside device code (third-party
//! bindings have `unwrap`s): the panic is caught and becomes the `Down` reason,
//! and the rings survive. The ring rules hold throughout: the thread never waits
//! for the consumer, overflow drops the oldest sample and counts it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backoff::Backoff;
use super::config::ReconnectConfig;
use crate::adapter::{
    AdapterCore, AdapterThread, SampleProducer, SensorAdapter, SensorError, SensorState, StreamInfo,
};

/// An error of a device: what failed, in words for the status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

impl DeviceError {
    /// An error with `detail`.
    pub fn new(detail: impl Into<String>) -> Self {
        DeviceError(detail.into())
    }
}

/// A device that can be opened (again and again).
pub trait DeviceSource: Send + 'static {
    /// Finds and opens the device, ready to deliver data. Called on the adapter
    /// thread, once per (re)connection.
    fn open(&mut self, stats: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError>;
}

/// An open device.
pub trait DeviceSession {
    /// Waits at most about `max_wait` for data, pushes what arrived into `outs`
    /// (one producer per stream, in the adapter's stream order) and returns how
    /// many samples it pushed. An error ends the session (the device is closed
    /// and reopened after a backoff). Frames that fail to decode are counted in
    /// `stats` and skipped, not errors.
    fn pump(
        &mut self,
        outs: &mut [SampleProducer],
        max_wait: Duration,
        stats: &DeviceStats,
    ) -> Result<usize, DeviceError>;
}

/// Counters of a supervised device, readable from any thread.
#[derive(Debug, Default)]
pub struct DeviceStats {
    opens: AtomicU64,
    failures: AtomicU64,
    bad_samples: AtomicU64,
    device_dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
    detail: Mutex<Option<String>>,
}

/// A snapshot of [`DeviceStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStatsSnapshot {
    /// Successful opens (1 + reconnects).
    pub opens: u64,
    /// Failed opens and ended sessions.
    pub failures: u64,
    /// Samples that arrived but could not be decoded (wrong size, corrupt JPEG), skipped.
    pub bad_samples: u64,
    /// Samples the device or driver lost before they reached us (frame sequence
    /// gaps, audio buffer overruns), when it says so.
    pub device_dropped: u64,
    /// The last failure or bad sample, in words.
    pub last_error: Option<String>,
    /// What the open device negotiated (path, format, rate).
    pub detail: Option<String>,
}

impl DeviceStats {
    /// Counts a sample that could not be decoded, and why.
    pub fn bad_sample(&self, why: impl std::fmt::Display) {
        self.bad_samples.fetch_add(1, Ordering::AcqRel);
        self.set_error(why.to_string());
    }

    /// Counts `n` samples lost by the device or driver.
    pub fn device_dropped(&self, n: u64) {
        self.device_dropped.fetch_add(n, Ordering::AcqRel);
    }

    /// Records what the open device negotiated.
    pub fn set_detail(&self, detail: String) {
        if let Ok(mut g) = self.detail.lock() {
            *g = Some(detail);
        }
    }

    fn set_error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e);
        }
    }

    /// A snapshot.
    pub fn snapshot(&self) -> DeviceStatsSnapshot {
        DeviceStatsSnapshot {
            opens: self.opens.load(Ordering::Acquire),
            failures: self.failures.load(Ordering::Acquire),
            bad_samples: self.bad_samples.load(Ordering::Acquire),
            device_dropped: self.device_dropped.load(Ordering::Acquire),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
            detail: self.detail.lock().ok().and_then(|g| g.clone()),
        }
    }
}

/// How long one `pump` may wait, so a stop is noticed quickly.
const PUMP_WAIT: Duration = Duration::from_millis(100);

fn panic_text(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A [`DeviceSource`] run as a [`SensorAdapter`] with reconnect and backoff.
pub struct SupervisedAdapter<S: DeviceSource> {
    name: String,
    streams: Vec<StreamInfo>,
    policy: ReconnectConfig,
    source: Arc<Mutex<Option<S>>>,
    stats: Arc<DeviceStats>,
    thread: AdapterThread,
}

impl<S: DeviceSource> SupervisedAdapter<S> {
    /// An adapter named `name` with `streams`, running `source` with the backoff `policy`.
    pub fn new(name: &str, streams: Vec<StreamInfo>, source: S, policy: ReconnectConfig) -> Self {
        SupervisedAdapter {
            name: name.to_string(),
            streams,
            policy,
            source: Arc::new(Mutex::new(Some(source))),
            stats: Arc::new(DeviceStats::default()),
            thread: AdapterThread::new(AdapterCore::new(name)),
        }
    }

    /// The device counters (opens, failures, bad samples, last error).
    pub fn stats(&self) -> Arc<DeviceStats> {
        self.stats.clone()
    }
}

/// What a device adapter adds to [`SensorAdapter`]: its device counters.
pub trait DeviceAdapter: SensorAdapter {
    /// A snapshot of the device counters.
    fn device_stats(&self) -> DeviceStatsSnapshot;
}

impl<S: DeviceSource> DeviceAdapter for SupervisedAdapter<S> {
    fn device_stats(&self) -> DeviceStatsSnapshot {
        self.stats.snapshot()
    }
}

/// Sleeps `d` in short slices; false if `core` stopped meanwhile.
fn nap(core: &AdapterCore, d: Duration) -> bool {
    let due = Instant::now() + d;
    crate::adapters::sleep_until(due, || core.running())
}

fn run_supervised<S: DeviceSource>(
    core: Arc<AdapterCore>,
    mut outs: Vec<SampleProducer>,
    source: &mut S,
    stats: &DeviceStats,
    policy: ReconnectConfig,
) -> Vec<SampleProducer> {
    let mut backoff = Backoff::new(policy.initial(), policy.max());
    let stall = policy.stall();
    while core.running() {
        let reason = match catch_unwind(AssertUnwindSafe(|| source.open(stats))) {
            Err(p) => format!("device code panicked while opening: {}", panic_text(&*p)),
            Ok(Err(e)) => e.0,
            Ok(Ok(mut session)) => {
                stats.opens.fetch_add(1, Ordering::AcqRel);
                core.set_state(SensorState::Up);
                let mut last_data = Instant::now();
                let ended = loop {
                    if !core.running() {
                        break None;
                    }
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        session.pump(&mut outs, PUMP_WAIT, stats)
                    }));
                    match r {
                        Ok(Ok(0)) => {
                            if last_data.elapsed() >= stall {
                                break Some(format!(
                                    "no data for {:.1} s",
                                    last_data.elapsed().as_secs_f64()
                                ));
                            }
                        }
                        Ok(Ok(_)) => {
                            last_data = Instant::now();
                            if backoff.attempts() > 0 {
                                backoff.reset();
                            }
                        }
                        Ok(Err(e)) => break Some(e.0),
                        Err(p) => break Some(format!("device code panicked: {}", panic_text(&*p))),
                    }
                };
                // Closing may run third-party Drop code that panics (v4l on a vanished device).
                let closed = catch_unwind(AssertUnwindSafe(move || drop(session)));
                match (ended, closed) {
                    (None, _) => break,
                    (Some(r), Ok(())) => r,
                    (Some(r), Err(p)) => format!("{r}; closing it panicked: {}", panic_text(&*p)),
                }
            }
        };
        stats.failures.fetch_add(1, Ordering::AcqRel);
        let delay = backoff.next_delay();
        stats.set_error(reason.clone());
        core.set_state(SensorState::Down {
            reason: format!(
                "{reason}; retry {} in {:.1} s",
                backoff.attempts(),
                delay.as_secs_f64()
            ),
        });
        if !nap(&core, delay) {
            break;
        }
    }
    outs
}

impl<S: DeviceSource> SensorAdapter for SupervisedAdapter<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn streams(&self) -> Vec<StreamInfo> {
        self.streams.clone()
    }

    fn start(&mut self, outputs: Vec<SampleProducer>) -> Result<(), SensorError> {
        let slot = self.source.clone();
        let stats = self.stats.clone();
        let policy = self.policy;
        let streams = self.streams.clone();
        self.thread.start(&streams, outputs, move |core, outs| {
            let Some(mut source) = slot.lock().ok().and_then(|mut g| g.take()) else {
                core.set_state(SensorState::Down {
                    reason: "device source unavailable (a previous thread did not return it)"
                        .into(),
                });
                return outs;
            };
            let outs = run_supervised(core, outs, &mut source, &stats, policy);
            if let Ok(mut g) = slot.lock() {
                *g = Some(source);
            }
            outs
        })
    }

    fn thread(&self) -> &AdapterThread {
        &self.thread
    }

    fn thread_mut(&mut self) -> &mut AdapterThread {
        &mut self.thread
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modality::Modality;
    use crate::sample::{ImuSample, Payload, Sample};
    use std::sync::atomic::AtomicBool;

    /// A test double of a device: fails to open `fail_opens` times, then
    /// delivers `per_session` IMU samples per session and then "disappears"
    /// (pump error), `sessions` times; after that it delivers forever. Samples
    /// carry a running counter so the test can check nothing was reordered.
    struct FlakySource {
        fail_opens: u32,
        per_session: u64,
        sessions: u32,
        counter: Arc<AtomicU64>,
        open_log: Arc<Mutex<Vec<Instant>>>,
        panic_on_open: Arc<AtomicBool>,
    }

    struct FlakySession {
        left: Option<u64>,
        counter: Arc<AtomicU64>,
    }

    impl DeviceSource for FlakySource {
        fn open(&mut self, _stats: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError> {
            self.open_log.lock().unwrap().push(Instant::now());
            if self.panic_on_open.swap(false, Ordering::AcqRel) {
                panic!("binding bug");
            }
            if self.fail_opens > 0 {
                self.fail_opens -= 1;
                return Err(DeviceError::new("/dev/fake0: No such device"));
            }
            let left = if self.sessions > 0 {
                self.sessions -= 1;
                Some(self.per_session)
            } else {
                None
            };
            Ok(Box::new(FlakySession {
                left,
                counter: self.counter.clone(),
            }))
        }
    }

    impl DeviceSession for FlakySession {
        fn pump(
            &mut self,
            outs: &mut [SampleProducer],
            _max_wait: Duration,
            _stats: &DeviceStats,
        ) -> Result<usize, DeviceError> {
            std::thread::sleep(Duration::from_millis(1));
            if self.left == Some(0) {
                return Err(DeviceError::new("VIDIOC_DQBUF: No such device (unplugged)"));
            }
            if let Some(l) = &mut self.left {
                *l -= 1;
            }
            let n = self.counter.fetch_add(1, Ordering::AcqRel);
            outs[0].push_with(|s| {
                s.modality = Modality::Imu;
                s.t = crate::clock::Timestamp::sim(n);
                s.payload = Payload::Imu(ImuSample {
                    accel: [n as f32, 0.0, 0.0],
                    gyro: [0.0; 3],
                });
            });
            Ok(1)
        }
    }

    fn policy() -> ReconnectConfig {
        ReconnectConfig {
            initial_s: 0.02,
            max_s: 0.08,
            stall_s: 0.5,
        }
    }

    fn imu_stream() -> Vec<StreamInfo> {
        vec![StreamInfo {
            modality: Modality::Imu,
            description: "fake".into(),
            rate_hz: 1000.0,
        }]
    }

    fn wait_for(what: &str, secs: f64, mut cond: impl FnMut() -> bool) {
        let due = Instant::now() + Duration::from_secs_f64(secs);
        while !cond() {
            assert!(Instant::now() < due, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn fails_then_comes_back_with_backoff_on_the_same_ring() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let src = FlakySource {
            fail_opens: 4,
            per_session: 5,
            sessions: 2,
            counter: Arc::new(AtomicU64::new(0)),
            open_log: log.clone(),
            panic_on_open: Arc::new(AtomicBool::new(false)),
        };
        let mut a = SupervisedAdapter::new("fake", imu_stream(), src, policy());
        let (p, mut c) = crate::ring::channel(4096, || Sample::empty(Modality::Imu));
        a.start(vec![p]).unwrap();
        // While the opens fail, the adapter is Down with the device's reason.
        wait_for("down", 2.0, || {
            matches!(a.health().state, SensorState::Down { .. })
        });
        match a.health().state {
            SensorState::Down { reason } => {
                assert!(
                    reason.contains("No such device") && reason.contains("retry"),
                    "{reason}"
                )
            }
            s => panic!("{s:?}"),
        }
        // It comes back, loses the device twice more, and comes back each time.
        let mut got = Vec::new();
        wait_for("30 samples", 10.0, || {
            while let Some(v) = c.pop_with(|s| s.imu().unwrap().accel[0] as u64) {
                got.push(v);
            }
            got.len() >= 30
        });
        assert_eq!(a.health().state, SensorState::Up);
        a.stop().unwrap();
        assert_eq!(a.health().state, SensorState::Stopped);
        // Every sample arrived once and in order across three sessions on one ring.
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
        assert_eq!(got[0], 0);
        let st = a.device_stats();
        assert_eq!(st.opens, 3);
        assert_eq!(st.failures, 4 + 2);
        assert!(st.last_error.unwrap().contains("unplugged"));
        // Backoff: the four failed opens were spaced 20, 40, 80, 80 ms (the ceiling);
        // after the device delivered, the delay went back to 20 ms.
        let t = log.lock().unwrap().clone();
        let gaps: Vec<f64> = t
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
            .collect();
        for (g, want) in gaps.iter().zip([20.0, 40.0, 80.0, 80.0, 20.0, 20.0]) {
            assert!(*g >= want - 1.0 && *g < want + 60.0, "gaps {gaps:?}");
        }
        let k = c.counters();
        assert_eq!(k.dropped, 0);
        assert_eq!(
            a.health().starts,
            1,
            "reconnects happen inside one adapter thread"
        );
    }

    #[test]
    fn a_panic_in_device_code_is_a_down_reason_and_the_ring_survives() {
        let panic_flag = Arc::new(AtomicBool::new(true));
        let src = FlakySource {
            fail_opens: 0,
            per_session: 0,
            sessions: 0,
            counter: Arc::new(AtomicU64::new(100)),
            open_log: Arc::new(Mutex::new(Vec::new())),
            panic_on_open: panic_flag.clone(),
        };
        let mut a = SupervisedAdapter::new("fake", imu_stream(), src, policy());
        let (p, mut c) = crate::ring::channel(64, || Sample::empty(Modality::Imu));
        a.start(vec![p]).unwrap();
        let mut first = None;
        wait_for("a sample after the panic", 5.0, || {
            first = c.pop_with(|s| s.imu().unwrap().accel[0]);
            first.is_some()
        });
        assert_eq!(first, Some(100.0));
        let st = a.device_stats();
        assert_eq!((st.opens, st.failures), (1, 1));
        assert!(
            st.last_error
                .unwrap()
                .contains("panicked while opening: binding bug")
        );
        // An explicit reconnect (the trait's) restarts the thread on the same ring.
        a.reconnect().unwrap();
        assert_eq!(a.health().starts, 2);
        wait_for("samples after reconnect", 5.0, || {
            c.pop_with(|_| ()).is_some()
        });
        a.stop().unwrap();
    }

    #[test]
    fn a_silent_device_counts_as_gone_after_the_stall_time() {
        struct Silent;
        struct SilentSession;
        impl DeviceSource for Silent {
            fn open(&mut self, _: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError> {
                Ok(Box::new(SilentSession))
            }
        }
        impl DeviceSession for SilentSession {
            fn pump(
                &mut self,
                _: &mut [SampleProducer],
                w: Duration,
                _: &DeviceStats,
            ) -> Result<usize, DeviceError> {
                std::thread::sleep(w.min(Duration::from_millis(10)));
                Ok(0)
            }
        }
        let pol = ReconnectConfig {
            initial_s: 0.01,
            max_s: 0.01,
            stall_s: 0.05,
        };
        let mut a = SupervisedAdapter::new("silent", imu_stream(), Silent, pol);
        let (p, _c) = crate::ring::channel(4, || Sample::empty(Modality::Imu));
        a.start(vec![p]).unwrap();
        wait_for("stall", 3.0, || a.device_stats().failures >= 2);
        let e = a.device_stats().last_error.unwrap();
        assert!(e.starts_with("no data for"), "{e}");
        a.stop().unwrap();
    }
}
