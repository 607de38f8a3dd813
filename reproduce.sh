#!/usr/bin/env bash
# Reproduce the paper's results:  ./reproduce.sh mnist [--profile quick|paper|smoke] [more runner flags]
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
  toy|celeba)
    echo "reproduce.sh $target: not yet implemented (issues 6 and 7)" >&2
    exit 2
    ;;
  *)
    echo "usage: ./reproduce.sh mnist|smoke|test|toy|celeba [runner flags]" >&2
    exit 2
    ;;
esac
