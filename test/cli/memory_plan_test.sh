#!/usr/bin/env bash
# `aligntrain plan` predicts each training stage's per-rank peak of tensor memory (trainer/cli/memory_plan.h); a CPU
# run measures it (runtime/cpu_memory.h: every CPU tensor's bytes, peak per stage, in <stage>/DONE and
# metrics.jsonl as peak_mib). On models big enough for activations and logits to matter (hidden 256, 4 layers,
# vocabulary 4096, max_length 192, 4 rows a micro-batch) the prediction must be within ±20% of the measurement for SFT, DPO with a
# live reference, DPO with a precomputed reference and KD with a live (larger) teacher.
#
# Predicted vs measured (MiB, 2-core Debian host, LibTorch 2.11; the prediction's terms: trainer/cli/memory_plan.cc):
#   stage            predicted  measured  largest moment
#   sft                  145.2       144  LM-head forward (activations 67.2 + logits chunk 11.9 + head gradient 4)
#   dpo_live             172.7       171  reference forward (policy activations + its kept logits + the reference's)
#   dpo_precomputed      143.2       142  backward
#   kd                   196.9       194  divergence (teacher and student logits chunks, KD kernel blocks)
# The same recipe agreed within 5% with tensor 2, data 2 + ZeRO-1, global 2× micro (accumulation), activation
# checkpointing, bf16, logits_mb 4 and tied embeddings (not run here: they need mpirun or double the time).
set -u
source test/cli/testlib.sh
py_check() { python3 -c "import sys; sys.exit(0 if ($1) else 1)"; }
BIN=./aligntrain
TMP=${TEST_TMPDIR:-$(mktemp -d)}/memory_plan
rm -rf "$TMP" && mkdir -p "$TMP"

# Rows of 192 tokens (truncated) and of 188: micro-batches padded by a few tokens, as real data is; the plan takes
# every row full in a padded batch.
python3 - "$TMP" <<'PY'
import json, random, sys
rng = random.Random(5)
words = "the of and a to in is was for on with as by at from that it an be this are or".split()
def text(n):
    out = ""
    while len(out) < n:
        out += rng.choice(words) + " "
    return out[:n]
# 400 characters: truncated to max_length 192; 174: 188 tokens with the 12-character prompt and the template.
with open(sys.argv[1] + "/sft.jsonl", "w") as f:
    for i in range(16):
        f.write(json.dumps({"prompt": text(12), "completion": text(400 if i % 2 == 0 else 174)}) + "\n")
with open(sys.argv[1] + "/pairs.jsonl", "w") as f:
    for _ in range(16):
        f.write(json.dumps({"prompt": text(12), "chosen": text(400), "rejected": text(174)}) + "\n")
PY
cat > "$TMP/recipe.yaml" <<YAML
run: {name: memory_plan, output_dir: $TMP/run, seed: 3, device: cpu}
models:
  base: {init: {preset: tiny-llama, seed: 1, hidden_size: 256, num_layers: 4, num_heads: 4, num_kv_heads: 2,
                intermediate_size: 704, vocab_size: 4096, tie_word_embeddings: false}}
  teacher: {init: {preset: tiny-llama, seed: 2, hidden_size: 320, num_layers: 4, num_heads: 5, num_kv_heads: 5,
                   intermediate_size: 864, vocab_size: 4096, tie_word_embeddings: false}}
stages:
  - name: sft
    kind: sft
    policy: base
    data: {train: $TMP/sft.jsonl}
    batch: {global: 4, micro: 4, max_length: 192}
    train: {steps: 2}
    checkpoint: {every_steps: 0}
  - name: dpo_live
    kind: preference
    policy: base
    reference: base
    loss: {type: dpo, beta: 0.1}
    data: {train: $TMP/pairs.jsonl}
    batch: {global: 2, micro: 2, max_length: 192}
    train: {steps: 2}
    checkpoint: {every_steps: 0}
  - name: dpo_precomputed
    kind: preference
    policy: base
    reference: {model: base, precompute: true}
    loss: {type: dpo, beta: 0.1}
    data: {train: $TMP/pairs.jsonl}
    batch: {global: 2, micro: 2, max_length: 192}
    train: {steps: 2}
    checkpoint: {every_steps: 0}
  - name: kd
    kind: distill
    policy: base
    teacher: teacher
    loss: {type: kd, divergence: forward_kl, lmbda: 0}
    data: {train: $TMP/sft.jsonl}
    batch: {global: 4, micro: 4, max_length: 192}
    train: {steps: 2}
    checkpoint: {every_steps: 0}
YAML

run_cmd $BIN plan "$TMP/recipe.yaml"
expect_exit 0 "plan"
PLAN=$OUT
expect_output "peak MiB" "plan has a peak MiB column"

OUT=$(timeout 300 $BIN run "$TMP/recipe.yaml" 2>&1)
RC=$?
expect_exit 0 "run (SFT, DPO live and precomputed reference, KD)"
RUN=$OUT

for stage in sft dpo_live dpo_precomputed kd; do
  # The predicted peak: the last field of the stage's row of the plan table (the unindented line naming it).
  predicted=$(echo "$PLAN" | awk -v s=$stage 'index($0, s " ") == 1 { print $NF; exit }')
  measured=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['peak_mib'])" \
             "$TMP/run/$stage/DONE" 2>/dev/null)
  step_peak=$(python3 -c "
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
print(max(j['peak_mib'] for j in m if j.get('stage') == sys.argv[2] and 'peak_mib' in j))" "$TMP/run/metrics.jsonl" $stage \
              2>/dev/null)
  echo "$stage: predicted ${predicted:-?} MiB, measured ${measured:-?} MiB (stage), ${step_peak:-?} MiB (steps)"
  OUT="$RUN"
  [ -n "$predicted" ] && [ -n "$measured" ] && [ -n "$step_peak" ]
  check "$stage: plan predicts and the run records a peak" $?
  py_check "${step_peak:-0} <= ${measured:-0} and ${step_peak:-0} > 0"
  check "$stage: the step lines' peak_mib is within the stage's peak" $?
  py_check "abs(${predicted:-0} - ${measured:-1}) <= 0.2 * ${measured:-1}"
  check "$stage: predicted peak ${predicted:-?} MiB within ±20% of the measured ${measured:-?} MiB" $?
done
finish
