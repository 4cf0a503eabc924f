#!/usr/bin/env bash
# The `keywarden-prebuilt` pre-commit hook: runs `keywarden staged` with the
# release binary of the hook's own version (Cargo.toml at the hook's `rev`),
# fetched once per version and target into pre-commit's cache and checked
# against its published SHA-256 (action/install.sh, as the Action does).
# Nothing is compiled. KEYWARDEN_RELEASE_URL overrides where the assets come
# from (a mirror, GitHub Enterprise); by default they come from the releases
# of the repository pre-commit cloned the hook from.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -1)
[ -n "$version" ] || { echo "keywarden-prebuilt: no version in $here/Cargo.toml" >&2; exit 2; }
cache=${PRE_COMMIT_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pre-commit}/keywarden-prebuilt/$version
exe=$cache/bin/keywarden
[ -x "$exe" ] || [ -x "$exe.exe" ] || {
  url=${KEYWARDEN_RELEASE_URL:-}
  if [ -z "$url" ]; then
    origin=$(git -C "$here" remote get-url origin 2>/dev/null || true)
    case $origin in
      https://*) url=${origin%.git}/releases/download ;;
      *)
        echo "keywarden-prebuilt: cannot tell where the releases of '$origin' are: set KEYWARDEN_RELEASE_URL, or use the hook id keywarden (builds from source)" >&2
        exit 2
        ;;
    esac
  fi
  echo "keywarden-prebuilt: fetching keywarden $version (once per version)" >&2
  INPUT_VERSION=$version INPUT_RELEASE_URL=$url KEYWARDEN_ROOT=$cache \
    KEYWARDEN_CACHE=$cache/download GITHUB_PATH=/dev/null \
    bash "$here/action/install.sh" install >&2 \
    || { echo "keywarden-prebuilt: no verified binary; the hook id keywarden builds from source instead" >&2; exit 2; }
}
[ -x "$exe" ] || exe=$exe.exe
exec "$exe" staged "$@"
