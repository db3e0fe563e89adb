#!/usr/bin/env bash
# The demo (README): the edgebind daemon (configs/demo.toml) runs the simulated
# rig live (camera, microphone, depth, thermal, IMU), embeds every sensor with
# the bundled encoders (encoders/bundle/: only the camera's was trained
# against text; audio, depth, thermal and IMU were bound to the camera), matches
# text-defined concepts in the shared space and publishes events on its
# embedded MQTT broker (127.0.0.1:1883); `edgebind listen` prints the first
# events as they arrive, then the daemon is stopped (SIGTERM: events still
# running get `end`, the outbox drains). About two minutes once built.
# The real-photo variant: configs/photos-demo.toml (see its header).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh --no-int8 >/dev/null   # the text tower: pinned, checksummed
cargo build -q --release --locked -p edgebind
target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
edgebind="$target/release/edgebind"
mkdir -p .demo
rm -rf .demo/state
"$edgebind" run --config configs/demo.toml &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
  sleep 0.1
done
# Also try: mosquitto_sub -t 'edgebind/demo/#' -v
"$edgebind" listen --device-id demo --count "${DEMO_EVENTS:-8}" --timeout 150
kill -TERM "$daemon"
wait "$daemon"
