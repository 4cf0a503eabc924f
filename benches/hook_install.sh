#!/usr/bin/env bash
# The pre-commit hook's first run from source: `pre-commit try-repo` with a
# fresh pre-commit cache (so `language: rust` runs `cargo install` from
# scratch), timed, for one or more revisions of this repository.
#
#   benches/hook_install.sh [REV]...      (default: HEAD)
#
# Needs: pre-commit (pip install pre-commit), cargo. The cargo registry is
# whatever $CARGO_HOME holds: a machine without the crates downloaded also
# spends the download time.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pre-commit >/dev/null || { echo "pre-commit not found (pip install pre-commit)" >&2; exit 2; }
repo=$PWD
echo "machine: $(nproc) cores; $(cargo --version); $(pre-commit --version)"
for rev in "${@:-HEAD}"; do
  work=$(mktemp -d)
  git init -q "$work/project"
  echo "hello" > "$work/project/README"
  git -C "$work/project" add README
  start=$(date +%s.%N)
  (cd "$work/project" && PRE_COMMIT_HOME="$work/cache" \
     pre-commit try-repo "$repo" keywarden --ref "$(git -C "$repo" rev-parse "$rev")" >"$work/log" 2>&1) \
    || { cat "$work/log"; echo "try-repo failed" >&2; exit 1; }
  end=$(date +%s.%N)
  printf '%s (%s): first run %.0f s\n' "$rev" "$(git -C "$repo" rev-parse --short "$rev")" "$(echo "$end - $start" | bc)"
  grep -E "keywarden|Passed|Failed" "$work/log" | tail -2
  rm -rf "$work"
done
