#!/usr/bin/env bash
# Time to first token with a cached prefix (hearth cache_prompt + generate --prompt-cache-file)
# vs recomputing the prefix in one prompt (issue 6). Prints one line per trial and the medians.
#
# Usage: bench/prompt_cache_ttft.sh BUILD_DIR [MODEL] [PREFIX_TOKENS] [DEVICE] [TRIALS]
#   defaults: models/default 4096 cpu 3.  GPU: bench/prompt_cache_ttft.sh build MODEL 16384 cuda
# Cached TTFT = reading + importing the cache file ("Prompt cache: ... loaded in S s") + prefill of
# the new text and the first token (its "Prompt: N tokens, X tokens-per-sec": N / X).
# Recomputed TTFT = the whole prompt's N / X. Model loading is excluded from both.
set -euo pipefail
build=$1
model=${2:-models/default}
want=${3:-4096}
device=${4:-cpu}
trials=${5:-3}
hearth=$build/bin/hearth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A prefix of about `want` tokens: one paragraph repeated.
paragraph="In the beginning the river ran quiet under the old stone bridge, and the people of the \
valley gathered there each morning to trade grain, wool and news from the mountain towns. "
per=$("$hearth" tokenize --model "$model" -p "$paragraph" | wc -w)
copies=$(( (want + per - 1) / per ))
: > "$work/prefix.txt"
for _ in $(seq "$copies"); do printf '%s' "$paragraph" >> "$work/prefix.txt"; done
# Paragraphs merge at their seams when tokenized together: top up to at least `want` tokens.
while [ "$("$hearth" tokenize --model "$model" -p - < "$work/prefix.txt" | wc -w)" -lt "$want" ]; do
  printf '%s' "$paragraph" >> "$work/prefix.txt"
done
question=" What did the people trade at the bridge?"

"$hearth" cache_prompt --model "$model" --device "$device" --prompt - \
  --prompt-cache-file "$work/prefix" < "$work/prefix.txt" > "$work/cache_prompt.log"

ttft() {  # prints seconds: cache load + prompt tokens / prompt tok/s
  awk '/^Prompt: /{n=$2; tps=$4} /^Prompt cache: /{load=$(NF-1)} END{printf "%.4f %d %d\n", load + n / tps, n, 0}'
}
cached=() full=()
for t in $(seq "$trials"); do
  "$hearth" generate --device "$device" --prompt-cache-file "$work/prefix.safetensors" \
    --prompt "$question" --max-tokens 2 > "$work/cached.log"
  "$hearth" generate --model "$model" --device "$device" --prompt - --max-tokens 2 \
    > "$work/full.log" < <(cat "$work/prefix.txt"; printf '%s' "$question")
  c=$(ttft < "$work/cached.log")
  f=$(ttft < "$work/full.log")
  cached_tokens=$(awk '/^Prompt cache: /{print $3}' "$work/cached.log")
  echo "trial $t: cached prefix ${cached_tokens} tokens, TTFT ${c%% *} s (new prompt $(echo "$c" | cut -d' ' -f2) tokens) | recomputed: TTFT ${f%% *} s ($(echo "$f" | cut -d' ' -f2) tokens)"
  cached+=("${c%% *}")
  full+=("${f%% *}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mc=$(median "${cached[@]}")
mf=$(median "${full[@]}")
echo "median TTFT: cached $mc s, recomputed $mf s, speedup $(awk -v a="$mf" -v b="$mc" 'BEGIN{printf "%.1f", a / b}')x"
