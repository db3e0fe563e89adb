//! `edgebind sensors list [--json]`: what real sensors are attached and what
//! each offers: V4L2 capture devices (formats, sizes, frame rates), ALSA input
//! devices (rates, channels, sample formats) and IIO devices (channels,
//! sampling frequency). Use it to fill in `[rig.devices.*]` (configs/jetson.toml).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use edgebind_sensors::devices::iio;
use edgebind_sensors::devices::list::{DeviceListing, list_devices};

use super::CmdResult;

/// Arguments of `sensors`.
#[derive(Debug, Args)]
pub struct SensorsArgs {
    #[command(subcommand)]
    command: SensorsCommand,
}

#[derive(Debug, Subcommand)]
enum SensorsCommand {
    /// List attached cameras (V4L2), microphones (ALSA) and IMUs (IIO) and what they offer.
    List(ListArgs),
}

/// Arguments of `sensors list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Print one JSON object (`video`, `audio_inputs`, `iio`, `errors`) instead of text.
    #[arg(long)]
    json: bool,
    /// Root of sysfs for IIO devices (default /sys, or $EDGEBIND_SYSFS_ROOT).
    #[arg(long, value_name = "DIR")]
    sysfs_root: Option<PathBuf>,
    /// Directory of the /dev/video* nodes (default /dev, or $EDGEBIND_DEV_ROOT).
    #[arg(long, value_name = "DIR")]
    dev_root: Option<PathBuf>,
}

/// Runs `sensors`.
pub fn run(a: SensorsArgs) -> CmdResult {
    match a.command {
        SensorsCommand::List(l) => list(l),
    }
}

fn list(a: ListArgs) -> CmdResult {
    let sysfs = iio::sysfs_root(a.sysfs_root.as_deref());
    let dev = iio::dev_root(a.dev_root.as_deref());
    let l = list_devices(&dev, &sysfs);
    if a.json {
        let s = serde_json::to_string_pretty(&l).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        print!("{}", to_text(&l, &dev, &sysfs));
    }
    Ok(ExitCode::SUCCESS)
}

fn to_text(l: &DeviceListing, dev: &std::path::Path, sysfs: &std::path::Path) -> String {
    let mut s = String::new();
    let iio_dir = sysfs.join("bus/iio/devices");
    if l.is_empty() {
        let _ = writeln!(
            s,
            "No sensors found: no V4L2 capture device under {}, no ALSA input device (other than ALSA's `null`), no IIO device under {}.",
            dev.display(),
            iio_dir.display()
        );
    }
    video_text(&mut s, l, dev);
    audio_text(&mut s, l);
    let _ = writeln!(s, "IIO devices ({}):", iio_dir.display());
    if l.iio.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for d in &l.iio {
        let what = if d.is_imu {
            "IMU (accel + gyro)"
        } else {
            "no accel+gyro set"
        };
        let mode = if d.buffered {
            "buffered"
        } else {
            "polled only"
        };
        let rate = d
            .sampling_frequency
            .map(|r| format!(", {r} Hz"))
            .unwrap_or_default();
        let avail = d
            .available_frequencies
            .as_ref()
            .map(|a| format!(" (available: {a})"))
            .unwrap_or_default();
        let _ = writeln!(s, "  {}  \"{}\"  {what}, {mode}{rate}{avail}", d.id, d.name);
        let _ = writeln!(s, "    channels: {}", d.channels.join(" "));
    }
    for e in &l.errors {
        let _ = writeln!(s, "error: {e}");
    }
    for n in &l.not_built {
        let _ = writeln!(s, "not in this build: {n}");
    }
    s
}

fn video_text(s: &mut String, l: &DeviceListing, dev: &std::path::Path) {
    let _ = writeln!(s, "V4L2 capture devices ({}/video*):", dev.display());
    if l.video.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for v in &l.video {
        let _ = writeln!(s, "  {}  \"{}\"  ({}, {})", v.path, v.card, v.driver, v.bus);
        for f in &v.formats {
            let sizes: Vec<String> = f
                .sizes
                .iter()
                .map(|z| {
                    let fps = match (&z.fps_range, z.fps.is_empty()) {
                        (Some((lo, hi)), _) => format!("{lo:.1}-{hi:.1}"),
                        (None, false) => z
                            .fps
                            .iter()
                            .map(|r| {
                                format!("{r:.3}")
                                    .trim_end_matches('0')
                                    .trim_end_matches('.')
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                            .join("/"),
                        (None, true) => "?".into(),
                    };
                    format!("{}x{}@{fps}", z.width, z.height)
                })
                .collect();
            let _ = writeln!(
                s,
                "    {:<4} {}: {}",
                f.fourcc,
                f.description,
                sizes.join(" ")
            );
        }
    }
}

fn audio_text(s: &mut String, l: &DeviceListing) {
    let _ = writeln!(s, "ALSA input devices:");
    if l.audio_inputs.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for a in &l.audio_inputs {
        let _ = writeln!(
            s,
            "  {}  \"{}\"  default {}",
            a.id,
            a.name,
            a.default_config.as_deref().unwrap_or("none")
        );
        if !a.configs.is_empty() {
            let _ = writeln!(s, "    {}", a.configs.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_an_imu_from_a_fake_sysfs_tree_and_says_when_there_is_nothing() {
        let root =
            std::env::temp_dir().join(format!("edgebind-sensors-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = root.join("sys/bus/iio/devices/iio:device0");
        std::fs::create_dir_all(d.join("scan_elements")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(d.join("name"), "bmi160\n").unwrap();
        std::fs::write(d.join("sampling_frequency"), "100\n").unwrap();
        for ch in edgebind_sensors::devices::iio::CHANNELS {
            std::fs::write(d.join(format!("in_{ch}_raw")), "0\n").unwrap();
        }
        let (dev, sys) = (root.join("dev"), root.join("sys"));
        let l = list_devices(&dev, &sys);
        let text = to_text(&l, &dev, &sys);
        assert!(
            text.contains("iio:device0  \"bmi160\"  IMU (accel + gyro), buffered, 100 Hz"),
            "{text}"
        );
        assert!(
            text.contains("channels: accel_x accel_y accel_z anglvel_x anglvel_y anglvel_z"),
            "{text}"
        );
        assert!(!text.contains("No sensors found"), "{text}");
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["iio"][0]["name"], "bmi160");
        std::fs::remove_dir_all(root.join("sys/bus/iio/devices/iio:device0")).unwrap();
        let mut l = list_devices(&dev, &sys);
        l.audio_inputs.retain(|a| a.id == "null");
        let text = to_text(&l, &dev, &sys);
        assert!(
            text.starts_with("No sensors found: no V4L2 capture device under"),
            "{text}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
