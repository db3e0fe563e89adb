//! Symmetric InfoNCE with a fixed temperature, ImageBind's loss for one edge
//! of the tree: the student's embeddings of a batch against the frozen
//! anchor's embeddings of the paired items; item i's partner is the positive,
//! the rest of the batch the negatives, in both directions.
//!
//! The anchor side is detached: the anchor encoder never learns here.

use candle_core::{D, DType, Result, Tensor};

/// One edge's loss: ImageBind's InfoNCE, or (with a target temperature) its
/// soft-target form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeLoss {
    /// Logit temperature.
    pub temperature: f64,
    /// `None`: one-hot targets (ImageBind). `Some(t)`: targets
    /// `softmax(anchor · anchorᵀ / t)` (see [`soft_info_nce`]).
    pub target_temperature: Option<f64>,
}

impl EdgeLoss {
    /// ImageBind's one-hot InfoNCE at `temperature`.
    pub const fn info_nce(temperature: f64) -> Self {
        EdgeLoss {
            temperature,
            target_temperature: None,
        }
    }

    /// The loss of a batch of `[N, dim]` unit vectors.
    pub fn of(&self, student: &Tensor, anchor: &Tensor) -> Result<Tensor> {
        match self.target_temperature {
            None => info_nce(student, anchor, self.temperature),
            Some(t) => soft_info_nce(student, anchor, self.temperature, t),
        }
    }
}

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

/// Symmetric InfoNCE with soft targets taken from the anchor itself: row i's
/// target distribution over the batch is `softmax_j(a_i · a_j / t_target)`
/// instead of one-hot on i. With many pairs of one situation in a batch (10
/// situations, 64 pairs: about 6 per row), one-hot targets push the student
/// to tell apart moments its frozen anchor itself places together, which
/// a modality that cannot see the difference (IMU of two seated scenes) can
/// only learn as noise; soft targets ask it to reproduce the anchor's
/// similarity structure instead. The anchor is the only teacher, as in
/// ImageBind (no labels, no text for emergent edges). As `t_target -> 0` with
/// distinct anchors this is [`info_nce`]. `anchor · anchorᵀ` is symmetric,
/// so both directions share the targets.
pub fn soft_info_nce(
    student: &Tensor,
    anchor: &Tensor,
    temperature: f64,
    target_temperature: f64,
) -> Result<Tensor> {
    let n = student.dim(0)? as f64;
    let a = anchor.detach();
    let logits = (student.matmul(&a.t()?)? / temperature)?;
    let targets = candle_nn::ops::softmax_last_dim(&(a.matmul(&a.t()?)? / target_temperature)?)?;
    let ce = |l: &Tensor| -> Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(l, D::Minus1)?;
        (targets.mul(&lp)?.sum_all()? / -n)?.to_dtype(DType::F32)
    };
    let s2a = ce(&logits)?;
    let a2s = ce(&logits.t()?.contiguous()?)?;
    (s2a + a2s)? * 0.5
}

/// The supervised ceiling's loss (`[train] supervised_ceiling`): a
/// classifier over K situations whose weights are their text prototypes
/// `protos [K, dim]` (unit rows). Logits `s · protosᵀ / temperature`;
/// `mask [N, K]` is 0 where situation k is one of row i's labels and -inf
/// elsewhere; the loss is the mean over rows of `logsumexp_k(l_ik) -
/// logsumexp_{k labelled}(l_ik)`, so with one label per row it is plain
/// cross-entropy, and a row with two situations is right on either (as
/// zero-shot scoring counts it). The encoder's own output layer in front of
/// the fixed prototypes makes it as free as a linear head (K <= dim).
pub fn class_cross_entropy(
    student: &Tensor,
    protos: &Tensor,
    mask: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    let logits = (student.matmul(&protos.t()?)? / temperature)?;
    let all = logits.log_sum_exp(D::Minus1)?;
    let pos = (&logits + mask)?.log_sum_exp(D::Minus1)?;
    (all - pos)?.mean_all()?.to_dtype(DType::F32)
}

/// Fraction of rows whose best prototype is one of their labels (`mask` as
/// in [`class_cross_entropy`]).
pub fn class_top1(student: &Tensor, protos: &Tensor, mask: &Tensor) -> Result<f64> {
    let best = student.matmul(&protos.t()?)?.argmax(1)?.to_vec1::<u32>()?;
    let mask = mask.to_vec2::<f32>()?;
    let hits = best
        .iter()
        .zip(&mask)
        .filter(|(b, row)| row[**b as usize] == 0.0)
        .count();
    Ok(hits as f64 / best.len().max(1) as f64)
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

    #[test]
    fn class_cross_entropy_matches_the_formula_and_takes_any_label() -> Result<()> {
        let dev = Device::Cpu;
        let s = Tensor::new(&[[1f32, 0.0], [0.6, 0.8]], &dev)?;
        let p = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [-1.0, 0.0]], &dev)?;
        let inf = f32::NEG_INFINITY;
        // Row 0: class 1 (wrong for its best, class 0); row 1: classes 0 or 1.
        let mask = Tensor::new(&[[inf, 0.0, inf], [0.0, 0.0, inf]], &dev)?;
        let t = 0.5;
        let got = class_cross_entropy(&s, &p, &mask, t)?.to_scalar::<f32>()? as f64;
        let lse = |v: &[f64]| v.iter().map(|x| (x / t).exp()).sum::<f64>().ln();
        let r0 = lse(&[1.0, 0.0, -1.0]) - 0.0 / t;
        let r1 = lse(&[0.6, 0.8, -0.6]) - lse(&[0.6, 0.8]);
        assert!((got - (r0 + r1) / 2.0).abs() < 1e-5, "{got}");
        // One label per row: candle's cross-entropy.
        let one = Tensor::new(&[[inf, 0.0, inf], [0.0, inf, inf]], &dev)?;
        let logits = (s.matmul(&p.t()?)? / t)?;
        let ce = candle_nn::loss::cross_entropy(&logits, &Tensor::new(&[1u32, 0], &dev)?)?
            .to_scalar::<f32>()?;
        let mine = class_cross_entropy(&s, &p, &one, t)?.to_scalar::<f32>()?;
        assert!((ce - mine).abs() < 1e-5, "{ce} vs {mine}");
        assert_eq!(class_top1(&s, &p, &mask)?, 0.5);
        assert_eq!(class_top1(&s, &p, &one)?, 0.0);
        Ok(())
    }

    #[test]
    fn soft_targets_follow_the_anchor_and_tend_to_one_hot() -> Result<()> {
        let dev = Device::Cpu;
        let s = Tensor::new(&[[1f32, 0.0], [0.6, 0.8]], &dev)?;
        let a = Tensor::new(&[[0.6f32, 0.8], [0.0, 1.0]], &dev)?;
        let (t, tt) = (0.5, 0.25);
        let got = soft_info_nce(&s, &a, t, tt)?.to_scalar::<f32>()? as f64;
        // By hand: l = s a^T / t, targets = softmax rows of a a^T / tt.
        let sa = [[0.6, 0.0], [0.36 + 0.64, 0.8]];
        let aa = [[1.0, 0.8], [0.8, 1.0]];
        let sm = |r: [f64; 2], k: f64| {
            let z = (r[0] / k).exp() + (r[1] / k).exp();
            [(r[0] / k).exp() / z, (r[1] / k).exp() / z]
        };
        let tg = [sm(aa[0], tt), sm(aa[1], tt)];
        let xent = |rows: [[f64; 2]; 2]| {
            (0..2)
                .map(|i| {
                    let p = sm(rows[i], t);
                    -(tg[i][0] * p[0].ln() + tg[i][1] * p[1].ln())
                })
                .sum::<f64>()
                / 2.0
        };
        let want = (xent(sa) + xent([[sa[0][0], sa[1][0]], [sa[0][1], sa[1][1]]])) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // A cold target temperature gives plain InfoNCE.
        let cold = soft_info_nce(&s, &a, t, 1e-4)?.to_scalar::<f32>()?;
        let hard = info_nce(&s, &a, t)?.to_scalar::<f32>()?;
        assert!((cold - hard).abs() < 1e-5, "{cold} vs {hard}");
        let l = EdgeLoss {
            temperature: t,
            target_temperature: None,
        };
        assert_eq!(l.of(&s, &a)?.to_scalar::<f32>()?, hard);
        Ok(())
    }
}
