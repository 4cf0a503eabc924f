#!/usr/bin/env bash
# GET /api/v1/key with rate limits counted where they must be and the
# usage log on (issue 17), in one run, alternating:
#   ref                the reference binary, one replica on SQLite (today's figure)
#   sqlite/local       one replica on SQLite, counting in memory
#   sqlite/off         the same, --rate-limits off
#   sqlite/local-nolog the same as sqlite/local, --no-usage-log
#   pg2/shared         two replicas on one PostgreSQL, counting in the store
#   pg2/off            the same, --rate-limits off
#   pg2/shared-nolog   the same as pg2/shared, --no-usage-log
#   pg2/off-nolog      the same as pg2/off, --no-usage-log (the usage log's
#                      own cost on PostgreSQL, without the counter's)
# wrk from a second process on loopback (one wrk per replica, their
# rates summed); requests rotate over 2,000 keys so that no key crosses its
# limit and every answer should be 200.
#   benches/rate_limits.sh REF_BIN [DURATION_SECONDS] [ROUNDS]
# KEYWARDEN_BENCH_RUNS="pg2/shared pg2/off" runs only the runs named.
# Needs wrk and psql; PostgreSQL at KEYWARDEN_BENCH_POSTGRES_URL (default
# the test server, postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:?usage: benches/rate_limits.sh REF_BIN [DURATION_SECONDS] [ROUNDS]}
duration=${2:-15}
rounds=${3:-2}
conns=32
keys=2000
pg=${KEYWARDEN_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql not found (apt-get install postgresql-client)" >&2; exit 2; }
cargo build --release --locked -q --features responder
bin=$PWD/target/release/keywarden
work=$(mktemp -d)
schema=kw_bench_rl_$$
servers=()
cleanup() {
  for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done
  psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

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
local i = math.random(1, #keys)
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/key", {["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]})
end
""")
PY
cat benches/wrk-report.lua >> "$work/keys.lua"
sqlite="sqlite://$work/keywarden.db"
psql "$pg" -qc "CREATE SCHEMA $schema" >/dev/null
sep='?'; case $pg in *\?*) sep='&';; esac
pgurl="$pg${sep}options[search_path]=$schema"
# The reference gets a store of its own: it cannot open a newer schema.
refdb="sqlite://$work/reference.db"
"$ref" keys import "$work/keys.csv" --database-url "$refdb" >/dev/null
"$bin" keys import "$work/keys.csv" --database-url "$sqlite" >/dev/null
"$bin" keys import "$work/keys.csv" --database-url "$pgurl" >/dev/null

# start BIN URL [FLAGS...]: one more replica; its address is appended to
# $addrs.
addrs=()
admins=()
start() {
  local b=$1 url=$2 log
  shift 2
  log=$(mktemp -p "$work")
  "$b" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --database-url "$url" \
    --github-api-url http://127.0.0.1:9 --no-mail-worker "$@" >/dev/null 2>"$log" &
  servers+=($!)
  for _ in $(seq 100); do grep -q "serving on" "$log" && break; sleep 0.1; done
  grep -q "serving on" "$log" || { echo "replica did not start:" >&2; cat "$log" >&2; exit 1; }
  addrs+=("$(sed -n 's/.*serving on \(http:[^ ]*\).*/\1/p' "$log")")
  admins+=("$(sed -n 's/.*admin on \(http:[^;)]*\).*/\1/p' "$log")")
}

# Usage records the replicas dropped (queue full or store errors): a log
# that drops would look cheaper than it is.
dropped() {
  local admin total=0 n
  for admin in "${admins[@]}"; do
    [ -n "$admin" ] || continue
    n=$(curl -s "$admin/metrics" | awk '/^keywarden_usage_records_dropped_total/ {s += $2} END {print s + 0}')
    total=$((total + n))
  done
  echo "$total"
}

stop_all() {
  for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done
  servers=()
  addrs=()
  admins=()
}

# measure NAME ADDR...: wrk against every address at once for $duration s.
measure() {
  local name=$1
  shift
  local n=$# i=0 outs=()
  for addr in "$@"; do
    i=$((i + 1))
    wrk -t1 -c$((conns / n)) -d"${duration}s" -s "$work/keys.lua" "$addr/api/v1/key" >"$work/wrk.$i" &
    outs+=($!)
  done
  wait "${outs[@]}"
  python3 - "$name" "$work" "$n" "$(dropped)" <<'PY' | tee -a "$work/results"
import re, sys
name, work, n, dropped = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rate = non2xx = 0.0
p99 = 0.0
for i in range(1, n + 1):
    text = open(f"{work}/wrk.{i}").read()
    rate += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = max(p99, float(re.search(r"p99 ([\d.]+) ms", text).group(1)))
    non2xx += int(re.search(r"non-2xx (\d+)", text).group(1))
print(f"{name}\t{rate:.0f}\t{p99:.2f}\t{int(non2xx)}\t{dropped}")
PY
}

echo "machine: $(nproc) cores; keywarden $("$bin" --version | cut -d' ' -f2); reference $("$ref" --version | cut -d' ' -f2); wrk ${conns} connections in all, ${duration}s per run, $rounds rounds"
echo -e "run\treq/s\tp99 ms\tnon-2xx\tusage records dropped"
# run NAME: whether NAME is among $KEYWARDEN_BENCH_RUNS (all when unset).
run() { [ -z "${KEYWARDEN_BENCH_RUNS:-}" ] || [[ " $KEYWARDEN_BENCH_RUNS " == *" $1 "* ]]; }
# pg NAME FLAGS...: two replicas on the PostgreSQL store.
pg() {
  local name=$1
  shift
  run "$name" || return 0
  for _ in 1 2; do start "$bin" "$pgurl" "$@"; done
  measure "$name" "${addrs[@]}"; stop_all
}
# sqlite NAME BIN URL FLAGS...: one replica on a SQLite store.
sqlite() {
  local name=$1
  shift
  run "$name" || return 0
  start "$@"; measure "$name" "${addrs[@]}"; stop_all
}
for _ in $(seq "$rounds"); do
  sqlite ref "$ref" "$refdb"
  sqlite sqlite/local "$bin" "$sqlite" --rate-limits local
  sqlite sqlite/off "$bin" "$sqlite" --rate-limits off
  sqlite sqlite/local-nolog "$bin" "$sqlite" --rate-limits local --no-usage-log
  pg pg2/shared --rate-limits shared
  pg pg2/off --rate-limits off
  pg pg2/shared-nolog --rate-limits shared --no-usage-log
  pg pg2/off-nolog --rate-limits off --no-usage-log
  # Dead rows left in the shared counter's tables: what decays it.
  psql "$pg" -Atc "SELECT string_agg(relname || ' ' || n_dead_tup || ' dead of ' || n_live_tup, ', ') \
    FROM pg_stat_user_tables WHERE schemaname = '$schema' AND relname LIKE 'rate%'" | sed 's/^/# /'
done
python3 - "$work/results" <<'PY'
import sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, rate = line.split("\t")[:2]
    runs[name].append(float(rate))
mean = {k: sum(v) / len(v) for k, v in runs.items()}
print("means: " + ", ".join(f"{k} {v:.0f}" for k, v in mean.items()))
for a, b, what in [
    ("sqlite/local", "sqlite/off", "rate limits' cost, goal >= 0.80"),
    ("sqlite/local", "ref", "against the reference"),
    ("pg2/shared", "pg2/off", "rate limits' cost, goal >= 0.80"),
    ("sqlite/local", "sqlite/local-nolog", "usage log's cost, goal >= 0.85"),
    ("pg2/shared", "pg2/shared-nolog", "usage log's cost, goal >= 0.85"),
    ("pg2/off", "pg2/off-nolog", "usage log's cost alone, goal >= 0.85"),
]:
    if a in mean and b in mean:
        print(f"{a} vs {b}: {mean[a] / mean[b]:.2f}x  ({what})")
PY
