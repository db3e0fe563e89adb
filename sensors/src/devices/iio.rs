//! IMU through Linux Industrial I/O (IIO), by its sysfs and character-device
//! interface (no libiio): accelerometer (`in_accel_{x,y,z}`) and gyroscope
//! (`in_anglvel_{x,y,z}`) channels of one IIO device, converted to SI units
//! with their sysfs `scale` and `offset` (`value = (raw + offset) * scale`:
//! m/s^2 and rad/s by the IIO ABI).
//!
//! * **Buffered** (default): enables the six scan elements (and
//!   `in_timestamp` when the device has it, switching its clock to
//!   `monotonic` where allowed), sets `sampling_frequency`, attaches a trigger
//!   if none is, sets the buffer length, enables the buffer and reads scan
//!   records from `/dev/iio:deviceN` (non-blocking, `poll` with a timeout). The
//!   record layout follows each element's `type` (see
//!   [`super::convert::ScanLayout`]). Timestamps come from the record's
//!   timestamp; without one, from the read time spaced by the rate.
//! * **Polled**: reads the six `_raw` attributes at the configured rate (kept
//!   open, re-read with `pread`, so no allocation per sample).
//!
//! Not supported: accelerometer and gyroscope on two separate IIO devices
//! (e.g. BMI088); pick the device that has both, or run two rigs.
//!
//! The sysfs root (`/sys`) and the device directory (`/dev`) can be moved (config
//! `sysfs_root` / `dev_root`, or `EDGEBIND_SYSFS_ROOT` / `EDGEBIND_DEV_ROOT`),
//! which is how the tests run this code on a fake sysfs tree.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::clock::DeviceClock;
use super::config::{ImuConfig, ImuMode};
use super::convert::{IioCalibration, ScanLayout, ScanType};
use super::supervisor::{DeviceError, DeviceSession, DeviceSource, DeviceStats};
use crate::adapter::SampleProducer;
use crate::clock::Clock as _;
use crate::modality::Modality;
use crate::sample::{ImuSample, Payload};

/// The six channels, in `ImuSample` order.
pub const CHANNELS: [&str; 6] = [
    "accel_x",
    "accel_y",
    "accel_z",
    "anglvel_x",
    "anglvel_y",
    "anglvel_z",
];

/// `/sys` unless moved by `cfg` or `EDGEBIND_SYSFS_ROOT`.
pub fn sysfs_root(cfg: Option<&Path>) -> PathBuf {
    cfg.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("EDGEBIND_SYSFS_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

/// `/dev` unless moved by `cfg` or `EDGEBIND_DEV_ROOT`.
pub fn dev_root(cfg: Option<&Path>) -> PathBuf {
    cfg.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("EDGEBIND_DEV_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/dev"))
}

fn devices_dir(sysfs: &Path) -> PathBuf {
    sysfs.join("bus/iio/devices")
}

fn read_attr(path: &Path) -> Result<String, DeviceError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| DeviceError::new(format!("{}: {e}", path.display())))
}

fn write_attr(path: &Path, value: &str) -> Result<(), DeviceError> {
    std::fs::write(path, value)
        .map_err(|e| DeviceError::new(format!("writing `{value}` to {}: {e}", path.display())))
}

fn read_f64(path: &Path) -> Result<f64, DeviceError> {
    let s = read_attr(path)?;
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| DeviceError::new(format!("{}: `{s}` is not a number", path.display())))
}

/// One IIO device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IioDeviceInfo {
    /// `iio:deviceN`.
    pub id: String,
    /// Its `name` attribute.
    pub name: String,
    /// Channels with a `_raw` attribute (`accel_x`, `anglvel_z`, `temp`...).
    pub channels: Vec<String>,
    /// Whether it has scan elements (buffered capture).
    pub buffered: bool,
    /// `sampling_frequency`, if readable.
    pub sampling_frequency: Option<f64>,
    /// `sampling_frequency_available`, if present.
    pub available_frequencies: Option<String>,
    /// Whether it has all six accelerometer and gyroscope channels.
    pub is_imu: bool,
}

fn frequency_attr(dir: &Path) -> Option<PathBuf> {
    [
        "sampling_frequency",
        "in_accel_sampling_frequency",
        "in_anglvel_sampling_frequency",
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|p| p.exists())
}

/// Every IIO device under `sysfs` (`<sysfs>/bus/iio/devices/iio:device*`),
/// sorted by id; none (not an error) when the directory does not exist.
pub fn list_devices(sysfs: &Path) -> Result<Vec<IioDeviceInfo>, DeviceError> {
    let dir = devices_dir(sysfs);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DeviceError::new(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !id.starts_with("iio:device") {
            continue;
        }
        let d = entry.path();
        let name = read_attr(&d.join("name")).unwrap_or_default();
        let mut channels: Vec<String> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                f.strip_prefix("in_")?
                    .strip_suffix("_raw")
                    .map(str::to_string)
            })
            .collect();
        channels.sort();
        let is_imu = CHANNELS.iter().all(|c| channels.iter().any(|h| h == c));
        let freq = frequency_attr(&d);
        out.push(IioDeviceInfo {
            id,
            name,
            buffered: d.join("scan_elements").is_dir(),
            sampling_frequency: freq.as_deref().and_then(|p| read_f64(p).ok()),
            available_frequencies: freq
                .and_then(|p| read_attr(&PathBuf::from(format!("{}_available", p.display()))).ok()),
            channels,
            is_imu,
        });
    }
    out.sort_by_key(|d| {
        d.id.trim_start_matches("iio:device")
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    });
    Ok(out)
}

/// Finds the device `spec` (`iio:deviceN` or a `name`) under `sysfs`.
pub fn find_device(sysfs: &Path, spec: &str) -> Result<(PathBuf, String, String), DeviceError> {
    let devices = list_devices(sysfs)?;
    let found = devices
        .iter()
        .find(|d| d.id == spec)
        .or_else(|| devices.iter().find(|d| d.name == spec && d.is_imu))
        .or_else(|| devices.iter().find(|d| d.name == spec));
    match found {
        Some(d) => Ok((devices_dir(sysfs).join(&d.id), d.id.clone(), d.name.clone())),
        None => {
            let have: Vec<String> = devices
                .iter()
                .map(|d| format!("{} ({})", d.id, d.name))
                .collect();
            Err(DeviceError::new(format!(
                "no IIO device `{spec}` under {} (present: {})",
                devices_dir(sysfs).display(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )))
        }
    }
}

/// Scale and offset of `channel` (`accel_x`): the per-channel attribute, else the
/// per-type one (`in_accel_scale`); offset 0 when absent.
pub fn calibration(dir: &Path, channel: &str) -> Result<IioCalibration, DeviceError> {
    let kind = channel.split('_').next().unwrap_or(channel);
    let pick = |what: &str| {
        [format!("in_{channel}_{what}"), format!("in_{kind}_{what}")]
            .into_iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists())
    };
    let scale = match pick("scale") {
        Some(p) => read_f64(&p)?,
        None => {
            return Err(DeviceError::new(format!(
                "{}: neither in_{channel}_scale nor in_{kind}_scale exists",
                dir.display()
            )));
        }
    };
    if scale == 0.0 {
        return Err(DeviceError::new(format!(
            "{}: scale of {channel} is 0",
            dir.display()
        )));
    }
    let offset = match pick("offset") {
        Some(p) => read_f64(&p)?,
        None => 0.0,
    };
    Ok(IioCalibration { scale, offset })
}

/// The IMU as a [`DeviceSource`].
pub struct IioSource {
    cfg: ImuConfig,
    clock: DeviceClock,
}

impl IioSource {
    /// A source for `cfg` (nothing is opened yet).
    pub fn new(cfg: ImuConfig) -> Self {
        IioSource {
            cfg,
            clock: DeviceClock,
        }
    }
}

impl DeviceSource for IioSource {
    fn open(&mut self, stats: &DeviceStats) -> Result<Box<dyn DeviceSession>, DeviceError> {
        let sysfs = sysfs_root(self.cfg.sysfs_root.as_deref());
        let (dir, id, name) = find_device(&sysfs, &self.cfg.device)?;
        let mut cal = [IioCalibration {
            scale: 1.0,
            offset: 0.0,
        }; 6];
        for (c, ch) in cal.iter_mut().zip(CHANNELS) {
            *c = calibration(&dir, ch)?;
        }
        let rate = set_rate(&dir, self.cfg.rate_hz);
        let period = Duration::from_secs_f64(1.0 / rate.unwrap_or(self.cfg.rate_hz));
        match self.cfg.mode {
            ImuMode::Polled => {
                let mut files = Vec::with_capacity(6);
                for ch in CHANNELS {
                    let p = dir.join(format!("in_{ch}_raw"));
                    files.push(
                        File::open(&p)
                            .map_err(|e| DeviceError::new(format!("{}: {e}", p.display())))?,
                    );
                }
                stats.set_detail(format!(
                    "{id} ({name}) polled at {:.1} Hz",
                    1.0 / period.as_secs_f64()
                ));
                Ok(Box::new(PolledSession {
                    dir,
                    files,
                    cal,
                    period,
                    next_due: Instant::now(),
                    clock: self.clock,
                    text: [0; 32],
                }))
            }
            ImuMode::Buffered => {
                let dev = dev_root(self.cfg.dev_root.as_deref()).join(&id);
                let s = BufferedSession::open(&self.cfg, &dir, &dev, cal, period, self.clock)?;
                stats.set_detail(format!(
                    "{id} ({name}) buffered via {}, {} byte records, {}, {:.1} Hz",
                    dev.display(),
                    s.layout.record_bytes,
                    match s.ts_clock {
                        None => "no timestamp channel".to_string(),
                        Some(TsClock::Monotonic) => "monotonic timestamps".to_string(),
                        Some(TsClock::Realtime) => "realtime timestamps".to_string(),
                    },
                    1.0 / period.as_secs_f64()
                ));
                Ok(Box::new(s))
            }
        }
    }
}

/// Writes the rate where the device has a frequency attribute; returns the rate
/// it reads back (the device may round it).
fn set_rate(dir: &Path, rate: f64) -> Option<f64> {
    let p = frequency_attr(dir)?;
    let _ = write_attr(&p, &format!("{rate}"));
    read_f64(&p).ok().filter(|r| *r > 0.0)
}

fn push_imu(out: &mut SampleProducer, t: crate::clock::Timestamp, v: [f32; 6]) {
    out.push_with(|s| {
        s.modality = Modality::Imu;
        s.t = t;
        s.payload = Payload::Imu(ImuSample {
            accel: [v[0], v[1], v[2]],
            gyro: [v[3], v[4], v[5]],
        });
    });
}

struct PolledSession {
    dir: PathBuf,
    files: Vec<File>,
    cal: [IioCalibration; 6],
    period: Duration,
    next_due: Instant,
    clock: DeviceClock,
    text: [u8; 32],
}

impl DeviceSession for PolledSession {
    fn pump(
        &mut self,
        outs: &mut [SampleProducer],
        max_wait: Duration,
        _stats: &DeviceStats,
    ) -> Result<usize, DeviceError> {
        let now = Instant::now();
        if self.next_due > now {
            let wait = self.next_due - now;
            if wait > max_wait {
                std::thread::sleep(max_wait);
                return Ok(0);
            }
            std::thread::sleep(wait);
        }
        // A late loop skips the missed ticks instead of bursting to catch up.
        self.next_due += self.period;
        if self.next_due < Instant::now() {
            self.next_due = Instant::now() + self.period;
        }
        let t = self.clock.now();
        let mut v = [0f32; 6];
        for (i, f) in self.files.iter().enumerate() {
            let n = f.read_at(&mut self.text, 0).map_err(|e| {
                DeviceError::new(format!(
                    "{}/in_{}_raw: {e}",
                    self.dir.display(),
                    CHANNELS[i]
                ))
            })?;
            let s = std::str::from_utf8(&self.text[..n]).unwrap_or("").trim();
            let raw = s.parse::<i64>().map_err(|_| {
                DeviceError::new(format!(
                    "{}/in_{}_raw: `{s}` is not an integer",
                    self.dir.display(),
                    CHANNELS[i]
                ))
            })?;
            v[i] = self.cal[i].apply(raw);
        }
        push_imu(&mut outs[0], t, v);
        Ok(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsClock {
    Monotonic,
    Realtime,
}

struct BufferedSession {
    dir: PathBuf,
    dev: PathBuf,
    file: File,
    layout: ScanLayout,
    types: Vec<ScanType>,
    cal: [IioCalibration; 6],
    ts_clock: Option<TsClock>,
    period: Duration,
    clock: DeviceClock,
    buf: Vec<u8>,
    filled: usize,
}

impl BufferedSession {
    fn open(
        cfg: &ImuConfig,
        dir: &Path,
        dev: &Path,
        cal: [IioCalibration; 6],
        period: Duration,
        clock: DeviceClock,
    ) -> Result<Self, DeviceError> {
        let scan = dir.join("scan_elements");
        if !scan.is_dir() {
            return Err(DeviceError::new(format!(
                "{}: no scan_elements (no buffered capture); use mode = \"polled\"",
                dir.display()
            )));
        }
        let enable = dir.join("buffer/enable");
        // The buffer must be off while its configuration changes.
        let _ = write_attr(&enable, "0");
        let has_ts = scan.join("in_timestamp_en").exists();
        // Turn off scan elements that are not ours, so the record holds exactly ours.
        for e in std::fs::read_dir(&scan).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if let Some(ch) = f.strip_prefix("in_").and_then(|r| r.strip_suffix("_en"))
                && !CHANNELS.contains(&ch)
                && ch != "timestamp"
            {
                write_attr(&e.path(), "0")?;
            }
        }
        let mut elems: Vec<(u32, Option<usize>, ScanType)> = Vec::new();
        let mut names: Vec<&str> = CHANNELS.to_vec();
        if has_ts {
            names.push("timestamp");
        }
        for (k, ch) in names.iter().enumerate() {
            let base = scan.join(format!("in_{ch}"));
            let p = |s: &str| PathBuf::from(format!("{}_{s}", base.display()));
            write_attr(&p("en"), "1")?;
            let index = read_attr(&p("index"))?.parse::<u32>().map_err(|_| {
                DeviceError::new(format!("{}: not a scan index", p("index").display()))
            })?;
            let ty = ScanType::parse(&read_attr(&p("type"))?)
                .map_err(|e| DeviceError::new(format!("{}: {e}", p("type").display())))?;
            elems.push((index, (k < 6).then_some(k), ty));
        }
        elems.sort_by_key(|e| e.0);
        let types: Vec<ScanType> = elems.iter().map(|e| e.2).collect();
        let order: Vec<Option<usize>> = elems.iter().map(|e| e.1).collect();
        let ts_clock = if has_ts {
            let clk = dir.join("current_timestamp_clock");
            if clk.exists() {
                let _ = write_attr(&clk, "monotonic");
                match read_attr(&clk)?.as_str() {
                    "monotonic" => Some(TsClock::Monotonic),
                    "realtime" => Some(TsClock::Realtime),
                    other => {
                        return Err(DeviceError::new(format!(
                            "{}: timestamp clock `{other}` is not supported (monotonic or realtime)",
                            clk.display()
                        )));
                    }
                }
            } else {
                // Kernels without the attribute stamp with the realtime clock... unless
                // they are very old; the default of the IIO core is CLOCK_REALTIME.
                Some(TsClock::Realtime)
            }
        } else {
            None
        };
        let trig = dir.join("trigger/current_trigger");
        if trig.exists() {
            let wanted = match &cfg.trigger {
                Some(t) => Some(t.clone()),
                None if read_attr(&trig)?.is_empty() => own_trigger(dir),
                None => None,
            };
            if let Some(t) = wanted {
                write_attr(&trig, &t)?;
            }
        }
        let length = dir.join("buffer/length");
        if length.exists() {
            write_attr(&length, &cfg.buffer_length.to_string())?;
        }
        let layout = ScanLayout::new(&types);
        write_attr(&enable, "1")?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(dev)
            .map_err(|e| {
                let _ = write_attr(&enable, "0");
                DeviceError::new(format!("{}: {e}", dev.display()))
            })?;
        // The element order of the record, and where our six and the timestamp lie.
        let mut slots = [usize::MAX; 7];
        for (pos, who) in order.iter().enumerate() {
            match who {
                Some(k) => slots[*k] = pos,
                None => slots[6] = pos,
            }
        }
        let record = layout.record_bytes;
        let mut s = BufferedSession {
            dir: dir.to_path_buf(),
            dev: dev.to_path_buf(),
            file,
            layout,
            types,
            cal,
            ts_clock,
            period,
            clock,
            buf: vec![0; record * 64],
            filled: 0,
        };
        s.reorder(slots);
        Ok(s)
    }

    /// Puts the elements in `[accel xyz, gyro xyz, timestamp]` order (offsets and types).
    fn reorder(&mut self, slots: [usize; 7]) {
        let offsets = self.layout.offsets.clone();
        let types = self.types.clone();
        self.layout.offsets = slots
            .iter()
            .filter(|&&s| s != usize::MAX)
            .map(|&s| offsets[s])
            .collect();
        self.types = slots
            .iter()
            .filter(|&&s| s != usize::MAX)
            .map(|&s| types[s])
            .collect();
    }

    fn poll_readable(&self, max_wait: Duration) -> Result<bool, DeviceError> {
        let mut fds = [libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = max_wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, length 1.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(DeviceError::new(format!(
                "{}: poll: {e}",
                self.dev.display()
            )));
        }
        if rc > 0 && fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(DeviceError::new(format!(
                "{}: device gone (poll revents {:#x})",
                self.dev.display(),
                fds[0].revents
            )));
        }
        Ok(rc > 0)
    }
}

/// The trigger the IIO core made for this device (`<name>-dev<N>`), if any.
fn own_trigger(dir: &Path) -> Option<String> {
    let name = read_attr(&dir.join("name")).ok()?;
    let n = dir
        .file_name()?
        .to_string_lossy()
        .trim_start_matches("iio:device")
        .to_string();
    let want = format!("{name}-dev{n}");
    let devices = dir.parent()?;
    std::fs::read_dir(devices)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("trigger"))
        .filter_map(|e| read_attr(&e.path().join("name")).ok())
        .find(|t| *t == want)
}

impl DeviceSession for BufferedSession {
    fn pump(
        &mut self,
        outs: &mut [SampleProducer],
        max_wait: Duration,
        stats: &DeviceStats,
    ) -> Result<usize, DeviceError> {
        if !self.poll_readable(max_wait)? {
            return Ok(0);
        }
        let n = match (&self.file).read(&mut self.buf[self.filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(DeviceError::new(format!("{}: {e}", self.dev.display()))),
        };
        if n == 0 {
            // Nothing yet (a regular file at its end reads 0 and polls readable).
            std::thread::sleep(max_wait.min(Duration::from_millis(5)));
            return Ok(0);
        }
        self.filled += n;
        let rec = self.layout.record_bytes;
        let records = self.filled / rec;
        let read_time = self.clock.mono_now_ns();
        for r in 0..records {
            let b = &self.buf[r * rec..(r + 1) * rec];
            let mut v = [0f32; 6];
            let mut ok = true;
            for (k, val) in v.iter_mut().enumerate() {
                match self.types[k].decode(&b[self.layout.offsets[k]..]) {
                    Ok(raw) => *val = self.cal[k].apply(raw),
                    Err(e) => {
                        stats.bad_sample(format!("{}: {e}", self.dev.display()));
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            let t = match self.ts_clock {
                Some(clk) => {
                    let ts = self.types[6]
                        .decode(&b[self.layout.offsets[6]..])
                        .unwrap_or(0)
                        .max(0) as u64;
                    match clk {
                        TsClock::Monotonic => self.clock.at_mono(ts),
                        TsClock::Realtime => self.clock.at_realtime(ts),
                    }
                }
                None => {
                    let back = (records - 1 - r) as u64 * self.period.as_nanos() as u64;
                    self.clock.at_mono(read_time.saturating_sub(back))
                }
            };
            push_imu(&mut outs[0], t, v);
        }
        // Keep a partial record for the next read.
        let used = records * rec;
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(records)
    }
}

impl Drop for BufferedSession {
    fn drop(&mut self) {
        let _ = write_attr(&self.dir.join("buffer/enable"), "0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs tree: one IIO device `name` with accel and gyro channels.
    pub(crate) fn fake_tree(root: &Path, name: &str, with_ts: bool) -> PathBuf {
        let d = root.join("sys/bus/iio/devices/iio:device0");
        std::fs::create_dir_all(d.join("scan_elements")).unwrap();
        std::fs::create_dir_all(d.join("buffer")).unwrap();
        std::fs::create_dir_all(d.join("trigger")).unwrap();
        let t = root.join("sys/bus/iio/devices/trigger0");
        std::fs::create_dir_all(&t).unwrap();
        let w = |p: PathBuf, s: &str| std::fs::write(p, s).unwrap();
        w(t.join("name"), &format!("{name}-dev0\n"));
        w(d.join("name"), &format!("{name}\n"));
        w(d.join("in_accel_scale"), "0.000598\n");
        w(d.join("in_anglvel_scale"), "0.001065\n");
        w(d.join("in_accel_z_offset"), "-100\n");
        w(d.join("sampling_frequency"), "100\n");
        w(
            d.join("sampling_frequency_available"),
            "25 50 100 200 400\n",
        );
        w(d.join("current_timestamp_clock"), "realtime\n");
        w(d.join("trigger/current_trigger"), "\n");
        w(d.join("buffer/enable"), "0\n");
        w(d.join("buffer/length"), "2\n");
        w(d.join("in_temp_raw"), "25\n");
        w(d.join("scan_elements/in_temp_en"), "1\n");
        for (i, ch) in CHANNELS.iter().enumerate() {
            w(
                d.join(format!("in_{ch}_raw")),
                &format!("{}\n", (i as i64 + 1) * 1000),
            );
            w(d.join(format!("scan_elements/in_{ch}_en")), "0\n");
            w(
                d.join(format!("scan_elements/in_{ch}_index")),
                &format!("{i}\n"),
            );
            w(
                d.join(format!("scan_elements/in_{ch}_type")),
                "le:s16/16>>0\n",
            );
        }
        if with_ts {
            w(d.join("scan_elements/in_timestamp_en"), "0\n");
            w(d.join("scan_elements/in_timestamp_index"), "6\n");
            w(d.join("scan_elements/in_timestamp_type"), "le:s64/64>>0\n");
        }
        std::fs::create_dir_all(root.join("dev")).unwrap();
        d
    }

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("edgebind-iio-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn lists_and_finds_devices_with_calibration() {
        let root = tmp("list");
        let d = fake_tree(&root, "bmi160", true);
        let sys = root.join("sys");
        let l = list_devices(&sys).unwrap();
        assert_eq!(l.len(), 1);
        assert!(l[0].is_imu && l[0].buffered);
        assert_eq!(l[0].sampling_frequency, Some(100.0));
        assert!(l[0].channels.contains(&"temp".to_string()));
        assert_eq!(find_device(&sys, "bmi160").unwrap().1, "iio:device0");
        assert_eq!(find_device(&sys, "iio:device0").unwrap().2, "bmi160");
        let e = find_device(&sys, "mpu6050").unwrap_err().to_string();
        assert!(
            e.contains("mpu6050") && e.contains("iio:device0 (bmi160)"),
            "{e}"
        );
        let c = calibration(&d, "accel_z").unwrap();
        assert_eq!((c.scale, c.offset), (0.000598, -100.0));
        assert_eq!(calibration(&d, "anglvel_x").unwrap().offset, 0.0);
        std::fs::write(d.join("in_anglvel_scale"), "fast\n").unwrap();
        let e = calibration(&d, "anglvel_x").unwrap_err().to_string();
        assert!(e.contains("in_anglvel_scale") && e.contains("fast"), "{e}");
        std::fs::remove_file(d.join("in_anglvel_scale")).unwrap();
        assert!(
            calibration(&d, "anglvel_y")
                .unwrap_err()
                .to_string()
                .contains("neither")
        );
        assert!(list_devices(&root.join("nowhere")).unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
