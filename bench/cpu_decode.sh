#!/usr/bin/env bash
# CPU decode/prefill benchmark at real model shapes (random weights), beside llama.cpp when given.
# Writes one JSON per run into OUT and prints a summary table (docs/perf/cpu_decode.md).
#
# Usage: bench/cpu_decode.sh BUILD_DIR MODELS_DIR OUT [LLAMA_BENCH GGUF]
#   MODELS_DIR holds folders written by tools/random_model/make_random_model.py, e.g.
#   qwen2.5-0.5b-bf16, qwen2.5-0.5b-f32, qwen2.5-1.5b-bf16, qwen2.5-1.5b-f32, llama-3.2-1b-bf16.
#   LLAMA_BENCH + GGUF (tools in ../shared/tools/peer): the same 1B shape in llama.cpp, run right
#   after hearth's 1B run.
set -euo pipefail
build=$1 models=$2 out=$3 llama_bench=${4:-} gguf=${5:-}
mkdir -p "$out"
P=${HEARTH_BENCH_PROMPT:-128} G=${HEARTH_BENCH_GEN:-64} N=${HEARTH_BENCH_TRIALS:-3}
for m in "$models"/*/; do
  name=$(basename "$m")
  echo "== $name"
  "$build/bin/hearth" benchmark --model "$m" -p "$P" -g "$G" -n "$N" --json "$out/$name.json" | tail -2
  if [ -n "$llama_bench" ] && [[ "$name" == llama-3.2-1b* ]]; then
    echo "== llama.cpp $(basename "$gguf")"
    "$llama_bench" -m "$gguf" -t "$(nproc)" -p "$P" -n "$G" -r "$N" -o json > "$out/llama.cpp-$(basename "$gguf").json"
    python3 - "$out/llama.cpp-$(basename "$gguf").json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    kind = "prompt" if r["n_prompt"] else "generation"
    print(f"llama.cpp {kind}: {r['avg_ts']:.3f} tok/s (stddev {r['stddev_ts']:.3f})")
PY
  fi
done
