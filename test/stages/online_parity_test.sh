#!/usr/bin/env bash
# The first step of an online stage equals TRL's formulas (GRPO, RLOO) and naver/disco's f-DPG written out in
# scripts/parity/online_loss_reference.py and computed with transformers on the same samples: the step-1 loss, the
# global gradient norm and every sample's advantage, within 1e-5 of their scale. The samples are the stage's own
# (<stage>/samples/step-000001.jsonl), drawn from a random tiny Llama with a byte tokenizer; rewards are a regex, a
# length and a command reward, so that they vary between the samples of a prompt. GRPO (with a KL term to a second
# model) and f-DPG also under `mpirun -np 2` with DP=2 and with TP=2.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/online_loss_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/online_parity
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  echo "online_parity_test: no Python with torch and transformers at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
head -n 8 config/recipes/data/sft_train.jsonl > "$TMP/data.jsonl"
# A command reward: the number of distinct characters of the completion, over 10.
cat > "$TMP/distinct.py" <<'PYEOF'
import json, sys
for line in sys.stdin:
    print(len(set(json.loads(line)["completion"])) / 10)
PYEOF

# recipe NAME TP LOSS ONLINE_EXTRA REWARDS [REFERENCE]
recipe() {
  cat <<YAML
run: {name: $1, output_dir: $TMP/$1, seed: 11}
parallel: {tensor: $2}
models:
  policy: {path: $TMP/policy}
  other: {path: $TMP/other}
stages:
  - name: online
    kind: online
    policy: policy
${6:+    reference: $6}
    data: {train: $TMP/data.jsonl}
    loss: {type: $3}
    online: {num_samples: 4$4, rewards: [$5]}
    generation: {max_new_tokens: 12, temperature: 0.9}
    optimizer: {lr: 1.0e-3, grad_clip: 0.0}
    batch: {global: 8, micro: 2, max_length: 128}
    train: {steps: 1}
    log: {every_steps: 1}
YAML
}

# Models: the policy and a second model for the KL term and f-DPG's base a(x), vocab 264 so that TP=2 divides it.
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/base"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['vocab_size']=264; json.dump(c, open(sys.argv[2],'w'))" \
  "$TMP/base/config.json" "$TMP/tiny.json"
run_cmd $BIN init-model --config "$TMP/tiny.json" --tokenizer byte --seed 3 --out "$TMP/policy"
expect_exit 0 "init-model policy"
run_cmd $BIN init-model --config "$TMP/tiny.json" --tokenizer byte --seed 4 --out "$TMP/other"
expect_exit 0 "init-model reference"

REWARDS="{type: regex, pattern: '[0-9]', score: 1.0}, {type: length, target: 6, penalty: 0.1}, {type: command, command: 'python3 $TMP/distinct.py', weight: 0.5}"
DIGITS="{type: regex, pattern: '[0-9a-f]', score: 1.0}"
# name | tp | launcher | loss | online extra | rewards | reference | reference options
cases=(
  "grpo|1|single|grpo|, beta: 0.04, epsilon_high: 0.28|$REWARDS|other|--beta 0.04 --epsilon-high 0.28"
  "grpo_dp2|1|mpi|grpo|, beta: 0.04, epsilon_high: 0.28|$REWARDS|other|--beta 0.04 --epsilon-high 0.28"
  "grpo_tp2|2|mpi|grpo|, beta: 0.04, epsilon_high: 0.28|$REWARDS|other|--beta 0.04 --epsilon-high 0.28"
  "grpo_seq|1|single|grpo|, aggregation: grpo, scale_rewards: batch, importance_sampling_level: sequence|$REWARDS||--aggregation grpo --scale-rewards batch --importance-level sequence"
  "grpo_dr|1|single|grpo|, aggregation: dr_grpo, scale_rewards: none|$REWARDS||--aggregation dr_grpo --scale-rewards none --max-new-tokens 12"
  "rloo|1|single|rloo|, normalize_advantages: true|$REWARDS|other|--beta 0.05 --normalize-advantages 1"
  "fdpg|1|single|fdpg||$DIGITS|other|--divergence jsd"
  "fdpg_dp2|1|mpi|fdpg||$DIGITS|other|--divergence jsd"
  "fdpg_tvd_reward|1|single|fdpg|, divergence: tvd, target: reward, beta: 0.5|$REWARDS|other|--divergence tvd --target reward --beta 0.5"
  "fdpg_fkl|1|single|fdpg|, divergence: forward_kl|$DIGITS|other|--divergence forward_kl"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name tp launcher loss extra rewards ref refopts <<<"$c"
  recipe "$name" "$tp" "$loss" "$extra" "$rewards" "$ref" > "$TMP/$name.yaml"
  if [ "$launcher" = single ]; then run_long $BIN run "$TMP/$name.yaml"; else run_long "${MPIRUN[@]}" $BIN run "$TMP/$name.yaml"; fi
  expect_exit 0 "$name: one online step"
  S="$TMP/$name/online/samples/step-000001.jsonl"
  want=$("$PY" $REF "$loss" "$S" "$TMP/policy" ${ref:+"$TMP/$ref"} --num-samples 4 --temperature 0.9 $refopts)
  got_loss=$(metric "$TMP/$name/metrics.jsonl" online 1 loss)
  got_norm=$(metric "$TMP/$name/metrics.jsonl" online 1 grad_norm)
  want_loss=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['loss'])" "$want")
  want_norm=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['grad_norm'])" "$want")
  scale=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['scale'])" "$want")
  echo "$name: loss $got_loss vs $want_loss, grad norm $got_norm vs $want_norm"
  near "$got_loss" "$want_loss" 1e-5 "$scale"
  check "$name: step-1 loss $got_loss equals the reference's $want_loss (within 1e-5 of the terms' scale $scale)" $?
  near "$got_norm" "$want_norm" 1e-5; check "$name: gradient norm $got_norm equals the reference's $want_norm" $?
  python3 - "$S" "$want" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = json.loads(sys.argv[2])["advantages"]
got = [r["advantage"] for r in rows]
bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > 1e-5 * max(1.0, abs(w))]
spread = len({round(r["reward"], 9) for r in rows})
print(f"advantages: {len(got)} samples, {spread} distinct rewards, {len(bad)} mismatches {bad[:3]}")
sys.exit(0 if len(got) == len(want) == 32 and not bad and spread > 1 else 1)
PYEOF
  check "$name: every sample's advantage equals the reference's (32 samples, rewards not all equal)" $?
done
finish
