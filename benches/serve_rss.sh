#!/usr/bin/env bash
# The responder's memory at rest by where GitHub's public keys come from
# (issue 19): `serve --no-mail-worker` on a fresh SQLite store trusting a
# keys file; fetching from an address that refuses connections; and
# fetching from the default https://api.github.com (on a machine that cannot
# reach it: DNS or routing fails). The three run side by side for WAIT
# seconds (failed fetches are retried after 1, 2, 4, 8… s), then each
# one's resident memory is read from /proc.
#   benches/serve_rss.sh [WAIT_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
wait_s=${1:-10}
# KEYWARDEN_BIN: the binary to measure (default: this checkout, built).
if [ -z "${KEYWARDEN_BIN:-}" ]; then cargo build --release --locked -q --features responder; fi
bin=${KEYWARDEN_BIN:-$PWD/target/release/keywarden}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" partner keygen --out "$work/gh" >/dev/null 2>&1
# A loopback port nothing listens on.
refused=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

modes=(keys-file refused api.github.com)
start() { # MODE ARGS...
  local mode=$1
  shift
  "$bin" serve --listen 127.0.0.1:0 --admin-listen none --no-mail-worker \
    --database-url "sqlite://$work/$mode.db" "$@" 2>"$work/$mode.log" &
  pids+=($!)
}
start keys-file --github-keys-file "$work/gh/github-keys.json"
start refused --github-api-url "http://127.0.0.1:$refused"
start api.github.com
sleep "$wait_s"
echo "machine: $(nproc) cores; keywarden $(git rev-parse --short HEAD); at rest after ${wait_s} s"
for i in "${!modes[@]}"; do
  status=/proc/${pids[$i]}/status
  printf '%-15s VmRSS %s kB (anon %s kB, file %s kB); failed fetches: %s\n' "${modes[$i]}" \
    "$(awk '/^VmRSS/ {print $2}' "$status")" "$(awk '/^RssAnon/ {print $2}' "$status")" \
    "$(awk '/^RssFile/ {print $2}' "$status")" "$(grep -c 'keys not loaded' "$work/${modes[$i]}.log" || true)"
done
echo "last failure logged: $(grep 'keys not loaded' "$work/api.github.com.log" | tail -1 | sed 's/.*error=//')"
