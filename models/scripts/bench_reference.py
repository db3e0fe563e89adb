#!/usr/bin/env python3
"""Reference figures for issue #3's benchmark: ONNX Runtime latency on the same
ONNX files tract runs, and torchaudio's kaldi fbank on the same input as the
Rust fbank bench.  `scripts/bench-vs-ort.sh` runs this next to
`cargo bench -p edgebind-models --bench encoders` and prints the ratios.

What is measured (median of --runs timed runs after --warmup untimed ones)
---------------------------------------------------------------------------
* image anchor: `models/zoo/image_anchor_mobilenetv2.onnx`, input the Rust
  bench's synthetic image (value i % 251 / 125 - 1), batch 1 and 8;
* text tower: `$EDGEBIND_MODELS/text/minilm-l6.onnx` (default
  `~/.cache/edgebind/models/text/`), loaded by path exactly as tract loads it:
  the committed graph `models/zoo/minilm-l6.graph.onnx` whose initializers are
  ONNX external data (location/offset/length) inside the `model.safetensors`
  beside it.  onnxruntime resolves that external data itself, so both engines
  read the very same two files; no full ONNX is materialised.  The prompts are
  the Rust bench's ("a dog barking in a yard number {i}", 10 tokens with
  [CLS]/[SEP]), batch 1, 8 and 16.  `ms` is what `TextTower::embed` does:
  tokenise (HF `tokenizers`, truncation 256, padding to the longest) + run +
  mean pooling over the mask + L2 normalisation; `run_ms` is the
  `InferenceSession.run` call alone;
* both encoders on intra_op_num_threads 1 and 2, inter_op_num_threads 1,
  ORT_SEQUENTIAL, default graph optimisation (ORT_ENABLE_ALL), CPU provider;
* fbank: `torchaudio.compliance.kaldi.fbank` (torchaudio 2.11.0's Python
  source, the way `make_fixtures.py` loads it: from the wheel, without its C
  extension; fbank is plain torch ops) with ImageBind's parameters (128 mel,
  25/10 ms, hanning, htk_compat, no energy, dither 0) on 3 clips of
  2 s at 16 kHz (0.3 sin(0.031 i), float32), torch.set_num_threads(1).

Setting up (the /work/pyref venv of `make_fixtures.py`)
-------------------------------------------------------
    python3.11 -m venv /work/pyref
    /work/pyref/bin/pip install -r models/scripts/requirements-fixtures.txt   # torch, numpy
    /work/pyref/bin/pip install onnxruntime==1.32.0 tokenizers
    mkdir -p /work/pyref/torchaudio-wheel
    /work/pyref/bin/pip download --no-deps torchaudio==2.11.0 -d /work/pyref/torchaudio-wheel
    scripts/fetch-models.sh                                                   # text tower files

Running
-------
    /work/pyref/bin/python models/scripts/bench_reference.py [--runs 20] [--json out.json]
    scripts/bench-vs-ort.sh      # this + the Rust bench + the ratio table

Tested with onnxruntime 1.32.0, torch 2.15.0, tokenizers 0.23.3, numpy 2.4.6
(Python 3.11).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from torchaudio_ref import TORCHAUDIO_VERSION, find_wheel, load_torchaudio_reference

REPO = Path(__file__).resolve().parents[2]
IMAGE_ANCHOR = REPO / "models" / "zoo" / "image_anchor_mobilenetv2.onnx"
FBANK_KWARGS = dict(
    sample_frequency=16000,
    htk_compat=True,
    use_energy=False,
    window_type="hanning",
    num_mel_bins=128,
    dither=0.0,
    frame_length=25,
    frame_shift=10,
)


def text_dir() -> Path:
    base = os.environ.get("EDGEBIND_MODELS")
    return (Path(base) if base else Path.home() / ".cache" / "edgebind" / "models") / "text"


def median_ms(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bench_image_anchor(threads: int, runs: int, warmup: int) -> list[dict]:
    sess = session(IMAGE_ANCHOR, threads)
    img = ((np.arange(3 * 224 * 224) % 251).astype(np.float32) / np.float32(125.0) - 1).reshape(3, 224, 224)
    out = []
    for batch in (1, 8):
        x = {"image": np.ascontiguousarray(np.broadcast_to(img, (batch, 3, 224, 224)))}
        ms = median_ms(lambda: sess.run(["embedding"], x), runs, warmup)
        out.append({"case": "image_anchor", "threads": threads, "batch": batch, "ms": ms,
                    "ms_per_item": ms / batch})
    return out


def bench_text_tower(threads: int, runs: int, warmup: int) -> list[dict]:
    from tokenizers import Tokenizer

    d = text_dir()
    sess = session(d / "minilm-l6.onnx", threads)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of the batch, on the right
    prompts = [f"a dog barking in a yard number {i}" for i in range(16)]

    def feed(texts):
        encs = tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def embed(texts):
        f = feed(texts)
        h = sess.run(["last_hidden_state"], f)[0]
        m = f["attention_mask"][..., None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    out = []
    for batch in (1, 8, 16):
        texts = prompts[:batch]
        f = feed(texts)
        ms = median_ms(lambda: embed(texts), runs, warmup)
        run_ms = median_ms(lambda: sess.run(["last_hidden_state"], f), runs, warmup)
        out.append({"case": "text_tower", "threads": threads, "batch": batch, "ms": ms,
                    "ms_per_item": ms / batch, "run_ms": run_ms, "tokens": int(f["input_ids"].shape[1])})
    return out


def bench_fbank(wheel: Path | None, runs: int, warmup: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        kaldi, _, _ = load_torchaudio_reference(find_wheel(str(wheel) if wheel else None), Path(d))
    clip = torch.from_numpy(np.sin(np.arange(32000, dtype=np.float32) * np.float32(0.031))
                            * np.float32(0.3))[None, :]

    def three():
        for _ in range(3):
            fb = kaldi.fbank(clip, **FBANK_KWARGS)
        assert fb.shape == (198, 128)

    with torch.inference_mode():
        ms = median_ms(three, runs, warmup)
    return [{"case": "fbank_3x2s", "threads": 1, "batch": 3, "ms": ms, "ms_per_item": ms / 3}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per case (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts, comma-separated")
    ap.add_argument("--quick", action="store_true", help="3 runs, 1 warm-up (checks the script)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--torchaudio-wheel", type=Path, help="torchaudio 2.11.0 wheel (see docstring)")
    a = ap.parse_args()
    runs, warmup = (3, 1) if a.quick else (a.runs, a.warmup)
    threads = [int(t) for t in a.threads.split(",")]

    import onnxruntime as ort
    import torch

    cases = []
    for t in threads:
        cases += bench_image_anchor(t, runs, warmup)
    if (text_dir() / "minilm-l6.onnx").is_file():
        for t in threads:
            cases += bench_text_tower(t, runs, warmup)
    else:
        print(f"text tower skipped: {text_dir() / 'minilm-l6.onnx'} missing (run scripts/fetch-models.sh)")
    cases += bench_fbank(a.torchaudio_wheel, runs, warmup)

    print(f"reference bench: onnxruntime {ort.__version__}, torch {torch.__version__}, "
          f"torchaudio {TORCHAUDIO_VERSION} kaldi.py (median of {runs} runs after {warmup} warm-up)")
    print(f"{'case':<14}{'threads':>8}{'batch':>6}{'ms/call':>10}{'ms/item':>10}  note")
    for c in cases:
        engine = "torchaudio" if c["case"] == "fbank_3x2s" else "onnxruntime"
        note = engine
        if "run_ms" in c:
            note += f", {c['tokens']} tokens; session.run alone {c['run_ms']:.2f} ms"
        print(f"{c['case']:<14}{c['threads']:>8}{c['batch']:>6}{c['ms']:>10.2f}{c['ms_per_item']:>10.2f}  {note}")
    if a.json:
        doc = {"engine": "reference", "onnxruntime": ort.__version__, "torch": torch.__version__,
               "torchaudio": TORCHAUDIO_VERSION, "runs": runs, "warmup": warmup,
               "machine": platform.processor() or platform.machine(), "loadavg": os.getloadavg(),
               "cases": cases}
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
