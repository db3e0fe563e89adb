//! `edgebind`: the edge daemon's command-line tool.
//!
//! Today it records rigs to MCAP and inspects recordings; the daemon (`run`)
//! builds on the same sensor layer.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod rig_config;

/// edgebind: one embedding space for camera, microphone, depth, thermal and IMU, on the edge.
#[derive(Debug, Parser)]
#[command(name = "edgebind", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record a rig's streams (and the sim's ground truth) to an MCAP file.
    Record(commands::record::RecordArgs),
    /// Print a recording's channels, message counts, rates and time span.
    Inspect(commands::inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(a) => commands::record::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
