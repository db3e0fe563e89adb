//! What a sensor produces: timestamped frames, audio chunks and IMU samples.
//!
//! Payloads own reusable buffers: a producer refills a [`Sample`] in place
//! (`Vec::clear` + `extend`, no new allocation once capacity is reached), which
//! is how adapters avoid allocating per sample when they push into a
//! [`crate::ring`].
//!
//! Pixel data is stored as raw little-endian bytes in the layout of the named
//! [`PixelFormat`], exactly as V4L2 delivers it and as MCAP stores it, so a
//! recording round trip is bit exact.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::modality::Modality;

/// Layout of a frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    /// 3 bytes per pixel, R G B.
    Rgb8,
    /// Depth, u16 little-endian millimetres; 0 means "no measurement".
    DepthZ16,
    /// Thermal, u16 little-endian radiometric counts (Lepton TLinear: centi-kelvin).
    ThermalY16,
    /// Thermal, f32 little-endian degrees Celsius.
    ThermalF32,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::DepthZ16 | PixelFormat::ThermalY16 => 2,
            PixelFormat::ThermalF32 => 4,
        }
    }

    /// The Foxglove / ROS `encoding` string of a `RawImage` in this format.
    pub fn foxglove_encoding(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::DepthZ16 | PixelFormat::ThermalY16 => "16UC1",
            PixelFormat::ThermalF32 => "32FC1",
        }
    }

    /// Canonical name (used in channel metadata).
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::DepthZ16 => "depth_z16",
            PixelFormat::ThermalY16 => "thermal_y16",
            PixelFormat::ThermalF32 => "thermal_f32",
        }
    }

    /// Parses [`PixelFormat::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        [
            PixelFormat::Rgb8,
            PixelFormat::DepthZ16,
            PixelFormat::ThermalY16,
            PixelFormat::ThermalF32,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// Error for a frame whose buffer does not match its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame {width}x{height} {format:?} needs {expected} bytes, buffer has {actual}")]
pub struct FrameSizeError {
    /// Declared width.
    pub width: u32,
    /// Declared height.
    pub height: u32,
    /// Declared format.
    pub format: PixelFormat,
    /// Bytes the header implies.
    pub expected: usize,
    /// Bytes present.
    pub actual: usize,
}

/// One image.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Byte layout.
    pub format: PixelFormat,
    /// Row-major pixels, no row padding, little-endian.
    pub data: Vec<u8>,
}

impl Frame {
    /// A zero-filled frame.
    pub fn zeroed(width: u32, height: u32, format: PixelFormat) -> Self {
        let n = width as usize * height as usize * format.bytes_per_pixel();
        Frame {
            width,
            height,
            format,
            data: vec![0; n],
        }
    }

    /// Bytes the header implies.
    pub fn expected_len(&self) -> usize {
        self.width as usize * self.height as usize * self.format.bytes_per_pixel()
    }

    /// Checks that the buffer matches width, height and format.
    pub fn validate(&self) -> Result<(), FrameSizeError> {
        let expected = self.expected_len();
        if self.data.len() == expected {
            Ok(())
        } else {
            Err(FrameSizeError {
                width: self.width,
                height: self.height,
                format: self.format,
                expected,
                actual: self.data.len(),
            })
        }
    }

    /// Re-shapes the frame in place, reusing the buffer's capacity.
    pub fn reshape(&mut self, width: u32, height: u32, format: PixelFormat) {
        self.width = width;
        self.height = height;
        self.format = format;
        let n = self.expected_len();
        self.data.clear();
        self.data.resize(n, 0);
    }

    /// The u16 value at pixel index `i` of a Z16/Y16 frame.
    pub fn u16_at(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]])
    }

    /// The f32 value at pixel index `i` of a `ThermalF32` frame.
    pub fn f32_at(&self, i: usize) -> f32 {
        let b = &self.data[4 * i..4 * i + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// A chunk of PCM audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Interleaved f32 samples in [-1, 1]. The chunk's timestamp is that of its first sample.
    pub samples: Vec<f32>,
}

impl AudioChunk {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / self.channels as usize
        }
    }

    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.frames() as u64 * crate::clock::NS_PER_SEC / self.sample_rate as u64
    }
}

/// One inertial measurement, in SI units, in the device frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ImuSample {
    /// Specific force, m/s^2 (includes gravity: a device at rest reads ~9.81 upward).
    pub accel: [f32; 3],
    /// Angular rate, rad/s.
    pub gyro: [f32; 3],
}

/// The data of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An image (vision, depth or thermal).
    Frame(Frame),
    /// A chunk of audio.
    Audio(AudioChunk),
    /// One IMU reading.
    Imu(ImuSample),
}

/// A timestamped piece of sensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which modality it belongs to.
    pub modality: Modality,
    /// When it was captured (for audio: its first sample).
    pub t: Timestamp,
    /// The data.
    pub payload: Payload,
}

impl Sample {
    /// An empty sample of the given modality, ready to be filled in place.
    pub fn empty(modality: Modality) -> Self {
        let payload = match modality {
            Modality::Vision => Payload::Frame(Frame::zeroed(0, 0, PixelFormat::Rgb8)),
            Modality::Depth => Payload::Frame(Frame::zeroed(0, 0, PixelFormat::DepthZ16)),
            Modality::Thermal => Payload::Frame(Frame::zeroed(0, 0, PixelFormat::ThermalY16)),
            Modality::Audio => Payload::Audio(AudioChunk {
                sample_rate: 0,
                channels: 1,
                samples: Vec::new(),
            }),
            Modality::Imu => Payload::Imu(ImuSample::default()),
        };
        Sample {
            modality,
            t: Timestamp::default(),
            payload,
        }
    }

    /// The frame, if this is a frame sample.
    pub fn frame(&self) -> Option<&Frame> {
        match &self.payload {
            Payload::Frame(f) => Some(f),
            _ => None,
        }
    }

    /// The frame for in-place filling; turns the payload into a frame if it is not one.
    pub fn frame_mut(&mut self) -> &mut Frame {
        if !matches!(self.payload, Payload::Frame(_)) {
            self.payload = Payload::Frame(Frame::zeroed(0, 0, PixelFormat::Rgb8));
        }
        match &mut self.payload {
            Payload::Frame(f) => f,
            _ => unreachable!("payload was just made a frame"),
        }
    }

    /// The audio chunk, if this is an audio sample.
    pub fn audio(&self) -> Option<&AudioChunk> {
        match &self.payload {
            Payload::Audio(a) => Some(a),
            _ => None,
        }
    }

    /// The audio chunk for in-place filling; turns the payload into audio if it is not.
    pub fn audio_mut(&mut self) -> &mut AudioChunk {
        if !matches!(self.payload, Payload::Audio(_)) {
            self.payload = Payload::Audio(AudioChunk {
                sample_rate: 0,
                channels: 1,
                samples: Vec::new(),
            });
        }
        match &mut self.payload {
            Payload::Audio(a) => a,
            _ => unreachable!("payload was just made audio"),
        }
    }

    /// The IMU reading, if this is an IMU sample.
    pub fn imu(&self) -> Option<&ImuSample> {
        match &self.payload {
            Payload::Imu(s) => Some(s),
            _ => None,
        }
    }

    /// Copies `other` into `self`, reusing `self`'s buffers (no allocation when
    /// capacities suffice).
    pub fn copy_from(&mut self, other: &Sample) {
        self.modality = other.modality;
        self.t = other.t;
        match &other.payload {
            Payload::Frame(src) => {
                let dst = self.frame_mut();
                dst.width = src.width;
                dst.height = src.height;
                dst.format = src.format;
                dst.data.clear();
                dst.data.extend_from_slice(&src.data);
            }
            Payload::Audio(src) => {
                let dst = self.audio_mut();
                dst.sample_rate = src.sample_rate;
                dst.channels = src.channels;
                dst.samples.clear();
                dst.samples.extend_from_slice(&src.samples);
            }
            Payload::Imu(s) => self.payload = Payload::Imu(*s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_validation_names_sizes() {
        let mut f = Frame::zeroed(4, 2, PixelFormat::DepthZ16);
        assert_eq!(f.data.len(), 16);
        assert!(f.validate().is_ok());
        f.data.pop();
        let e = f.validate().unwrap_err();
        assert_eq!((e.expected, e.actual), (16, 15));
        assert!(e.to_string().contains("needs 16 bytes"));
    }

    #[test]
    fn copy_from_reuses_capacity() {
        let mut src = Sample::empty(Modality::Vision);
        src.frame_mut().reshape(8, 8, PixelFormat::Rgb8);
        src.frame_mut().data[5] = 9;
        let mut dst = Sample::empty(Modality::Vision);
        dst.copy_from(&src);
        let cap = dst.frame().unwrap().data.capacity();
        let ptr = dst.frame().unwrap().data.as_ptr();
        dst.copy_from(&src);
        assert_eq!(dst, src);
        assert_eq!(dst.frame().unwrap().data.capacity(), cap);
        assert_eq!(dst.frame().unwrap().data.as_ptr(), ptr);
    }

    #[test]
    fn audio_duration() {
        let a = AudioChunk {
            sample_rate: 16_000,
            channels: 2,
            samples: vec![0.0; 640],
        };
        assert_eq!(a.frames(), 320);
        assert_eq!(a.duration_ns(), 20_000_000);
    }
}
