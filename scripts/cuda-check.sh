#!/usr/bin/env bash
# The CUDA training path on a GPU machine (no Rust or network needed there):
# built elsewhere by scripts/build-cuda-trainer.sh into
# target/edgebind-train-cuda.xz, plus a CPU `edgebind` (for `record`) as
# target/edgebind.xz. Prints step times (cuda vs cpu) and trains
# configs/train-cuda-smoke.toml on the GPU, then 20 steps of it on the CPU;
# the two loss curves (logs) are written to $OUT (or target/cuda-check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/cuda-check}
mkdir -p "$OUT"
nvidia-smi -L
xz -dc target/edgebind-train-cuda.xz >/tmp/et && chmod +x /tmp/et
xz -dc target/edgebind.xz >/tmp/ed && chmod +x /tmp/ed
# PyTorch's CUDA 13 wheels hold libcudart/libcublas/libcurand.
for f in $(find / -xdev -name 'libcublas.so.13' 2>/dev/null); do LIBS=${LIBS:-}:$(dirname "$f"); done
export LD_LIBRARY_PATH=${LIBS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd /tmp/et | grep -E "not found|libcud|cublas|curand"
set -x
/tmp/et bench --device cuda --plan configs/train-vision.toml --batch 64 --steps 20 2>&1 | tee "$OUT/bench-cuda.txt"
/tmp/et bench --device cuda --plan configs/train-bundle.toml --batch 64 --steps 20 2>&1 | tee -a "$OUT/bench-cuda.txt"
/tmp/et bench --device cuda --plan configs/train-vision.toml --batch 512 --steps 10 2>&1 | tee -a "$OUT/bench-cuda.txt"
RAYON_NUM_THREADS=1 /tmp/et bench --device cpu --plan configs/train-vision.toml --batch 64 --steps 3 2>&1 | tee "$OUT/bench-cpu.txt"
mkdir -p recordings
/tmp/ed record --config configs/sim-bundle.toml --seconds 900 --seed 7 -o recordings/cuda-smoke.mcap 2>&1 | tail -1
time /tmp/et bind configs/train-cuda-smoke.toml --device cuda 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -6
sed 's#trained/cuda-smoke"#trained/cuda-smoke-cpu"#' configs/train-cuda-smoke.toml >configs/.cuda-smoke-cpu.toml
RAYON_NUM_THREADS=1 /tmp/et bind configs/.cuda-smoke-cpu.toml --stop-after 20 -q 2>&1 | tail -2
cp trained/cuda-smoke/depth-log.json "$OUT/gpu-depth-log.json"
cp trained/cuda-smoke-cpu/depth-log.json "$OUT/cpu-depth-log.json"
python3 - "$OUT" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1] + "/gpu-depth-log.json"))
c = json.load(open(sys.argv[1] + "/cpu-depth-log.json"))
print("gpu steps/s", round(g["steps_per_s"], 2), "val", [(p["step"], round(p["loss"], 3)) for p in g["val"]])
print("train loss gpu vs cpu:", [(a["step"], round(a["loss"], 4), round(b["loss"], 4)) for a, b in zip(g["train"], c["train"])])
EOF
rm -f configs/.cuda-smoke-cpu.toml
