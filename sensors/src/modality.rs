//! The five sensing modalities edgebind streams, and their canonical names.
//!
//! The names (`vision`, `audio`, `depth`, `thermal`, `imu`) are the ones used in
//! configs, MCAP channel metadata, contracts and MQTT payloads. Text is not a
//! sensor modality: it lives in `models/`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A sensing modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// RGB camera frames.
    Vision,
    /// Microphone PCM.
    Audio,
    /// Depth frames (Z16 millimetres).
    Depth,
    /// Thermal frames (Y16 radiometric counts or f32 Celsius).
    Thermal,
    /// Accelerometer + gyroscope samples.
    Imu,
}

impl Modality {
    /// All modalities, in canonical order (also the tie-break order of equal timestamps).
    pub const ALL: [Modality; 5] = [
        Modality::Vision,
        Modality::Audio,
        Modality::Depth,
        Modality::Thermal,
        Modality::Imu,
    ];

    /// Canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Vision => "vision",
            Modality::Audio => "audio",
            Modality::Depth => "depth",
            Modality::Thermal => "thermal",
            Modality::Imu => "imu",
        }
    }

    /// Position in [`Modality::ALL`]; handy for per-modality arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the modality arrives as discrete frames (windows pick the nearest frame)
    /// rather than as a continuous sample stream (windows cover a time span).
    pub fn is_frame_stream(self) -> bool {
        matches!(self, Modality::Vision | Modality::Depth | Modality::Thermal)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown modality name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modality `{0}` (expected one of: vision, audio, depth, thermal, imu)")]
pub struct UnknownModality(pub String);

impl FromStr for Modality {
    type Err = UnknownModality;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modality::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownModality(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Modality::ALL {
            assert_eq!(m.as_str().parse::<Modality>().unwrap(), m);
            assert_eq!(Modality::ALL[m.index()], m);
        }
        let err = "radar".parse::<Modality>().unwrap_err();
        assert!(err.to_string().contains("radar"));
    }
}
