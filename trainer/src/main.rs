//! `edgebind-train`: checks training plans, measures encoder step times, and
//! (once the data pipeline lands) binds modalities along a plan's tree.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use candle_core::Device;
use clap::{Parser, Subcommand};
use edgebind_models::contract::ContractModality;
use edgebind_trainer::model::EncoderConfig;
use edgebind_trainer::optim::OptimConfig;
use edgebind_trainer::params::{Rng, randn};
use edgebind_trainer::plan::Plan;
use edgebind_trainer::student::Student;

/// Train edgebind encoders the ImageBind way: each modality bound to a frozen
/// anchor along the spanning tree a TOML plan names, exported to ONNX with
/// its contract.
#[derive(Parser)]
#[command(name = "edgebind-train", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Training plans.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Train every edge of a plan, anchors first, and export the encoders.
    Bind {
        /// The plan (TOML; see configs/train-bundle.toml).
        plan: PathBuf,
    },
    /// Evaluate exported encoders on a plan's held-out pairs.
    Eval {
        /// The plan.
        plan: PathBuf,
    },
    /// Measure forward+backward time per batch of the small default encoders
    /// (or a plan's) on synthetic input.
    Bench {
        /// Use the encoders of this plan instead of the defaults.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed steps per encoder (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
    },
    /// Real data: bind IMU to the text tower on UCI HAPT (scripts/fetch-hapt.sh)
    /// and report zero-shot accuracy beside a supervised classifier.
    Har(edgebind_trainer::har::HarArgs),
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Validate a plan and print its tree in training order.
    Check {
        /// The plan file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan {
            command: PlanCommand::Check { file },
        } => match Plan::load(&file) {
            Ok(p) => {
                print!("{} is valid: {}", file.display(), p.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Bind { plan } | Command::Eval { plan } => {
            if let Err(e) = Plan::load(&plan) {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            eprintln!(
                "error: not yet implemented in this build: reading paired windows from the \
                 plan's MCAP recordings and caching the frozen anchor's embeddings (the data \
                 pipeline); the encoder, loss, optimiser, checkpoints and ONNX export exist"
            );
            ExitCode::from(2)
        }
        Command::Bench { plan, batch, steps } => match bench(plan, batch, steps) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Har(args) => match edgebind_trainer::har::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn bench(plan: Option<PathBuf>, batch: usize, steps: usize) -> anyhow::Result<()> {
    let configs: Vec<EncoderConfig> = match plan {
        Some(p) => Plan::load(&p)?
            .edges
            .into_iter()
            .map(|e| e.encoder)
            .collect(),
        None => [
            ContractModality::Vision,
            ContractModality::Audio,
            ContractModality::Depth,
            ContractModality::Thermal,
            ContractModality::Imu,
        ]
        .into_iter()
        .filter_map(EncoderConfig::small)
        .collect(),
    };
    anyhow::ensure!(
        batch >= 2 && steps >= 1,
        "--batch must be >= 2 and --steps >= 1"
    );
    let dev = Device::Cpu;
    println!(
        "batch {batch}, {steps} timed steps after 1 warm-up, rayon threads {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    for cfg in configs {
        let mut s = Student::new(&cfg, OptimConfig::default(), steps + 1, 1, &dev)?;
        let mut rng = Rng::new(2);
        let mut shape = vec![batch];
        shape.extend(&cfg.input);
        let x = randn(&mut rng, &shape, &dev)?;
        let a =
            edgebind_trainer::model::l2_normalize(&randn(&mut rng, &[batch, cfg.out_dim], &dev)?)?;
        s.step(&x, &a, 0.1)?;
        let t0 = Instant::now();
        for _ in 0..steps {
            s.step(&x, &a, 0.1)?;
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0 / steps as f64;
        println!(
            "{:<8} input {:?} tokens {:>4} dim {} depth {} params {:>9}: {:>8.1} ms per step (forward+backward+AdamW)",
            cfg.modality.as_str(),
            cfg.input,
            cfg.patches() + 1,
            cfg.dim,
            cfg.depth,
            s.encoder.params.count(),
            ms
        );
    }
    Ok(())
}
