//! Per-operator time of an encoder's tract plan, with or without edgebind's
//! own kernels: where a model spends its time on this machine.
//!
//! ```text
//! cargo run --release -p edgebind-models --example op_profile -- MODEL.onnx [options]
//! cargo run --release -p edgebind-models --example op_profile -- --text [options]
//!
//!   MODEL.onnx   an ONNX file with a fixed item shape (e.g. models/zoo/image_anchor_mobilenetv2.onnx)
//!   --text       the text tower (scripts/fetch-models.sh), prompts of --tokens tokens
//!   --batch N    items per run (default 1)
//!   --tokens N   tokens per prompt with --text (default 10)
//!   --runs N     timed runs (default 100, after 5 untimed)
//!   --threads N  tract threads (default 1)
//!   --stock      tract's own kernels only (no edgebind rewrite)
//!   --nodes      one line per node (default: per operator type)
//! ```
//!
//! Each node is timed around `tract_core::plan::eval` inside
//! `SimpleState::run_plan_with_eval`; the first line is the whole run with
//! that timing in it. Inputs are synthetic (`i % 251 / 125 - 1` for images,
//! token ids 1000.. for text). Prints ms per run, the node count and, where
//! the operator reports one, GMAC/s.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use edgebind_models::backend::{fuse_convolutions, fuse_transformer};
use edgebind_models::text::default_dir;
use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_core::plan::{SimpleState, eval};
use tract_onnx::tract_hir::infer::Factoid;

struct Args {
    model: Option<String>,
    text: bool,
    batch: usize,
    tokens: usize,
    runs: usize,
    threads: usize,
    stock: bool,
    nodes: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        text: false,
        batch: 1,
        tokens: 10,
        runs: 100,
        threads: 1,
        stock: false,
        nodes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v: &usize| v > 0)
                .ok_or_else(|| format!("{name} needs a positive integer"))
        };
        match arg.as_str() {
            "--text" => a.text = true,
            "--stock" => a.stock = true,
            "--nodes" => a.nodes = true,
            "--batch" => a.batch = num("--batch")?,
            "--tokens" => a.tokens = num("--tokens")?,
            "--runs" => a.runs = num("--runs")?,
            "--threads" => a.threads = num("--threads")?,
            "-h" | "--help" => {
                let doc = include_str!("op_profile.rs");
                for line in doc.lines().take_while(|l| l.starts_with("//!")) {
                    println!("{}", line.trim_start_matches("//!").trim_start_matches(' '));
                }
                std::process::exit(0);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s} (try --help)")),
            s => a.model = Some(s.to_string()),
        }
    }
    if a.text == a.model.is_some() {
        return Err("give either MODEL.onnx or --text (try --help)".into());
    }
    Ok(a)
}

/// The optimised plan and its synthetic inputs.
fn build(a: &Args) -> TractResult<(std::sync::Arc<TypedSimplePlan>, TVec<TValue>)> {
    if a.text {
        let path = std::fs::canonicalize(default_dir().join("minilm-l6.onnx"))?;
        let mut typed = tract_onnx::onnx()
            .model_for_path(&path)?
            .into_typed()?
            .into_decluttered()?;
        if !a.stock {
            fuse_transformer(&mut typed)?;
        }
        let mut subs = HashMap::new();
        let ins = typed.input_outlets()?.to_vec();
        if let [TDim::Sym(b), TDim::Sym(s)] = typed.outlet_fact(ins[0])?.shape.to_tvec().as_slice()
        {
            subs.insert(b.clone(), a.batch.to_dim());
            subs.insert(s.clone(), a.tokens.to_dim());
        }
        let plan = typed
            .set_symbols(&subs)?
            .into_optimized()?
            .into_runnable()?;
        let m = plan.model();
        let inputs =
            m.input_outlets()?
                .iter()
                .map(|o| {
                    let name = m.node(o.node).name.as_str();
                    tract_ndarray::Array2::<i64>::from_shape_fn((a.batch, a.tokens), |(_, j)| {
                        match name {
                            "input_ids" if j == 0 => 101,
                            "input_ids" => 1000 + j as i64,
                            "attention_mask" => 1,
                            _ => 0,
                        }
                    })
                    .into_tensor()
                    .into()
                })
                .collect();
        return Ok((plan, inputs));
    }
    let path = a.model.as_deref().unwrap_or_default();
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    let fact = model.input_fact(0)?.clone();
    let dims = fact
        .shape
        .dims()
        .skip(1)
        .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| anyhow::anyhow!("{path}: the input's item dimensions must be fixed"))?;
    let mut shape = vec![a.batch];
    shape.extend(&dims);
    model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape.clone()))?;
    let mut typed = model.into_typed()?;
    if !a.stock {
        fuse_convolutions(&mut typed)?;
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    let n: usize = shape.iter().product();
    let x = tract_ndarray::ArrayD::from_shape_vec(
        shape,
        (0..n).map(|i| (i % 251) as f32 / 125.0 - 1.0).collect(),
    )?;
    Ok((plan, tvec!(x.into_tensor().into())))
}

fn profile(a: &Args) -> TractResult<()> {
    let (plan, inputs) = build(a)?;
    let mut state = SimpleState::new(&plan)?;
    for _ in 0..5 {
        state.run(inputs.clone())?;
    }
    let mut per: HashMap<usize, f64> = HashMap::new();
    let t0 = Instant::now();
    for _ in 0..a.runs {
        state.run_plan_with_eval(inputs.clone(), |ctx, st, node, input| {
            let t = Instant::now();
            let r = eval(ctx, st, node, input);
            *per.entry(node.id).or_default() += t.elapsed().as_secs_f64();
            r
        })?;
    }
    let runs = a.runs as f64;
    let total = t0.elapsed().as_secs_f64() * 1e3 / runs;
    let m = plan.model();
    // (ms per run, nodes, multiply-adds) per row.
    let mut rows: HashMap<String, (f64, usize, f64)> = HashMap::new();
    for (id, t) in &per {
        let node = m.node(*id);
        let facts: Vec<&TypedFact> = node
            .inputs
            .iter()
            .filter_map(|o| m.outlet_fact(*o).ok())
            .collect();
        let macs: f64 = node
            .op
            .cost(&facts)
            .map(|c| {
                c.iter()
                    .filter(|(k, _)| matches!(k, Cost::FMA(_)))
                    .filter_map(|(_, d)| d.to_usize().ok())
                    .sum::<usize>() as f64
            })
            .unwrap_or(0.0);
        let key = if a.nodes {
            let shape = m
                .outlet_fact(OutletId::new(*id, 0))
                .map(|f| format!("{:?}", f.shape))
                .unwrap_or_default();
            format!("{} {} {shape}", node.op.name(), node.name)
        } else {
            node.op.name().to_string()
        };
        let e = rows.entry(key).or_default();
        e.0 += t * 1e3 / runs;
        e.1 += 1;
        e.2 += macs;
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|x, y| y.1.0.total_cmp(&x.1.0));
    println!(
        "{total:.3} ms per run of {} item(s) ({} threads, {} kernels, {} runs)",
        a.batch,
        a.threads,
        if a.stock {
            "tract's"
        } else {
            "edgebind's + tract's"
        },
        a.runs
    );
    println!(
        "{:>9} {:>6} {:>6} {:>8}  what",
        "ms/run", "share", "nodes", "GMAC/s"
    );
    for (key, (ms, count, macs)) in rows {
        let rate = if macs > 0.0 && ms > 0.0 {
            format!("{:.1}", macs / ms / 1e6)
        } else {
            String::new()
        };
        println!(
            "{ms:>9.3} {:>5.1}% {count:>6} {rate:>8}  {key}",
            100.0 * ms / total
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("op_profile: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if a.threads > 1 {
        multithread_tract_scope(Executor::multithread(a.threads), || profile(&a))
    } else {
        profile(&a)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("op_profile: {e:#}");
            ExitCode::FAILURE
        }
    }
}
