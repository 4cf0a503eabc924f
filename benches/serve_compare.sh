#!/usr/bin/env bash
# The responder's throughput against a reference build, in one run: the key
# check (benches/key_check.sh) and 1-token partner reports
# (benches/partner.sh) on the reference's plain HTTP, this checkout's plain
# HTTP, and this checkout's HTTPS (TLS 1.3, HTTP/1.1 — wrk speaks no h2),
# each as a ratio of the reference.
#   benches/serve_compare.sh [REF] [DURATION_SECONDS] [CONNECTIONS]
# REF (default bcbf34d, the last commit before the connection layer) is
# built in a git worktree under ${TMPDIR:-/tmp}, outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-bcbf34d}
duration=${2:-20}
conns=${3:-32}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
cargo build --release --locked -q --features responder
new=$PWD/target/release/keywarden
ref_dir=${TMPDIR:-/tmp}/keywarden-ref-$ref
if [ ! -x "$ref_dir/target/release/keywarden" ]; then
  rm -rf "$ref_dir"
  git worktree add -f --detach "$ref_dir" "$ref" >/dev/null
  # Builds before the responder feature existed had the responder always.
  (cd "$ref_dir" && if grep -q '^responder = ' Cargo.toml; then
     cargo build --release --locked -q --features responder
   else cargo build --release --locked -q; fi)
fi
old=$ref_dir/target/release/keywarden
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
tls="--tls-cert $work/cert.pem --tls-key $work/key.pem"

run() { # LABEL BIN SERVE_ARGS SCRIPT -> prints and records requests/s
  local out
  out=$(KEYWARDEN_BIN=$2 SERVE_ARGS=$3 "benches/$4" "$duration" "$conns")
  echo "$out" | sed "s/^/[$1] /"
  echo "$out" | grep -m1 'Requests/sec' | awk '{print $2}' > "$work/$1"
}
echo "machine: $(nproc) cores; reference $ref vs $(git rev-parse --short HEAD); ${duration}s, $conns connections each"
for script in key_check.sh partner.sh; do
  run "ref-plain-$script" "$old" "" "$script"
  run "new-plain-$script" "$new" "--admin-listen none" "$script"
  run "new-tls-$script" "$new" "--admin-listen none $tls" "$script"
done
echo
for script in key_check.sh partner.sh; do
  r=$(cat "$work/ref-plain-$script")
  for v in new-plain new-tls; do
    n=$(cat "$work/$v-$script")
    awk -v s="$script" -v v="$v" -v n="$n" -v r="$r" \
      'BEGIN { printf "%-13s %-9s %9.0f req/s vs reference %9.0f: %.2fx\n", s, v, n, r, n / r }'
  done
done
