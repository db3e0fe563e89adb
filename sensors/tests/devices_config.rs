//! configs/jetson.toml: a daemon config whose `[rig.devices]` table is a valid
//! [`DevicesConfig`] with all five sensors, and the adapters it builds.

use edgebind_sensors::Modality;
use edgebind_sensors::devices::{
    CameraFormat, DevicesConfig, ImuMode, ThermalOutput, ThermalUnits, build_adapters,
};

fn jetson() -> (toml::Table, DevicesConfig) {
    let path = format!(
        "{}/../configs/jetson.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let devices = doc["rig"]["devices"].clone();
    let cfg: DevicesConfig = devices.try_into().unwrap();
    (doc, cfg)
}

#[test]
fn jetson_config_has_all_five_sensors() {
    let (doc, cfg) = jetson();
    assert_eq!(doc["device_id"].as_str(), Some("jetson-01"));
    assert_eq!(doc["rig"]["kind"].as_str(), Some("devices"));
    cfg.validate().unwrap();
    let cam = cfg.camera.as_ref().unwrap();
    assert_eq!(
        (cam.width, cam.height, cam.format),
        (640, 480, CameraFormat::Mjpeg)
    );
    let depth = cfg.depth.as_ref().unwrap();
    assert_eq!((depth.fx, depth.baseline_m), (421.0, 0.05));
    let t = cfg.thermal.as_ref().unwrap();
    assert_eq!(
        (t.units, t.output),
        (ThermalUnits::Centikelvin, ThermalOutput::Centikelvin)
    );
    assert_eq!(cfg.microphone.as_ref().unwrap().sample_rate, Some(48000));
    assert_eq!(cfg.imu.as_ref().unwrap().mode, ImuMode::Buffered);
    let intr = cfg.depth_intrinsics().unwrap();
    assert_eq!((intr.fx_px, intr.baseline_m), (421.0, 0.05));
}

#[cfg(feature = "devices")]
#[test]
fn jetson_config_builds_five_adapters_without_opening_anything() {
    let (_, cfg) = jetson();
    let adapters = build_adapters(&cfg).unwrap();
    let streams: Vec<Modality> = adapters
        .iter()
        .flat_map(|a| a.streams())
        .map(|s| s.modality)
        .collect();
    assert_eq!(
        streams,
        [
            Modality::Vision,
            Modality::Audio,
            Modality::Depth,
            Modality::Thermal,
            Modality::Imu
        ]
    );
    let names: Vec<&str> = adapters.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["camera", "microphone", "depth", "thermal", "imu"]);
}

#[test]
fn a_typo_in_a_device_table_is_an_error_naming_the_key() {
    let (doc, _) = jetson();
    let mut devices = doc["rig"]["devices"].as_table().unwrap().clone();
    devices["thermal"]
        .as_table_mut()
        .unwrap()
        .insert("unit".into(), toml::Value::String("centikelvin".into()));
    let e = toml::Value::Table(devices)
        .try_into::<DevicesConfig>()
        .unwrap_err();
    assert!(e.to_string().contains("unit"), "{e}");
}
