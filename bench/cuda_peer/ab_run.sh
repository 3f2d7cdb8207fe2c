#!/usr/bin/env bash
# A/B session on the GPU machine: CUDA tests of one build, then hearth benchmark of several builds
# side by side in the same call (compare figures only within one call), optional ncu and CUPTI
# timeline. Carried folder (git-ignored, e.g. .cudarun): this script's copy or the repo's,
# bin.tar.xz holding one folder per build (<name>/hearth; the tested build also op_tests,
# model_tests, kv_tests, cuda_bench, libcuda_timeline.so), lib/ with libfmt.so.9, libutf8proc.so.2
# and libcupti.so.13 from the dev VM: bench/cuda_peer/pack_builds.sh OUT NAME=REF ... builds and
# packs several commits in one go. By hand, on the dev VM:
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_CUDA=ON \
#     -DCMAKE_CUDA_ARCHITECTURES=90-real
#   cmake --build build-cuda -j2 --target hearth op_tests model_tests kv_tests cuda_bench cuda_timeline
#   copy into /tmp/X/<name>/, strip, then: tar -C /tmp/X -cf - . | xz -T2 -9 > .cudarun/bin.tar.xz
# Usage (repo root on the GPU machine):
#   TEST=new BUILDS="main new" LIMIT=480 bash bench/cuda_peer/ab_run.sh .cudarun [stages]
# stages (default "tests models bench"): tests models bench chains q4ab q4ncu qwen ncu timeline peer
# A build name of the form <build>:<VAR=value> runs that build with an environment variable set.
set -u
C=$(cd "${1:?carried folder}" && pwd); shift
STAGES=${*:-"tests models bench"}
ROOT=$(pwd)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $(( ${LIMIT:-540} - ($(date +%s) - T0) )); }
log() { echo "== $(date +%T) [$(left)s left] $*"; }
T=$C/${TEST:?name of the build to test}
[ -d "$T" ] || tar -xJf "$C/bin.tar.xz" -C "$C"
export LD_LIBRARY_PATH="$C/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# The numpy-referenced tests call python3 with numpy (the machine's /usr/bin/python3 has none).
/usr/bin/python3 -c 'import numpy' 2>/dev/null || export HEARTH_TEST_PYTHON=$(command -v python3)
# Test binaries look for tests/data at the dev VM's absolute path.
mkdir -p /work/main/tests && ln -sfn "$ROOT/tests/data" /work/main/tests/data
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)

bench() {  # name model args...: every build in BUILDS
  local name=$1 model=$2; shift 2
  for b in ${BUILDS:-$TEST}; do
    local dir=${b%%:*} env=""
    [ "$dir" != "$b" ] && env=${b#*:}
    env $env "$C/$dir/hearth" benchmark --model /tmp/$model --device cuda "$@" 2>&1 |
      tee -a "$OUT/bench_${name}_${dir}.log" | grep -E "Averages|roofline|rror" | sed "s/^/$name $b: /"
  done
}

for s in $STAGES; do
  case $s in
  tests)
    log op_tests
    "$T/op_tests" --gtest_filter='Cuda*:*AsyncPrefill*' > "$OUT/op_tests.log" 2>&1
    grep -E "^\[  (PASSED|FAILED) " "$OUT/op_tests.log"
    log model_tests
    "$T/model_tests" --gtest_filter='*cuda*:*Cuda*:DecodeGraph*' > "$OUT/model_tests.log" 2>&1
    grep -E "^\[  (PASSED|FAILED) " "$OUT/model_tests.log"
    log kv_tests
    "$T/kv_tests" --gtest_filter='*Cuda*:*cuda*' > "$OUT/kv_tests.log" 2>&1
    grep -E "^\[  (PASSED|FAILED) " "$OUT/kv_tests.log"
    ;;
  models)
    log models
    [ -d /tmp/m8b ] || python3 bench/cuda_peer/make_random_model_gpu.py tools/random_model/configs/llama-3.1-8b.json /tmp/m8b > "$OUT/mk8.log" 2>&1
    [ -d /tmp/m1b ] || python3 bench/cuda_peer/make_random_model_gpu.py tools/random_model/configs/llama-3.2-1b.json /tmp/m1b > "$OUT/mk1.log" 2>&1
    [ -d /tmp/m8b-q4 ] || "$T/hearth" convert --hf-path /tmp/m8b --mlx-path /tmp/m8b-q4 -q --q-bits 4 > "$OUT/conv.log" 2>&1
    ;;
  bench)
    log benches
    bench pf8 m8b -p 2048 -g 4 -n 3
    bench dec8 m8b -p 128 -g 128 -n 2
    bench dec1 m1b -p 128 -g 256 -n 2
    bench q4 m8b-q4 -p 128 -g 128 -n 2
    bench q4b4 m8b-q4 -p 512 -g 32 -n 2 -b 4
    ;;
  chains)
    for bits in 0 4; do
      log "decode chains, bits $bits (0: bf16)"
      "$T/cuda_bench" --chains --chain-bits $bits --reps 3 2>&1 | tee "$OUT/chains_$bits.log" |
        grep -E "^(4-bit|bf16) "
    done
    ;;
  q4ab)
    # Every build of BUILDS (with its environment): the quantized op tests, the 4-bit decode
    # chains, 8B 4-bit decode at batch 1 and 4.
    for b in ${BUILDS:-$TEST}; do
      dir=${b%%:*} env=""
      [ "$dir" != "$b" ] && env=${b#*:}
      log "q4ab $b"
      env $env timeout 150 "$C/$dir/op_tests" --gtest_filter='Cuda*Quantized*:Cuda*Bf16*:Cuda*Fused*' \
        > "$OUT/op_q_${b//[:=]/_}.log" 2>&1
      echo "$b op tests: $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/op_q_${b//[:=]/_}.log" | tr '\n' ' ')"
      env $env timeout 60 "$C/$dir/cuda_bench" --chains --chain-bits 4 --reps 3 2>&1 |
        tee "$OUT/chains4_${b//[:=]/_}.log" | grep -E "^4-bit" | sed "s/^/$b /"
    done
    bench q4 m8b-q4 -p 128 -g 128 -n 2
    bench q4b4 m8b-q4 -p 512 -g 32 -n 2 -b 4
    ;;
  q4ncu)
    # Why the 4-bit GEMV runs below the bandwidth: stall reasons, issue activity and occupancy of
    # the first 8 GEMV launches of the decode chains, TEST build.
    log "ncu: 4-bit GEMV launches of the decode chains"
    timeout $(( $(left) - 30 )) "$NCU" --clock-control none -k regex:qgemv4 -c 8 \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section SpeedOfLight \
      "$T/cuda_bench" --chains --chain-bits 4 --reps 1 > "$OUT/ncu_q4.txt" 2>&1
    grep -E "qgemv4|Duration|Stall|Warp Cycles Per Issued|Issue Slots Busy|Eligible Warps|Achieved Occupancy|DRAM Throughput|Registers Per" \
      "$OUT/ncu_q4.txt" | head -80
    ;;
  ncu)
    log "ncu: 8B bf16 prefill kernels (sum with a script over gpu__time_duration.sum)"
    "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$OUT/ncu_prefill.csv" \
      "$T/hearth" benchmark --device cuda --model /tmp/m8b -p 2048 -g 1 -n 1 > /dev/null 2>&1
    ;;
  timeline)
    for m in m1b m8b; do
      log "timeline $m"
      CUDA_INJECTION64_PATH=$T/libcuda_timeline.so HEARTH_TIMELINE=$OUT/tl_$m.csv \
        "$T/hearth" benchmark --device cuda --model /tmp/$m -p 32 -g 64 -n 1 > /dev/null 2>&1
      python3 bench/timeline_steps.py "$OUT/tl_$m.csv" --steps 16 --top 8 2>&1 | head -12
    done
    ;;
  qwen)
    # Issue 4's third shape: a Qwen3-8B-shaped random model (36 layers, q/k norms, 151,936-token
    # vocabulary), bf16 and 4-bit, every build; then the PyTorch peer on it in the time left.
    log "Qwen3-8B-shaped models"
    [ -d /tmp/q8b ] || python3 bench/cuda_peer/make_random_model_gpu.py tools/random_model/configs/qwen3-8b.json /tmp/q8b > "$OUT/mkq8.log" 2>&1
    [ -d /tmp/q8b-q4 ] || "$T/hearth" convert --hf-path /tmp/q8b --mlx-path /tmp/q8b-q4 -q --q-bits 4 > "$OUT/convq.log" 2>&1
    bench qpf8 q8b -p 2048 -g 4 -n 3
    bench qdec8 q8b -p 128 -g 128 -n 2
    bench qq4 q8b-q4 -p 128 -g 128 -n 2
    log "PyTorch peer, Qwen3-8B shape"
    PYTHONUNBUFFERED=1 timeout $(( $(left) - 20 )) python3 bench/cuda_peer/hf_peer.py /tmp/q8b \
      --prompt 2048 --gen 128 --compile > "$OUT/peer_q8b.log" 2>&1
    grep -E "HF_PEER|Error" "$OUT/peer_q8b.log" | head -4
    ;;
  peer)
    log "PyTorch peer, 8B"
    PYTHONUNBUFFERED=1 timeout $(( $(left) - 20 )) python3 bench/cuda_peer/hf_peer.py /tmp/m8b \
      --prompt 2048 --gen 128 --compile > "$OUT/peer_m8b.log" 2>&1
    grep -E "HF_PEER|Error" "$OUT/peer_m8b.log" | head -4
    ;;
  esac
done
log done
# One file back: everything under $OUT in one archive.
tar -C "$OUT" -cf - . | xz -T8 > /tmp/all.tar.xz && mv /tmp/all.tar.xz "$OUT/all.tar.xz"
