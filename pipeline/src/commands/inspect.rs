//! `edgebind inspect FILE [--json] [--truth]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use edgebind_sensors::recording::inspect;

use super::CmdResult;

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The MCAP recording.
    pub file: PathBuf,
    /// Print one JSON object (`channels`: topic, modality, messages, rate_hz, ...) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print only the ground truth of a simulated recording: one line per span,
    /// `start - end s  situations` (monotonic seconds, as events show `mono`).
    #[arg(long, conflicts_with = "json")]
    pub truth: bool,
}

/// Runs `inspect`. A damaged file prints what could be read, then the damage, and exits 1.
pub fn run(a: InspectArgs) -> CmdResult {
    let info = inspect(&a.file).map_err(|e| e.to_string())?;
    if a.truth {
        if info.truth.is_empty() && info.error.is_none() {
            return Err(format!(
                "{}: no ground truth (only recordings of the simulated rig have /ground_truth)",
                a.file.display()
            ));
        }
        print!("{}", info.truth_text());
        if let Some(e) = &info.error {
            eprintln!("DAMAGED: {e}");
        }
    } else if a.json {
        let s = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        print!("{}", info.to_text());
    }
    Ok(if info.error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
