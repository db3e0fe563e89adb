#!/usr/bin/env bash
# The demo (README): records 10 s of the simulated 5-sensor rig with seed 7 and
# inspects the recording. Open out.mcap in Foxglove to see the streams.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out.mcap}
edgebind() { cargo run -q --release --locked -p edgebind -- "$@"; }
edgebind record --rig sim --seed 7 --seconds 10 -o "$out"
edgebind inspect "$out"
