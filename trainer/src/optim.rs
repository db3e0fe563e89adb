//! AdamW (decoupled weight decay) with ImageBind's betas (0.9, 0.95), a
//! linear warm-up then cosine learning-rate schedule, and global-norm gradient
//! clipping. Weight decay applies only to parameters marked for it (weight
//! matrices; not biases, norms, tokens or positions).
//!
//! The state (moments and step) is plain tensors so checkpoints can carry it.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::params::ParamSet;

/// Optimiser and schedule settings (a plan's `[optim]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine.
    pub min_lr: f64,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup_steps: usize,
    /// Adam betas.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm (0 = no clipping).
    pub clip_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 5e-4,
            min_lr: 1e-6,
            warmup_steps: 100,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: 0.05,
            clip_norm: 1.0,
        }
    }
}

impl OptimConfig {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("optim.lr {} must be positive", self.lr));
        }
        if !(0.0..=self.lr).contains(&self.min_lr) {
            return Err(format!("optim.min_lr {} must be in [0, lr]", self.min_lr));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(format!("optim.betas {:?} must be in [0, 1)", self.betas));
        }
        if self.eps.is_nan() || self.eps <= 0.0 || self.weight_decay < 0.0 || self.clip_norm < 0.0 {
            return Err(
                "optim.eps must be positive, weight_decay and clip_norm not negative".into(),
            );
        }
        Ok(())
    }

    /// Learning rate of 0-based `step` out of `total`: linear warm-up to `lr`
    /// over `warmup_steps`, then cosine down to `min_lr` at `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// AdamW state for one [`ParamSet`].
#[derive(Debug)]
pub struct AdamW {
    /// Settings.
    pub cfg: OptimConfig,
    /// Steps planned (for the cosine).
    pub total_steps: usize,
    /// Steps taken.
    pub step: usize,
    /// First moments, one per parameter, in the set's order.
    pub m: Vec<Tensor>,
    /// Second moments.
    pub v: Vec<Tensor>,
}

impl AdamW {
    /// Zeroed state for `params`.
    pub fn new(cfg: OptimConfig, total_steps: usize, params: &ParamSet) -> Result<AdamW> {
        let zeros = || -> Result<Vec<Tensor>> {
            params
                .iter()
                .map(|p| p.var.as_tensor().zeros_like())
                .collect()
        };
        Ok(AdamW {
            cfg,
            total_steps,
            step: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, params: &ParamSet, grads: &GradStore) -> Result<StepStats> {
        let gs: Vec<Option<&Tensor>> = params
            .iter()
            .map(|p| grads.get(p.var.as_tensor()))
            .collect();
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let grad_norm = sq.sqrt();
        let scale = if self.cfg.clip_norm > 0.0 && grad_norm > self.cfg.clip_norm {
            self.cfg.clip_norm / (grad_norm + 1e-6)
        } else {
            1.0
        };
        let lr = self.cfg.lr_at(self.step, self.total_steps);
        let [b1, b2] = self.cfg.betas;
        let t = (self.step + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (i, (p, g)) in params.iter().zip(gs).enumerate() {
            let Some(g) = g else { continue };
            // Detached: gradients carry their backward graph (which holds the
            // forward activations); moments built on them would chain every
            // step's graph to the next and never free it.
            let g = (g.detach() * scale)?;
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + self.cfg.eps)?)?;
            let theta = p.var.as_tensor();
            let decayed = if p.decay && self.cfg.weight_decay > 0.0 {
                (theta * (1.0 - lr * self.cfg.weight_decay))?
            } else {
                theta.clone()
            };
            p.var.set(&(decayed - (update * lr)?)?.detach())?;
        }
        self.step += 1;
        Ok(StepStats { lr, grad_norm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Init, Rng};
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_follows_the_cosine() {
        let c = OptimConfig {
            lr: 1.0,
            min_lr: 0.0,
            warmup_steps: 4,
            ..Default::default()
        };
        assert_eq!(c.lr_at(0, 14), 0.25);
        assert_eq!(c.lr_at(3, 14), 1.0);
        assert_eq!(c.lr_at(4, 14), 1.0);
        assert!((c.lr_at(9, 14) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(14, 14).abs() < 1e-12);
    }

    #[test]
    fn first_step_matches_adamw_by_hand_with_clipping_and_decay() -> Result<()> {
        let dev = Device::Cpu;
        let mut ps = ParamSet::default();
        let mut rng = Rng::new(0);
        let w = ps.add("w".into(), &[2], Init::Ones, true, &mut rng, &dev)?;
        let b = ps.add("b".into(), &[2], Init::Ones, false, &mut rng, &dev)?;
        // loss = 3 w0 + 4 w1 + 3 b0 + 4 b1: gradient norm sqrt(50), clipped to 1.
        let k = Tensor::new(&[3f32, 4.0], &dev)?;
        let loss = ((w.as_tensor() * &k)?.sum_all()? + (b.as_tensor() * &k)?.sum_all()?)?;
        let cfg = OptimConfig {
            lr: 0.1,
            warmup_steps: 0,
            weight_decay: 0.5,
            clip_norm: 1.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(cfg, 10, &ps)?;
        let s = opt.step(&ps, &loss.backward()?)?;
        assert!((s.grad_norm - 50f64.sqrt()).abs() < 1e-5);
        assert_eq!(s.lr, 0.1);
        // Step 1 of Adam moves each coordinate by lr * sign(g) (bias-corrected m/sqrt(v) = ±1).
        let w1 = w.as_tensor().to_vec1::<f32>()?;
        let b1 = b.as_tensor().to_vec1::<f32>()?;
        for x in w1 {
            assert!((x - (1.0 * (1.0 - 0.05) - 0.1)).abs() < 1e-5, "{x}");
        }
        for x in b1 {
            assert!((x - 0.9).abs() < 1e-5, "{x}");
        }
        Ok(())
    }
}
