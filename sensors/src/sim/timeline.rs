//! The timeline: a sequence of episodes, each with a primary situation and,
//! sometimes, a second situation overlapping part of it. This is the ground
//! truth, a pure function of the seed.

use serde::{Deserialize, Serialize};

use super::rng::{Rng, streams};
use super::situation::{N_SITUATIONS, Situation};

/// One stretch of ground truth: the set of situations active in sim time
/// `[start_ns, end_ns)` (half-open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthSpan {
    /// First sim nanosecond of the span.
    pub start_ns: u64,
    /// First sim nanosecond after the span.
    pub end_ns: u64,
    /// Active situations, sorted (one or two).
    pub situations: Vec<Situation>,
}

/// Probability that an episode gets a second, overlapping situation.
const P_OVERLAP: f32 = 0.3;
/// Episode length range, milliseconds.
const EPISODE_MS: (u64, u64) = (4_000, 12_000);
const MS: u64 = 1_000_000;

/// A second situation active during part of an episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Overlap {
    pub situation: Situation,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// The timeline-level description of one episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EpisodeHeader {
    pub index: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub primary: Situation,
    pub overlap: Option<Overlap>,
}

impl EpisodeHeader {
    /// Episode length in seconds.
    pub fn duration_s(&self) -> f32 {
        (self.end_ns - self.start_ns) as f32 * 1e-9
    }

    /// Seconds from the episode start to absolute sim time `t_ns`.
    pub fn rel_s(&self, t_ns: u64) -> f32 {
        (t_ns as i128 - self.start_ns as i128) as f32 * 1e-9
    }

    /// The situations active at `t_ns` (which must lie in the episode), sorted.
    pub fn active_at(&self, t_ns: u64) -> Vec<Situation> {
        let mut v = vec![self.primary];
        if let Some(o) = self
            .overlap
            .filter(|o| t_ns >= o.start_ns && t_ns < o.end_ns)
        {
            v.push(o.situation);
            v.sort();
        }
        v
    }

    /// Appends this episode's truth spans (1 or 3) to `out`.
    pub fn push_spans(&self, out: &mut Vec<TruthSpan>) {
        let span = |a: u64, b: u64, s: Vec<Situation>| TruthSpan {
            start_ns: a,
            end_ns: b,
            situations: s,
        };
        match self.overlap {
            None => out.push(span(self.start_ns, self.end_ns, vec![self.primary])),
            Some(o) => {
                let mut both = vec![self.primary, o.situation];
                both.sort();
                out.push(span(self.start_ns, o.start_ns, vec![self.primary]));
                out.push(span(o.start_ns, o.end_ns, both));
                out.push(span(o.end_ns, self.end_ns, vec![self.primary]));
            }
        }
    }
}

/// Generates episodes in order. Primaries are dealt from a shuffled deck of
/// all situations (every situation appears once per deck of ten episodes, and
/// an episode never repeats the previous primary), so the truth is balanced.
#[derive(Debug, Clone)]
pub(crate) struct TimelineGen {
    rng: Rng,
    deck: [Situation; N_SITUATIONS],
    pos: usize,
    next_index: u64,
    next_start: u64,
    last: Option<Situation>,
}

impl TimelineGen {
    /// The timeline of `seed`, from sim time 0.
    pub fn new(seed: u64) -> Self {
        TimelineGen {
            rng: Rng::new(seed, streams::TIMELINE, 0),
            deck: Situation::ALL,
            pos: N_SITUATIONS,
            next_index: 0,
            next_start: 0,
            last: None,
        }
    }

    fn deal(&mut self) -> Situation {
        if self.pos >= N_SITUATIONS {
            for i in (1..N_SITUATIONS).rev() {
                let j = self.rng.below(i + 1);
                self.deck.swap(i, j);
            }
            if Some(self.deck[0]) == self.last {
                let j = 1 + self.rng.below(N_SITUATIONS - 1);
                self.deck.swap(0, j);
            }
            self.pos = 0;
        }
        let s = self.deck[self.pos];
        self.pos += 1;
        s
    }

    /// The next episode.
    pub fn next_episode(&mut self) -> EpisodeHeader {
        let primary = self.deal();
        self.last = Some(primary);
        let dur_ms = self.rng.int(EPISODE_MS.0, EPISODE_MS.1);
        let start_ns = self.next_start;
        let end_ns = start_ns + dur_ms * MS;
        let partners = primary.partners();
        let overlap = if !partners.is_empty() && self.rng.chance(P_OVERLAP) {
            let situation = self.rng.pick(partners);
            let d = dur_ms as f32;
            let a = (d * self.rng.range(0.1, 0.45)) as u64;
            let len = (d * self.rng.range(0.3, 0.5)) as u64;
            let b = (a + len).min(dur_ms - 200);
            Some(Overlap {
                situation,
                start_ns: start_ns + a * MS,
                end_ns: start_ns + b * MS,
            })
        } else {
            None
        };
        let ep = EpisodeHeader {
            index: self.next_index,
            start_ns,
            end_ns,
            primary,
            overlap,
        };
        self.next_index += 1;
        self.next_start = end_ns;
        ep
    }
}

/// A position on the timeline that moves forward with one stream's time.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    seed: u64,
    timeline: TimelineGen,
    pub ep: EpisodeHeader,
}

impl Cursor {
    /// At the first episode of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut timeline = TimelineGen::new(seed);
        let ep = timeline.next_episode();
        Cursor { seed, timeline, ep }
    }

    /// Moves to the episode containing `t_ns`; true when the episode changed.
    pub fn seek(&mut self, t_ns: u64) -> bool {
        let mut changed = false;
        if t_ns < self.ep.start_ns {
            *self = Cursor::new(self.seed);
            changed = true;
        }
        while t_ns >= self.ep.end_ns {
            self.ep = self.timeline.next_episode();
            changed = true;
        }
        changed
    }
}

/// The truth spans covering `[0, until_ns)`; the span straddling `until_ns`
/// is included whole.
pub(crate) fn truth_until(seed: u64, until_ns: u64) -> Vec<TruthSpan> {
    let mut out = Vec::new();
    if until_ns == 0 {
        return out;
    }
    let mut timeline = TimelineGen::new(seed);
    loop {
        let ep = timeline.next_episode();
        ep.push_spans(&mut out);
        if ep.end_ns >= until_ns {
            break;
        }
    }
    while out.last().is_some_and(|s| s.start_ns >= until_ns) {
        out.pop();
    }
    out
}
