#!/usr/bin/env bash
# The prepared GPU run: benchmark and train on a bare GPU machine, in one command, in under 6 minutes.
#
#   scripts/gpu_run.sh [--out DIR] [--minutes M] [--carry DIR]     # on a GPU machine (default: $OUT, 3 min)
#   scripts/gpu_run.sh --rehearse [--out DIR] [--carry DIR] [--data SRC] [--minutes M]   # the same phases on
#                                                          # this CPU, tiny (a 0.5-minute training budget)
#
# Needs Python with torch and torchvision (2.11 / 0.26 and newer are supported), no network, and the
# carry folder made by scripts/gpu_carry.sh (.carry/: the faces at 64 px, wheels of what may be missing).
# A rehearsal without a carry folder makes a small one itself (from ../shared/data when present, else
# from the built-in synthetic set) and downloads nothing.
#
# Phases, each with its own time limit: 1 setup (60 s), 2 cache (30 s), 3 bench (90 s), 4 train (the
# budget + 75 s), SWD on the test split (n=2000) and export (60 s). Out (at most 8 files): the exported
# checkpoint, its 64-face grid, bench.json, metrics.jsonl, evals.jsonl, swd_test.json, gpu_run.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
REHEARSE=0
OUTDIR=${OUT:-}
MINUTES=   # the training budget: 3 minutes on a GPU, 0.5 in a rehearsal, unless given
CARRY=.carry
SRC=
while [ $# -gt 0 ]; do
  case "$1" in
    --rehearse) REHEARSE=1; shift ;;
    --out) OUTDIR=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --carry) CARRY=$2; shift 2 ;;
    --data) SRC=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_run.sh: unknown option $1 (see --help)"; exit 2 ;;
  esac
done
if [ -z "$OUTDIR" ]; then echo "gpu_run.sh: say where the results go: --out DIR (or set \$OUT)"; exit 2; fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && [ "$REHEARSE" = 1 ]; then PY=.venv/bin/python; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_run.XXXXXX")
export ANIMEGAN_HOME=$WORK/home PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO:$CARRY/site${PYTHONPATH:+:$PYTHONPATH}"
LOG=$OUTDIR/gpu_run.log
: > "$LOG"
say() { echo "[gpu_run $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
T0=$(date +%s)
# phase NAME SECONDS CMD...: run with a time limit, output into the log; returns the command's status.
# The limits are the GPU machine's; a rehearsal on a (possibly busy) CPU gets five times as long.
phase() {
  local name=$1 limit=$2; shift 2
  [ "$REHEARSE" = 1 ] && limit=$(( limit * 5 ))
  local t=$(date +%s)
  say "phase $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  say "phase $name: exit $rc after $(( $(date +%s) - t ))s"
  return $rc
}

# -- 0. the device ----------------------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then
  DEVICE=cpu
  say "rehearsal on the CPU: tiny width, a 30-second budget, a few hundred faces"
else
  if ! timeout 30 "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    say "no CUDA GPU visible here (or no torch): nothing to do. Run on a GPU machine, or rehearse with --rehearse."
    exit 3
  fi
  DEVICE=cuda
  timeout 30 "$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))" 2>&1 | tee -a "$LOG"
fi

# -- 1. setup ---------------------------------------------------------------------------------
if [ ! -f "$CARRY/faces64.zip" ]; then
  if [ "$REHEARSE" = 1 ]; then
    if [ -z "$SRC" ]; then
      SRC=synthetic
      [ -f ../shared/data/anime-faces-96.zip ] && SRC=../shared/data/anime-faces-96.zip
    fi
    phase carry 120 "$PY" scripts/gpu_tools.py carry --data "$SRC" --out "$CARRY" --max-train 400 --max-eval 200 --wheels "" \
      || { say "could not make a rehearsal carry folder"; exit 4; }
  else
    say "no carry folder at $CARRY (faces64.zip): run scripts/gpu_carry.sh on the development machine first"
    exit 4
  fi
fi
SETUP=(scripts/gpu_tools.py setup --carry "$CARRY")
[ "$REHEARSE" = 1 ] && SETUP+=(--rehearse)
phase setup 60 "$PY" "${SETUP[@]}" || { say "setup failed: see above"; exit 5; }
DATA=$CARRY/faces64.zip

# -- 2. cache ---------------------------------------------------------------------------------
phase cache 30 "$PY" -m animegan prepare --data "$DATA" --size 64 || { say "the carried faces could not be prepared"; exit 6; }

# -- 3. bench ---------------------------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then
  phase bench 90 "$PY" scripts/bench.py --device cpu --tiny --training-only --data "$DATA" --json "$OUTDIR/bench.json"
else
  # widths 64/64 at 64 px, batch 256 (anime64-gpu's), bf16 by default, fp32 / channels_last / compile beside it
  phase bench 90 "$PY" scripts/bench.py --device cuda --quick --training-only --compile --budget-s 45 --batch 256 --width 64 \
    --data "$DATA" --json "$OUTDIR/bench.json"
fi
[ -f "$OUTDIR/bench.json" ] || say "bench: no JSON (see the log); going on to training"

# -- 4. train, evaluate, export ----------------------------------------------------------------
RUN=$WORK/run
TRAIN=(-m animegan train --preset anime64-gpu --data "$DATA" --out "$RUN" --no-progress --device "$DEVICE")
if [ "$REHEARSE" = 1 ]; then
  MINUTES=${MINUTES:-0.5}
  TRAIN+=(--ngf 8 --ndf 8 --batch-size 16 --eval-n 50 --eval-kimg 1 --log-every 5 --compile off --threads 2)
fi
MINUTES=${MINUTES:-3}
TRAIN+=(--minutes "$MINUTES")
LIMIT=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 75 }')
phase train "$LIMIT" "$PY" "${TRAIN[@]}"
TRAIN_RC=$?
[ -f "$RUN/train.log" ] && { echo "---- train.log"; cat "$RUN/train.log"; echo "----"; } >> "$LOG"
for f in metrics.jsonl evals.jsonl; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUTDIR/$f"; done
if [ -f "$RUN/checkpoints/last.pt" ]; then
  CK=$OUTDIR/anime64-gpu.pt
  phase export 60 "$PY" -m animegan export "$RUN" --out "$CK"
  phase swd 90 bash -c "\"$PY\" -m animegan swd --checkpoint \"$CK\" --data \"$DATA\" --split test --n 2000 --device $DEVICE --json > \"$OUTDIR/swd_test.json\""
  phase grid 60 "$PY" -m animegan generate --checkpoint "$CK" --seed 0 --n 64 --out "$OUTDIR/anime64-gpu-seed0.png"
else
  say "training left no checkpoint (exit $TRAIN_RC): see the log"
fi

"$PY" scripts/gpu_tools.py summary --out "$OUTDIR" 2>&1 | tee -a "$LOG"
say "done in $(( $(date +%s) - T0 ))s"
rm -rf "$WORK"
[ -f "$OUTDIR/swd_test.json" ] && [ "$TRAIN_RC" = 0 ]
