#!/usr/bin/env bash
# Load test of GET /api/v1/key on the SQLite store: wrk from a second
# process on loopback against a release `keywarden serve`.
#   benches/key_check.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs wrk (Debian: apt-get install wrk). Requests rotate over 2,000
# generated keys so that no key crosses its type's rate limit: the figure
# is the auth check itself, and any non-2xx answer is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
conns=${2:-32}
keys=2000
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
# KEYWARDEN_BIN: the binary to measure (default: this checkout, built);
# SERVE_ARGS: extra `serve` flags, e.g. --tls-cert/--tls-key.
if [ -z "${KEYWARDEN_BIN:-}" ]; then cargo build --release --locked -q --features responder; fi
bin=${KEYWARDEN_BIN:-$PWD/target/release/keywarden}
read -r -a serve_args <<< "${SERVE_ARGS:-}"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work" "$keys" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
keys = ["sk-or-v1-" + os.urandom(32).hex() for _ in range(n)]
with open(f"{work}/keys.csv", "w") as f:
    f.write("key,name,owner_email\n")
    for i, k in enumerate(keys):
        f.write(f"{k},bench-{i},bench@example.com\n")
with open(f"{work}/keys.lua", "w") as f:
    f.write("local keys = {" + ",".join(f'"{k}"' for k in keys) + "}\n")
    f.write("""
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/key", {["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]})
end
""")
PY
cat benches/wrk-report.lua >> "$work/keys.lua"
url="sqlite://$work/keywarden.db"
"$bin" keys import "$work/keys.csv" --database-url "$url" >/dev/null
"$bin" serve --listen 127.0.0.1:0 --database-url "$url" ${serve_args[@]+"${serve_args[@]}"} 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do grep -q "serving on" "$work/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*serving on \(https\{0,1\}:[^ ]*\).*/\1/p' "$work/serve.log")
echo "machine: $(nproc) cores; keywarden $("$bin" --version | cut -d' ' -f2); wrk -t2 -c$conns -d${duration}s"
wrk -t2 -c"$conns" -d"${duration}s" -s "$work/keys.lua" "$addr/api/v1/key" | grep -E "Requests/sec|p50|requests|Socket"
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
