#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU (CI has none):
# the CUDA tests, then the levers and the speed script on the GPU.
#
#   SKAE_DATA=../shared/data OUT=/tmp/skae-gpu bash benchmarks/run_gpu.sh [--compile]
#       [--no-levers] [--suite]
#
# Everything lands in $OUT: run.log (all output), levers_cuda.md, speed_cuda.md and .csv.
# --compile also times the plain loop under torch.compile (first epochs compile: minutes).
# --no-levers skips the levers; --suite then runs the whole test suite with CUDA present.
set -uo pipefail
OUT=${OUT:-/tmp/skae-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
compile=--no-compile levers=1 suite=0
for arg in "$@"; do
  case $arg in
    --compile) compile= ;;
    --no-levers) levers=0 ;;
    --suite) suite=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import numpy, sklearn, torch; print('numpy', numpy.__version__, 'sklearn',
sklearn.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== CUDA tests"
  timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts=-ra tests/test_gpu.py
  if [ $levers = 1 ]; then
    echo "== levers"
    timeout 150 python3 benchmarks/levers.py --device cuda --out "$OUT"
  fi
  echo "== speed"
  timeout 400 python3 benchmarks/speed.py --device cuda $compile --out "$OUT"
  if [ $suite = 1 ]; then
    echo "== the whole suite, CUDA present"
    timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts=-ra tests \
      --deselect tests/test_gpu.py
  fi
} 2>&1 | tee "$OUT/run.log"
