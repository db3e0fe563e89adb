//! Real sensors on a Jetson-class board: V4L2 cameras (RGB, depth Z16, thermal
//! Y16), an ALSA microphone and an IIO IMU, each behind the
//! [`SensorAdapter`] trait like the simulated rig.
//!
//! ```text
//! DevicesConfig --build_adapters--> SupervisedAdapter<V4l2Source | MicSource | IioSource>
//!   adapter thread: open --pump--> convert --push--> ring (drop-oldest)
//!                   \-- error / unplug / stall: Down{reason}, backoff 0.5 s .. 10 s, reopen: Up
//! ```
//!
//! * [`config`]: the `[rig.devices]` table ([`DevicesConfig`]).
//! * [`convert`]: the pure format conversions (YUYV, MJPEG, RGB24 -> RGB8;
//!   Z16 -> mm; Y16 -> centi-kelvin / °C; IIO scan records; mono downmix),
//!   tested on byte fixtures.
//! * [`supervisor`]: the thread every device runs on: reconnect with
//!   [`backoff`], rings kept across reconnects, panics in device code caught.
//! * [`v4l2`] and [`mic`] (cargo feature `devices`, on by default: they link
//!   libv4l2 headers via bindgen and ALSA), [`iio`] (sysfs, always built).
//! * [`clock`]: device timestamps are the kernel's `CLOCK_MONOTONIC`.
//! * [`list`]: what is attached (`edgebind sensors list`).
//!
//! ## Streams and sample formats
//! | sensor | stream | sample |
//! |---|---|---|
//! | camera | vision | `Rgb8` frames, driver timestamps |
//! | depth | depth | `DepthZ16` frames, millimetres (0 = no measurement) |
//! | thermal | thermal | `ThermalY16` centi-kelvin, or `ThermalF32` °C (`output = "celsius"`) |
//! | microphone | audio | mono f32 chunks at the device's native rate (see [`mic`] for why) |
//! | imu | imu | accel m/s^2, gyro rad/s |
//!
//! ## Depth intrinsics
//! The depth -> disparity step (`models/`, `DepthParams { fx_px, baseline_m }`)
//! needs the depth camera's focal length and baseline. They are rig facts, so
//! they live in `[rig.devices.depth]` (`fx`, `baseline_m`), and
//! [`DevicesConfig::depth_intrinsics`] hands them to whoever builds the depth
//! preprocessor: the daemon overrides those two fields of the encoder
//! contract's `DepthParams` with them (the contract keeps everything else:
//! the clipping depth and normalisation it was trained with). With models/'
//! current normalisation (disparity divided by its maximum at `min_depth_m`)
//! fx and baseline cancel out, so today the result does not depend on them;
//! they start to matter when a contract normalises by a fixed disparity.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod convert;
pub mod iio;
pub mod list;
#[cfg(feature = "devices")]
pub mod mic;
pub mod supervisor;
#[cfg(feature = "devices")]
pub mod v4l2;

pub use clock::DeviceClock;
pub use config::{
    CameraConfig, CameraFormat, DepthConfig, DepthIntrinsics, DevicesConfig, ImuConfig, ImuMode,
    MicConfig, ReconnectConfig, ThermalConfig, ThermalOutput, ThermalUnits,
};
pub use supervisor::{
    DeviceAdapter, DeviceError, DeviceSession, DeviceSource, DeviceStats, DeviceStatsSnapshot,
    SupervisedAdapter,
};

use crate::adapter::{SensorAdapter, SensorError, StreamInfo};
use crate::modality::Modality;

fn stream(modality: Modality, description: String, rate_hz: f64) -> Vec<StreamInfo> {
    vec![StreamInfo {
        modality,
        description,
        rate_hz,
    }]
}

/// The adapters of every configured device, one per sensor, in the order
/// camera, microphone, depth, thermal, IMU. Nothing is opened here: each
/// adapter opens its device on its own thread when started, and a device that
/// is absent at start is `Down` and retried, like one unplugged later.
pub fn build_adapters(cfg: &DevicesConfig) -> Result<Vec<Box<dyn SensorAdapter>>, SensorError> {
    Ok(build_device_adapters(cfg)?
        .into_iter()
        .map(|a| a as Box<dyn SensorAdapter>)
        .collect())
}

/// Like [`build_adapters`], keeping access to each adapter's device counters.
pub fn build_device_adapters(
    cfg: &DevicesConfig,
) -> Result<Vec<Box<dyn DeviceAdapter>>, SensorError> {
    cfg.validate()?;
    let policy = cfg.reconnect;
    let mut out: Vec<Box<dyn DeviceAdapter>> = Vec::new();
    #[cfg(feature = "devices")]
    {
        if let Some(c) = &cfg.camera {
            let desc = format!(
                "V4L2 camera {} {}x{} {:?} -> rgb8",
                c.device, c.width, c.height, c.format
            );
            let src = v4l2::V4l2Source::camera(c);
            out.push(Box::new(SupervisedAdapter::new(
                "camera",
                stream(Modality::Vision, desc, c.fps),
                src,
                policy,
            )));
        }
        if let Some(c) = &cfg.microphone {
            let desc = format!(
                "ALSA microphone {} at {}, mono, {} ms chunks",
                c.device.as_deref().unwrap_or("(default input)"),
                c.sample_rate
                    .map(|r| format!("{r} Hz"))
                    .unwrap_or_else(|| "its native rate".into()),
                c.chunk_ms
            );
            let src = mic::MicSource::new(c.clone());
            let rate = 1000.0 / c.chunk_ms as f64;
            out.push(Box::new(SupervisedAdapter::new(
                "microphone",
                stream(Modality::Audio, desc, rate),
                src,
                policy,
            )));
        }
        if let Some(c) = &cfg.depth {
            let desc = format!(
                "V4L2 depth {} {}x{} z16 mm (fx {} px, baseline {} m)",
                c.device, c.width, c.height, c.fx, c.baseline_m
            );
            let src = v4l2::V4l2Source::depth(c);
            out.push(Box::new(SupervisedAdapter::new(
                "depth",
                stream(Modality::Depth, desc, c.fps),
                src,
                policy,
            )));
        }
        if let Some(c) = &cfg.thermal {
            let desc = format!(
                "V4L2 thermal {} {}x{} y16 {:?} -> {:?}",
                c.device, c.width, c.height, c.units, c.output
            );
            let src = v4l2::V4l2Source::thermal(c, c.calibration()?);
            out.push(Box::new(SupervisedAdapter::new(
                "thermal",
                stream(Modality::Thermal, desc, c.fps),
                src,
                policy,
            )));
        }
    }
    #[cfg(not(feature = "devices"))]
    {
        let missing: Vec<&str> = [
            cfg.camera.as_ref().map(|_| "camera"),
            cfg.microphone.as_ref().map(|_| "microphone"),
            cfg.depth.as_ref().map(|_| "depth"),
            cfg.thermal.as_ref().map(|_| "thermal"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !missing.is_empty() {
            return Err(SensorError::Device {
                adapter: "devices".into(),
                detail: format!(
                    "rig.devices.{} needs edgebind-sensors built with the `devices` feature",
                    missing.join(", rig.devices.")
                ),
            });
        }
    }
    if let Some(c) = &cfg.imu {
        let desc = format!(
            "IIO IMU {} {:?} at {} Hz, accel m/s^2 + gyro rad/s",
            c.device, c.mode, c.rate_hz
        );
        let src = iio::IioSource::new(c.clone());
        out.push(Box::new(SupervisedAdapter::new(
            "imu",
            stream(Modality::Imu, desc, c.rate_hz),
            src,
            policy,
        )));
    }
    Ok(out)
}
