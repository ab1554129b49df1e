#!/usr/bin/env bash
# Fetches the tiny models' training corpus from Debian's package registry into build-data/corpus/
# (git-ignored; never committed): the King James Bible (packages bible-kjv + bible-kjv-text; the
# `bible` program prints the whole text) and the fortune-cookie collection (package fortunes),
# both public domain / freely redistributable English. Packages are downloaded, not installed
# (apt-get download + dpkg -x), pinned by version, and the texts checked by SHA-256.
#   bash scripts/fetch_corpus.sh [DEST]
# Writes DEST/kjv.txt (verse text, one verse per line, no headings or numbers),
# DEST/fortunes.txt (one fortune per paragraph) and DEST/corpus.txt (both). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-build-data/corpus}
PKGS=(bible-kjv=4.38 bible-kjv-text=4.38 fortunes=1:1.99.1-7.3)
SHA_KJV=b5c4940bcfeee072c0935b5200d0f9d88a00a0199cb0961d16133458fcdfae5d
mkdir -p "$DEST"
if [ -s "$DEST/corpus.txt" ] && [ -s "$DEST/kjv.txt" ] && [ -s "$DEST/fortunes.txt" ]; then
  echo "fetch_corpus: $DEST/corpus.txt ready"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && apt-get download "${PKGS[@]}" >"$tmp/apt.log" 2>&1 ) || {
  ( apt-get update -qq >/dev/null 2>&1 && cd "$tmp" && apt-get download "${PKGS[@]}" >"$tmp/apt.log" 2>&1 ) || {
    echo "fetch_corpus: 'apt-get download ${PKGS[*]}' failed: $(tail -n 1 "$tmp/apt.log")" >&2; exit 1; }
}
for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/x"; done
# KJV: every verse, Genesis to Revelation; drop chapter headings and verse numbers, join wrapped lines
"$tmp/x/usr/bin/bible" -p "$tmp/x/usr/lib" "gen1:1-rev22:21" |
  awk '/^[A-Za-z0-9 ]+ [0-9]+$/ { next }                      # "Genesis 1" chapter headings
       /^ *[0-9]+ / { if (v != "") print v; sub(/^ *[0-9]+ /, ""); v = $0; next }
       /^$/ { next }
       { v = v " " $0 }
       END { if (v != "") print v }' >"$tmp/kjv.txt"
# fortunes: the plain-text files (not the .dat indexes), '%' lines separate fortunes
find "$tmp/x/usr/share/games/fortunes" -type f ! -name '*.dat' ! -name '*.u8' | sort | while read -r f; do
  awk '/^%$/ { print ""; next } { print }' "$f"; echo
done | cat -s >"$tmp/fortunes.txt"
got=$(sha256sum "$tmp/kjv.txt" | cut -d' ' -f1)
if [ "$got" != "$SHA_KJV" ]; then
  echo "fetch_corpus: the KJV text's SHA-256 is $got, expected $SHA_KJV (package changed?)" >&2
  exit 1
fi
cp "$tmp/kjv.txt" "$tmp/fortunes.txt" "$DEST/"
cat "$DEST/kjv.txt" "$DEST/fortunes.txt" >"$DEST/corpus.txt"
echo "fetch_corpus: $DEST/corpus.txt ready ($(wc -c <"$DEST/kjv.txt") bytes of KJV, $(wc -c <"$DEST/fortunes.txt") bytes of fortunes)"
