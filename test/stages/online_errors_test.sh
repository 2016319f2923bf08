#!/usr/bin/env bash
# Bad online stages stop with a clear error and the documented exit code: recipe mistakes before anything loads
# (exit 2), and a `command` reward that crashes, prints garbage or hangs in the middle of a stage (exit 3, naming the
# reward and what went wrong) without damaging the checkpoints already written: after the program is fixed, the
# same command resumes from the last checkpoint and ends bitwise where an uninterrupted run ends.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/online_errors
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 16 config/recipes/data/sft_train.jsonl > "$TMP/data.jsonl"
run_cmd $BIN init-model --preset tiny-llama --tokenizer byte --seed 3 --out "$TMP/policy"
expect_exit 0 "init-model"

# The reward program: scores the number of digits; misbehaves as $TMP/mode says once the third call starts.
cat > "$TMP/reward.sh" <<SH
#!/bin/sh
n=\$(cat "$TMP/calls" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n > "$TMP/calls"
mode=\$(cat "$TMP/mode" 2>/dev/null || echo ok)
if [ \$n -ge 3 ]; then
  case \$mode in
    crash) cat > /dev/null; echo "reward server unreachable" >&2; exit 7 ;;
    garbage) cat > /dev/null; echo 1; echo "not-a-number"; exit 0 ;;
    hang) sleep 60 ;;
  esac
fi
python3 -c '
import json, sys
for line in sys.stdin:
    print(sum(ch.isdigit() for ch in json.loads(line)["completion"]) / 10)'
SH
chmod +x "$TMP/reward.sh"

COMMAND_REWARD="{type: command, command: '$TMP/reward.sh', timeout: 20}"
recipe() {  # recipe OUT_DIR [EXTRA ONLINE KEYS] [REWARDS]
  cat <<YAML
run: {name: errors, output_dir: $1, seed: 5}
models:
  policy: {path: $TMP/policy}
stages:
  - name: grpo
    kind: online
    policy: policy
    data: {train: $TMP/data.jsonl}
    loss: {type: grpo}
    online: {num_samples: 4${2:-}, rewards: [${3:-$COMMAND_REWARD}]}
    generation: {max_new_tokens: 10}
    optimizer: {lr: 1.0e-3}
    batch: {global: 4, micro: 2, max_length: 96}
    train: {steps: 5}
    checkpoint: {every_steps: 1, keep_last: 5}
    log: {every_steps: 1}
YAML
}

# Recipe errors (exit 2) before any model is loaded.
bad() {  # bad NAME REGEX DESCRIPTION EXTRA REWARDS [LOSS] [SED-EXPRESSION]
  recipe "$TMP/$1" "$4" "$5" | sed "s/type: grpo}/type: ${6:-grpo}}/;${7:-}" > "$TMP/$1.yaml"
  run_cmd $BIN validate "$TMP/$1.yaml"
  expect_exit 2 "$3"
  expect_output "$2" "$3: the message"
}
bad no_rewards "stages.grpo.online.rewards: an online stage needs at least one reward" "no rewards" "" " "
bad bad_regex "pattern: is not a valid ECMAScript regular expression" "a regex that does not compile" "" \
  "{type: regex, pattern: '(['}"
bad one_sample "online.num_samples: loss type grpo compares the samples of a prompt" "GRPO with one sample" \
  "" "{type: exact_match}" grpo "s/num_samples: 4/num_samples: 1/"
bad fdpg_noref "stages.grpo.reference: an online stage with loss type fdpg needs .reference." "f-DPG without a base" \
  "" "{type: exact_match}" fdpg
bad steps_mu "train.steps: must be a multiple of online.updates_per_batch \(2\), got 5" "steps not a multiple" \
  ", updates_per_batch: 2" "{type: exact_match}"
bad unknown_key "stages.grpo.online.rewards\[0\].patern: unknown key \(did you mean .pattern.\?\)" "a misspelt reward key" \
  "" "{type: regex, patern: 'x'}"
bad wrong_key "stages.grpo.online.rewards\[0\].pattern: .pattern. is not an option of reward type length" "a key of another reward" \
  "" "{type: length, pattern: 'x'}"
printf '{"prompt": "sort these digits: 3 1\\n"}\n' > "$TMP/noref.jsonl"
recipe "$TMP/noref" "" "{type: exact_match}" | sed "s|$TMP/data.jsonl|$TMP/noref.jsonl|" > "$TMP/noref.yaml"
run_long $BIN run "$TMP/noref.yaml"
expect_exit 3 "exact_match on data without reference completions"
expect_output "noref.jsonl:1: completion: missing field" "the message names the file, line and field"

# The uninterrupted reference run.
recipe "$TMP/ref" > "$TMP/ref.yaml"
rm -f "$TMP/calls" "$TMP/mode"
run_long $BIN run "$TMP/ref.yaml"
expect_exit 0 "uninterrupted run with a working command reward"

for mode in crash garbage hang; do
  recipe "$TMP/$mode" > "$TMP/$mode.yaml"
  rm -f "$TMP/calls"; echo $mode > "$TMP/mode"
  run_long $BIN run "$TMP/$mode.yaml"
  expect_exit 3 "$mode: the command reward fails at step 3"
  case $mode in
    crash) expect_output "reward/command: .*exited with status 7" "crash: the exit status"
           expect_output "reward server unreachable" "crash: its standard error quoted" ;;
    garbage) expect_output "reward/command: .*line 2.*not-a-number" "garbage: the line that is not a number" ;;
    hang) expect_output "reward/command: .*no answer within 20 s" "hang: the timeout" ;;
  esac
  ls -d "$TMP/$mode/checkpoints/grpo/step-"* | sed 's/.*step-//' | sort -n | tr '\n' ' ' > "$TMP/$mode.steps"
  steps=$(cat "$TMP/$mode.steps")
  [ "$steps" = "1 2 " ]
  check "$mode: checkpoints of steps 1 and 2 only ($steps)" $?
  rm -f "$TMP/calls"; echo ok > "$TMP/mode"
  echo 2 > "$TMP/calls"  # the reward program keeps its call count: as if it had answered steps 1 and 2
  run_long $BIN run "$TMP/$mode.yaml"
  expect_exit 0 "$mode: rerun after fixing the reward"
  expect_output "resuming from .*step-2 \(step 2/5" "$mode: resumed from the last checkpoint"
  cmp -s "$TMP/ref/grpo/model/model.safetensors" "$TMP/$mode/grpo/model/model.safetensors"
  check "$mode: final weights bitwise identical to the uninterrupted run" $?
done
finish
