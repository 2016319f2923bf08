#!/usr/bin/env bash
# Exact resume under `mpirun -np 2`, once with DP=2 and once with TP=2 (DESIGN.md §8, issue 5):
#   SIGKILL   the whole job killed at a random step; `run` again resumes from the newest complete checkpoint
#   SIGTERM   sent to every rank at a random step: the job finishes the step, writes a checkpoint, exits 0
#   fault     rank 0 dies while writing a checkpoint (ALIGNTRAIN_FAULT=checkpoint:12, after the rank files, before
#             COMPLETE): the incomplete folder is ignored and resume starts from the one before
# Each interrupted-then-resumed run must end with a model.safetensors byte-identical to an uninterrupted run's and
# a metrics.jsonl identical apart from timing fields. Also: `export` of the final TP=2 checkpoint equals the stage's
# saved model, ZeRO-1 gives the same weights as plain DP, and so does the gradient all-reduce after the backward pass
# instead of overlapped with it.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/resume
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 64 config/recipes/data/sft_train.jsonl > "$TMP/train.jsonl"
head -n 16 config/recipes/data/sft_eval.jsonl > "$TMP/eval.jsonl"
STEPS=24

recipe() {  # recipe OUT_DIR TP
  cat <<YAML
run: {name: resume, output_dir: $1, seed: 11}
parallel: {tensor: $2}
models:
  tiny: {init: {preset: tiny-llama, seed: 5, vocab_size: 264}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $TMP/train.jsonl, eval: $TMP/eval.jsonl}
    optimizer: {lr: 2.0e-3, weight_decay: 0.01}
    schedule: {warmup_steps: 3, decay: cosine, min_lr_ratio: 0.1}
    batch: {global: 8, micro: 2, max_length: 64}
    train: {steps: $STEPS}
    eval: {every_steps: 8}
    checkpoint: {every_steps: 4, keep_last: 2}
    log: {every_steps: 1}
YAML
}

for mode in "dp2 1" "tp2 2"; do
  set -- $mode
  name=$1 tp=$2
  recipe "$TMP/$name-ref" $tp > "$TMP/$name-ref.yaml"
  run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-ref.yaml"
  expect_exit 0 "$name: uninterrupted run"

  # SIGKILL at a random step.
  k=$((5 + RANDOM % 14))
  recipe "$TMP/$name-kill" $tp > "$TMP/$name-kill.yaml"
  # Steps take well under a millisecond here: a pause after each (no effect on results) lets the signal land mid-stage.
  setsid "${MPIRUN[@]}" -x ALIGNTRAIN_TEST_STEP_DELAY_MS=150 $BIN run "$TMP/$name-kill.yaml" > "$TMP/$name-kill.log" 2>&1 &
  pid=$!
  wait_for_step "$TMP/$name-kill/metrics.jsonl" $k $pid
  kill -KILL -- -$pid 2>/dev/null
  wait $pid 2>/dev/null
  [ ! -f "$TMP/$name-kill/sft/DONE" ]; check "$name: SIGKILL at step >= $k stopped the job before the end" $?
  run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-kill.yaml"
  expect_exit 0 "$name: resume after SIGKILL"
  expect_output "resuming from .*step-" "$name: resumed from a checkpoint"
  same_result "$TMP/$name-ref" "$TMP/$name-kill" "$name SIGKILL at step $k"

  # SIGTERM to every rank at a random step.
  k=$((5 + RANDOM % 14))
  recipe "$TMP/$name-term" $tp > "$TMP/$name-term.yaml"
  "${MPIRUN[@]}" -x ALIGNTRAIN_TEST_STEP_DELAY_MS=150 $BIN run "$TMP/$name-term.yaml" > "$TMP/$name-term.log" 2>&1 &
  pid=$!
  wait_for_step "$TMP/$name-term/metrics.jsonl" $k $pid
  pkill -TERM -P $pid
  wait $pid
  RC=$? OUT=$(cat "$TMP/$name-term.log")
  expect_exit 0 "$name: SIGTERM at step >= $k exits 0"
  expect_output "stop requested" "$name: the stop is reported"
  [ ! -f "$TMP/$name-term/sft/DONE" ] && ls -d "$TMP/$name-term/checkpoints/sft/step-"* > /dev/null
  check "$name: SIGTERM left a checkpoint and an unfinished stage" $?
  run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-term.yaml"
  expect_exit 0 "$name: resume after SIGTERM"
  same_result "$TMP/$name-ref" "$TMP/$name-term" "$name SIGTERM at step $k"

  # Death while writing the checkpoint of step 12.
  recipe "$TMP/$name-fault" $tp > "$TMP/$name-fault.yaml"
  ALIGNTRAIN_FAULT=checkpoint:12 run_long "${MPIRUN[@]}" -x ALIGNTRAIN_FAULT $BIN run "$TMP/$name-fault.yaml"
  [ $RC -ne 0 ]; check "$name: the job died in the checkpoint write (exit $RC)" $?
  [ -d "$TMP/$name-fault/checkpoints/sft/step-12.tmp" ] && [ ! -e "$TMP/$name-fault/checkpoints/sft/step-12/COMPLETE" ]
  check "$name: the step-12 checkpoint is incomplete" $?
  run_long "${MPIRUN[@]}" $BIN run "$TMP/$name-fault.yaml"
  expect_exit 0 "$name: resume after a death mid-checkpoint"
  expect_output "resuming from .*step-8 " "$name: resume ignores the incomplete checkpoint and uses step 8"
  same_result "$TMP/$name-ref" "$TMP/$name-fault" "$name death mid-checkpoint"
done

# export of the final TP=2 checkpoint = the model the stage saved.
run_cmd $BIN export "$TMP/tp2-ref/checkpoints/sft" --out "$TMP/exported"
expect_exit 0 "export of the newest TP=2 checkpoint"
cmp -s "$TMP/exported/model.safetensors" "$TMP/tp2-ref/sft/model/model.safetensors"
check "export gathers the TP shards into the same model.safetensors the stage saved" $?
run_cmd $BIN export "$TMP/tp2-fault/checkpoints/sft/step-12.tmp" --out "$TMP/bad"
expect_exit 3 "export refuses an incomplete checkpoint"

# ZeRO-1 on vs off.
recipe "$TMP/zero1" 1 > "$TMP/zero1.yaml"
run_long "${MPIRUN[@]}" $BIN run "$TMP/zero1.yaml" --set parallel.zero1=true
expect_exit 0 "DP=2 with ZeRO-1"
cmp -s "$TMP/zero1/sft/model/model.safetensors" "$TMP/dp2-ref/sft/model/model.safetensors"
check "ZeRO-1 gives bitwise the same weights as plain DP" $?
expect_output "gradient all-reduce \(overlapped\)" "DP=2 overlaps the gradient all-reduce with the backward pass by default"

# The gradient all-reduce after the backward pass (parallel.overlap_grad_reduce: false) vs overlapped (the default).
recipe "$TMP/after-backward" 1 > "$TMP/after-backward.yaml"
run_long "${MPIRUN[@]}" $BIN run "$TMP/after-backward.yaml" --set parallel.overlap_grad_reduce=false
expect_exit 0 "DP=2 with the gradient all-reduce after the backward pass"
expect_output "gradient all-reduce \(after the backward pass\)" "the all-reduce ran after the backward pass"
same_result "$TMP/dp2-ref" "$TMP/after-backward" "all-reduce after vs during the backward pass"
finish
