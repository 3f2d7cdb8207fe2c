#!/usr/bin/env bash
# Installs hearth's Debian dependencies (when missing) and builds hearth into build/.
# Usage: scripts/setup.sh [extra cmake -D options]
# Environment: HEARTH_BUILD_DIR (default build), HEARTH_CUDA (AUTO|ON|OFF, default AUTO),
#              HEARTH_BUILD_TYPE (default Release), HEARTH_JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build ccache pkg-config git
          nlohmann-json3-dev libfmt-dev libpcre2-dev libutf8proc-dev
          libgtest-dev libgmock-dev python3 python3-jinja2 python3-numpy)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build_dir=${HEARTH_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${HEARTH_BUILD_TYPE:-Release}" \
  -DHEARTH_CUDA="${HEARTH_CUDA:-AUTO}" "$@" >/dev/null
cmake --build "$build_dir" -j "${HEARTH_JOBS:-$(nproc)}"
echo "setup: built $build_dir/bin/hearth"
