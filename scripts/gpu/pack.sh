#!/usr/bin/env bash
# Packs a binary built here for a GPU host that has its own LibTorch (same version, 2.11.0) but no Bazel,
# yaml-cpp, spdlog or OpenMPI: copies bazel-bin/aligntrain and the non-system, non-torch shared libraries it
# links into DIR (default .device/), plus scripts/gpu/check.sh. On the host run `bash DIR/check.sh` from the
# repository root (it uses config/recipes/data).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.device}
rm -rf "$dir"
mkdir -p "$dir/lib"
cp bazel-bin/aligntrain "$dir/"
ldd bazel-bin/aligntrain | awk '/=> \/(usr\/)?lib\/x86_64-linux-gnu\// {print $3}' |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+)\.so' | xargs -r -I{} cp -L {} "$dir/lib/"
cp scripts/gpu/check.sh "$dir/"
echo "packed $(du -sh "$dir" | cut -f1) into $dir"
