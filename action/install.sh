#!/usr/bin/env bash
# Installs keywarden for the Action (and the pre-commit shim):
#
#   action/install.sh resolve   prints version=… and target=… (for $GITHUB_OUTPUT)
#   action/install.sh install   installs into $KEYWARDEN_ROOT/bin (default
#                               $RUNNER_TEMP/keywarden) and adds it to $GITHUB_PATH
#
# The release binary for this runner is fetched from
#   $INPUT_RELEASE_URL/v$VERSION/keywarden-$VERSION-$TARGET.tar.gz (.zip on Windows)
# and checked against the SHA-256 published beside it ($ASSET.sha256); a
# mismatch fails and the binary is never run. VERSION is $INPUT_VERSION, or
# the action's own ref ($ACTION_REF) when it is a version tag (v1.2.3). Only
# when there is no version (a branch or commit ref) — or the ref's tag has no
# release — is the scanner built from the action's checkout instead.
# Downloads are kept in $KEYWARDEN_CACHE (default ~/.cache/keywarden), and a
# kept archive is checked against a fresh copy of its checksum before use.
set -euo pipefail

say() { printf 'keywarden install: %s\n' "$*" >&2; }
fail() { printf '::error::keywarden install: %s\n' "$*"; exit 1; }

runner_target() {
  case "${RUNNER_OS:-$(uname -s)}/${RUNNER_ARCH:-$(uname -m)}" in
    Linux/X64 | Linux/x86_64) echo x86_64-unknown-linux-musl ;;
    Linux/ARM64 | Linux/aarch64 | Linux/arm64) echo aarch64-unknown-linux-musl ;;
    macOS/X64 | Darwin/x86_64) echo x86_64-apple-darwin ;;
    macOS/ARM64 | Darwin/arm64) echo aarch64-apple-darwin ;;
    Windows/X64) echo x86_64-pc-windows-msvc ;;
    *) echo "" ;;
  esac
}

# The action's ref and repository: from the runner, else from where the
# runner checked the action out (…/_actions/OWNER/REPO/REF).
action_ref_and_repository() {
  local path=${GITHUB_ACTION_PATH:-}
  path=${path%/}
  if [ -z "${ACTION_REF:-}" ] && [[ $path == */_actions/*/*/* ]]; then
    ACTION_REF=${path##*/}
  fi
  if [ -z "${ACTION_REPOSITORY:-}" ] && [[ $path == */_actions/*/*/* ]]; then
    local parent=${path%/*}
    ACTION_REPOSITORY=${parent%/*}
    ACTION_REPOSITORY=${ACTION_REPOSITORY##*/}/${parent##*/}
  fi
}

# Sets VERSION: the version to install, without its `v`; empty when there
# is none.
resolve_version() {
  action_ref_and_repository
  VERSION=${INPUT_VERSION:-}
  if [ -z "$VERSION" ] && [[ ${ACTION_REF:-} =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    VERSION=$ACTION_REF
  fi
  VERSION=${VERSION#v}
  if [ -n "$VERSION" ] && ! [[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
    fail "version '${VERSION//[^0-9A-Za-z.+-]/?}' is not a release version (e.g. 1.2.3)"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# fetch URL FILE: prints the HTTP status (000 when nothing answered).
fetch() {
  curl -sSL --proto '=https,http' --retry 3 --retry-connrefused --connect-timeout 10 \
    --max-time 300 -o "$2" -w '%{http_code}' "$1" 2>/dev/null || true
}

build_from_source() {
  local root=$1
  command -v cargo >/dev/null \
    || fail "no release to download ($2) and no cargo on PATH to build keywarden from source"
  say "$2: building the scanner from the action's checkout (cargo install)"
  cargo install --locked --path "${GITHUB_ACTION_PATH:?}" --root "$root"
}

install() {
  local version target root cache base ext asset status expected got dir exe
  resolve_version
  version=$VERSION
  target=$(runner_target)
  root=${KEYWARDEN_ROOT:-${RUNNER_TEMP:?}/keywarden}
  if [ -z "$version" ]; then
    build_from_source "$root" "the action's ref ${ACTION_REF:-(none)} is not a version tag"
  elif [ -z "$target" ]; then
    build_from_source "$root" "no release binary for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}"
  else
    base=${INPUT_RELEASE_URL:-}
    if [ -z "$base" ]; then
      [ -n "${ACTION_REPOSITORY:-}" ] || fail "no release-url given and the action's repository is unknown"
      base=${GITHUB_SERVER_URL:-https://github.com}/$ACTION_REPOSITORY/releases/download
    fi
    base=${base%/}/v$version
    ext=tar.gz
    case $target in *windows*) ext=zip ;; esac
    asset=keywarden-$version-$target.$ext
    cache=${KEYWARDEN_CACHE:-$HOME/.cache/keywarden}/$version-$target
    mkdir -p "$cache"
    status=$(fetch "$base/$asset.sha256" "$cache/$asset.sha256")
    case $status in
      200) ;;
      404 | 410)
        rm -f "$cache/$asset.sha256"
        if [ -n "${INPUT_VERSION:-}" ]; then
          fail "keywarden $version has no $asset at $base (HTTP $status)"
        fi
        build_from_source "$root" "the tag v$version has no release asset $asset at $base"
        echo "$root/bin" >> "${GITHUB_PATH:?}"
        return
        ;;
      *) fail "cannot download $base/$asset.sha256 (HTTP $status): check release-url" ;;
    esac
    expected=$(head -c 200 "$cache/$asset.sha256" | awk 'NR == 1 {print tolower($1)}')
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || fail "$asset.sha256 from $base holds no SHA-256"
    if [ -f "$cache/$asset" ] && [ "$(sha256_of "$cache/$asset")" = "$expected" ]; then
      say "using the cached $asset"
    else
      status=$(fetch "$base/$asset" "$cache/$asset.part")
      [ "$status" = 200 ] || { rm -f "$cache/$asset.part"; fail "cannot download $base/$asset (HTTP $status)"; }
      got=$(sha256_of "$cache/$asset.part")
      if [ "$got" != "$expected" ]; then
        rm -f "$cache/$asset.part"
        fail "$asset from $base does not match its published SHA-256 (expected $expected, got $got); not installed"
      fi
      mv "$cache/$asset.part" "$cache/$asset"
    fi
    dir=$(mktemp -d)
    case $ext in
      zip) unzip -q "$cache/$asset" -d "$dir" ;;
      *) tar -xzf "$cache/$asset" -C "$dir" ;;
    esac
    exe=keywarden
    case $target in *windows*) exe=keywarden.exe ;; esac
    [ -f "$dir/keywarden-$version-$target/$exe" ] || fail "$asset holds no keywarden-$version-$target/$exe"
    mkdir -p "$root/bin"
    mv -f "$dir/keywarden-$version-$target/$exe" "$root/bin/$exe"
    rm -rf "$dir"
    say "keywarden $version ($target) from $base, SHA-256 $expected verified"
  fi
  echo "$root/bin" >> "${GITHUB_PATH:?}"
}

case ${1:-} in
  resolve)
    resolve_version
    echo "version=$VERSION"
    echo "target=$(runner_target)"
    ;;
  install) install ;;
  *) echo "usage: $0 resolve|install" >&2; exit 2 ;;
esac
