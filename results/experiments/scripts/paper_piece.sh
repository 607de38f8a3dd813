#!/usr/bin/env bash
# Issue 25: one unattended piece of the `paper` sweep on the device machine, in one device call.
#
#   [JOBS=8] [MEASURE=1] [PROFILE=paper] [DEVICE=cuda] [SYSTEMS=paper] [SEEDS=10] \
#       bash results/experiments/scripts/paper_piece.sh [BUDGET_SECONDS]
#
# From the repository root of the device machine's copy, with carried: exp/data (the offline
# MNIST, torchvision layout) and, if the machine lacks this torch, .whl/*.whl. BUDGET_SECONDS
# (default 540, under the tool's 600 s per call) bounds the whole call: the packing measure
# (MEASURE=1, at most a third of it), then the sweep until 45 s before the end, then the tarballs.
# The sweep resumes from the committed rows of results/mnist-<profile> (the runner skips finished
# cells; a cell cut short is trained again next visit). A folder of another code version or
# another run (e.g. the one-seed rows made before the validation split) is moved aside first,
# to <folder>.retired-<version>, and not sent back. What comes back under $OUT:
#   env.txt           GPU, driver, cores, torch and code version
#   packing.jsonl     (MEASURE=1) ms per step per layer at 1/2/4/8 processes per GPU, utilisation
#   utilisation.csv   nvidia-smi samples every 2 s while the sweep trains
#   run.log           the runner's output, written as it runs, and its exit code
#   mnist-<profile>.tgz  the sweep's folder without models/ (rows, run.json, reports): commit it
#   models.tgz        models/ when it is under 48 MiB (for the files step and figures)
# Tried on a CPU:
#   PROFILE=smoke DEVICE=cpu JOBS=2 SEEDS=1 SYSTEMS=hqa,kmeans OUT=/tmp/piece \
#       bash results/experiments/scripts/paper_piece.sh 150
set -u -o pipefail
BUDGET=${1:-540}
t0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - t0) )); }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PROFILE=${PROFILE:-paper}; DEVICE=${DEVICE:-cuda}; JOBS=${JOBS:-8}; SYSTEMS=${SYSTEMS:-paper}; SEEDS=${SEEDS:-10}
RES=results/mnist-$PROFILE
export HQA_DATA_ROOT=${HQA_DATA_ROOT:-$PWD/exp/data} HQA_CACHE_DIR=${HQA_CACHE_DIR:-/tmp/hqa-cache} PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
VERSION=$(python3 -c "from benchmarks.store import code_version; print(code_version())")
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; echo "cores $(nproc)"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "code version $VERSION"; } 2>&1 | tee "$OUT/env.txt"
# Rows of another code version or training set cannot be resumed: start that folder afresh.
if [ -f "$RES/run.json" ]; then
  old=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('code_version', '?'))" "$RES/run.json")
  if [ "$old" != "$VERSION" ]; then
    mv "$RES" "$RES.retired-$old" && echo "moved $RES (code version $old) to $RES.retired-$old" | tee -a "$OUT/env.txt"
  fi
fi
if [ "${MEASURE:-0}" = 1 ]; then
  timeout $(( BUDGET / 3 )) python3 results/experiments/scripts/gpu_packing.py measure 1,2,4,8 600 --device "$DEVICE" \
    2>>"$OUT/packing.err" | tee "$OUT/packing.jsonl"
fi
( while sleep 2; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; done \
    >> "$OUT/utilisation.csv" ) &
sampler=$!
run_for=$(( $(left) - 45 ))
echo "sweep for $run_for s" | tee "$OUT/run.log"
# SIGINT first (finished cells' rows are already written atomically), a kill 15 s later if need be.
timeout -s INT -k 15 "$run_for" python3 -m benchmarks.run --profile "$PROFILE" --systems "$SYSTEMS" \
  --seeds "$SEEDS" --device "$DEVICE" --jobs "$JOBS" --no-inception --out "$RES" 2>&1 \
  | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -i -e "warn" -e "it/s\]$" >> "$OUT/run.log"
status=${PIPESTATUS[0]}
echo "runner exit code $status after $(( $(date +%s) - t0 )) s of the call (124/130: cut by the budget)" | tee -a "$OUT/run.log"
kill $sampler 2>/dev/null
ls "$RES"/rows 2>/dev/null | tee "$OUT/cells.txt"
tar czf "$OUT/$(basename "$RES").tgz" --exclude="models" --exclude="leases" --exclude="progress" --exclude="stale-*" "$RES"
if [ -d "$RES/models" ] && [ "$(du -sm "$RES/models" | cut -f1)" -lt 48 ]; then
  tar czf "$OUT/models.tgz" "$RES/models"
fi
ls -la "$OUT"
