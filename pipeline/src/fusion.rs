//! Fusion: embeddings of different modalities grouped into moments on one
//! time grid, then combined the ImageBind way (L2-normalise, weight, sum,
//! normalise).
//!
//! The grouping is the sensor layer's `MomentAligner`, applied to embeddings:
//! a moment at grid time `t` takes, per modality, the newest embedding whose
//! window ended in `(t - hop_m, t]`; it is emitted once every expected modality
//! has delivered an embedding ending at or after `t`, or once any modality is
//! `lateness` past `t` (a dead sensor or a dropping encoder delays moments by
//! at most `lateness`, never stalls them). Moments with no embedding at all
//! are not emitted.
//!
//! **Multi-clip averaging** (`[fusion] clip_span_s`, default 5 s): before a
//! window's embedding joins a moment it is averaged (L2-normalised, summed,
//! normalised) with the same modality's earlier window embeddings whose
//! windows lie inside the `clip_span_s` that ends with it, as ImageBind
//! averages several clips of one sample. A 1 s camera clip shows a street
//! between two cars as a quiet street; five of them show the street. The
//! price is latency in meaning: a change of situation takes up to the span
//! to dominate the average. `edgebind-train eval --clip-span-s` scores
//! encoders the same way.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use edgebind_models::space::{Embedding, SpaceError};
use edgebind_sensors::Modality;
use edgebind_sensors::moment::{Moment, MomentAligner, Timed};

use crate::concepts::Instant2;

/// A fused embedding and the modalities it was made of.
pub type Fused = (Embedding, Vec<Modality>);

/// One window's embedding.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Modality.
    pub modality: Modality,
    /// Window start (monotonic ns).
    pub t_start: u64,
    /// Window end (monotonic ns, on the grid).
    pub t_end: u64,
    /// Wall-clock ns of the window end.
    pub wall_end_ns: u64,
    /// The embedding.
    pub embedding: Arc<Embedding>,
    /// When the windower emitted the window (for latency figures).
    pub emitted: Instant,
}

/// A fused moment.
#[derive(Debug, Clone)]
pub struct FusedMoment {
    /// Grid time.
    pub t: Instant2,
    /// Earliest window start and `t`.
    pub window: [u64; 2],
    /// One embedding per modality present, in modality order.
    pub parts: Vec<Embedded>,
    /// When the window that completed the moment (the latest emitted part) left
    /// the windower: latencies are measured from it.
    pub emitted: Instant,
}

impl FusedMoment {
    /// Modalities present.
    pub fn modalities(&self) -> Vec<Modality> {
        self.parts.iter().map(|p| p.modality).collect()
    }

    /// Fused embedding of the parts whose modality passes `keep`, weighted.
    pub fn fuse(
        &self,
        weights: &BTreeMap<Modality, f32>,
        keep: impl Fn(Modality) -> bool,
    ) -> Result<Option<Fused>, SpaceError> {
        let parts: Vec<(f32, &Embedding)> = self
            .parts
            .iter()
            .filter(|p| keep(p.modality))
            .map(|p| {
                (
                    weights.get(&p.modality).copied().unwrap_or(1.0),
                    &*p.embedding,
                )
            })
            .filter(|(w, _)| *w > 0.0)
            .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        let mods = self
            .parts
            .iter()
            .filter(|p| keep(p.modality))
            .map(|p| p.modality)
            .collect();
        if parts.len() == 1 {
            return Ok(Some((parts[0].1.clone(), mods)));
        }
        Ok(Some((Embedding::fuse(&parts)?, mods)))
    }
}

impl Timed for Embedded {
    fn modality(&self) -> Modality {
        self.modality
    }
    fn t_end(&self) -> u64 {
        self.t_end
    }
}

/// Groups embeddings into moments: the sensor layer's [`MomentAligner`] over
/// embeddings, with each modality's hop as its max age.
#[derive(Debug)]
pub struct Fusion {
    aligner: MomentAligner<Embedded>,
    moments: Vec<Moment<Embedded>>,
    clip_span_ns: u64,
    recent: BTreeMap<Modality, VecDeque<Embedded>>,
}

impl Fusion {
    /// Moments of `expected` modalities (with their hops, ns); `lateness_ns` as above.
    pub fn new(expected: &[(Modality, u64)], lateness_ns: u64) -> Self {
        let hop_ns = expected.iter().map(|(_, h)| *h).min().unwrap_or(1).max(1);
        let mods: Vec<Modality> = expected.iter().map(|(m, _)| *m).collect();
        let mut aligner = MomentAligner::new(&mods, hop_ns, hop_ns, lateness_ns);
        for (m, h) in expected {
            aligner = aligner.with_max_age(*m, (*h).max(hop_ns));
        }
        Fusion {
            aligner,
            moments: Vec::new(),
            clip_span_ns: 0,
            recent: BTreeMap::new(),
        }
    }

    /// Averages each window's embedding with its modality's earlier windows
    /// inside `span_ns` (see the module doc); 0 (the default) turns it off.
    pub fn with_clip_span(mut self, span_ns: u64) -> Self {
        self.clip_span_ns = span_ns;
        self
    }

    /// Adds an embedding (in time order per modality); completed moments go to `out`.
    pub fn push(&mut self, e: Embedded, out: &mut Vec<FusedMoment>) {
        let e = self.multi_clip(e);
        self.aligner.push(e, &mut self.moments);
        self.convert(out);
    }

    /// `e` averaged with the kept earlier windows of its modality; its
    /// `t_start` becomes the earliest averaged window's.
    fn multi_clip(&mut self, mut e: Embedded) -> Embedded {
        if self.clip_span_ns == 0 {
            return e;
        }
        let q = self.recent.entry(e.modality).or_default();
        if q.back().is_some_and(|b| b.t_end >= e.t_end) {
            // Time went back (a replay restarted): the old windows do not
            // precede this one.
            q.clear();
        }
        let from = e.t_end.saturating_sub(self.clip_span_ns);
        while q.front().is_some_and(|f| f.t_start < from) {
            q.pop_front();
        }
        q.push_back(e.clone());
        if q.len() > 1 {
            let parts: Vec<(f32, &Embedding)> = q.iter().map(|p| (1.0, &*p.embedding)).collect();
            // Every part lives in the same space and dimension (one encoder),
            // so fusing cannot fail; keep the window's own embedding if it did.
            if let Ok(avg) = Embedding::fuse(&parts) {
                e.t_start = q.front().map_or(e.t_start, |f| f.t_start);
                e.embedding = Arc::new(avg);
            }
        }
        e
    }

    /// End of input: emits every moment up to the newest embedding.
    pub fn finish(&mut self, out: &mut Vec<FusedMoment>) {
        self.aligner.finish(&mut self.moments);
        self.convert(out);
    }

    fn convert(&mut self, out: &mut Vec<FusedMoment>) {
        for m in self.moments.drain(..) {
            let t = m.t;
            let parts: Vec<Embedded> = m.windows.iter().map(|p| (**p).clone()).collect();
            let newest = parts
                .iter()
                .max_by_key(|p| p.t_end)
                .expect("moments are never empty");
            let wall = newest.wall_end_ns + (t - newest.t_end);
            let emitted = parts.iter().map(|p| p.emitted).max().expect("non-empty");
            let start = parts.iter().map(|p| p.t_start).min().expect("non-empty");
            out.push(FusedMoment {
                t: Instant2 {
                    mono_ns: t,
                    wall_ns: wall,
                },
                window: [start, t],
                parts,
                emitted,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn emb(m: Modality, t_end: u64, v: Vec<f32>) -> Embedded {
        Embedded {
            modality: m,
            t_start: t_end.saturating_sub(S),
            t_end,
            wall_end_ns: 1_000 * S + t_end,
            embedding: Arc::new(Embedding::new("s".into(), v).unwrap()),
            emitted: Instant::now(),
        }
    }

    #[test]
    fn moments_wait_for_every_modality_then_fuse_by_weight() {
        let mut f = Fusion::new(&[(Modality::Vision, S), (Modality::Audio, S)], 3 * S);
        let mut out = Vec::new();
        f.push(emb(Modality::Vision, S, vec![1.0, 0.0]), &mut out);
        f.push(emb(Modality::Vision, 2 * S, vec![1.0, 0.0]), &mut out);
        assert!(out.is_empty(), "audio has not reached 1 s yet");
        f.push(emb(Modality::Audio, S, vec![0.0, 1.0]), &mut out);
        assert_eq!(out.len(), 1);
        let m = &out[0];
        assert_eq!(m.t.mono_ns, S);
        assert_eq!(m.t.wall_ns, 1_000 * S + S);
        assert_eq!(m.modalities(), vec![Modality::Vision, Modality::Audio]);
        let w = BTreeMap::from([(Modality::Audio, 3.0)]);
        let (fused, mods) = m.fuse(&w, |_| true).unwrap().unwrap();
        assert_eq!(mods.len(), 2);
        // (1, 3) / sqrt(10)
        assert!((fused.vector[0] - 0.316_227_8).abs() < 1e-6);
        assert!((fused.vector[1] - 0.948_683_3).abs() < 1e-6);
        let (only_v, _) = m.fuse(&w, |m| m == Modality::Vision).unwrap().unwrap();
        assert_eq!(only_v.vector, vec![1.0, 0.0]);
        assert!(m.fuse(&w, |m| m == Modality::Imu).unwrap().is_none());
    }

    #[test]
    fn a_dead_modality_delays_moments_by_lateness_only() {
        let mut f = Fusion::new(&[(Modality::Vision, S), (Modality::Audio, S)], 2 * S);
        let mut out = Vec::new();
        for k in 1..=5 {
            f.push(emb(Modality::Vision, k * S, vec![1.0]), &mut out);
        }
        // Vision at 5 s: moments up to 3 s are out (5 >= t + 2).
        assert_eq!(
            out.iter().map(|m| m.t.mono_ns / S).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(out.iter().all(|m| m.modalities() == vec![Modality::Vision]));
        f.finish(&mut out);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn multi_clip_averages_the_windows_inside_the_span() {
        // 1 s windows every second, span 3 s: each moment averages the
        // windows ending at t, t-1 and t-2 (starting at or after t-3).
        let mut f = Fusion::new(&[(Modality::Vision, S)], S).with_clip_span(3 * S);
        let mut out = Vec::new();
        let vs = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]];
        for (k, v) in vs.iter().enumerate() {
            f.push(
                emb(Modality::Vision, (k as u64 + 1) * S, v.to_vec()),
                &mut out,
            );
        }
        f.finish(&mut out);
        assert_eq!(out.len(), 4);
        let v = |i: usize| out[i].parts[0].embedding.vector.clone();
        assert_eq!(v(0), vec![1.0, 0.0], "the first window stands alone");
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((v(1)[0] - h).abs() < 1e-6 && (v(1)[1] - h).abs() < 1e-6);
        // (1, 2) / sqrt(5) at 3 s; the 1 s window has left the span at 4 s.
        assert!((v(2)[0] - 0.447_213_6).abs() < 1e-6);
        assert!((v(2)[1] - 0.894_427_2).abs() < 1e-6);
        assert_eq!(v(3), vec![0.0, 1.0]);
        assert_eq!(
            out[2].parts[0].t_start, 0,
            "t_start is the earliest window's"
        );
        assert_eq!(out[3].parts[0].t_start, S);
        assert_eq!(out[3].window, [S, 4 * S]);
    }

    #[test]
    fn multi_clip_keeps_a_window_longer_than_the_span_alone_and_restarts_on_rewind() {
        let mut f = Fusion::new(&[(Modality::Imu, S)], S).with_clip_span(S / 2);
        let mut out = Vec::new();
        f.push(emb(Modality::Imu, S, vec![1.0, 0.0]), &mut out);
        f.push(emb(Modality::Imu, 2 * S, vec![0.0, 1.0]), &mut out);
        f.finish(&mut out);
        assert_eq!(out[1].parts[0].embedding.vector, vec![0.0, 1.0]);
        // A replay restarts at 1 s: the 2 s window must not be averaged in.
        let mut g = Fusion::new(&[(Modality::Imu, S)], S).with_clip_span(10 * S);
        let a = g.multi_clip(emb(Modality::Imu, 2 * S, vec![0.0, 1.0]));
        assert_eq!(a.embedding.vector, vec![0.0, 1.0]);
        let b = g.multi_clip(emb(Modality::Imu, S, vec![1.0, 0.0]));
        assert_eq!(b.embedding.vector, vec![1.0, 0.0]);
        assert_eq!(b.t_start, 0);
        // Off by default.
        let mut h = Fusion::new(&[(Modality::Imu, S)], S);
        h.multi_clip(emb(Modality::Imu, S, vec![1.0, 0.0]));
        let c = h.multi_clip(emb(Modality::Imu, 2 * S, vec![0.0, 1.0]));
        assert_eq!(c.embedding.vector, vec![0.0, 1.0]);
    }

    #[test]
    fn stale_embeddings_are_not_reused() {
        let mut f = Fusion::new(&[(Modality::Vision, S), (Modality::Imu, S)], S);
        let mut out = Vec::new();
        f.push(emb(Modality::Imu, S, vec![1.0]), &mut out);
        f.push(emb(Modality::Vision, S, vec![1.0]), &mut out);
        f.push(emb(Modality::Vision, 2 * S, vec![1.0]), &mut out);
        f.push(emb(Modality::Vision, 3 * S, vec![1.0]), &mut out);
        assert_eq!(out.len(), 2, "the 3 s moment waits up to 1 s for the IMU");
        f.finish(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].parts.len(), 2);
        // IMU stopped after 1 s: the 2 s and 3 s moments do not reuse it.
        assert_eq!(out[1].modalities(), vec![Modality::Vision]);
        assert_eq!(out[2].modalities(), vec![Modality::Vision]);
    }
}
