//! The learnable parameters of one encoder: named candle [`Var`]s in creation
//! order, each marked for weight decay or not, plus the seeded random source
//! that initialises them (and draws drop-path masks), so a plan's `seed`
//! reproduces a run.
//!
//! Not a general module system: encoders build their parameters here once and
//! keep the `Var`s; the optimiser, checkpoints and the ONNX export read them
//! back by name.

use candle_core::{DType, Device, Result, Tensor, Var};

/// One named parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Dotted path, e.g. `blocks.0.attn.q.w`.
    pub name: String,
    /// The value (updated in place by the optimiser).
    pub var: Var,
    /// Whether AdamW's weight decay applies (matrices only; not biases,
    /// norms, tokens or positional embeddings).
    pub decay: bool,
}

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Normal(0, std) truncated at two standard deviations (ViT's init).
    TruncNormal(f64),
}

/// The parameters of one encoder.
#[derive(Debug, Default)]
pub struct ParamSet {
    params: Vec<Param>,
}

impl ParamSet {
    /// All parameters in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.iter()
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Number of scalars.
    pub fn count(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Creates and registers a parameter.
    pub fn add(
        &mut self,
        name: String,
        shape: &[usize],
        init: Init,
        decay: bool,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Var> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::TruncNormal(std) => (0..n).map(|_| rng.trunc_normal(std) as f32).collect(),
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?;
        debug_assert!(self.get(&name).is_none(), "duplicate parameter {name}");
        self.params.push(Param {
            name,
            var: var.clone(),
            decay,
        });
        Ok(var)
    }
}

/// A small seeded random source (SplitMix64): initialisation and drop-path
/// masks. candle's own CPU random numbers cannot be seeded.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The state, for checkpoints.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Normal(0, std) redrawn until within two standard deviations.
    pub fn trunc_normal(&mut self, std: f64) -> f64 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return z * std;
            }
        }
    }
}

/// A tensor of `shape` drawn from Normal(0, 1) with `rng` (for tests and
/// synthetic data).
pub fn randn(rng: &mut Rng, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(data, shape, device)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_truncated() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        for _ in 0..1000 {
            let x = a.trunc_normal(0.02);
            assert_eq!(x, b.trunc_normal(0.02));
            assert!(x.abs() <= 0.04);
        }
        let mean = (0..20000).map(|_| a.normal()).sum::<f64>() / 20000.0;
        assert!(mean.abs() < 0.03, "{mean}");
    }
}
