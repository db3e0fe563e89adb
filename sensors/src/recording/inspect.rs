//! `edgebind inspect`: what a recording holds, per channel.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::reader::{McapReader, RecordingError};
use super::writer::TRUTH_TOPIC;
use crate::clock::NS_PER_SEC;

/// One ground-truth span of a simulated recording: the situations active in
/// `[start_ns, end_ns)` (monotonic ns).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct TruthSpan {
    /// First ns.
    pub start_ns: u64,
    /// First ns after.
    pub end_ns: u64,
    /// Situation ids.
    pub situations: Vec<String>,
}

impl TruthSpan {
    /// Parses one `/ground_truth` message (JSON), refusing a span that ends
    /// before it starts.
    pub fn parse(data: &[u8]) -> Result<TruthSpan, String> {
        let t: TruthSpan = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        if t.end_ns < t.start_ns {
            return Err(format!(
                "end_ns {} before start_ns {}",
                t.end_ns, t.start_ns
            ));
        }
        Ok(t)
    }
}

/// One channel's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSummary {
    /// Topic.
    pub topic: String,
    /// Modality name, or `null` for ground truth and foreign channels.
    pub modality: Option<String>,
    /// Schema name.
    pub schema: String,
    /// Message encoding.
    pub encoding: String,
    /// Messages read.
    pub messages: u64,
    /// Mean message rate over the channel's own span: (n - 1) / (last - first).
    pub rate_hz: f64,
    /// Monotonic ns of the first message.
    pub first_ns: u64,
    /// Monotonic ns of the last message.
    pub last_ns: u64,
    /// Channel metadata.
    pub metadata: BTreeMap<String, String>,
}

/// What a recording holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// The file.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Messages over all channels.
    pub messages: u64,
    /// Earliest monotonic ns.
    pub start_ns: u64,
    /// Latest monotonic ns.
    pub end_ns: u64,
    /// `end - start` in seconds.
    pub duration_s: f64,
    /// Wall-clock ns of the first message.
    pub start_wall_ns: u64,
    /// Channels, by topic.
    pub channels: Vec<ChannelSummary>,
    /// Metadata records (name -> key/values).
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// The ground truth (`/ground_truth`, recordings of the simulated
    /// world), in time order.
    pub truth: Vec<TruthSpan>,
    /// Damage met while reading (everything before it is counted above).
    pub error: Option<String>,
}

/// Reads `path` to the end and summarises it. Damage is reported in
/// [`Inspection::error`]; only a file that cannot be opened or is not MCAP at
/// all is an `Err`.
pub fn inspect(path: &Path) -> Result<Inspection, RecordingError> {
    let bytes = std::fs::metadata(path)
        .map_err(|source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut r = McapReader::open(path)?;
    let mut per: BTreeMap<u16, (u64, u64, u64)> = BTreeMap::new();
    let mut start_wall = None;
    let mut truth = Vec::new();
    let error = loop {
        match r.next_message() {
            Ok(Some(m)) => {
                if m.channel.modality.is_none() && m.channel.topic == TRUTH_TOPIC {
                    match TruthSpan::parse(m.data) {
                        Ok(t) => truth.push(t),
                        Err(e) => {
                            break Some(format!("ground truth at byte offset {}: {e}", m.offset));
                        }
                    }
                }
                let e = per
                    .entry(m.channel.id)
                    .or_insert((0, m.publish_time, m.publish_time));
                e.0 += 1;
                e.1 = e.1.min(m.publish_time);
                e.2 = e.2.max(m.publish_time);
                if start_wall.is_none() {
                    start_wall = Some(m.log_time);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let mut channels: Vec<ChannelSummary> = r
        .channels()
        .values()
        .map(|c| {
            let (n, first, last) = per.get(&c.id).copied().unwrap_or((0, 0, 0));
            let span = last.saturating_sub(first) as f64 / NS_PER_SEC as f64;
            ChannelSummary {
                topic: c.topic.clone(),
                modality: c.modality.map(|m| m.as_str().to_string()),
                schema: c.schema_name.clone(),
                encoding: c.message_encoding.clone(),
                messages: n,
                rate_hz: if n > 1 && span > 0.0 {
                    (n - 1) as f64 / span
                } else {
                    0.0
                },
                first_ns: first,
                last_ns: last,
                metadata: c.metadata.clone(),
            }
        })
        .collect();
    channels.sort_by(|a, b| a.topic.cmp(&b.topic));
    let start_ns = per.values().map(|v| v.1).min().unwrap_or(0);
    let end_ns = per.values().map(|v| v.2).max().unwrap_or(0);
    Ok(Inspection {
        path: path.display().to_string(),
        bytes,
        messages: per.values().map(|v| v.0).sum(),
        start_ns,
        end_ns,
        duration_s: end_ns.saturating_sub(start_ns) as f64 / NS_PER_SEC as f64,
        start_wall_ns: start_wall.unwrap_or(0),
        channels,
        metadata: r.metadata().iter().cloned().collect(),
        truth: {
            truth.sort_by_key(|t| t.start_ns);
            truth
        },
        error,
    })
}

impl Inspection {
    /// The ground truth as lines `start - end s  situation, situation`
    /// (monotonic seconds: the sim's own clock, as the daemon's events show
    /// it in `mono`).
    pub fn truth_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let sec = |ns: u64| ns as f64 / NS_PER_SEC as f64;
        for t in &self.truth {
            let _ = writeln!(
                s,
                "{:>9.3} - {:>9.3} s  {}",
                sec(t.start_ns),
                sec(t.end_ns),
                t.situations.join(", ")
            );
        }
        s
    }

    /// A human-readable table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {:.1} MB, {} messages, {:.3} s (mono {} .. {} ns)",
            self.path,
            self.bytes as f64 / 1e6,
            self.messages,
            self.duration_s,
            self.start_ns,
            self.end_ns
        );
        for (name, kv) in &self.metadata {
            let items: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "metadata {name}: {}", items.join(" "));
        }
        let _ = writeln!(
            s,
            "{:<16} {:<8} {:<20} {:>9} {:>10}",
            "topic", "modality", "schema", "messages", "rate_hz"
        );
        for c in &self.channels {
            let _ = writeln!(
                s,
                "{:<16} {:<8} {:<20} {:>9} {:>10.2}",
                c.topic,
                c.modality.as_deref().unwrap_or("-"),
                c.schema,
                c.messages,
                c.rate_hz
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "DAMAGED: {e}");
        }
        s
    }
}
