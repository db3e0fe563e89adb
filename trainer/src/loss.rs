//! Symmetric InfoNCE with a fixed temperature, ImageBind's loss for one edge
//! of the tree: the student's embeddings of a batch against the frozen
//! anchor's embeddings of the paired items; item i's partner is the positive,
//! the rest of the batch the negatives, in both directions.
//!
//! The anchor side is detached: the anchor encoder never learns here.

use candle_core::{DType, Result, Tensor};

/// Mean of cross-entropy(student -> anchor) and cross-entropy(anchor ->
/// student) over a batch of `[N, dim]` unit vectors, logits `s·a / temperature`.
pub fn info_nce(student: &Tensor, anchor: &Tensor, temperature: f64) -> Result<Tensor> {
    let n = student.dim(0)?;
    let logits = (student.matmul(&anchor.detach().t()?)? / temperature)?;
    let labels = Tensor::arange(0u32, n as u32, student.device())?;
    let s2a = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let a2s = candle_nn::loss::cross_entropy(&logits.t()?.contiguous()?, &labels)?;
    ((s2a + a2s)? * 0.5)?.to_dtype(DType::F32)
}

/// Fraction of rows whose highest-scoring anchor is their own partner
/// (student -> anchor retrieval top-1), a quick training monitor.
pub fn top1(student: &Tensor, anchor: &Tensor) -> Result<f64> {
    let n = student.dim(0)?;
    let best = student.matmul(&anchor.t()?)?.argmax(1)?.to_vec1::<u32>()?;
    let hits = best
        .iter()
        .enumerate()
        .filter(|(i, b)| *i as u32 == **b)
        .count();
    Ok(hits as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_formula() -> Result<()> {
        let dev = Device::Cpu;
        let s = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev)?;
        let a = Tensor::new(&[[0.6f32, 0.8], [0.0, 1.0]], &dev)?;
        let t = 0.5;
        let got = info_nce(&s, &a, t)?.to_scalar::<f32>()? as f64;
        // logits = s a^T / t
        let l = [[0.6 / t, 0.0], [0.8 / t, 1.0 / t]];
        let ce = |row: [f64; 2], i: usize| -(row[i].exp() / (row[0].exp() + row[1].exp())).ln();
        let s2a = (ce(l[0], 0) + ce(l[1], 1)) / 2.0;
        let a2s = (ce([l[0][0], l[1][0]], 0) + ce([l[0][1], l[1][1]], 1)) / 2.0;
        assert!((got - (s2a + a2s) / 2.0).abs() < 1e-6, "{got}");
        assert_eq!(top1(&s, &a)?, 1.0);
        Ok(())
    }
}
