#!/usr/bin/env bash
# Soak: DURATION seconds of mixed load on REPLICAS `keywarden serve`
# processes sharing one PostgreSQL store, one wrk per replica from other
# processes on loopback. A third of the requests are valid signed reports
# (REPORTED distinct leaked keys, each report delivered again and again, to
# every replica), a third forged reports (a real signature of another
# body, or random bytes), a third `GET /api/v1/key` for live keys.
#   benches/soak.sh [DURATION_SECONDS] [REPLICAS]        (default 60 2)
# Checks, and exits non-zero when one fails: no 5xx and no socket errors;
# every forged report refused; each reported key revoked once, with one
# incident and one email, and sent once; keys never reported still live;
# each replica's RSS at the end within 10% (+4 MiB) of its RSS after the
# first 10 s. Uses KEYWARDEN_TEST_POSTGRES_URL (default this machine's
# postgres://postgres@127.0.0.1:5432/test), in a schema of its own.
# Hostile connections are mixed in (benches/hostile_load.py): per replica
# SLOW connections sending half a request line, and BODIES posting 1 MiB
# partner bodies without signature headers, each reopened when closed;
# checked: every one closed or answered by the server within 15 s.
#   benches/soak.sh [DURATION] [REPLICAS] [SLOW] [BODIES]  (default 60 2 1000 100)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-60}
replicas=${2:-2}
slow=${3:-1000}
hostile_bodies=${4:-100}
reported=500
checked=2000
conns=16
pg=${KEYWARDEN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
for tool in wrk psql python3; do
  command -v $tool >/dev/null || { echo "$tool not found" >&2; exit 2; }
done
cargo build --release --locked -q --features responder
bin=$PWD/target/release/keywarden
work=$(mktemp -d)
schema=kw_soak_$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -qc "CREATE SCHEMA $schema"
sep='?'; [[ $pg == *\?* ]] && sep='&'
url="$pg${sep}options[search_path]=$schema"
sql() { psql "$pg" -qAtc "SET search_path TO $schema; $1"; }

# Keys: REPORTED to leak, CHECKED to look up; generated, never real.
python3 - "$work" "$reported" "$checked" <<'PY'
import os, sys
work, reported, checked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = ["sk-or-v1-" + os.urandom(32).hex() for _ in range(reported + checked)]
with open(f"{work}/inventory.csv", "w") as f:
    f.write("key,name,owner_email\n")
    for i, k in enumerate(keys):
        f.write(f"{k},soak-{i},owner{i}@example.com\n")
os.makedirs(f"{work}/bodies")
for i, k in enumerate(keys[:reported]):
    open(f"{work}/bodies/{i}.json", "w").write(
        f'[{{"token":"{k}","type":"openrouter_api_key","url":"https://github.com/soak/r/blob/{i}/.env","source":"commit"}}]')
# Forged reports name keys that are never validly reported: one accepted
# forgery would revoke a key the last check expects live.
os.makedirs(f"{work}/forged")
for i, k in enumerate(keys[reported:reported + reported]):
    open(f"{work}/forged/{i}.json", "w").write(
        f'[{{"token":"{k}","type":"openrouter_api_key","url":"https://github.com/soak/f/blob/{i}/.env","source":"commit"}}]')
open(f"{work}/checked.txt", "w").write("\n".join(keys[reported:]) + "\n")
PY
"$bin" keys import --database-url "$url" "$work/inventory.csv" >/dev/null
key_id=$("$bin" partner keygen --out "$work/gh" 2>/dev/null)

# The wrk script: signed bodies, forged ones, key checks, and counters of
# what came back (told apart by status and body).
{
  echo "local bodies, sigs, forged, checks = {}, {}, {}, {}"
  for i in $(seq 0 $((reported - 1))); do
    sig=$("$bin" partner sign --key "$work/gh/private.pem" --key-id "$key_id" "$work/bodies/$i.json" \
      | sed -n 's/^Github-Public-Key-Signature: //p')
    printf 'bodies[%d] = [==[%s]==]; sigs[%d] = "%s"; forged[%d] = [==[%s]==]\n' $((i + 1)) \
      "$(cat "$work/bodies/$i.json")" $((i + 1)) "$sig" $((i + 1)) "$(cat "$work/forged/$i.json")"
  done
  while read -r k; do printf 'checks[#checks + 1] = "%s"\n' "$k"; done < "$work/checked.txt"
  cat <<LUA
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = id * 7919
  counts = { report_ok = 0, forged_refused = 0, check_ok = 0,
             check_429 = 0, check_other = 0, s5xx = 0, other = 0 }
end
local function headers(sig)
  return { ["Content-Type"] = "application/json",
           ["Github-Public-Key-Identifier"] = "$key_id",
           ["Github-Public-Key-Signature"] = sig }
end
function request()
  n = n + 1
  local kind = n % 3
  if kind == 0 then
    local i = math.floor(n / 3) % #bodies + 1
    return wrk.format("POST", "/github/secret-scanning", headers(sigs[i]), bodies[i])
  elseif kind == 1 then
    local i = math.floor(n / 3) % #bodies + 1
    local sig = sigs[i]
    if n % 2 == 0 then sig = "MEUCIQ" .. string.rep("A", 60) .. "==" end
    return wrk.format("POST", "/github/secret-scanning", headers(sig), forged[i])
  else
    local k = checks[math.floor(n / 3) % #checks + 1]
    return wrk.format("GET", "/api/v1/key", { ["Authorization"] = "Bearer " .. k })
  end
end
function response(status, headers, body)
  local key
  if status >= 500 then key = "s5xx"
  elseif status == 200 and body:sub(1, 1) == "[" then key = "report_ok"
  elseif status == 400 or (status == 401 and body:find("Signature", 1, true)) then
    key = "forged_refused"
  elseif status == 200 and body:find('"data"', 1, true) then key = "check_ok"
  elseif status == 429 then key = "check_429"
  elseif body:find("API key", 1, true) then key = "check_other"
  else key = "other" end
  counts[key] = counts[key] + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  local names = {}
  for k in pairs(total) do table.insert(names, k) end
  table.sort(names)
  for _, k in ipairs(names) do io.write(string.format("count %s %d\n", k, total[k])) end
  io.write(string.format("requests %d socket_errors %d p50_ms %.2f p99_ms %.2f max_ms %.2f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
LUA
} > "$work/soak.lua"

addrs=()
admins=()
for r in $(seq 1 "$replicas"); do
  mkdir -p "$work/mail$r"
  "$bin" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --database-url "$url" --log warn \
    --github-keys-file "$work/gh/github-keys.json" --mail-dir "$work/mail$r" \
    --mail-poll 200ms 2>"$work/serve$r.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "serving on" "$work/serve$r.log" && break; sleep 0.1; done
  addr=$(sed -n 's/.*serving on \(http:[^ ]*\).*/\1/p' "$work/serve$r.log")
  [ -n "$addr" ] || { echo "replica $r did not start:" >&2; cat "$work/serve$r.log" >&2; exit 1; }
  addrs+=("$addr")
  admins+=("$(sed -n 's/.*admin on \(http:[^;]*\);.*/\1/p' "$work/serve$r.log")")
done
server_pids=("${pids[@]}")

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "machine: $(nproc) cores; keywarden $(git rev-parse --short HEAD); $replicas replicas on PostgreSQL;" \
  "per replica wrk -t1 -c$conns -d${duration}s; $reported leaked keys, $checked checked keys"
echo "hostile per replica: $slow half-sent requests, $hostile_bodies unsigned 1 MiB bodies, reopened when closed"
for r in $(seq 1 "$replicas"); do
  wrk -t1 -c"$conns" -d"${duration}s" -s "$work/soak.lua" "${addrs[$((r - 1))]}" >"$work/wrk$r.out" 2>&1 &
  pids+=($!)
  python3 benches/hostile_load.py "${addrs[$((r - 1))]#http://}" "$duration" "$slow" "$hostile_bodies" \
    >"$work/hostile$r.out" 2>&1 &
  pids+=($!)
done
: >"$work/rss.txt"
for t in $(seq 1 "$duration"); do
  sleep 1
  line="$t"
  for p in "${server_pids[@]}"; do line="$line $(rss "$p")"; done
  echo "$line" >>"$work/rss.txt"
done
wait "${pids[@]:$replicas}"

fail=0
check() { # DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
for r in $(seq 1 "$replicas"); do
  echo "== replica $r (${addrs[$((r - 1))]})"
  grep -E "^(count|requests)" "$work/wrk$r.out" | sed 's/^/   /'
  get() { awk -v k="$1" '$1 == "count" && $2 == k {print $3}' "$work/wrk$r.out"; }
  errors=$(awk '$1 == "requests" {print $4}' "$work/wrk$r.out")
  check "replica $r: no 5xx" [ "$(get s5xx)" = 0 ]
  check "replica $r: no socket errors" [ "$errors" = 0 ]
  check "replica $r: no unexpected answers" [ "$(get other)" = 0 ]
  check "replica $r: valid reports answered" [ "$(get report_ok)" -gt 0 ]
  check "replica $r: every key check of a live key answered 200 or 429" [ "$(get check_other)" = 0 ]
  warm_at=$((duration < 20 ? duration / 2 : 10))
  warm=$(awk -v c=$((r + 1)) -v w=$warm_at 'NR == w {print $c}' "$work/rss.txt")
  end=$(awk -v c=$((r + 1)) 'END {print $c}' "$work/rss.txt")
  peak=$(awk -v c=$((r + 1)) 'BEGIN {m = 0} $c > m {m = $c} END {print m}' "$work/rss.txt")
  echo "   RSS at ${warm_at} s ${warm} KiB, at end ${end} KiB, peak ${peak} KiB"
  check "replica $r: RSS flat after warm-up" [ "$end" -le $((warm * 110 / 100 + 4096)) ]
  sed 's/^/   /' "$work/hostile$r.out"
  curl -s "${admins[$((r - 1))]}/metrics" | grep -E '^keywarden_connections_(shed|closed)_total|^keywarden_accept_errors' \
    | sed 's/^/   /' || true
  held_max=$(awk '$2 == "held_s" {print $8}' "$work/hostile$r.out")
  check "replica $r: every hostile connection closed or answered within 15 s" \
    awk -v m="${held_max:-0}" 'BEGIN { exit !(m < 15) }'
  check "replica $r: no hostile connection failed to connect" \
    [ -z "$(grep 'connect_failed' "$work/hostile$r.out")" ]
done

# Let the mail workers finish, then count effects in the store.
for _ in $(seq 120); do
  [ "$(sql "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'")" = 0 ] && break
  sleep 0.5
done
echo "== store"
echo "   revocations $(sql 'SELECT COUNT(*) FROM revocations'), revoked incidents" \
  "$(sql "SELECT COUNT(*) FROM incidents WHERE kind = 'revoked'"), sightings" \
  "$(sql "SELECT COUNT(*) FROM incidents WHERE kind = 'sighting'"), outbox" \
  "$(sql 'SELECT COUNT(*) FROM outbox'), emails written $(cat "$work"/mail*/* | grep -c '^Message-ID' || true)"
check "each reported key revoked once" [ "$(sql "SELECT COUNT(DISTINCT key_id) || '/' || COUNT(*) FROM revocations")" = "$reported/$reported" ]
check "one revoked incident per key" [ "$(sql "SELECT COUNT(DISTINCT key_id) || '/' || COUNT(*) FROM incidents WHERE kind = 'revoked'")" = "$reported/$reported" ]
check "one email per key, all sent" [ "$(sql "SELECT COUNT(DISTINCT key_id) || '/' || COUNT(*) FILTER (WHERE state = 'sent') FROM outbox")" = "$reported/$reported" ]
check "one email file per key across replicas" [ "$(find "$work"/mail* -type f | wc -l)" = "$reported" ]
check "keys never reported still live" [ "$(sql 'SELECT COUNT(*) FROM keys WHERE revoked_at IS NULL')" = "$checked" ]
exit $fail
