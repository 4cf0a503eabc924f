#!/usr/bin/env bash
# The Action's install from a release, timed against the build from source
# it replaces: packages this checkout's release build as the release
# workflow does (.github/scripts/package.sh), serves it over HTTP on
# loopback (python3 -m http.server), and runs the Action's install step
# (action/install.sh install) with a cold cache and no cargo on PATH.
#
#   benches/action_install.sh [RUNS]      (default 5)
#
# The build from source is benches/hook_install.sh's figure (the same
# `cargo install` of the scanner-only build). KEYWARDEN_BIN: package that
# binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=${KEYWARDEN_BIN:-}
[ -n "$bin" ] || { cargo build --release --locked -q --features responder; bin=target/release/keywarden; }
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
bash .github/scripts/package.sh x86_64-unknown-linux-musl "$version" \
  --binary "$bin" --out "$work/release/v$version" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/release" "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
echo "machine: $(nproc) cores; asset $(du -h "$work/release/v$version"/*.tar.gz | cut -f1)"
for run in $(seq "$runs"); do
  rm -rf "$work/temp" "$work/home"; mkdir -p "$work/temp" "$work/home"
  start=$(date +%s.%N)
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" RUNNER_TEMP="$work/temp" \
    RUNNER_OS=Linux RUNNER_ARCH=X64 GITHUB_PATH="$work/temp/path" GITHUB_ACTION_PATH="$PWD" \
    INPUT_VERSION="$version" INPUT_RELEASE_URL="http://127.0.0.1:$port" \
    bash action/install.sh install 2>/dev/null
  end=$(date +%s.%N)
  "$work/temp/keywarden/bin/keywarden" --version >/dev/null
  printf 'run %d: install from the release %.2f s\n' "$run" "$(echo "$end - $start" | bc)"
done
