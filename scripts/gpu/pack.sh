#!/usr/bin/env bash
# Packs the binaries built here for a GPU host that has its own LibTorch (same version, 2.11.0) but no Bazel,
# yaml-cpp, spdlog or OpenMPI: copies aligntrain, the GPU smoke test and the communicator test and the non-system,
# non-torch shared libraries they link into DIR (default .device/), plus scripts/gpu/check.sh. On the host run
# `bash DIR/check.sh` from the repository root (it uses config/recipes/data).
# It also packs the GPU benchmark (bench/gpu/README.md): DIR/bench/gpu/ (bench.py, its recipes and helpers), the
# Python peers (DIR/bench/*_peer.py) and DIR/wheels/: the pure-Python wheels the peers need that the host lacks
# (transformers, trl, datasets, dill, multiprocess), at the versions of the local .venv (the ones the --tiny test
# ran with), downloaded with pip for the host's Python ($GPU_HOST_PYTHON, default 3.12). On the host:
# `bash DIR/bench/gpu/run.sh --device cuda`. --no-wheels skips the download (offline; the peers then need the
# host's own transformers and trl).
set -euo pipefail
cd "$(dirname "$0")/../.."
wheels=1
if [ "${1:-}" = --no-wheels ]; then wheels=0; shift; fi
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
# Arrow and Parquet (the Parquet data reader) come from the venv's pyarrow wheel, which the host does not have;
# xz-compressed (62 MB to about a quarter) to keep the pack under the device runner's 64 MiB, and decompressed on
# the host by unpack_libs.sh (check.sh and bench/gpu/run.sh call it).
ldd "${bins[@]}" | awk '/=> .*\/pyarrow\/lib(arrow|parquet)\.so/ {print $3}' | sort -u |
  while read -r l; do xz -T2 -6 -c "$l" > "$dir/lib/$(basename "$l").xz"; done
cp scripts/gpu/unpack_libs.sh "$dir/"
cp scripts/gpu/check.sh "$dir/"

# ---- the GPU benchmark -----------------------------------------------------------------------------------------
mkdir -p "$dir/bench/gpu"
cp bench/gpu/README.md bench/gpu/*.py bench/gpu/*.yaml bench/gpu/run.sh "$dir/bench/gpu/"
cp bench/sft_step_peer.py bench/dpo_step_peer.py bench/distill_step_peer.py "$dir/bench/"
if [ $wheels = 1 ]; then
  PY=${ALIGNTRAIN_PYTHON:-.venv/bin/python}
  mkdir -p "$dir/wheels"
  for name in transformers trl datasets dill multiprocess; do
    version=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))")
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_HOST_PYTHON:-3.12}" \
      --implementation py --abi none --platform any -d "$dir/wheels" "$name==$version"
  done
fi
echo "packed $(du -sh "$dir" | cut -f1) into $dir ($(ls "$dir/wheels" 2>/dev/null | wc -l) wheels)"
