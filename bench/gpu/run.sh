#!/usr/bin/env bash
# Runs bench/gpu/bench.py (README.md beside it), from a pack made by scripts/gpu/pack.sh or from the repository.
#   on the GPU host, in the folder the pack travelled to:  bash .device/bench/gpu/run.sh --device cuda
#   here, on the CPU (the same code path, a tiny model):    bench/gpu/run.sh --device cpu --tiny
# In a pack it uses the packed aligntrain (LD_LIBRARY_PATH: the host's LibTorch, then the packed libraries) and the
# host's python3 with the packed wheels (transformers, trl, datasets, ...) installed into $BENCH_SITE (default
# /tmp/aligntrain_site) and put first on PYTHONPATH; if they do not import with the host's own packages, the host's
# transformers is used instead of the packed one (the versions are in the results either way). In the repository
# it uses $ALIGNTRAIN_BIN (default bazel-bin/aligntrain) and $ALIGNTRAIN_PYTHON (default .venv/bin/python). Other
# options go to bench.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)   # the pack's root, or the repository's
if [ -f "$ROOT/check.sh" ] && [ -d "$ROOT/lib" ] && [ -f "$ROOT/aligntrain" ]; then   # a pack
  BIN=$ROOT/aligntrain
  PY=${BENCH_PYTHON:-python3}
  TL=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
  bash "$ROOT/unpack_libs.sh"
  export LD_LIBRARY_PATH=$TL:$ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if compgen -G "$ROOT/wheels/*.whl" > /dev/null; then
    SITE=${BENCH_SITE:-/tmp/aligntrain_site}
    install_wheels() {
      rm -rf "$SITE"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$@"
    }
    install_wheels "$ROOT"/wheels/*.whl
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    if ! "$PY" -c 'import transformers, trl' 2> "$SITE.err"; then
      echo "packed wheels do not import here ($(tail -1 "$SITE.err")); using the host's transformers" >&2
      install_wheels $(ls "$ROOT"/wheels/*.whl | grep -v '/transformers-')
    fi
  fi
else
  BIN=${ALIGNTRAIN_BIN:-$ROOT/bazel-bin/aligntrain}
  PY=${ALIGNTRAIN_PYTHON:-$ROOT/.venv/bin/python}
fi
exec "$PY" "$HERE/bench.py" --bin "$BIN" --python "$PY" "$@"
