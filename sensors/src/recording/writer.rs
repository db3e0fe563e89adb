//! Writing recordings: any rig's samples (and optional ground truth) to MCAP
//! with the `mcap` crate.
//!
//! Layout decisions (read back by [`super::reader`]):
//! * one channel per modality, created on its first sample, topics
//!   [`topic_for`]; channel metadata carries `edgebind.modality` and
//!   `edgebind.pixel_format` / `edgebind.sample_rate`, plus anything the rig adds;
//! * MCAP `log_time` is the sample's **wall-clock** ns (what Foxglove's timeline
//!   shows) and `publish_time` its **monotonic** ns, so both clocks survive the
//!   round trip bit-exactly;
//! * chunks of 4 MiB, uncompressed (compression would add C dependencies and
//!   most of a sim frame is noise), with CRCs and the full summary/index;
//! * a `edgebind.recording` metadata record names the rig and its settings.
//!
//! Nothing here reads the wall clock: a recording of the simulated rig depends
//! only on the samples given, so the same seed gives a byte-identical file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use prost::Message as _;

use super::schema::{self, AUDIO_FORMAT, PbAudioChunk, PbImuSample, PbTimestamp, RawImage};
use crate::modality::Modality;
use crate::sample::{Payload, Sample};

/// Topic of the ground-truth channel.
pub const TRUTH_TOPIC: &str = "/ground_truth";

/// Name of the metadata record describing the recording.
pub const RECORDING_METADATA: &str = "edgebind.recording";

/// The MCAP topic of a modality's channel.
pub fn topic_for(m: Modality) -> &'static str {
    match m {
        Modality::Vision => "/camera/image",
        Modality::Audio => "/audio",
        Modality::Depth => "/depth/image",
        Modality::Thermal => "/thermal/image",
        Modality::Imu => "/imu",
    }
}

/// Errors while writing a recording.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file could not be created or written.
    #[error("cannot write recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The MCAP writer failed.
    #[error("MCAP writer failed on {what}: {source}")]
    Mcap {
        /// What was being written.
        what: String,
        /// The cause.
        source: mcap::McapError,
    },
    /// A sample that cannot be recorded as it is.
    #[error("cannot record {modality} sample at t={t_ns} ns: {detail}")]
    BadSample {
        /// Its modality.
        modality: Modality,
        /// Its time.
        t_ns: u64,
        /// What is wrong.
        detail: String,
    },
}

/// Message counts of a finished recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Messages per topic.
    pub messages: BTreeMap<String, u64>,
}

/// Writes samples to an MCAP file.
pub struct Recorder<W: Write + Seek> {
    writer: mcap::Writer<W>,
    channels: [Option<(u16, u32)>; 5],
    truth: Option<(u16, u32)>,
    schemas: BTreeMap<&'static str, u16>,
    extra_channel_metadata: BTreeMap<Modality, BTreeMap<String, String>>,
    summary: WriteSummary,
    buf: Vec<u8>,
}

impl Recorder<BufWriter<File>> {
    /// Creates `path` and starts a recording described by `info`
    /// (written as the `edgebind.recording` metadata record).
    pub fn create(path: &Path, info: &BTreeMap<String, String>) -> Result<Self, WriteError> {
        let file = File::create(path).map_err(|source| WriteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Recorder::new(BufWriter::with_capacity(1 << 20, file), info)
    }
}

fn mcap_err(what: impl Into<String>) -> impl FnOnce(mcap::McapError) -> WriteError {
    let what = what.into();
    move |source| WriteError::Mcap { what, source }
}

impl<W: Write + Seek> Recorder<W> {
    /// Starts a recording on any seekable writer.
    pub fn new(w: W, info: &BTreeMap<String, String>) -> Result<Self, WriteError> {
        let opts = mcap::WriteOptions::new()
            .compression(None)
            .profile("")
            .library(concat!("edgebind ", env!("CARGO_PKG_VERSION")))
            .chunk_size(Some(4 << 20));
        let mut writer = opts.create(w).map_err(mcap_err("header"))?;
        writer
            .write_metadata(&mcap::records::Metadata {
                name: RECORDING_METADATA.to_string(),
                metadata: info.clone(),
            })
            .map_err(mcap_err("recording metadata"))?;
        Ok(Recorder {
            writer,
            channels: [None; 5],
            truth: None,
            schemas: BTreeMap::new(),
            extra_channel_metadata: BTreeMap::new(),
            summary: WriteSummary::default(),
            buf: Vec::new(),
        })
    }

    /// Adds metadata to the channel of `modality` (for example a depth camera's
    /// intrinsics). Must be called before that modality's first sample.
    pub fn set_channel_metadata(&mut self, modality: Modality, key: &str, value: &str) {
        self.extra_channel_metadata
            .entry(modality)
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    fn schema_id(
        &mut self,
        (name, data): (&'static str, Vec<u8>),
        encoding: &str,
    ) -> Result<u16, WriteError> {
        if let Some(id) = self.schemas.get(name) {
            return Ok(*id);
        }
        let id = self
            .writer
            .add_schema(name, encoding, &data)
            .map_err(mcap_err(format!("schema {name}")))?;
        self.schemas.insert(name, id);
        Ok(id)
    }

    fn channel_for(&mut self, s: &Sample) -> Result<(u16, u32), WriteError> {
        let i = s.modality.index();
        if let Some((id, seq)) = self.channels[i] {
            self.channels[i] = Some((id, seq.wrapping_add(1)));
            return Ok((id, seq));
        }
        let mut meta = self
            .extra_channel_metadata
            .get(&s.modality)
            .cloned()
            .unwrap_or_default();
        meta.insert("edgebind.modality".into(), s.modality.as_str().into());
        let schema = match &s.payload {
            Payload::Frame(f) => {
                meta.insert("edgebind.pixel_format".into(), f.format.as_str().into());
                self.schema_id(schema::raw_image_schema(), "protobuf")?
            }
            Payload::Audio(a) => {
                meta.insert("edgebind.sample_rate".into(), a.sample_rate.to_string());
                meta.insert("edgebind.channels".into(), a.channels.to_string());
                self.schema_id(schema::audio_schema(), "protobuf")?
            }
            Payload::Imu(_) => self.schema_id(schema::imu_schema(), "protobuf")?,
        };
        let topic = topic_for(s.modality);
        let id = self
            .writer
            .add_channel(schema, topic, "protobuf", &meta)
            .map_err(mcap_err(format!("channel {topic}")))?;
        self.channels[i] = Some((id, 1));
        Ok((id, 0))
    }

    /// Records the simulated world up to sim time `until_ns`: every sample,
    /// and each ground-truth span (situations active, JSON on
    /// [`TRUTH_TOPIC`]) written when its start is reached. With `only`, the
    /// other modalities' samples are simulated but not written. `tick(t_ns)`
    /// is called after each sample (for progress).
    pub fn record_sim(
        &mut self,
        world: &mut crate::sim::SimWorld,
        until_ns: u64,
        only: Option<&[Modality]>,
        mut tick: impl FnMut(u64),
    ) -> Result<(), WriteError> {
        let mut truth = world.truth_until(until_ns).into_iter().peekable();
        let mut sample = Sample::empty(Modality::Vision);
        loop {
            let (_, t) = world.peek();
            if t.mono_ns >= until_ns {
                return Ok(());
            }
            while let Some(span) = truth.next_if(|s| s.start_ns <= t.mono_ns) {
                let json = serde_json::json!({
                    "start_ns": span.start_ns,
                    "end_ns": span.end_ns.min(until_ns),
                    "situations": span.situations,
                });
                let at = crate::clock::Timestamp::sim(span.start_ns);
                self.write_truth(&json, at.mono_ns, at.wall_ns)?;
            }
            world.next_into(&mut sample);
            if only.is_none_or(|o| o.contains(&sample.modality)) {
                self.write_sample(&sample)?;
            }
            tick(t.mono_ns);
        }
    }

    /// Appends one sample. Samples should come in time order per modality.
    pub fn write_sample(&mut self, s: &Sample) -> Result<(), WriteError> {
        let bad = |detail: String| WriteError::BadSample {
            modality: s.modality,
            t_ns: s.t.mono_ns,
            detail,
        };
        let ts = Some(PbTimestamp::from_ns(s.t.wall_ns));
        self.buf.clear();
        match &s.payload {
            Payload::Frame(f) => {
                f.validate().map_err(|e| bad(e.to_string()))?;
                if !s.modality.is_frame_stream() {
                    return Err(bad("a frame payload on a non-frame modality".into()));
                }
                // Encoded by hand rather than through `RawImage` to avoid copying the
                // pixels into an owned Vec first; `RawImage::decode` reads it back.
                let msg = RawImage {
                    timestamp: ts,
                    frame_id: s.modality.as_str().to_string(),
                    width: f.width,
                    height: f.height,
                    encoding: f.format.foxglove_encoding().to_string(),
                    step: f.width * f.format.bytes_per_pixel() as u32,
                    data: Vec::new(),
                };
                msg.encode(&mut self.buf).map_err(|e| bad(e.to_string()))?;
                prost::encoding::bytes::encode(6, &f.data, &mut self.buf);
            }
            Payload::Audio(a) => {
                if s.modality != Modality::Audio {
                    return Err(bad("an audio payload on a non-audio modality".into()));
                }
                if a.channels == 0 || a.samples.len() % a.channels as usize != 0 {
                    return Err(bad(format!(
                        "{} samples do not divide into {} channels",
                        a.samples.len(),
                        a.channels
                    )));
                }
                let mut data = Vec::with_capacity(a.samples.len() * 4);
                for v in &a.samples {
                    data.extend_from_slice(&v.to_le_bytes());
                }
                PbAudioChunk {
                    timestamp: ts,
                    sample_rate: a.sample_rate,
                    channels: a.channels as u32,
                    format: AUDIO_FORMAT.to_string(),
                    data,
                }
                .encode(&mut self.buf)
                .map_err(|e| bad(e.to_string()))?;
            }
            Payload::Imu(m) => {
                if s.modality != Modality::Imu {
                    return Err(bad("an IMU payload on a non-IMU modality".into()));
                }
                PbImuSample {
                    timestamp: ts,
                    accel: m.accel.to_vec(),
                    gyro: m.gyro.to_vec(),
                }
                .encode(&mut self.buf)
                .map_err(|e| bad(e.to_string()))?;
            }
        }
        let (channel_id, sequence) = self.channel_for(s)?;
        self.writer
            .write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id,
                    sequence,
                    log_time: s.t.wall_ns,
                    publish_time: s.t.mono_ns,
                },
                &self.buf,
            )
            .map_err(mcap_err(format!("message on {}", topic_for(s.modality))))?;
        *self
            .summary
            .messages
            .entry(topic_for(s.modality).to_string())
            .or_default() += 1;
        Ok(())
    }

    /// Appends a ground-truth message (a JSON object with `start_ns`, `end_ns`,
    /// `situations`), logged at wall-clock `wall_ns` / monotonic `mono_ns`.
    pub fn write_truth(
        &mut self,
        json: &serde_json::Value,
        mono_ns: u64,
        wall_ns: u64,
    ) -> Result<(), WriteError> {
        let (channel_id, sequence) = match self.truth {
            Some((id, seq)) => (id, seq),
            None => {
                let schema = self.schema_id(schema::truth_schema(), "jsonschema")?;
                let mut meta = BTreeMap::new();
                meta.insert("edgebind.role".to_string(), "ground_truth".to_string());
                let id = self
                    .writer
                    .add_channel(schema, TRUTH_TOPIC, "json", &meta)
                    .map_err(mcap_err("channel /ground_truth"))?;
                (id, 0)
            }
        };
        self.truth = Some((channel_id, sequence.wrapping_add(1)));
        let data = serde_json::to_vec(json).map_err(|e| WriteError::Mcap {
            what: "ground truth".into(),
            source: mcap::McapError::Io(std::io::Error::other(e)),
        })?;
        self.writer
            .write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id,
                    sequence,
                    log_time: wall_ns,
                    publish_time: mono_ns,
                },
                &data,
            )
            .map_err(mcap_err("message on /ground_truth"))?;
        *self
            .summary
            .messages
            .entry(TRUTH_TOPIC.to_string())
            .or_default() += 1;
        Ok(())
    }

    /// Writes the summary and footer and flushes. A recording that is not
    /// finished (crash, kill) keeps every complete chunk: the reader reports
    /// where it ends.
    pub fn finish(self) -> Result<WriteSummary, WriteError> {
        let summary = self.summary.clone();
        self.finish_into_inner()?;
        Ok(summary)
    }

    /// Like [`Recorder::finish`], returning the underlying writer.
    pub fn finish_into_inner(mut self) -> Result<W, WriteError> {
        self.writer.finish().map_err(mcap_err("summary"))?;
        let mut inner = self.writer.into_inner();
        inner.flush().map_err(|e| WriteError::Mcap {
            what: "flush".into(),
            source: mcap::McapError::Io(e),
        })?;
        Ok(inner)
    }
}
