//! One learning encoder with its optimiser and random source: the unit an
//! edge of the plan trains, one InfoNCE step at a time, and checkpoints.
//!
//! Optionally an exponential moving average of the weights ([`Ema`], Polyak
//! averaging): a shadow copy `w_ema <- d w_ema + (1 - d) w` after every step,
//! with the warm-up `d = min(decay, (1 + step) / (10 + step))` so the first
//! steps do not pin it to the initial weights. Training itself never reads
//! it; validation and the export can ([`Student::swap_ema`]).

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::checkpoint::{self, CheckpointError};
use crate::loss::EdgeLoss;
use crate::model::{Encoder, EncoderConfig};
use crate::optim::{AdamW, OptimConfig};
use crate::params::Rng;

/// What one training step did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Step number (1-based, after the step).
    pub step: usize,
    /// InfoNCE loss of the batch (before the update).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// A student encoder in training.
#[derive(Debug)]
pub struct Student {
    /// The encoder.
    pub encoder: Encoder,
    /// Its optimiser.
    pub opt: AdamW,
    /// Drop-path masks (and, later, batch order and augmentation).
    pub rng: Rng,
    /// The moving average of the weights, if this student keeps one.
    pub ema: Option<Ema>,
}

/// An exponential moving average of an encoder's parameters (one tensor per
/// parameter, in the encoder's order).
#[derive(Debug)]
pub struct Ema {
    /// Decay per step once warmed up (e.g. 0.999).
    pub decay: f64,
    /// The averaged values.
    pub shadow: Vec<Tensor>,
}

impl Ema {
    /// The decay applied after optimiser step `step` (1-based).
    pub fn decay_at(&self, step: usize) -> f64 {
        self.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }
}

impl Student {
    /// A fresh student: weights from `seed`, AdamW for `total_steps`.
    pub fn new(
        cfg: &EncoderConfig,
        optim: OptimConfig,
        total_steps: usize,
        seed: u64,
        dev: &Device,
    ) -> anyhow::Result<Student> {
        let mut rng = Rng::new(seed);
        let encoder = Encoder::new(cfg, &mut rng, dev)?;
        let opt = AdamW::new(optim, total_steps, &encoder.params)?;
        Ok(Student {
            encoder,
            opt,
            rng,
            ema: None,
        })
    }

    /// Keeps a moving average of the weights with `decay` from now on
    /// (`None`: none). A shadow restored from a checkpoint is kept; otherwise
    /// it starts at the current weights.
    pub fn set_ema(&mut self, decay: Option<f64>) -> anyhow::Result<()> {
        match decay {
            None => self.ema = None,
            Some(d) => match &mut self.ema {
                Some(e) => e.decay = d,
                None => {
                    let shadow = self
                        .encoder
                        .params
                        .iter()
                        .map(|p| p.var.as_tensor().copy())
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    self.ema = Some(Ema { decay: d, shadow });
                }
            },
        }
        Ok(())
    }

    /// Exchanges the encoder's weights with the moving average (a second
    /// call swaps them back); no-op without one.
    pub fn swap_ema(&mut self) -> anyhow::Result<()> {
        if let Some(e) = &mut self.ema {
            for (p, sh) in self.encoder.params.iter().zip(e.shadow.iter_mut()) {
                let cur = p.var.as_tensor().copy()?;
                p.var.set(sh)?;
                *sh = cur;
            }
        }
        Ok(())
    }

    /// One step on a batch of inputs `[N, ...]` and their frozen anchor
    /// embeddings `[N, out_dim]` (unit length).
    pub fn step(
        &mut self,
        x: &Tensor,
        anchor: &Tensor,
        loss: &EdgeLoss,
    ) -> anyhow::Result<StepReport> {
        self.step_with(x, |emb| loss.of(emb, anchor))
    }

    /// One step on a batch of inputs `[N, ...]` with the loss `loss_of`
    /// takes of their embeddings (a scalar).
    pub fn step_with(
        &mut self,
        x: &Tensor,
        loss_of: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    ) -> anyhow::Result<StepReport> {
        let emb = self.encoder.forward(x, Some(&mut self.rng))?;
        let loss = loss_of(&emb)?;
        let grads = loss.backward()?;
        let stats = self.opt.step(&self.encoder.params, &grads)?;
        if let Some(e) = &mut self.ema {
            let d = e.decay_at(self.opt.step);
            for (p, sh) in self.encoder.params.iter().zip(e.shadow.iter_mut()) {
                *sh = ((&*sh * d)? + (p.var.as_tensor() * (1.0 - d))?)?;
            }
        }
        Ok(StepReport {
            step: self.opt.step,
            loss: loss.to_scalar::<f32>()? as f64,
            lr: stats.lr,
            grad_norm: stats.grad_norm,
        })
    }

    /// Writes a checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        checkpoint::save(
            path,
            &self.encoder,
            &self.opt,
            &self.rng,
            self.ema.as_ref().map(|e| (e.decay, e.shadow.as_slice())),
        )
    }

    /// A student restored from a checkpoint (its own configuration; optimiser
    /// settings from `optim`; the moving average if the checkpoint has one,
    /// with the decay it was written with until [`Student::set_ema`]).
    pub fn resume(path: &Path, optim: OptimConfig, dev: &Device) -> anyhow::Result<Student> {
        let cfg = checkpoint::config_of(path)?;
        let mut s = Student::new(&cfg, optim, 1, 0, dev)?;
        s.ema = checkpoint::resume(path, &s.encoder, &mut s.opt, &mut s.rng)?
            .map(|(decay, shadow)| Ema { decay, shadow });
        Ok(s)
    }
}
