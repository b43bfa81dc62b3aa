#!/usr/bin/env bash
# One entry point for newcomers:
#   ./dev.sh run [args]   set up and run the platform (web, gateway, worker, cron) on embedded defaults
#                         (installs requirements.txt: production only)
#   ./dev.sh test [args]  set up and run the whole test suite (pytest args pass through)
#                         (installs requirements-dev.txt: production + test and lint tools)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  # $1: the requirements file to install (requirements.txt or requirements-dev.txt, which includes it)
  local reqs=$1
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  local stamp=".venv/.${reqs%.txt}.sha"
  local want
  want=$(cat requirements.txt "$reqs" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r "$reqs"
    echo "$want" > "$stamp"
  fi
  # ECharts for the order/report charts: vendored from npm, never a CDN (not committed)
  if [ ! -f app/static/vendor/echarts.min.js ] && command -v npm >/dev/null 2>&1; then
    if npm install --no-audit --no-fund --prefix .cache/npm echarts@5 >/dev/null; then
      mkdir -p app/static/vendor
      cp .cache/npm/node_modules/echarts/dist/echarts.min.js app/static/vendor/echarts.min.js
    else
      echo "warning: could not install echarts; charts show a notice instead" >&2
    fi
  fi
}

browser_setup() {
  # browser tests drive Debian's chromium (Playwright cannot download its own browser here)
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  run)
    setup requirements.txt
    exec .venv/bin/python run.py "$@"
    ;;
  test)
    setup requirements-dev.txt
    browser_setup
    set +e
    .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi
    exit "$rc"
    ;;
  *)
    echo "usage: ./dev.sh run|test [args]" >&2
    exit 2
    ;;
esac
