#!/usr/bin/env bash
# One GPU-machine session for docs/perf/cuda.md: CUDA op + golden tests, cuda_bench (GEMV/GEMM vs
# a D2D copy), hearth benchmark on random Llama-3.2-1B / 3.1-8B bf16 folders, and the HF PyTorch
# peer on the same folders. Expects the carried folder layout of .cudarun-fast:
#   bin/{hearth,op_tests,model_tests,cuda_bench} (or bin.tar.xz of them), lib/ (libutf8proc, libfmt), this script,
#   hf_peer.py, make_random_model_gpu.py; the repo's tools/ and tests/data beside it.
# Building and packing on the dev VM (sm_90 only: ~7 min on 2 cores; stripped + xz: ~6 MB for
# hearth, op_tests and model_tests, under the 64 MiB carry limit):
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_CUDA=ON \
#     -DCMAKE_CUDA_ARCHITECTURES=90-real
#   cmake --build build-cuda -j2 --target hearth op_tests model_tests kv_tests cuda_bench
#   mkdir -p P/bin && cp build-cuda/bin/{hearth,cuda_bench} build-cuda/tests/{op_tests,model_tests} P/bin
#   strip P/bin/* && tar -C P -cf - bin | xz -T2 -9 > .cudarun-fast/bin.tar.xz
# Usage (repo root on the GPU machine): bash .cudarun-fast/device_run.sh STAGES  (default: all)
#   stages: tests bench models hearth profile peer precision quant tc chains ncu
# (bench/cuda_peer/ab_run.sh runs several builds side by side for A/B figures)
#   tc: the bf16 tensor-core kernels (4-bit GEMV, prefill attention): their op/model tests, then 8B
#       prefill and 8B 4-bit decode with them on and off (HEARTH_CUDA_BF16_KERNELS=1/0; needs the
#       models stage and m8b-q4 from quant)
#   precision: CUDA GEMM / golden tests at --matmul-precision bf16, 8B prefill at both precisions
#   quant: 8B converted to 4 and 8 bits by hearth convert; decode at batch 1/4/16/64, prefill 2048
set -u
C=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# The binaries may travel as bin.tar.xz (stripped; the CUDA kernels make them ~15 MB each).
[ -d "$C/bin" ] || tar -xJf "$C/bin.tar.xz" -C "$C"
CUBLAS_PY=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null || true)
export LD_LIBRARY_PATH="$C/lib:/usr/local/cuda/lib64:${CUBLAS_PY}:${LD_LIBRARY_PATH:-}"
STAGES=${1:-"tests bench models hearth profile peer precision quant tc"}
log() { echo "== $(date +%T) $*"; }
# Test binaries look for tests/data at the dev VM's absolute path.
DATA_DIR=${HEARTH_BUILD_TESTS_DATA:-/work/main/tests/data}
# The numpy-referenced tests (QuantizeMlxTest) call /usr/bin/python3, which has no numpy on the
# GPU machine (its python3 on PATH, the PyTorch one, has).
/usr/bin/python3 -c 'import numpy' 2>/dev/null || export HEARTH_TEST_PYTHON=$(command -v python3)
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
  precision)
    log "precision tests"
    "$C/bin/op_tests" --gtest_filter='Cuda/MatmulTest.*' 2>&1 | tail -n 3 | tee "$OUT/precision_op.log"
    "$C/bin/model_tests" --gtest_filter='*Golden*' 2>&1 | tee "$OUT/precision_golden.log" | grep -E "FAILED|PASSED|bf16" | head -20
    for p in bf16 exact; do
      log "hearth m8b prefill 2048, --matmul-precision $p"
      "$C/bin/hearth" benchmark --model /tmp/m8b --device cuda -p 2048 -g 4 -n 2 --matmul-precision $p 2>&1 | tee -a "$OUT/precision_m8b.log" | grep -E "Averages|rror"
    done
    ;;
  quant)
    for b in 4 8; do
      log "convert m8b to $b bits"
      "$C/bin/hearth" convert --hf-path /tmp/m8b --mlx-path /tmp/m8b-q$b -q --q-bits $b > "$OUT/convert_q$b.log" 2>&1 || tail -3 "$OUT/convert_q$b.log"
      log "hearth m8b-q$b prefill 2048"
      "$C/bin/hearth" benchmark --model /tmp/m8b-q$b --device cuda -p 2048 -g 4 -n 2 2>&1 | tee -a "$OUT/quant_q$b.log" | grep -E "Averages|rror"
      for batch in 1 4 16 64; do
        log "hearth m8b-q$b decode, batch $batch"
        "$C/bin/hearth" benchmark --model /tmp/m8b-q$b --device cuda -p 128 -g 64 -n 2 -b $batch 2>&1 | tee -a "$OUT/quant_q$b.log" | grep -E "Averages|roofline|rror"
      done
    done
    ;;
  chains)
    # The 8B decoder layers' products as one graph, PDL on and off (cuda_bench --chains).
    log "decode chains"
    "$C/bin/cuda_bench" --chains --reps 3 2>&1 | tee "$OUT/chains.log"
    HEARTH_CUDA_PDL=0 "$C/bin/cuda_bench" --chains --reps 3 2>&1 | tee "$OUT/chains_nopdl.log" | grep layer
    ;;
  ncu)
    # Kernel times of 8B bf16 prefill and 8B 4-bit decode in isolation (caches flushed), and the
    # full section set (stall reasons) of a few 4-bit GEMVs and prefill attention launches.
    # Needs the models and quant stages.
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$OUT/ncu_prefill.csv" \
      "$C/bin/hearth" benchmark --device cuda --model /tmp/m8b -p 2048 -g 1 -n 1 > /dev/null 2>&1
    "$NCU" --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
      --log-file "$OUT/ncu_q4.csv" "$C/bin/hearth" benchmark --device cuda --model /tmp/m8b-q4 \
      -p 16 -g 2 -n 1 > /dev/null 2>&1
    "$NCU" --clock-control none --set full -k regex:qgemv4_mma --launch-skip 200 --launch-count 4 \
      -o "$OUT/qgemv4_full" "$C/bin/hearth" benchmark --device cuda --model /tmp/m8b-q4 -p 16 -g 2 \
      -n 1 > /dev/null 2>&1
    "$NCU" --clock-control none --set full -k regex:flash_prefill_mma --launch-count 2 \
      -o "$OUT/flash_full" "$C/bin/hearth" benchmark --device cuda --model /tmp/m8b -p 2048 -g 1 \
      -n 1 > /dev/null 2>&1
    # One file back: everything under $OUT in one archive.
    tar -C "$OUT" -cf - . | xz -T8 > /tmp/all.tar.xz && mv /tmp/all.tar.xz "$OUT/all.tar.xz"
    ;;
  tc)
    log "tensor-core kernel tests"
    "$C/bin/op_tests" --gtest_filter='Cuda/Quantized*:Cuda/Attention*' 2>&1 | tail -n 3 | tee "$OUT/tc_op.log"
    "$C/bin/model_tests" --gtest_filter='*DecodeGraph*:*Golden*cuda*' 2>&1 | tee "$OUT/tc_model.log" | grep -E "FAILED|PASSED" | head -20
    for on in 1 0; do
      log "HEARTH_CUDA_BF16_KERNELS=$on: m8b prefill 2048, m8b-q4 decode"
      HEARTH_CUDA_BF16_KERNELS=$on "$C/bin/hearth" benchmark --model /tmp/m8b --device cuda -p 2048 -g 4 -n 2 2>&1 | tee -a "$OUT/tc_$on.log" | grep -E "Averages|rror"
      HEARTH_CUDA_BF16_KERNELS=$on "$C/bin/hearth" benchmark --model /tmp/m8b-q4 --device cuda -p 32 -g 128 -n 2 2>&1 | tee -a "$OUT/tc_$on.log" | grep -E "Averages|rror"
    done
    ;;
  esac
done
log done
