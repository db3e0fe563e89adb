//! Cameras through V4L2 (the `v4l` crate): the RGB camera (MJPEG, YUYV or
//! RGB24 -> RGB8), the depth camera (Z16 -> millimetres) and the radiometric
//! thermal camera (Y16 -> centi-kelvin or °C). All three are the same source
//! with a different frame conversion.
//!
//! Opening: the device is a path, or a part of the card name; a name is
//! resolved to the `/dev/video*` node whose card matches and which offers the
//! configured pixel format (a RealSense exposes several nodes with one name;
//! the one offering `Z16 ` is its depth node). The format must be accepted
//! exactly (size and fourcc), otherwise the error lists what the device offers;
//! the frame rate is requested and the granted one recorded. Capture uses mmap
//! buffers; each `pump` waits for one frame with a `poll` timeout.
//!
//! Timestamps are the driver's (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`: the
//! kernel's monotonic clock at the start or end of exposure, see
//! [`super::clock`]); a driver that does not stamp monotonic time, or a stamp
//! more than 5 s from now, gets the dequeue time. Frame sequence gaps count as
//! frames the device dropped; frames the driver flags as erroneous, or that do
//! not convert (wrong size, corrupt JPEG), are counted and skipped.
//!
//! Hot-plug: an unplugged camera fails `poll`/`VIDIOC_DQBUF` (`ENODEV`), the
//! session ends, and the supervisor reopens it with backoff; by name, a camera
//! that comes back as another `/dev/videoN` is found again.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::buffer::{Flags as BufFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::clock::DeviceClock;
use super::config::{CameraConfig, CameraFormat, DepthConfig, ThermalConfig, ThermalOutput};
use super::convert::{self, ConvertError, MjpegDecoder, ThermalCalibration};
use super::list::{FormatInfo, SizeInfo, VideoDeviceInfo};
use super::supervisor::{DeviceError, DeviceSession, DeviceSource, DeviceStats};
use crate::adapter::SampleProducer;
use crate::modality::Modality;
use crate::sample::{Frame, PixelFormat};

/// How a V4L2 stream's frames are converted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameKind {
    /// RGB camera in the given device format.
    Camera(CameraFormat),
    /// Z16 depth, millimetres per count.
    Depth {
        /// Millimetres per count.
        mm_per_count: f32,
    },
    /// Y16 thermal with its calibration, out as centi-kelvin or Celsius.
    Thermal {
        /// Counts -> kelvin.
        cal: ThermalCalibration,
        /// Output format.
        output: PixelFormat,
    },
}

impl FrameKind {
    fn fourcc(&self) -> [u8; 4] {
        match self {
            FrameKind::Camera(f) => f.fourcc(),
            FrameKind::Depth { .. } => *b"Z16 ",
            FrameKind::Thermal { .. } => *b"Y16 ",
        }
    }

    fn modality(&self) -> Modality {
        match self {
            FrameKind::Camera(_) => Modality::Vision,
            FrameKind::Depth { .. } => Modality::Depth,
            FrameKind::Thermal { .. } => Modality::Thermal,
        }
    }
}

/// A V4L2 capture device as a [`DeviceSource`].
pub struct V4l2Source {
    device: String,
    width: u32,
    height: u32,
    fps: f64,
    buffers: u32,
    kind: FrameKind,
    dev_root: PathBuf,
}

impl V4l2Source {
    /// The RGB camera.
    pub fn camera(c: &CameraConfig) -> Self {
        Self::new(
            &c.device,
            c.width,
            c.height,
            c.fps,
            c.buffers,
            FrameKind::Camera(c.format),
        )
    }

    /// The depth camera.
    pub fn depth(c: &DepthConfig) -> Self {
        Self::new(
            &c.device,
            c.width,
            c.height,
            c.fps,
            c.buffers,
            FrameKind::Depth {
                mm_per_count: c.depth_scale_mm,
            },
        )
    }

    /// The thermal camera (`cal` from [`ThermalConfig::calibration`]).
    pub fn thermal(c: &ThermalConfig, cal: ThermalCalibration) -> Self {
        let output = match c.output {
            ThermalOutput::Centikelvin => PixelFormat::ThermalY16,
            ThermalOutput::Celsius => PixelFormat::ThermalF32,
        };
        Self::new(
            &c.device,
            c.width,
            c.height,
            c.fps,
            c.buffers,
            FrameKind::Thermal { cal, output },
        )
    }

    fn new(device: &str, width: u32, height: u32, fps: f64, buffers: u32, kind: FrameKind) -> Self {
        V4l2Source {
            device: device.to_string(),
            width,
            height,
            fps,
            buffers,
            kind,
            dev_root: PathBuf::from("/dev"),
        }
    }

    /// The modality of its frames.
    pub fn modality(&self) -> Modality {
        self.kind.modality()
    }
}

fn fourcc_str(f: &FourCC) -> String {
    String::from_utf8_lossy(&f.repr).trim_end().to_string()
}

/// `/dev/video*` nodes under `dev_root`, in numeric order.
pub fn video_nodes(dev_root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dev_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let k = n.strip_prefix("video")?.parse::<u64>().ok()?;
            Some((k, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Runs `f`, turning a panic inside the `v4l` crate (it unwraps on odd driver
/// strings) into an error naming `what`.
fn guarded<T>(what: &str, f: impl FnOnce() -> std::io::Result<T>) -> Result<T, DeviceError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(DeviceError::new(format!("{what}: {e}"))),
        Err(_) => Err(DeviceError::new(format!(
            "{what}: the v4l binding panicked"
        ))),
    }
}

fn fps_of(f: &Fraction) -> f64 {
    if f.numerator == 0 {
        0.0
    } else {
        f.denominator as f64 / f.numerator as f64
    }
}

/// Describes the capture device at `path` (`None` if it is not a video capture node).
pub fn describe(path: &Path) -> Result<Option<VideoDeviceInfo>, DeviceError> {
    let p = path.display().to_string();
    let dev = guarded(&p, || Device::with_path(path))?;
    let caps = guarded(&p, || dev.query_caps())?;
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
        return Ok(None);
    }
    let mut formats = Vec::new();
    for d in guarded(&p, || dev.enum_formats())? {
        let mut sizes = Vec::new();
        let fs = guarded(&p, || dev.enum_framesizes(d.fourcc)).unwrap_or_default();
        for s in fs {
            let dims: Vec<(u32, u32)> = match &s.size {
                FrameSizeEnum::Discrete(x) => vec![(x.width, x.height)],
                FrameSizeEnum::Stepwise(x) => {
                    vec![(x.min_width, x.min_height), (x.max_width, x.max_height)]
                }
            };
            for (w, h) in dims {
                let mut fps = Vec::new();
                let mut fps_range = None;
                for iv in
                    guarded(&p, || dev.enum_frameintervals(d.fourcc, w, h)).unwrap_or_default()
                {
                    match iv.interval {
                        FrameIntervalEnum::Discrete(f) => fps.push(fps_of(&f)),
                        FrameIntervalEnum::Stepwise(st) => {
                            fps_range = Some((fps_of(&st.max), fps_of(&st.min)));
                        }
                    }
                }
                sizes.push(SizeInfo {
                    width: w,
                    height: h,
                    fps,
                    fps_range,
                });
            }
        }
        formats.push(FormatInfo {
            fourcc: fourcc_str(&d.fourcc),
            description: d.description.clone(),
            sizes,
        });
    }
    Ok(Some(VideoDeviceInfo {
        path: p,
        card: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
    }))
}

/// Every V4L2 capture device under `dev_root`, with an error per node that could
/// not be read (permissions, busy).
pub fn list_video(dev_root: &Path) -> Vec<Result<VideoDeviceInfo, DeviceError>> {
    video_nodes(dev_root)
        .iter()
        .filter_map(|p| describe(p).transpose())
        .collect()
}

impl V4l2Source {
    /// The node to open: the configured path, or the node whose card name
    /// contains the configured name and which offers our fourcc.
    fn resolve(&self) -> Result<PathBuf, DeviceError> {
        if self.device.starts_with('/') {
            return Ok(PathBuf::from(&self.device));
        }
        let want = self.device.to_lowercase();
        let fourcc = String::from_utf8_lossy(&self.kind.fourcc())
            .trim_end()
            .to_string();
        let mut seen = Vec::new();
        for node in video_nodes(&self.dev_root) {
            let Ok(Some(info)) = describe(&node) else {
                continue;
            };
            let offers = info.formats.iter().any(|f| f.fourcc == fourcc);
            if info.card.to_lowercase().contains(&want) && offers {
                return Ok(node);
            }
            seen.push(format!("{} \"{}\"", info.path, info.card));
        }
        Err(DeviceError::new(format!(
            "no V4L2 capture device named like \"{}\" offering {fourcc} (found: {})",
            self.device,
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        )))
    }

    fn offered(&self, dev: &Device) -> String {
        let fmts = guarded("enum", || dev.enum_formats()).unwrap_or_default();
        let mut out = Vec::new();
        for d in fmts {
            let sizes: Vec<String> = guarded("enum", || dev.enum_framesizes(d.fourcc))
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.size.to_string().replace("Discrete(", "").replace(')', ""))
                .collect();
            out.push(format!("{} [{}]", fourcc_str(&d.fourcc), sizes.join(" ")));
        }
        out.join("; ")
    }
}

impl DeviceSource for V4l2Source {
    fn open(&mut self, stats: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError> {
        let path = self.resolve()?;
        let p = path.display().to_string();
        let dev = guarded(&p, || Device::with_path(&path))?;
        let caps = guarded(&p, || dev.query_caps())?;
        if !caps
            .capabilities
            .contains(CapFlags::VIDEO_CAPTURE | CapFlags::STREAMING)
        {
            return Err(DeviceError::new(format!(
                "{p} (\"{}\") is not a streaming video capture device",
                caps.card
            )));
        }
        let fourcc = FourCC::new(&self.kind.fourcc());
        let asked = Format::new(self.width, self.height, fourcc);
        let got = guarded(&format!("{p}: VIDIOC_S_FMT"), || dev.set_format(&asked))?;
        if got.fourcc != fourcc || got.width != self.width || got.height != self.height {
            return Err(DeviceError::new(format!(
                "{p} (\"{}\") does not offer {} {}x{} (it chose {} {}x{}); it offers: {}",
                caps.card,
                fourcc_str(&fourcc),
                self.width,
                self.height,
                fourcc_str(&got.fourcc),
                got.width,
                got.height,
                self.offered(&dev)
            )));
        }
        let bpp = match self.kind {
            FrameKind::Camera(CameraFormat::Rgb24) => 3,
            FrameKind::Camera(CameraFormat::Mjpeg) => 0,
            _ => 2,
        };
        let stride = if got.stride == 0 {
            (self.width * bpp) as usize
        } else {
            got.stride as usize
        };
        let interval = Fraction::new(1000, (self.fps * 1000.0).round().max(1.0) as u32);
        let granted = guarded(&format!("{p}: VIDIOC_S_PARM"), || {
            dev.set_params(&v4l::video::capture::Parameters::new(interval))
        })
        .map(|g| fps_of(&g.interval))
        .unwrap_or(0.0);
        let mut stream = guarded(&format!("{p}: VIDIOC_REQBUFS"), || {
            MmapStream::with_buffers(&dev, Type::VideoCapture, self.buffers)
        })?;
        stream.set_timeout(Duration::from_millis(100));
        stats.set_detail(format!(
            "{p} \"{}\" ({}) {} {}x{} stride {stride}, {:.2} fps granted ({} asked)",
            caps.card,
            caps.driver,
            fourcc_str(&fourcc),
            self.width,
            self.height,
            granted,
            self.fps
        ));
        Ok(Box::new(V4l2Session {
            stream,
            _dev: dev,
            path: p,
            kind: self.kind,
            width: self.width,
            height: self.height,
            stride,
            scratch: Frame::zeroed(0, 0, PixelFormat::Rgb8),
            jpeg: MjpegDecoder::new(),
            last_seq: None,
            clock: DeviceClock,
        }))
    }
}

struct V4l2Session {
    // Dropped before the device: the stream's Drop turns streaming off.
    stream: MmapStream<'static>,
    _dev: Device,
    path: String,
    kind: FrameKind,
    width: u32,
    height: u32,
    stride: usize,
    scratch: Frame,
    jpeg: MjpegDecoder,
    last_seq: Option<u32>,
    clock: DeviceClock,
}

fn convert_frame(
    kind: FrameKind,
    (w, h, s): (u32, u32, usize),
    jpeg: &mut MjpegDecoder,
    data: &[u8],
    out: &mut Frame,
) -> Result<(), ConvertError> {
    match kind {
        FrameKind::Camera(CameraFormat::Yuyv) => convert::yuyv_to_rgb8(data, w, h, s, out),
        FrameKind::Camera(CameraFormat::Rgb24) => convert::rgb24_to_rgb8(data, w, h, s, out),
        FrameKind::Camera(CameraFormat::Mjpeg) => jpeg.decode(data, w, h, out),
        FrameKind::Depth { mm_per_count } => {
            convert::z16_to_depth_mm(data, w, h, s, mm_per_count, out)
        }
        FrameKind::Thermal { cal, output } => {
            convert::y16_to_thermal(data, w, h, s, cal, output, out)
        }
    }
}

impl DeviceSession for V4l2Session {
    fn pump(
        &mut self,
        outs: &mut [SampleProducer],
        _max_wait: Duration,
        stats: &DeviceStats,
    ) -> Result<usize, DeviceError> {
        let (data, meta) = match self.stream.next() {
            Ok((d, m)) => (d, *m),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(DeviceError::new(format!("{}: capture: {e}", self.path))),
        };
        let now = self.clock.mono_now_ns();
        if let Some(last) = self.last_seq
            && meta.sequence > last.wrapping_add(1)
        {
            stats.device_dropped((meta.sequence - last - 1) as u64);
        }
        self.last_seq = Some(meta.sequence);
        if meta.flags.contains(BufFlags::ERROR) {
            stats.bad_sample(format!(
                "{}: frame {} flagged as corrupt by the driver",
                self.path, meta.sequence
            ));
            return Ok(0);
        }
        let used = (meta.bytesused as usize).min(data.len());
        // The buffer is the driver's mmap memory, converted straight out of it.
        let geometry = (self.width, self.height, self.stride);
        if let Err(e) = convert_frame(
            self.kind,
            geometry,
            &mut self.jpeg,
            &data[..used],
            &mut self.scratch,
        ) {
            stats.bad_sample(format!("{}: frame {}: {e}", self.path, meta.sequence));
            return Ok(0);
        }
        // time_t is i32 on 32-bit targets, i64 on 64-bit ones.
        #[allow(clippy::useless_conversion)]
        let driver_ns = i64::from(meta.timestamp.sec)
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(meta.timestamp.usec) * 1000);
        let monotonic = meta.flags.bits() & BufFlags::TIMESTAMP_MASK.bits()
            == BufFlags::TIMESTAMP_MONOTONIC.bits();
        let mono_ns =
            if monotonic && driver_ns > 0 && (driver_ns - now as i64).abs() < 5_000_000_000 {
                driver_ns as u64
            } else {
                now
            };
        let t = self.clock.at_mono(mono_ns);
        let modality = self.kind.modality();
        let scratch = &mut self.scratch;
        outs[0].push_with(|s| {
            s.modality = modality;
            s.t = t;
            let f = s.frame_mut();
            f.width = scratch.width;
            f.height = scratch.height;
            f.format = scratch.format;
            // Swap buffers with the ring's recycled sample: no copy, no allocation.
            std::mem::swap(&mut f.data, &mut scratch.data);
        });
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{SensorAdapter, SensorState};
    use crate::devices::config::{CameraConfig, ReconnectConfig};
    use crate::devices::supervisor::SupervisedAdapter;

    fn camera(device: &str, dev_root: &Path) -> V4l2Source {
        let mut s = V4l2Source::camera(&CameraConfig {
            device: device.into(),
            width: 640,
            height: 480,
            fps: 30.0,
            format: CameraFormat::Yuyv,
            buffers: 4,
        });
        s.dev_root = dev_root.to_path_buf();
        s
    }

    /// No camera exists here; what can be checked is that every way of not
    /// finding one is a clear error through the real v4l calls, never a panic.
    #[test]
    fn absent_or_bogus_devices_are_clear_errors() {
        let root = std::env::temp_dir().join(format!("edgebind-v4l2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // A node that is not a V4L2 device (a regular file named video0).
        std::fs::write(root.join("video0"), b"not a camera").unwrap();
        std::fs::write(root.join("videox"), b"ignored").unwrap();
        assert_eq!(video_nodes(&root), [root.join("video0")]);
        assert!(list_video(&root).iter().all(|r| r.is_err()));
        let stats = DeviceStats::default();
        let e = camera("HD Camera", &root)
            .open(&stats)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("named like \"HD Camera\" offering YUYV") && e.contains("found: none"),
            "{e}"
        );
        let e = camera(&root.join("video0").display().to_string(), &root)
            .open(&stats)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("video0") && e.contains("ioctl"), "{e}");
        let e = camera("/dev/video-none", &root)
            .open(&stats)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/dev/video-none") && e.contains("No such file"),
            "{e}"
        );
        // Under the supervisor: down with that reason, retried, the thread alive.
        let policy = ReconnectConfig {
            initial_s: 0.02,
            max_s: 0.05,
            stall_s: 1.0,
        };
        let streams = vec![crate::adapter::StreamInfo {
            modality: Modality::Vision,
            description: "test".into(),
            rate_hz: 30.0,
        }];
        let mut a =
            SupervisedAdapter::new("camera", streams, camera("/dev/video-none", &root), policy);
        let (p, _c) = crate::ring::channel(4, || crate::sample::Sample::empty(Modality::Vision));
        a.start(vec![p]).unwrap();
        let due = std::time::Instant::now() + Duration::from_secs(5);
        while a.stats().snapshot().failures < 3 {
            assert!(std::time::Instant::now() < due, "no retries");
            std::thread::sleep(Duration::from_millis(5));
        }
        match a.health().state {
            SensorState::Down { reason } => assert!(reason.contains("/dev/video-none"), "{reason}"),
            s => panic!("{s:?}"),
        }
        a.stop().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
