#!/usr/bin/env bash
# The action's scan step: decide what to scan from the event, run keywarden
# once (annotations on stdout, SARIF, summary table, JSONL for the count), and
# set the step outputs. Exits 0 whatever was found so the SARIF upload and the
# summary run; action/verdict.sh fails the job afterwards. Exits 1 only when
# it cannot scan at all (e.g. a clone too shallow for the range).
set -uo pipefail

cd "${GITHUB_WORKSPACE:-.}"
path=${INPUT_PATH:-.}
mode=${INPUT_MODE:-auto}
sarif=${INPUT_SARIF:-keywarden.sarif}
event=${GITHUB_EVENT_NAME:-}
payload=${GITHUB_EVENT_PATH:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# event_field KEY...: a string from the event payload ("" when absent).
event_field() {
  [ -n "$payload" ] && [ -f "$payload" ] || { echo ""; return; }
  python3 - "$payload" "$@" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v.get(k) if isinstance(v, dict) else None
print(v if isinstance(v, str) else "")
PY
}

has_commit() { [ -n "$1" ] && git -C "$path" cat-file -e "$1^{commit}" 2>/dev/null; }
is_shallow() { [ "$(git -C "$path" rev-parse --is-shallow-repository 2>/dev/null)" = true ]; }
too_shallow() {
  echo "::error title=keywarden::The clone is too shallow to scan $1: commit $2 is not in it. Set 'fetch-depth: 0' on actions/checkout."
  exit 1
}

cmd=(keywarden history "$path")
case "$mode" in
  dir) cmd=(keywarden scan "$path") ;;
  history) ;;
  auto|range)
    case "$event" in
      pull_request|pull_request_target)
        base=$(event_field pull_request base sha)
        head=$(event_field pull_request head sha)
        has_commit "$base" || too_shallow "the pull request ($base..$head)" "$base"
        has_commit "$head" || too_shallow "the pull request ($base..$head)" "$head"
        cmd+=(--range "$base..$head")
        echo "keywarden: scanning the pull request's commits, $base..$head"
        config_from=$base
        ;;
      push)
        before=$(event_field before)
        after=$(event_field after)
        if [[ "$before" =~ ^0+$ ]] || [ -z "$before" ]; then
          echo "keywarden: new branch: scanning its full history"
        elif ! has_commit "$before"; then
          echo "keywarden: $before (the push's 'before') is not in the clone: scanning the full history"
        else
          has_commit "$after" || too_shallow "the push ($before..$after)" "$after"
          cmd+=(--range "$before..$after")
          echo "keywarden: scanning the pushed commits, $before..$after"
        fi
        ;;
      *)
        if [ "$mode" = range ]; then
          echo "::error title=keywarden::mode 'range' needs a pull_request or push event, not '$event'"
          exit 1
        fi
        echo "keywarden: $event: scanning the full history"
        ;;
    esac
    ;;
  *)
    echo "::error title=keywarden::unknown mode '$mode' (auto, history, range or dir)"
    exit 1
    ;;
esac
if [ "${cmd[1]}" = history ] && ! [[ " ${cmd[*]} " == *" --range "* ]] && is_shallow; then
  echo "::warning title=keywarden::shallow clone: only the commits present are scanned. Set 'fetch-depth: 0' on actions/checkout to scan all of history."
fi

# On a pull request the gate's own settings come from the base commit: a
# pull request that adds a key cannot also switch the rule off or ignore it.
config_note=""
if [ -n "${INPUT_CONFIG:-}" ]; then
  cmd+=(--config "$INPUT_CONFIG")
elif [ -n "${config_from:-}" ]; then
  cmd+=(--config-from "$config_from")
  if ! git -C "$path" diff --quiet "$config_from" "$head" -- .keywarden.toml .keywardenignore; then
    config_note="This pull request changes .keywarden.toml or .keywardenignore: this scan used the base commit's; the changes apply after merge."
    echo "::notice title=keywarden::$config_note"
  fi
fi
[ -n "${INPUT_BASELINE:-}" ] && cmd+=(--baseline "$INPUT_BASELINE")
# shellcheck disable=SC2206 # extra flags are split on purpose
extra=(${INPUT_ARGS:-})
"${cmd[@]}" --format github --report "sarif=$sarif" --report "markdown=$work/summary.md" \
  --report "jsonl=$work/findings.jsonl" "${extra[@]}"
code=$?

findings=0
[ -f "$work/findings.jsonl" ] && findings=$(grep -c . "$work/findings.jsonl")
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$work/summary.md" ]; then
  cat "$work/summary.md" >> "$GITHUB_STEP_SUMMARY"
  [ -z "$config_note" ] || printf '\n> %s\n' "$config_note" >> "$GITHUB_STEP_SUMMARY"
fi
{
  echo "findings=$findings"
  echo "sarif=$sarif"
  echo "exit-code=$code"
} >> "${GITHUB_OUTPUT:-/dev/null}"
exit 0
