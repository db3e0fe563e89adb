//! Message schemas of an edgebind recording, and their protobuf descriptors.
//!
//! Camera, depth and thermal frames use Foxglove's well-known `foxglove.RawImage`
//! (so the file opens in Foxglove as images: `rgb8`, `16UC1`, `32FC1`, little
//! endian). Foxglove has no schema that holds f32 audio or an IMU reading
//! bit-exactly, so those use edgebind's own protobuf schemas, described in the
//! file like any other (Foxglove still shows their fields). Ground truth is JSON.
//!
//! The descriptors are built in code from `prost-types`, so no `.proto` file or
//! `protoc` is needed at build time.

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

use prost::Message as _;

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct PbTimestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl PbTimestamp {
    /// From Unix nanoseconds.
    pub fn from_ns(ns: u64) -> Self {
        PbTimestamp {
            seconds: (ns / 1_000_000_000) as i64,
            nanos: (ns % 1_000_000_000) as i32,
        }
    }
}

/// `foxglove.RawImage`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawImage {
    /// Capture time (wall clock).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<PbTimestamp>,
    /// Frame of reference.
    #[prost(string, tag = "7")]
    pub frame_id: String,
    /// Width, pixels.
    #[prost(fixed32, tag = "2")]
    pub width: u32,
    /// Height, pixels.
    #[prost(fixed32, tag = "3")]
    pub height: u32,
    /// `rgb8`, `16UC1` or `32FC1`.
    #[prost(string, tag = "4")]
    pub encoding: String,
    /// Bytes per row.
    #[prost(fixed32, tag = "5")]
    pub step: u32,
    /// Pixels.
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
}

/// `edgebind.AudioChunk`: PCM, f32 little-endian, interleaved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbAudioChunk {
    /// Time of the first sample (wall clock).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<PbTimestamp>,
    /// Samples per second per channel.
    #[prost(fixed32, tag = "2")]
    pub sample_rate: u32,
    /// Interleaved channels.
    #[prost(fixed32, tag = "3")]
    pub channels: u32,
    /// Always `pcm-f32le`.
    #[prost(string, tag = "4")]
    pub format: String,
    /// Samples.
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
}

/// `edgebind.ImuSample`: SI units, device frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbImuSample {
    /// Measurement time (wall clock).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<PbTimestamp>,
    /// Accelerometer x, y, z in m/s^2.
    #[prost(float, repeated, tag = "2")]
    pub accel: Vec<f32>,
    /// Gyroscope x, y, z in rad/s.
    #[prost(float, repeated, tag = "3")]
    pub gyro: Vec<f32>,
}

/// Audio format string of [`PbAudioChunk::format`].
pub const AUDIO_FORMAT: &str = "pcm-f32le";

fn field(
    name: &str,
    number: i32,
    ty: Type,
    type_name: Option<&str>,
    repeated: bool,
) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.to_string()),
        number: Some(number),
        label: Some(if repeated {
            Label::Repeated
        } else {
            Label::Optional
        } as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(str::to_string),
        json_name: Some(name.to_string()),
        ..Default::default()
    }
}

fn file(
    name: &str,
    package: &str,
    message: &str,
    fields: Vec<FieldDescriptorProto>,
) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(name.to_string()),
        package: Some(package.to_string()),
        dependency: vec!["google/protobuf/timestamp.proto".to_string()],
        message_type: vec![DescriptorProto {
            name: Some(message.to_string()),
            field: fields,
            ..Default::default()
        }],
        syntax: Some("proto3".to_string()),
        ..Default::default()
    }
}

fn timestamp_file() -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("google/protobuf/timestamp.proto".to_string()),
        package: Some("google.protobuf".to_string()),
        message_type: vec![DescriptorProto {
            name: Some("Timestamp".to_string()),
            field: vec![
                field("seconds", 1, Type::Int64, None, false),
                field("nanos", 2, Type::Int32, None, false),
            ],
            ..Default::default()
        }],
        syntax: Some("proto3".to_string()),
        ..Default::default()
    }
}

const TS: Option<&str> = Some(".google.protobuf.Timestamp");

/// Schema name and encoded `FileDescriptorSet` of `foxglove.RawImage`.
pub fn raw_image_schema() -> (&'static str, Vec<u8>) {
    let f = file(
        "foxglove/RawImage.proto",
        "foxglove",
        "RawImage",
        vec![
            field("timestamp", 1, Type::Message, TS, false),
            field("frame_id", 7, Type::String, None, false),
            field("width", 2, Type::Fixed32, None, false),
            field("height", 3, Type::Fixed32, None, false),
            field("encoding", 4, Type::String, None, false),
            field("step", 5, Type::Fixed32, None, false),
            field("data", 6, Type::Bytes, None, false),
        ],
    );
    ("foxglove.RawImage", set(f))
}

/// Schema name and encoded `FileDescriptorSet` of `edgebind.AudioChunk`.
pub fn audio_schema() -> (&'static str, Vec<u8>) {
    let f = file(
        "edgebind/AudioChunk.proto",
        "edgebind",
        "AudioChunk",
        vec![
            field("timestamp", 1, Type::Message, TS, false),
            field("sample_rate", 2, Type::Fixed32, None, false),
            field("channels", 3, Type::Fixed32, None, false),
            field("format", 4, Type::String, None, false),
            field("data", 5, Type::Bytes, None, false),
        ],
    );
    ("edgebind.AudioChunk", set(f))
}

/// Schema name and encoded `FileDescriptorSet` of `edgebind.ImuSample`.
pub fn imu_schema() -> (&'static str, Vec<u8>) {
    let f = file(
        "edgebind/ImuSample.proto",
        "edgebind",
        "ImuSample",
        vec![
            field("timestamp", 1, Type::Message, TS, false),
            field("accel", 2, Type::Float, None, true),
            field("gyro", 3, Type::Float, None, true),
        ],
    );
    ("edgebind.ImuSample", set(f))
}

/// Schema name and JSON Schema of ground-truth messages.
pub fn truth_schema() -> (&'static str, Vec<u8>) {
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "edgebind.GroundTruth",
        "description": "Situations active in [start_ns, end_ns) of sim time. Evaluation only.",
        "type": "object",
        "properties": {
            "start_ns": {"type": "integer"},
            "end_ns": {"type": "integer"},
            "situations": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["start_ns", "end_ns", "situations"]
    });
    ("edgebind.GroundTruth", schema.to_string().into_bytes())
}

fn set(f: FileDescriptorProto) -> Vec<u8> {
    FileDescriptorSet {
        file: vec![timestamp_file(), f],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_decode_and_name_fields() {
        for (name, bytes) in [raw_image_schema(), audio_schema(), imu_schema()] {
            let set = FileDescriptorSet::decode(bytes.as_slice()).unwrap();
            assert_eq!(set.file.len(), 2);
            let msg = &set.file[1].message_type[0];
            assert_eq!(format!("{}.{}", set.file[1].package(), msg.name()), name);
            assert!(msg.field.iter().any(|f| f.name() == "timestamp"));
        }
    }

    #[test]
    fn raw_image_wire_format_matches_foxglove_field_numbers() {
        let img = RawImage {
            timestamp: Some(PbTimestamp::from_ns(1_500_000_001)),
            frame_id: "cam".into(),
            width: 1,
            height: 1,
            encoding: "rgb8".into(),
            step: 3,
            data: vec![1, 2, 3],
        };
        let b = img.encode_to_vec();
        // width is field 2 as fixed32: tag byte (2 << 3) | 5 = 0x15.
        assert!(b.windows(5).any(|w| w == [0x15, 1, 0, 0, 0]));
        // data is field 6, length-delimited: (6 << 3) | 2 = 0x32.
        assert!(b.windows(5).any(|w| w == [0x32, 3, 1, 2, 3]));
        assert_eq!(RawImage::decode(b.as_slice()).unwrap(), img);
    }
}
