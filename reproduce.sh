#!/usr/bin/env bash
# Reproduce the paper's results:  ./reproduce.sh mnist [--profile quick|paper|smoke] [more runner flags]
#                                   retrains Table 3's systems into results/mnist[-<profile>] and FSQ /
#                                   residual VQ into results/mnist[-<profile>]-modern, then writes each
#                                   folder's real files (benchmarks.files: entropy-coded codes, JPEG, WebP),
#                                   tables and reproduction.md (the new rows against the ones the folder
#                                   held: the committed run, on a fresh clone)
#                                 ./reproduce.sh smoke [flags]            (= mnist --profile smoke --no-inception)
#                                 ./reproduce.sh toy                      (Figure 1, about 4 min on a 2-core CPU)
#                                 ./reproduce.sh celeba --data-root DIR   (Figure 2 right, Tables 1-2; a GPU job)
#                                 ./reproduce.sh test
# Data: --data-root DIR or $HQA_DATA_ROOT (e.g. ../shared/data/mnist-5k); with neither, MNIST is
# downloaded once by torchvision into ~/.cache/hqa-data (one line says so).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-mnist}"
shift || true

mnist() {
  # The profile and --out decide both folders: results/mnist (quick), results/mnist-paper, results/mnist-smoke.
  # --out is taken out of the flags so that each run's recorded command names its own folder once.
  local profile=quick out="" prev="" arg
  local -a flags=()
  for arg in "$@"; do
    case "$prev" in
      --profile) profile="$arg" ;;
      --out) out="$arg"; prev=""; continue ;;
    esac
    case "$arg" in
      --profile=*) profile="${arg#--profile=}" ;;
      --out=*) out="${arg#--out=}"; prev=""; continue ;;
      --out) prev="$arg"; continue ;;
    esac
    flags+=("$arg")
    prev="$arg"
  done
  if [ "$prev" = --out ]; then
    echo "reproduce.sh: --out needs a folder" >&2
    exit 2
  fi
  if [ -z "$out" ]; then
    out="results/mnist"
    [ "$profile" = quick ] || out="results/mnist-$profile"
  fi
  # the paper's seven systems (Table 3), then FSQ and residual VQ beside HQA, VQ-VAE and k-means
  python -m benchmarks.run --dataset mnist --systems paper --reproduce --download --files "${flags[@]}" --out "$out"
  python -m benchmarks.run --dataset mnist --systems modern --reproduce --download --files "${flags[@]}" \
      --out "$out-modern" --compare-with "$out:hqa,vqvae,kmeans"
}

case "$target" in
  mnist)
    mnist "$@"
    ;;
  smoke)
    mnist --profile smoke --no-inception "$@"
    ;;
  test)
    python -m pytest "$@"
    ;;
  toy)
    python -m benchmarks.toy --out results/toy "$@"
    ;;
  celeba)
    python -m benchmarks.run --dataset celeba --out results/celeba "$@"
    ;;
  *)
    echo "usage: ./reproduce.sh mnist|toy|celeba|smoke|test [runner flags]" >&2
    exit 2
    ;;
esac
