//! The rig section of a config file: which simulated rig to run.
//!
//! ```toml
//! [sim]
//! seed = 7
//! camera = { width = 224, height = 224, fps = 15.0 }
//! ```
//! Unknown keys are errors that name the key and line, so a typo never passes
//! silently.

use std::path::Path;

use edgebind_sensors::sim::SimConfig;
use edgebind_sensors::window::WindowConfig;
use serde::Deserialize;

/// A rig config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RigConfig {
    /// The simulated rig.
    #[serde(default)]
    pub sim: SimConfig,
    /// Per-modality windows.
    #[serde(default)]
    pub windows: WindowConfig,
}

/// Reads and parses `path`; the error names the file, the line and the field.
pub fn load(path: &Path) -> Result<RigConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.windows
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// Parses config text.
pub fn parse(text: &str) -> Result<RigConfig, String> {
    toml::from_str::<RigConfig>(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            })
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        format!("{line}{}", e.message())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_field_is_named_with_its_line() {
        let e = parse("[sim]\nseed = 1\ncamrea = { width = 8 }\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("camrea"), "{e}");
        let ok = parse("[sim]\nseed = 9\n").unwrap();
        assert_eq!(ok.sim.seed, 9);
        assert_eq!(ok.sim.camera.width, 224);
    }

    #[test]
    fn shipped_rig_config_spells_out_the_defaults() {
        let path =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                .join("../configs/sim-rig.toml");
        let cfg = load(&path).unwrap();
        let defaults = SimConfig {
            seed: 7,
            ..SimConfig::default()
        };
        assert_eq!(cfg.sim, defaults);
        assert_eq!(cfg.windows, WindowConfig::default());
    }

    #[test]
    fn bad_window_is_named() {
        let cfg = parse("[windows]\nimu = { length_s = 0.0, hop_s = 1.0 }\n").unwrap();
        let e = cfg.windows.validate().unwrap_err();
        assert!(e.contains("windows.imu") && e.contains("length_s"), "{e}");
    }
}
