#!/usr/bin/env bash
# The demo (README): the edgebind daemon (configs/demo.toml) watches a camera
# that shows real photos one after another (a replayed recording made from
# configs/photos.toml), embeds each frame with the real image anchor
# (models/zoo/image_anchor_mobilenetv2.onnx, no training), matches the
# text-defined concepts "a cat", "a cup of coffee" and "a rocket", and publishes
# events on its embedded MQTT broker (127.0.0.1:1883); `edgebind listen` prints
# them as they arrive. About 30 s once built.
# (Until the bundled encoders of the simulated rig exist, the demo runs on this
# real-photo replay; `edgebind record --rig sim` records the simulated rig.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh --no-int8 >/dev/null   # the text tower: pinned, checksummed
cargo build -q --release --locked -p edgebind
target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
edgebind="$target/release/edgebind"
mkdir -p .demo
"$edgebind" slideshow configs/photos.toml -o .demo/photos.mcap
rm -rf .demo/state
"$edgebind" run --config configs/demo.toml --exit-at-end &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
  sleep 0.1
done
# Also try: mosquitto_sub -t 'edgebind/demo/#' -v
"$edgebind" listen --device-id demo --count 6 --timeout 60
wait "$daemon"
