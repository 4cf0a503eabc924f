#!/usr/bin/env bash
# Directory-scan speed and memory against ripgrep, on the shared scale corpus.
#
#   benches/scan_scale.sh [SIZE_MB]        (default 2048)
#
# keywarden is timed with decoding on (the default, depth 2) and off
# (--max-decode-depth 0), beside rg, in the same run.
# Makes the corpus with ../shared/bench/make_scale_corpus.py (kept outside the
# repository, under $BENCH_DATA, default /tmp/kw-bench), warms the page cache,
# times `keywarden scan --no-ignore --format json` and
# `rg --no-ignore --hidden -a -c 'sk-or-v1-[0-9a-f]{64}'` with hyperfine in the
# same run, prints the ratio (goal: <= 1.25), peak RSS (goal: < 256 MB), and
# checks every planted key of the ground truth is found. Then scans a 4 GiB
# single file and prints its peak RSS.
# Needs: python3, rg, hyperfine, GNU time (apt-get install ripgrep hyperfine time).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-2048}
BENCH_DATA=${BENCH_DATA:-/tmp/kw-bench}
SHARED=${SHARED:-../shared/bench}
CORPUS=$BENCH_DATA/scale-$SIZE_MB
TRUTH=$BENCH_DATA/scale-$SIZE_MB.truth.json
RUNS=${RUNS:-10}
mkdir -p "$BENCH_DATA"

for tool in rg hyperfine /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install ripgrep hyperfine time)" >&2; exit 2; }
done
[ -f "$TRUTH" ] || SHARED=$SHARED python3 benches/shared_corpus.py "$SHARED/make_scale_corpus.py" --out "$CORPUS" --truth "$TRUTH" --size-mb "$SIZE_MB"
cargo build --release --locked -q
KW=$PWD/target/release/keywarden

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(rg --version | head -1); keywarden $(git rev-parse --short HEAD)"
echo "corpus: $CORPUS ($(du -sh "$CORPUS" | cut -f1), $(find "$CORPUS" -type f | wc -l) files)"
find "$CORPUS" -type f -exec cat {} + >/dev/null   # warm the page cache

# KEYWARDEN_REF: another keywarden binary (an earlier build) timed beside.
ref=()
[ -z "${KEYWARDEN_REF:-}" ] || ref=(-n reference "$KEYWARDEN_REF scan --no-ignore --format json -q $CORPUS")
hyperfine -N --warmup 2 --runs "$RUNS" -i --export-json "$BENCH_DATA/scan_scale.json" \
  -n keywarden "$KW scan --no-ignore --format json -q $CORPUS" \
  -n keywarden-nodecode "$KW scan --no-ignore --format json -q --max-decode-depth 0 $CORPUS" \
  -n rg "rg --no-ignore --hidden -a -c sk-or-v1-[0-9a-f]{64} $CORPUS" \
  ${ref[@]+"${ref[@]}"}

python3 - "$BENCH_DATA/scan_scale.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
kw, rg = r["keywarden"], r["rg"]
print(f"median: keywarden {kw['median']:.3f}s (decoding on, depth 2), rg {rg['median']:.3f}s, ratio {kw['median']/rg['median']:.2f} (goal <= 1.25)")
off = r["keywarden-nodecode"]
print(f"median: keywarden --max-decode-depth 0 {off['median']:.3f}s, ratio to rg {off['median']/rg['median']:.2f}; "
      f"decoding's cost {kw['median']/off['median']:.3f}x")
if "reference" in r:
    ref = r["reference"]
    print(f"median: reference {ref['median']:.3f}s, ratio to rg {ref['median']/rg['median']:.2f}; "
          f"keywarden / reference {kw['median']/ref['median']:.3f}")
PY

rss() { { /usr/bin/time -f %M "$@" 2>&1 >/dev/null || true; } | tail -1; }
echo "peak RSS: keywarden $(( $(rss "$KW" scan --no-ignore --format json -q "$CORPUS") / 1024 )) MiB," \
     "rg $(( $(rss rg --no-ignore --hidden -a -c 'sk-or-v1-[0-9a-f]{64}' "$CORPUS") / 1024 )) MiB (goal < 256 MiB)"

"$KW" scan --no-ignore --format json -q --show-secrets "$CORPUS" >"$BENCH_DATA/scan_scale.findings.json" || true
python3 - "$TRUTH" "$BENCH_DATA/scan_scale.findings.json" "$CORPUS" <<'PY'
import json, sys
truth, found, root = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3].rstrip("/") + "/"
got = {(f["path"].removeprefix(root), f["line"], f["secret"]) for f in found}
want = {(k["file"], k["line"], k["key"]) for k in truth["keys"]}
decoys = {(d["file"], d["line"]): d["type"] for d in truth["decoys"]}
extra = [decoys.get((p, l), "not a decoy") for p, l, _ in got - want]
print(f"recall: {len(want & got)}/{len(want)} planted keys found; {len(extra)} other findings: "
      + (", ".join(f"{extra.count(t)} {t}" for t in sorted(set(extra))) or "none"))
sys.exit(0 if want <= got else 1)
PY

# A 4 GiB single file (sparse, with text and a key near its end).
BIG=$BENCH_DATA/big-4g.log
if [ ! -f "$BIG" ]; then
  truncate -s 4G "$BIG"
  python3 - "$BIG" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4 * 2**30 - 4096)
    f.write(b"\nOPENROUTER_API_KEY=sk-or-v1-" + b"5" * 32 + b"a" * 32 + b"\n")
PY
fi
start=$(date +%s.%N)
kb=$(rss "$KW" scan --max-file-size 8GiB --format json -q "$BIG")
n=$("$KW" scan --max-file-size 8GiB --format jsonl -q "$BIG" | wc -l || true)
echo "4 GiB single file: peak RSS $(( kb / 1024 )) MiB, $n finding(s), $(python3 -c "import time;print(f'{time.time()-$start:.1f}')")s for two scans"
