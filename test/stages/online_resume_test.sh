#!/usr/bin/env bash
# Exact resume of online stages: a GRPO stage with two updates per batch of samples (and a KL term to a reference)
# followed by an f-DPG stage (whose per-prompt Z and baseline live in the checkpoint). The run is stopped twice:
# SIGTERM in the middle of a GRPO batch (the stop waits for the batch's last update, then checkpoints) and kill -9
# during f-DPG (resumed from the last checkpoint). The final weights of both stages are bitwise those of the
# uninterrupted run and metrics.jsonl is identical apart from timing fields.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/online_resume
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 24 config/recipes/data/sft_train.jsonl > "$TMP/data.jsonl"
run_cmd $BIN init-model --preset tiny-llama --tokenizer byte --seed 3 --out "$TMP/policy"
expect_exit 0 "init-model"

recipe() {  # recipe OUT_DIR
  cat <<YAML
run: {name: resume, output_dir: $1, seed: 5}
models:
  policy: {path: $TMP/policy}
stages:
  - name: grpo
    kind: online
    policy: policy
    reference: policy
    data: {train: $TMP/data.jsonl}
    loss: {type: grpo}
    online: {num_samples: 4, updates_per_batch: 2, beta: 0.02,
             rewards: [{type: regex, pattern: '[0-9]'}, {type: length, target: 5, penalty: 0.05}]}
    generation: {max_new_tokens: 10, temperature: 1.0}
    optimizer: {lr: 1.0e-3}
    batch: {global: 4, micro: 2, max_length: 96}
    train: {steps: 8}
    checkpoint: {every_steps: 2}
    log: {every_steps: 1}
  - name: fdpg
    kind: online
    policy: grpo
    reference: policy
    data: {train: $TMP/data.jsonl}
    loss: {type: fdpg}
    online: {num_samples: 4, rewards: [{type: regex, pattern: '[0-9]'}]}
    generation: {max_new_tokens: 10}
    optimizer: {lr: 1.0e-3}
    batch: {global: 4, micro: 2, max_length: 96}
    train: {steps: 6}
    checkpoint: {every_steps: 1}
    log: {every_steps: 1}
YAML
}

recipe "$TMP/ref" > "$TMP/ref.yaml"
run_long $BIN run "$TMP/ref.yaml"
expect_exit 0 "uninterrupted run"

recipe "$TMP/cut" > "$TMP/cut.yaml"
# 1. SIGTERM once step 3 is logged: step 3 is the first update of the second batch.
ALIGNTRAIN_TEST_STEP_DELAY_MS=400 setsid $BIN run "$TMP/cut.yaml" > "$TMP/cut1.log" 2>&1 &
pid=$!
wait_for_step "$TMP/cut/metrics.jsonl" 3 $pid
kill -TERM $pid
wait $pid
RC=$?
OUT=$(cat "$TMP/cut1.log")
expect_exit 0 "SIGTERM in the middle of a batch of samples"
expect_output "stop requested .* writing a checkpoint at step (4|6|8)" "the stop waited for the end of the batch (an even step)"
[ ! -d "$TMP/cut/checkpoints/grpo/step-3" ] && [ ! -d "$TMP/cut/checkpoints/grpo/step-5" ]
check "no checkpoint in the middle of a batch" $?

# 2. Resume, and kill -9 the f-DPG stage once its step 3 is logged.
ALIGNTRAIN_TEST_STEP_DELAY_MS=300 setsid $BIN run "$TMP/cut.yaml" > "$TMP/cut2.log" 2>&1 &
pid=$!
for _ in $(seq 1 3000); do
  kill -0 $pid 2>/dev/null || break
  python3 - "$TMP/cut/metrics.jsonl" <<'PY' && break
import json, sys
sys.exit(0 if any(json.loads(l).get("stage") == "fdpg" and json.loads(l).get("step", 0) >= 3 for l in open(sys.argv[1])) else 1)
PY
  sleep 0.05
done
kill -KILL -- -$pid 2>/dev/null
wait $pid 2>/dev/null
[ ! -f "$TMP/cut/fdpg/DONE" ] && [ -f "$TMP/cut/grpo/DONE" ]
check "kill -9 during the f-DPG stage (GRPO finished)" $?
OUT=$(cat "$TMP/cut2.log")
expect_output "\[grpo\] resuming from .*step-(4|6|8)" "the GRPO stage resumed from its checkpoint between batches"

# 3. Resume to the end.
run_long $BIN run "$TMP/cut.yaml"
expect_exit 0 "resumed run"
expect_output "\[fdpg\] resuming from .*step-[0-9]+" "the f-DPG stage resumed mid-stage"
for s in grpo fdpg; do
  cmp -s "$TMP/ref/$s/model/model.safetensors" "$TMP/cut/$s/model/model.safetensors"
  check "$s: final weights bitwise identical to the uninterrupted run" $?
done
diff <(metrics_without_timing "$TMP/ref/metrics.jsonl") <(metrics_without_timing "$TMP/cut/metrics.jsonl") > "$TMP/metrics.diff"
check "metrics.jsonl identical apart from timing fields (rewards, Z, baseline, losses)" $?
python3 - "$TMP/ref/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f = [r for r in rows if r.get("stage") == "fdpg" and "z" in r]
g = [r for r in rows if r.get("stage") == "grpo" and "kl" in r]
sys.exit(0 if len(f) == 6 and len(g) == 8 and any(r["baseline"] != 0 for r in f) else 1)
PY
check "the metrics carry f-DPG's Z and baseline and GRPO's KL" $?
finish
