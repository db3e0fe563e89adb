//! History: a ring of recent moments (fused embedding and each modality's),
//! bounded by age and by memory, searched by text, by a vector, or by the
//! example of an earlier moment.

use std::collections::VecDeque;
use std::sync::Arc;

use edgebind_models::space::Embedding;
use edgebind_sensors::Modality;
use serde::Serialize;

use crate::concepts::Instant2;

/// One stored moment.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its time.
    pub t: Instant2,
    /// The fused embedding.
    pub fused: Arc<Embedding>,
    /// Each modality's embedding.
    pub parts: Vec<(Modality, Arc<Embedding>)>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Moment time.
    pub t: Instant2,
    /// Cosine with the query.
    pub score: f32,
}

/// The ring.
#[derive(Debug)]
pub struct History {
    max_age_ns: u64,
    max_bytes: usize,
    bytes: usize,
    items: VecDeque<Record>,
}

fn cost(r: &Record) -> usize {
    let one = |e: &Embedding| e.vector.len() * 4 + 64;
    one(&r.fused) + r.parts.iter().map(|(_, e)| one(e) + 16).sum::<usize>() + 64
}

impl History {
    /// Keeps `seconds` of moments within `max_bytes`.
    pub fn new(seconds: f64, max_bytes: usize) -> Self {
        History {
            max_age_ns: (seconds.max(0.0) * 1e9) as u64,
            max_bytes,
            bytes: 0,
            items: VecDeque::new(),
        }
    }

    /// Adds a moment and evicts what is too old or over the memory bound.
    pub fn push(&mut self, r: Record) {
        let newest = r.t.mono_ns;
        self.bytes += cost(&r);
        self.items.push_back(r);
        while let Some(front) = self.items.front() {
            if self.bytes > self.max_bytes || front.t.mono_ns + self.max_age_ns < newest {
                self.bytes -= cost(front);
                self.items.pop_front();
            } else {
                break;
            }
        }
    }

    /// Moments held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The stored embedding of the moment nearest `wall_ns` (query by example).
    pub fn at_wall(&self, wall_ns: u64, modality: Option<Modality>) -> Option<Arc<Embedding>> {
        let r = self
            .items
            .iter()
            .min_by_key(|r| r.t.wall_ns.abs_diff(wall_ns))?;
        match modality {
            None => Some(r.fused.clone()),
            Some(m) => r
                .parts
                .iter()
                .find(|(pm, _)| *pm == m)
                .map(|(_, e)| e.clone()),
        }
    }

    /// The `k` moments most like `q` among those of the last `last_ns` (of
    /// wall time before the newest moment), best first. `modality` picks one
    /// modality's embeddings instead of the fused one. Errors if `q` is of
    /// another space.
    pub fn search(
        &self,
        q: &Embedding,
        modality: Option<Modality>,
        last_ns: Option<u64>,
        k: usize,
    ) -> Result<Vec<Hit>, String> {
        let newest = self.items.back().map_or(0, |r| r.t.wall_ns);
        let since = last_ns.map_or(0, |l| newest.saturating_sub(l));
        let mut hits = Vec::new();
        for r in self.items.iter().filter(|r| r.t.wall_ns >= since) {
            let e = match modality {
                None => &r.fused,
                Some(m) => match r.parts.iter().find(|(pm, _)| *pm == m) {
                    Some((_, e)) => e,
                    None => continue,
                },
            };
            let score = q.cosine(e).map_err(|e| e.to_string())?;
            hits.push(Hit { t: r.t, score });
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64, v: Vec<f32>) -> Record {
        let e = Arc::new(Embedding::new("s".into(), v).unwrap());
        Record {
            t: Instant2 {
                mono_ns: i * 1_000_000_000,
                wall_ns: 10 + i * 1_000_000_000,
            },
            fused: e.clone(),
            parts: vec![(Modality::Vision, e)],
        }
    }

    #[test]
    fn bounded_by_age_and_memory_and_searchable() {
        let mut h = History::new(5.0, 1 << 20);
        for i in 0..20 {
            let a = i as f32;
            h.push(rec(i, vec![a.cos(), a.sin()]));
        }
        assert_eq!(h.len(), 6, "moments 14..=19 are within 5 s of 19");
        let q = Embedding::new("s".into(), vec![19f32.cos(), 19f32.sin()]).unwrap();
        let hits = h.search(&q, None, None, 2).unwrap();
        assert_eq!(hits[0].t.mono_ns, 19_000_000_000);
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        assert!(hits[0].score >= hits[1].score);
        let recent = h
            .search(&q, Some(Modality::Vision), Some(1_500_000_000), 10)
            .unwrap();
        assert_eq!(recent.len(), 2, "last 1.5 s: moments 18 and 19");
        assert!(
            h.search(&q, Some(Modality::Audio), None, 10)
                .unwrap()
                .is_empty()
        );
        let other = Embedding::new("other".into(), vec![1.0, 0.0]).unwrap();
        assert!(h.search(&other, None, None, 1).is_err());
        let ex = h.at_wall(10 + 17_000_000_000, None).unwrap();
        assert!((ex.vector[0] - 17f32.cos()).abs() < 1e-6);

        let one = cost(&rec(0, vec![1.0, 0.0]));
        let mut small = History::new(1e9, one * 3);
        for i in 0..10 {
            small.push(rec(i, vec![1.0, 0.0]));
        }
        assert_eq!(small.len(), 3);
        assert!(small.bytes() <= one * 3);
    }
}
