//! What is attached: V4L2 capture devices (formats, sizes, frame rates), ALSA
//! input devices (through cpal) and IIO devices (channels, rates), for
//! `edgebind sensors list`. Nothing here opens a stream.

use std::path::Path;

use serde::Serialize;

use super::iio::{self, IioDeviceInfo};

/// One size a format offers, with its frame rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeInfo {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Discrete frame rates (empty for stepwise ranges: see `fps_range`).
    pub fps: Vec<f64>,
    /// Min and max frame rate of a stepwise interval.
    pub fps_range: Option<(f64, f64)>,
}

/// One pixel format a device offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatInfo {
    /// Fourcc (`MJPG`, `YUYV`, `Z16`, `Y16`...).
    pub fourcc: String,
    /// Driver's description.
    pub description: String,
    /// Discrete sizes (a stepwise range is listed as its min and max).
    pub sizes: Vec<SizeInfo>,
}

/// A V4L2 capture device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoDeviceInfo {
    /// Node path.
    pub path: String,
    /// Card name.
    pub card: String,
    /// Driver.
    pub driver: String,
    /// Bus.
    pub bus: String,
    /// Formats, sizes and rates.
    pub formats: Vec<FormatInfo>,
}

/// An ALSA input device as cpal sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputDeviceInfo {
    /// ALSA PCM id (`default`, `hw:CARD=...,DEV=0`, `plughw:...`).
    pub id: String,
    /// Description (first line of the ALSA hint).
    pub name: String,
    /// Default config, e.g. `48000 Hz x2 f32`.
    pub default_config: Option<String>,
    /// Supported configs, e.g. `i16 x2 8000-48000 Hz`.
    pub configs: Vec<String>,
}

/// Everything found, and what could not be looked at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceListing {
    /// V4L2 capture devices.
    pub video: Vec<VideoDeviceInfo>,
    /// ALSA input devices.
    pub audio_inputs: Vec<InputDeviceInfo>,
    /// IIO devices.
    pub iio: Vec<IioDeviceInfo>,
    /// Devices or subsystems that could not be read, and why.
    pub errors: Vec<String>,
    /// Subsystems this build cannot look at.
    pub not_built: Vec<String>,
}

impl DeviceListing {
    /// Whether no sensor of any kind was found (ALSA's `null` PCM, which
    /// every ALSA installation defines, is not a microphone).
    pub fn is_empty(&self) -> bool {
        self.video.is_empty()
            && self.audio_inputs.iter().all(|a| a.id == "null")
            && self.iio.is_empty()
    }
}

/// Lists the devices: V4L2 nodes under `dev_root` (normally `/dev`), ALSA
/// inputs, IIO devices under `sysfs_root` (normally `/sys`).
pub fn list_devices(dev_root: &Path, sysfs_root: &Path) -> DeviceListing {
    let mut l = DeviceListing::default();
    #[cfg(feature = "devices")]
    {
        for r in super::v4l2::list_video(dev_root) {
            match r {
                Ok(v) => l.video.push(v),
                Err(e) => l.errors.push(e.to_string()),
            }
        }
        match super::mic::list_inputs() {
            Ok(v) => l.audio_inputs = v,
            Err(e) => l.errors.push(e.to_string()),
        }
    }
    #[cfg(not(feature = "devices"))]
    {
        let _ = dev_root;
        l.not_built
            .push("V4L2 and ALSA (edgebind-sensors built without the `devices` feature)".into());
    }
    match iio::list_devices(sysfs_root) {
        Ok(v) => l.iio = v,
        Err(e) => l.errors.push(e.to_string()),
    }
    l
}
