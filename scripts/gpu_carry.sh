#!/usr/bin/env bash
# Fill .carry/ (ignored by git) with what scripts/gpu_run.sh needs on a bare GPU machine: the shared
# real set re-encoded at 64 px keeping its splits (.carry/faces64.zip) and the Python 3.12 wheels of what
# may be missing there (.carry/wheels/). Prints the total with the repository, which must stay under
# the 64 MiB that travels. Run on the development machine, from anywhere:
#   scripts/gpu_carry.sh [--data ZIP] [--wheels tqdm,numpy,pillow] [--budget-mib 64]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=../shared/data/anime-faces-96.zip
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
exec "$PY" scripts/gpu_tools.py carry --data "$DATA" --out .carry "${ARGS[@]+"${ARGS[@]}"}"
