//! `edgebind`: the edge daemon's command-line tool.
//!
//! `run` is the daemon; `config check` validates its config; `listen` and
//! `query` talk to a running daemon over MQTT; `record` and `inspect` make and
//! read recordings; `preprocess` and `embed` show what an encoder receives and
//! returns for one input file.

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
    /// Run the daemon: sensors -> encoders -> concepts -> MQTT events.
    Run(commands::run::RunArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(commands::run::ConfigCmd),
    /// Print a daemon's events as they arrive (an MQTT subscriber).
    Listen(commands::client::ListenArgs),
    /// Search a running daemon's history by text.
    Query(commands::client::QueryArgs),
    /// Record a rig's streams (and the sim's ground truth) to an MCAP file.
    Record(commands::record::RecordArgs),
    /// Record a slideshow of photos as a camera stream (see configs/photos.toml).
    Slideshow(commands::client::SlideshowArgs),
    /// Print a recording's channels, message counts, rates and time span.
    Inspect(commands::inspect::InspectArgs),
    /// Real sensors: `sensors list` shows the attached cameras, microphones and IMUs.
    Sensors(commands::sensors::SensorsArgs),
    /// Write the tensor an encoder receives for one input file (WAV, PNG/JPEG, CSV) as .npy.
    Preprocess(commands::preprocess::PreprocessArgs),
    /// Embed one input file with an encoder, or a text with the text tower.
    Embed(commands::embed::EmbedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => commands::run::run(a),
        Command::Config(c) => commands::run::config(c),
        Command::Listen(a) => commands::client::listen(a),
        Command::Query(a) => commands::client::query(a),
        Command::Slideshow(a) => commands::client::slideshow(a),
        Command::Record(a) => commands::record::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Sensors(a) => commands::sensors::run(a),
        Command::Preprocess(a) => commands::preprocess::run(a),
        Command::Embed(a) => commands::embed::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
