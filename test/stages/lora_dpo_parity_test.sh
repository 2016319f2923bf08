#!/usr/bin/env bash
# LoRA DPO: the step-1 loss of a preference stage whose policy is a tiny Llama with a PEFT adapter and
# `reference: base` (the policy with its adapters off) equals TRL's DPOTrainer with a peft_config (a new adapter,
# init_lora_weights=False so that A and B are random and non-zero; all-linear, and attention-only with rsLoRA; TRL's
# reference is the model with its adapters disabled), whose adapter aligntrain loads
# (scripts/parity/lora_dpo_reference.py), within 1e-5 (`near`); on one rank, under `mpirun -np 2` with DP=2 and with
# TP=2, and with the base reference precomputed; and their step-3 losses (after two AdamW updates at lr 1e-2) equal
# one rank's, so the adapter gradients agree under DP and TP. The stage writes <stage>/adapter (PEFT format) and no
# <stage>/model unless lora.merge is set.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/lora_dpo_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/lora_dpo_parity
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, trl, peft' 2>/dev/null; then
  echo "lora_dpo_parity_test: no Python with torch, transformers, trl and peft at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
head -n 8 config/recipes/data/pairs_train.jsonl > "$TMP/data.jsonl"

recipe() {  # recipe OUT_DIR TP ADAPTER REFERENCE
  cat <<YAML
run: {name: lora_parity, output_dir: $1, seed: 7}
parallel: {tensor: $2}
models:
  pol: {path: $TMP/base, adapter: $3}
stages:
  - name: pref
    kind: preference
    policy: pol
    reference: $4
    data: {train: $TMP/data.jsonl}
    loss: {type: dpo, beta: 0.1}
    optimizer: {lr: 1.0e-2}
    batch: {global: 8, micro: 2, max_length: 128}
    train: {steps: 3}
    log: {every_steps: 1}
YAML
}

# tiny-llama with vocab 264 (the byte tokenizer's 261 ids plus padding) so that TP=2 divides it.
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/preset"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['vocab_size']=264; json.dump(c, open(sys.argv[2],'w'))" \
  "$TMP/preset/config.json" "$TMP/tiny-llama.json"
run_cmd $BIN init-model --config "$TMP/tiny-llama.json" --tokenizer byte --seed 3 --out "$TMP/base"
expect_exit 0 "init-model base"

for case in "all|all-linear|0" "attn_rs|q_proj,k_proj,v_proj,o_proj|1"; do
  IFS='|' read -r name targets rslora <<< "$case"
  OUT=$("$PY" $REF loss "$TMP/base" "$TMP/adapter_$name" "$TMP/data.jsonl" 0.1 "$targets" "$rslora" 2>&1)
  RC=$?
  expect_exit 0 "$name: TRL DPOTrainer + peft_config step (its new adapter saved for aligntrain)"
  want=$(echo "$OUT" | tail -n 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['loss'])" 2>/dev/null)
  modes=("single 1 base")
  [ $name = all ] && modes+=("dp2 1 base" "tp2 2 base" "pre 1 {model: base, precompute: true}")
  for mode in "${modes[@]}"; do
    set -- $mode
    m=$1 tp=$2
    shift 2
    recipe "$TMP/$name-$m" $tp "$TMP/adapter_$name" "$*" > "$TMP/$name-$m.yaml"
    if [ $m = dp2 ] || [ $m = tp2 ]; then run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-$m.yaml"
    else run_long $BIN run "$TMP/$name-$m.yaml"; fi
    expect_exit 0 "$name $m: one LoRA DPO step"
    got=$(metric "$TMP/$name-$m/metrics.jsonl" pref 1 loss 2>/dev/null)
    near "$got" "$want" 1e-5
    check "$name $m: step-1 loss ${got:-<none>} equals TRL+PEFT's ${want:-<none>} within 1e-5" $?
    # After two updates (lr 1e-2): the adapter gradients of DP=2 and TP=2 (A whole / B split by rows for column-
    # parallel layers, A split by columns / B whole for row-parallel ones) equal one rank's.
    if [ $m != single ]; then
      got3=$(metric "$TMP/$name-$m/metrics.jsonl" pref 3 loss 2>/dev/null)
      want3=$(metric "$TMP/$name-single/metrics.jsonl" pref 3 loss 2>/dev/null)
      near "$got3" "$want3" 1e-5
      check "$name $m: step-3 loss ${got3:-<none>} equals one rank's ${want3:-<none>} within 1e-5" $?
    fi
  done
done

# bf16 weights (fp32 AdamW masters of the adapters) with ZeRO-1 under DP=2: runs, and its step-1 loss is within bf16's
# rounding of TRL's fp32 one.
sed "s#output_dir: $TMP/all-dp2#output_dir: $TMP/all-zb#; s#run: {name: lora_parity,#run: {name: lora_parity, precision: bf16,#; s#parallel: {tensor: 1}#parallel: {tensor: 1, zero1: true}#" \
  "$TMP/all-dp2.yaml" > "$TMP/all-zb.yaml"
run_long "${MPIRUN[@]}" $BIN run "$TMP/all-zb.yaml"
expect_exit 0 "all bf16 + ZeRO-1, DP=2: three LoRA DPO steps"
got=$(metric "$TMP/all-zb/metrics.jsonl" pref 1 loss 2>/dev/null)
want=$(metric "$TMP/all-single/metrics.jsonl" pref 1 loss 2>/dev/null)
near "$got" "$want" 1e-2
check "all bf16 + ZeRO-1: step-1 loss ${got:-<none>} within 1e-2 of fp32's ${want:-<none>}" $?

# Outputs: the adapter in PEFT format, no merged model unless asked for.
[ -f "$TMP/all-single/pref/adapter/adapter_model.safetensors" ] && [ -f "$TMP/all-single/pref/adapter/adapter_config.json" ]
check "<stage>/adapter holds adapter_model.safetensors and adapter_config.json" $?
[ ! -e "$TMP/all-single/pref/model" ]
check "no <stage>/model without lora.merge" $?
finish
