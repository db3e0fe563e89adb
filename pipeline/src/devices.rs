//! The `devices` rig: real V4L2 / ALSA / IIO sensors from `[rig.devices.*]`.

use edgebind_sensors::adapter::SensorAdapter;

use crate::config::Config;

/// Builds the device adapters of `[rig.devices]`.
pub fn build(cfg: &Config) -> Result<Vec<Box<dyn SensorAdapter>>, String> {
    let _ = cfg;
    Err("rig.kind = \"devices\": the device adapters are not in this build yet".into())
}
