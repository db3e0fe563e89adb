//! Concepts and the matcher: text-defined (or vector-defined) points of the
//! shared space, scored against every moment, turned into events with
//! hysteresis, a minimum duration and a cooldown.
//!
//! ## The state machine of one concept
//!
//! ```text
//!            score >= enter                 held >= min_duration
//!   Idle ------------------------> Pending ----------------------> Active  (publish "start")
//!    ^                               |  score < exit                 |
//!    |<------------------------------+                               | score < exit
//!    |           t >= cooldown_until                                 v
//!    +--------------------------- Cooldown <------------------------ (publish "end")
//! ```
//!
//! * A moment where none of the watched modalities has an embedding (a sensor
//!   down, an encoder dropping windows) leaves the state as it is: absence of
//!   evidence neither starts nor ends an event.
//! * The start time of an event is the first moment at or above `enter` (the
//!   window end of that moment); its end time is the first moment below `exit`.
//! * Event ids are derived from the device id, the concept name and the start
//!   time (monotonic and wall ns): the same data gives the same id, so a replay
//!   after a crash re-creates exactly the ids a subscriber has already seen, and
//!   subscribers dedupe by `(event_id, phase)`.

use std::sync::Arc;

use edgebind_models::space::Embedding;
use edgebind_sensors::Modality;
use serde::{Deserialize, Serialize};

/// Which embeddings a concept is scored against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The fused moment: every modality present, weighted per the fusion config.
    Fused,
    /// These modalities only (fused among themselves when several are present).
    Modalities(Vec<Modality>),
}

impl Serialize for Watch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Watch::Fused => s.serialize_str("fused"),
            Watch::Modalities(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Watch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let parse = |s: &str| {
            s.parse::<Modality>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "watch: `{s}` is not a modality (vision, audio, depth, thermal, imu) or \"fused\""
                ))
            })
        };
        match Raw::deserialize(d)? {
            Raw::One(s) if s == "fused" => Ok(Watch::Fused),
            Raw::One(s) => Ok(Watch::Modalities(vec![parse(&s)?])),
            Raw::Many(v) if v.is_empty() => Err(serde::de::Error::custom(
                "watch: an empty list watches nothing; name modalities or \"fused\"",
            )),
            Raw::Many(v) => {
                let mut m = v.iter().map(|s| parse(s)).collect::<Result<Vec<_>, _>>()?;
                m.sort();
                m.dedup();
                Ok(Watch::Modalities(m))
            }
        }
    }
}

fn default_watch() -> Watch {
    Watch::Fused
}

/// A concept as written in the config or sent over the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptSpec {
    /// Unique name (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// The text that defines it (embedded by the text tower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Or a stored vector of the shared space (normalised on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Or an example window of a recording, embedded by that modality's
    /// encoder at start (config only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<ExampleSpec>,
    /// What it watches: `"fused"` (default), one modality, or a list.
    #[serde(default = "default_watch")]
    pub watch: Watch,
    /// Score (cosine) at or above which an event starts.
    pub enter: f32,
    /// Score below which a running event ends (<= enter). Default: enter - 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<f32>,
    /// Seconds the score must hold (>= exit) before the event starts.
    #[serde(default)]
    pub min_duration_s: f64,
    /// Seconds after an end before the same concept may start again.
    #[serde(default)]
    pub cooldown_s: f64,
}

/// A concept defined by example: the window of `modality` ending nearest
/// `at_s` seconds after the start of that stream in `recording`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleSpec {
    /// An MCAP recording (relative: to the config file's directory).
    pub recording: std::path::PathBuf,
    /// Which stream.
    pub modality: Modality,
    /// Seconds from the stream's first sample to the window end.
    pub at_s: f64,
}

/// Largest text of a concept, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

impl ConceptSpec {
    /// The exit threshold in effect.
    pub fn exit(&self) -> f32 {
        self.exit.unwrap_or(self.enter - 0.05)
    }

    /// Checks everything that does not need a model; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "name `{n}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
            ));
        }
        let given = [
            self.text.is_some(),
            self.vector.is_some(),
            self.example.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given > 1 {
            return Err(format!(
                "concept `{n}`: give one of `text`, `vector` or `example`, not both"
            ));
        }
        if let Some(e) = &self.example
            && !(e.at_s.is_finite() && e.at_s >= 0.0)
        {
            return Err(format!("concept `{n}`: example.at_s must be >= 0"));
        }
        match (&self.text, &self.vector) {
            (None, None) if self.example.is_some() => {}
            (None, None) => {
                return Err(format!(
                    "concept `{n}`: needs `text`, `vector` or `example`"
                ));
            }
            (Some(t), None) if t.trim().is_empty() || t.len() > MAX_TEXT_BYTES => {
                return Err(format!(
                    "concept `{n}`: text must be 1 to {MAX_TEXT_BYTES} bytes"
                ));
            }
            (None, Some(v)) if v.is_empty() || v.iter().any(|x| !x.is_finite()) => {
                return Err(format!(
                    "concept `{n}`: vector must be non-empty and finite"
                ));
            }
            _ => {}
        }
        if !(self.enter.is_finite() && (-1.0..=1.0).contains(&self.enter)) {
            return Err(format!(
                "concept `{n}`: enter = {} must be a cosine in [-1, 1]",
                self.enter
            ));
        }
        let exit = self.exit();
        if !exit.is_finite() || exit > self.enter || exit < -1.0 {
            return Err(format!(
                "concept `{n}`: exit = {exit} must be in [-1, enter = {}] (hysteresis)",
                self.enter
            ));
        }
        for (field, v) in [
            ("min_duration_s", self.min_duration_s),
            ("cooldown_s", self.cooldown_s),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(format!(
                    "concept `{n}`: {field} = {v} must be 0 to 86400 seconds"
                ));
            }
        }
        Ok(())
    }
}

/// A point in time on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instant2 {
    /// Monotonic ns (the sensor clock).
    pub mono_ns: u64,
    /// Wall-clock ns since the Unix epoch.
    pub wall_ns: u64,
}

/// What the matcher sees of one moment for one concept.
#[derive(Debug, Clone)]
pub struct MomentScore {
    /// The moment's time (window end on the shared grid).
    pub t: Instant2,
    /// Cosine with the concept, or `None` if no watched modality is present.
    pub score: Option<f32>,
    /// Modalities that contributed.
    pub modalities: Vec<Modality>,
}

/// Start or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The concept appeared.
    Start,
    /// It went away.
    End,
}

/// Why an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The score fell below `exit`.
    BelowExit,
    /// The daemon shut down while it was running.
    Shutdown,
    /// The concept was removed over the control plane.
    ConceptRemoved,
}

/// An event message (one per phase), as published on `events` (schema v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMsg {
    /// Payload version (1).
    pub v: u32,
    /// `start` or `end`.
    pub phase: Phase,
    /// Stable id of the event (same for its start and end).
    pub event_id: String,
    /// Device that saw it.
    pub device_id: String,
    /// Concept name.
    pub concept: String,
    /// Concept text, if text-defined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// When it started (first moment at or above `enter`).
    pub start: Instant2,
    /// When it ended (first moment below `exit`); end messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Instant2>,
    /// Why it ended; end messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// Highest score so far.
    pub peak_score: f32,
    /// Score of the moment that caused this message.
    pub score: f32,
    /// Modalities that contributed to the peak.
    pub modalities: Vec<Modality>,
    /// Window span `[start, end]` (monotonic ns) of the moment that caused this message.
    pub window: [u64; 2],
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Pending {
        since: Instant2,
        peak: f32,
        mods: Vec<Modality>,
    },
    Active {
        id: String,
        start: Instant2,
        peak: f32,
        mods: Vec<Modality>,
    },
    Cooldown {
        until_ns: u64,
    },
}

/// A concept with its embedding and its matcher state.
#[derive(Debug, Clone)]
pub struct Concept {
    /// The definition.
    pub spec: ConceptSpec,
    /// Its point in the shared space.
    pub embedding: Arc<Embedding>,
    state: State,
    /// Events started so far.
    pub events: u64,
}

/// 128-bit FNV-1a, hex: stable across builds and platforms (event ids).
pub fn stable_id(parts: &[&[u8]]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for p in parts {
        for &b in p.iter().chain(&[0xff]) {
            h ^= b as u128;
            h = h.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    format!("{h:032x}")
}

impl Concept {
    /// A concept in its idle state.
    pub fn new(spec: ConceptSpec, embedding: Arc<Embedding>) -> Self {
        Concept {
            spec,
            embedding,
            state: State::Idle,
            events: 0,
        }
    }

    /// Whether an event is running.
    pub fn active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    #[allow(clippy::too_many_arguments)]
    fn msg(
        &self,
        device: &str,
        phase: Phase,
        id: &str,
        start: Instant2,
        peak: f32,
        mods: &[Modality],
        now: &MomentScore,
        window: [u64; 2],
    ) -> EventMsg {
        EventMsg {
            v: 1,
            phase,
            event_id: id.to_string(),
            device_id: device.to_string(),
            concept: self.spec.name.clone(),
            text: self.spec.text.clone(),
            start,
            end: (phase == Phase::End).then_some(now.t),
            reason: None,
            peak_score: peak,
            score: now.score.unwrap_or(f32::NAN),
            modalities: mods.to_vec(),
            window,
        }
    }

    /// Feeds one moment; returns the message it causes, if any. `window` is the
    /// moment's window span for the message.
    pub fn step(&mut self, device: &str, m: &MomentScore, window: [u64; 2]) -> Option<EventMsg> {
        let score = m.score?;
        let enter = self.spec.enter;
        let exit = self.spec.exit();
        let min_ns = (self.spec.min_duration_s * 1e9) as u64;
        loop {
            match &mut self.state {
                State::Cooldown { until_ns } => {
                    if m.t.mono_ns < *until_ns {
                        return None;
                    }
                    self.state = State::Idle;
                }
                State::Idle => {
                    if score < enter {
                        return None;
                    }
                    self.state = State::Pending {
                        since: m.t,
                        peak: score,
                        mods: m.modalities.clone(),
                    };
                }
                State::Pending { since, peak, mods } => {
                    if score < exit {
                        self.state = State::Idle;
                        return None;
                    }
                    if score > *peak {
                        *peak = score;
                        *mods = m.modalities.clone();
                    }
                    if m.t.mono_ns.saturating_sub(since.mono_ns) < min_ns {
                        return None;
                    }
                    let (since, peak, mods) = (*since, *peak, std::mem::take(mods));
                    let id = stable_id(&[
                        device.as_bytes(),
                        self.spec.name.as_bytes(),
                        &since.mono_ns.to_le_bytes(),
                        &since.wall_ns.to_le_bytes(),
                    ]);
                    let msg = self.msg(device, Phase::Start, &id, since, peak, &mods, m, window);
                    self.events += 1;
                    self.state = State::Active {
                        id,
                        start: since,
                        peak,
                        mods,
                    };
                    return Some(msg);
                }
                State::Active {
                    id,
                    start,
                    peak,
                    mods,
                } => {
                    if score >= exit {
                        if score > *peak {
                            *peak = score;
                            *mods = m.modalities.clone();
                        }
                        return None;
                    }
                    let (id, start, peak, mods) = (id.clone(), *start, *peak, mods.clone());
                    let mut msg = self.msg(device, Phase::End, &id, start, peak, &mods, m, window);
                    msg.reason = Some(EndReason::BelowExit);
                    let cool = (self.spec.cooldown_s * 1e9) as u64;
                    self.state = State::Cooldown {
                        until_ns: m.t.mono_ns.saturating_add(cool),
                    };
                    return Some(msg);
                }
            }
        }
    }

    /// Ends a running event (shutdown, removal) at `t`.
    pub fn close(&mut self, device: &str, t: Instant2, reason: EndReason) -> Option<EventMsg> {
        let State::Active {
            id,
            start,
            peak,
            mods,
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return None;
        };
        let now = MomentScore {
            t,
            score: None,
            modalities: mods.clone(),
        };
        let mut msg = self.msg(
            device,
            Phase::End,
            &id,
            start,
            peak,
            &mods,
            &now,
            [t.mono_ns; 2],
        );
        msg.reason = Some(reason);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(enter: f32, exit: f32, min: f64, cool: f64) -> ConceptSpec {
        ConceptSpec {
            name: "cat".into(),
            text: Some("a cat".into()),
            vector: None,
            example: None,
            watch: Watch::Fused,
            enter,
            exit: Some(exit),
            min_duration_s: min,
            cooldown_s: cool,
        }
    }

    fn concept(s: ConceptSpec) -> Concept {
        Concept::new(s, Arc::new(Embedding::new("s".into(), vec![1.0]).unwrap()))
    }

    fn run(c: &mut Concept, scores: &[f32]) -> Vec<(usize, Phase, u64)> {
        let mut out = Vec::new();
        for (i, &s) in scores.iter().enumerate() {
            let t = Instant2 {
                mono_ns: i as u64 * 1_000_000_000,
                wall_ns: 1_000 + i as u64,
            };
            let m = MomentScore {
                t,
                score: if s.is_nan() { None } else { Some(s) },
                modalities: vec![Modality::Vision],
            };
            if let Some(e) = c.step("dev", &m, [0, t.mono_ns]) {
                let at = e.end.map_or(e.start.mono_ns, |x| x.mono_ns);
                out.push((i, e.phase, at));
            }
        }
        out
    }

    #[test]
    fn hysteresis_starts_at_enter_and_ends_below_exit() {
        let mut c = concept(spec(0.5, 0.3, 0.0, 0.0));
        // 0.45 is between exit and enter: does not start, does not end.
        let ev = run(&mut c, &[0.1, 0.45, 0.6, 0.45, 0.35, 0.29, 0.45, 0.55]);
        assert_eq!(
            ev,
            vec![
                (2, Phase::Start, 2_000_000_000),
                (5, Phase::End, 5_000_000_000),
                (7, Phase::Start, 7_000_000_000)
            ]
        );
    }

    #[test]
    fn min_duration_delays_the_start_but_dates_it_from_the_first_moment() {
        let mut c = concept(spec(0.5, 0.3, 2.0, 0.0));
        // A 1 s blip never becomes an event; a 3 s run does, dated at its start.
        let ev = run(&mut c, &[0.6, 0.2, 0.6, 0.4, 0.6, 0.1]);
        assert_eq!(
            ev,
            vec![
                (4, Phase::Start, 2_000_000_000),
                (5, Phase::End, 5_000_000_000)
            ]
        );
    }

    #[test]
    fn cooldown_suppresses_a_restart() {
        let mut c = concept(spec(0.5, 0.3, 0.0, 3.0));
        let ev = run(&mut c, &[0.6, 0.1, 0.6, 0.6, 0.1, 0.6]);
        // End at 1 s; cooldown until 4 s, so the 2-3 s rise is ignored; 5 s starts.
        assert_eq!(
            ev,
            vec![
                (0, Phase::Start, 0),
                (1, Phase::End, 1_000_000_000),
                (5, Phase::Start, 5_000_000_000)
            ]
        );
    }

    #[test]
    fn missing_scores_change_nothing_and_ids_are_stable() {
        let mut a = concept(spec(0.5, 0.3, 0.0, 0.0));
        let ev = run(&mut a, &[0.6, f32::NAN, f32::NAN, 0.1]);
        assert_eq!(
            ev,
            vec![(0, Phase::Start, 0), (3, Phase::End, 3_000_000_000)]
        );
        let ids = |c: &mut Concept| {
            let m = MomentScore {
                t: Instant2 {
                    mono_ns: 5,
                    wall_ns: 6,
                },
                score: Some(0.9),
                modalities: vec![],
            };
            c.step("dev", &m, [0, 5]).unwrap().event_id
        };
        let id1 = ids(&mut concept(spec(0.5, 0.3, 0.0, 0.0)));
        let id2 = ids(&mut concept(spec(0.5, 0.3, 0.0, 0.0)));
        assert_eq!(id1, id2);
        assert_eq!(id1.len(), 32);
        assert_ne!(stable_id(&[b"a", b"bc"]), stable_id(&[b"ab", b"c"]));
    }

    #[test]
    fn close_ends_a_running_event_with_its_reason() {
        let mut c = concept(spec(0.5, 0.3, 0.0, 0.0));
        run(&mut c, &[0.9]);
        let t = Instant2 {
            mono_ns: 9,
            wall_ns: 9,
        };
        let e = c.close("dev", t, EndReason::Shutdown).unwrap();
        assert_eq!(
            (e.phase, e.reason, e.peak_score),
            (Phase::End, Some(EndReason::Shutdown), 0.9)
        );
        assert!(c.close("dev", t, EndReason::Shutdown).is_none());
    }

    #[test]
    fn bad_specs_are_named() {
        let mut s = spec(0.5, 0.6, 0.0, 0.0);
        assert!(s.validate().unwrap_err().contains("hysteresis"));
        s.exit = None;
        assert!(s.validate().is_ok());
        assert!((s.exit() - 0.45).abs() < 1e-6);
        s.name = "bad name".into();
        assert!(s.validate().unwrap_err().contains("name"));
        s.name = "x".into();
        s.vector = Some(vec![1.0]);
        assert!(s.validate().unwrap_err().contains("not both"));
        let w: Result<ConceptSpec, _> = serde_json::from_str(
            r#"{"name":"a","text":"t","enter":0.3,"watch":["vision","smell"]}"#,
        );
        assert!(w.unwrap_err().to_string().contains("smell"));
        let w: ConceptSpec =
            serde_json::from_str(r#"{"name":"a","text":"t","enter":0.3,"watch":"audio"}"#).unwrap();
        assert_eq!(w.watch, Watch::Modalities(vec![Modality::Audio]));
    }
}
