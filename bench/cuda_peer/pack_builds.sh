#!/usr/bin/env bash
# Builds several commits of this repository with CUDA on the dev VM and packs them as the carried
# folder bench/cuda_peer/ab_run.sh reads on the GPU machine: OUT/bin.tar.xz with one folder per
# build (hearth, cuda_bench, libcuda_timeline.so, op_tests, model_tests, kv_tests) and OUT/lib with
# the runtime libraries the GPU machine lacks. The commits are built one after another in
# build-cuda, so only what differs between them is recompiled (a few minutes each on 2 cores).
# Usage: bench/cuda_peer/pack_builds.sh OUT NAME=REF [NAME=REF ...]
#   e.g. bench/cuda_peer/pack_builds.sh .cudarun m=main p=gemv-l2-prefetch x=q4-direct-x
set -euo pipefail
# Run from a copy: checking out other commits may rewrite this file while bash reads it.
if [ -z "${PACK_BUILDS_COPY:-}" ]; then
  copy=$(mktemp)
  cp "$0" "$copy"
  PACK_BUILDS_COPY=$copy exec bash "$copy" "$@"
fi
out=${1:?output folder}
shift
[ $# -gt 0 ] || { echo "pack_builds.sh: no NAME=REF given" >&2; exit 2; }
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "pack_builds.sh: the work tree has uncommitted changes; commit or stash them first" >&2
  exit 1
fi
start=$(git symbolic-ref -q --short HEAD || git rev-parse HEAD)
stage=$(mktemp -d)
trap 'git checkout -q "$start"; rm -rf "$stage" "$PACK_BUILDS_COPY"' EXIT
for spec in "$@"; do
  name=${spec%%=*} ref=${spec#*=}
  [ "$name" != "$spec" ] && [ -n "$name" ] || { echo "pack_builds.sh: expected NAME=REF, got $spec" >&2; exit 2; }
  echo "== $name = $ref ($(git rev-parse --short "$ref"))"
  git checkout -q "$ref"
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90-real > /dev/null
  cmake --build build-cuda -j"$(nproc)" --target hearth op_tests model_tests kv_tests cuda_bench \
    cuda_timeline
  mkdir -p "$stage/$name"
  cp build-cuda/bin/hearth build-cuda/bin/cuda_bench build-cuda/bin/libcuda_timeline.so \
    build-cuda/tests/op_tests build-cuda/tests/model_tests build-cuda/tests/kv_tests "$stage/$name/"
  strip "$stage/$name"/*
done
mkdir -p "$out/lib"
cp -L /usr/lib/x86_64-linux-gnu/libfmt.so.9 /usr/lib/x86_64-linux-gnu/libutf8proc.so.2 \
  /usr/local/cuda/lib64/libcupti.so.13 "$out/lib/"
# A dictionary larger than one build lets xz store what the builds share once (64 MiB carry limit).
tar -C "$stage" -cf - . | xz -T2 --lzma2=preset=9,dict=256MiB > "$out/bin.tar.xz.tmp"
mv "$out/bin.tar.xz.tmp" "$out/bin.tar.xz"
du -sh "$out"
