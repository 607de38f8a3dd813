#!/usr/bin/env bash
# Reproduce the paper's results:  ./reproduce.sh mnist [--profile quick|paper|smoke] [more runner flags]
#                                   (results/mnist: Table 3's systems; results/mnist-modern: FSQ, residual VQ)
#                                 ./reproduce.sh toy                      (Figure 1, < 2 min on a CPU)
#                                 ./reproduce.sh celeba --data-root DIR   (Figure 2 right, Tables 1-2; a GPU job)
#                                 ./reproduce.sh test
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-mnist}"
shift || true
case "$target" in
  mnist)
    # the paper's seven systems (Table 3), then FSQ and residual VQ beside HQA, VQ-VAE and k-means
    python -m benchmarks.run --dataset mnist --systems paper --out results/mnist "$@"
    python -m benchmarks.run --dataset mnist --systems modern --out results/mnist-modern \
        --compare-with results/mnist:hqa,vqvae,kmeans "$@"
    ;;
  smoke)
    python -m benchmarks.run --dataset mnist --profile smoke --no-inception "$@"
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
