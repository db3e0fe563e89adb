//! `edgebind run --config FILE` and `edgebind config check FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use edgebind::daemon::{self, RunOptions};

use super::CmdResult;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The daemon's config (see configs/demo.toml).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Broker to use instead of the config's (mqtt://HOST:PORT).
    #[arg(long)]
    pub broker: Option<String>,
    /// Device id instead of the config's.
    #[arg(long)]
    pub device_id: Option<String>,
    /// Exit when the rig's input ends (a replay) and the outbox is delivered.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Seconds to wait for the outbox to drain on the way out.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Print the run summary (with the final status) as JSON on stdout at exit.
    #[arg(long)]
    pub summary_json: bool,
}

/// Runs the daemon.
pub fn run(a: RunArgs) -> CmdResult {
    let cfg = daemon::load_config(&a.config, a.broker.as_deref(), a.device_id.as_deref())?;
    if !(a.drain_timeout.is_finite() && a.drain_timeout >= 0.0) {
        return Err("--drain-timeout: must be >= 0".into());
    }
    let s = daemon::run(
        cfg,
        RunOptions {
            exit_at_end: a.exit_at_end,
            drain_timeout: Duration::from_secs_f64(a.drain_timeout),
            summary: a.summary_json,
        },
    )?;
    eprintln!(
        "edgebind: stopped after {:.1} s: {} moments, {} event messages ({} acknowledged, {} left in the outbox)",
        s.seconds, s.moments, s.events, s.events_published, s.outbox_pending
    );
    if a.summary_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate a config: syntax and every field, then load its models and embed its concepts.
    Check(CheckArgs),
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file.
    pub file: PathBuf,
    /// Only the file itself: do not load models.
    #[arg(long)]
    pub syntax_only: bool,
    /// Broker override to validate too.
    #[arg(long)]
    pub broker: Option<String>,
    /// Device id override to validate too.
    #[arg(long)]
    pub device_id: Option<String>,
}

/// Runs `config check`: exit 0 if good, 1 with the error otherwise.
pub fn config(c: ConfigCmd) -> CmdResult {
    let ConfigCmd::Check(a) = c;
    let cfg = match daemon::load_config(&a.file, a.broker.as_deref(), a.device_id.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if a.syntax_only {
        println!("ok: {} parses and validates", a.file.display());
        return Ok(ExitCode::SUCCESS);
    }
    match daemon::check(&cfg) {
        Ok(s) => {
            println!("{}: {s}", a.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            Ok(ExitCode::from(1))
        }
    }
}
