//! Moments: windows of different modalities that cover the same instant.
//!
//! Windows end on a shared grid (see [`crate::window`]), so a moment is "every
//! modality's most recent window ending at or before `t`, if it is fresh". The
//! [`MomentAligner`] emits the moment at grid point `t` as soon as every expected
//! modality has delivered a window ending at or after `t` (so nothing for `t` can
//! still arrive), or once any stream is `lateness` ahead of `t` (so a dead sensor
//! delays moments by at most `lateness` instead of stalling them).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::modality::Modality;
use crate::window::Window;

/// Anything the aligner can group: a modality and the end of the span it covers.
/// Windows are; so are the embeddings a daemon makes of them.
pub trait Timed {
    /// Its modality.
    fn modality(&self) -> Modality;
    /// End of its span (monotonic ns, on the window grid).
    fn t_end(&self) -> u64;
}

impl Timed for Window {
    fn modality(&self) -> Modality {
        self.modality
    }
    fn t_end(&self) -> u64 {
        self.t_end
    }
}

/// Items (windows by default) of several modalities for one instant.
#[derive(Debug, Clone)]
pub struct Moment<T = Window> {
    /// The grid instant (monotonic ns) the moment stands for.
    pub t: u64,
    /// At most one item per modality, in [`Modality::ALL`] order.
    pub windows: Vec<Arc<T>>,
}

impl<T: Timed> Moment<T> {
    /// The item of modality `m`, if present.
    pub fn window(&self, m: Modality) -> Option<&T> {
        self.windows
            .iter()
            .find(|w| w.modality() == m)
            .map(|w| &**w)
    }

    /// Modalities present.
    pub fn modalities(&self) -> Vec<Modality> {
        self.windows.iter().map(|w| w.modality()).collect()
    }
}

/// Groups items into moments on a grid of `hop_ns`.
#[derive(Debug)]
pub struct MomentAligner<T = Window> {
    hop_ns: u64,
    max_age_ns: [u64; 5],
    lateness_ns: u64,
    expected: Vec<Modality>,
    recent: [VecDeque<Arc<T>>; 5],
    /// Latest end seen per modality.
    seen_end: [Option<u64>; 5],
    next_t: Option<u64>,
}

impl<T: Timed> MomentAligner<T> {
    /// Moments every `hop_ns`, from the `expected` modalities; an item belongs to
    /// a moment at `t` if it ends in `(t - max_age_ns, t]`; a moment is emitted at
    /// the latest when some stream is `lateness_ns` past it.
    pub fn new(expected: &[Modality], hop_ns: u64, max_age_ns: u64, lateness_ns: u64) -> Self {
        let mut expected = expected.to_vec();
        expected.sort();
        expected.dedup();
        MomentAligner {
            hop_ns: hop_ns.max(1),
            max_age_ns: [max_age_ns.max(1); 5],
            lateness_ns,
            expected,
            recent: Default::default(),
            seen_end: [None; 5],
            next_t: None,
        }
    }

    /// Sets the max age of one modality (a stream with a longer hop serves
    /// moments for as long as its hop).
    pub fn with_max_age(mut self, m: Modality, max_age_ns: u64) -> Self {
        self.max_age_ns[m.index()] = max_age_ns.max(1);
        self
    }

    /// Adds an item (items of one modality must come in time order); moments
    /// that became complete are appended to `out`.
    pub fn push(&mut self, item: T, out: &mut Vec<Moment<T>>) {
        let i = item.modality().index();
        let end = item.t_end();
        if self.next_t.is_none() {
            self.next_t = Some(end.div_ceil(self.hop_ns) * self.hop_ns);
        }
        self.seen_end[i] = Some(self.seen_end[i].map_or(end, |e| e.max(end)));
        self.recent[i].push_back(Arc::new(item));
        self.emit(false, out);
    }

    /// End of input: emits every moment up to the latest item.
    pub fn finish(&mut self, out: &mut Vec<Moment<T>>) {
        self.emit(true, out);
    }

    fn emit(&mut self, flush: bool, out: &mut Vec<Moment<T>>) {
        let Some(mut t) = self.next_t else { return };
        let watermark = self.seen_end.iter().flatten().copied().max().unwrap_or(0);
        // After a long gap, jump to the oldest item still held: the moments
        // before it would be empty anyway.
        if watermark > t + 1000 * self.hop_ns
            && let Some(oldest) = self
                .recent
                .iter()
                .filter_map(|q| q.front())
                .map(|w| w.t_end())
                .min()
        {
            t = t.max(oldest.div_ceil(self.hop_ns) * self.hop_ns);
        }
        loop {
            let all_past = self
                .expected
                .iter()
                .all(|m| self.seen_end[m.index()].is_some_and(|e| e >= t));
            let late = watermark >= t + self.lateness_ns;
            let ready = all_past || late || (flush && t <= watermark);
            if !ready {
                break;
            }
            let mut windows = Vec::new();
            for m in Modality::ALL {
                let age = self.max_age_ns[m.index()];
                let q = &self.recent[m.index()];
                if let Some(w) = q
                    .iter()
                    .rev()
                    .find(|w| w.t_end() <= t && w.t_end() + age > t)
                {
                    windows.push(w.clone());
                }
            }
            if !windows.is_empty() {
                out.push(Moment { t, windows });
            }
            t += self.hop_ns;
            // Drop items too old for any future moment.
            for (q, age) in self.recent.iter_mut().zip(self.max_age_ns) {
                while q.front().is_some_and(|w| w.t_end() + age <= t) {
                    q.pop_front();
                }
            }
        }
        self.next_t = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowData;

    const S: u64 = 1_000_000_000;

    fn win(m: Modality, end_s: u64) -> Window {
        Window {
            modality: m,
            t_start: end_s * S - S,
            t_end: end_s * S,
            wall_end_ns: 0,
            data: WindowData::Imu { samples: vec![] },
        }
    }

    #[test]
    fn groups_windows_ending_together() {
        let mut a = MomentAligner::new(&[Modality::Vision, Modality::Audio], S, S, 3 * S);
        let mut out = Vec::new();
        a.push(win(Modality::Vision, 1), &mut out);
        a.push(win(Modality::Vision, 2), &mut out);
        assert!(out.is_empty(), "audio for t=1 may still come");
        a.push(win(Modality::Audio, 1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].t, S);
        assert_eq!(out[0].modalities(), vec![Modality::Vision, Modality::Audio]);
        a.push(win(Modality::Audio, 2), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].window(Modality::Audio).unwrap().t_end, 2 * S);
    }

    #[test]
    fn dead_sensor_delays_by_lateness_only() {
        let mut a = MomentAligner::new(&[Modality::Vision, Modality::Imu], S, S, 2 * S);
        let mut out = Vec::new();
        for k in 1..=5 {
            a.push(win(Modality::Vision, k), &mut out);
        }
        // IMU never arrives: moment t is released once vision reaches t + 2 s.
        let ts: Vec<u64> = out.iter().map(|m| m.t / S).collect();
        assert_eq!(ts, vec![1, 2, 3]);
        assert!(out.iter().all(|m| m.modalities() == vec![Modality::Vision]));
        a.finish(&mut out);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn slower_hop_window_serves_until_stale() {
        // IMU windows every 2 s, moments every 1 s, max age 2 s.
        let mut a = MomentAligner::new(&[Modality::Vision, Modality::Imu], S, 2 * S, 10 * S);
        let mut out = Vec::new();
        for k in 1..=6 {
            a.push(win(Modality::Vision, k), &mut out);
            if k % 2 == 0 {
                a.push(win(Modality::Imu, k), &mut out);
            }
        }
        let imu_ends: Vec<(u64, Option<u64>)> = out
            .iter()
            .map(|m| (m.t / S, m.window(Modality::Imu).map(|w| w.t_end / S)))
            .collect();
        assert_eq!(
            imu_ends,
            vec![
                (1, None),
                (2, Some(2)),
                (3, Some(2)),
                (4, Some(4)),
                (5, Some(4)),
                (6, Some(6))
            ]
        );
    }
}
