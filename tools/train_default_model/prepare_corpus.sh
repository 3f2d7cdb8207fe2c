#!/usr/bin/env bash
# Prepare the default-model corpus on Debian (runs on the CPU machine, not the GPU one).
#   tools/train_default_model/prepare_corpus.sh [OUTDIR]      (default: build/default_model_corpus)
# Installs the text packages, writes OUTDIR/{train,val}.jsonl + manifest.json and
# OUTDIR/corpus.tar.gz (what train.py needs on the GPU machine).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-build/default_model_corpus}"
pkgs=(bible-kjv jargon-text fortunes fortunes-min)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
mkdir -p "$out"
python3 "$here/prepare_corpus.py" "$out" > "$out/prepare.log"
# Fixed mtime/owner/order so the archive is byte-identical from run to run.
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$out" -cf - train.jsonl val.jsonl manifest.json | gzip -n -9 > "$out/corpus.tar.gz"
sha256sum "$out"/train.jsonl "$out"/val.jsonl "$out"/corpus.tar.gz
