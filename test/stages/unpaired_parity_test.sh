#!/usr/bin/env bash
# The step-1 losses of KTO, BCO and D2O equal an independent computation (transformers log-probs + METHODS.md
# C.10-C.12 in float64, scripts/parity/unpaired_loss_reference.py) within 1e-5 with a reference model that differs
# from the policy (so the log-ratios, KTO's z0 and BCO's delta are not zero; two random tiny models differ little, so
# the losses differ from the closed forms at policy = reference by ~1e-3 to 1e-2, far above the 1e-5 tolerance), on one rank and under mpirun with DP=2.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/unpaired_loss_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/unpaired_parity
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  echo "unpaired_parity_test: no Python with torch and transformers at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
python3 - "$(cd config/recipes/data && pwd)/pairs_train.jsonl" "$TMP" <<'PY'
import json, sys
pairs = [json.loads(l) for l in open(sys.argv[1])][:8]
out = sys.argv[2]
with open(f"{out}/unpaired.jsonl", "w") as f:
    for i, p in enumerate(pairs):  # 5 desirable, 3 undesirable
        good = i % 3 != 1
        f.write(json.dumps({"prompt": p["prompt"], "completion": p["chosen"] if good else p["rejected"], "label": good}) + "\n")
with open(f"{out}/negatives.jsonl", "w") as f, open(f"{out}/samples.jsonl", "w") as g:
    for p in pairs[:6]:
        f.write(json.dumps({"prompt": p["prompt"], "rejected": p["rejected"]}) + "\n")
        for k, c in enumerate([p["chosen"], p["chosen"][::-1], "0 1 2"]):
            g.write(json.dumps({"prompt": p["prompt"], "completion": c, "sample": k}) + "\n")
PY
run_cmd $BIN init-model --preset tiny-llama --seed 3 --out "$TMP/policy"
run_cmd $BIN init-model --preset tiny-llama --seed 4 --out "$TMP/ref"
expect_exit 0 "init-model"

recipe() {  # recipe NAME KIND DATA LOSS GLOBAL MICRO
  cat <<YAML
run: {name: $1, output_dir: $TMP/out-$1, seed: 5}
models:
  policy: {path: $TMP/policy}
  ref: {path: $TMP/ref}
stages:
  - name: s
    kind: $2
    policy: policy
    reference: ref
    data: $3
    loss: $4
    optimizer: {lr: 1.0e-3}
    batch: {global: $5, micro: $6, max_length: 128}
    train: {steps: 1}
    log: {every_steps: 1}
    checkpoint: {every_steps: 0}
YAML
}
U="{train: $TMP/unpaired.jsonl}"
N="{train: $TMP/negatives.jsonl, samples: $TMP/samples.jsonl, num_samples: 2}"
want_kto=$("$PY" $REF kto "$TMP/policy" "$TMP/ref" "$TMP/unpaired.jsonl" beta=1.0 2>/dev/null)
want_bco=$("$PY" $REF bco "$TMP/policy" "$TMP/ref" "$TMP/unpaired.jsonl" beta=0.3 2>/dev/null)
want_d2o=$("$PY" $REF d2o "$TMP/policy" "$TMP/ref" "$TMP/negatives.jsonl" "$TMP/samples.jsonl" 2 beta=0.2 alpha=0.05 2>/dev/null)
echo "references: kto $want_kto, bco $want_bco, d2o $want_d2o"
CASES=(
  "kto|unpaired|$U|{type: kto, beta: 1.0}|8|4|$want_kto"
  "bco|unpaired|$U|{type: bco, beta: 0.3}|8|8|$want_bco"
  "d2o|negatives|$N|{type: d2o, beta: 0.2, d2o_alpha: 0.05}|6|3|$want_d2o"
)
for c in "${CASES[@]}"; do
  IFS='|' read -r name kind data loss global micro want <<< "$c"
  for mode in one dp2; do
    # One rank: BCO's delta is updated per micro-batch, so its batch is one micro-batch; DP=2: one micro-batch per rank
    # (delta all-reduced over both).
    m=$micro; [ $mode = dp2 ] && m=$((global / 2))
    recipe "$name-$mode" "$kind" "$data" "$loss" "$global" "$m" > "$TMP/$name-$mode.yaml"
    if [ $mode = one ]; then run_long $BIN run "$TMP/$name-$mode.yaml"; else run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-$mode.yaml"; fi
    expect_exit 0 "$name ($mode): one step"
    got=$(metric "$TMP/out-$name-$mode/metrics.jsonl" s 1 loss)
    near "$got" "$want" 1e-5; check "$name ($mode): step-1 loss $got equals the reference $want within 1e-5 of its scale" $?
  done
done
py_check "abs($want_kto - 0.5) > 1e-4 and abs($want_bco - 0.6931471805599453) > 1e-4"
check "the reference differs from the policy (KTO $want_kto != 0.5, BCO $want_bco != ln 2)" $?
finish
