//! The `devices` rig: real V4L2 / ALSA / IIO sensors from `[rig.devices.*]`
//! (see `edgebind_sensors::devices` and `configs/jetson.toml`).
//!
//! The depth camera's intrinsics (`fx`, `baseline_m`) belong to the device,
//! not to the model: they replace the depth encoder contract's values for the
//! depth -> disparity step ([`depth_preprocess`]), keeping its other fields.

use edgebind_models::contract::Preprocess;
use edgebind_sensors::adapter::SensorAdapter;

use crate::config::{Config, RigKind};

/// Builds the device adapters of `[rig.devices]` (none is opened yet: a device
/// missing at start is reported down and retried with backoff).
pub fn build(cfg: &Config) -> Result<Vec<Box<dyn SensorAdapter>>, String> {
    let d = cfg
        .rig
        .devices
        .as_ref()
        .ok_or("rig.kind = \"devices\" needs [rig.devices.*] tables")?;
    edgebind_sensors::devices::build_adapters(d).map_err(|e| format!("rig.devices: {e}"))
}

/// The depth encoder's preprocessing with the device's intrinsics, when the
/// rig is a device rig with a depth camera; otherwise the contract's own.
pub fn depth_preprocess(cfg: &Config, contract: &Preprocess) -> Preprocess {
    let mut p = contract.clone();
    if cfg.rig.kind == RigKind::Devices
        && let Some(i) = cfg.rig.devices.as_ref().and_then(|d| d.depth_intrinsics())
        && let Preprocess::Depth(d) = &mut p
    {
        d.fx_px = i.fx_px;
        d.baseline_m = i.baseline_m;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_intrinsics_replace_the_contracts() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let cfg = crate::config::load(&std::path::Path::new(&dir).join("../configs/jetson.toml"))
            .unwrap();
        let c = edgebind_models::contract::Contract::imagebind(
            edgebind_models::contract::ContractModality::Depth,
        );
        let Preprocess::Depth(p) = depth_preprocess(&cfg, &c.preprocess) else {
            panic!("not depth")
        };
        assert_eq!((p.fx_px, p.baseline_m), (421.0, 0.05));
        let Preprocess::Depth(orig) = &c.preprocess else {
            panic!()
        };
        assert_eq!(p.crop, orig.crop);
        // Adapters build without opening anything (no devices here).
        let a = build(&cfg).unwrap();
        assert_eq!(a.len(), 5);
    }
}
