#!/usr/bin/env bash
# One entry point for newcomers:
#   ./dev.sh run [args]   set up and run the platform (web, gateway, worker, cron) on embedded defaults
#   ./dev.sh test [args]  set up and run the whole test suite (pytest args pass through)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  local stamp=.venv/.requirements.sha
  local want
  want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  run)
    setup
    exec .venv/bin/python run.py "$@"
    ;;
  test)
    setup
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
