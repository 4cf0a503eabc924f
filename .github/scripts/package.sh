#!/usr/bin/env bash
# Builds and packages one release asset of keywarden (the full build: the
# scanner and the responder), as .github/workflows/release.yml does for each
# target, and as the tests do with an already built binary:
#
#   .github/scripts/package.sh TARGET VERSION [--binary FILE] [--out DIR]
#
# Writes DIR/keywarden-VERSION-TARGET.tar.gz (.zip for Windows targets),
# holding keywarden-VERSION-TARGET/{keywarden[.exe],README.md,LICENSE*}, and
# beside it the archive's name + ".sha256" in sha256sum's format. Without
# --binary it builds with `cargo build --release --locked --features
# responder,zlib-ng --target TARGET` (zlib-ng needs cmake; musl targets
# need musl-gcc: musl-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { echo "usage: $0 TARGET VERSION [--binary FILE] [--out DIR]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1 version=$2
shift 2
binary="" out=dist
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ $target =~ ^[a-z0-9_]+(-[a-z0-9_]+){2,3}$ ]] || { echo "not a target triple: $target" >&2; exit 2; }
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || { echo "not a version: $version" >&2; exit 2; }

exe=keywarden
case $target in *windows*) exe=keywarden.exe ;; esac
if [ -z "$binary" ]; then
  cargo build --release --locked --features responder,zlib-ng --target "$target"
  binary=target/$target/release/$exe
fi
[ -f "$binary" ] || { echo "no binary at $binary" >&2; exit 2; }

name=keywarden-$version-$target
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$out"
cp "$binary" "$stage/$name/$exe"
chmod 755 "$stage/$name/$exe"
cp README.md "$stage/$name/"
for f in LICENSE*; do [ -f "$f" ] && cp "$f" "$stage/$name/"; done

case $target in
  *windows*)
    archive=$name.zip
    (cd "$stage" && { if command -v 7z >/dev/null; then 7z a -tzip -bso0 "$archive" "$name"; else zip -qr "$archive" "$name"; fi; })
    ;;
  *)
    archive=$name.tar.gz
    # Fixed owner, order and times (the commit's): the same binary gives the
    # same archive with GNU tar; other tars give a plain one.
    epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
    if tar --version 2>/dev/null | grep -q GNU; then
      tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name --mtime="@$epoch" \
        -cf - "$name" | gzip -n > "$stage/$archive"
    else
      tar -C "$stage" -czf "$stage/$archive" "$name"
    fi
    ;;
esac
mv "$stage/$archive" "$out/$archive"

sha() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi; }
(cd "$out" && sha "$archive" | awk '{print $1 "  " $2}' > "$archive.sha256")
echo "$out/$archive"
echo "$out/$archive.sha256: $(cut -d' ' -f1 "$out/$archive.sha256")"
