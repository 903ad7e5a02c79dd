#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU (CI has none):
# the CUDA tests, then the levers, the speed script and the precision script on the GPU.
#
#   SKAE_DATA=../shared/data OUT=/tmp/skae-gpu bash benchmarks/run_gpu.sh [--compile]
#       [--no-levers] [--suite]
#
# Everything lands in $OUT: run.log (all output), levers_cuda.md, speed_cuda.md and .csv,
# precision_cuda.md.
# --compile also times the plain loop under torch.compile (first epochs compile: minutes).
# --no-levers skips the levers; --suite then runs the whole test suite with CUDA present.
# It runs from the repository's root wherever it is called from (a relative OUT or SKAE_DATA
# is taken from the calling directory). A failed step does not stop the later ones; the
# exit status is 1 if any failed, and the log ends with a list of them.
set -uo pipefail
compile=--no-compile levers=1 suite=0
for arg in "$@"; do
  case $arg in
    --compile) compile= ;;
    --no-levers) levers=0 ;;
    --suite) suite=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT=$(absolute "${OUT:-/tmp/skae-gpu}")
if [ -n "${SKAE_DATA:-}" ]; then export SKAE_DATA=$(absolute "$SKAE_DATA"); fi
mkdir -p "$OUT" || exit 1
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

failed=()
step() {  # step NAME COMMAND...: run the command; remember NAME if it fails
  local name=$1
  shift
  "$@"
  local status=$?
  if [ $status != 0 ]; then
    echo "!! $name: exit status $status"
    failed+=("$name")
  fi
}
{
  date -u
  step nvidia-smi nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  step versions python3 -c "import numpy, sklearn, torch; print('numpy', numpy.__version__,
'sklearn', sklearn.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== CUDA tests"
  step "CUDA tests" timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts=-ra \
    tests/test_gpu.py
  if [ $levers = 1 ]; then
    echo "== levers"
    step levers timeout 150 python3 benchmarks/levers.py --device cuda --out "$OUT"
  fi
  echo "== speed"
  step speed timeout 400 python3 benchmarks/speed.py --device cuda $compile --out "$OUT"
  echo "== precision (bfloat16 against float32, CUDA graphs as in training)"
  step precision timeout 150 python3 benchmarks/precision.py --device cuda --out "$OUT"
  if [ $suite = 1 ]; then
    echo "== the whole suite, CUDA present"
    step suite timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts=-ra tests \
      --deselect tests/test_gpu.py
  fi
  if [ ${#failed[@]} != 0 ]; then
    echo "== ${#failed[@]} step(s) failed: ${failed[*]}"
    exit 1
  fi
} 2>&1 | tee "$OUT/run.log"
