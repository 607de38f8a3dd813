#!/usr/bin/env bash
# Issue 24's validation reruns, two processes at a time, one JSON line each in
# results/experiments/issue24-validation.jsonl (models kept in $MODELS for the top-layer reruns).
#   HQA_DATA_ROOT=../shared/data/mnist-5k bash results/experiments/scripts/issue24_validation.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=. OMP_NUM_THREADS=1
MODELS="${MODELS:-/tmp/val}"; mkdir -p "$MODELS"
OUT=results/experiments/issue24-validation.jsonl
run() { python results/experiments/issue24-validation.py "$@" >> "$OUT" 2>> "$MODELS/log.txt"; }
# SKIP=N: leave out the first N pairs (already in the .jsonl, e.g. after an interruption)
n_pair=0
pair() { n_pair=$((n_pair + 1)); [ "$n_pair" -le "${SKIP:-0}" ] && return; run "${@:1:$(($# / 2))}" & run "${@:$(($# / 2 + 1))}"; wait; }
# HQA's temperature start: the reference's 0.667 against the profile's 3.0, seeds 100-101
for s in 100 101; do
  pair full hqa $s temp_start=0.667 save=$MODELS/hqa-t0.667-s$s.pt  full hqa $s temp_start=3.0 save=$MODELS/hqa-t3-s$s.pt
done
# the top layer's steps: 2,028 (session 7's) against the profile's 6,006, on the 3.0 stacks
pair top $MODELS/hqa-t3-s100.pt 100 top_steps=2028  top $MODELS/hqa-t3-s101.pt 101 top_steps=2028
# VQ-VAE's reset rule (8-bit model alone), FSQ levels and residual-VQ stages (models 4-5), seed 100
pair full vqvae 100 reset_rule=least-used only=5  full vqvae 100 reset_rule=all-unused only=5
pair full fsq 100 "fsq_levels=(8, 8, 4)" only=4,5  full fsq 100 "fsq_levels=(4, 4, 4, 4)" only=4,5
pair full rvq 100 "rvq_codes=(16, 16)" only=4,5  full rvq 100 "rvq_codes=(4, 4, 4, 4)" only=4,5
# HAMs + GS and HAMs + GS + MSE on the same terms as HQA: both starts, seed 100, then seed 101
for s in 100 101; do
  for sys in hams-gs hams-gs-mse; do
    pair full $sys $s temp_start=0.667  full $sys $s temp_start=3.0
  done
done
