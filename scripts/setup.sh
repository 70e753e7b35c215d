#!/usr/bin/env bash
# Set up everything tinygrad_seq needs, then run the main demo or the tests.
#   bash scripts/setup.sh demo [args]   virtualenv + extras (+ Debian graphviz if `dot` is missing), then
#                                       `tinygrad-seq vanishing [args]`
#   bash scripts/setup.sh test [args]   the same plus the test extras (pytest, hypothesis, torch==2.13.0) and
#                                       Debian chromium (browser tests of the pages), then the whole test
#                                       suite, slow tests included
# Safe to re-run: installs are skipped when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-demo}"
[ $# -gt 0 ] && shift

# debian_install PACKAGE FAILED HINT: install a Debian package as root (or with password-less sudo); when
# that fails print the one line FAILED, without apt-get print HINT, and go on either way.
debian_install() {
  local sudo=""
  if ! command -v apt-get >/dev/null 2>&1; then echo "$3"; return 0; fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else echo "$3"; return 0; fi
  fi
  echo "setup: installing Debian $1"
  ($sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1) \
    || echo "$2"
}

# `dot` draws the graphs; without it the library still writes DOT source, so a failed install only warns.
if ! command -v dot >/dev/null 2>&1; then
  debian_install graphviz "setup: could not install graphviz; pictures will be written as .dot source" \
    "setup: Graphviz 'dot' not found; install it with 'sudo apt-get install graphviz' (or 'brew install graphviz') for SVG/PNG pictures"
fi
# The page tests (tests/test_pages.py) open index.html and explore.html in headless Chromium; without it they skip.
if [ "$mode" = test ] && [ ! -x /usr/bin/chromium ]; then
  debian_install chromium "setup: could not install chromium; the browser tests of the pages will be skipped" \
    "setup: /usr/bin/chromium not found; the browser tests of the pages will be skipped (Debian: sudo apt-get install chromium)"
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
case "$mode" in
  demo) extras="viz,demos" ;;
  test) extras="viz,demos,dev" ;;
  *) echo "usage: bash scripts/setup.sh demo|test [args...]" >&2; exit 2 ;;
esac
stamp=".venv/.installed-${extras//,/-}-$(cksum < setup.cfg | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi

case "$mode" in
  demo) exec .venv/bin/tinygrad-seq vanishing "$@" ;;
  test) exec .venv/bin/python -m pytest -q "$@" ;;
esac
