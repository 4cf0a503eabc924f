#!/usr/bin/env bash
# Peak memory of `keywarden scan` on an archive whose one member is huge
# (issue 18: a 4 GiB member is streamed, not held; goal peak RSS < 256 MB,
# as for plain files). Builds, in $BENCH_DATA/archive-rss (made once per
# size): big.tar, big.tar.gz, big.tar.xz and big.tar.zst, each holding
# data/big.txt of SIZE bytes of random hex lines with a generated key on the
# first line, in the middle and on the last line; and big.txt itself for the
# plain-file figure. Each is scanned alone (GNU time's peak RSS), and the
# three keys must be found at the member's lines, or the run fails. For the
# compressed ones the time is also put against the codec's own command
# decompressing the same file to /dev/null (gzip, xz, zstd: one thread, as
# keywarden reads one stream), measured in the same run.
#   benches/archive_rss.sh [SIZE_BYTES]   (default 4 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-$((4 << 30))}
BENCH_DATA=${BENCH_DATA:-/tmp/kw-bench}
dir=$BENCH_DATA/archive-rss/$size
[ -x /usr/bin/time ] || { echo "GNU time not found (apt-get install time)" >&2; exit 2; }
for tool in xz zstd; do
  command -v $tool >/dev/null || { echo "$tool not found (apt-get install $tool)" >&2; exit 2; }
done
if [ -z "${KEYWARDEN_BIN:-}" ]; then cargo build --release --locked -q; fi
bin=${KEYWARDEN_BIN:-$PWD/target/release/keywarden}
if [ ! -f "$dir/truth.json" ]; then
  rm -rf "$dir"; mkdir -p "$dir/tar" "$dir/tgz" "$dir/plain"
  python3 - "$dir" "$size" <<'PY'
import io, json, os, secrets, sys, tarfile, gzip, shutil
out, size = sys.argv[1], int(sys.argv[2])
keys = ["sk-or-v1-" + secrets.token_hex(32) for _ in range(3)]
line = 64  # 63 hex characters and a newline
n = size // line
marks = {0: keys[0], n // 2: keys[1], n - 1: keys[2]}
class Member(io.RawIOBase):
    """The member's bytes, made as they are read."""
    def __init__(self):
        self.i, self.buf = 0, b""
    def readable(self):
        return True
    def readinto(self, b):
        while len(self.buf) < len(b) and self.i < n:
            hexes = secrets.token_hex((line - 1) * 65536 // 2 + 1)
            parts = []
            for t, j in enumerate(range(self.i, min(self.i + 65536, n))):
                k = marks.get(j)
                parts.append((f"KEY={k}".ljust(line - 1) if k else hexes[t * (line - 1):(t + 1) * (line - 1)]) + "\n")
            self.buf += "".join(parts).encode()
            self.i = min(self.i + 65536, n)
        m = min(len(b), len(self.buf))
        b[:m] = self.buf[:m]
        self.buf = self.buf[m:]
        return m
with open(f"{out}/plain/big.txt", "wb") as f:
    shutil.copyfileobj(io.BufferedReader(Member(), 1 << 20), f, 1 << 20)
for name, mode in (("tar/big.tar", "w"), ("tgz/big.tar.gz", "w:gz")):
    kw = {"compresslevel": 1} if mode == "w:gz" else {}
    with tarfile.open(f"{out}/{name}", mode, **kw) as t:
        t.add(f"{out}/plain/big.txt", arcname="data/big.txt")
json.dump({"keys": keys, "lines": [1, n // 2 + 1, n]}, open(f"{out}/truth.json", "w"))
PY
fi
# The xz and zstd forms (made from the tar; added to older data sets too).
if [ ! -f "$dir/txz/big.tar.xz" ]; then
  mkdir -p "$dir/txz" && xz -0 -T2 -c "$dir/tar/big.tar" >"$dir/txz/big.tar.xz.part" && mv "$dir/txz/big.tar.xz.part" "$dir/txz/big.tar.xz"
fi
if [ ! -f "$dir/tzst/big.tar.zst" ]; then
  mkdir -p "$dir/tzst" && zstd -q -3 -T2 -c "$dir/tar/big.tar" >"$dir/tzst/big.tar.zst.part" && mv "$dir/tzst/big.tar.zst.part" "$dir/tzst/big.tar.zst"
fi
echo "machine: $(nproc) cores; keywarden $(git rev-parse --short HEAD); member of $size bytes"
printf 'input\tpeak RSS MiB\twall s\tkeys found\tcodec -dc s\tratio\n'
status=0
for what in plain tar tgz txz tzst; do
  /usr/bin/time -f '%M %e' -o "$dir/$what.time" "$bin" scan "$dir/$what" --format json \
    --max-file-size 16GiB --max-archive-bytes 16GiB --show-secrets -q >"$dir/$what.json" 2>"$dir/$what.err" || true
  # (GNU time writes "Command exited with non-zero status 1" first: a
  # scan that finds keys exits 1.)
  read -r rss wall < <(tail -n 1 "$dir/$what.time")
  found=$(python3 - "$dir" "$what" <<'PY'
import json, sys
d, what = sys.argv[1], sys.argv[2]
truth = json.load(open(f"{d}/truth.json"))
got = {(f["secret"], f["line"], f["path"]) for f in json.load(open(f"{d}/{what}.json"))}
member = {"plain": "big.txt", "tar": "big.tar!data/big.txt", "tgz": "big.tar.gz!data/big.txt",
          "txz": "big.tar.xz!data/big.txt", "tzst": "big.tar.zst!data/big.txt"}[what]
ok = sum(any(s == k and l == line and p.endswith(member) for s, l, p in got)
         for k, line in zip(truth["keys"], truth["lines"]))
print(f"{ok}/3")
PY
)
  ref=-; ratio=-
  case $what in
    tgz) ref=$( { /usr/bin/time -f %e gzip -dc "$dir/tgz/big.tar.gz" >/dev/null; } 2>&1 | tail -n 1) ;;
    txz) ref=$( { /usr/bin/time -f %e xz -dc -T1 "$dir/txz/big.tar.xz" >/dev/null; } 2>&1 | tail -n 1) ;;
    tzst) ref=$( { /usr/bin/time -f %e zstd -qdc "$dir/tzst/big.tar.zst" >/dev/null; } 2>&1 | tail -n 1) ;;
  esac
  [ "$ref" = - ] || ratio=$(python3 -c "print(f'{$wall / max($ref, 0.01):.2f}')")
  printf '%s\t%d\t%s\t%s\t%s\t%s\n' "$what" $((rss / 1024)) "$wall" "$found" "$ref" "$ratio"
  if [ "$found" != 3/3 ] || [ $((rss / 1024)) -ge 256 ]; then status=1; sed -n 1,5p "$dir/$what.err" >&2; fi
done
exit $status
