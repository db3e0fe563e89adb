#!/usr/bin/env bash
# Issue #3's benchmark: tract vs ONNX Runtime on the same ONNX files and thread
# counts, and edgebind's fbank vs torchaudio's kaldi fbank on the same input.
#
#   scripts/bench-vs-ort.sh            full run (Rust: median of 9, Python: median of 20)
#   scripts/bench-vs-ort.sh --quick    a few runs each (checks the plumbing)
#
# Runs `cargo bench -p edgebind-models --bench encoders` (EDGEBIND_BENCH_JSON)
# and models/scripts/bench_reference.py (set-up in its docstring; PYTHON,
# default /work/pyref/bin/python), then prints tract / ORT per case (target
# <= 1.1) and the fbank speedup over torchaudio (target >= 5). Both sides
# print their own tables first. Needs scripts/fetch-models.sh for the text
# tower. Measure on a quiet machine: the load average is printed. When the
# Python side's onnxruntime is found, the Rust bench is built with
# `--features tensorrt` and also runs the image anchor on tract and on that
# very libonnxruntime.so in one process, alternating run by run, so both
# sides see the same load (the "interleaved A/B" lines).
# BENCH_OUT=DIR keeps both JSON files (tract.json, ref.json) in DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
QUICK=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-vs-ort: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$PYTHON" ]] || { echo "bench-vs-ort: $PYTHON not found (set PYTHON; see models/scripts/bench_reference.py)" >&2; exit 1; }

if [[ -n "${BENCH_OUT:-}" ]]; then
  TMP="$BENCH_OUT"; mkdir -p "$TMP"
else
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
fi
# The same libonnxruntime.so the Python side loads, for the bench's
# interleaved in-process A/B of the image anchor (`--features tensorrt`: its
# ONNX Runtime backend falls back to the CPU kernels of this CPU-only build).
FEATURES=()
ORT_LIB=$("$PYTHON" - <<'PY' 2>/dev/null || true
import glob, os, onnxruntime
print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])
PY
)
if [[ -n "$ORT_LIB" ]]; then
  FEATURES=(--features tensorrt)
  export ORT_DYLIB_PATH="$ORT_LIB"
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && EDGEBIND_BENCH_JSON="$TMP/tract.json" \
  cargo bench -p edgebind-models "${FEATURES[@]}" --bench encoders -- "${QUICK[@]}")
echo
"$PYTHON" "$ROOT/models/scripts/bench_reference.py" "${QUICK[@]}" --json "$TMP/ref.json"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$TMP/tract.json" "$TMP/ref.json" <<'PY'
import json, sys
tract = {(c["case"], c["threads"], c["batch"]): c for c in json.load(open(sys.argv[1]))["cases"]}
ref = {(c["case"], c["threads"], c["batch"]): c for c in json.load(open(sys.argv[2]))["cases"]}
print(f"{'case':<19}{'threads':>8}{'batch':>6}{'tract ms/item':>15}{'ORT ms/item':>13}{'tract/ORT':>11}"
      f"{'vs ORT run()':>14}")
for key in sorted(tract, key=lambda k: (not k[0].startswith("image_anchor"), k)):
    # image_anchor_stock: tract's own kernels, against the same ORT figure.
    rkey = ("image_anchor",) + key[1:] if key[0] == "image_anchor_stock" else key
    if key[0] in ("fbank_3x2s", "image_anchor_ab", "image_anchor_ab_ort") or rkey not in ref:
        continue
    t, r = tract[key]["ms_per_item"], ref[rkey]["ms_per_item"]
    # text tower: ORT's `ms` includes tokenising and pooling in Python, as tract's
    # TextTower::embed does in Rust; run_ms is session.run alone (stricter for tract).
    run = ref[rkey].get("run_ms")
    alone = f"{t * key[2] / run:>14.2f}" if run else f"{'':>14}"
    flag = "" if t / r <= 1.1 else "   > 1.1"
    print(f"{key[0]:<19}{key[1]:>8}{key[2]:>6}{t:>15.2f}{r:>13.2f}{t / r:>11.2f}{alone}{flag}")
# The interleaved in-process A/B (same machine load on both sides).
for key in sorted(k for k in tract if k[0] == "image_anchor_ab"):
    okey = ("image_anchor_ab_ort",) + key[1:]
    if okey in tract:
        t, r = tract[key]["ms_per_item"], tract[okey]["ms_per_item"]
        flag = "" if t / r <= 1.1 else "   > 1.1"
        print(f"image anchor interleaved A/B in one process, {key[1]} thread(s), batch {key[2]}: "
              f"tract {t:.2f} ms, ONNX Runtime {r:.2f} ms per image: {t / r:.2f}{flag}")
key = ("fbank_3x2s", 1, 3)
if key in tract and key in ref:
    t, r = tract[key]["ms"], ref[key]["ms"]
    flag = "" if r / t >= 5 else "   < 5"
    print(f"fbank, 3 clips x 2 s at 16 kHz, 1 thread: edgebind {t:.2f} ms, torchaudio kaldi.fbank "
          f"{r:.2f} ms: {r / t:.1f}x faster{flag}")
PY
