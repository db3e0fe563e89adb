# Helpers shared by the pinned-download scripts (fetch-models.sh,
# fetch-hapt.sh); sourced, not run. The caller sets TOOL (its name, for
# errors) and LABEL (the folder name printed in progress lines).
die() { echo "$TOOL: ERROR: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
field() { echo "$1" | awk -v n="$2" '{print $n}'; }
write_if_changed() {  # write_if_changed <path> <content>: rewrite only on change
  if [[ ! -f "$1" ]] || [[ "$(cat "$1")" != "$2" ]]; then
    printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"
    echo "wrote    $LABEL/$(basename "$1")"
  fi
}
