#!/usr/bin/env bash
# cli_docs.sh: the repository explains itself (issue 22, "The docs"). Over every file git knows
# (tracked, or new and not ignored; .ci/ and tests/fixtures/ left out: the first is the machinery
# that runs sessions, the second data whose bytes are goldens):
#   1. nothing cites a document outside the repository: no "spec §N" / "spec section N" of the
#      DeepSeek notes the project began from, no deepseek-spec / spec.md file name, no link into
#      ../shared (the GPU machine's folder) or shared/docs;
#   2. every "docs/model.md §N[.M]" cited anywhere (and each ", §N.M" / " and §N.M" listed right
#      after it) is a numbered heading of docs/model.md;
#   3. every relative Markdown link in README.md, docs/*.md and lessons/*.md names a file or folder
#      that exists.
# Controls, so the checks cannot pass by finding nothing: the patterns must catch a planted
# citation and a planted link, and the heading list must hold the sections the code cites most.
# Needs git (the file list); runs the same in the release and sanitizer halves (no binary used).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "SKIP not a git checkout: the file list comes from git ls-files"
  exit 77
fi
self=tests/cli_docs.sh
git ls-files --cached --others --exclude-standard | grep -v -e '^\.ci/' -e '^tests/fixtures/' -e "^$self\$" |
  while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done | sort -u >"$TMP/files"
[ -s "$TMP/files" ] && ok || bad "no files listed by git ls-files"

# ---- 1. no citation of, or link to, anything outside the repository ----
outside() { # FILE...: the offending lines, FILE:LINE:TEXT
  grep -I -n -i -E 'spec §|spec section [0-9]|deepseek-spec|project spec' "$@" 2>/dev/null
  grep -I -n -E 'spec\.md|\.\./shared/|shared/docs/' "$@" 2>/dev/null
}
printf 'see the spec §1.4 there\n' >"$TMP/plant1.c"
printf 'as [the notes](../shared/docs/x.md) say\n' >"$TMP/plant2.md"
[ "$(outside "$TMP/plant1.c" "$TMP/plant2.md" | wc -l)" = 2 ] && ok || bad "control: the outside-citation patterns missed a planted line"
tr '\n' '\0' <"$TMP/files" | xargs -0 bash -c "$(declare -f outside); outside \"\$@\"" _ >"$TMP/outside" || true
if [ -s "$TMP/outside" ]; then
  bad "$(wc -l <"$TMP/outside") line(s) cite or link a document outside the repository (cite docs/model.md instead):"
  sed 's/^/    /' "$TMP/outside" | head -40
else
  ok
fi

# ---- 2. every docs/model.md section cited exists ----
MD=docs/model.md
if [ -f "$MD" ]; then
  # headings "## 5. Title" / "### 5.4 Title": the number, trailing dot dropped
  awk '/^##+ [0-9]/ { n = $2; sub(/\.$/, "", n); print n }' "$MD" | sort -u >"$TMP/sections"
  for s in 2.1 4.5 5.5 6.4 7 8; do
    grep -qx "$s" "$TMP/sections" && ok || bad "control: $MD has no heading numbered $s"
  done
else
  : >"$TMP/sections"
  bad "$MD is missing"
fi
tr '\n' '\0' <"$TMP/files" | xargs -0 grep -I -H -o -E \
  'docs/model\.md §[0-9]+(\.[0-9]+)*((,| and) §[0-9]+(\.[0-9]+)*)*' 2>/dev/null >"$TMP/cites" || true
[ -s "$TMP/cites" ] && ok || bad "no file cites docs/model.md §N: the citation pattern found nothing"
missing=0
while IFS= read -r line; do
  file=${line%%:*}
  for n in $(printf '%s\n' "${line#*:}" | grep -o -E '§[0-9]+(\.[0-9]+)*' | tr -d '§'); do
    if ! grep -qx "$n" "$TMP/sections"; then
      missing=$((missing + 1))
      bad "$file cites $MD §$n, which is not a heading of $MD"
    fi
  done
done <"$TMP/cites"
[ $missing = 0 ] && ok

# ---- 3. relative links in the Markdown pages resolve ----
broken=0
for page in README.md docs/*.md lessons/*.md; do
  [ -f "$page" ] || continue
  dir=$(dirname "$page")
  # ](target) with the target up to a ')' or space; skip URLs, mail and in-page anchors
  for target in $(grep -o -E '\]\([^) ]+\)' "$page" | sed -E 's/^\]\(//; s/\)$//'); do
    case "$target" in http://*|https://*|mailto:*|'#'*) continue ;; esac
    path=${target%%#*}
    [ -z "$path" ] && continue
    if [ ! -e "$dir/$path" ]; then
      broken=$((broken + 1))
      bad "$page links $target, which does not exist"
    fi
  done
done
[ $broken = 0 ] && ok

finish
