#!/usr/bin/env bash
# One GPU-machine session for docs/perf/cuda.md: CUDA op + golden tests, cuda_bench (GEMV/GEMM vs
# a D2D copy), hearth benchmark on random Llama-3.2-1B / 3.1-8B bf16 folders, and the HF PyTorch
# peer on the same folders. Expects the carried folder layout of .cudarun-fast:
#   bin/{hearth,op_tests,model_tests,cuda_bench} (or bin.tar.xz of them), lib/ (libutf8proc, libfmt), this script,
#   hf_peer.py, make_random_model_gpu.py; the repo's tools/ and tests/data beside it.
# Usage (repo root on the GPU machine): bash .cudarun-fast/device_run.sh STAGES  (default: all)
#   stages: tests bench models hearth profile peer
set -u
C=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# The binaries may travel as bin.tar.xz (stripped; the CUDA kernels make them ~15 MB each).
[ -d "$C/bin" ] || tar -xJf "$C/bin.tar.xz" -C "$C"
CUBLAS_PY=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null || true)
export LD_LIBRARY_PATH="$C/lib:/usr/local/cuda/lib64:${CUBLAS_PY}:${LD_LIBRARY_PATH:-}"
STAGES=${1:-"tests bench models hearth profile peer"}
log() { echo "== $(date +%T) $*"; }
# Test binaries look for tests/data at the dev VM's absolute path.
DATA_DIR=${HEARTH_BUILD_TESTS_DATA:-/work/wt/cudafast/tests/data}
mkdir -p "$(dirname "$DATA_DIR")" && ln -sfn "$ROOT/tests/data" "$DATA_DIR"

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
ldd "$C/bin/hearth" | grep -E "not found|cublas|fmt|utf8" || true

for s in $STAGES; do
  case $s in
  tests)
    log op_tests
    "$C/bin/op_tests" --gtest_filter='Cuda*' 2>&1 | tail -n 60 | tee "$OUT/op_tests.log" | grep -E "FAILED|PASSED|SKIPPED|max normalized|error" | head -80
    log model_tests
    "$C/bin/model_tests" --gtest_filter='*cuda*:*Cuda*' 2>&1 | tail -n 40 | tee "$OUT/model_tests.log" | grep -E "FAILED|PASSED|SKIPPED|tests ran" | head -40
    ;;
  bench)
    log cuda_bench
    "$C/bin/cuda_bench" --reps 5 2>&1 | tee "$OUT/cuda_bench.log"
    ;;
  models)
    log models
    python3 "$C/make_random_model_gpu.py" tools/random_model/configs/llama-3.2-1b.json /tmp/m1b
    python3 "$C/make_random_model_gpu.py" tools/random_model/configs/llama-3.1-8b.json /tmp/m8b
    ;;
  hearth)
    for m in m1b m8b; do
      log "hearth $m prefill 2048"
      "$C/bin/hearth" benchmark --model /tmp/$m --device cuda -p 2048 -g 8 -n 2 2>&1 | tee -a "$OUT/hearth_$m.log" | grep -E "Averages|Decode roofline|rror"
      log "hearth $m decode"
      "$C/bin/hearth" benchmark --model /tmp/$m --device cuda -p 32 -g 128 -n 2 2>&1 | tee -a "$OUT/hearth_$m.log" | grep -E "Averages|Decode roofline|rror"
    done
    ;;
  profile)
    # Per-op host vs GPU time of short-context decode (HEARTH_CUDA_PROFILE, op_profile.h).
    for m in m1b m8b; do
      log "profile $m"
      HEARTH_CUDA_PROFILE=1 "$C/bin/hearth" benchmark --model /tmp/$m --device cuda -p 32 -g 64 -n 1 > "$OUT/profile_$m.log" 2>&1
      grep -A20 "HEARTH_CUDA_PROFILE" "$OUT/profile_$m.log" | head -24
    done
    ;;
  peer)
    for m in m1b m8b; do
      log "hf peer $m"
      PYTHONUNBUFFERED=1 timeout 170 python3 "$C/hf_peer.py" /tmp/$m --prompt 2048 --gen 128 --compile 2>&1 | tee "$OUT/peer_$m.log" | grep -E "HF_PEER|Error|error" | head -8
    done
    ;;
  esac
done
log done
