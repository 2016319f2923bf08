#!/usr/bin/env bash
# Reward models as online rewards (`{type: model, model: NAME}`) score exactly as TRL 1.16's GRPOTrainer scores
# with transformers' AutoModelForSequenceClassification (scripts/parity/reward_model_reference.py): every sample's
# reward/model1 and reward/model2 in <stage>/samples/step-N.jsonl equals logits[:, 0] of the same texts within 1e-5
# of max(1, |reward|), and the stage's step-1 loss and gradient norm equal TRL's GRPO formulas on those samples
# (scripts/parity/online_loss_reference.py). Two reward models built by transformers at test time: a
# LlamaForSequenceClassification with the policy's own tokenizer (Llama-3-style BPE, no pad token: pooling skips its
# EOS) and a Qwen2ForSequenceClassification with a different one (Qwen2-style BPE, pad <|endoftext|>, its own chat
# template); and a MistralForSequenceClassification (sliding window 16, shorter than the texts) with a
# Qwen3ForSequenceClassification (q/k norms) on plain-text prompts. Plain-text prompts (prompt + completion, no special tokens added) for two steps (the second after an
# update), conversational prompts (each reward model's chat template), and under `mpirun -np 2` with DP=2 (each
# replica scores its half) and TP=2 (the reward models sharded too).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/reward_model_reference.py
LOSS_REF=scripts/parity/online_loss_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/online_reward_model
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, tokenizers' 2>/dev/null; then
  echo "online_reward_model_test: no Python with torch, transformers and tokenizers at '$PY' (run scripts/setup.sh)" >&2
  exit 1
fi
export HF_HOME="$TMP/hf" XDG_CACHE_HOME="$TMP/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1
run_py() {  # the Python steps load torch + transformers: more than run_cmd's 60 s on a busy 2-core machine
  OUT=$(timeout 300 "$PY" "$@" 2>&1)
  RC=$?
}

# --- fixtures: tokenizers, the policy, two reward models, plain and conversational prompts -------------------------
run_py - "$TMP" <<'PYEOF'
import json, os, random, sys
sys.path.insert(0, "scripts")
import make_test_tokenizer as mtt
tmp = sys.argv[1]
variants, _ = mtt.build_variants(random.Random(5), 600)
mtt.write_model_dirs(os.path.join(tmp, "tok"), variants)
rows = [json.loads(l) for l in open("config/recipes/data/sft_train.jsonl")][:8]
with open(os.path.join(tmp, "plain.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps({"prompt": r["prompt"]}) + "\n")
with open(os.path.join(tmp, "chat.jsonl"), "w") as f:
    for r in rows[:4]:
        f.write(json.dumps({"prompt": [{"role": "user", "content": r["prompt"].strip()}]}) + "\n")
print("tokenizers and data written")
PYEOF
expect_exit 0 "tokenizers (Llama-3 and Qwen2 style) and prompts"
run_py $REF make "$TMP/rm_llama" --arch llama --tokenizer "$TMP/tok/llama3" --seed 1
expect_exit 0 "LlamaForSequenceClassification with the policy's tokenizer"
run_py $REF make "$TMP/rm_qwen" --arch qwen2 --tokenizer "$TMP/tok/qwen2" --seed 2
expect_exit 0 "Qwen2ForSequenceClassification with another tokenizer"
run_py $REF make "$TMP/rm_mistral" --arch mistral --tokenizer "$TMP/tok/llama3" --seed 3
expect_exit 0 "MistralForSequenceClassification (sliding window 16)"
run_py $REF make "$TMP/rm_qwen3" --arch qwen3 --tokenizer "$TMP/tok/qwen2" --seed 4
expect_exit 0 "Qwen3ForSequenceClassification (q/k norms)"
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/base"
python3 - "$TMP/base/config.json" "$TMP/policy.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["vocab_size"] = 840  # the Llama-3-style tokenizer's, even for TP=2
for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
    c.pop(key, None)
json.dump(c, open(sys.argv[2], "w"))
PY
run_cmd $BIN init-model --config "$TMP/policy.json" --tokenizer "$TMP/tok/llama3" --seed 3 --out "$TMP/policy"
expect_exit 0 "init-model policy (Llama-3-style tokenizer)"

# The two reward models of a run: rm_llama and rm_qwen, or (the families case) rm_mistral and rm_qwen3.
M1=rm_llama
M2=rm_qwen
recipe() {  # recipe NAME TP DATA GLOBAL STEPS
  cat <<YAML
run: {name: $1, output_dir: $TMP/$1, seed: 11}
parallel: {tensor: $2}
models:
  policy: {path: $TMP/policy}
  rm_llama: {path: $TMP/rm_llama}
  rm_qwen: {path: $TMP/rm_qwen}
  rm_mistral: {path: $TMP/rm_mistral}
  rm_qwen3: {path: $TMP/rm_qwen3}
stages:
  - name: online
    kind: online
    policy: policy
    data: {train: $TMP/$3.jsonl}
    loss: {type: grpo}
    online: {num_samples: 4, rewards: [{type: model, model: $M1}, {type: model, model: $M2, weight: 0.5}]}
    generation: {max_new_tokens: 12, temperature: 0.9}
    optimizer: {lr: 1.0e-2, grad_clip: 0.0}
    batch: {global: $4, micro: 2, max_length: 128}
    train: {steps: $5}
    log: {every_steps: 1}
YAML
}

# compare_rewards NAME DATA STEP COUNT: the samples file's rewards against transformers on the same texts.
compare_rewards() {
  local S="$TMP/$1/online/samples/step-$(printf %06d "$3").jsonl"
  run_py $REF score "$TMP/$2.jsonl" "$S" "$TMP/$M1" "$TMP/$M2"
  expect_exit 0 "$1 step $3: transformers scores the samples"
  echo "$OUT" | tail -n 1 > "$TMP/$1.want$3.json"
  python3 - "$S" "$TMP/$1.want$3.json" "$4" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = json.load(open(sys.argv[2]))
bad, worst = [], 0.0
for key, w in (("reward/model1", want[0]), ("reward/model2", want[1])):
    for i, (r, x) in enumerate(zip(rows, w)):
        err = abs(r[key] - x) / max(1.0, abs(x))
        worst = max(worst, err)
        if err > 1e-5:
            bad.append((key, i, r[key], x))
total_ok = all(abs(r["reward"] - (r["reward/model1"] + 0.5 * r["reward/model2"])) <= 1e-9 for r in rows)
spread = [len({round(x, 6) for x in w}) for w in want]
print(f"{len(rows)} samples, distinct rewards {spread}, largest relative difference {worst:.2e}, "
      f"{len(bad)} mismatches {bad[:3]}")
sys.exit(0 if len(rows) == int(sys.argv[3]) and not bad and total_ok and min(spread) > 4 else 1)
PY
  check "$1 step $3: reward/model1 and reward/model2 of all $4 samples equal transformers' logits[:, 0] (1e-5)" $?
}

cases=(  # name | tp | launcher | data | prompts per step | steps
  "plain|1|single|plain|8|2"
  "plain_dp2|1|mpi|plain|8|1"
  "plain_tp2|2|mpi|plain|8|1"
  "chat|1|single|chat|4|1"
  "families|1|single|plain|8|1"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name tp launcher data global steps <<<"$c"
  if [ "$name" = families ]; then M1=rm_mistral M2=rm_qwen3; else M1=rm_llama M2=rm_qwen; fi
  recipe "$name" "$tp" "$data" "$global" "$steps" > "$TMP/$name.yaml"
  if [ "$launcher" = single ]; then run_long $BIN run "$TMP/$name.yaml"; else run_long "${MPIRUN[@]}" $BIN run "$TMP/$name.yaml"; fi
  expect_exit 0 "$name: $steps online step(s) with two reward models"
  expect_output "rewards: reward/model1, reward/model2" "$name: the rewards are named"
  m1=$(metric "$TMP/$name/metrics.jsonl" online 1 reward/model1)
  [ -n "$m1" ]; check "$name: metrics.jsonl has reward/model1 ($m1)" $?
  for step in $(seq 1 "$steps"); do compare_rewards "$name" "$data" "$step" $((global * 4)); done
done

# The step-1 loss and gradient norm of the plain run equal TRL's GRPO on its samples and rewards.
S="$TMP/plain/online/samples/step-000001.jsonl"
run_py $LOSS_REF grpo "$S" "$TMP/policy" --num-samples 4 --temperature 0.9
expect_exit 0 "the loss reference runs"
want=$(echo "$OUT" | tail -n 1)
got_loss=$(metric "$TMP/plain/metrics.jsonl" online 1 loss)
got_norm=$(metric "$TMP/plain/metrics.jsonl" online 1 grad_norm)
want_loss=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['loss'])" "$want")
want_norm=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['grad_norm'])" "$want")
scale=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['scale'])" "$want")
echo "loss $got_loss vs $want_loss, grad norm $got_norm vs $want_norm"
near "$got_loss" "$want_loss" 1e-5 "$scale"; check "step-1 loss $got_loss equals TRL's GRPO $want_loss" $?
near "$got_norm" "$want_norm" 1e-5; check "step-1 gradient norm $got_norm equals the reference's $want_norm" $?
# DP=2 and TP=2 drew the same samples as one process: the same rewards.
for name in plain_dp2 plain_tp2; do
  python3 - "$TMP/plain/online/samples/step-000001.jsonl" "$TMP/$name/online/samples/step-000001.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
same = [x["completion"] == y["completion"] for x, y in zip(a, b)]
print(f"{sum(same)} of {len(a)} completions as in one process")
sys.exit(0 if len(a) == len(b) and all(same) else 1)
PY
  check "$name: the same samples as one process (so the layouts score the same texts)" $?
done
finish
