#!/usr/bin/env bash
# Reproduce the paper's results:  ./reproduce.sh mnist [--profile quick|paper|smoke] [more runner flags]
#                                 ./reproduce.sh toy                      (Figure 1, < 2 min on a CPU)
#                                 ./reproduce.sh celeba --data-root DIR   (Figure 2 right, Tables 1-2; a GPU job)
#                                 ./reproduce.sh test
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-mnist}"
shift || true
case "$target" in
  mnist)
    python -m benchmarks.run --dataset mnist --out results/mnist "$@"
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
