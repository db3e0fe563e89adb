//! Window -> model input: the one entry point the daemon and the trainer use.
//! A [`Preprocessor`] is built from a contract's [`Preprocess`] and turns a
//! sensor [`Window`] into the items the encoder takes (one per window; for
//! audio one per clip, whose embeddings the caller averages as ImageBind does).

use edgebind_sensors::sample::{Frame, PixelFormat};
use edgebind_sensors::window::{Window, WindowData};

use super::audio::AudioPreprocessor;
use super::{PreprocessError, Tensor, depth, imu, thermal, vision};
use crate::contract::Preprocess;

/// A contract's preprocessing, ready to apply to windows.
pub struct Preprocessor {
    spec: Preprocess,
    audio: Option<AudioPreprocessor>,
}

fn wrong(want: &str, w: &Window) -> PreprocessError {
    let got = match &w.data {
        WindowData::Frame { frame, .. } => format!("a {} frame", frame.format.as_str()),
        WindowData::Audio { .. } => "audio".into(),
        WindowData::Imu { .. } => "IMU readings".into(),
    };
    PreprocessError::Shape(format!(
        "{want} preprocessing got {got} ({} window ending at {} ns)",
        w.modality, w.t_end
    ))
}

fn frame_u16(f: &Frame) -> Vec<u16> {
    f.data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

impl Preprocessor {
    /// Prepares `spec` (builds the filter bank for audio).
    pub fn new(spec: &Preprocess) -> Result<Self, PreprocessError> {
        let audio = match spec {
            Preprocess::Audio(p) => Some(AudioPreprocessor::new(p.clone())?),
            _ => None,
        };
        Ok(Preprocessor {
            spec: spec.clone(),
            audio,
        })
    }

    /// The encoder inputs of one window.
    pub fn window(&mut self, w: &Window) -> Result<Vec<Tensor>, PreprocessError> {
        if let WindowData::Frame { frame, .. } = &w.data {
            frame
                .validate()
                .map_err(|e| PreprocessError::Shape(e.to_string()))?;
        }
        match (&self.spec, &w.data) {
            (Preprocess::Vision(p), WindowData::Frame { frame, earlier, .. })
                if frame.format == PixelFormat::Rgb8 =>
            {
                if p.clip_s > 0.0 {
                    let Some(e) = earlier else {
                        return Err(PreprocessError::Shape(format!(
                            "the encoder takes a {} s clip but the vision window ending at {} ns \
                             has one frame (build its windower with the contract's clip)",
                            p.clip_s, w.t_end
                        )));
                    };
                    let (_, ef) = &**e;
                    ef.validate()
                        .map_err(|e| PreprocessError::Shape(e.to_string()))?;
                    if ef.format != PixelFormat::Rgb8 {
                        return Err(wrong("vision (rgb8)", w));
                    }
                    return Ok(vec![vision::preprocess_rgb8_clip(
                        (&ef.data, ef.width as usize, ef.height as usize),
                        (&frame.data, frame.width as usize, frame.height as usize),
                        p,
                    )?]);
                }
                Ok(vec![vision::preprocess_rgb8(
                    &frame.data,
                    frame.width as usize,
                    frame.height as usize,
                    p,
                )?])
            }
            (Preprocess::Depth(p), WindowData::Frame { frame, .. })
                if frame.format == PixelFormat::DepthZ16 =>
            {
                Ok(vec![depth::preprocess_depth_mm(
                    &frame_u16(frame),
                    frame.width as usize,
                    frame.height as usize,
                    p,
                )?])
            }
            (Preprocess::Thermal(p), WindowData::Frame { frame, .. })
                if matches!(
                    frame.format,
                    PixelFormat::ThermalY16 | PixelFormat::ThermalF32
                ) =>
            {
                let celsius = if frame.format == PixelFormat::ThermalY16 {
                    thermal::counts_to_celsius(&frame_u16(frame), p)
                } else {
                    (0..frame.width as usize * frame.height as usize)
                        .map(|i| frame.f32_at(i))
                        .collect()
                };
                Ok(vec![thermal::preprocess_celsius(
                    &celsius,
                    frame.width as usize,
                    frame.height as usize,
                    p,
                )?])
            }
            (
                Preprocess::Audio(_),
                WindowData::Audio {
                    sample_rate,
                    channels,
                    samples,
                    ..
                },
            ) => {
                let pre = self.audio.as_mut().expect("built for audio specs");
                let t = pre.process(samples, *channels, *sample_rate)?;
                let per = t.shape[1..].iter().product::<usize>();
                Ok(t.data
                    .chunks(per)
                    .map(|c| Tensor::new(t.shape[1..].to_vec(), c.to_vec()))
                    .collect())
            }
            (Preprocess::Imu(p), WindowData::Imu { samples }) => {
                let readings: Vec<(u64, [f32; 6])> = samples
                    .iter()
                    .map(|(t, s)| {
                        (
                            *t,
                            [
                                s.accel[0], s.accel[1], s.accel[2], s.gyro[0], s.gyro[1], s.gyro[2],
                            ],
                        )
                    })
                    .collect();
                Ok(vec![imu::preprocess_imu(&readings, w.t_start, p)?])
            }
            (Preprocess::Vision(_), _) => Err(wrong("vision (rgb8)", w)),
            (Preprocess::Depth(_), _) => Err(wrong("depth (z16)", w)),
            (Preprocess::Thermal(_), _) => Err(wrong("thermal", w)),
            (Preprocess::Audio(_), _) => Err(wrong("audio", w)),
            (Preprocess::Imu(_), _) => Err(wrong("imu", w)),
            (Preprocess::Text(_), _) => Err(wrong("text", w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contract, ContractModality};
    use edgebind_sensors::Modality;
    use edgebind_sensors::clock::Timestamp;
    use edgebind_sensors::sample::ImuSample;

    fn window(modality: Modality, data: WindowData) -> Window {
        Window {
            modality,
            t_start: 0,
            t_end: 2_000_000_000,
            wall_end_ns: 0,
            data,
        }
    }

    #[test]
    fn every_modality_maps_to_its_contract_shape() {
        let frame = |fmt: PixelFormat| WindowData::Frame {
            t: Timestamp::sim(0),
            frame: Frame::zeroed(320, 240, fmt),
            earlier: None,
        };
        let cases = [
            (
                ContractModality::Vision,
                window(Modality::Vision, frame(PixelFormat::Rgb8)),
                1,
            ),
            (
                ContractModality::Depth,
                window(Modality::Depth, frame(PixelFormat::DepthZ16)),
                1,
            ),
            (
                ContractModality::Thermal,
                window(Modality::Thermal, frame(PixelFormat::ThermalY16)),
                1,
            ),
            (
                ContractModality::Audio,
                window(
                    Modality::Audio,
                    WindowData::Audio {
                        sample_rate: 16_000,
                        channels: 1,
                        samples: (0..32_000).map(|i| (i as f32 * 0.05).sin() * 0.1).collect(),
                        missing: 0,
                    },
                ),
                3,
            ),
            (
                ContractModality::Imu,
                window(
                    Modality::Imu,
                    WindowData::Imu {
                        samples: (0..1000)
                            .map(|k| (k * 5_000_000, ImuSample::default()))
                            .collect(),
                    },
                ),
                1,
            ),
        ];
        for (m, w, n) in cases {
            let c = Contract::imagebind(m);
            let mut p = Preprocessor::new(&c.preprocess).unwrap();
            let items = p.window(&w).unwrap();
            assert_eq!(items.len(), n, "{m:?}");
            let want = c.preprocess.item_shape().unwrap();
            assert!(
                items.iter().all(|t| t.shape == want),
                "{m:?}: {:?} vs {want:?}",
                items[0].shape
            );
        }
        // A depth window given to a vision contract is an error naming both.
        let mut p =
            Preprocessor::new(&Contract::imagebind(ContractModality::Vision).preprocess).unwrap();
        let e = p
            .window(&window(Modality::Depth, frame(PixelFormat::DepthZ16)))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("vision (rgb8) preprocessing got a depth_z16 frame"),
            "{e}"
        );
    }

    #[test]
    fn clip_contracts_take_the_earlier_frame_first_and_refuse_single_frames() {
        let spec = Preprocess::Vision(crate::preprocess::vision::VisionParams {
            resize: 8,
            crop: 8,
            clip_s: 0.5,
            ..Default::default()
        });
        let mut p = Preprocessor::new(&spec).unwrap();
        let mut early = Frame::zeroed(8, 8, PixelFormat::Rgb8);
        early.data.fill(255);
        let late = Frame::zeroed(8, 8, PixelFormat::Rgb8);
        let w = window(
            Modality::Vision,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: late.clone(),
                earlier: Some(Box::new((Timestamp::sim(1_400_000_000), early))),
            },
        );
        let items = p.window(&w).unwrap();
        assert_eq!(items[0].shape, vec![3, 2, 8, 8]);
        // Red channel: time step 0 is the white (earlier) frame, step 1 the black one.
        assert!(items[0].data[..64].iter().all(|&v| v > 1.5));
        assert!(items[0].data[64..128].iter().all(|&v| v < -1.5));
        let single = window(
            Modality::Vision,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: late,
                earlier: None,
            },
        );
        let e = p.window(&single).unwrap_err().to_string();
        assert!(
            e.contains("0.5 s clip") && e.contains("2000000000 ns"),
            "{e}"
        );
    }
}
