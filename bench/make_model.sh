#!/usr/bin/env bash
# A benchmark model folder of a given shape: small-llama's config changed by bench/model_config.py, then
# initialised by `aligntrain init-model` with the byte tokenizer.
#   bench/make_model.sh BIN PYTHON OUT_DIR VOCAB WIDTH LAYERS SEED      (WIDTH: small | 1b; LAYERS 0: the preset's)
set -euo pipefail
BIN=$1 PY=$2 OUT=$3 VOCAB=$4 WIDTH=$5 LAYERS=$6 SEED=$7
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" init-model --preset small-llama --seed 1 --out "$TMP/preset" > /dev/null
ARGS=(--vocab "$VOCAB" --width "$WIDTH")
[ "$LAYERS" != 0 ] && ARGS+=(--layers "$LAYERS")
"$PY" "$(dirname "$0")/model_config.py" "$TMP/preset/config.json" "$TMP/config.json" "${ARGS[@]}"
"$BIN" init-model --config "$TMP/config.json" --tokenizer byte --seed "$SEED" --out "$OUT"
