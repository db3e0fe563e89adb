//! The `replay` adapter: plays a recording into rings, at the recorded pace or
//! as fast as the consumer goes (lossless), one stream per recorded modality.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Pace, sleep_until, wait_for_room};
use crate::adapter::{
    AdapterCore, AdapterThread, SampleProducer, SensorAdapter, SensorError, SensorState, StreamInfo,
};
use crate::modality::Modality;
use crate::recording::{McapReader, RecordingError, decode_sample, inspect};
use crate::sample::Sample;

/// Replays an MCAP recording made by edgebind.
pub struct ReplayAdapter {
    path: PathBuf,
    pace: Pace,
    streams: Vec<StreamInfo>,
    thread: AdapterThread,
}

impl ReplayAdapter {
    /// Opens `path` and reads its channels (the whole file is scanned once, so a
    /// damaged file is reported here, before anything runs).
    pub fn new(path: &Path, pace: Pace) -> Result<Self, RecordingError> {
        let info = inspect(path)?;
        if let Some(e) = &info.error {
            return Err(RecordingError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                what: "recording".into(),
                detail: format!("damaged, refusing to replay: {e}"),
            });
        }
        let mut streams: Vec<StreamInfo> = info
            .channels
            .iter()
            .filter_map(|c| {
                let m = c.modality.as_deref()?.parse::<Modality>().ok()?;
                Some(StreamInfo {
                    modality: m,
                    description: format!("replay {} ({})", c.topic, c.schema),
                    rate_hz: c.rate_hz,
                })
            })
            .collect();
        streams.sort_by_key(|s| s.modality);
        streams.dedup_by_key(|s| s.modality);
        Ok(ReplayAdapter {
            path: path.to_path_buf(),
            pace,
            streams,
            thread: AdapterThread::new(AdapterCore::new("replay")),
        })
    }
}

impl SensorAdapter for ReplayAdapter {
    fn name(&self) -> &str {
        "replay"
    }

    fn streams(&self) -> Vec<StreamInfo> {
        self.streams.clone()
    }

    fn start(&mut self, outputs: Vec<SampleProducer>) -> Result<(), SensorError> {
        let path = self.path.clone();
        let pace = self.pace;
        let order: Vec<Modality> = self.streams.iter().map(|s| s.modality).collect();
        let streams = self.streams.clone();
        self.thread.start(&streams, outputs, move |core, mut outs| {
            let fail = |reason: String| core.set_state(SensorState::Down { reason });
            let mut reader = match McapReader::open(&path) {
                Ok(r) => r,
                Err(e) => {
                    fail(e.to_string());
                    return outs;
                }
            };
            let mut scratch = Sample::empty(Modality::Imu);
            let mut clock: Option<(u64, Instant)> = None;
            loop {
                if !core.running() {
                    return outs;
                }
                let m = match reader.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        fail(e.to_string());
                        return outs;
                    }
                };
                let Some(modality) = m.channel.modality else {
                    continue; // ground truth and foreign channels
                };
                let Some(i) = order.iter().position(|o| *o == modality) else {
                    continue;
                };
                if let Err(e) = decode_sample(&path, &m, &mut scratch) {
                    fail(e.to_string());
                    return outs;
                }
                let out = &mut outs[i];
                let go = match pace {
                    Pace::RealTime => {
                        let (t0, w0) = *clock.get_or_insert((scratch.t.mono_ns, Instant::now()));
                        let due = w0 + Duration::from_nanos(scratch.t.mono_ns.saturating_sub(t0));
                        sleep_until(due, || core.running())
                    }
                    Pace::Fast => wait_for_room(|| out.free_len(), || core.running()),
                };
                if !go {
                    return outs;
                }
                out.push_with(|s| s.copy_from(&scratch));
            }
            core.set_state(SensorState::Finished);
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
