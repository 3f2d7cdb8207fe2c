#!/usr/bin/env bash
# The GPU call that produced models/default (run from a folder holding train.py and corpus.tar.gz;
# OUT is where results go). Trains one model per epoch budget in EPOCHS; each keeps its best epoch
# by validation loss; the caller picks the run with the lowest validation loss.
#   OUT=/somewhere EPOCHS=10 bash run_gpu.sh     (the shipped model; its previous version: EPOCHS="10 20")
set -euo pipefail
: "${OUT:?set OUT}"
EPOCHS="${EPOCHS:-10}"
mkdir -p corpus && tar xzf corpus.tar.gz -C corpus
nvidia-smi --query-gpu=name,memory.used,clocks.sm,clocks.max.sm --format=csv | tee -a "$OUT/all.log"
for e in $EPOCHS; do
  d=/tmp/run_e$e
  PYTHONUNBUFFERED=1 python3 train.py --data corpus --out "$d" --epochs "$e" --log-every 50 2>&1 | tee -a "$OUT/all.log"
  cp "$d/model/model.safetensors" "/tmp/e$e.safetensors"
  ( cd "$d" && sha256sum model/model.safetensors > sha256.txt && \
    tar czf "$OUT/e$e.tgz" --exclude=model/model.safetensors model default_model_golden.json run_info.json train_log.txt sha256.txt )
  split -b 16000000 -d "/tmp/e$e.safetensors" "$OUT/e$e.safetensors.part"
done
ls -la "$OUT"
