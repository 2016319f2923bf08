#!/usr/bin/env bash
# BCO with underlying-distribution matching (loss.udm_model): the step-1 loss (policy = reference, so every term is
# ln 2 times its weight) equals an independent computation (scripts/parity/udm_reference.py: transformers prompt
# embeddings + a numpy logistic regression) within 1e-5, on one rank and under mpirun with DP=2; UDM changes the loss
# (it is not silently off); an unknown udm_model is refused by validation.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/udm_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/bco_udm
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, numpy' 2>/dev/null; then
  echo "bco_udm_test: no Python with torch, transformers and numpy at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
# 12 examples: the chosen answers of pairs 0-5 are desirable, the rejected answers of pairs 6-11 undesirable, so the
# two classes have different prompts for the classifier to tell apart.
python3 - "$(cd config/recipes/data && pwd)/pairs_train.jsonl" > "$TMP/unpaired.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][:12]
for i, r in enumerate(rows):
    d = i < 6
    print(json.dumps({"prompt": r["prompt"], "completion": r["chosen"] if d else r["rejected"], "label": d}))
PY
run_cmd $BIN init-model --preset tiny-llama --seed 3 --out "$TMP/policy"
run_cmd $BIN init-model --preset tiny-llama --seed 8 --out "$TMP/embedder"
expect_exit 0 "init-model"

recipe() {  # recipe NAME UDM_LINE
  cat <<YAML
run: {name: $1, output_dir: $TMP/out-$1, seed: 7}
models:
  policy: {path: $TMP/policy}
  embedder: {path: $TMP/embedder}
stages:
  - name: bco
    kind: unpaired
    policy: policy
    reference: policy
    data: {train: $TMP/unpaired.jsonl}
    loss: {type: bco, beta: 0.1$2}
    optimizer: {lr: 1.0e-3}
    batch: {global: 12, micro: 2, max_length: 128}
    train: {steps: 1}
    log: {every_steps: 1}
    checkpoint: {every_steps: 0}
YAML
}
want=$("$PY" $REF "$TMP/embedder" "$TMP/unpaired.jsonl" 5 0.5 10 2>/dev/null)
loss_ref=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['step1_loss'])" "$want")
echo "reference: $want"
recipe udm ", udm_model: embedder, prompt_sample_size: 5" > "$TMP/udm.yaml"
run_long $BIN run "$TMP/udm.yaml"
expect_exit 0 "BCO with UDM"
expect_output "UDM on .*classifier fitted on 5 desirable \+ 5 undesirable prompts" "the classifier uses prompt_sample_size prompts per class"
got=$(metric "$TMP/out-udm/metrics.jsonl" bco 1 loss)
near "$got" "$loss_ref" 1e-5; check "step-1 loss $got equals the reference $loss_ref within 1e-5 of its scale" $?
py_check "abs($loss_ref - 0.6931471805599453) > 1e-3"; check "the UDM weights are not all 1 (reference loss $loss_ref vs ln 2)" $?

recipe udm-dp2 ", udm_model: embedder, prompt_sample_size: 5" > "$TMP/udm-dp2.yaml"
run_long "${MPIRUN[@]}" $BIN run "$TMP/udm-dp2.yaml"
expect_exit 0 "BCO with UDM, DP=2"
got2=$(metric "$TMP/out-udm-dp2/metrics.jsonl" bco 1 loss)
near "$got2" "$loss_ref" 1e-5; check "DP=2: step-1 loss $got2 equals the reference" $?

recipe plain "" > "$TMP/plain.yaml"
run_long $BIN run "$TMP/plain.yaml"
got3=$(metric "$TMP/out-plain/metrics.jsonl" bco 1 loss)
near "$got3" 0.6931471805599453 1e-5; check "without UDM the step-1 loss is ln 2 ($got3)" $?

recipe bad ", udm_model: nosuch" > "$TMP/bad.yaml"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 2 "an unknown udm_model"
expect_output "udm_model: unknown model .nosuch." "the error names the field"
finish
