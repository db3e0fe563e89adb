//! Configuration of the real device rig: the `[rig.devices]` table of a daemon
//! config (see `configs/jetson.toml`).
//!
//! ```toml
//! [rig.devices.camera]
//! device = "/dev/video0"        # a path, or (part of) the V4L2 card name
//! width = 640
//! height = 480
//! fps = 30.0
//! format = "mjpeg"              # "mjpeg" | "yuyv" | "rgb24"
//! ```
//!
//! Every table is optional (a rig has the sensors it has); unknown keys are
//! errors, so a typo never passes silently. [`DevicesConfig::validate`] checks
//! values (sizes, rates, calibrations) and names the offending key.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adapter::SensorError;

/// The `[rig.devices]` table: which real sensors the rig has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// RGB camera (V4L2).
    #[serde(default)]
    pub camera: Option<CameraConfig>,
    /// Depth camera (V4L2 Z16).
    #[serde(default)]
    pub depth: Option<DepthConfig>,
    /// Radiometric thermal camera (V4L2 Y16).
    #[serde(default)]
    pub thermal: Option<ThermalConfig>,
    /// Microphone (ALSA through cpal).
    #[serde(default)]
    pub microphone: Option<MicConfig>,
    /// IMU (Linux IIO).
    #[serde(default)]
    pub imu: Option<ImuConfig>,
    /// Reconnect backoff of every device.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
}

/// Pixel format a camera is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraFormat {
    /// Motion JPEG (`MJPG`): high resolutions at full rate over USB 2.
    Mjpeg,
    /// YUYV 4:2:2 (`YUYV`): uncompressed, bandwidth-limited.
    Yuyv,
    /// RGB24 (`RGB3`): CSI cameras through a converter, test sources.
    Rgb24,
}

impl CameraFormat {
    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            CameraFormat::Mjpeg => *b"MJPG",
            CameraFormat::Yuyv => *b"YUYV",
            CameraFormat::Rgb24 => *b"RGB3",
        }
    }
}

/// `[rig.devices.camera]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// `/dev/videoN` (or a stable `/dev/v4l/by-id/...` link), or a case-insensitive
    /// part of the card name (`edgebind sensors list` shows both). A name is looked
    /// up again at every reconnect, so it survives a replug that renumbers the node.
    pub device: String,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Pixel format asked of the device.
    pub format: CameraFormat,
    /// Driver buffers (mmap), 2..=32.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
}

/// `[rig.devices.depth]`: a UVC depth camera delivering Z16.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthConfig {
    /// Device path or card-name part (the node offering `Z16` is chosen).
    pub device: String,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Millimetres per Z16 count (RealSense D4xx: 1.0; D405: 0.1).
    #[serde(default = "one")]
    pub depth_scale_mm: f32,
    /// Focal length of the depth image, pixels (for depth -> disparity).
    pub fx: f32,
    /// Stereo baseline, metres (for depth -> disparity).
    pub baseline_m: f32,
    /// Driver buffers (mmap), 2..=32.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
}

/// What the Y16 counts of a thermal camera mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThermalUnits {
    /// Centi-kelvin (Lepton TLinear, high resolution; PureThermal default).
    Centikelvin,
    /// Deci-kelvin (Lepton TLinear, low resolution).
    Decikelvin,
    /// `kelvin = counts * kelvin_per_count + kelvin_offset` (both keys required).
    Linear,
}

/// How thermal frames go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThermalOutput {
    /// [`crate::PixelFormat::ThermalY16`]: centi-kelvin, 2 bytes per pixel.
    #[default]
    Centikelvin,
    /// [`crate::PixelFormat::ThermalF32`]: degrees Celsius, 4 bytes per pixel.
    Celsius,
}

/// `[rig.devices.thermal]`: a radiometric thermal camera delivering Y16.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalConfig {
    /// Device path or card-name part (the node offering `Y16 ` is chosen).
    pub device: String,
    /// Width, pixels (Lepton 3.x: 160).
    pub width: u32,
    /// Height, pixels (Lepton 3.x: 120).
    pub height: u32,
    /// Frames per second (Lepton: about 8.7; PureThermal reports 9).
    pub fps: f64,
    /// Meaning of the counts.
    #[serde(default = "centikelvin")]
    pub units: ThermalUnits,
    /// Kelvin per count, with `units = "linear"`.
    #[serde(default)]
    pub kelvin_per_count: Option<f32>,
    /// Kelvin at count 0, with `units = "linear"`.
    #[serde(default)]
    pub kelvin_offset: Option<f32>,
    /// Output format.
    #[serde(default)]
    pub output: ThermalOutput,
    /// Driver buffers (mmap), 2..=32.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
}

/// `[rig.devices.microphone]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicConfig {
    /// ALSA PCM id (`hw:CARD=Device,DEV=0`, `default`...) or a case-insensitive part
    /// of its description; absent: the default input.
    #[serde(default)]
    pub device: Option<String>,
    /// Sample rate to ask of the device; absent: its default (native) rate. Chunks go
    /// out at this rate, mono; models/ resamples to the encoder's rate.
    #[serde(default)]
    pub sample_rate: Option<u32>,
    /// Milliseconds of audio per chunk pushed into the ring (5..=500).
    #[serde(default = "default_chunk_ms")]
    pub chunk_ms: u32,
}

/// How the IMU is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImuMode {
    /// IIO buffered capture through `/dev/iio:deviceN` (a trigger paces the device).
    #[default]
    Buffered,
    /// Reads the `_raw` sysfs attributes at the configured rate (no buffer support
    /// needed; timestamps are read times).
    Polled,
}

/// `[rig.devices.imu]`: an IIO device with accelerometer and gyroscope channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImuConfig {
    /// `iio:deviceN`, or the IIO device `name` (e.g. `bmi160`, `mpu6050`).
    pub device: String,
    /// Samples per second (written to `sampling_frequency` where the device has it).
    pub rate_hz: f64,
    /// Buffered capture or polling.
    #[serde(default)]
    pub mode: ImuMode,
    /// Trigger to attach in buffered mode (`trigger/current_trigger`); absent: keep
    /// the device's, or pick the trigger named after it (`<name>-dev<N>`).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Kernel buffer length, in samples.
    #[serde(default = "default_iio_buffer")]
    pub buffer_length: u32,
    /// Root of sysfs (default `/sys`; the `EDGEBIND_SYSFS_ROOT` variable overrides
    /// it too): for tests and containers.
    #[serde(default)]
    pub sysfs_root: Option<PathBuf>,
    /// Where the `iio:deviceN` character devices are (default `/dev`).
    #[serde(default)]
    pub dev_root: Option<PathBuf>,
}

/// `[rig.devices.reconnect]`: exponential backoff between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First delay, seconds.
    pub initial_s: f64,
    /// Longest delay, seconds (the delay doubles up to it).
    pub max_s: f64,
    /// Seconds without data after which a device counts as gone.
    pub stall_s: f64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_s: 0.5,
            max_s: 10.0,
            stall_s: 3.0,
        }
    }
}

impl ReconnectConfig {
    /// First delay.
    pub fn initial(&self) -> Duration {
        Duration::from_secs_f64(self.initial_s)
    }
    /// Longest delay.
    pub fn max(&self) -> Duration {
        Duration::from_secs_f64(self.max_s)
    }
    /// Stall timeout.
    pub fn stall(&self) -> Duration {
        Duration::from_secs_f64(self.stall_s)
    }
}

fn default_buffers() -> u32 {
    4
}
fn one() -> f32 {
    1.0
}
fn centikelvin() -> ThermalUnits {
    ThermalUnits::Centikelvin
}
fn default_chunk_ms() -> u32 {
    20
}
fn default_iio_buffer() -> u32 {
    64
}

/// Intrinsics of the depth stream that the depth -> disparity step needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DepthIntrinsics {
    /// Focal length, pixels.
    pub fx_px: f32,
    /// Stereo baseline, metres.
    pub baseline_m: f32,
}

fn invalid(key: &str, detail: impl std::fmt::Display) -> SensorError {
    SensorError::Device {
        adapter: "devices config".into(),
        detail: format!("rig.devices.{key}: {detail}"),
    }
}

fn check_frame(
    key: &str,
    width: u32,
    height: u32,
    fps: f64,
    buffers: u32,
) -> Result<(), SensorError> {
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(invalid(
            key,
            format!("size {width}x{height} must be 1..=16384 on each side"),
        ));
    }
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(invalid(key, format!("fps {fps} must be in (0, 1000]")));
    }
    if !(2..=32).contains(&buffers) {
        return Err(invalid(key, format!("buffers {buffers} must be 2..=32")));
    }
    Ok(())
}

fn positive(key: &str, name: &str, v: f64) -> Result<(), SensorError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{name} = {v} must be a positive number"),
        ))
    }
}

impl DevicesConfig {
    /// Checks every value; the error names the key (`rig.devices.depth: fx = 0 ...`).
    pub fn validate(&self) -> Result<(), SensorError> {
        if let Some(c) = &self.camera {
            check_frame("camera", c.width, c.height, c.fps, c.buffers)?;
            if c.format == CameraFormat::Yuyv && c.width % 2 == 1 {
                return Err(invalid(
                    "camera",
                    format!("YUYV needs an even width, got {}", c.width),
                ));
            }
        }
        if let Some(d) = &self.depth {
            check_frame("depth", d.width, d.height, d.fps, d.buffers)?;
            positive("depth", "fx", d.fx as f64)?;
            positive("depth", "baseline_m", d.baseline_m as f64)?;
            positive("depth", "depth_scale_mm", d.depth_scale_mm as f64)?;
        }
        if let Some(t) = &self.thermal {
            check_frame("thermal", t.width, t.height, t.fps, t.buffers)?;
            t.calibration()?;
        }
        if let Some(m) = &self.microphone {
            if !(5..=500).contains(&m.chunk_ms) {
                return Err(invalid(
                    "microphone",
                    format!("chunk_ms {} must be 5..=500", m.chunk_ms),
                ));
            }
            if let Some(r) = m.sample_rate
                && !(4000..=384_000).contains(&r)
            {
                return Err(invalid(
                    "microphone",
                    format!("sample_rate {r} must be 4000..=384000"),
                ));
            }
        }
        if let Some(i) = &self.imu {
            if !(i.rate_hz.is_finite() && i.rate_hz > 0.0 && i.rate_hz <= 10_000.0) {
                return Err(invalid(
                    "imu",
                    format!("rate_hz {} must be in (0, 10000]", i.rate_hz),
                ));
            }
            if i.buffer_length == 0 {
                return Err(invalid("imu", "buffer_length must be at least 1"));
            }
        }
        let r = &self.reconnect;
        positive("reconnect", "initial_s", r.initial_s)?;
        positive("reconnect", "max_s", r.max_s)?;
        positive("reconnect", "stall_s", r.stall_s)?;
        if r.max_s < r.initial_s {
            return Err(invalid(
                "reconnect",
                format!("max_s {} is below initial_s {}", r.max_s, r.initial_s),
            ));
        }
        Ok(())
    }

    /// The depth stream's intrinsics, for the disparity step of the depth encoder
    /// (the daemon puts them into the encoder's `DepthParams`: `fx_px`, `baseline_m`).
    pub fn depth_intrinsics(&self) -> Option<DepthIntrinsics> {
        self.depth.as_ref().map(|d| DepthIntrinsics {
            fx_px: d.fx,
            baseline_m: d.baseline_m,
        })
    }

    /// Whether no sensor is configured.
    pub fn is_empty(&self) -> bool {
        self.camera.is_none()
            && self.depth.is_none()
            && self.thermal.is_none()
            && self.microphone.is_none()
            && self.imu.is_none()
    }
}

impl ThermalConfig {
    /// The counts -> kelvin calibration the config describes.
    pub fn calibration(&self) -> Result<crate::devices::convert::ThermalCalibration, SensorError> {
        use crate::devices::convert::ThermalCalibration;
        let cal = match self.units {
            ThermalUnits::Centikelvin => ThermalCalibration::CENTIKELVIN,
            ThermalUnits::Decikelvin => ThermalCalibration {
                kelvin_per_count: 0.1,
                kelvin_offset: 0.0,
            },
            ThermalUnits::Linear => match (self.kelvin_per_count, self.kelvin_offset) {
                (Some(k), Some(o)) => ThermalCalibration {
                    kelvin_per_count: k,
                    kelvin_offset: o,
                },
                _ => {
                    return Err(invalid(
                        "thermal",
                        "units = \"linear\" needs kelvin_per_count and kelvin_offset",
                    ));
                }
            },
        };
        if self.units != ThermalUnits::Linear
            && (self.kelvin_per_count.is_some() || self.kelvin_offset.is_some())
        {
            return Err(invalid(
                "thermal",
                "kelvin_per_count / kelvin_offset apply only with units = \"linear\"",
            ));
        }
        if !(cal.kelvin_per_count.is_finite()
            && cal.kelvin_per_count > 0.0
            && cal.kelvin_offset.is_finite())
        {
            return Err(invalid(
                "thermal",
                format!(
                    "kelvin_per_count {} must be positive and kelvin_offset {} finite",
                    cal.kelvin_per_count, cal.kelvin_offset
                ),
            ));
        }
        Ok(cal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DevicesConfig, String> {
        let c: DevicesConfig = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn minimal_tables_parse_with_defaults() {
        let c = parse(
            "[camera]\ndevice = \"/dev/video0\"\nwidth = 640\nheight = 480\nfps = 30.0\nformat = \"mjpeg\"\n\
             [thermal]\ndevice = \"PureThermal\"\nwidth = 160\nheight = 120\nfps = 9.0\n\
             [microphone]\n[imu]\ndevice = \"bmi160\"\nrate_hz = 200.0\n",
        )
        .unwrap();
        let cam = c.camera.unwrap();
        assert_eq!((cam.format, cam.buffers), (CameraFormat::Mjpeg, 4));
        let t = c.thermal.unwrap();
        assert_eq!(
            (t.units, t.output),
            (ThermalUnits::Centikelvin, ThermalOutput::Centikelvin)
        );
        assert_eq!(c.microphone.unwrap().chunk_ms, 20);
        assert_eq!(c.imu.unwrap().mode, ImuMode::Buffered);
        assert_eq!(c.reconnect, ReconnectConfig::default());
        assert!(c.depth.is_none());
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let e = parse(
            "[camera]\ndevice = \"x\"\nwidth = 640\nheight = 480\nfps = 30.0\nformat = \"h264\"\n",
        )
        .unwrap_err();
        assert!(e.contains("h264"), "{e}");
        let e = parse("[imu]\ndevice = \"x\"\nrate_hz = 100.0\nrate = 3\n").unwrap_err();
        assert!(e.contains("rate"), "{e}");
        let e = parse("[depth]\ndevice = \"d\"\nwidth = 640\nheight = 480\nfps = 30.0\nfx = 0.0\nbaseline_m = 0.05\n").unwrap_err();
        assert!(e.contains("rig.devices.depth") && e.contains("fx"), "{e}");
        let e = parse(
            "[thermal]\ndevice = \"t\"\nwidth = 160\nheight = 120\nfps = 9.0\nunits = \"linear\"\n",
        )
        .unwrap_err();
        assert!(e.contains("kelvin_per_count"), "{e}");
        let e = parse(
            "[camera]\ndevice = \"x\"\nwidth = 641\nheight = 480\nfps = 30.0\nformat = \"yuyv\"\n",
        )
        .unwrap_err();
        assert!(e.contains("even width"), "{e}");
        let e = parse("[reconnect]\ninitial_s = 5.0\nmax_s = 1.0\n").unwrap_err();
        assert!(e.contains("max_s"), "{e}");
        let e = parse("[microphone]\nchunk_ms = 0\n").unwrap_err();
        assert!(e.contains("chunk_ms"), "{e}");
    }

    #[test]
    fn depth_intrinsics_come_from_the_depth_table() {
        let c = parse("[depth]\ndevice = \"RealSense\"\nwidth = 848\nheight = 480\nfps = 30.0\nfx = 421.5\nbaseline_m = 0.05\n").unwrap();
        assert_eq!(
            c.depth_intrinsics(),
            Some(DepthIntrinsics {
                fx_px: 421.5,
                baseline_m: 0.05
            })
        );
        assert_eq!(DevicesConfig::default().depth_intrinsics(), None);
        assert!(DevicesConfig::default().is_empty());
    }
}
