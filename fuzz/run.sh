#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer, one after another.
#   fuzz/run.sh [TARGET|all] [SECONDS_PER_TARGET]    (default: all, 600)
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly
# toolchain for the address sanitizer (leaks included); with stable only,
# it runs without a sanitizer. The growing corpus is kept outside the
# seeds, in $KEYWARDEN_FUZZ_CORPUS (default fuzz/corpus/); crashes land in
# fuzz/artifacts/TARGET/ and the run stops with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")"
targets=(partner_report rule_file matcher_diff authorization router)
[ "${1:-all}" = all ] || targets=("$1")
secs=${2:-600}
corpus_root=${KEYWARDEN_FUZZ_CORPUS:-corpus}
if rustup toolchain list 2>/dev/null | grep '^nightly' >/dev/null; then
  fuzz=(cargo +nightly fuzz run)
else
  echo "no nightly toolchain: fuzzing without a sanitizer" >&2
  fuzz=(cargo fuzz run --sanitizer none)
fi
for t in "${targets[@]}"; do
  mkdir -p "$corpus_root/$t"
  echo "== $t: $secs s"
  # -timeout: any one input taking over 10 s is reported as a hang.
  "${fuzz[@]}" "$t" "$corpus_root/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
