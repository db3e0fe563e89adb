//! Windows: the unit an encoder sees. A [`Windower`] per modality cuts a
//! sample stream into [`Window`]s of a configured length, one every hop.
//!
//! ## Time grid
//! Window ends lie on a grid shared by every modality of a rig: `t_end = k * hop`
//! (k >= 1) on the monotonic clock, so windows of different modalities with the
//! same hop end at the same instant and [`crate::moment`] can group them.
//! A window covers `[t_end - length, t_end)`.
//!
//! ## Continuous streams (audio, IMU)
//! A window holds every sample whose time falls in its span. Audio samples are
//! placed by their timestamp, so samples lost upstream (a dropped chunk) leave
//! zeros that are *counted* in [`WindowData::Audio::missing`], never silently
//! closed up. A window is emitted once a sample at or after `t_end` arrives;
//! windows that would start before the stream's first sample are skipped.
//!
//! ## Frame streams (vision, depth, thermal)
//! A window holds the single frame nearest `t_end` (ImageBind's vision input is
//! one frame repeated), chosen once a frame at or after `t_end` shows the
//! nearest one; a frame further than `length` from `t_end` is not used (the
//! camera stalled) and the window is skipped and counted in
//! [`Windower::skipped`].
//!
//! ## Frame clips
//! An encoder that sees motion (ImageBind's vision input is a 2-frame clip)
//! asks for a clip with [`Windower::with_clip`]: each frame window then also
//! carries, in [`WindowData::Frame::earlier`], the frame nearest
//! `t_end - clip` among the frames strictly before the window's own frame.
//! A clip of more frames ([`Windower::with_clip_frames`], `frames` evenly
//! spaced `clip` apart) carries the frames nearest `t_end - k * clip` for
//! k = frames - 1 .. 1, oldest first, each strictly before the next.
//! A window whose earlier frame is missing or more than `clip / 2` from its
//! target (the camera stalled or runs slower than the clip) is skipped and
//! counted like a stalled window. The clip length and frame count come from
//! the encoder's contract, never from a user setting, so training and the
//! daemon cut the same clips.

use std::collections::VecDeque;

/// The most frames a clip may have ([`Windower::with_clip_frames`]).
pub const MAX_CLIP_FRAMES: usize = 16;

use serde::{Deserialize, Serialize};

use crate::clock::{NS_PER_SEC, Timestamp, secs_to_ns};
use crate::modality::Modality;
use crate::sample::{AudioChunk, Frame, ImuSample, Payload, Sample};

/// Length and hop of one modality's windows, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Span of data in one window, seconds.
    pub length_s: f64,
    /// Time between consecutive window ends, seconds.
    pub hop_s: f64,
}

impl WindowSpec {
    /// ImageBind's defaults per modality, with a 1 s hop: frames 1 s (nearest
    /// frame), audio 2 s clips, IMU 5 s.
    pub fn default_for(m: Modality) -> Self {
        let length_s = match m {
            Modality::Audio => 2.0,
            Modality::Imu => 5.0,
            _ => 1.0,
        };
        WindowSpec {
            length_s,
            hop_s: 1.0,
        }
    }

    /// Checks the spec; the error names the bad field.
    pub fn validate(&self) -> Result<(), WindowError> {
        let ok = |v: f64| v.is_finite() && (0.001..=3600.0).contains(&v);
        if !ok(self.length_s) {
            return Err(WindowError::BadSpec {
                field: "length_s",
                value: self.length_s,
                range: "0.001..=3600 seconds",
            });
        }
        if !ok(self.hop_s) {
            return Err(WindowError::BadSpec {
                field: "hop_s",
                value: self.hop_s,
                range: "0.001..=3600 seconds",
            });
        }
        Ok(())
    }
}

/// Window specs of all modalities (the `[windows]` table of a config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Camera.
    pub vision: WindowSpec,
    /// Microphone.
    pub audio: WindowSpec,
    /// Depth camera.
    pub depth: WindowSpec,
    /// Thermal camera.
    pub thermal: WindowSpec,
    /// IMU.
    pub imu: WindowSpec,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            vision: WindowSpec::default_for(Modality::Vision),
            audio: WindowSpec::default_for(Modality::Audio),
            depth: WindowSpec::default_for(Modality::Depth),
            thermal: WindowSpec::default_for(Modality::Thermal),
            imu: WindowSpec::default_for(Modality::Imu),
        }
    }
}

impl WindowConfig {
    /// The spec of modality `m`.
    pub fn spec(&self, m: Modality) -> WindowSpec {
        match m {
            Modality::Vision => self.vision,
            Modality::Audio => self.audio,
            Modality::Depth => self.depth,
            Modality::Thermal => self.thermal,
            Modality::Imu => self.imu,
        }
    }

    /// Checks every spec; the error names the modality and the field.
    pub fn validate(&self) -> Result<(), String> {
        for m in Modality::ALL {
            self.spec(m)
                .validate()
                .map_err(|e| format!("windows.{m}: {e}"))?;
        }
        Ok(())
    }
}

/// Errors of windowing. None is fatal: the windower's state is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowError {
    /// A spec value is out of range.
    #[error("window `{field}` = {value} is out of range ({range})")]
    BadSpec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What it may be.
        range: &'static str,
    },
    /// A sample of another modality or payload kind was pushed.
    #[error("{expected} windower got a {got} sample at t={t_ns} ns")]
    WrongModality {
        /// What this windower cuts.
        expected: Modality,
        /// What it got.
        got: &'static str,
        /// Sample time.
        t_ns: u64,
    },
    /// A sample older than one already seen.
    #[error(
        "{modality} sample at t={t_ns} ns is older than the previous one ({last_ns} ns); dropped"
    )]
    OutOfOrder {
        /// The stream.
        modality: Modality,
        /// Sample time.
        t_ns: u64,
        /// Latest time seen.
        last_ns: u64,
    },
    /// An audio chunk whose format differs from the stream's.
    #[error(
        "audio chunk at t={t_ns} ns is {rate} Hz x{channels}, the stream is {stream_rate} Hz x{stream_channels}; dropped"
    )]
    FormatChange {
        /// Sample time.
        t_ns: u64,
        /// Chunk rate.
        rate: u32,
        /// Chunk channels.
        channels: u16,
        /// Stream rate.
        stream_rate: u32,
        /// Stream channels.
        stream_channels: u16,
    },
}

/// The data of one window.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowData {
    /// The frame nearest the window end, with its own timestamp.
    Frame {
        /// When the frame was captured.
        t: Timestamp,
        /// The frame.
        frame: Frame,
        /// With a clip ([`Windower::with_clip`]): the frame nearest
        /// `t_end - clip`, strictly before `frame`; with a clip of `n` frames
        /// ([`Windower::with_clip_frames`]), the `n - 1` frames nearest
        /// `t_end - k * clip`, oldest first. Empty without a clip.
        earlier: Vec<(Timestamp, Frame)>,
    },
    /// Audio covering the window, placed by timestamp.
    Audio {
        /// Samples per second per channel.
        sample_rate: u32,
        /// Interleaved channels.
        channels: u16,
        /// `round(length * rate) * channels` interleaved samples.
        samples: Vec<f32>,
        /// Sample frames (per channel) with no data (lost upstream); zero-filled.
        missing: usize,
    },
    /// IMU readings in the window, with their monotonic times.
    Imu {
        /// (mono ns, reading), in time order.
        samples: Vec<(u64, ImuSample)>,
    },
}

/// A window of one modality.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its modality.
    pub modality: Modality,
    /// Start of the span, monotonic ns.
    pub t_start: u64,
    /// End of the span (a grid point), monotonic ns.
    pub t_end: u64,
    /// Wall-clock ns of `t_end` (from the latest sample's clock pair).
    pub wall_end_ns: u64,
    /// The data.
    pub data: WindowData,
}

/// Cuts one modality's samples into windows.
#[derive(Debug)]
pub struct Windower {
    modality: Modality,
    length_ns: u64,
    hop_ns: u64,
    /// End of the next window to emit.
    next_end: Option<u64>,
    first_t: Option<u64>,
    last_t: Option<u64>,
    wall_offset: i128,
    skipped: u64,
    // Frame streams: the latest frame before the next window end.
    prev_frame: Option<(Timestamp, Frame)>,
    // Frame clips: the spacing, the frame count and the recent frames to pick
    // the earlier frames from.
    clip_ns: u64,
    clip_frames: usize,
    history: VecDeque<(Timestamp, Frame)>,
    // Audio: chunks that may still fall in a future window.
    chunks: VecDeque<(u64, AudioChunk)>,
    audio_format: Option<(u32, u16)>,
    // IMU: readings that may still fall in a future window.
    imu: VecDeque<(u64, ImuSample)>,
}

impl Windower {
    /// A windower for `modality` with `spec`.
    pub fn new(modality: Modality, spec: WindowSpec) -> Result<Self, WindowError> {
        spec.validate()?;
        Ok(Windower {
            modality,
            length_ns: secs_to_ns(spec.length_s),
            hop_ns: secs_to_ns(spec.hop_s),
            next_end: None,
            first_t: None,
            last_t: None,
            wall_offset: 0,
            skipped: 0,
            prev_frame: None,
            clip_ns: 0,
            clip_frames: 1,
            history: VecDeque::new(),
            chunks: VecDeque::new(),
            audio_format: None,
            imu: VecDeque::new(),
        })
    }

    /// Frame streams: every window also carries the frame nearest
    /// `t_end - clip_s` (see the module doc). `clip_s = 0` (the default) means
    /// single frames. Refused for audio and IMU, and for a clip outside
    /// 1 ms..60 s.
    pub fn with_clip(self, clip_s: f64) -> Result<Self, WindowError> {
        self.with_clip_frames(clip_s, 2)
    }

    /// Frame streams: every window carries a clip of `frames` frames spaced
    /// `clip_s` apart and ending with its own frame (see the module doc);
    /// `with_clip(c)` is `with_clip_frames(c, 2)`. `clip_s = 0` means single
    /// frames. Refused for audio and IMU, for a clip outside 1 ms..60 s and
    /// for fewer than 2 or more than [`MAX_CLIP_FRAMES`] frames.
    pub fn with_clip_frames(mut self, clip_s: f64, frames: usize) -> Result<Self, WindowError> {
        if clip_s == 0.0 {
            self.clip_ns = 0;
            self.clip_frames = 1;
            return Ok(self);
        }
        if !self.modality.is_frame_stream() || !(0.001..=60.0).contains(&clip_s) {
            return Err(WindowError::BadSpec {
                field: "clip_s",
                value: clip_s,
                range: "0.001..=60 seconds, frame streams only",
            });
        }
        if !(2..=MAX_CLIP_FRAMES).contains(&frames) {
            return Err(WindowError::BadSpec {
                field: "clip frames",
                value: frames as f64,
                range: "2..=16",
            });
        }
        self.clip_ns = secs_to_ns(clip_s);
        self.clip_frames = frames;
        Ok(self)
    }

    /// The spacing of the frames of a clip, ns (0: single frames).
    pub fn clip_ns(&self) -> u64 {
        self.clip_ns
    }

    /// The frames of a clip, the window's own included (1: single frames).
    pub fn clip_frames(&self) -> usize {
        self.clip_frames
    }

    /// The earlier frames of a clip whose own frame is at `own`, for the
    /// window ending at `end`, oldest first; `None` when one of them has no
    /// frame close enough to its target.
    fn earlier_frames(&self, end: u64, own: u64) -> Option<Vec<(Timestamp, Frame)>> {
        let mut picked = Vec::with_capacity(self.clip_frames - 1);
        let mut before = own;
        for k in 1..self.clip_frames as u64 {
            // A target before time 0 has no frame (the stream had not started).
            let target = end.checked_sub(k * self.clip_ns)?;
            let (t, f) = self
                .history
                .iter()
                .filter(|(t, _)| t.mono_ns < before)
                .min_by_key(|(t, _)| t.mono_ns.abs_diff(target))
                .filter(|(t, _)| t.mono_ns.abs_diff(target) <= self.clip_ns / 2)?;
            before = t.mono_ns;
            picked.push((*t, f.clone()));
        }
        picked.reverse();
        Some(picked)
    }

    /// Emits the frame window ending at `end` with its own frame (and, with a
    /// clip, its earlier frames; without them the window is skipped and counted).
    fn emit_frame(&mut self, end: u64, t: Timestamp, frame: Frame, out: &mut Vec<Window>) {
        let earlier = if self.clip_ns > 0 {
            let Some(e) = self.earlier_frames(end, t.mono_ns) else {
                self.skipped += 1;
                return;
            };
            e
        } else {
            Vec::new()
        };
        out.push(Window {
            modality: self.modality,
            t_start: end.saturating_sub(self.length_ns),
            t_end: end,
            wall_end_ns: self.wall_of(end),
            data: WindowData::Frame { t, frame, earlier },
        });
    }

    /// The modality this windower cuts.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Windows skipped because no frame was near enough to their end.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn wall_of(&self, mono: u64) -> u64 {
        (mono as i128 + self.wall_offset).max(0) as u64
    }

    /// The first grid end whose window starts at or after `t0`.
    fn first_end(&self, t0: u64) -> u64 {
        let min_end = t0 + self.length_ns;
        min_end.div_ceil(self.hop_ns).max(1) * self.hop_ns
    }

    /// Feeds one sample; complete windows are appended to `out`.
    pub fn push(&mut self, sample: &Sample, out: &mut Vec<Window>) -> Result<(), WindowError> {
        let t = sample.t.mono_ns;
        let kind = match &sample.payload {
            Payload::Frame(_) => "frame",
            Payload::Audio(_) => "audio",
            Payload::Imu(_) => "imu",
        };
        let fits = sample.modality == self.modality
            && match &sample.payload {
                Payload::Frame(_) => self.modality.is_frame_stream(),
                Payload::Audio(_) => self.modality == Modality::Audio,
                Payload::Imu(_) => self.modality == Modality::Imu,
            };
        if !fits {
            return Err(WindowError::WrongModality {
                expected: self.modality,
                got: if sample.modality == self.modality {
                    kind
                } else {
                    sample.modality.as_str()
                },
                t_ns: t,
            });
        }
        if let Some(last) = self.last_t
            && t < last
        {
            return Err(WindowError::OutOfOrder {
                modality: self.modality,
                t_ns: t,
                last_ns: last,
            });
        }
        if let Payload::Audio(a) = &sample.payload {
            match self.audio_format {
                Some((r, c)) if (r, c) != (a.sample_rate, a.channels) => {
                    return Err(WindowError::FormatChange {
                        t_ns: t,
                        rate: a.sample_rate,
                        channels: a.channels,
                        stream_rate: r,
                        stream_channels: c,
                    });
                }
                _ => self.audio_format = Some((a.sample_rate, a.channels)),
            }
        }
        self.last_t = Some(t);
        self.wall_offset = sample.t.wall_ns as i128 - t as i128;
        if self.first_t.is_none() {
            self.first_t = Some(t);
            let first = if self.modality.is_frame_stream() {
                // A frame window needs only its frame; start at the first grid point
                // at or after the first frame.
                t.div_ceil(self.hop_ns).max(1) * self.hop_ns
            } else {
                self.first_end(t)
            };
            self.next_end = Some(first);
        }
        match &sample.payload {
            Payload::Frame(f) => self.push_frame(sample.t, f, out),
            Payload::Audio(a) => {
                self.chunks.push_back((t, a.clone()));
                self.emit_continuous(t + a.duration_ns(), out);
            }
            Payload::Imu(s) => {
                self.imu.push_back((t, *s));
                self.emit_continuous(t, out);
            }
        }
        Ok(())
    }

    fn push_frame(&mut self, t: Timestamp, f: &Frame, out: &mut Vec<Window>) {
        if self.clip_ns > 0 {
            // Keep what the next windows may still pick as their earlier frames.
            let keep = self.clip_frames as u64 * self.clip_ns + self.length_ns;
            while self
                .history
                .front()
                .is_some_and(|(ht, _)| ht.mono_ns + keep < t.mono_ns)
            {
                self.history.pop_front();
            }
        }
        while let Some(end) = self.next_end {
            if t.mono_ns < end {
                break;
            }
            // `t` is the first frame at or after `end`; compare with the one before.
            let after_d = t.mono_ns - end;
            let pick_prev = matches!(&self.prev_frame, Some((pt, _)) if end - pt.mono_ns < after_d);
            let (ft, frame, d) = if pick_prev {
                let (pt, pf) = self.prev_frame.as_ref().expect("checked above");
                (*pt, pf.clone(), end - pt.mono_ns)
            } else {
                (t, f.clone(), after_d)
            };
            if d <= self.length_ns {
                self.emit_frame(end, ft, frame, out);
            } else {
                self.skipped += 1;
            }
            self.next_end = Some(end + self.hop_ns);
        }
        match &mut self.prev_frame {
            Some((pt, pf)) => {
                *pt = t;
                pf.width = f.width;
                pf.height = f.height;
                pf.format = f.format;
                pf.data.clear();
                pf.data.extend_from_slice(&f.data);
            }
            None => self.prev_frame = Some((t, f.clone())),
        }
        if self.clip_ns > 0 {
            self.history.push_back((t, f.clone()));
        }
    }

    /// Emits every window that ends at or before `covered` (data is complete up to it).
    fn emit_continuous(&mut self, covered: u64, out: &mut Vec<Window>) {
        while let Some(end) = self.next_end {
            if covered < end {
                break;
            }
            let start = end - self.length_ns;
            let data = match self.modality {
                Modality::Audio => self.audio_window(start, end),
                _ => WindowData::Imu {
                    samples: self
                        .imu
                        .iter()
                        .filter(|(t, _)| *t >= start && *t < end)
                        .copied()
                        .collect(),
                },
            };
            out.push(Window {
                modality: self.modality,
                t_start: start,
                t_end: end,
                wall_end_ns: self.wall_of(end),
                data,
            });
            let next = end + self.hop_ns;
            self.next_end = Some(next);
            // Forget data that no future window can contain.
            let keep_from = next - self.length_ns;
            while let Some((t, c)) = self.chunks.front() {
                if t + c.duration_ns() <= keep_from {
                    self.chunks.pop_front();
                } else {
                    break;
                }
            }
            while let Some((t, _)) = self.imu.front() {
                if *t < keep_from {
                    self.imu.pop_front();
                } else {
                    break;
                }
            }
        }
    }

    fn audio_window(&self, start: u64, end: u64) -> WindowData {
        let (rate, channels) = self.audio_format.unwrap_or((16_000, 1));
        let ch = channels.max(1) as usize;
        let n = ((end - start) as u128 * rate as u128 / NS_PER_SEC as u128) as usize;
        let mut samples = vec![0.0f32; n * ch];
        let mut filled = vec![false; n];
        for (t, c) in &self.chunks {
            // Index of the chunk's first sample in the window (may be negative).
            let offset = (*t as i128 - start as i128) * rate as i128;
            let first = if offset >= 0 {
                (offset + NS_PER_SEC as i128 / 2) / NS_PER_SEC as i128
            } else {
                -((-offset + NS_PER_SEC as i128 / 2) / NS_PER_SEC as i128)
            };
            for i in 0..c.frames() {
                let idx = first + i as i128;
                if idx < 0 {
                    continue;
                }
                if idx as usize >= n {
                    break;
                }
                let idx = idx as usize;
                samples[idx * ch..idx * ch + ch].copy_from_slice(&c.samples[i * ch..i * ch + ch]);
                filled[idx] = true;
            }
        }
        WindowData::Audio {
            sample_rate: rate,
            channels,
            samples,
            missing: filled.iter().filter(|f| !**f).count(),
        }
    }

    /// End of stream: emits the window whose frame is already known (frame
    /// streams). Continuous windows need data up to their end and are not padded.
    pub fn finish(&mut self, out: &mut Vec<Window>) {
        if !self.modality.is_frame_stream() {
            return;
        }
        if let (Some(end), Some((pt, pf))) = (self.next_end, &self.prev_frame)
            && end >= pt.mono_ns
            && end - pt.mono_ns <= self.length_ns
        {
            let (pt, pf) = (*pt, pf.clone());
            self.emit_frame(end, pt, pf, out);
            self.next_end = Some(end + self.hop_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::PixelFormat;

    const MS: u64 = 1_000_000;

    fn frame_at(ms: u64, tag: u8) -> Sample {
        let mut s = Sample::empty(Modality::Vision);
        s.t = Timestamp::sim(ms * MS);
        s.frame_mut().reshape(2, 1, PixelFormat::Rgb8);
        s.frame_mut().data.fill(tag);
        s
    }

    fn audio_at(ms: u64, n: usize, rate: u32, value: f32) -> Sample {
        let mut s = Sample::empty(Modality::Audio);
        s.t = Timestamp::sim(ms * MS);
        let a = s.audio_mut();
        a.sample_rate = rate;
        a.channels = 1;
        a.samples = vec![value; n];
        s
    }

    #[test]
    fn frames_pick_nearest_to_each_hop() {
        // 10 fps camera starting at 30 ms; hop 250 ms, length 250 ms.
        let spec = WindowSpec {
            length_s: 0.25,
            hop_s: 0.25,
        };
        let mut w = Windower::new(Modality::Vision, spec).unwrap();
        let mut out = Vec::new();
        for k in 0..10u64 {
            w.push(&frame_at(30 + 100 * k, k as u8), &mut out).unwrap();
        }
        // Frames at 30,130,...,930. Ends 250,500,750: nearest frames 230 (d=20),
        // 530 (d=30 vs 430 d=70), 730 (d=20).
        let picked: Vec<(u64, u64, u64)> = out
            .iter()
            .map(|win| match &win.data {
                WindowData::Frame { t, .. } => (win.t_start / MS, win.t_end / MS, t.mono_ns / MS),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            picked,
            vec![(0, 250, 230), (250, 500, 530), (500, 750, 730)]
        );
        let WindowData::Frame { frame, .. } = &out[1].data else {
            unreachable!()
        };
        assert_eq!(frame.data, vec![5; 6]);
        assert_eq!(
            out[0].wall_end_ns,
            crate::clock::SIM_WALL_EPOCH_NS + 250 * MS
        );
        w.finish(&mut out);
        // End 1000: last frame 930 is within 250 ms.
        assert_eq!(out.last().unwrap().t_end, 1000 * MS);
    }

    #[test]
    fn clips_carry_the_frame_nearest_the_clip_start() {
        // 10 fps from 30 ms; hop 500 ms, length 250 ms, clip 400 ms.
        let clip_windower = |length_s, hop_s, clip_s| {
            Windower::new(Modality::Vision, WindowSpec { length_s, hop_s })
                .unwrap()
                .with_clip(clip_s)
                .unwrap()
        };
        let mut w = clip_windower(0.25, 0.5, 0.4);
        let mut out = Vec::new();
        for k in 0..12u64 {
            w.push(&frame_at(30 + 100 * k, k as u8), &mut out).unwrap();
        }
        w.finish(&mut out);
        let picked: Vec<(u64, u64, u64)> = out
            .iter()
            .map(|win| match &win.data {
                WindowData::Frame { t, earlier, .. } if earlier.len() == 1 => {
                    (win.t_end / MS, t.mono_ns / MS, earlier[0].0.mono_ns / MS)
                }
                other => panic!("no earlier frame in {other:?}"),
            })
            .collect();
        // End 500: own frame 530, target 100 -> 130 (d 30). End 1000: own 1030,
        // target 600 -> 630. End 1500 (finish): own 1130 is 370 ms away: no window.
        assert_eq!(picked, vec![(500, 530, 130), (1000, 1030, 630)]);
        let WindowData::Frame { earlier, .. } = &out[0].data else {
            unreachable!()
        };
        assert_eq!(earlier[0].1.data, vec![1; 6]);
        assert_eq!(w.skipped(), 0);
        // The history stays short: only what the next clip can still use.
        assert!(w.history.len() <= 12, "{}", w.history.len());

        // A camera slower than the clip: the earlier frame is too far, the
        // window is skipped and counted. 1 fps, clip 0.3 s.
        let mut w = clip_windower(1.0, 1.0, 0.3);
        let spec = WindowSpec {
            length_s: 1.0,
            hop_s: 1.0,
        };
        let mut out = Vec::new();
        for k in 0..4u64 {
            w.push(&frame_at(1000 * k, 0), &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert_eq!(w.skipped(), 3);
        // Clips are for frame streams only, with a sane length.
        assert!(
            Windower::new(Modality::Audio, WindowSpec::default_for(Modality::Audio))
                .unwrap()
                .with_clip(0.5)
                .is_err()
        );
        assert!(
            Windower::new(Modality::Vision, spec)
                .unwrap()
                .with_clip(-1.0)
                .is_err()
        );
        assert_eq!(
            Windower::new(Modality::Vision, spec)
                .unwrap()
                .with_clip(0.0)
                .unwrap()
                .clip_ns(),
            0
        );
    }

    #[test]
    fn longer_clips_carry_evenly_spaced_frames_oldest_first() {
        // 10 fps from 30 ms; hop 500 ms, length 250 ms, 3 frames 400 ms apart.
        let spec = WindowSpec {
            length_s: 0.25,
            hop_s: 0.5,
        };
        let mut w = Windower::new(Modality::Vision, spec)
            .unwrap()
            .with_clip_frames(0.4, 3)
            .unwrap();
        assert_eq!((w.clip_ns(), w.clip_frames()), (400 * MS, 3));
        let mut out = Vec::new();
        for k in 0..22u64 {
            w.push(&frame_at(30 + 100 * k, k as u8), &mut out).unwrap();
        }
        let picked: Vec<Vec<u64>> = out
            .iter()
            .map(|win| match &win.data {
                WindowData::Frame { t, earlier, .. } => earlier
                    .iter()
                    .map(|(e, _)| e.mono_ns / MS)
                    .chain([t.mono_ns / MS])
                    .collect(),
                other => panic!("not a frame window: {other:?}"),
            })
            .collect();
        // End 500: targets 100 and -300: the oldest is missing -> skipped.
        // End 1000: own 1030, targets 600 -> 630 and 200 -> 230.
        assert_eq!(
            picked,
            vec![
                vec![230, 630, 1030],
                vec![730, 1130, 1530],
                vec![1230, 1630, 2030]
            ]
        );
        let WindowData::Frame { earlier, .. } = &out[0].data else {
            unreachable!()
        };
        assert_eq!(earlier[0].1.data, vec![2; 6]);
        assert_eq!(w.skipped(), 1);
        // The history holds only what the next clips can still use: 3 x 400 + 250 ms.
        assert!(w.history.len() <= 16, "{}", w.history.len());
        // One or too many frames is not a clip.
        for frames in [0, 1, MAX_CLIP_FRAMES + 1] {
            let e = Windower::new(Modality::Vision, spec)
                .unwrap()
                .with_clip_frames(0.4, frames)
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!("window `clip frames` = {frames} is out of range (2..=16)")
            );
        }
    }

    #[test]
    fn stalled_camera_skips_windows() {
        let spec = WindowSpec {
            length_s: 0.1,
            hop_s: 0.1,
        };
        let mut w = Windower::new(Modality::Vision, spec).unwrap();
        let mut out = Vec::new();
        w.push(&frame_at(95, 1), &mut out).unwrap();
        w.push(&frame_at(605, 2), &mut out).unwrap();
        // End 100 -> frame 95. Ends 200..500: no frame within 100 ms -> skipped.
        // End 600 -> frame 605.
        let ends: Vec<u64> = out.iter().map(|w| w.t_end / MS).collect();
        assert_eq!(ends, vec![100, 600]);
        assert_eq!(w.skipped(), 4);
    }

    #[test]
    fn audio_windows_cover_exact_spans_and_count_gaps() {
        // 1 kHz, 100-sample chunks (100 ms); window 0.5 s, hop 0.25 s.
        let spec = WindowSpec {
            length_s: 0.5,
            hop_s: 0.25,
        };
        let mut w = Windower::new(Modality::Audio, spec).unwrap();
        let mut out = Vec::new();
        for k in 0..12u64 {
            if k == 6 {
                continue; // chunk [600, 700) lost upstream
            }
            w.push(&audio_at(100 * k, 100, 1000, k as f32), &mut out)
                .unwrap();
        }
        let spans: Vec<(u64, u64)> = out.iter().map(|w| (w.t_start / MS, w.t_end / MS)).collect();
        assert_eq!(
            spans,
            vec![(0, 500), (250, 750), (500, 1000), (750, 1250)][..spans.len()].to_vec()
        );
        assert_eq!(spans.len(), 3, "data reaches 1200 ms only");
        for win in &out {
            let WindowData::Audio {
                samples, missing, ..
            } = &win.data
            else {
                unreachable!()
            };
            assert_eq!(samples.len(), 500);
            // Sample i of the window is from chunk (t_start + i) / 100.
            for (i, v) in samples.iter().enumerate() {
                let chunk = (win.t_start / MS + i as u64) / 100;
                let want = if chunk == 6 { 0.0 } else { chunk as f32 };
                assert_eq!(*v, want, "window {} sample {i}", win.t_start / MS);
            }
            let gap = (win.t_start / MS..win.t_end / MS)
                .filter(|t| (600..700).contains(t))
                .count();
            assert_eq!(*missing, gap);
        }
    }

    #[test]
    fn imu_windows_hold_samples_in_span() {
        let spec = WindowSpec {
            length_s: 1.0,
            hop_s: 0.5,
        };
        let mut w = Windower::new(Modality::Imu, spec).unwrap();
        let mut out = Vec::new();
        for k in 0..300u64 {
            let mut s = Sample::empty(Modality::Imu);
            s.t = Timestamp::sim(k * 10 * MS); // 100 Hz
            s.payload = Payload::Imu(ImuSample {
                accel: [k as f32, 0.0, 9.81],
                gyro: [0.0; 3],
            });
            w.push(&s, &mut out).unwrap();
        }
        // Data to 2.99 s: windows end at 1.0, 1.5, 2.0, 2.5 (3.0 needs a sample >= 3.0).
        let ends: Vec<u64> = out.iter().map(|w| w.t_end / MS).collect();
        assert_eq!(ends, vec![1000, 1500, 2000, 2500]);
        for win in &out {
            let WindowData::Imu { samples } = &win.data else {
                unreachable!()
            };
            assert_eq!(samples.len(), 100);
            assert_eq!(samples[0].0, win.t_start);
            assert!(
                samples
                    .iter()
                    .all(|(t, _)| *t >= win.t_start && *t < win.t_end)
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut w =
            Windower::new(Modality::Audio, WindowSpec::default_for(Modality::Audio)).unwrap();
        let mut out = Vec::new();
        let e = w.push(&frame_at(0, 0), &mut out).unwrap_err();
        assert!(
            e.to_string().contains("audio windower got a vision sample"),
            "{e}"
        );
        w.push(&audio_at(100, 10, 16_000, 0.0), &mut out).unwrap();
        let e = w
            .push(&audio_at(50, 10, 16_000, 0.0), &mut out)
            .unwrap_err();
        assert!(matches!(e, WindowError::OutOfOrder { .. }));
        let e = w
            .push(&audio_at(200, 10, 44_100, 0.0), &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("44100 Hz"), "{e}");
        let e = Windower::new(
            Modality::Imu,
            WindowSpec {
                length_s: -1.0,
                hop_s: 1.0,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("length_s"));
    }
}
