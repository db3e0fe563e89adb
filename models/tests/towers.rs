//! The real towers: the all-MiniLM-L6-v2 text tower (files from
//! `scripts/fetch-models.sh`) against sentence-transformers, and the bundled
//! MobileNetV2 image anchor (`models/zoo/`) against its PyTorch pipeline and on
//! real photos ranked against text prompts, all through tract.
//!
//! `cargo test -p edgebind-models --test towers -- --nocapture` prints the figures.

use std::path::{Path, PathBuf};

use edgebind_models::backend::tract::TractEncoder;
use edgebind_models::backend::{BackendOptions, Encoder};
use edgebind_models::contract::Preprocess;
use edgebind_models::preprocess::vision::preprocess_rgb8;
use edgebind_models::space::Embedding;
use edgebind_models::text::{PLAN_AFTER, PLAN_CACHE_SIZE, TEXT_SPACE, TextTower, default_dir};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .to_path_buf()
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tower() -> TextTower {
    TextTower::load(&default_dir())
        .unwrap_or_else(|e| panic!("{e}\n(the text tower comes from scripts/fetch-models.sh)"))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn text_tower_matches_sentence_transformers() {
    let t = tower();
    let r = json("fixtures/text/reference.json");
    let sentences = r["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 20);
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    // One batch (padded to the longest) and one at a time must both match.
    let batch = t.embed(&texts).unwrap();
    let mut worst = 1f32;
    for (i, s) in sentences.iter().enumerate() {
        let want = floats(&s["embedding"]);
        let ids: Vec<u64> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let got_ids: Vec<u64> = t
            .token_ids(texts[i])
            .unwrap()
            .into_iter()
            .map(u64::from)
            .collect();
        assert_eq!(got_ids, ids, "{}: token ids", s["name"]);
        let single = &t.embed(&texts[i..i + 1]).unwrap()[0];
        let c_batch = cos(&batch[i].vector, &want);
        let c_single = cos(&single.vector, &want);
        worst = worst.min(c_batch).min(c_single);
        println!(
            "text {:<28} tokens {:>3}  cosine batch {c_batch:.7} single {c_single:.7}",
            s["name"].as_str().unwrap(),
            ids.len()
        );
        assert!(
            c_batch >= 0.999 && c_single >= 0.999,
            "{}: {c_batch} / {c_single}",
            s["name"]
        );
        assert_eq!(&*batch[i].space, TEXT_SPACE);
    }
    println!(
        "text tower: worst cosine vs sentence-transformers over {} sentences: {worst:.7}",
        texts.len()
    );
    // edgebind's dense-layer and attention kernels (models/src/backend/
    // linear.rs, attention.rs) against tract's own plan, on 1 and 2 threads
    // (prompts of 7-40 tokens: ragged row tiles, padded keys).
    assert_eq!(t.native_nodes(), 36 + 6);
    let stock = TextTower::load_stock(&default_dir()).unwrap();
    assert_eq!(stock.native_nodes(), 0);
    let want = stock.embed(&texts).unwrap();
    let two = tract_linalg::multithread::Executor::multithread(2);
    let threaded =
        tract_linalg::multithread::multithread_tract_scope(two, || t.embed(&texts).unwrap());
    for (name, got) in [("1 thread", &batch), ("2 threads", &threaded)] {
        let max = got
            .iter()
            .zip(&want)
            .flat_map(|(g, w)| g.vector.iter().zip(&w.vector).map(|(a, b)| (a - b).abs()))
            .fold(0f32, f32::max);
        println!("text tower, edgebind kernels vs tract's, {name}: max abs diff {max:e}");
        assert!(max <= 1e-5, "{name}: max abs diff {max:e} vs tract's plan");
    }
    // Paraphrases land together, unrelated texts apart.
    for p in r["pairs"].as_array().unwrap() {
        let find = |n: &str| sentences.iter().position(|s| s["name"] == n).unwrap();
        let (a, b) = (
            find(p["a"].as_str().unwrap()),
            find(p["b"].as_str().unwrap()),
        );
        let c = batch[a].cosine(&batch[b]).unwrap();
        assert!(
            (c - p["cosine"].as_f64().unwrap() as f32).abs() < 1e-3,
            "{p}: {c}"
        );
    }
}

#[test]
fn text_tower_plan_cache_is_bounded_and_consistent() {
    let t = tower();
    // More distinct shapes (batch, tokens) than the cache holds.
    let texts = [
        "a dog",
        "a dog barking",
        "a dog barking in the yard",
        "a dog barking in the yard at night",
        "a dog barking in the yard at night while it rains",
        "a dog barking in the yard at night while it rains hard on the roof",
    ];
    let first: Vec<Embedding> = texts
        .iter()
        .map(|x| t.embed(&[x]).unwrap().remove(0))
        .collect();
    // A shape is planned only once it recurs (PLAN_AFTER calls).
    assert!(t.cached_shapes().is_empty());
    for x in &texts {
        for _ in 1..PLAN_AFTER {
            t.embed(&[x]).unwrap();
        }
    }
    let pair = (0..PLAN_AFTER)
        .map(|_| t.embed(&texts[..2]).unwrap())
        .last()
        .unwrap();
    let shapes = t.cached_shapes();
    assert_eq!(shapes.len(), PLAN_CACHE_SIZE, "{shapes:?}");
    let pair_shape = (2, t.token_ids(texts[1]).unwrap().len());
    assert_eq!(
        shapes.last(),
        Some(&pair_shape),
        "most recent last: {shapes:?}"
    );
    // Cached shapes, evicted shapes and a batch all give the same embeddings,
    // also from several threads at once.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for (x, want) in texts.iter().zip(&first).rev() {
                    let got = t.embed(&[x]).unwrap().remove(0);
                    let c = got.cosine(want).unwrap();
                    assert!(c > 0.99999, "{x}: cosine {c} with its first embedding");
                }
            });
        }
    });
    for (got, want) in pair.iter().zip(&first) {
        assert!(got.cosine(want).unwrap() > 0.99999);
    }
    assert!(t.cached_shapes().len() <= PLAN_CACHE_SIZE);
}

#[test]
fn image_anchor_matches_pytorch_and_ranks_photos_with_text() {
    let e = json("fixtures/image_anchor/expected.json");
    let enc = TractEncoder::load(
        &root().join("zoo/image_anchor_mobilenetv2.onnx"),
        &BackendOptions::default(),
    )
    .unwrap();
    // edgebind's kernels run all 17 depthwise and 34 pointwise convolutions
    // and the stem (3 -> 32, 3x3, stride 2); tract's own kernels (the stock plan) and a 2-thread batch-2 plan must
    // agree with them.
    assert_eq!(enc.native_nodes(), 17 + 34 + 1);
    let path = root().join("zoo/image_anchor_mobilenetv2.onnx");
    let stock = TractEncoder::load_stock(&path, &BackendOptions::default()).unwrap();
    assert_eq!(stock.native_nodes(), 0);
    let batched = TractEncoder::load(
        &path,
        &BackendOptions {
            threads: 2,
            max_batch: 2,
        },
    )
    .unwrap();
    assert_eq!(batched.native_nodes(), 17 + 34 + 1);
    assert_eq!(enc.contract().space, TEXT_SPACE);
    let Preprocess::Vision(vp) = &enc.contract().preprocess else {
        panic!("vision contract expected")
    };
    let t = tower();
    let prompts: Vec<&str> = e["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    let prompt_embs: Vec<Embedding> = t.embed(&prompts).unwrap();
    // The Rust text tower gives the prompt embeddings the Python side used.
    for (p, got) in e["prompts"].as_array().unwrap().iter().zip(&prompt_embs) {
        assert!(
            cos(&got.vector, &floats(&p["embedding"])) > 0.9999,
            "{}",
            p["text"]
        );
    }
    let mut first = 0;
    let images = e["images"].as_array().unwrap();
    for img in images {
        let name = img["name"].as_str().unwrap();
        let rgb =
            std::fs::read(root().join("fixtures").join(img["input"].as_str().unwrap())).unwrap();
        let (w, h) = (
            img["width"].as_u64().unwrap() as usize,
            img["height"].as_u64().unwrap() as usize,
        );
        let x = preprocess_rgb8(&rgb, w, h, vp).unwrap();
        let emb = &enc.encode(std::slice::from_ref(&x)).unwrap()[0];
        let diff = |a: &Embedding, b: &Embedding| {
            a.vector
                .iter()
                .zip(&b.vector)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max)
        };
        let stock_diff = diff(emb, &stock.encode(std::slice::from_ref(&x)).unwrap()[0]);
        assert!(
            stock_diff <= 1e-5,
            "{name}: edgebind kernels vs tract's own: {stock_diff}"
        );
        for b in batched.encode(&[x.clone(), x]).unwrap() {
            let d = diff(emb, &b);
            assert!(d <= 1e-5, "{name}: 2 threads, batch 2 vs 1 thread: {d}");
        }
        let want = floats(&img["embedding"]);
        let max = emb
            .vector
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max <= 1e-4, "{name}: embedding max abs diff {max}");
        let mut ranked: Vec<(f32, &str)> = prompt_embs
            .iter()
            .zip(&prompts)
            .map(|(p, s)| (emb.cosine(p).unwrap(), *s))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected_top = img["prompt_ranking"][0]["prompt"].as_str().unwrap();
        println!(
            "image {name:<16} max diff vs PyTorch {max:.1e}, vs tract's own kernels {stock_diff:.1e}; top prompts: {}",
            ranked
                .iter()
                .take(3)
                .map(|(c, s)| format!("{s} ({c:.3})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(ranked[0].1, expected_top, "{name}");
        if matches!(
            (name, ranked[0].1),
            ("chelsea", "a cat") | ("coffee", "a cup of coffee")
        ) {
            first += 1;
        }
    }
    assert_eq!(
        first, 2,
        "the cat and the coffee photos rank their own prompt first"
    );
}
