#!/usr/bin/env bash
# Decompresses the pack's xz-compressed libraries (DIR/lib/*.xz, made by scripts/gpu/pack.sh to keep the pack under
# the device runner's size limit) next to themselves, once. Usage: bash DIR/unpack_libs.sh (from check.sh, run.sh).
set -euo pipefail
lib="$(cd "$(dirname "$0")" && pwd)/lib"
for f in "$lib"/*.xz; do
  [ -e "$f" ] || continue
  [ -e "${f%.xz}" ] && continue
  python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)' "$f" "${f%.xz}"
  mv "${f%.xz}.part" "${f%.xz}"
done
