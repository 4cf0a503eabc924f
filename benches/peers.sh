#!/usr/bin/env bash
# keywarden against peer secret scanners on the same work: one rule (the
# OpenRouter key pattern, given to each peer as a custom rule from
# benches/peers/), the same inputs, measured in the same run.
#
#   benches/peers.sh [tree|encoded|history|all] [runs]
#
# tree:    the 72 MB working-tree corpus (HEAD trees of git and cargo plus
#          planted keys and hard cases: ../shared/bench/make_tree_corpus.py)
# encoded: the tree corpus with keys hidden in encodings (fixtures/encoded:
#          base64, nested base64, percent-encoding, \u/\x escapes) and in
#          archives (fixtures/archives/generate.py: tgz, whl, jar, nested zip
#          in tar.gz, gz, and hostile ones) beside it; every tool with its
#          decoding and archive options on (issue 18)
# history: the planted-key history corpus (make_git_corpus.py), and
#          cargo's full history (all refs) with 7 keys planted on top
#
# Prints, per corpus and tool: median wall time (hyperfine), the ratio to
# keywarden, peak RSS, and recall against the corpus's ground truth
# (distinct planted keys found; other distinct matches are listed too).
# Needs ../shared/bench/install-peers.sh run first (tools under
# $BENCH_DATA/tools/bin), and snapshots of git's and cargo's repositories:
# GIT_REPO and CARGO_REPO (bare is fine; default: /work/.mirror/…).
# Generated data stays in $BENCH_DATA (default /tmp/kw-bench), never here.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in
  tree|encoded|history|all) ;;
  *) echo "usage: $0 [tree|encoded|history|all] [runs]" >&2; exit 2 ;;
esac
runs=${2:-5}
BENCH_DATA=${BENCH_DATA:-/tmp/kw-bench}
SHARED=${SHARED_BENCH:-../shared/bench}
GIT_REPO=${GIT_REPO:-/work/.mirror/git+git/repo}
CARGO_REPO=${CARGO_REPO:-/work/.mirror/rust-lang+cargo/repo}
T=$BENCH_DATA/tools/bin
PEERS=$PWD/benches/peers
out=$BENCH_DATA/peers
mkdir -p "$out"
for tool in gitleaks betterleaks kingfisher; do
  [ -x "$T/$tool" ] || { echo "missing $T/$tool: run $SHARED/install-peers.sh" >&2; exit 2; }
done
command -v hyperfine >/dev/null || { echo "missing hyperfine: run $SHARED/install-peers.sh" >&2; exit 2; }

# As the release binaries are built (zlib-ng: needs cmake).
cargo build --release --locked -q --features zlib-ng
KW=$PWD/target/release/keywarden

# Corpora, made once.
if [ ! -f "$BENCH_DATA/tree.truth.json" ]; then
  SHARED=$SHARED python3 benches/shared_corpus.py "$SHARED/make_tree_corpus.py" --src "git=$GIT_REPO" --src "cargo=$CARGO_REPO" \
    --out "$BENCH_DATA/tree" --truth "$BENCH_DATA/tree.truth.json"
fi
if [ ! -f "$BENCH_DATA/gitcorpus.truth.json" ]; then
  SHARED=$SHARED python3 benches/shared_corpus.py "$SHARED/make_git_corpus.py" --out "$BENCH_DATA/gitcorpus" \
    --truth "$BENCH_DATA/gitcorpus.truth.json"
fi

# The tree corpus with the encoded and archived keys beside it (made once,
# in $BENCH_DATA/encoded): truth is the tree's planted keys, the encoded
# fixtures' and the archives' (not the hostile archives' keys, which no
# tool should reach or which sit in members named outside the archive).
make_encoded() {
  local dir=$BENCH_DATA/encoded truth=$BENCH_DATA/encoded.truth.json
  [ -f "$truth" ] && return
  rm -rf "$dir" "$BENCH_DATA/archives-fixture"
  mkdir -p "$dir"
  cp -r "$BENCH_DATA/tree" "$dir/tree"
  cp -r fixtures/encoded/tree "$dir/encoded"
  python3 fixtures/archives/generate.py "$BENCH_DATA/archives-fixture" >/dev/null
  cp -r "$BENCH_DATA/archives-fixture/tree" "$dir/archives"
  python3 - "$BENCH_DATA" fixtures/encoded/tree.truth.json "$truth" <<'PY'
import json, sys
data, encoded, out = sys.argv[1:]
keys = [dict(k, case=k.get("case") or "tree") for k in json.load(open(f"{data}/tree.truth.json"))["keys"]]
for k in json.load(open(encoded)):
    keys.append({"key": k["key"], "case": f"{k['path']} ({'+'.join(k['encoding'])})"})
for k in json.load(open(f"{data}/archives-fixture/truth.json"))["keys"]:
    keys.append({"key": k["key"], "case": k["path"]})
json.dump({"keys": keys}, open(out, "w"), indent=1)
PY
}

# cargo's history with 7 keys planted in the places history scanners get
# wrong (made once, in $BENCH_DATA/cargo-planted; keys generated here).
plant_cargo() {
  local dir=$BENCH_DATA/cargo-planted truth=$BENCH_DATA/cargo-planted.truth.json
  [ -f "$truth" ] && return
  rm -rf "$dir"
  git clone -q "$CARGO_REPO" "$dir"
  local g=(git -C "$dir" -c user.name=bench -c user.email=bench@example.com -c commit.gpgsign=false)
  local keys=() scenarios=(head added-then-deleted old-branch evil-merge tag-only binary renamed)
  for _ in "${scenarios[@]}"; do
    keys+=("sk-or-v1-$(python3 -c 'import secrets; print(secrets.token_hex(32))')")
  done
  local main
  main=$("${g[@]}" rev-parse --abbrev-ref HEAD)
  # head: in the tip of the default branch
  printf 'OPENROUTER_API_KEY=%s\n' "${keys[0]}" >"$dir/.env.example"
  "${g[@]}" add .env.example
  "${g[@]}" commit -qm "add env example"
  # added-then-deleted
  printf 'let key = "%s";\n' "${keys[1]}" >"$dir/src/leak.rs"
  "${g[@]}" add src/leak.rs
  "${g[@]}" commit -qm "try the API"
  "${g[@]}" rm -q src/leak.rs
  "${g[@]}" commit -qm "remove leak"
  # old-branch: a branch from 5000 commits back, never merged
  "${g[@]}" checkout -q -b planted/old "$main~5000"
  printf '[api]\nkey = "%s"\n' "${keys[2]}" >"$dir/planted.toml"
  "${g[@]}" add planted.toml
  "${g[@]}" commit -qm "old experiment"
  # evil-merge: the key appears only in a merge commit's own changes
  "${g[@]}" checkout -q -b planted/side "$main~50"
  echo "side" >"$dir/SIDE.md"
  "${g[@]}" add SIDE.md
  "${g[@]}" commit -qm "side work"
  "${g[@]}" checkout -q "$main"
  "${g[@]}" merge -q --no-ff --no-commit planted/side >/dev/null
  printf 'token: %s\n' "${keys[3]}" >"$dir/merge-notes.yml"
  "${g[@]}" add merge-notes.yml
  "${g[@]}" commit -qm "Merge side"
  # tag-only: a commit reachable from a tag alone
  "${g[@]}" checkout -q --detach "$main"
  printf 'export OPENROUTER_API_KEY=%s\n' "${keys[4]}" >"$dir/release.sh"
  "${g[@]}" add release.sh
  "${g[@]}" commit -qm "release script"
  "${g[@]}" tag -a planted-tag -m "tagged" HEAD
  "${g[@]}" checkout -q "$main"
  # binary: NUL bytes around the key
  python3 -c 'import sys; open(sys.argv[1], "wb").write(b"\0\1\2" * 100 + sys.argv[2].encode() + b"\0" * 300)' \
    "$dir/blob.bin" "${keys[5]}"
  "${g[@]}" add blob.bin
  "${g[@]}" commit -qm "add blob"
  # renamed: the key's file is moved later
  printf 'KEY = "%s"\n' "${keys[6]}" >"$dir/settings.py"
  "${g[@]}" add settings.py
  "${g[@]}" commit -qm "settings"
  "${g[@]}" mv settings.py settings_local.py
  "${g[@]}" commit -qm "rename settings"
  python3 - "$truth" "${scenarios[@]}" -- "${keys[@]}" <<'PY'
import json, sys
args = sys.argv[2:]
cut = args.index("--")
json.dump({"keys": [{"scenario": s, "key": k} for s, k in zip(args[:cut], args[cut + 1:])]},
          open(sys.argv[1], "w"), indent=1)
PY
}

# The command each tool runs on TARGET, its findings written to OUTPUT.
# kind: dir (a directory), decode (a directory, with each tool's decoding
# and archive options on) or git (all of a repository's history).
# The same work for all: peers' extras that keywarden does not do are off
# (gitleaks/betterleaks decoding of base64/hex/percent-encoded text,
# betterleaks/kingfisher archive extraction, kingfisher validation); with
# them on, the peers are slower still (BENCHMARKS.md has one such run).
command_for() {
  local tool=$1 kind=$2 target=$3 output=$4
  case "$tool/$kind" in
    keywarden/dir) echo "$KW scan --no-ignore -q --show-secrets -f json -o $output --exit-code 0 $target" ;;
    keywarden/git) echo "$KW history -q --show-secrets -f json -o $output --exit-code 0 $target" ;;
    gitleaks/dir) echo "$T/gitleaks dir -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth 0 -f json -r $output $target" ;;
    gitleaks/git) echo "$T/gitleaks git -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth 0 -f json -r $output $target" ;;
    betterleaks/dir) echo "$T/betterleaks filesystem -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth=0 --max-archive-depth=0 -o $output $target" ;;
    betterleaks/git) echo "$T/betterleaks git -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth=0 --max-archive-depth=0 -o $output $target" ;;
    kingfisher/dir) echo "$T/kingfisher scan --no-update-check --load-builtins false --rules-path $PEERS/kingfisher.yaml -n --no-extract-archives --git-history none --format json --output $output $target" ;;
    # With decoding (depth 2, as keywarden's default) and archives (depth 3) on.
    keywarden/decode) echo "$KW scan --no-ignore -q --show-secrets -f json -o $output --exit-code 0 $target" ;;
    gitleaks/decode) echo "$T/gitleaks dir -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth 2 --max-archive-depth 3 -f json -r $output $target" ;;
    betterleaks/decode) echo "$T/betterleaks filesystem -c $PEERS/gitleaks.toml --no-banner -l error --exit-code 0 --max-decode-depth=2 --max-archive-depth=3 -o $output $target" ;;
    kingfisher/decode) echo "$T/kingfisher scan --no-update-check --load-builtins false --rules-path $PEERS/kingfisher.yaml -n --extraction-depth 3 --git-history none --format json --output $output $target" ;;
    kingfisher/git) echo "$T/kingfisher scan --no-update-check --load-builtins false --rules-path $PEERS/kingfisher.yaml -n --no-extract-archives --git-history full --format json --output $output $target" ;;
  esac
}

# Distinct secrets in a tool's findings file, one per line. Every tool
# prints secrets whole (keywarden with --show-secrets) so they can be
# scored; the files stay in $BENCH_DATA.
secrets_of() {
  python3 - "$1" "$2" <<'PY'
import json, sys
tool, path = sys.argv[1], sys.argv[2]
text = open(path).read()
found = set()
if tool == "keywarden":
    found = {f["secret"] for f in json.loads(text)}
elif tool == "gitleaks":
    found = {f["Secret"] for f in json.loads(text or "[]")}
elif tool == "betterleaks":
    found = {f["match"]["value"] for f in json.loads(text or "{}").get("findings") or []}
elif tool == "kingfisher":
    found = {f["finding"]["snippet"] for f in json.loads(text or "{}").get("findings") or []}
for s in sorted(found):
    print(s)
PY
}

# score TRUTH SECRETS_FILE: "found/total" and the distinct matches that are
# not planted keys.
score() {
  python3 - "$1" "$2" <<'PY'
import json, sys
truth = {k["key"] for k in json.load(open(sys.argv[1]))["keys"]}
found = {l.strip() for l in open(sys.argv[2]) if l.strip()}
hit = truth & found
extra = sorted(found - truth)
kinds = {}
for e in extra:
    kind = "sk-or-v2 (rule accepts later versions)" if e.startswith("sk-or-v2-") else "other"
    kinds[kind] = kinds.get(kind, 0) + 1
missed = [k.get("scenario") or k.get("case") or k["key"][:16]
          for k in json.load(open(sys.argv[1]))["keys"] if k["key"] not in found]
missed = sorted(set(missed))
print(f"{len(hit)}/{len(truth)}" + (f" (missed: {', '.join(missed)})" if missed else "")
      + "".join(f"; +{n} {k}" for k, n in kinds.items()))
PY
}

bench() { # name kind target truth
  local name=$1 kind=$2 target=$3 truth=$4
  local cmds=() tools=(keywarden gitleaks betterleaks kingfisher)
  echo "== $name ($kind: $target)"
  for tool in "${tools[@]}"; do
    cmds+=("$(command_for "$tool" "$kind" "$target" "$out/$name.$tool.json")")
  done
  # -i: kingfisher exits 200 when it finds something; every tool's exit
  # status is checked after, and on the scoring run below.
  # --output=pipe: betterleaks's git scan fails (git log, status 128) when
  # its output goes to /dev/null.
  hyperfine -N -i --output=pipe --warmup 1 --runs "$runs" --export-json "$out/$name.hyperfine.json" \
    "${cmds[@]}" >"$out/$name.hyperfine.txt"
  python3 - "$out/$name.hyperfine.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    bad = [c for c in r["exit_codes"] if c not in (0, 200)]
    if bad or (200 in r["exit_codes"] and "kingfisher" not in r["command"]):
        sys.exit(f"a timed run failed ({r['exit_codes']}): {r['command']}")
PY
  local kw_median=""
  printf '| %-11s | %9s | %8s | %9s | %s |\n' tool median ratio "peak RSS" "planted keys found"
  printf '|%s|%s|%s|%s|%s|\n' ------------- ----------- ---------- ----------- ---------------------
  for i in "${!tools[@]}"; do
    local tool=${tools[$i]}
    # One more run, alone, for peak RSS and the findings to score.
    local rss status=0
    rm -f "$out/$name.$tool.json"
    /usr/bin/time -o "$out/$name.$tool.rss" -f '%M' ${cmds[$i]} 2>"$out/$name.$tool.stderr" | cat >/dev/null || status=$?
    if [ "$status" -ne 0 ] && ! { [ "$tool" = kingfisher ] && [ "$status" -eq 200 ]; }; then
      echo "$tool failed ($status): see $out/$name.$tool.stderr" >&2
      exit 1
    fi
    rss=$(tail -1 "$out/$name.$tool.rss")
    local median
    median=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]['median'])" \
      "$out/$name.hyperfine.json" "$i")
    [ -n "$kw_median" ] || kw_median=$median
    secrets_of "$tool" "$out/$name.$tool.json" >"$out/$name.$tool.secrets"
    found=$(score "$truth" "$out/$name.$tool.secrets")
    printf '| %-11s | %8.2fs | %7.2fx | %6d MiB | %s |\n' "$tool" "$median" \
      "$(python3 -c "print($median / $kw_median)")" "$((rss / 1024))" "$found"
  done
}

case "$what" in
  tree|all) bench tree dir "$BENCH_DATA/tree" "$BENCH_DATA/tree.truth.json" ;;&
  encoded|all)
    make_encoded
    bench encoded decode "$BENCH_DATA/encoded" "$BENCH_DATA/encoded.truth.json"
    ;;&
  history|all)
    bench gitcorpus git "$BENCH_DATA/gitcorpus" "$BENCH_DATA/gitcorpus.truth.json"
    plant_cargo
    bench cargo git "$BENCH_DATA/cargo-planted" "$BENCH_DATA/cargo-planted.truth.json"
    ;;
  tree|encoded) ;;
  *) echo "usage: $0 [tree|history|all] [runs]" >&2; exit 2 ;;
esac
