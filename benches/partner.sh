#!/usr/bin/env bash
# Load test of POST /github/secret-scanning on the SQLite store: wrk from a
# second process on loopback against a release `keywarden serve` that
# trusts a key pair made by `keywarden partner keygen`. Every request is a
# distinct signed report of unknown tokens (GitHub's common case).
#   benches/partner.sh [DURATION_SECONDS] [CONNECTIONS]
# Prints two runs: 1-token reports, and 100-token batches.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
# KEYWARDEN_BIN: the binary to measure (default: this checkout, built);
# SERVE_ARGS: extra `serve` flags, e.g. --tls-cert/--tls-key.
if [ -z "${KEYWARDEN_BIN:-}" ]; then cargo build --release --locked -q --features responder; fi
bin=${KEYWARDEN_BIN:-$PWD/target/release/keywarden}
read -r -a serve_args <<< "${SERVE_ARGS:-}"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
key_id=$("$bin" partner keygen --out "$work/gh" 2>/dev/null)

# bodies.lua: N signed bodies of T random unknown tokens each.
make_bodies() { # N T OUT
  python3 - "$1" "$2" "$work/bodies" <<'PY'
import json, os, sys
n, t, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
for i in range(n):
    items = [{"token": "sk-or-v1-" + os.urandom(32).hex(), "type": "openrouter_api_key",
              "url": f"https://github.com/bench/repo/blob/{i}/.env", "source": "commit"} for _ in range(t)]
    open(f"{out}/{i}.json", "w").write(json.dumps(items, separators=(",", ":")))
PY
  {
    echo "local reqs = {}"
    for i in $(seq 0 $(($1 - 1))); do
      sig=$("$bin" partner sign --key "$work/gh/private.pem" --key-id "$key_id" "$work/bodies/$i.json" | sed -n 's/^Github-Public-Key-Signature: //p')
      printf 'reqs[%d] = {[==[%s]==], "%s"}\n' $((i + 1)) "$(cat "$work/bodies/$i.json")" "$sig"
    done
    cat <<LUA
local i = 0
request = function()
  i = i + 1
  local r = reqs[(i % #reqs) + 1]
  return wrk.format("POST", "/github/secret-scanning", {
    ["Content-Type"] = "application/json",
    ["Github-Public-Key-Identifier"] = "$key_id",
    ["Github-Public-Key-Signature"] = r[2] }, r[1])
end
LUA
    cat benches/wrk-report.lua
  } > "$3"
  rm -rf "$work/bodies"
}
make_bodies 300 1 "$work/one.lua"
make_bodies 100 100 "$work/batch.lua"

url="sqlite://$work/keywarden.db"
"$bin" serve --listen 127.0.0.1:0 --database-url "$url" ${serve_args[@]+"${serve_args[@]}"} --log warn \
  --github-keys-file "$work/gh/github-keys.json" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do grep -q "serving on" "$work/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*serving on \(https\{0,1\}:[^ ]*\).*/\1/p' "$work/serve.log")
echo "machine: $(nproc) cores; keywarden $(git rev-parse --short HEAD); wrk -t2 -c$conns -d${duration}s"
echo "== 1-token reports"
wrk -t2 -c"$conns" -d"${duration}s" -s "$work/one.lua" "$addr" | grep -E "Requests/sec|p50|requests"
echo "== 100-token reports (tokens/s = requests/s x 100)"
wrk -t2 -c"$conns" -d"${duration}s" -s "$work/batch.lua" "$addr" | grep -E "Requests/sec|p50|requests"
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
