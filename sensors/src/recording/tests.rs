//! Round trip and damage tests of the recording format.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use super::*;
use crate::clock::Timestamp;
use crate::modality::Modality;
use crate::sample::{AudioChunk, Frame, ImuSample, Payload, PixelFormat, Sample};

fn frame_sample(m: Modality, fmt: PixelFormat, t: u64, seed: u8) -> Sample {
    let mut f = Frame::zeroed(5, 3, fmt);
    for (i, b) in f.data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    Sample {
        modality: m,
        t: Timestamp {
            mono_ns: t,
            wall_ns: 1_700_000_000_000_000_000 + t + 17,
        },
        payload: Payload::Frame(f),
    }
}

/// A small but complete set of samples: every modality and pixel format, odd
/// float values (NaN payloads excluded: they are equal bitwise but not by ==).
fn samples() -> Vec<Sample> {
    let mut v = Vec::new();
    for k in 0..6u64 {
        let t = k * 50_000_000;
        v.push(frame_sample(
            Modality::Vision,
            PixelFormat::Rgb8,
            t,
            k as u8,
        ));
        v.push(frame_sample(
            Modality::Depth,
            PixelFormat::DepthZ16,
            t + 1,
            k as u8,
        ));
        v.push(frame_sample(
            Modality::Thermal,
            if k % 2 == 0 {
                PixelFormat::ThermalY16
            } else {
                PixelFormat::ThermalF32
            },
            t + 2,
            k as u8,
        ));
        v.push(Sample {
            modality: Modality::Audio,
            t: Timestamp::sim(t + 3),
            payload: Payload::Audio(AudioChunk {
                sample_rate: 16_000,
                channels: 2,
                samples: (0..8)
                    .map(|i| (i as f32 * 0.1 - 0.37) * k as f32 + f32::EPSILON)
                    .collect(),
            }),
        });
        v.push(Sample {
            modality: Modality::Imu,
            t: Timestamp::sim(t + 4),
            payload: Payload::Imu(ImuSample {
                accel: [0.1 * k as f32, -9.806_65, 1e-7],
                gyro: [f32::MIN_POSITIVE, -0.0, 3.25],
            }),
        });
    }
    v
}

fn record(samples: &[Sample]) -> Vec<u8> {
    let mut info = BTreeMap::new();
    info.insert("rig".to_string(), "test".to_string());
    let mut rec = Recorder::new(Cursor::new(Vec::new()), &info).unwrap();
    for (i, s) in samples.iter().enumerate() {
        rec.write_sample(s).unwrap();
        if i == 0 {
            rec.write_truth(
                &serde_json::json!({"start_ns": 0, "end_ns": 300_000_000, "situations": ["rain"]}),
                0,
                s.t.wall_ns,
            )
            .unwrap();
        }
    }
    rec.finish_into_inner().unwrap().into_inner()
}

/// Reads every sensor message; returns the samples and the error that ended the read, if any.
fn read_all(bytes: &[u8]) -> (Vec<Sample>, usize, Option<RecordingError>) {
    let path = Path::new("mem.mcap");
    let mut r = match McapReader::new(bytes, path, Some(bytes.len() as u64)) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), 0, Some(e)),
    };
    let mut out = Vec::new();
    let mut truths = 0;
    loop {
        match r.next_message() {
            Ok(Some(m)) => {
                if m.channel.topic == TRUTH_TOPIC {
                    truths += 1;
                    continue;
                }
                let mut s = Sample::empty(Modality::Imu);
                match decode_sample(path, &m, &mut s) {
                    Ok(()) => out.push(s),
                    Err(e) => return (out, truths, Some(e)),
                }
            }
            Ok(None) => return (out, truths, None),
            Err(e) => return (out, truths, Some(e)),
        }
    }
}

fn uniform_thermal(mut v: Vec<Sample>) -> Vec<Sample> {
    for s in v.iter_mut() {
        if s.modality == Modality::Thermal
            && let Payload::Frame(f) = &mut s.payload
            && f.format == PixelFormat::ThermalF32
        {
            *s = frame_sample(Modality::Thermal, PixelFormat::ThermalY16, s.t.mono_ns, 99);
        }
    }
    v
}

#[test]
fn round_trip_is_bit_exact() {
    let original = uniform_thermal(samples());
    let bytes = record(&original);
    let (back, truths, err) = read_all(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(truths, 1);
    assert_eq!(back.len(), original.len());
    for (a, b) in original.iter().zip(&back) {
        assert_eq!(a, b);
        if let (Payload::Audio(x), Payload::Audio(y)) = (&a.payload, &b.payload) {
            let bits = |c: &AudioChunk| c.samples.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(x), bits(y));
        }
    }
}

#[test]
fn f32_thermal_round_trips_on_its_own_channel() {
    let original: Vec<Sample> = (0..3)
        .map(|k| frame_sample(Modality::Thermal, PixelFormat::ThermalF32, k * 10, k as u8))
        .collect();
    let (back, _, err) = read_all(&record(&original));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(back, original);
}

#[test]
fn same_input_same_bytes() {
    let s = uniform_thermal(samples());
    assert_eq!(record(&s), record(&s));
}

#[test]
fn mcap_crate_reads_what_we_write() {
    // Cross-check with the reference implementation's reader: same messages, same order.
    let original = uniform_thermal(samples());
    let bytes = record(&original);
    let stream = mcap::MessageStream::new(&bytes).unwrap();
    let msgs: Vec<_> = stream.map(|m| m.unwrap()).collect();
    assert_eq!(msgs.len(), original.len() + 1);
    let sensor: Vec<_> = msgs
        .iter()
        .filter(|m| m.channel.topic != TRUTH_TOPIC)
        .collect();
    for (m, s) in sensor.iter().zip(&original) {
        assert_eq!(m.channel.topic, topic_for(s.modality));
        assert_eq!(m.log_time, s.t.wall_ns);
        assert_eq!(m.publish_time, s.t.mono_ns);
    }
    assert_eq!(
        sensor[0].channel.schema.as_ref().unwrap().name,
        "foxglove.RawImage"
    );
}

#[test]
fn truncation_at_every_offset_is_an_error_with_intact_prefix() {
    let original = uniform_thermal(samples());
    let bytes = record(&original);
    let (full, _, err) = read_all(&bytes);
    assert!(err.is_none());
    for cut in 0..bytes.len() {
        let (got, _, err) = read_all(&bytes[..cut]);
        let err =
            err.unwrap_or_else(|| panic!("cut at {cut} of {} read without error", bytes.len()));
        assert_eq!(
            &full[..got.len()],
            &got[..],
            "cut at {cut}: delivered data differs"
        );
        if cut >= 8 {
            let off = err
                .offset()
                .unwrap_or_else(|| panic!("cut {cut}: no offset in {err}"));
            assert!(off <= cut as u64, "cut {cut}: offset {off} beyond the end");
            assert!(err.to_string().contains("byte offset"), "{err}");
        }
    }
}

#[test]
fn truncated_recording_names_channel_and_offset() {
    let original = uniform_thermal(samples());
    let bytes = record(&original);
    // Cut in the middle of the data: the error names a channel topic.
    let cut = bytes.len() / 2;
    let (got, _, err) = read_all(&bytes[..cut]);
    let msg = err.unwrap().to_string();
    assert!(msg.contains("truncated at byte offset"), "{msg}");
    assert!(msg.contains("on channel /"), "{msg}");
    assert!(!got.is_empty(), "messages before the cut are delivered");
}

#[test]
fn corruption_never_panics_and_never_yields_wrong_data() {
    let original = uniform_thermal(samples());
    let bytes = record(&original);
    let (full, _, _) = read_all(&bytes);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        let n = 1 + rnd() % 4;
        for _ in 0..n {
            let i = (rnd() % b.len() as u64) as usize;
            match rnd() % 3 {
                0 => b[i] ^= 1 << (rnd() % 8),
                1 => b[i] = rnd() as u8,
                _ => {
                    // Plausible-looking huge length: the reader must not allocate it.
                    let j = i.min(b.len() - 8);
                    b[j..j + 8].copy_from_slice(&(u64::MAX - rnd() % 1000).to_le_bytes());
                }
            }
        }
        let (got, _, err) = read_all(&b);
        if err.is_some() {
            errors += 1;
        }
        // Anything delivered is exactly what was recorded (CRCs guard the chunks).
        assert_eq!(
            &full[..got.len().min(full.len())],
            &got[..got.len().min(full.len())]
        );
    }
    assert!(
        errors > 2000,
        "most corruptions must be detected, got {errors}/3000"
    );
}

#[test]
fn foreign_and_bad_files_are_clear_errors() {
    let (_, _, err) = read_all(b"PK\x03\x04 not mcap at all");
    assert!(err.unwrap().to_string().contains("not an MCAP file"));
    let (_, _, err) = read_all(b"");
    assert!(matches!(err, Some(RecordingError::NotMcap { .. })));
    let e = McapReader::open(Path::new("/nonexistent/x.mcap"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/x.mcap"));
}
