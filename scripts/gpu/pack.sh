#!/usr/bin/env bash
# Packs the binaries built here for a GPU host that has its own LibTorch (same version, 2.11.0) but no Bazel,
# yaml-cpp, spdlog or OpenMPI: copies aligntrain, the GPU smoke test and the communicator test and the non-system, non-torch shared libraries it
# links into DIR (default .device/), plus scripts/gpu/check.sh. On the host run `bash DIR/check.sh` from the
# repository root (it uses config/recipes/data).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.device}
rm -rf "$dir"
mkdir -p "$dir/lib"
bins=(bazel-bin/aligntrain bazel-bin/test/gpu/gpu_smoke bazel-bin/test/runtime/communicator_test)
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "missing $b: bazel build //:aligntrain //test/gpu:gpu_smoke //test/runtime:communicator_test" >&2; exit 1; }
  cp "$b" "$dir/"
done
ldd "${bins[@]}" | awk '/=> \/(usr\/)?lib\/x86_64-linux-gnu\// {print $3}' |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+)\.so' | sort -u | xargs -r -I{} cp -L {} "$dir/lib/"
cp scripts/gpu/check.sh "$dir/"
echo "packed $(du -sh "$dir" | cut -f1) into $dir"
