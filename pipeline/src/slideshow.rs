//! A camera recording of photos shown one after another: the real-photo input
//! of the demo and of the end-to-end tests (the real image anchor on real
//! photos, with a known schedule to check events against).
//!
//! ```toml
//! fps = 5.0                 # frames per second of the "camera"
//! [[slide]]                 # no file: a mid-grey frame
//! seconds = 3.0
//! [[slide]]
//! file = "../models/fixtures/vision/chelsea.rgb8"   # raw RGB8, rows top to bottom
//! width = 451
//! height = 300
//! seconds = 5.0
//! label = "cat"             # ground truth, written to /ground_truth
//! ```
//! Relative files resolve against the spec file's directory. Timestamps: the
//! first frame at monotonic 0, wall clock the simulated rig's epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebind_sensors::Modality;
use edgebind_sensors::clock::{SIM_WALL_EPOCH_NS, Timestamp};
use edgebind_sensors::recording::Recorder;
use edgebind_sensors::sample::{Frame, Payload, PixelFormat, Sample};
use serde::Deserialize;

/// One slide.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slide {
    /// Raw RGB8 file; absent = grey.
    pub file: Option<PathBuf>,
    /// Width of `file` (grey: 320).
    #[serde(default)]
    pub width: u32,
    /// Height of `file` (grey: 240).
    #[serde(default)]
    pub height: u32,
    /// How long it is shown.
    pub seconds: f64,
    /// What it shows.
    pub label: Option<String>,
}

/// A slideshow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slideshow {
    /// Frames per second.
    pub fps: f64,
    /// The slides, in order.
    #[serde(rename = "slide")]
    pub slides: Vec<Slide>,
}

/// When each labelled slide is on screen (monotonic ns, `[start, end)`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shown {
    /// Its label.
    pub label: Option<String>,
    /// First frame.
    pub start_ns: u64,
    /// End of its time on screen.
    pub end_ns: u64,
}

impl Slideshow {
    /// Reads a spec; relative files resolve against its directory.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut s: Slideshow =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for sl in &mut s.slides {
            if let Some(f) = &mut sl.file
                && f.is_relative()
            {
                *f = base.join(&*f);
            }
        }
        Ok(s)
    }

    /// The schedule.
    pub fn schedule(&self) -> Vec<Shown> {
        let mut t = 0u64;
        self.slides
            .iter()
            .map(|s| {
                let start = t;
                t += (s.seconds * 1e9).round() as u64;
                Shown {
                    label: s.label.clone(),
                    start_ns: start,
                    end_ns: t,
                }
            })
            .collect()
    }

    /// Writes the recording; returns the schedule.
    pub fn record(&self, out: &Path) -> Result<Vec<Shown>, String> {
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 120.0) {
            return Err(format!("fps = {}: must be in (0, 120]", self.fps));
        }
        let mut frames = Vec::new();
        for (i, s) in self.slides.iter().enumerate() {
            if !(s.seconds.is_finite() && s.seconds > 0.0) {
                return Err(format!("slide {}: seconds must be > 0", i + 1));
            }
            let f = match &s.file {
                None => {
                    let (w, h) = (
                        if s.width > 0 { s.width } else { 320 },
                        if s.height > 0 { s.height } else { 240 },
                    );
                    Frame {
                        width: w,
                        height: h,
                        format: PixelFormat::Rgb8,
                        data: vec![128; w as usize * h as usize * 3],
                    }
                }
                Some(p) => {
                    let data = std::fs::read(p)
                        .map_err(|e| format!("slide {}: {}: {e}", i + 1, p.display()))?;
                    let f = Frame {
                        width: s.width,
                        height: s.height,
                        format: PixelFormat::Rgb8,
                        data,
                    };
                    f.validate()
                        .map_err(|e| format!("slide {}: {}: {e}", i + 1, p.display()))?;
                    f
                }
            };
            frames.push(f);
        }
        let info = BTreeMap::from([("rig".to_string(), "slideshow".to_string())]);
        let mut rec = Recorder::create(out, &info).map_err(|e| e.to_string())?;
        let schedule = self.schedule();
        let period = 1e9 / self.fps;
        let total = schedule.last().map_or(0, |s| s.end_ns);
        let mut k = 0u64;
        loop {
            let t = (k as f64 * period).round() as u64;
            if t >= total {
                break;
            }
            let i = schedule.iter().position(|s| t < s.end_ns).unwrap_or(0);
            let sample = Sample {
                modality: Modality::Vision,
                t: Timestamp {
                    mono_ns: t,
                    wall_ns: SIM_WALL_EPOCH_NS + t,
                },
                payload: Payload::Frame(frames[i].clone()),
            };
            rec.write_sample(&sample).map_err(|e| e.to_string())?;
            k += 1;
        }
        rec.finish().map_err(|e| e.to_string())?;
        Ok(schedule)
    }
}
