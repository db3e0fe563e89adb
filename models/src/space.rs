//! The shared space: embeddings that know which space they belong to, so that
//! vectors of different spaces are never compared, and ImageBind's embedding
//! arithmetic (normalise, weight, sum, normalise).

use std::sync::Arc;

/// An L2-normalised vector of a named space.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The space's name (from the encoder's contract).
    pub space: Arc<str>,
    /// Unit-length values.
    pub vector: Vec<f32>,
}

/// Two embeddings that cannot be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    /// Different spaces.
    #[error("embeddings of space `{0}` and space `{1}` are never compared")]
    Mismatch(String, String),
    /// Same space, different lengths (a corrupt vector).
    #[error("embedding lengths differ: {0} vs {1}")]
    Dim(usize, usize),
    /// Nothing to combine, or all zero.
    #[error("nothing to combine")]
    Empty,
}

fn normalise(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
        true
    } else {
        false
    }
}

impl Embedding {
    /// L2-normalises `vector` into an embedding of `space`; `None` for a zero or
    /// non-finite vector.
    pub fn new(space: Arc<str>, mut vector: Vec<f32>) -> Option<Self> {
        normalise(&mut vector).then_some(Embedding { space, vector })
    }

    fn check(&self, other: &Embedding) -> Result<(), SpaceError> {
        if self.space != other.space {
            return Err(SpaceError::Mismatch(
                self.space.to_string(),
                other.space.to_string(),
            ));
        }
        if self.vector.len() != other.vector.len() {
            return Err(SpaceError::Dim(self.vector.len(), other.vector.len()));
        }
        Ok(())
    }

    /// Cosine similarity (a dot product: both are unit length).
    pub fn cosine(&self, other: &Embedding) -> Result<f32, SpaceError> {
        self.check(other)?;
        Ok(self
            .vector
            .iter()
            .zip(&other.vector)
            .map(|(a, b)| a * b)
            .sum())
    }

    /// ImageBind's composition: the normalised weighted sum of embeddings of one space.
    pub fn fuse(parts: &[(f32, &Embedding)]) -> Result<Embedding, SpaceError> {
        let (_, first) = parts.first().ok_or(SpaceError::Empty)?;
        let mut acc = vec![0f32; first.vector.len()];
        for (w, e) in parts {
            first.check(e)?;
            for (a, x) in acc.iter_mut().zip(&e.vector) {
                *a += w * x;
            }
        }
        Embedding::new(first.space.clone(), acc).ok_or(SpaceError::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_never_mix() {
        let a = Embedding::new("text".into(), vec![3.0, 4.0]).unwrap();
        assert_eq!(a.vector, vec![0.6, 0.8]);
        let b = Embedding::new("imagebind-huge".into(), vec![1.0, 0.0]).unwrap();
        assert!(matches!(a.cosine(&b), Err(SpaceError::Mismatch(..))));
        assert!(Embedding::new("text".into(), vec![0.0, 0.0]).is_none());
    }

    #[test]
    fn fusion_is_normalised_weighted_sum() {
        let s: Arc<str> = "s".into();
        let x = Embedding::new(s.clone(), vec![1.0, 0.0]).unwrap();
        let y = Embedding::new(s.clone(), vec![0.0, 1.0]).unwrap();
        let f = Embedding::fuse(&[(1.0, &x), (1.0, &y)]).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((f.vector[0] - h).abs() < 1e-6 && (f.vector[1] - h).abs() < 1e-6);
        assert!((f.cosine(&x).unwrap() - h).abs() < 1e-6);
        assert!(Embedding::fuse(&[]).is_err());
    }
}
