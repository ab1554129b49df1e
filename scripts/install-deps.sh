#!/usr/bin/env bash
# Installs the Debian packages seek.c builds against, only those that are missing.
# Idempotent: a second run installs nothing. Used by `make demo`, `make test` and .ci/run.
# CUDA is not installed here: nvcc is picked up by the Makefile when present (NO_CUDA=1 skips it).
#   --browser   instead: Debian's chromium, for the browser test of a rendered lesson page
#               (tests/cli_browser.sh; `make test` asks for it). Never fatal: where it cannot be
#               installed the script says so and exits 0, and the test says it was skipped.
set -euo pipefail

if [ "${1:-}" = --browser ]; then
  if command -v chromium >/dev/null; then echo "install-deps: chromium present"; exit 0; fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
      echo "install-deps: chromium is not installed and this needs root (apt-get install chromium): the browser test will be skipped"
      exit 0
    fi
    SUDO="sudo -n"
  fi
  echo "install-deps: installing chromium (for the browser test of a lesson page)"
  export DEBIAN_FRONTEND=noninteractive
  if $SUDO apt-get update -qq </dev/null && $SUDO apt-get install -y -qq --no-install-recommends chromium </dev/null; then
    echo "install-deps: done"
  else
    echo "install-deps: chromium could not be installed: the browser test will be skipped"
  fi
  exit 0
fi

PKGS=(
  build-essential   # gcc, make
  pkg-config        # feature detection in the Makefile
  libopenblas-dev   # cblas sgemm for the fast CPU path
  libpng-dev        # PNG pictures
  libjansson-dev    # config.json, tokenizer.json, safetensors headers
  libedit-dev       # REPL line editing
  libcmark-dev      # Markdown to HTML for lesson pages (seek lesson --html, make lessons)
  libpcre2-dev      # tokenizer pre-tokenizer regexes
  libutf8proc-dev   # tokenizer NFC normalizer
  libcmocka-dev     # unit-test framework
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
