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

    /// One frame through an image contract's transform, without a time
    /// axis: `[C, crop, crop]`. `None` if the spec is not an image one.
    fn frame_item(&self, f: &Frame, w: &Window) -> Option<Result<Tensor, PreprocessError>> {
        let (fw, fh) = (f.width as usize, f.height as usize);
        Some(match &self.spec {
            Preprocess::Vision(p) if f.format == PixelFormat::Rgb8 => {
                let one = vision::VisionParams {
                    frames: 0,
                    ..p.clone()
                };
                vision::preprocess_rgb8(&f.data, fw, fh, &one)
            }
            Preprocess::Vision(_) => Err(wrong("vision (rgb8)", w)),
            Preprocess::Depth(p) if f.format == PixelFormat::DepthZ16 => {
                let one = depth::DepthParams {
                    frames: 0,
                    ..p.clone()
                };
                depth::preprocess_depth_mm(&frame_u16(f), fw, fh, &one)
            }
            Preprocess::Depth(_) => Err(wrong("depth (z16)", w)),
            Preprocess::Thermal(p)
                if matches!(f.format, PixelFormat::ThermalY16 | PixelFormat::ThermalF32) =>
            {
                let celsius = if f.format == PixelFormat::ThermalY16 {
                    thermal::counts_to_celsius(&frame_u16(f), p)
                } else {
                    (0..fw * fh).map(|i| f.f32_at(i)).collect()
                };
                let one = thermal::ThermalParams {
                    frames: 0,
                    ..p.clone()
                };
                thermal::preprocess_celsius(&celsius, fw, fh, &one)
            }
            Preprocess::Thermal(_) => Err(wrong("thermal", w)),
            _ => return None,
        })
    }

    /// The encoder inputs of one window.
    pub fn window(&mut self, w: &Window) -> Result<Vec<Tensor>, PreprocessError> {
        if let WindowData::Frame { frame, earlier, .. } = &w.data {
            frame
                .validate()
                .map_err(|e| PreprocessError::Shape(e.to_string()))?;
            if let Some(own) = self.frame_item(frame, w) {
                let own = own?;
                let clip_s = self.spec.clip_s();
                if clip_s <= 0.0 {
                    return Ok(vec![super::repeat_frames(own, self.spec.frames())?]);
                }
                // A real clip: (earlier frames, own frame), each transformed alike.
                let frames = self.spec.frames();
                if earlier.len() + 1 != frames {
                    return Err(PreprocessError::Shape(format!(
                        "the encoder takes a {frames}-frame clip ({clip_s} s apart) but the {} \
                         window ending at {} ns has {} (build its windower with the contract's clip)",
                        w.modality,
                        w.t_end,
                        earlier.len() + 1
                    )));
                }
                let mut items = Vec::with_capacity(frames);
                for (_, ef) in earlier {
                    ef.validate()
                        .map_err(|e| PreprocessError::Shape(e.to_string()))?;
                    items.push(self.frame_item(ef, w).expect("same spec")?);
                }
                items.push(own);
                let refs: Vec<&Tensor> = items.iter().collect();
                return Tensor::stack_time(&refs).map(|t| vec![t]).ok_or_else(|| {
                    PreprocessError::Shape(format!(
                        "the {} clip ending at {} ns has frames of different shapes",
                        w.modality, w.t_end
                    ))
                });
            }
        }
        match (&self.spec, &w.data) {
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
            earlier: Vec::new(),
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
    fn depth_and_thermal_clips_stack_earlier_then_own_and_repeat_without_clip() {
        let depth_spec = |frames, clip_s| {
            Preprocess::Depth(crate::preprocess::depth::DepthParams {
                resize: 4,
                crop: 4,
                mean: 0.0,
                std: 1.0,
                min_depth_m: 1.0,
                frames,
                clip_s,
                ..Default::default()
            })
        };
        let z16 = |mm: u16| {
            let mut f = Frame::zeroed(4, 4, PixelFormat::DepthZ16);
            for b in f.data.chunks_exact_mut(2) {
                b.copy_from_slice(&mm.to_le_bytes());
            }
            f
        };
        // 1 m -> disparity 1 (nearest), 2 m -> 0.5.
        let clip = window(
            Modality::Depth,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: z16(2000),
                earlier: vec![(Timestamp::sim(1_400_000_000), z16(1000))],
            },
        );
        let mut p = Preprocessor::new(&depth_spec(2, 0.5)).unwrap();
        let items = p.window(&clip).unwrap();
        assert_eq!(items[0].shape, vec![1, 2, 4, 4]);
        assert!(items[0].data[..16].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(items[0].data[16..].iter().all(|&v| (v - 0.5).abs() < 1e-6));
        // No clip in the contract: the own frame, repeated to `frames`.
        let mut p = Preprocessor::new(&depth_spec(2, 0.0)).unwrap();
        let items = p.window(&clip).unwrap();
        assert_eq!(items[0].shape, vec![1, 2, 4, 4]);
        assert!(items[0].data.iter().all(|&v| (v - 0.5).abs() < 1e-6));
        let mut p = Preprocessor::new(&depth_spec(0, 0.0)).unwrap();
        assert_eq!(p.window(&clip).unwrap()[0].shape, vec![1, 4, 4]);
        // A 3-frame clip: oldest (4 m -> 0.25), earlier (1 m), own (2 m).
        let mut p = Preprocessor::new(&depth_spec(3, 0.5)).unwrap();
        let three = window(
            Modality::Depth,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: z16(2000),
                earlier: vec![
                    (Timestamp::sim(900_000_000), z16(4000)),
                    (Timestamp::sim(1_400_000_000), z16(1000)),
                ],
            },
        );
        let items = p.window(&three).unwrap();
        assert_eq!(items[0].shape, vec![1, 3, 4, 4]);
        for (step, want) in [0.25, 1.0, 0.5].into_iter().enumerate() {
            let plane = &items[0].data[16 * step..16 * (step + 1)];
            assert!(
                plane.iter().all(|&v| (v - want).abs() < 1e-6),
                "step {step}: {plane:?}"
            );
        }
        // ...and a 2-frame window given to it is refused, naming both counts.
        let e = p.window(&clip).unwrap_err().to_string();
        assert!(
            e.contains("3-frame clip (0.5 s apart)") && e.contains("has 2"),
            "{e}"
        );

        // Thermal: 40 °C earlier, 10 °C now, window -10..60.
        let thermal = Preprocess::Thermal(crate::preprocess::thermal::ThermalParams {
            resize: 4,
            crop: 4,
            mean: 0.0,
            std: 1.0,
            frames: 2,
            clip_s: 0.3,
            ..Default::default()
        });
        let y16 = |c: f32| {
            let mut f = Frame::zeroed(4, 4, PixelFormat::ThermalY16);
            let n = ((c + 273.15) * 100.0).round() as u16;
            for b in f.data.chunks_exact_mut(2) {
                b.copy_from_slice(&n.to_le_bytes());
            }
            f
        };
        let mut p = Preprocessor::new(&thermal).unwrap();
        let w = window(
            Modality::Thermal,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: y16(10.0),
                earlier: vec![(Timestamp::sim(1_600_000_000), y16(40.0))],
            },
        );
        let items = p.window(&w).unwrap();
        assert_eq!(items[0].shape, vec![1, 2, 4, 4]);
        assert!(
            (items[0].data[0] - 50.0 / 70.0).abs() < 1e-4,
            "{}",
            items[0].data[0]
        );
        assert!(
            (items[0].data[16] - 20.0 / 70.0).abs() < 1e-4,
            "{}",
            items[0].data[16]
        );
        // A single frame given to a clip contract is refused, naming the window.
        let single = window(
            Modality::Thermal,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: y16(10.0),
                earlier: Vec::new(),
            },
        );
        let e = p.window(&single).unwrap_err().to_string();
        assert!(
            e.contains("2-frame clip (0.3 s apart)")
                && e.contains("thermal window")
                && e.contains("has 1"),
            "{e}"
        );
        // A clip whose earlier frame is of another format is refused too.
        let mixed = window(
            Modality::Thermal,
            WindowData::Frame {
                t: Timestamp::sim(1_900_000_000),
                frame: y16(10.0),
                earlier: vec![(Timestamp::sim(1_600_000_000), z16(1000))],
            },
        );
        assert!(p.window(&mixed).is_err());
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
                earlier: vec![(Timestamp::sim(1_400_000_000), early)],
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
                earlier: Vec::new(),
            },
        );
        let e = p.window(&single).unwrap_err().to_string();
        assert!(
            e.contains("2-frame clip (0.5 s apart)") && e.contains("2000000000 ns"),
            "{e}"
        );
    }
}
