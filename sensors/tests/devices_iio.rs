//! The IIO IMU adapter, end to end, on a fake sysfs tree and a fake
//! `/dev/iio:device0` made by the test: the real adapter, supervisor, rings and
//! conversions; the kernel is the only thing played by the test (it writes
//! scan records into the "character device", which here is a plain file, and
//! reads back what the adapter wrote into sysfs).

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgebind_sensors::adapter::{Rig, SensorState};
use edgebind_sensors::devices::{
    DeviceClock, DevicesConfig, ImuConfig, ImuMode, ReconnectConfig, build_adapters,
};

const CHANNELS: [&str; 6] = [
    "accel_x",
    "accel_y",
    "accel_z",
    "anglvel_x",
    "anglvel_y",
    "anglvel_z",
];
const ACCEL_SCALE: f64 = 0.000598;
const GYRO_SCALE: f64 = 0.001065;

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("edgebind-devices-iio-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("dev")).unwrap();
    p
}

/// A BMI160-like IIO device: accel + gyro (le:s16), a temperature channel
/// (enabled, which the adapter must turn off), a 64-bit timestamp, a trigger.
fn fake_tree(root: &Path) -> PathBuf {
    let devs = root.join("sys/bus/iio/devices");
    let d = devs.join("iio:device0");
    for sub in ["scan_elements", "buffer", "trigger"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::create_dir_all(devs.join("trigger0")).unwrap();
    let w = |p: PathBuf, s: &str| std::fs::write(p, s).unwrap();
    w(devs.join("trigger0/name"), "bmi160-dev0\n");
    w(d.join("name"), "bmi160\n");
    w(d.join("in_accel_scale"), &format!("{ACCEL_SCALE}\n"));
    w(d.join("in_anglvel_scale"), &format!("{GYRO_SCALE}\n"));
    w(d.join("in_accel_z_offset"), "-100\n");
    w(d.join("sampling_frequency"), "100\n");
    w(d.join("current_timestamp_clock"), "realtime\n");
    w(d.join("trigger/current_trigger"), "\n");
    w(d.join("buffer/enable"), "0\n");
    w(d.join("buffer/length"), "2\n");
    w(d.join("in_temp_raw"), "25\n");
    w(d.join("scan_elements/in_temp_en"), "1\n");
    w(d.join("scan_elements/in_temp_index"), "7\n");
    w(d.join("scan_elements/in_temp_type"), "le:s16/16>>0\n");
    for (i, ch) in CHANNELS.iter().enumerate() {
        // Fixed-width values so the polled test can rewrite them in place.
        w(
            d.join(format!("in_{ch}_raw")),
            &format!("{:06}\n", (i as i64 + 1) * 1000),
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
    w(d.join("scan_elements/in_timestamp_en"), "0\n");
    w(d.join("scan_elements/in_timestamp_index"), "6\n");
    w(d.join("scan_elements/in_timestamp_type"), "le:s64/64>>0\n");
    d
}

/// One scan record as the kernel lays it out: six s16, pad to 16, s64 timestamp.
fn record(v: [i16; 6], ts: i64) -> [u8; 24] {
    let mut r = [0u8; 24];
    for (i, x) in v.iter().enumerate() {
        r[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
    }
    r[16..].copy_from_slice(&ts.to_le_bytes());
    r
}

fn cfg(root: &Path, mode: ImuMode) -> DevicesConfig {
    DevicesConfig {
        imu: Some(ImuConfig {
            device: "bmi160".into(),
            rate_hz: 200.0,
            mode,
            trigger: None,
            buffer_length: 64,
            sysfs_root: Some(root.join("sys")),
            dev_root: Some(root.join("dev")),
        }),
        reconnect: ReconnectConfig {
            initial_s: 0.05,
            max_s: 0.2,
            stall_s: 0.4,
        },
        ..DevicesConfig::default()
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

fn wait_for(what: &str, secs: f64, mut cond: impl FnMut() -> bool) {
    let due = Instant::now() + Duration::from_secs_f64(secs);
    while !cond() {
        assert!(Instant::now() < due, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn buffered_capture_in_si_units_and_reconnect_after_unplug() {
    let root = tmp("buffered");
    let dir = fake_tree(&root);
    let dev = root.join("dev/iio:device0");
    let clock = DeviceClock;
    let t0 = clock.mono_now_ns() as i64;
    // 10 records, the last one cut in half (a read can end mid-record).
    let mut bytes = Vec::new();
    for k in 0..10i64 {
        let v = [1000, -1000, 16384 + 100, 100, -200, k as i16];
        bytes.extend_from_slice(&record(v, t0 + k * 5_000_000));
    }
    std::fs::write(&dev, &bytes[..bytes.len() - 12]).unwrap();

    let adapters = build_adapters(&cfg(&root, ImuMode::Buffered)).unwrap();
    let (mut rig, mut consumers) = Rig::start(adapters, 256).unwrap();
    let (_, c) = &mut consumers[0];
    let mut got = Vec::new();
    wait_for("9 whole records", 5.0, || {
        while let Some(s) = c.pop_with(|s| (s.t, *s.imu().unwrap())) {
            got.push(s);
        }
        got.len() >= 9
    });
    // The second half of the last record arrives later.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&dev)
        .unwrap()
        .write_all(&bytes[bytes.len() - 12..])
        .unwrap();
    wait_for("the 10th record", 5.0, || {
        while let Some(s) = c.pop_with(|s| (s.t, *s.imu().unwrap())) {
            got.push(s);
        }
        got.len() >= 10
    });
    assert_eq!(got.len(), 10);
    for (k, (t, s)) in got.iter().enumerate() {
        assert!((s.accel[0] as f64 - 1000.0 * ACCEL_SCALE).abs() < 1e-6);
        assert!((s.accel[1] as f64 + 1000.0 * ACCEL_SCALE).abs() < 1e-6);
        // (raw + offset) * scale: (16484 - 100) * 0.000598 = 9.797 m/s^2 (1 g).
        assert!(
            (s.accel[2] as f64 - 16384.0 * ACCEL_SCALE).abs() < 1e-5,
            "{s:?}"
        );
        assert!((s.gyro[0] as f64 - 100.0 * GYRO_SCALE).abs() < 1e-6);
        assert!((s.gyro[2] as f64 - k as f64 * GYRO_SCALE).abs() < 1e-6);
        // The adapter switched the timestamp clock to monotonic; the record's stamp passes through.
        assert_eq!(t.mono_ns as i64, t0 + k as i64 * 5_000_000);
    }
    // What the adapter wrote into sysfs.
    let scan = dir.join("scan_elements");
    for ch in CHANNELS {
        assert_eq!(read(scan.join(format!("in_{ch}_en"))), "1", "{ch}");
    }
    assert_eq!(read(scan.join("in_timestamp_en")), "1");
    assert_eq!(
        read(scan.join("in_temp_en")),
        "0",
        "foreign channel turned off"
    );
    assert_eq!(read(dir.join("buffer/enable")), "1");
    assert_eq!(read(dir.join("buffer/length")), "64");
    assert_eq!(read(dir.join("sampling_frequency")), "200");
    assert_eq!(read(dir.join("trigger/current_trigger")), "bmi160-dev0");
    assert_eq!(read(dir.join("current_timestamp_clock")), "monotonic");
    assert_eq!(rig.health()[0].state, SensorState::Up);

    // Unplug: the device leaves sysfs and its data stops. After the stall time
    // the adapter is down, naming the device, and retries with backoff.
    let away = root.join("unplugged");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::remove_file(&dev).unwrap();
    wait_for("down", 5.0, || match &rig.health()[0].state {
        SensorState::Down { reason } => reason.contains("no IIO device `bmi160`"),
        _ => false,
    });
    // Replug: the device comes back; the adapter finds it by name and delivers
    // on the same ring.
    std::fs::rename(&away, &dir).unwrap();
    let t1 = clock.mono_now_ns() as i64;
    let more: Vec<u8> = (0..5i64)
        .flat_map(|k| record([1, 2, 3, 4, 5, 6], t1 + k * 5_000_000))
        .collect();
    std::fs::write(&dev, &more).unwrap();
    let mut after = Vec::new();
    wait_for("samples after replug", 10.0, || {
        while let Some(s) = c.pop_with(|s| (s.t, *s.imu().unwrap())) {
            after.push(s);
        }
        after.len() >= 5
    });
    assert_eq!(rig.health()[0].state, SensorState::Up);
    assert_eq!(after[0].0.mono_ns as i64, t1);
    assert!((after[4].1.gyro[2] as f64 - 6.0 * GYRO_SCALE).abs() < 1e-6);
    let k = c.counters();
    assert_eq!((k.delivered, k.dropped), (15, 0));
    rig.stop().unwrap();
    assert_eq!(
        read(dir.join("buffer/enable")),
        "0",
        "buffer disabled on close"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn polled_mode_reads_raw_attributes_at_the_rate() {
    let root = tmp("polled");
    let dir = fake_tree(&root);
    let mut c = cfg(&root, ImuMode::Polled);
    if let Some(i) = &mut c.imu {
        i.rate_hz = 100.0;
    }
    let adapters = build_adapters(&c).unwrap();
    let (mut rig, mut consumers) = Rig::start(adapters, 1024).unwrap();
    let (_, cons) = &mut consumers[0];
    let mut got = Vec::new();
    wait_for("20 samples", 5.0, || {
        while let Some(s) = cons.pop_with(|s| (s.t, *s.imu().unwrap())) {
            got.push(s);
        }
        got.len() >= 20
    });
    let s = got[0].1;
    assert!((s.accel[0] as f64 - 1000.0 * ACCEL_SCALE).abs() < 1e-6);
    assert!((s.accel[2] as f64 - 2900.0 * ACCEL_SCALE).abs() < 1e-6);
    assert!((s.gyro[2] as f64 - 6000.0 * GYRO_SCALE).abs() < 1e-6);
    // The attribute changes in place (as sysfs values do); the next reads see it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("in_anglvel_z_raw"))
        .unwrap();
    f.write_at(b"-00042\n", 0).unwrap();
    let mut seen = false;
    wait_for("the new value", 5.0, || {
        while let Some(s) = cons.pop_with(|s| *s.imu().unwrap()) {
            seen |= (s.gyro[2] as f64 + 42.0 * GYRO_SCALE).abs() < 1e-6;
        }
        seen
    });
    // Paced at 100 Hz: spacing about 10 ms.
    let span = (got[19].0.mono_ns - got[0].0.mono_ns) as f64 / 19.0 / 1e6;
    assert!((8.0..14.0).contains(&span), "mean spacing {span} ms");
    rig.stop().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_missing_imu_is_down_with_a_clear_reason_not_an_error_at_start() {
    let root = tmp("missing");
    let adapters = build_adapters(&cfg(&root, ImuMode::Buffered)).unwrap();
    let (mut rig, _consumers) = Rig::start(adapters, 16).unwrap();
    wait_for("down", 5.0, || match &rig.health()[0].state {
        SensorState::Down { reason } => {
            reason.contains("no IIO device `bmi160`")
                && reason.contains("present: none")
                && reason.contains("retry")
        }
        _ => false,
    });
    rig.stop().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
