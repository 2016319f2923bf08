#!/usr/bin/env bash
# A reward model (`{type: model, model: NAME}` in online.rewards) that cannot work stops the run with a clear error:
# recipe mistakes (exit 2, at validate and at run, before any model is loaded) — no `model`, a name that is not a
# declared model, a random-init model, a folder that is not a sequence classifier (the message names the class
# found), a classifier with num_labels 2 — and a reward-model folder without its score head (exit 3 when the stage
# loads it, naming the folder and the tensor); conversational prompts with a reward model that has no chat template
# (exit 2 before any model is loaded). The folders are made from init-model output with an edited config.json
# (no Python needed).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/online_reward_model_errors
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 4 config/recipes/data/sft_train.jsonl > "$TMP/data.jsonl"
run_cmd $BIN init-model --preset tiny-llama --tokenizer byte --seed 3 --out "$TMP/policy"
expect_exit 0 "init-model"

# classifier SRC DST ID2LABEL: a copy of SRC whose config.json says LlamaForSequenceClassification.
classifier() {
  cp -r "$1" "$2"
  python3 - "$2/config.json" "$3" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["architectures"] = ["LlamaForSequenceClassification"]
c["id2label"] = json.loads(sys.argv[2])
c["label2id"] = {v: int(k) for k, v in c["id2label"].items()}
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
}
classifier "$TMP/policy" "$TMP/two_labels" '{"0": "bad", "1": "good"}'
classifier "$TMP/policy" "$TMP/no_score" '{"0": "LABEL_0"}'  # the weights have no score.weight
classifier "$TMP/policy" "$TMP/no_template" '{"0": "LABEL_0"}'  # and no chat template
python3 - "$TMP/no_template/tokenizer_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
del c["chat_template"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY

recipe() {  # recipe OUT_DIR REWARDS
  cat <<YAML
run: {name: rm_errors, output_dir: $1, seed: 5}
models:
  policy: {path: $TMP/policy}
  causal: {path: $TMP/policy}
  random: {init: {preset: tiny-llama}}
  two_labels: {path: $TMP/two_labels}
  no_score: {path: $TMP/no_score}
  no_template: {path: $TMP/no_template}
stages:
  - name: grpo
    kind: online
    policy: policy
    data: {train: $TMP/data.jsonl}
    loss: {type: grpo}
    online: {num_samples: 2, rewards: [$2]}
    generation: {max_new_tokens: 4}
    batch: {global: 2, micro: 1, max_length: 96}
    train: {steps: 1}
YAML
}

bad() {  # bad NAME REWARDS REGEX DESCRIPTION: exit 2 from validate and from run, with the message
  recipe "$TMP/$1" "$2" > "$TMP/$1.yaml"
  run_cmd $BIN validate "$TMP/$1.yaml"
  expect_exit 2 "$4: validate"
  expect_output "$3" "$4: the message"
  run_cmd $BIN run "$TMP/$1.yaml"
  expect_exit 2 "$4: run"
  expect_output "$3" "$4: run's message"
  [ ! -e "$TMP/$1/grpo" ]; check "$4: nothing trained" $?
}
bad no_model "{type: model}" \
  "no_model.yaml:[0-9]+:[0-9]+: stages.grpo.online.rewards\[0\].model: a model reward needs .model." "no model named"
bad unknown "{type: model, model: rewardz}" \
  "stages.grpo.online.rewards\[0\].model: unknown model .rewardz.; a reward model must be declared under .models:." \
  "a name that is not a declared model"
bad random "{type: model, model: random}" "rewards\[0\].model: .random. is a random initialisation" "a random-init model"
bad causal "{type: model, model: causal}" \
  "rewards\[0\].model: reward model .causal.: .*config.json: architectures: .LlamaForCausalLM. is not a sequence classifier with a score head \(supported: LlamaForSequenceClassification" \
  "a causal LM folder (names the class found)"
bad two_labels "{type: model, model: two_labels}" \
  "reward model .two_labels.: .*num_labels: a reward model scores each sample with one label .* has 2" \
  "a classifier with two labels"
bad option "{type: regex, pattern: x, model: two_labels}" \
  "rewards\[0\].model: .model. is not an option of reward type regex" "model on another reward type"

# Conversational prompts and a reward model without a chat template (the policy has one): exit 2 before any model
# is loaded, naming the data line, the reward model and its folder.
printf '%s\n' '{"prompt": [{"role": "user", "content": "Sort 3 1 2"}], "completion": "1 2 3"}' \
  '{"prompt": [{"role": "user", "content": "Sort 9 8"}], "completion": "8 9"}' > "$TMP/chat.jsonl"
recipe "$TMP/chat_run" "{type: model, model: no_template}" |
  sed -e "s|policy: {path: $TMP/policy}|policy: {path: $TMP/policy, chat_template: chatml}|" \
      -e "s|train: $TMP/data.jsonl|train: $TMP/chat.jsonl|" > "$TMP/chat.yaml"
grep -q "chat_template: chatml" "$TMP/chat.yaml" && grep -q chat.jsonl "$TMP/chat.yaml"; check "chat recipe edited" $?
run_long $BIN run "$TMP/chat.yaml"
expect_exit 2 "conversational prompts, reward model without a chat template"
expect_output "chat.jsonl:1: the prompts are conversations, which reward model .no_template. scores through its chat template: .*no_template" \
  "the message names the line, the reward model and its folder"
expect_no_output "step 1/" "nothing trained"
[ ! -e "$TMP/chat_run/grpo" ]; check "no stage output" $?

recipe "$TMP/no_score_run" "{type: model, model: no_score}" > "$TMP/no_score.yaml"
run_cmd $BIN validate "$TMP/no_score.yaml"
expect_exit 0 "a classifier folder without score.weight passes validate (its config.json is right)"
# `plan` counts the reward model's weights among the frozen models (0 with a regex reward).
run_cmd $BIN plan "$TMP/no_score.yaml"
expect_exit 0 "plan with a reward model"
expect_output "grpo +[0-9.]+ = [0-9.]+ \+ [0-9.]+ \+ (0\.[1-9]|[1-9])[0-9.]* \+" "plan: the reward model's weights are frozen memory"
recipe "$TMP/regex_run" "{type: regex, pattern: x}" > "$TMP/regex.yaml"
run_cmd $BIN plan "$TMP/regex.yaml"
expect_exit 0 "plan with a regex reward"
expect_output "grpo +[0-9.]+ = [0-9.]+ \+ [0-9.]+ \+ 0\.0 \+" "plan: no frozen memory without a reward model"
run_long $BIN run "$TMP/no_score.yaml"
expect_exit 3 "a classifier folder without score.weight: exit 3 when the stage loads it"
expect_output "no_score: missing tensor \"score.weight\"" "the message names the folder and the tensor"
expect_no_output "terminate called|Segmentation|Aborted" "no crash"
finish
