//! Reading recordings: a streaming MCAP reader written for robustness.
//!
//! Why our own reader rather than the `mcap` crate's: it must never panic or
//! allocate what a corrupt length field claims, and every error must name the
//! **byte offset** and, where one is known, the **channel** — things a replay
//! user needs to decide what to do with a damaged file. It reads the MCAP
//! format as specified (records of `opcode u8, length u64 LE, body`; chunks of
//! inner records; uncompressed chunks with CRC-32), streaming, one chunk in
//! memory at a time.
//!
//! Damage handling: every message before the damage is delivered; the damage
//! itself is one error, after which the reader ends. A file cut off anywhere
//! (a crash while recording) yields its complete messages and then a
//! [`RecordingError::Truncated`]. A chunk whose CRC fails is not delivered.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use prost::Message as _;

use super::schema::{AUDIO_FORMAT, PbAudioChunk, PbImuSample, RawImage};
use crate::clock::Timestamp;
use crate::modality::Modality;
use crate::sample::{ImuSample, Payload, PixelFormat, Sample};

/// The 8 bytes every MCAP file starts and ends with.
pub const MAGIC: [u8; 8] = [0x89, b'M', b'C', b'A', b'P', b'0', b'\r', b'\n'];

/// Largest record accepted (a corrupt length beyond this is an error, never an allocation).
const MAX_RECORD: u64 = 1 << 30;

const OP_HEADER: u8 = 0x01;
const OP_FOOTER: u8 = 0x02;
const OP_SCHEMA: u8 = 0x03;
const OP_CHANNEL: u8 = 0x04;
const OP_MESSAGE: u8 = 0x05;
const OP_CHUNK: u8 = 0x06;
const OP_METADATA: u8 = 0x0C;
const OP_DATA_END: u8 = 0x0F;

/// Errors of reading a recording. Each names the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not start with the MCAP magic.
    #[error("{path}: not an MCAP file (first bytes {found:02x?})")]
    NotMcap {
        /// The file.
        path: PathBuf,
        /// What was there.
        found: Vec<u8>,
    },
    /// The file ends early.
    #[error("{path}: truncated at byte offset {offset}: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Offset of the record that is cut off.
        offset: u64,
        /// What was being read (names the channel where known).
        what: String,
    },
    /// A record that makes no sense.
    #[error("{path}: corrupt data at byte offset {offset} ({what}): {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the bad record.
        offset: u64,
        /// What was being read (names the channel where known).
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A valid record this reader cannot handle.
    #[error("{path}: unsupported at byte offset {offset}: {detail}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// What is unsupported.
        detail: String,
    },
    /// A message whose payload does not decode to a sample.
    #[error("{path}: message on channel {topic} at byte offset {offset}: {detail}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Offset of the message record.
        offset: u64,
        /// The channel.
        topic: String,
        /// What is wrong.
        detail: String,
    },
}

impl RecordingError {
    /// The byte offset the error refers to, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            RecordingError::Truncated { offset, .. }
            | RecordingError::Corrupt { offset, .. }
            | RecordingError::Unsupported { offset, .. }
            | RecordingError::Decode { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

/// A channel of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// MCAP channel id.
    pub id: u16,
    /// Topic, e.g. `/camera/image`.
    pub topic: String,
    /// Schema name, e.g. `foxglove.RawImage`.
    pub schema_name: String,
    /// Message encoding, e.g. `protobuf`.
    pub message_encoding: String,
    /// Channel metadata.
    pub metadata: BTreeMap<String, String>,
    /// The modality, from `edgebind.modality` metadata; `None` for ground truth
    /// and foreign channels.
    pub modality: Option<Modality>,
}

/// A message, borrowed from the reader until the next call.
#[derive(Debug)]
pub struct MessageRef<'a> {
    /// Its channel.
    pub channel: &'a ChannelInfo,
    /// Per-channel sequence number.
    pub sequence: u32,
    /// Wall-clock ns (see the writer's layout notes).
    pub log_time: u64,
    /// Monotonic ns.
    pub publish_time: u64,
    /// Payload bytes.
    pub data: &'a [u8],
    /// Byte offset of the message record in the file.
    pub offset: u64,
}

enum Phase {
    Data,
    Summary,
    Done,
}

/// Streaming reader of an MCAP file.
pub struct McapReader<R: Read> {
    src: R,
    path: PathBuf,
    pos: u64,
    len: Option<u64>,
    phase: Phase,
    /// Current chunk's records, and where they sit in the file.
    chunk: Vec<u8>,
    chunk_at: usize,
    chunk_base: u64,
    /// Set when the current chunk was cut off by the end of the file.
    chunk_cut: Option<u64>,
    body: Vec<u8>,
    channels: BTreeMap<u16, ChannelInfo>,
    schemas: BTreeMap<u16, String>,
    metadata: Vec<(String, BTreeMap<String, String>)>,
}

impl McapReader<BufReader<File>> {
    /// Opens a recording.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        McapReader::new(BufReader::with_capacity(1 << 20, file), path, Some(len))
    }
}

/// Little-endian field cursor over a record body.
struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(b: &'a [u8]) -> Self {
        Fields { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() - self.at < n {
            return Err(format!(
                "field of {n} bytes at +{} overruns the record ({} bytes)",
                self.at,
                self.b.len()
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    fn map(&mut self) -> Result<BTreeMap<String, String>, String> {
        let n = self.u32()? as usize;
        let inner = self.take(n)?;
        let mut f = Fields::new(inner);
        let mut m = BTreeMap::new();
        while f.at < inner.len() {
            let k = f.string()?;
            let v = f.string()?;
            m.insert(k, v);
        }
        Ok(m)
    }
}

fn op_name(op: u8) -> &'static str {
    match op {
        OP_HEADER => "header record",
        OP_FOOTER => "footer record",
        OP_SCHEMA => "schema record",
        OP_CHANNEL => "channel record",
        OP_MESSAGE => "message record",
        OP_CHUNK => "chunk record",
        OP_METADATA => "metadata record",
        OP_DATA_END => "data-end record",
        _ => "record",
    }
}

impl<R: Read> McapReader<R> {
    /// Reads from any byte stream; `path` only labels errors; `len` (the total
    /// size, if known) lets truncation be reported before reading.
    pub fn new(mut src: R, path: &Path, len: Option<u64>) -> Result<Self, RecordingError> {
        let mut magic = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match src.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RecordingError::Io {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        if got < 8 || magic != MAGIC {
            return Err(RecordingError::NotMcap {
                path: path.to_path_buf(),
                found: magic[..got].to_vec(),
            });
        }
        Ok(McapReader {
            src,
            path: path.to_path_buf(),
            pos: 8,
            len,
            phase: Phase::Data,
            chunk: Vec::new(),
            chunk_at: 0,
            chunk_base: 0,
            chunk_cut: None,
            body: Vec::new(),
            channels: BTreeMap::new(),
            schemas: BTreeMap::new(),
            metadata: Vec::new(),
        })
    }

    /// Channels seen so far (all of them once the file has been read).
    pub fn channels(&self) -> &BTreeMap<u16, ChannelInfo> {
        &self.channels
    }

    /// Metadata records seen so far: (name, key/values).
    pub fn metadata(&self) -> &[(String, BTreeMap<String, String>)] {
        &self.metadata
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn truncated(&mut self, offset: u64, what: impl Into<String>) -> RecordingError {
        self.phase = Phase::Done;
        RecordingError::Truncated {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    fn corrupt(
        &mut self,
        offset: u64,
        what: impl Into<String>,
        detail: impl Into<String>,
    ) -> RecordingError {
        self.phase = Phase::Done;
        RecordingError::Corrupt {
            path: self.path.clone(),
            offset,
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Reads up to `n` bytes into `self.body`; returns how many arrived.
    fn read_body(&mut self, n: u64) -> Result<usize, RecordingError> {
        self.body.clear();
        let mut limited = (&mut self.src).take(n);
        let got = limited
            .read_to_end(&mut self.body)
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.pos += got as u64;
        Ok(got)
    }

    fn topic_of(&self, channel_id: u16) -> String {
        self.channels
            .get(&channel_id)
            .map(|c| c.topic.clone())
            .unwrap_or_else(|| format!("(unknown channel id {channel_id})"))
    }

    /// Registers a schema, channel or metadata record.
    fn register(
        &mut self,
        op: u8,
        body_is_chunk: bool,
        start: usize,
        end: usize,
        offset: u64,
    ) -> Result<(), RecordingError> {
        let parsed: Result<(), String> = {
            let src = if body_is_chunk {
                &self.chunk[start..end]
            } else {
                &self.body[start..end]
            };
            let mut f = Fields::new(src);
            match op {
                OP_SCHEMA => (|| {
                    let id = f.u16()?;
                    let name = f.string()?;
                    let _encoding = f.string()?;
                    self.schemas.insert(id, name);
                    Ok(())
                })(),
                OP_CHANNEL => (|| {
                    let id = f.u16()?;
                    let schema_id = f.u16()?;
                    let topic = f.string()?;
                    let message_encoding = f.string()?;
                    let metadata = f.map()?;
                    let modality = metadata
                        .get("edgebind.modality")
                        .and_then(|m| m.parse::<Modality>().ok());
                    let schema_name = self.schemas.get(&schema_id).cloned().unwrap_or_default();
                    self.channels.insert(
                        id,
                        ChannelInfo {
                            id,
                            topic,
                            schema_name,
                            message_encoding,
                            metadata,
                            modality,
                        },
                    );
                    Ok(())
                })(),
                OP_METADATA => (|| {
                    let name = f.string()?;
                    let map = f.map()?;
                    self.metadata.push((name, map));
                    Ok(())
                })(),
                _ => Ok(()),
            }
        };
        parsed.map_err(|d| self.corrupt(offset, op_name(op), d))
    }

    /// The next message, or `None` at the end of the file. After an error the
    /// reader is finished and returns `None`.
    pub fn next_message(&mut self) -> Result<Option<MessageRef<'_>>, RecordingError> {
        loop {
            if self.chunk_at < self.chunk.len() || self.chunk_cut.is_some() {
                match self.next_in_chunk()? {
                    Some((start, end, offset)) => {
                        return self.message_at(true, start, end, offset).map(Some);
                    }
                    None => continue,
                }
            }
            match self.phase {
                Phase::Done => return Ok(None),
                Phase::Data | Phase::Summary => {}
            }
            let offset = self.pos;
            let mut head = [0u8; 9];
            let got = self.read_body(9)?;
            head[..got].copy_from_slice(&self.body[..got]);
            if got == 0 {
                let what = match self.phase {
                    Phase::Data => {
                        "the file ends before its data-end record (recording was cut off)"
                    }
                    _ => "the file ends inside its summary section, before the footer",
                };
                return Err(self.truncated(offset, what));
            }
            if got < 9 {
                return Err(self.truncated(offset, "record header"));
            }
            let op = head[0];
            let len = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
            if op == 0 {
                return Err(self.corrupt(
                    offset,
                    "record header",
                    "opcode 0 is not a valid record",
                ));
            }
            if len > MAX_RECORD {
                return Err(self.corrupt(
                    offset,
                    op_name(op),
                    format!("claims {len} bytes (limit {MAX_RECORD})"),
                ));
            }
            if let Some(total) = self.len
                && offset + 9 + len > total
                && op != OP_CHUNK
            {
                let what = format!(
                    "{} claims {len} bytes, only {} remain",
                    op_name(op),
                    total.saturating_sub(offset + 9)
                );
                return Err(self.truncated(offset, what));
            }
            if matches!(self.phase, Phase::Summary) {
                // Summary records repeat what the data section held; only the footer matters.
                let got = self.read_body(len)?;
                if (got as u64) < len {
                    return Err(self.truncated(offset, op_name(op)));
                }
                if op == OP_FOOTER {
                    let tail_at = self.pos;
                    let got = self.read_body(8)?;
                    if got < 8 {
                        return Err(self.truncated(tail_at, "closing magic"));
                    }
                    if self.body[..8] != MAGIC {
                        return Err(self.corrupt(
                            tail_at,
                            "closing magic",
                            "bytes are not the MCAP magic",
                        ));
                    }
                    self.phase = Phase::Done;
                }
                continue;
            }
            let got = self.read_body(len)? as u64;
            if op == OP_CHUNK {
                self.open_chunk(offset, len, got)?;
                continue;
            }
            if got < len {
                return Err(self.truncated(offset, op_name(op)));
            }
            match op {
                OP_MESSAGE => {
                    let end = self.body.len();
                    return self.message_at(false, 0, end, offset).map(Some);
                }
                OP_SCHEMA | OP_CHANNEL | OP_METADATA => {
                    let end = self.body.len();
                    self.register(op, false, 0, end, offset)?;
                }
                OP_DATA_END => self.phase = Phase::Summary,
                OP_FOOTER => {
                    return Err(self.corrupt(
                        offset,
                        "footer record",
                        "footer before the data-end record",
                    ));
                }
                _ => {} // header, indexes, attachments, unknown and private records
            }
        }
    }

    /// Takes the chunk record just read into `self.body` (`got` of its `len` bytes).
    fn open_chunk(&mut self, offset: u64, len: u64, got: u64) -> Result<(), RecordingError> {
        let body = std::mem::take(&mut self.body);
        let header = (|| {
            let mut f = Fields::new(&body);
            let _start = f.u64()?;
            let _end = f.u64()?;
            let uncompressed_size = f.u64()?;
            let crc = f.u32()?;
            let compression = f.string()?;
            let records_len = f.u64()?;
            Ok::<_, String>((uncompressed_size, crc, compression, records_len, f.at))
        })();
        let (uncompressed_size, crc, compression, records_len, at) = match header {
            Ok(h) => h,
            Err(d) => {
                self.body = body;
                return Err(if got < len {
                    self.truncated(offset, "chunk header")
                } else {
                    self.corrupt(offset, "chunk header", d)
                });
            }
        };
        if !compression.is_empty() {
            self.body = body;
            return Err(RecordingError::Unsupported {
                path: self.path.clone(),
                offset,
                detail: format!(
                    "chunk compressed with `{compression}`; edgebind records and reads uncompressed chunks"
                ),
            });
        }
        let available = body.len() - at;
        let cut = got < len;
        if !cut && (records_len as usize != available || records_len != uncompressed_size) {
            self.body = body;
            return Err(self.corrupt(
                offset,
                "chunk record",
                format!("records length {records_len} / uncompressed size {uncompressed_size} do not match the {available} bytes present"),
            ));
        }
        let records = &body[at..at + available.min(records_len as usize)];
        if !cut && crc != 0 {
            let actual = crc32fast::hash(records);
            if actual != crc {
                let topics = self.topics_in(records);
                self.body = body;
                return Err(self.corrupt(
                    offset,
                    format!("chunk with messages on {topics}"),
                    format!("CRC-32 is {actual:08x}, the chunk says {crc:08x}"),
                ));
            }
        }
        self.chunk.clear();
        self.chunk.extend_from_slice(records);
        self.chunk_at = 0;
        self.chunk_base = offset + 9 + at as u64;
        self.chunk_cut = cut.then_some(offset);
        self.body = body;
        Ok(())
    }

    /// Topics of the message records in a chunk body, for error messages.
    fn topics_in(&self, records: &[u8]) -> String {
        let mut topics = std::collections::BTreeSet::new();
        let mut at = 0usize;
        while records.len() - at >= 9 + 2 {
            let op = records[at];
            let len = u64::from_le_bytes(records[at + 1..at + 9].try_into().expect("8 bytes"));
            if op == OP_MESSAGE {
                let id = u16::from_le_bytes([records[at + 9], records[at + 10]]);
                topics.insert(self.topic_of(id));
            }
            match usize::try_from(len)
                .ok()
                .and_then(|l| (at + 9).checked_add(l))
            {
                Some(next) if next <= records.len() => at = next,
                _ => break,
            }
        }
        if topics.is_empty() {
            "no readable channel".to_string()
        } else {
            topics.into_iter().collect::<Vec<_>>().join(", ")
        }
    }

    /// The next message record in the current chunk, as (start, end, offset) of its body.
    fn next_in_chunk(&mut self) -> Result<Option<(usize, usize, u64)>, RecordingError> {
        loop {
            let at = self.chunk_at;
            let offset = self.chunk_base + at as u64;
            let left = self.chunk.len() - at;
            if left == 0 {
                if let Some(chunk_offset) = self.chunk_cut.take() {
                    return Err(
                        self.truncated(chunk_offset, "chunk record (the file ends inside it)")
                    );
                }
                return Ok(None);
            }
            let partial = |me: &mut Self, op: u8, body_start: usize| {
                let what = if op == OP_MESSAGE && me.chunk.len() >= body_start + 2 {
                    let id = u16::from_le_bytes([me.chunk[body_start], me.chunk[body_start + 1]]);
                    format!("message on channel {}", me.topic_of(id))
                } else {
                    op_name(op).to_string()
                };
                me.chunk_at = me.chunk.len();
                if me.chunk_cut.take().is_some() {
                    me.truncated(offset, what)
                } else {
                    me.corrupt(offset, what, "record overruns its chunk")
                }
            };
            if left < 9 {
                let op = self.chunk[at];
                return Err(partial(self, op, at + 9));
            }
            let op = self.chunk[at];
            let len = u64::from_le_bytes(self.chunk[at + 1..at + 9].try_into().expect("8 bytes"));
            if op == 0 {
                self.chunk_at = self.chunk.len();
                self.chunk_cut = None;
                return Err(self.corrupt(
                    offset,
                    "record header in chunk",
                    "opcode 0 is not a valid record",
                ));
            }
            if len > (left - 9) as u64 {
                return Err(partial(self, op, at + 9));
            }
            let start = at + 9;
            let end = start + len as usize;
            self.chunk_at = end;
            match op {
                OP_MESSAGE => return Ok(Some((start, end, offset))),
                OP_SCHEMA | OP_CHANNEL | OP_METADATA => {
                    self.register(op, true, start, end, offset)?
                }
                _ => {}
            }
        }
    }

    fn message_at(
        &mut self,
        in_chunk: bool,
        start: usize,
        end: usize,
        offset: u64,
    ) -> Result<MessageRef<'_>, RecordingError> {
        let head = {
            let b = if in_chunk {
                &self.chunk[start..end]
            } else {
                &self.body[start..end]
            };
            let mut f = Fields::new(b);
            (|| Ok::<_, String>((f.u16()?, f.u32()?, f.u64()?, f.u64()?, f.at)))()
        };
        let (channel_id, sequence, log_time, publish_time, at) =
            head.map_err(|d| self.corrupt(offset, "message record", d))?;
        if !self.channels.contains_key(&channel_id) {
            return Err(self.corrupt(
                offset,
                "message record",
                format!("refers to channel id {channel_id}, which no channel record defined"),
            ));
        }
        let data = if in_chunk {
            &self.chunk[start + at..end]
        } else {
            &self.body[start + at..end]
        };
        Ok(MessageRef {
            channel: &self.channels[&channel_id],
            sequence,
            log_time,
            publish_time,
            data,
            offset,
        })
    }
}

fn decode_err(path: &Path, m: &MessageRef<'_>, detail: impl Into<String>) -> RecordingError {
    RecordingError::Decode {
        path: path.to_path_buf(),
        offset: m.offset,
        topic: m.channel.topic.clone(),
        detail: detail.into(),
    }
}

/// Decodes a sensor message into `out`, reusing its buffers. `path` labels errors.
pub fn decode_sample(
    path: &Path,
    m: &MessageRef<'_>,
    out: &mut Sample,
) -> Result<(), RecordingError> {
    let Some(modality) = m.channel.modality else {
        return Err(decode_err(
            path,
            m,
            "channel has no edgebind.modality metadata",
        ));
    };
    out.modality = modality;
    out.t = Timestamp {
        mono_ns: m.publish_time,
        wall_ns: m.log_time,
    };
    match modality {
        Modality::Vision | Modality::Depth | Modality::Thermal => {
            let frame = out.frame_mut();
            let mut img = RawImage {
                data: std::mem::take(&mut frame.data),
                ..Default::default()
            };
            img.data.clear();
            let merged = img.merge(m.data);
            frame.data = std::mem::take(&mut img.data);
            merged.map_err(|e| decode_err(path, m, format!("not a foxglove.RawImage: {e}")))?;
            let format = m
                .channel
                .metadata
                .get("edgebind.pixel_format")
                .and_then(|f| PixelFormat::from_name(f))
                .or(match (img.encoding.as_str(), modality) {
                    ("rgb8", _) => Some(PixelFormat::Rgb8),
                    ("16UC1", Modality::Depth) => Some(PixelFormat::DepthZ16),
                    ("16UC1", Modality::Thermal) => Some(PixelFormat::ThermalY16),
                    ("32FC1", Modality::Thermal) => Some(PixelFormat::ThermalF32),
                    _ => None,
                })
                .ok_or_else(|| {
                    decode_err(
                        path,
                        m,
                        format!("unsupported image encoding `{}`", img.encoding),
                    )
                })?;
            if format.foxglove_encoding() != img.encoding {
                return Err(decode_err(
                    path,
                    m,
                    format!(
                        "encoding `{}` contradicts pixel format {}",
                        img.encoding,
                        format.as_str()
                    ),
                ));
            }
            frame.width = img.width;
            frame.height = img.height;
            frame.format = format;
            let row = img.width as u64 * format.bytes_per_pixel() as u64;
            if img.step as u64 != row {
                return Err(decode_err(
                    path,
                    m,
                    format!("row step {} != width x pixel size {row}", img.step),
                ));
            }
            frame
                .validate()
                .map_err(|e| decode_err(path, m, e.to_string()))?;
        }
        Modality::Audio => {
            let msg = PbAudioChunk::decode(m.data)
                .map_err(|e| decode_err(path, m, format!("not an edgebind.AudioChunk: {e}")))?;
            if msg.format != AUDIO_FORMAT {
                return Err(decode_err(
                    path,
                    m,
                    format!("audio format `{}`, expected {AUDIO_FORMAT}", msg.format),
                ));
            }
            if msg.data.len() % 4 != 0 || msg.channels == 0 || msg.channels > u16::MAX as u32 {
                return Err(decode_err(
                    path,
                    m,
                    format!(
                        "{} data bytes / {} channels is not whole f32 frames",
                        msg.data.len(),
                        msg.channels
                    ),
                ));
            }
            let a = out.audio_mut();
            a.sample_rate = msg.sample_rate;
            a.channels = msg.channels as u16;
            a.samples.clear();
            a.samples.extend(
                msg.data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            if !a.samples.len().is_multiple_of(a.channels as usize) {
                return Err(decode_err(
                    path,
                    m,
                    "sample count is not a multiple of the channel count",
                ));
            }
        }
        Modality::Imu => {
            let msg = PbImuSample::decode(m.data)
                .map_err(|e| decode_err(path, m, format!("not an edgebind.ImuSample: {e}")))?;
            if msg.accel.len() != 3 || msg.gyro.len() != 3 {
                return Err(decode_err(
                    path,
                    m,
                    format!(
                        "IMU sample has {} accel and {} gyro values, expected 3 and 3",
                        msg.accel.len(),
                        msg.gyro.len()
                    ),
                ));
            }
            out.payload = Payload::Imu(ImuSample {
                accel: [msg.accel[0], msg.accel[1], msg.accel[2]],
                gyro: [msg.gyro[0], msg.gyro[1], msg.gyro[2]],
            });
        }
    }
    Ok(())
}
