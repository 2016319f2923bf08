#!/usr/bin/env bash
# The step-1 loss of a preference stage equals an independent computation (transformers log-probs plus the
# METHODS.md §C formula, scripts/parity/preference_loss_reference.py) within 1e-5 (`near`), for every preference loss type:
# dpo, cdpo, robust, hinge, ipo (TRL and raw), ln_dpo, bco_pair, simpo, orpo (NLL with and without the prompt), cpo,
# mapo and a [dpo, sft] mix; each on one rank (global 8 = 4 micro-batches of 2), and dpo, ipo, simpo, orpo and the
# mix also under `mpirun -np 2` with DP=2 and with TP=2. The policy and the reference are two tiny-llama models
# with different seeds, so the log-ratios are not zero. The global batch is the whole 8-example file, so the loss
# does not depend on the shuffle; the pairs are short enough that nothing is truncated.
# Precision: the engine keeps sequence log-probs (sums of ~50) in fp32, so h = ρ_w − ρ_l carries ~1e-6 of rounding
# (fp32's spacing at 50 is 3.8e-6). Raw IPO, (h − 1/(2β))², multiplies that by |dL/dh| = |2h − 1/β| ≈ 10 at β = 0.1
# (25.769358 vs 25.769323 here), so it is checked at β = 2.0 (|dL/dh| ≈ 0.6). The others are less sensitive: dpo
# |dL/dh| ≈ β/2, TRL's IPO divides the log-ratios by |y| ≈ 10.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/preference_loss_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/preference_parity
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  echo "preference_parity_test: no Python with torch and transformers at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
head -n 8 config/recipes/data/pairs_train.jsonl > "$TMP/data.jsonl"

# name | loss (JSON, pasted into the recipe and given to the reference) | also under mpirun (DP=2, TP=2)
CASES=(
  'dpo|{"type": "dpo", "beta": 0.1}|mpi'
  'cdpo|{"type": "cdpo", "label_smoothing": 0.1}|'
  'robust|{"type": "robust", "label_smoothing": 0.1}|'
  'hinge|{"type": "hinge"}|'
  'ipo|{"type": "ipo"}|mpi'
  'ipo_raw|{"type": "ipo", "ipo_raw": true}|'
  'ln_dpo|{"type": "ln_dpo"}|'
  'bco_pair|{"type": "bco_pair"}|'
  'simpo|{"type": "simpo"}|mpi'
  'orpo|{"type": "orpo"}|mpi'
  'orpo_response_nll|{"type": "orpo", "orpo_prompt_in_nll": false}|'
  'cpo|{"type": "cpo"}|'
  'mapo|{"type": "mapo"}|'
  'dpo_sft_mix|{"type": ["dpo", "sft"], "weights": [1.0, 0.2]}|mpi'
)
REFERENCE_FREE=" simpo orpo cpo mapo "

recipe() {  # recipe OUT_DIR TP LOSS_JSON WITH_REFERENCE(0|1)
  cat <<YAML
run: {name: parity, output_dir: $1, seed: 7}
parallel: {tensor: $2}
models:
  pol: {path: $TMP/pol}
  ref: {path: $TMP/ref}
stages:
  - name: pref
    kind: preference
    policy: pol
YAML
  [ "$4" = 1 ] && echo "    reference: ref"
  cat <<YAML
    data: {train: $TMP/data.jsonl}
    loss: $3
    optimizer: {lr: 1.0e-4}
    batch: {global: 8, micro: 2, max_length: 128}
    train: {steps: 1}
    log: {every_steps: 1}
YAML
}

# tiny-llama with vocab 264 (the byte tokenizer's 261 ids plus padding) so that TP=2 divides it.
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/base"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['vocab_size']=264; json.dump(c, open(sys.argv[2],'w'))" \
  "$TMP/base/config.json" "$TMP/tiny-llama.json"
for m in pol:3 ref:5; do
  run_cmd $BIN init-model --config "$TMP/tiny-llama.json" --tokenizer byte --seed ${m#*:} --out "$TMP/${m%%:*}"
  expect_exit 0 "init-model ${m%%:*} (seed ${m#*:})"
done

# Every reference in one Python process (loading torch and transformers is the slow part).
losses=()
for c in "${CASES[@]}"; do IFS='|' read -r _ loss _ <<< "$c"; losses+=("$loss"); done
OUT=$("$PY" $REF "$TMP/pol" "$TMP/ref" "$TMP/data.jsonl" "${losses[@]}" 2>&1)
RC=$?
expect_exit 0 "preference_loss_reference.py"
mapfile -t REFS < <(echo "$OUT" | grep -E '^-?[0-9]+\.[0-9]{10}$')
[ ${#REFS[@]} -eq ${#CASES[@]} ]
check "reference printed ${#CASES[@]} losses (got ${#REFS[@]})" $?
[ ${#REFS[@]} -eq ${#CASES[@]} ] || { finish; exit 1; }

for i in "${!CASES[@]}"; do
  IFS='|' read -r name loss mpi <<< "${CASES[$i]}"
  ref=${REFS[$i]}
  # A reference is declared unless every type is reference-free (validation rejects it otherwise).
  with_ref=$(echo "$loss" | python3 -c "import json,sys; t=json.load(sys.stdin)['type']; t=t if isinstance(t, list) else [t]; print(0 if all(x in '$REFERENCE_FREE'.split() + ['sft'] for x in t) else 1)")
  modes=("single 1")
  [ -n "$mpi" ] && modes+=("dp2 1" "tp2 2")
  for mode in "${modes[@]}"; do
    set -- $mode
    recipe "$TMP/$name-$1" $2 "$loss" $with_ref > "$TMP/$name-$1.yaml"
    if [ $1 = single ]; then run_long $BIN run "$TMP/$name-$1.yaml"; else run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-$1.yaml"; fi
    expect_exit 0 "$name $1: one preference step"
    got=$(metric "$TMP/$name-$1/metrics.jsonl" pref 1 loss 2>/dev/null)
    near "$got" "$ref" 1e-5
    check "$name $1: step-1 loss ${got:-<none>} equals the reference $ref within 1e-5 of max(1, |loss|)" $?
  done
done
finish
