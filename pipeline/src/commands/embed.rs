//! `edgebind embed`: one input file through an encoder (or a text through the
//! text tower) -> its embedding, as the daemon would compute it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::contract::ContractModality;
use edgebind_models::space::Embedding;
use edgebind_models::text::TextTower;

use super::{CmdResult, inputs, preprocess, print_stdout};

/// Arguments of `embed`.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).args(["model", "text"])),
    after_long_help = EMBED_HELP
)]
pub struct EmbedArgs {
    /// An encoder (ONNX with a contract, or with a sidecar NAME.contract.toml), run by tract.
    #[arg(long, requires = "input")]
    pub model: Option<PathBuf>,
    /// The input file for --model, in the format of the encoder's modality
    /// (see `edgebind preprocess --help`).
    #[arg(long, requires = "model")]
    pub input: Option<PathBuf>,
    /// A text to embed with the text tower instead.
    #[arg(long)]
    pub text: Option<String>,
    /// The text tower's directory (default: $EDGEBIND_MODELS/text, else
    /// ~/.cache/edgebind/models/text; filled by scripts/fetch-models.sh).
    #[arg(long, requires = "text")]
    pub text_dir: Option<PathBuf>,
    /// Print one JSON object {"space", "modality", "embedding"} instead of text.
    #[arg(long)]
    pub json: bool,
}

const EMBED_HELP: &str = "\
The input is preprocessed with the encoder's own contract (the daemon's
preprocessing) and encoded on the CPU. Audio gives one item per clip: their
embeddings are averaged and re-normalised, as ImageBind and the daemon do. A
still image given to a 2-frame clip contract is repeated (a clip with no
motion). Embeddings are unit length.

Output: a header line `space=SPACE modality=MODALITY dim=N`, then the N values,
8 per line; with --json one object on one line:
  {\"space\":\"minilm-l6-v2-text\",\"modality\":\"vision\",\"embedding\":[...]}

Examples:
  edgebind embed --model models/zoo/image_anchor_mobilenetv2.onnx --input cat.jpg
  edgebind embed --text \"a cat\" --json";

/// Runs `embed`: a bad input, model or text tower exits 1 with the reason.
pub fn run(a: EmbedArgs) -> CmdResult {
    let result = match (&a.model, &a.input, &a.text) {
        (Some(model), Some(input), None) => embed_file(model, input),
        (None, None, Some(text)) => embed_text(text, a.text_dir.as_deref()),
        _ => return Err("give --model MODEL --input FILE, or --text TEXT".into()),
    };
    let (e, modality) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let text = if a.json {
        let v = serde_json::json!({
            "space": &*e.space,
            "modality": modality.as_str(),
            "embedding": e.vector,
        });
        format!("{v}\n")
    } else {
        let mut s = format!(
            "space={} modality={} dim={}\n",
            e.space,
            modality.as_str(),
            e.vector.len()
        );
        for row in e.vector.chunks(8) {
            let row: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            s.push_str(&row.join(" "));
            s.push('\n');
        }
        s
    };
    if let Err(e) = print_stdout(&text) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn embed_text(text: &str, dir: Option<&Path>) -> Result<(Embedding, ContractModality), String> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(edgebind_models::text::default_dir);
    let tower = TextTower::load(&dir).map_err(|e| format!("text tower: {e}"))?;
    let e = tower
        .embed(&[text])
        .map_err(|e| format!("text tower: {e}"))?
        .pop()
        .ok_or("text tower: no embedding")?;
    Ok((e, ContractModality::Text))
}

fn embed_file(model: &Path, input: &Path) -> Result<(Embedding, ContractModality), String> {
    // A missing input fails before the model is prepared.
    let bytes = inputs::read(input)?;
    let enc = TractEncoder::load(model, &BackendOptions::default()).map_err(|e| e.to_string())?;
    let c = enc.contract();
    if c.modality == ContractModality::Text {
        return Err(format!(
            "model {} is a text encoder: embed text with --text",
            model.display()
        ));
    }
    let items = preprocess::items(c, input, &bytes).map_err(|e| {
        format!(
            "model {} encodes {}: {e}",
            model.display(),
            c.modality.as_str()
        )
    })?;
    let embs = enc.encode(&items).map_err(|e| e.to_string())?;
    let e = edgebind::daemon::window_embedding(&embs)
        .map_err(|e| format!("model {}: {e}", model.display()))?;
    Ok((e, c.modality))
}
