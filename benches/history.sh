#!/usr/bin/env bash
# History-scan speed against the floor `git cat-file --batch-all-objects --batch`,
# and `keywarden staged` latency on a 50,000-file repository.
#
#   benches/history.sh REPO...
#
# For each REPO (e.g. a clone of cargo's or git's repository, kept outside this
# repository, and the repository made by ../shared/bench/make_git_corpus.py) it
# times `keywarden history --format json -q REPO` and the cat-file floor with
# hyperfine in the same run and prints the ratio (goal <= 1.5). Then it builds a
# 50,000-file repository under $BENCH_DATA, stages one file, and prints the
# median of `keywarden staged` (goal < 50 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DATA=${BENCH_DATA:-/tmp/kw-bench}
RUNS=${RUNS:-5}
# As the release binaries are built (zlib-ng: needs cmake).
cargo build --release --locked -q --features zlib-ng
KW=$PWD/target/release/keywarden
echo "machine: $(nproc) cores; $(git --version); keywarden $(git rev-parse --short HEAD)"
for repo in "$@"; do
  name=$(basename "$repo")
  objs=$(git -C "$repo" count-objects -v | awk '/^(count|in-pack):/ {s+=$2} END {print s}')
  echo "== $repo: $(git -C "$repo" rev-list --all | wc -l) commits, $(git -C "$repo" for-each-ref | wc -l) refs, $objs objects"
  hyperfine -N -i --warmup 1 --runs "$RUNS" --export-json "$BENCH_DATA/history-$name.json" --output=null \
    -n keywarden "$KW history --format json -q $repo" \
    -n cat-file "git -C $repo cat-file --batch-all-objects --batch" >/dev/null
  python3 - "$BENCH_DATA/history-$name.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
k, c = r["keywarden"]["median"], r["cat-file"]["median"]
print(f"median: keywarden history {k:.2f}s, git cat-file {c:.2f}s, ratio {k/c:.2f} (goal <= 1.5)")
PY
done

BIG=$BENCH_DATA/staged-50k
if [ ! -d "$BIG/.git" ]; then
  rm -rf "$BIG"; mkdir -p "$BIG"
  python3 - "$BIG" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(50000):
    d = os.path.join(root, f"d{i // 1000:02d}", f"s{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i}\nvalue = {i * 7919 % 100003}\n")
PY
  git -C "$BIG" init -q -b main
  git -C "$BIG" add -A
  git -C "$BIG" -c user.name=b -c user.email=b@example.invalid commit -q -m "50k files"
fi
echo "change $(date +%s%N)" >> "$BIG/d07/s3/f07300.txt"
git -C "$BIG" add d07/s3/f07300.txt
echo "== staged: $(git -C "$BIG" ls-files | wc -l) tracked files, $(git -C "$BIG" diff --cached --name-only | wc -l) staged"
hyperfine -N --warmup 3 --runs 20 --export-json "$BENCH_DATA/staged.json" "$KW staged -q $BIG" >/dev/null
python3 -c "import json;r=json.load(open('$BENCH_DATA/staged.json'))['results'][0];print(f\"median: keywarden staged {r['median']*1000:.1f} ms (goal < 50 ms)\")"
