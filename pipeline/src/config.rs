//! The daemon's config file (TOML). Every section is optional except what the
//! chosen rig needs; unknown keys are errors naming the key and its line, and
//! every semantic check names the field (and the line where it can).
//!
//! Relative paths (models, recordings, the state directory) are resolved
//! against the directory of the config file, so a config and its files move
//! together. See `configs/demo.toml` for a commented example of every section.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use edgebind_models::backend::BackendOptions;
use edgebind_sensors::Modality;
use edgebind_sensors::adapters::Pace;
use edgebind_sensors::sim::SimConfig;
use edgebind_sensors::window::WindowConfig;
use serde::{Deserialize, Serialize};

use crate::concepts::ConceptSpec;

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Device id: the MQTT topic prefix `edgebind/<device_id>/` and part of every event id.
    #[serde(default = "default_device_id")]
    pub device_id: String,
    /// The sensors.
    #[serde(default)]
    pub rig: RigSection,
    /// Per-modality windows.
    #[serde(default)]
    pub windows: WindowConfig,
    /// Encoders by modality (`[encoders.vision]` ...). A modality without an
    /// encoder is windowed but not embedded.
    #[serde(default)]
    pub encoders: BTreeMap<Modality, EncoderConfig>,
    /// The text tower.
    #[serde(default)]
    pub text: TextConfig,
    /// Fusion of a moment's embeddings.
    #[serde(default)]
    pub fusion: FusionConfig,
    /// The MQTT broker.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// Where the outbox and run-time concepts live.
    #[serde(default)]
    pub state: StateConfig,
    /// Recent moments kept for search.
    #[serde(default)]
    pub history: HistoryConfig,
    /// Status, metrics and the Prometheus endpoint.
    #[serde(default)]
    pub health: HealthConfig,
    /// Concepts (`[[concept]]` tables).
    #[serde(default, rename = "concept")]
    pub concepts: Vec<toml::Spanned<ConceptSpec>>,
}

fn default_device_id() -> String {
    "edgebind".into()
}

/// Which rig runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RigKind {
    /// The simulated rig (`[rig.sim]`).
    #[default]
    Sim,
    /// A recording (`[rig.replay]`).
    Replay,
    /// Real devices (`[rig.devices]`).
    Devices,
}

/// `[rig]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RigSection {
    /// `sim`, `replay` or `devices`.
    #[serde(default)]
    pub kind: RigKind,
    /// Ring capacity per stream (samples).
    #[serde(default = "default_ring")]
    pub ring_capacity: usize,
    /// The simulated rig.
    #[serde(default)]
    pub sim: SimConfig,
    /// The recording to replay.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
    /// Real devices (see `configs/jetson.toml`).
    #[serde(default)]
    pub devices: Option<edgebind_sensors::devices::DevicesConfig>,
}

fn default_ring() -> usize {
    256
}

impl Default for RigSection {
    fn default() -> Self {
        RigSection {
            kind: RigKind::Sim,
            ring_capacity: default_ring(),
            sim: SimConfig::default(),
            replay: None,
            devices: None,
        }
    }
}

/// `[rig.replay]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The MCAP file.
    pub path: PathBuf,
    /// `real_time` (default) or `fast` (lossless, as fast as the encoders go).
    #[serde(default)]
    pub pace: Pace,
}

/// `[encoders.<modality>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// The ONNX file (contract inside, or a sidecar `NAME.contract.toml`).
    pub model: PathBuf,
    /// `tract` (CPU, default) or `tensorrt` (needs the `tensorrt` build feature).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Threads for matrix products.
    #[serde(default = "one")]
    pub threads: usize,
    /// Largest batch.
    #[serde(default = "one")]
    pub max_batch: usize,
    /// Longest wait (ms) for a batch to fill once one window is waiting.
    #[serde(default = "default_wait")]
    pub max_wait_ms: u64,
    /// Windows waiting for this encoder; when full the oldest is dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_backend() -> String {
    "tract".into()
}
fn one() -> usize {
    1
}
fn default_wait() -> u64 {
    20
}
fn default_queue() -> usize {
    4
}

impl EncoderConfig {
    /// Backend options for models/.
    pub fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            threads: self.threads,
            max_batch: self.max_batch,
        }
    }
}

/// `[text]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Directory of the text tower (default `$EDGEBIND_MODELS/text`, or
    /// `~/.cache/edgebind/models/text`; `scripts/fetch-models.sh` fills it).
    pub dir: Option<PathBuf>,
}

/// `[fusion]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Weight per modality in the fused embedding (default 1 each).
    #[serde(default)]
    pub weights: BTreeMap<Modality, f32>,
    /// Longest wait (s) for a slow modality before a moment is fused without it.
    #[serde(default = "default_lateness")]
    pub lateness_s: f64,
    /// Multi-clip span (s): each modality's embedding in a moment is the
    /// mean of its window embeddings whose windows lie inside the last
    /// `clip_span_s` (ImageBind averages several clips per sample the same
    /// way; `edgebind-train eval --clip-span-s` scores the same thing).
    /// 0: each window on its own. Default 5 (the IMU's window: a 1 s camera
    /// clip is averaged with the four before it, a 2 s audio window with
    /// the three before it, the IMU's 5 s window stands alone).
    #[serde(default = "default_clip_span")]
    pub clip_span_s: f64,
}

fn default_clip_span() -> f64 {
    5.0
}

fn default_lateness() -> f64 {
    3.0
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            weights: BTreeMap::new(),
            lateness_s: default_lateness(),
            clip_span_s: default_clip_span(),
        }
    }
}

/// `[broker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `mqtt://HOST:PORT` or `mqtts://HOST:PORT`. Absent: an embedded broker on
    /// `127.0.0.1:embedded_port`.
    pub url: Option<String>,
    /// Port of the embedded broker (default 1883).
    pub embedded_port: Option<u16>,
    /// Client id (default `edgebind-<device_id>`).
    pub client_id: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Keep-alive seconds (default 10).
    pub keep_alive_s: Option<u64>,
    /// TLS (for `mqtts://`; needs the `tls` build feature).
    pub tls: Option<TlsConfig>,
}

/// `[broker.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Client certificate (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
}

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

/// Parses `mqtt://HOST:PORT` / `mqtts://HOST:PORT` (port defaults 1883 / 8883).
pub fn parse_broker_url(url: &str) -> Result<BrokerAddr, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(format!(
            "broker url `{url}`: must start with mqtt:// or mqtts://"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("broker url `{url}`: port `{p}` is not a number 1-65535"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || port == 0 {
        return Err(format!("broker url `{url}`: needs a host and a port"));
    }
    Ok(BrokerAddr {
        host: host.trim_matches(['[', ']']).to_string(),
        port,
        tls,
    })
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for the outbox and run-time concepts.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Outbox bound in bytes (default 64 MiB); past it the oldest events are shed and counted.
    #[serde(default = "default_outbox_bytes")]
    pub outbox_max_bytes: u64,
    /// Outbox bound in messages (default 100 000).
    #[serde(default = "default_outbox_messages")]
    pub outbox_max_messages: usize,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("edgebind-state")
}
fn default_outbox_bytes() -> u64 {
    64 << 20
}
fn default_outbox_messages() -> usize {
    100_000
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
            outbox_max_bytes: default_outbox_bytes(),
            outbox_max_messages: default_outbox_messages(),
        }
    }
}

/// `[history]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Seconds of moments kept (default 3600).
    #[serde(default = "default_history_s")]
    pub seconds: f64,
    /// Memory bound in bytes (default 64 MiB): whichever bound is hit first wins.
    #[serde(default = "default_history_bytes")]
    pub max_bytes: usize,
}

fn default_history_s() -> f64 {
    3600.0
}
fn default_history_bytes() -> usize {
    64 << 20
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            seconds: default_history_s(),
            max_bytes: default_history_bytes(),
        }
    }
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between status (retained) and metrics messages (default 5).
    #[serde(default = "default_status_s")]
    pub status_interval_s: f64,
    /// Serve Prometheus text metrics on this address (e.g. "127.0.0.1:9464").
    pub prometheus: Option<SocketAddr>,
}

fn default_status_s() -> f64 {
    5.0
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            status_interval_s: default_status_s(),
            prometheus: None,
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses config text; `base` resolves relative paths. Errors name the line and field.
pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
    let mut cfg = toml::from_str::<Config>(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!("line {}: ", line_of(text, s.start)))
            .unwrap_or_default();
        format!("{line}{}", e.message().trim_end())
    })?;
    cfg.validate(text)?;
    cfg.resolve(base);
    Ok(cfg)
}

/// Reads, parses and validates a config file; the error names the file.
pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
}

fn valid_level(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    fn validate(&self, text: &str) -> Result<(), String> {
        if !valid_level(&self.device_id) {
            return Err(format!(
                "device_id `{}`: use 1 to 64 letters, digits, `-`, `_` or `.` (it is an MQTT topic level)",
                self.device_id
            ));
        }
        self.windows.validate()?;
        if self.rig.ring_capacity < 2 {
            return Err("rig.ring_capacity: at least 2".into());
        }
        match self.rig.kind {
            RigKind::Replay if self.rig.replay.is_none() => {
                return Err("rig.kind = \"replay\" needs a [rig.replay] table with `path`".into());
            }
            RigKind::Devices => match &self.rig.devices {
                None => return Err("rig.kind = \"devices\" needs [rig.devices.*] tables".into()),
                Some(d) => d.validate().map_err(|e| format!("rig.devices: {e}"))?,
            },
            _ => {}
        }
        for (m, e) in &self.encoders {
            let f = |field: &str, why: &str| format!("encoders.{m}.{field}: {why}");
            if e.backend != "tract" && e.backend != "tensorrt" {
                return Err(f(
                    "backend",
                    &format!("`{}` is not tract or tensorrt", e.backend),
                ));
            }
            if e.threads == 0 || e.threads > 64 {
                return Err(f("threads", "1 to 64"));
            }
            if e.max_batch == 0 || e.max_batch > 256 {
                return Err(f("max_batch", "1 to 256"));
            }
            if e.queue == 0 {
                return Err(f("queue", "at least 1"));
            }
            if e.max_wait_ms > 10_000 {
                return Err(f("max_wait_ms", "at most 10000"));
            }
        }
        for (m, w) in &self.fusion.weights {
            if !w.is_finite() || *w < 0.0 {
                return Err(format!("fusion.weights.{m}: {w} must be >= 0"));
            }
        }
        if !(self.fusion.lateness_s.is_finite() && self.fusion.lateness_s >= 0.0) {
            return Err("fusion.lateness_s: must be >= 0".into());
        }
        if !(self.fusion.clip_span_s.is_finite()
            && (0.0..=3600.0).contains(&self.fusion.clip_span_s))
        {
            return Err(format!(
                "fusion.clip_span_s: must be between 0 and 3600 s, got {}",
                self.fusion.clip_span_s
            ));
        }
        if let Some(url) = &self.broker.url {
            parse_broker_url(url).map_err(|e| format!("broker.url: {e}"))?;
        }
        if !(self.history.seconds.is_finite() && self.history.seconds >= 0.0) {
            return Err("history.seconds: must be >= 0".into());
        }
        if !(self.health.status_interval_s.is_finite() && self.health.status_interval_s >= 0.1) {
            return Err("health.status_interval_s: at least 0.1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.concepts {
            let line = line_of(text, c.span().start);
            c.get_ref()
                .validate()
                .map_err(|e| format!("line {line}: [[concept]] {e}"))?;
            if !names.insert(c.get_ref().name.clone()) {
                return Err(format!(
                    "line {line}: [[concept]] name `{}` is used twice",
                    c.get_ref().name
                ));
            }
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for e in self.encoders.values_mut() {
            fix(&mut e.model);
        }
        if let Some(d) = &mut self.text.dir {
            fix(d);
        }
        if let Some(r) = &mut self.rig.replay {
            fix(&mut r.path);
        }
        fix(&mut self.state.dir);
        for c in &mut self.concepts {
            if let Some(e) = &mut c.get_mut().example {
                fix(&mut e.recording);
            }
        }
        if let Some(t) = &mut self.broker.tls {
            fix(&mut t.ca);
            if let Some(c) = &mut t.cert {
                fix(c);
            }
            if let Some(k) = &mut t.key {
                fix(k);
            }
        }
    }

    /// Applies `--broker` and `--device-id`.
    pub fn override_with(
        &mut self,
        broker: Option<&str>,
        device_id: Option<&str>,
    ) -> Result<(), String> {
        if let Some(b) = broker {
            parse_broker_url(b).map_err(|e| format!("--broker: {e}"))?;
            self.broker.url = Some(b.to_string());
        }
        if let Some(d) = device_id {
            if !valid_level(d) {
                return Err(format!(
                    "--device-id `{d}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
                ));
            }
            self.device_id = d.to_string();
        }
        Ok(())
    }

    /// The concepts without their spans.
    pub fn concept_specs(&self) -> Vec<ConceptSpec> {
        self.concepts.iter().map(|c| c.get_ref().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_field() {
        let e = parse(
            "device_id = \"a\"\n[broker]\nurll = \"x\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("line 3") && e.contains("urll"), "{e}");
        let e = parse(
            "[[concept]]\nname = \"cat\"\ntext = \"a cat\"\nenter = 0.3\n\n[[concept]]\nname = \"dog\"\ntext = \"a dog\"\nenter = 0.3\nexit = 0.5\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            e.contains("line 6") && e.contains("dog") && e.contains("hysteresis"),
            "{e}"
        );
        let e = parse("[encoders.smell]\nmodel = \"x.onnx\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("smell"), "{e}");
        let e = parse("[broker]\nurl = \"http://x\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("broker.url") && e.contains("mqtt://"), "{e}");
        let e = parse("[rig]\nkind = \"replay\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("[rig.replay]"), "{e}");
        let e = parse("device_id = \"a/b\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("device_id"), "{e}");
    }

    #[test]
    fn paths_resolve_against_the_config_dir_and_overrides_apply() {
        let mut c = parse(
            "[encoders.vision]\nmodel = \"../m.onnx\"\n[rig]\nkind = \"replay\"\n[rig.replay]\npath = \"/abs.mcap\"\npace = \"fast\"\n",
            Path::new("/etc/eb"),
        )
        .unwrap();
        assert_eq!(
            c.encoders[&Modality::Vision].model,
            Path::new("/etc/eb/../m.onnx")
        );
        assert_eq!(c.rig.replay.as_ref().unwrap().path, Path::new("/abs.mcap"));
        assert_eq!(c.state.dir, Path::new("/etc/eb/edgebind-state"));
        c.override_with(Some("mqtt://127.0.0.1:1999"), Some("dev-2"))
            .unwrap();
        assert_eq!(c.device_id, "dev-2");
        assert!(c.override_with(Some("127.0.0.1"), None).is_err());
    }

    #[test]
    fn the_jetson_example_parses() {
        let path =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                .join("../configs/jetson.toml");
        let c = load(&path).unwrap();
        assert_eq!(c.rig.kind, RigKind::Devices);
        let d = c.rig.devices.as_ref().unwrap();
        assert!(d.camera.is_some() && d.depth.is_some() && d.thermal.is_some());
        assert!(d.microphone.is_some() && d.imu.is_some());
        assert!(c.encoders.is_empty() || c.encoders.contains_key(&Modality::Vision));
        let e = parse("[rig]\nkind = \"devices\"\n[rig.devices.camera]\ndevice = \"/dev/video0\"\nwidht = 640\n", Path::new(".")).unwrap_err();
        assert!(e.contains("line 5") && e.contains("widht"), "{e}");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://localhost").unwrap(),
            BrokerAddr {
                host: "localhost".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(parse_broker_url("mqtts://h:9").unwrap().port, 9);
        assert!(parse_broker_url("mqtt://h:x").is_err());
    }
}
