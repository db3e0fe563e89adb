//! `edgebind-train`: checks training plans, binds modalities along a plan's
//! tree, evaluates the exported encoders, and measures encoder step times.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use edgebind_models::contract::ContractModality;
use edgebind_trainer::bind::BindOptions;
use edgebind_trainer::eval::EvalOptions;
use edgebind_trainer::loss::EdgeLoss;
use edgebind_trainer::model::EncoderConfig;
use edgebind_trainer::optim::OptimConfig;
use edgebind_trainer::params::{Rng, randn};
use edgebind_trainer::plan::Plan;
use edgebind_trainer::student::Student;

/// ImageBind's one-hot InfoNCE at temperature 0.1.
const HARD_0_1: EdgeLoss = EdgeLoss::info_nce(0.1);

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
        /// Continue from the checkpoints in the plan's output folder and skip
        /// edges that finished.
        #[arg(long)]
        resume: bool,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
        /// Stop after this many steps (checkpointed); `--resume` continues
        /// exactly where it stopped.
        #[arg(long, value_name = "STEPS")]
        stop_after: Option<usize>,
        /// Train only these edges (learner names as in the plan, e.g.
        /// `--only audio,imu` or `--only paired/depth`), with exactly the
        /// seeds the whole plan gives them: two processes with disjoint
        /// `--only` lists produce the same files as one full run, in about
        /// half the time on two cores. Their anchors must already be trained.
        #[arg(long, value_name = "EDGES", value_delimiter = ',')]
        only: Vec<String>,
        /// Where the learners train: `cpu`, or `cuda` / `cuda:N` (needs a build
        /// with `--features cuda`). Anchors and data stay on the CPU.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Evaluate exported encoders on a held-out recording: zero-shot top-1
    /// per modality against text prompts, cross-modal retrieval (R@1, R@5),
    /// emergent / text-paired ratio, embedding arithmetic. Writes a JSON
    /// report and a retrieval heatmap (PNG) beside it.
    Eval {
        /// The held-out recording (MCAP with ground truth).
        #[arg(long)]
        recording: PathBuf,
        /// Prompt file: one table per situation id, each a list of prompts.
        #[arg(long)]
        prompts: PathBuf,
        /// The JSON report to write.
        #[arg(long)]
        report: PathBuf,
        /// Folder of `<modality>.onnx` encoders.
        #[arg(long, default_value = "trained/bundle")]
        encoders: PathBuf,
        /// Folder of text-paired baselines [default: <encoders>/paired if present].
        #[arg(long)]
        paired: Option<PathBuf>,
        /// Folder of supervised-ceiling encoders (the same encoders trained
        /// on the situation labels, `[train] supervised_ceiling`) [default:
        /// <encoders>/supervised if present].
        #[arg(long)]
        supervised: Option<PathBuf>,
        /// Exit with status 1 unless zero-shot >= 0.85 for every modality,
        /// R@1 >= 0.7 for every pair and emergent / paired >= 0.95 for audio,
        /// depth, thermal and IMU (the bundle's bars).
        #[arg(long)]
        check: bool,
        /// Multi-clip span in seconds: each modality's embedding of a moment
        /// is the mean of its clips whose windows fit in the last S seconds,
        /// as the daemon's `[fusion] clip_span_s` (default 5) averages them;
        /// 0: the moment's own clip.
        #[arg(long, default_value_t = 5.0, value_name = "S")]
        clip_span_s: f64,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Re-centre encoders on their own mean: each file's output becomes
    /// (y - mu) / |y - mu|, with mu its mean unit embedding over every
    /// moment of the recordings (unlabelled: give its training data). This
    /// undoes the cone a bound student's embeddings gather in, which
    /// otherwise makes a few prompts win zero-shot for everything (see
    /// trainer/README.md). Writes `<out>/<file name>`; the contract is
    /// unchanged, the mean's source is in the file's `edgebind.center`
    /// metadata. An already centred file is refused.
    Center {
        /// Encoder files (`<modality>.onnx` from `bind`), or folders: every
        /// `<modality>.onnx` in them.
        #[arg(required = true)]
        encoders: Vec<PathBuf>,
        /// Recordings to average over (repeat the flag for several).
        #[arg(long = "recording", required = true)]
        recordings: Vec<PathBuf>,
        /// Output folder (may be the input's own: the file is read first).
        #[arg(long)]
        out: PathBuf,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
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
        /// `cpu`, or `cuda` / `cuda:N` (needs `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: String,
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
    edgebind_trainer::alloc::keep_freed_memory();
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
        Command::Bind {
            plan,
            resume,
            quiet,
            stop_after,
            only,
            device,
        } => {
            let t0 = Instant::now();
            let device = match edgebind_trainer::device::parse(&device) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let opts = BindOptions {
                resume,
                quiet,
                stop_after,
                only,
                device,
            };
            match edgebind_trainer::bind::bind(&plan, &opts) {
                Ok(logs) => {
                    for l in &logs {
                        println!(
                            "{:<14} -> {:<7} {:>5} steps  {:>7.1} s  {:>5.2} steps/s  val loss {}",
                            l.name,
                            l.anchor,
                            l.steps,
                            l.seconds,
                            l.steps_per_s,
                            l.val
                                .last()
                                .map_or("-".into(), |v| format!("{:.3}", v.loss))
                        );
                    }
                    println!("total {:.1} s", t0.elapsed().as_secs_f64());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Eval {
            recording,
            prompts,
            report,
            encoders,
            paired,
            supervised,
            check,
            clip_span_s,
            quiet,
        } => {
            let opts = EvalOptions {
                recording,
                prompts,
                encoders,
                paired,
                supervised,
                report,
                quiet,
                clip_span_s,
            };
            match edgebind_trainer::eval::eval(&opts) {
                Ok(r) => {
                    println!("{}", r.table());
                    let fails =
                        r.check_bars(0.85, 0.7, 0.95, &["audio", "depth", "thermal", "imu"]);
                    if check && !fails.is_empty() {
                        for f in &fails {
                            eprintln!("bar not met: {f}");
                        }
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Center {
            encoders,
            recordings,
            out,
            quiet,
        } => match center(&encoders, &recordings, &out, quiet) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Bench {
            plan,
            batch,
            steps,
            device,
        } => match bench(plan, batch, steps, &device) {
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

fn center(
    inputs: &[PathBuf],
    recordings: &[PathBuf],
    out: &std::path::Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let before = files.len();
            for m in ContractModality::SENSORS {
                let f = edgebind_trainer::eval::encoder_file(p, m);
                if f.exists() {
                    files.push(f);
                }
            }
            anyhow::ensure!(
                files.len() > before,
                "{}: no <modality>.onnx encoder in this folder",
                p.display()
            );
        } else {
            files.push(p.clone());
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for f in &files {
        let name = f
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{}: not a file name", f.display()))?;
        anyhow::ensure!(
            names.insert(name.to_os_string()),
            "two inputs are named {}: they would overwrite each other in {}",
            name.to_string_lossy(),
            out.display()
        );
    }
    for f in &files {
        let t0 = Instant::now();
        let dest = out.join(f.file_name().expect("checked above"));
        let c = edgebind_trainer::center::center_file(f, recordings, &dest, |p, done, total| {
            if !quiet && total > 0 {
                eprint!(
                    "\r{}: reading {} {:>3} %",
                    f.display(),
                    p.display(),
                    done * 100 / total
                );
            }
        })?;
        if !quiet {
            eprint!("\r\x1b[K");
        }
        println!(
            "{} -> {}: mean of {} moments, |mu| {:.3} ({:.1} s)",
            c.input.display(),
            c.output.display(),
            c.record.moments,
            c.record.mean_norm,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn bench(plan: Option<PathBuf>, batch: usize, steps: usize, device: &str) -> anyhow::Result<()> {
    let configs: Vec<EncoderConfig> = match plan {
        Some(p) => Plan::load(&p)?
            .edges
            .into_iter()
            .map(|e| e.encoder)
            .collect(),
        None => ContractModality::SENSORS
            .into_iter()
            .filter_map(EncoderConfig::small)
            .collect(),
    };
    anyhow::ensure!(
        batch >= 2 && steps >= 1,
        "--batch must be >= 2 and --steps >= 1"
    );
    let dev = edgebind_trainer::device::parse(device)?;
    println!(
        "device {}, batch {batch}, {steps} timed steps after 1 warm-up, rayon threads {}",
        edgebind_trainer::device::name(&dev),
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
        s.step(&x, &a, &HARD_0_1)?;
        let t0 = Instant::now();
        for _ in 0..steps {
            s.step(&x, &a, &HARD_0_1)?;
        }
        dev.synchronize()?;
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
