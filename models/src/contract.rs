//! The encoder contract: what an encoder takes, what it gives, and in which
//! space its vectors live. It travels inside the ONNX file as the
//! `metadata_props` entry [`CONTRACT_KEY`] holding JSON, so a model file is
//! self-describing; a foreign file (an official ImageBind export) gets a
//! sidecar TOML whose missing values default to ImageBind's.
//!
//! ```json
//! {"version": 1, "modality": "vision", "space": "minilm-l6-v2-text",
//!  "input": {"name": "image", "shape": ["batch", 3, 224, 224]},
//!  "output": {"name": "embedding", "dim": 384},
//!  "preprocess": {"kind": "vision", "resize": 224, "crop": 224, "frames": 0,
//!                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
//!  "window_s": 1.0, "trained_against": "...", "source": "..."}
//! ```
//!
//! The first input dimension is the batch (symbolic); every other dimension is
//! fixed and must agree with what the preprocessing produces and with the
//! graph, or loading refuses the model with a message naming both values.

use serde::{Deserialize, Serialize};

use crate::preprocess::audio::AudioParams;
use crate::preprocess::depth::DepthParams;
use crate::preprocess::imu::ImuParams;
use crate::preprocess::thermal::ThermalParams;
use crate::preprocess::vision::VisionParams;

/// `metadata_props` key of the contract.
pub const CONTRACT_KEY: &str = "edgebind.contract";

/// Contract format version this build reads.
pub const CONTRACT_VERSION: u32 = 1;

/// The space of an official ImageBind-huge export.
pub const IMAGEBIND_SPACE: &str = "imagebind-huge";

/// What an encoder encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractModality {
    /// Camera frames.
    Vision,
    /// Microphone audio.
    Audio,
    /// Depth frames.
    Depth,
    /// Thermal frames.
    Thermal,
    /// IMU windows.
    Imu,
    /// Text (the text tower).
    Text,
}

impl ContractModality {
    /// The five sensor modalities (everything but text), in sensor order.
    pub const SENSORS: [ContractModality; 5] = [
        ContractModality::Vision,
        ContractModality::Audio,
        ContractModality::Depth,
        ContractModality::Thermal,
        ContractModality::Imu,
    ];

    /// The sensor stream this encodes; `None` for text.
    pub fn sensor(self) -> Option<edgebind_sensors::Modality> {
        Some(match self {
            ContractModality::Vision => edgebind_sensors::Modality::Vision,
            ContractModality::Audio => edgebind_sensors::Modality::Audio,
            ContractModality::Depth => edgebind_sensors::Modality::Depth,
            ContractModality::Thermal => edgebind_sensors::Modality::Thermal,
            ContractModality::Imu => edgebind_sensors::Modality::Imu,
            ContractModality::Text => return None,
        })
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractModality::Vision => "vision",
            ContractModality::Audio => "audio",
            ContractModality::Depth => "depth",
            ContractModality::Thermal => "thermal",
            ContractModality::Imu => "imu",
            ContractModality::Text => "text",
        }
    }
}

/// One dimension: fixed, or a named symbol (only the batch dimension may be symbolic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size, e.g. `"batch"`.
    Symbol(String),
}

/// The model input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Graph input name.
    pub name: String,
    /// Shape, batch first.
    pub shape: Vec<Dim>,
}

/// The model output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Graph output name.
    pub name: String,
    /// Embedding dimension (the output is `[batch, dim]`).
    pub dim: usize,
}

/// Text tower preprocessing: the tokenizer travels beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextParams {
    /// Tokenizer file, relative to the model file.
    pub tokenizer: String,
    /// Longest token sequence; longer text is truncated.
    pub max_length: usize,
}

impl Default for TextParams {
    fn default() -> Self {
        TextParams {
            tokenizer: "tokenizer.json".into(),
            max_length: 256,
        }
    }
}

/// How a window becomes the model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Preprocess {
    /// [`crate::preprocess::vision`].
    Vision(VisionParams),
    /// [`crate::preprocess::audio`].
    Audio(AudioParams),
    /// [`crate::preprocess::depth`].
    Depth(DepthParams),
    /// [`crate::preprocess::thermal`].
    Thermal(ThermalParams),
    /// [`crate::preprocess::imu`].
    Imu(ImuParams),
    /// Tokenizer.
    Text(TextParams),
}

impl Preprocess {
    fn kind(&self) -> ContractModality {
        match self {
            Preprocess::Vision(_) => ContractModality::Vision,
            Preprocess::Audio(_) => ContractModality::Audio,
            Preprocess::Depth(_) => ContractModality::Depth,
            Preprocess::Thermal(_) => ContractModality::Thermal,
            Preprocess::Imu(_) => ContractModality::Imu,
            Preprocess::Text(_) => ContractModality::Text,
        }
    }

    /// Seconds between the frames of the clip the encoder takes (vision,
    /// depth or thermal with a real clip of [`Preprocess::frames`] frames,
    /// 2 or more, evenly spaced and ending with the window's own frame); 0
    /// for single frames and every other modality. The windower is built
    /// with it ([`edgebind_sensors::window::Windower::with_clip_frames`]).
    pub fn clip_s(&self) -> f64 {
        match self {
            Preprocess::Vision(p) => p.clip_s,
            Preprocess::Depth(p) => p.clip_s,
            Preprocess::Thermal(p) => p.clip_s,
            _ => 0.0,
        }
    }

    /// Frames on the item's time axis (0: no time axis).
    pub fn frames(&self) -> usize {
        match self {
            Preprocess::Vision(p) => p.frames,
            Preprocess::Depth(p) => p.frames,
            Preprocess::Thermal(p) => p.frames,
            _ => 0,
        }
    }

    /// The per-item shape this preprocessing produces (no batch dimension), if fixed.
    pub fn item_shape(&self) -> Option<Vec<usize>> {
        let image = |c: usize, frames: usize, crop: u32| {
            let crop = crop as usize;
            if frames == 0 {
                vec![c, crop, crop]
            } else {
                vec![c, frames, crop, crop]
            }
        };
        Some(match self {
            Preprocess::Vision(p) => image(3, p.frames, p.crop),
            Preprocess::Audio(p) => vec![1, p.fbank.num_mel_bins, p.target_length],
            Preprocess::Depth(p) => image(1, p.frames, p.crop),
            Preprocess::Thermal(p) => image(1, p.frames, p.crop),
            Preprocess::Imu(p) => vec![6, p.length],
            Preprocess::Text(_) => return None,
        })
    }
}

/// An encoder's contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Format version ([`CONTRACT_VERSION`]).
    pub version: u32,
    /// What it encodes.
    pub modality: ContractModality,
    /// The space its vectors live in; vectors of different spaces are never compared.
    pub space: String,
    /// Model input.
    pub input: InputSpec,
    /// Model output.
    pub output: OutputSpec,
    /// Preprocessing.
    pub preprocess: Preprocess,
    /// Seconds of sensor data per window (informs the windower).
    #[serde(default)]
    pub window_s: Option<f64>,
    /// What it was trained (bound) against.
    #[serde(default)]
    pub trained_against: String,
    /// Provenance.
    #[serde(default)]
    pub source: String,
}

/// A contract that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContractError {
    /// The JSON or TOML does not parse.
    #[error("contract does not parse: {0}")]
    Parse(String),
    /// A value that contradicts another, or the graph.
    #[error("contract: {0}")]
    Invalid(String),
}

impl Contract {
    /// ImageBind-huge's contract for `modality`: its input shape, 1024-d output
    /// and preprocessing defaults. Input names are edgebind's export convention
    /// (the modality name); a sidecar overrides them.
    pub fn imagebind(modality: ContractModality) -> Contract {
        let b = || Dim::Symbol("batch".into());
        let f = Dim::Fixed;
        let (shape, preprocess, window_s) = match modality {
            ContractModality::Vision => (
                vec![b(), f(3), f(2), f(224), f(224)],
                Preprocess::Vision(VisionParams::default()),
                1.0,
            ),
            ContractModality::Audio => (
                vec![b(), f(1), f(128), f(204)],
                Preprocess::Audio(AudioParams::default()),
                2.0,
            ),
            ContractModality::Depth => (
                vec![b(), f(1), f(224), f(224)],
                Preprocess::Depth(DepthParams::default()),
                1.0,
            ),
            ContractModality::Thermal => (
                vec![b(), f(1), f(224), f(224)],
                Preprocess::Thermal(ThermalParams::default()),
                1.0,
            ),
            ContractModality::Imu => (
                vec![b(), f(6), f(2000)],
                Preprocess::Imu(ImuParams::default()),
                5.0,
            ),
            ContractModality::Text => (
                vec![b(), f(77)],
                Preprocess::Text(TextParams::default()),
                0.0,
            ),
        };
        Contract {
            version: CONTRACT_VERSION,
            modality,
            space: IMAGEBIND_SPACE.into(),
            input: InputSpec {
                name: modality.as_str().into(),
                shape,
            },
            output: OutputSpec {
                name: "embedding".into(),
                dim: 1024,
            },
            preprocess,
            window_s: (window_s > 0.0).then_some(window_s),
            trained_against: "ImageBind (image-anchored, CVPR 2023)".into(),
            source: String::new(),
        }
    }

    /// Parses and validates the JSON stored in a model's metadata.
    pub fn from_json(text: &str) -> Result<Contract, ContractError> {
        let c: Contract =
            serde_json::from_str(text).map_err(|e| ContractError::Parse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// The JSON to store in a model's metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a contract always serialises")
    }

    /// Parses a sidecar TOML: `modality` is required, everything else defaults
    /// to [`Contract::imagebind`] of that modality (tables merge key by key, so
    /// `[preprocess] clips = 1` keeps the other audio defaults).
    pub fn from_sidecar_toml(text: &str) -> Result<Contract, ContractError> {
        let overrides: toml::Table =
            toml::from_str(text).map_err(|e| ContractError::Parse(e.to_string()))?;
        let modality = overrides
            .get("modality")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                ContractError::Parse(
                    "sidecar needs `modality = \"vision\"` (or audio, depth, thermal, imu, text)"
                        .into(),
                )
            })?;
        let modality: ContractModality =
            serde_json::from_value(serde_json::Value::String(modality.into()))
                .map_err(|_| ContractError::Parse(format!("unknown modality `{modality}`")))?;
        let mut base = serde_json::to_value(Contract::imagebind(modality)).expect("serialisable");
        let over =
            serde_json::to_value(&overrides).map_err(|e| ContractError::Parse(e.to_string()))?;
        merge_json(&mut base, over);
        let c: Contract =
            serde_json::from_value(base).map_err(|e| ContractError::Parse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the contract against itself: version, preprocessing kind and the
    /// shape it produces against the declared input.
    pub fn validate(&self) -> Result<(), ContractError> {
        let bad = |m: String| Err(ContractError::Invalid(m));
        if self.version != CONTRACT_VERSION {
            return bad(format!(
                "version {} (this build reads version {CONTRACT_VERSION})",
                self.version
            ));
        }
        if self.space.trim().is_empty() {
            return bad("`space` is empty".into());
        }
        if self.output.dim == 0 {
            return bad("`output.dim` is 0".into());
        }
        if self.preprocess.kind() != self.modality {
            return bad(format!(
                "modality is {} but preprocess.kind is {}",
                self.modality.as_str(),
                self.preprocess.kind().as_str()
            ));
        }
        if self.input.shape.is_empty() {
            return bad("`input.shape` is empty".into());
        }
        let (clip_s, frames) = (self.preprocess.clip_s(), self.preprocess.frames());
        let max = edgebind_sensors::window::MAX_CLIP_FRAMES;
        if clip_s != 0.0 && (!(2..=max).contains(&frames) || !(0.001..=60.0).contains(&clip_s)) {
            return bad(format!(
                "preprocess.clip_s = {clip_s} needs `frames` = 2..{max} (got {frames}) and 0.001..60 s"
            ));
        }
        for (i, d) in self.input.shape.iter().enumerate().skip(1) {
            if let Dim::Symbol(s) = d {
                return bad(format!(
                    "input.shape[{i}] is `{s}`: only the batch dimension (0) may be symbolic"
                ));
            }
        }
        if let Some(item) = self.preprocess.item_shape() {
            let declared: Vec<Option<usize>> = self.input.shape[1..]
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => Some(*n),
                    Dim::Symbol(_) => None,
                })
                .collect();
            let produced: Vec<Option<usize>> = item.iter().map(|n| Some(*n)).collect();
            if declared != produced {
                return bad(format!(
                    "input.shape {:?} (after batch) does not match what the {} preprocessing produces {:?}",
                    declared.iter().map(|d| d.unwrap_or(0)).collect::<Vec<_>>(),
                    self.modality.as_str(),
                    item
                ));
            }
        }
        Ok(())
    }

    /// Checks the contract against a graph's input and output facts (`None`
    /// for a symbolic dimension).
    pub fn check_graph(
        &self,
        inputs: &[(String, Vec<Option<usize>>)],
        outputs: &[(String, Vec<Option<usize>>)],
    ) -> Result<(), ContractError> {
        let names = |v: &[(String, Vec<Option<usize>>)]| {
            v.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some((_, ishape)) = inputs.iter().find(|(n, _)| *n == self.input.name) else {
            return Err(ContractError::Invalid(format!(
                "input `{}` is not in the graph (its inputs: {})",
                self.input.name,
                names(inputs)
            )));
        };
        if ishape.len() != self.input.shape.len() {
            return Err(ContractError::Invalid(format!(
                "input `{}` has rank {} in the graph, {} in the contract",
                self.input.name,
                ishape.len(),
                self.input.shape.len()
            )));
        }
        for (i, (g, c)) in ishape.iter().zip(&self.input.shape).enumerate() {
            if let (Some(g), Dim::Fixed(c)) = (g, c)
                && g != c
            {
                return Err(ContractError::Invalid(format!(
                    "input `{}` dimension {i} is {g} in the graph, {c} in the contract",
                    self.input.name
                )));
            }
        }
        let Some((_, oshape)) = outputs.iter().find(|(n, _)| *n == self.output.name) else {
            return Err(ContractError::Invalid(format!(
                "output `{}` is not in the graph (its outputs: {})",
                self.output.name,
                names(outputs)
            )));
        };
        if let Some(Some(d)) = oshape.last()
            && *d != self.output.dim
        {
            return Err(ContractError::Invalid(format!(
                "output `{}` has {d} values per item in the graph, the contract says {}",
                self.output.name, self.output.dim
            )));
        }
        Ok(())
    }
}

/// Deep-merges `over` onto `base`: objects key by key, anything else replaced
/// (how a sidecar contract, or a training plan's override, applies to defaults).
pub fn merge_json(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagebind_defaults_are_valid_and_round_trip() {
        for m in ContractModality::SENSORS {
            let c = Contract::imagebind(m);
            c.validate().unwrap();
            assert_eq!(Contract::from_json(&c.to_json()).unwrap(), c);
        }
    }

    #[test]
    fn sidecar_merges_onto_imagebind_defaults() {
        let c = Contract::from_sidecar_toml(
            "modality = \"audio\"\n[input]\nname = \"audio_input\"\n[preprocess]\nclips = 1\n",
        )
        .unwrap();
        assert_eq!(c.input.name, "audio_input");
        assert_eq!(c.output.dim, 1024);
        assert_eq!(c.space, IMAGEBIND_SPACE);
        let Preprocess::Audio(a) = &c.preprocess else {
            panic!()
        };
        assert_eq!((a.clips, a.target_length, a.mean), (1, 204, -4.268));
        let e = Contract::from_sidecar_toml("space = \"x\"").unwrap_err();
        assert!(e.to_string().contains("modality"), "{e}");
        let e = Contract::from_sidecar_toml("modality = \"audio\"\n[preprocess]\nclipz = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("clipz"), "{e}");
    }

    #[test]
    fn inconsistent_contracts_are_refused_with_both_values() {
        let mut c = Contract::imagebind(ContractModality::Vision);
        c.input.shape[3] = Dim::Fixed(256);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("256") && e.contains("224"), "{e}");
        let mut c = Contract::imagebind(ContractModality::Depth);
        c.preprocess = Preprocess::Imu(ImuParams::default());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("preprocess.kind is imu")
        );
        let mut c = Contract::imagebind(ContractModality::Imu);
        c.input.shape[2] = Dim::Symbol("time".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn depth_and_thermal_clips_shape_the_input_and_are_checked() {
        // Single-frame contracts serialise as before: no `frames`, no `clip_s`.
        let c = Contract::imagebind(ContractModality::Thermal);
        let json = serde_json::to_string(&c.preprocess).unwrap();
        assert!(
            !json.contains("frames") && !json.contains("clip_s"),
            "{json}"
        );
        let mut c = Contract::imagebind(ContractModality::Depth);
        let Preprocess::Depth(p) = &mut c.preprocess else {
            unreachable!()
        };
        p.frames = 2;
        p.clip_s = 0.5;
        assert!(c.validate().unwrap_err().to_string().contains("224"));
        c.input.shape = vec![
            Dim::Symbol("batch".into()),
            Dim::Fixed(1),
            Dim::Fixed(2),
            Dim::Fixed(224),
            Dim::Fixed(224),
        ];
        c.validate().unwrap();
        assert_eq!(c.preprocess.clip_s(), 0.5);
        let back: Contract = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let Preprocess::Depth(p) = &mut c.preprocess else {
            unreachable!()
        };
        // A 3-frame clip (t - 1 s, t - 0.5 s, t) when the input says 3 frames.
        p.frames = 3;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("input"), "{e}");
        c.input.shape[2] = Dim::Fixed(3);
        c.validate().unwrap();
        for frames in [1, 17] {
            let Preprocess::Depth(p) = &mut c.preprocess else {
                unreachable!()
            };
            p.frames = frames;
            c.input.shape[2] = Dim::Fixed(frames);
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "clip_s = 0.5 needs `frames` = 2..16 (got {frames})"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn graph_mismatches_name_the_place() {
        let c = Contract::imagebind(ContractModality::Imu);
        let ok_in = vec![("imu".to_string(), vec![None, Some(6), Some(2000)])];
        let ok_out = vec![("embedding".to_string(), vec![None, Some(1024)])];
        c.check_graph(&ok_in, &ok_out).unwrap();
        let e = c
            .check_graph(&[("imu".into(), vec![None, Some(6), Some(1000)])], &ok_out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dimension 2 is 1000 in the graph, 2000"), "{e}");
        let e = c
            .check_graph(&[("x".into(), vec![None])], &ok_out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`imu` is not in the graph (its inputs: x)"),
            "{e}"
        );
        let e = c
            .check_graph(&ok_in, &[("embedding".into(), vec![None, Some(768)])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("768") && e.contains("1024"), "{e}");
    }
}
