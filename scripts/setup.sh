#!/usr/bin/env bash
# Creates .venv and installs rnnbench with its test and ray extras (tests/test_ray.py runs the Ray
# executor on a local instance), taking torch from constraints.txt.
# Usage: scripts/setup.sh [--with-browser]   (the browser is Debian's chromium, for report tests)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test,ray]'
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; browser tests will be skipped" >&2
  else
    echo "setup: chromium not installed and not root; browser tests will be skipped" >&2
  fi
fi
