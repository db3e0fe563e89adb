#!/usr/bin/env bash
# Builds `edgebind-train --features cuda` on a machine WITHOUT a GPU or a CUDA
# install, for a CUDA 13 machine (driver >= 580, e.g. an H100 box with
# PyTorch cu130, or a Jetson Thor): nvcc and the headers come from NVIDIA's
# PyPI wheels, the libraries are linked against link-only stubs (same soname
# and symbols; the real ones are loaded where the binary runs).
#
#   scripts/build-cuda-trainer.sh [OUT.xz]     # default target/edgebind-train-cuda.xz
#
# Environment: CUDA13_DIR (default ~/.cache/edgebind/cuda13, ~300 MB),
# CUDA_COMPUTE_CAP (default 90 = Hopper; 87 Orin, 110 Thor), CARGO_TARGET_DIR
# (default ~/.cache/edgebind/target-cuda). A cold release build takes ~20 min
# on 2 cores. Where it runs: LD_LIBRARY_PATH must reach libcudart.so.13,
# libcublas.so.13 and libcurand.so.10 (PyTorch's wheels:
# site-packages/nvidia/cu13/lib), libcuda.so.1 comes with the driver.
# Versions: torch 2.11.0+cu130 pins cuda-toolkit 13.0.2, whose parts are
# pinned below; PTX from a newer nvcc would not load on a 13.0 driver.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_XZ=${1:-target/edgebind-train-cuda.xz}
CUDA13_DIR=${CUDA13_DIR:-$HOME/.cache/edgebind/cuda13}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/edgebind/target-cuda}
WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
)

# A link-only stub of shared library $1 in folder $2: same soname, same
# exported functions and objects, same version node; every function returns $3.
stub() {
  local real=$1 out=$2 ret=$3 work soname vers vflag=()
  work=$(mktemp -d)
  soname=$(readelf -d "$real" | awk '/SONAME/{gsub(/[][]/,"",$NF); print $NF}')
  readelf --dyn-syms -W "$real" |
    awk 'NR>3 && $7!="UND" && $7!="ABS" && ($4=="FUNC"||$4=="OBJECT") {print $4, $8}' |
    sed 's/@.*//' | sort -u -k2 >"$work/syms"
  vers=$(readelf --dyn-syms -W "$real" | awk 'NR>3 && $7!="UND"{print $8}' |
    grep -o '@@.*' | sort -u | head -1 | sed 's/@@//' || true)
  awk -v r="$ret" '$1=="FUNC"{print "int " $2 "(void){return " r ";}"} $1=="OBJECT"{print "char " $2 "[8];"}' \
    "$work/syms" >"$work/stub.c"
  if [ -n "$vers" ]; then
    { echo "$vers {"; echo " global:"; awk '{print "  " $2 ";"}' "$work/syms"; echo " local: *;"; echo "};"; } >"$work/vers.map"
    vflag=(-Wl,--version-script="$work/vers.map")
  fi
  gcc -shared -fPIC -O0 -fno-builtin -w -o "$work/$soname" -Wl,-soname,"$soname" "${vflag[@]}" "$work/stub.c"
  rm -f "$out/$soname" && mv "$work/$soname" "$out/$soname"
  echo "stub $soname: $(wc -l <"$work/syms") symbols, version node '${vers:-none}'"
  rm -rf "$work"
}

if [ ! -x "$CUDA13_DIR/bin/nvcc" ]; then
  echo "== CUDA 13.0 toolchain from PyPI -> $CUDA13_DIR"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.12 \
    -d "$tmp" "${WHEELS[@]}"
  mkdir -p "$tmp/x"
  for w in "$tmp"/*.whl; do python3 -m zipfile -e "$w" "$tmp/x"; done
  rm -rf "$CUDA13_DIR" && mkdir -p "$(dirname "$CUDA13_DIR")"
  mv "$tmp/x/nvidia/cu13" "$CUDA13_DIR" && rm -rf "$tmp"
  chmod +x "$CUDA13_DIR"/bin/* "$CUDA13_DIR"/bin/crt/* "$CUDA13_DIR"/nvvm/bin/* 2>/dev/null || true
  ln -sfn lib "$CUDA13_DIR/lib64"
  # The big libraries are only linked against here: replace them by stubs.
  for l in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    real=$(readlink -f "$CUDA13_DIR/lib/$l")
    stub "$real" "$CUDA13_DIR/lib" 1
    [ "$real" != "$CUDA13_DIR/lib/$l" ] && rm -f "$real"
    ln -sfn "$l" "$CUDA13_DIR/lib/${l%%.so*}.so"
  done
  ln -sfn libcudart.so.13 "$CUDA13_DIR/lib/libcudart.so"   # real: candle-kernels links it
fi

if [ ! -e "$CUDA13_DIR/lib/stubs/libcuda.so" ]; then
  echo "== libcuda.so stub (the driver API that cudarc declares)"
  cargo fetch --locked -q
  sys=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.*/src/driver/sys | tail -1)
  mkdir -p "$CUDA13_DIR/lib/stubs"
  grep -rhoE "pub (unsafe )?fn cu[A-Za-z0-9_]+" "$sys" | awk '{print $NF}' | sort -u |
    awk '{print "int " $1 "(void){return 34; /* CUDA_ERROR_STUB_LIBRARY */}"}' >"$CUDA13_DIR/lib/stubs/libcuda_stub.c"
  gcc -shared -fPIC -O0 -fno-builtin -w -Wl,-soname,libcuda.so.1 \
    -o "$CUDA13_DIR/lib/stubs/libcuda.so.1" "$CUDA13_DIR/lib/stubs/libcuda_stub.c"
  ln -sfn libcuda.so.1 "$CUDA13_DIR/lib/stubs/libcuda.so"
fi

export PATH=$CUDA13_DIR/bin:$PATH
export CUDA_ROOT=$CUDA13_DIR CUDA_PATH=$CUDA13_DIR CUDA_HOME=$CUDA13_DIR CUDA_TOOLKIT_ROOT_DIR=$CUDA13_DIR
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH=$CUDA13_DIR/lib:$CUDA13_DIR/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
echo "== cargo build --release -p edgebind-trainer --features cuda (compute capability $CUDA_COMPUTE_CAP)"
cargo build --release --locked -p edgebind-trainer --features cuda --bin edgebind-train
mkdir -p "$(dirname "$OUT_XZ")"
strip -o "$OUT_XZ.bin" "$CARGO_TARGET_DIR/release/edgebind-train"
xz -9 -T1 -c "$OUT_XZ.bin" >"$OUT_XZ" && rm -f "$OUT_XZ.bin"
echo "wrote $OUT_XZ ($(stat -c %s "$OUT_XZ") bytes); needs: $(readelf -d "$CARGO_TARGET_DIR/release/edgebind-train" | awk '/NEEDED/{gsub(/[][]/,"",$NF); printf "%s ", $NF}')"
