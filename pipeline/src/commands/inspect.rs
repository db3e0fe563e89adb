//! `edgebind inspect FILE [--json] [--truth] [--sheet OUT.png]`.

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
    /// Write a contact sheet of the imagers (camera | depth | thermal side by side)
    /// as PNG: one row per situation of a simulated recording (moments where it
    /// alone is active), else four rows of evenly spaced moments. The legend
    /// (each row's moments) goes to stdout.
    #[arg(long, value_name = "OUT.png", conflicts_with_all = ["json", "truth"])]
    pub sheet: Option<PathBuf>,
    /// Moments per row of the sheet.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64), requires = "sheet")]
    pub per: u32,
    /// Height in pixels of every frame on the sheet (nearest-neighbour scaling).
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u32).range(16..=1024), requires = "sheet")]
    pub cell_height: u32,
}

/// Runs `inspect`. A damaged file prints what could be read, then the damage, and exits 1.
pub fn run(a: InspectArgs) -> CmdResult {
    if let Some(out) = &a.sheet {
        let sheet = super::sheet::contact_sheet(&a.file, a.per as usize, a.cell_height)?;
        sheet
            .image
            .save_with_format(out, image::ImageFormat::Png)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        super::print_stdout(&format!(
            "{}: {}x{} px\n{}",
            out.display(),
            sheet.image.width(),
            sheet.image.height(),
            sheet.legend()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
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
