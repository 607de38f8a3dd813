#!/usr/bin/env bash
# Issue 25: one unattended piece of the `paper` sweep on the device machine, in one device call.
#
#   [JOBS=8] [MEASURE=1] [PROFILE=paper] [DEVICE=cuda] [SYSTEMS=paper] [SEEDS=10] \
#       bash results/experiments/scripts/paper_piece.sh [RUN_SECONDS]
#
# From the repository root of the device machine's copy, with carried: exp/data (the offline
# MNIST, torchvision layout) and, if the machine lacks this torch, .whl/*.whl. The sweep resumes
# from the committed rows of results/mnist-paper (the runner skips finished cells; a cell cut
# short by the timeout is trained again next visit). What comes back under $OUT:
#   env.txt           GPU, driver, cores, torch version
#   packing.jsonl     (MEASURE=1) ms per step per layer at 1/2/4/8 processes per GPU, utilisation
#   utilisation.csv   nvidia-smi samples every 2 s while the sweep trains
#   run.log           the runner's output
#   mnist-paper.tgz   results/mnist-paper (mnist-<profile>) without models/ (rows, run.json, reports): commit it
#   models.tgz        models/ when it is under 48 MiB (for the files step and figures)
# RUN_SECONDS (default 480) bounds the sweep; MEASURE adds ~3 min before it. Test it on a CPU:
#   PROFILE=smoke DEVICE=cpu JOBS=2 SEEDS=1 SYSTEMS=hqa,kmeans OUT=/tmp/piece \
#       bash results/experiments/scripts/paper_piece.sh 120
set -u
RUN_SECONDS=${1:-480}
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
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"; echo "cores $(nproc)"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  python3 -c "from benchmarks.store import code_version; print('code version', code_version())"; } 2>&1 | tee "$OUT/env.txt"
if [ "${MEASURE:-0}" = 1 ]; then
  timeout 200 python3 results/experiments/scripts/gpu_packing.py measure 1,2,4,8 600 --device "$DEVICE" \
    2>>"$OUT/packing.err" | tee "$OUT/packing.jsonl"
fi
( while sleep 2; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; done \
    >> "$OUT/utilisation.csv" ) &
sampler=$!
start=$(date +%s)
# SIGINT first (the runner's workers stop between steps; finished cells' rows are already written
# atomically), a kill 20 s later if need be.
timeout -s INT -k 20 "$RUN_SECONDS" python3 -m benchmarks.run --profile "$PROFILE" --systems "$SYSTEMS" \
  --seeds "$SEEDS" --device "$DEVICE" --jobs "$JOBS" --no-inception --out "$RES" 2>&1 \
  | grep -v -i "warn" | tr '\r' '\n' | grep -v "it/s\]$" | tail -n 400 > "$OUT/run.log"
echo "runner exit after $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"
kill $sampler 2>/dev/null
ls "$RES"/rows 2>/dev/null | tee "$OUT/cells.txt"
tar czf "$OUT/$(basename "$RES").tgz" --exclude="models" --exclude="leases" --exclude="progress" --exclude="stale-*" "$RES"
if [ -d "$RES/models" ] && [ "$(du -sm "$RES/models" | cut -f1)" -lt 48 ]; then
  tar czf "$OUT/models.tgz" "$RES/models"
fi
ls -la "$OUT"
