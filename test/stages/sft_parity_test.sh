#!/usr/bin/env bash
# The step-1 loss of an SFT stage equals the token-mean completion NLL that transformers computes on the same HF
# model and batch (scripts/parity/sft_loss_reference.py), within 1e-5 of its scale (`near`): on one rank with gradient accumulation
# (global 8 = 4 micro-batches of 2), and under `mpirun -np 2` with DP=2 and with TP=2. The global batch is the whole
# 8-example file, so the loss does not depend on the shuffle.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/sft_loss_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/sft_parity
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  echo "sft_parity_test: no Python with torch and transformers at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
head -n 8 config/recipes/data/sft_train.jsonl > "$TMP/data.jsonl"

recipe() {  # recipe MODEL_DIR OUT_DIR TP
  cat <<YAML
run: {name: parity, output_dir: $2, seed: 7}
parallel: {tensor: $3}
models:
  m: {path: $1}
stages:
  - name: sft
    kind: sft
    policy: m
    data: {train: $TMP/data.jsonl}
    optimizer: {lr: 1.0e-3}
    batch: {global: 8, micro: 2, max_length: 128}
    train: {steps: 1}
    log: {every_steps: 1}
YAML
}

# tiny-llama with vocab 264 (the byte tokenizer's 261 ids plus padding) so that TP=2 divides it.
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/base"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['vocab_size']=264; json.dump(c, open(sys.argv[2],'w'))" \
  "$TMP/base/config.json" "$TMP/tiny-llama.json"
for preset in tiny-llama tiny-qwen2; do
  if [ $preset = tiny-llama ]; then
    run_cmd $BIN init-model --config "$TMP/tiny-llama.json" --tokenizer byte --seed 3 --out "$TMP/$preset"
  else
    run_cmd $BIN init-model --preset $preset --seed 3 --out "$TMP/$preset"
  fi
  expect_exit 0 "init-model $preset"
  ref=$("$PY" $REF "$TMP/$preset" "$TMP/data.jsonl")
  echo "$preset transformers loss: $ref"
  modes=("single 1")
  [ $preset = tiny-llama ] && modes+=("dp2 1" "tp2 2")
  for mode in "${modes[@]}"; do
    set -- $mode
    recipe "$TMP/$preset" "$TMP/$preset-$1" $2 > "$TMP/$preset-$1.yaml"
    if [ $1 = single ]; then run_long $BIN run "$TMP/$preset-$1.yaml"; else run_long "${MPIRUN[@]}" $BIN run "$TMP/$preset-$1.yaml"; fi
    expect_exit 0 "$preset $1: one SFT step"
    got=$(metric "$TMP/$preset-$1/metrics.jsonl" sft 1 loss)
    near "$got" "$ref" 1e-5; check "$preset $1: step-1 loss $got equals transformers' $ref within 1e-5 of its scale" $?
  done
done
finish
