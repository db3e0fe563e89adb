//! The microphone through `cpal` (ALSA on Linux): picks the input device by
//! ALSA PCM id or description, opens it at its native rate (or the configured
//! one) in its native channel count, and pushes mono [`AudioChunk`](crate::sample::AudioChunk)s of
//! `chunk_ms` at that rate.
//!
//! ## Why no resampling here
//! The encoder's audio contract (`models/`) resamples each window to its rate
//! (16 kHz for ImageBind) with a kernel that reproduces
//! `torchaudio.functional.resample`, the resampler ImageBind's own loader
//! applies to audio at its recorded rate. Handing models/ the native-rate
//! signal therefore gives the encoder exactly the input it was trained on.
//! Resampling here as well (rubato or any other filter) would filter twice,
//! with a different kernel than training used, cost CPU on the capture path,
//! and make the native signal unavailable to anything else (recordings,
//! other encoders with other rates). Where a device offers the encoder's rate
//! natively, `sample_rate = 16000` makes the models/ step an identity.
//!
//! ## Threads and the ring rules
//! cpal calls back on its own thread with each ALSA period. The callback only
//! converts to f32 and copies into a lock-free SPSC buffer of two seconds
//! (`ringbuf`; if the adapter thread stalled that long, newer samples are
//! refused and counted); it never blocks or allocates. The adapter thread cuts
//! that buffer into chunks, downmixes them to mono (mean of the channels) in
//! place in the ring's recycled sample, and pushes them drop-oldest.
//!
//! ## Timestamps
//! Chunks are stamped by sample count from an anchor: the monotonic time of
//! the oldest unread sample, estimated as now minus the buffered frames over
//! the rate. Consecutive chunks are therefore exactly contiguous, which the
//! windower relies on. The anchor is taken again after an overrun (xrun) and
//! when the count falls more than 50 ms behind the estimate (lost samples, a
//! sound card clock slower than the system's): a forward gap, which the
//! windower zero-fills and counts. Timestamps never go back (a re-anchor
//! starts no earlier than the end of the last chunk): a card clock
//! faster than the system's is not corrected (about 0.2 s per hour at
//! 50 ppm); correcting it needs a drift-tracking resampler.
//!
//! Hot-plug: ALSA reports a vanished device (`DeviceNotAvailable`) through
//! the error callback; the session ends and the supervisor reopens it, by id
//! or description, with backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{ErrorKind, FromSample, SampleFormat, SizedSample, StreamConfig};
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer as _, Observer as _, Producer as _, Split as _};

use super::clock::DeviceClock;
use super::config::MicConfig;
use super::convert::downmix_to_mono;
use super::list::InputDeviceInfo;
use super::supervisor::{DeviceError, DeviceSession, DeviceSource, DeviceStats};
use crate::adapter::SampleProducer;
use crate::modality::Modality;

/// The microphone as a [`DeviceSource`].
pub struct MicSource {
    cfg: MicConfig,
}

impl MicSource {
    /// A source for `cfg` (nothing is opened yet).
    pub fn new(cfg: MicConfig) -> Self {
        MicSource { cfg }
    }
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|i| i.id().to_string()).unwrap_or_default()
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|x| x.name().to_string())
        .unwrap_or_else(|_| device_id(d))
}

/// Every ALSA input device cpal finds.
pub fn list_inputs() -> Result<Vec<InputDeviceInfo>, DeviceError> {
    let host = cpal::default_host();
    let devices = host
        .input_devices()
        .map_err(|e| DeviceError::new(format!("ALSA: cannot list input devices: {e}")))?;
    Ok(devices
        .map(|d| InputDeviceInfo {
            id: device_id(&d),
            name: device_name(&d),
            default_config: d.default_input_config().ok().map(|c| {
                format!(
                    "{} Hz x{} {}",
                    c.sample_rate(),
                    c.channels(),
                    c.sample_format()
                )
            }),
            configs: d
                .supported_input_configs()
                .map(|it| summarize(it.collect()))
                .unwrap_or_default(),
        })
        .collect())
}

/// One line per sample format: its channel and rate ranges (plugin PCMs offer
/// every combination, hundreds of configs).
fn summarize(configs: Vec<cpal::SupportedStreamConfigRange>) -> Vec<String> {
    let mut out: Vec<(SampleFormat, u16, u16, u32, u32)> = Vec::new();
    for c in configs {
        let f = c.sample_format();
        match out.iter_mut().find(|o| o.0 == f) {
            Some(o) => {
                o.1 = o.1.min(c.channels());
                o.2 = o.2.max(c.channels());
                o.3 = o.3.min(c.min_sample_rate());
                o.4 = o.4.max(c.max_sample_rate());
            }
            None => out.push((
                f,
                c.channels(),
                c.channels(),
                c.min_sample_rate(),
                c.max_sample_rate(),
            )),
        }
    }
    out.into_iter()
        .map(|(f, c0, c1, r0, r1)| {
            let ch = if c0 == c1 {
                format!("x{c0}")
            } else {
                format!("x{c0}-{c1}")
            };
            let rate = if r0 == r1 {
                format!("{r0} Hz")
            } else {
                format!("{r0}-{r1} Hz")
            };
            format!("{f} {ch} {rate}")
        })
        .collect()
}

/// Finds the input device: exact PCM id first, then a case-insensitive part of
/// the description or id; `None` is the default input.
fn find_device(spec: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let Some(spec) = spec else {
        return host
            .default_input_device()
            .ok_or_else(|| DeviceError::new("ALSA: no default input device"));
    };
    let all: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| DeviceError::new(format!("ALSA: cannot list input devices: {e}")))?
        .collect();
    if let Some(d) = all.iter().find(|d| device_id(d) == spec) {
        return Ok(d.clone());
    }
    let want = spec.to_lowercase();
    if let Some(d) = all.iter().find(|d| {
        device_name(d).to_lowercase().contains(&want) || device_id(d).to_lowercase().contains(&want)
    }) {
        return Ok(d.clone());
    }
    let have: Vec<String> = all
        .iter()
        .map(|d| format!("{} ({})", device_id(d), device_name(d)))
        .collect();
    Err(DeviceError::new(format!(
        "ALSA: no input device `{spec}` (present: {})",
        if have.is_empty() {
            "none".into()
        } else {
            have.join(", ")
        }
    )))
}

/// Sample formats in order of preference (f32 needs no conversion).
const PREFERRED: [SampleFormat; 7] = [
    SampleFormat::F32,
    SampleFormat::I16,
    SampleFormat::I32,
    SampleFormat::F64,
    SampleFormat::I8,
    SampleFormat::U16,
    SampleFormat::U8,
];

fn choose_config(
    dev: &cpal::Device,
    rate: Option<u32>,
    id: &str,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    let err = |e: cpal::Error| DeviceError::new(format!("ALSA {id}: {e}"));
    let default = dev.default_input_config().map_err(err)?;
    let rate = rate.unwrap_or(default.sample_rate());
    let ranges: Vec<_> = dev.supported_input_configs().map_err(err)?.collect();
    let fits = |f: SampleFormat| {
        ranges
            .iter()
            .filter(|c| {
                c.sample_format() == f && c.min_sample_rate() <= rate && rate <= c.max_sample_rate()
            })
            .max_by_key(|c| u16::from(c.channels() == default.channels()))
    };
    for f in PREFERRED {
        if let Some(c) = fits(f) {
            let c = c.with_sample_rate(rate);
            return Ok((c.config(), f));
        }
    }
    let offered: Vec<String> = ranges
        .iter()
        .map(|c| {
            format!(
                "{} x{} {}-{} Hz",
                c.sample_format(),
                c.channels(),
                c.min_sample_rate(),
                c.max_sample_rate()
            )
        })
        .collect();
    Err(DeviceError::new(format!(
        "ALSA {id}: no supported sample format at {rate} Hz (offers: {})",
        offered.join(", ")
    )))
}

/// State shared with cpal's callback thread.
#[derive(Default)]
struct Shared {
    /// A fatal stream error (device gone).
    fatal: Mutex<Option<String>>,
    /// Buffer overruns (ALSA xruns and our own full buffer).
    xruns: AtomicU64,
    /// Samples refused because our buffer was full.
    refused: AtomicU64,
}

fn build<T>(
    dev: &cpal::Device,
    config: &StreamConfig,
    mut prod: ringbuf::HeapProd<f32>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let on_data = {
        let shared = shared.clone();
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let mut n = 0;
            for v in data {
                if prod.try_push(f32::from_sample_(*v)).is_err() {
                    break;
                }
                n += 1;
            }
            if n < data.len() {
                shared
                    .refused
                    .fetch_add((data.len() - n) as u64, Ordering::AcqRel);
                shared.xruns.fetch_add(1, Ordering::AcqRel);
            }
        }
    };
    let on_error = move |e: cpal::Error| match e.kind() {
        ErrorKind::Xrun => {
            shared.xruns.fetch_add(1, Ordering::AcqRel);
        }
        ErrorKind::DeviceNotAvailable
        | ErrorKind::StreamInvalidated
        | ErrorKind::HostUnavailable => {
            if let Ok(mut g) = shared.fatal.lock() {
                g.get_or_insert_with(|| e.to_string());
            }
        }
        _ => {}
    };
    dev.build_input_stream::<T, _, _>(*config, on_data, on_error, Some(Duration::from_secs(2)))
}

impl DeviceSource for MicSource {
    fn open(&mut self, stats: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError> {
        let dev = find_device(self.cfg.device.as_deref())?;
        let id = device_id(&dev);
        let (config, format) = choose_config(&dev, self.cfg.sample_rate, &id)?;
        let rate = config.sample_rate;
        let channels = config.channels;
        if rate == 0 || channels == 0 {
            return Err(DeviceError::new(format!(
                "ALSA {id}: device reports {rate} Hz x{channels}"
            )));
        }
        let capacity = rate as usize * channels as usize * 2;
        let (prod, cons) = HeapRb::<f32>::new(capacity).split();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let stream = match format {
            SampleFormat::F32 => build::<f32>(&dev, &config, prod, sh),
            SampleFormat::I16 => build::<i16>(&dev, &config, prod, sh),
            SampleFormat::I32 => build::<i32>(&dev, &config, prod, sh),
            SampleFormat::F64 => build::<f64>(&dev, &config, prod, sh),
            SampleFormat::I8 => build::<i8>(&dev, &config, prod, sh),
            SampleFormat::U16 => build::<u16>(&dev, &config, prod, sh),
            _ => build::<u8>(&dev, &config, prod, sh),
        }
        .map_err(|e| DeviceError::new(format!("ALSA {id}: cannot open input stream: {e}")))?;
        stream
            .play()
            .map_err(|e| DeviceError::new(format!("ALSA {id}: cannot start capture: {e}")))?;
        let chunk_frames = (rate as u64 * self.cfg.chunk_ms as u64 / 1000).max(1) as usize;
        stats.set_detail(format!(
            "ALSA {id} \"{}\" {rate} Hz x{channels} {format} -> mono chunks of {chunk_frames} frames",
            device_name(&dev)
        ));
        Ok(Box::new(MicSession {
            _stream: stream,
            cons,
            shared,
            id,
            rate,
            channels,
            chunk_frames,
            scratch: Vec::with_capacity(chunk_frames * channels as usize),
            anchor: None,
            next_ns: 0,
            xruns_seen: 0,
            refused_seen: 0,
            clock: DeviceClock,
        }))
    }
}

struct MicSession {
    _stream: cpal::Stream,
    cons: ringbuf::HeapCons<f32>,
    shared: Arc<Shared>,
    id: String,
    rate: u32,
    channels: u16,
    chunk_frames: usize,
    scratch: Vec<f32>,
    /// Monotonic ns of a sample and frames pushed since it.
    anchor: Option<(u64, u64)>,
    /// End of the last chunk pushed (monotonic ns): no chunk starts before
    /// it, re-anchored or not.
    next_ns: u64,
    xruns_seen: u64,
    refused_seen: u64,
    clock: DeviceClock,
}

/// Largest gap between counted and measured time before re-anchoring.
const RESYNC_NS: u64 = 50_000_000;

impl DeviceSession for MicSession {
    fn pump(
        &mut self,
        outs: &mut [SampleProducer],
        max_wait: Duration,
        stats: &DeviceStats,
    ) -> Result<usize, DeviceError> {
        if let Some(e) = self.shared.fatal.lock().ok().and_then(|g| g.clone()) {
            return Err(DeviceError::new(format!("ALSA {}: {e}", self.id)));
        }
        let ch = self.channels as usize;
        let need = self.chunk_frames * ch;
        let due = Instant::now() + max_wait;
        while self.cons.occupied_len() < need && Instant::now() < due {
            std::thread::sleep(Duration::from_millis(2));
        }
        let xruns = self.shared.xruns.load(Ordering::Acquire);
        if xruns != self.xruns_seen {
            self.xruns_seen = xruns;
            self.anchor = None; // discontinuity: anchor again
            let refused = self.shared.refused.load(Ordering::Acquire);
            stats.device_dropped((refused - self.refused_seen) / ch as u64);
            self.refused_seen = refused;
            stats.bad_sample(format!("ALSA {}: overrun (samples lost)", self.id));
        }
        let ns_per_frame = 1e9 / self.rate as f64;
        let mut pushed = 0;
        while self.cons.occupied_len() >= need {
            let buffered = (self.cons.occupied_len() / ch) as f64;
            let measured = self
                .clock
                .mono_now_ns()
                .saturating_sub((buffered * ns_per_frame) as u64);
            let counted = self
                .anchor
                .map(|(a, n)| a + (n as u128 * 1_000_000_000 / self.rate as u128) as u64);
            // Forward only: a gap (lost samples, a slow device clock) re-anchors at
            // the measured time; a count ahead of the measurement (a fast device
            // clock, a source faster than real time) keeps counting, so
            // timestamps never go back and never overlap.
            // A re-anchor (first chunk, overrun, gap) never goes back before the
            // end of the last chunk: after an overrun of a source faster than
            // real time, the measured time can lie behind the count.
            let t_ns = match counted {
                Some(c) if measured <= c.saturating_add(RESYNC_NS) => c,
                _ => {
                    let t = measured.max(self.next_ns);
                    self.anchor = Some((t, 0));
                    t
                }
            };
            self.scratch.resize(need, 0.0);
            let got = self.cons.pop_slice(&mut self.scratch);
            self.scratch.truncate(got - got % ch);
            let t = self.clock.at_mono(t_ns);
            let (rate, scratch) = (self.rate, &self.scratch);
            let channels = self.channels;
            let mut res = Ok(());
            outs[0].push_with(|s| {
                s.modality = Modality::Audio;
                s.t = t;
                let a = s.audio_mut();
                a.sample_rate = rate;
                a.channels = 1;
                res = downmix_to_mono(scratch, channels, &mut a.samples);
            });
            if let Err(e) = res {
                stats.bad_sample(format!("ALSA {}: {e}", self.id));
            }
            if let Some((_, n)) = &mut self.anchor {
                *n += (got / ch) as u64;
            }
            self.next_ns = t_ns + ((got / ch) as u128 * 1_000_000_000 / self.rate as u128) as u64;
            pushed += 1;
        }
        Ok(pushed)
    }
}
