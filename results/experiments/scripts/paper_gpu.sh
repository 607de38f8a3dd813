#!/usr/bin/env bash
# Issue 13's GPU check: the `paper` profile, HQA and VQ-VAE, one seed, on the offline 5k MNIST
# subset (a copy in exp/data), in one device call. Rows, reports and models go to $OUT as
# two tarballs; model file times give per-layer training times if the run is cut short.
# Usage on the device machine, from the repository root (exp/data and .whl carried):
#   [SYSTEMS=hqa,vqvae] [RESUME_FROM=DIR] bash results/experiments/scripts/paper_gpu.sh [RUN_SECONDS]
set -u
RUN_SECONDS=${1:-520}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export HQA_DATA_ROOT=$PWD/exp/data HQA_CACHE_DIR=/tmp/hqa-cache PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } 2>&1 | tee "$OUT/env.txt"
RES=/tmp/paper
# RESUME_FROM: a folder of an earlier, cut-short call (its models/ and run.json): trained layers are kept.
if [ -n "${RESUME_FROM:-}" ]; then mkdir -p "$RES" && cp -r "$RESUME_FROM"/. "$RES"/; fi
start=$(date +%s)
# Each layer rewrites its cell's model file: a poll of the files' times gives per-layer times.
( while sleep 2; do find "$RES" -name '*.pt' -printf '%T@ %p\n' 2>/dev/null; done >> "$OUT/model_poll.txt" ) &
poller=$!
timeout "$RUN_SECONDS" python3 -m benchmarks.run --profile "${PROFILE:-paper}" --systems "${SYSTEMS:-hqa,vqvae}" --seeds 1 --device "${DEVICE:-cuda}" \
  --jobs 2 --no-inception --out "$RES" 2>&1 | grep -v -i "warn" | tee "$OUT/run.log"
kill $poller 2>/dev/null; sleep 1
echo "runner exit after $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"
# Per-layer model files in write order, with times (seconds since the run began).
find "$RES" -name '*.pt' -printf '%T@ %s %p\n' 2>/dev/null | sort -n | awk -v s="$start" '{printf "%.1f s  %d bytes  %s\n", $1 - s, $2, $3}' | tee "$OUT/model_times.txt"
tar czf "$OUT/paper-results.tgz" -C /tmp --exclude='paper/models' paper 2>/dev/null
tar czf "$OUT/paper-models.tgz" -C /tmp paper/models 2>/dev/null
ls -la "$OUT"
