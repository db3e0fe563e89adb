//! Input files of `edgebind preprocess` and `edgebind embed`: a WAV, an image
//! or an IMU CSV becomes the sensor [`Window`] the daemon would have cut, so
//! the models crate's [`Preprocessor`](edgebind_models::preprocess::Preprocessor)
//! (the daemon's own) turns it into the encoder's tensor. Nothing here
//! transforms values beyond decoding the file.
//!
//! Every error is a message naming the file; nothing here panics on bad input
//! (image decoding runs under `catch_unwind` as a last guard).

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use edgebind_models::contract::{ContractModality, Preprocess};
use edgebind_sensors::Modality;
use edgebind_sensors::clock::Timestamp;
use edgebind_sensors::sample::{Frame, ImuSample, PixelFormat};
use edgebind_sensors::window::{Window, WindowData};

/// The columns of an IMU CSV, in order.
pub const IMU_COLUMNS: [&str; 7] = ["t_s", "ax", "ay", "az", "gx", "gy", "gz"];

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wav,
    Png,
    Jpeg,
    Other,
}

impl Kind {
    fn of(bytes: &[u8]) -> Kind {
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
            Kind::Wav
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Kind::Png
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Kind::Jpeg
        } else {
            Kind::Other
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Wav => "a WAV file (audio)",
            Kind::Png => "a PNG image",
            Kind::Jpeg => "a JPEG image",
            Kind::Other => "neither a WAV file nor a PNG or JPEG image",
        }
    }
}

/// What each modality takes, for messages.
pub fn expected(m: ContractModality) -> &'static str {
    match m {
        ContractModality::Audio => "a WAV file (16-bit PCM or 32-bit float, any rate and channels)",
        ContractModality::Vision => "a PNG or JPEG image",
        ContractModality::Depth => "a 16-bit greyscale PNG of millimetres (Z16)",
        ContractModality::Thermal => "a 16-bit greyscale PNG of centi-kelvin (Y16)",
        ContractModality::Imu => "a CSV file (t_s,ax,ay,az,gx,gy,gz)",
        ContractModality::Text => "text (--text)",
    }
}

/// Reads `path` whole.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The window the daemon would give the encoder for this file: one frame
/// (a still image given to a clip contract is its own earlier frame: a clip
/// with no motion), the whole WAV, or every IMU row from the first.
pub fn window(
    m: ContractModality,
    pre: &Preprocess,
    path: &Path,
    bytes: &[u8],
) -> Result<Window, String> {
    let kind = Kind::of(bytes);
    let wrong = || {
        format!(
            "{} is {}, but {} takes {}",
            path.display(),
            kind.describe(),
            m.as_str(),
            expected(m)
        )
    };
    // A still image given to a clip encoder: the clip's earlier frames repeat it.
    let earlier_frames = if pre.clip_s() > 0.0 {
        pre.frames().saturating_sub(1)
    } else {
        0
    };
    let frame_window = |modality: Modality, frame: Frame| {
        let earlier = vec![(Timestamp::sim(0), frame.clone()); earlier_frames];
        Window {
            modality,
            t_start: 0,
            t_end: 0,
            wall_end_ns: 0,
            data: WindowData::Frame {
                t: Timestamp::sim(0),
                frame,
                earlier,
            },
        }
    };
    match m {
        ContractModality::Vision => {
            if !matches!(kind, Kind::Png | Kind::Jpeg) {
                return Err(wrong());
            }
            let img = decode_image(path, bytes, kind)?.into_rgb8();
            let frame = Frame {
                width: img.width(),
                height: img.height(),
                format: PixelFormat::Rgb8,
                data: img.into_raw(),
            };
            Ok(frame_window(Modality::Vision, frame))
        }
        ContractModality::Depth | ContractModality::Thermal => {
            if kind != Kind::Png {
                return Err(wrong());
            }
            let (format, modality) = if m == ContractModality::Depth {
                (PixelFormat::DepthZ16, Modality::Depth)
            } else {
                (PixelFormat::ThermalY16, Modality::Thermal)
            };
            let img = decode_image(path, bytes, kind)?;
            let image::DynamicImage::ImageLuma16(img) = img else {
                return Err(format!(
                    "{} is a {:?} PNG, but {} takes {}",
                    path.display(),
                    img.color(),
                    m.as_str(),
                    expected(m)
                ));
            };
            let frame = Frame {
                width: img.width(),
                height: img.height(),
                format,
                data: img.as_raw().iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            Ok(frame_window(modality, frame))
        }
        ContractModality::Audio => {
            if kind != Kind::Wav {
                return Err(wrong());
            }
            let (sample_rate, channels, samples) = decode_wav(path, bytes)?;
            let frames = (samples.len() / channels as usize) as u64;
            Ok(Window {
                modality: Modality::Audio,
                t_start: 0,
                t_end: frames.saturating_mul(1_000_000_000) / sample_rate as u64,
                wall_end_ns: 0,
                data: WindowData::Audio {
                    sample_rate,
                    channels,
                    samples,
                    missing: 0,
                },
            })
        }
        ContractModality::Imu => {
            if kind != Kind::Other {
                return Err(wrong());
            }
            let text = std::str::from_utf8(bytes)
                .map_err(|e| format!("{} is not a text (UTF-8) CSV file: {e}", path.display()))?;
            let samples = parse_imu_csv(path, text)?;
            Ok(Window {
                modality: Modality::Imu,
                t_start: 0,
                t_end: samples.last().map_or(0, |(t, _)| *t),
                wall_end_ns: 0,
                data: WindowData::Imu { samples },
            })
        }
        ContractModality::Text => Err(format!(
            "text is embedded with --text, not from a file ({})",
            path.display()
        )),
    }
}

fn decode_image(path: &Path, bytes: &[u8], kind: Kind) -> Result<image::DynamicImage, String> {
    let format = if kind == Kind::Png {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    let name = if kind == Kind::Png { "PNG" } else { "JPEG" };
    match catch_unwind(AssertUnwindSafe(|| {
        image::load_from_memory_with_format(bytes, format)
    })) {
        Ok(Ok(img)) if img.width() > 0 && img.height() > 0 => Ok(img),
        Ok(Ok(_)) => Err(format!("{}: the {name} image is empty", path.display())),
        Ok(Err(e)) => Err(format!(
            "{}: cannot decode the {name} image: {e}",
            path.display()
        )),
        Err(_) => Err(format!(
            "{}: the {name} decoder failed on this file (corrupt image)",
            path.display()
        )),
    }
}

/// (rate, channels, interleaved samples in [-1, 1]) of a WAV file; integer
/// PCM is scaled by 2^-(bits - 1) as torchaudio.load does.
fn decode_wav(path: &Path, bytes: &[u8]) -> Result<(u32, u16, Vec<f32>), String> {
    let p = path.display();
    let mut r = hound::WavReader::new(Cursor::new(bytes))
        .map_err(|e| format!("{p} is not a readable WAV file: {e}"))?;
    let spec = r.spec();
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(format!(
            "{p}: the WAV header says {} Hz, {} channels",
            spec.sample_rate, spec.channels
        ));
    }
    let bad = |e: hound::Error| format!("{p}: the WAV data is unreadable: {e}");
    // Pushed one by one: the header's declared length is never trusted for an allocation.
    let mut out = Vec::new();
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in r.samples::<f32>() {
                out.push(s.map_err(bad)?);
            }
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for s in r.samples::<i32>() {
                out.push(s.map_err(bad)? as f32 * scale);
            }
        }
        (f, bits) => {
            return Err(format!(
                "{p}: {bits}-bit {f:?} WAV samples are not supported (16-bit PCM or 32-bit float)"
            ));
        }
    }
    if out.is_empty() {
        return Err(format!("{p}: the WAV file holds no samples"));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(format!("{p}: WAV sample {i} is not a finite number"));
    }
    if !out.len().is_multiple_of(spec.channels as usize) {
        return Err(format!(
            "{p}: {} samples do not divide into {} channels (truncated file?)",
            out.len(),
            spec.channels
        ));
    }
    Ok((spec.sample_rate, spec.channels, out))
}

/// Parses an IMU CSV: optional header `t_s,ax,ay,az,gx,gy,gz`, then one row
/// per reading (seconds, m/s^2, rad/s), times non-decreasing; blank lines and
/// lines starting with `#` are skipped. Times become ns after the first row.
fn parse_imu_csv(path: &Path, text: &str) -> Result<Vec<(u64, ImuSample)>, String> {
    let p = path.display();
    let cols = IMU_COLUMNS.join(",");
    let mut out: Vec<(u64, ImuSample)> = Vec::new();
    let mut first_t: Option<f64> = None;
    let mut prev_t = f64::NEG_INFINITY;
    let mut seen_content = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let header = !seen_content && fields[0].parse::<f64>().is_err();
        seen_content = true;
        if header {
            let ok = fields.len() == IMU_COLUMNS.len()
                && fields
                    .iter()
                    .zip(IMU_COLUMNS)
                    .all(|(f, c)| f.eq_ignore_ascii_case(c));
            if !ok {
                return Err(format!(
                    "{p} line {line_no}: header `{line}` must be `{cols}` (or leave it out)"
                ));
            }
            continue;
        }
        if fields.len() != IMU_COLUMNS.len() {
            return Err(format!(
                "{p} line {line_no}: {} columns, expected {} ({cols})",
                fields.len(),
                IMU_COLUMNS.len()
            ));
        }
        let mut v = [0f64; 7];
        for (c, f) in fields.iter().enumerate() {
            v[c] = match f.parse::<f64>() {
                Ok(x) if x.is_finite() => x,
                _ => {
                    return Err(format!(
                        "{p} line {line_no}, column {} ({}): `{f}` is not a finite number",
                        c + 1,
                        IMU_COLUMNS[c]
                    ));
                }
            };
        }
        let t = v[0];
        if t < prev_t {
            return Err(format!(
                "{p} line {line_no}, column 1 (t_s): {t} is earlier than the previous row's {prev_t}"
            ));
        }
        prev_t = t;
        let t0 = *first_t.get_or_insert(t);
        let ns = ((t - t0) * 1e9).round() as u64;
        out.push((
            ns,
            ImuSample {
                accel: [v[1] as f32, v[2] as f32, v[3] as f32],
                gyro: [v[4] as f32, v[5] as f32, v[6] as f32],
            },
        ));
    }
    if out.is_empty() {
        return Err(format!("{p} holds no IMU rows ({cols})"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imu_csv_rows_header_and_errors() {
        let p = Path::new("x.csv");
        let rows = parse_imu_csv(
            p,
            "# comment\nt_s,ax,ay,az,gx,gy,gz\n10.0,0,0,9.8,0,0,0\n\n10.5, 1,2,3,4,5,6\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, 500_000_000);
        assert_eq!(rows[1].1.gyro, [4.0, 5.0, 6.0]);
        let e = parse_imu_csv(p, "0,0,0,0,0,0,0\n0.1,0,zz,0,0,0,0\n").unwrap_err();
        assert_eq!(
            e,
            "x.csv line 2, column 3 (ay): `zz` is not a finite number"
        );
        let e = parse_imu_csv(p, "0,0,0\n").unwrap_err();
        assert!(e.contains("line 1: 3 columns, expected 7"), "{e}");
        let e = parse_imu_csv(p, "time,a,b\n").unwrap_err();
        assert!(e.contains("line 1: header"), "{e}");
        let e = parse_imu_csv(p, "1,0,0,0,0,0,0\n0.5,0,0,0,0,0,0\n").unwrap_err();
        assert!(e.contains("line 2, column 1 (t_s)"), "{e}");
        assert!(parse_imu_csv(p, "t_s,ax,ay,az,gx,gy,gz\n").is_err());
    }

    #[test]
    fn files_are_told_apart_by_their_bytes() {
        assert_eq!(Kind::of(b"RIFF\0\0\0\0WAVEfmt "), Kind::Wav);
        assert_eq!(Kind::of(b"\x89PNG\r\n\x1a\nxxxx"), Kind::Png);
        assert_eq!(Kind::of(&[0xff, 0xd8, 0xff, 0xe0]), Kind::Jpeg);
        assert_eq!(Kind::of(b"t_s,ax"), Kind::Other);
    }
}
