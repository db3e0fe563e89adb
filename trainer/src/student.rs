//! One learning encoder with its optimiser and random source: the unit an
//! edge of the plan trains, one InfoNCE step at a time, and checkpoints.

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
        Ok(Student { encoder, opt, rng })
    }

    /// One step on a batch of inputs `[N, ...]` and their frozen anchor
    /// embeddings `[N, out_dim]` (unit length).
    pub fn step(
        &mut self,
        x: &Tensor,
        anchor: &Tensor,
        loss: &EdgeLoss,
    ) -> anyhow::Result<StepReport> {
        let emb = self.encoder.forward(x, Some(&mut self.rng))?;
        let loss = loss.of(&emb, anchor)?;
        let grads = loss.backward()?;
        let stats = self.opt.step(&self.encoder.params, &grads)?;
        Ok(StepReport {
            step: self.opt.step,
            loss: loss.to_scalar::<f32>()? as f64,
            lr: stats.lr,
            grad_norm: stats.grad_norm,
        })
    }

    /// Writes a checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        checkpoint::save(path, &self.encoder, &self.opt, &self.rng)
    }

    /// A student restored from a checkpoint (its own configuration; optimiser
    /// settings from `optim`).
    pub fn resume(path: &Path, optim: OptimConfig, dev: &Device) -> anyhow::Result<Student> {
        let cfg = checkpoint::config_of(path)?;
        let mut s = Student::new(&cfg, optim, 1, 0, dev)?;
        checkpoint::resume(path, &s.encoder, &mut s.opt, &mut s.rng)?;
        Ok(s)
    }
}
