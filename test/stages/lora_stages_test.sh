#!/usr/bin/env bash
# LoRA end to end (issue 16): a tiny Llama with `lora` (all-linear, rank 4, dropout 0.1) through sft → preference
# (`reference: base`) → unpaired (kto, reference: base) → negatives (d2o, reference: base) → distill (student
# adapters, teacher = the sft stage) → eval and generate with the adapter model. Each training stage writes
# <stage>/adapter in PEFT format and no <stage>/model, except with `lora.merge: true`. The base weights never change
# (they are frozen), `export --merge` of a LoRA checkpoint writes a merged model (without --merge: exit 2), a kill -9
# in the middle of the sft stage resumes to a bitwise identical adapter, `plan` shows trainable vs frozen
# parameters, and the recipe errors (lora with adapter, unknown target, `reference: base` without adapters) exit 2
# naming the field. A stage's own `lora` (fresh adapters on a fully trained stage; replacing a declared model's
# settings) and `teacher_reference: base`, with their recipe errors.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/lora_stages
rm -rf "$TMP" && mkdir -p "$TMP"
python3 - config/recipes/data/pairs_train.jsonl "$TMP" <<'PY'
import json, sys
pairs = [json.loads(l) for l in open(sys.argv[1])][:64]
out = sys.argv[2]
with open(f"{out}/unpaired.jsonl", "w") as f:
    for i, p in enumerate(pairs):
        good = i % 3 != 2
        f.write(json.dumps({"prompt": p["prompt"], "completion": p["chosen"] if good else p["rejected"], "label": good}) + "\n")
with open(f"{out}/negatives.jsonl", "w") as f, open(f"{out}/samples.jsonl", "w") as g:
    for p in pairs[:32]:
        f.write(json.dumps({"prompt": p["prompt"], "rejected": p["rejected"]}) + "\n")
        g.write(json.dumps({"prompt": p["prompt"], "completion": p["chosen"], "sample": 0}) + "\n")
with open(f"{out}/pairs.jsonl", "w") as f:
    for p in pairs[:32]:
        f.write(json.dumps(p) + "\n")
with open(f"{out}/prompts.jsonl", "w") as f:
    for p in pairs[:4]:
        f.write(json.dumps({"prompt": p["prompt"]}) + "\n")
PY
head -n 64 config/recipes/data/sft_train.jsonl > "$TMP/sft.jsonl"
head -n 8 config/recipes/data/sft_eval.jsonl > "$TMP/sft_eval.jsonl"
run_cmd $BIN init-model --preset tiny-llama --tokenizer byte --seed 1 --out "$TMP/base"
expect_exit 0 "init-model base"
cp -r "$TMP/base" "$TMP/base.orig"

common='optimizer: {lr: 2.0e-3}
    batch: {global: 8, micro: 4, max_length: 64}
    train: {steps: 4}
    log: {every_steps: 1}'
recipe() {  # recipe OUT_DIR
  cat <<YAML
run: {name: lora, output_dir: $1, seed: 3}
models:
  tiny:
    path: $TMP/base
    chat_template: plain
    lora: {rank: 4, alpha: 8, dropout: 0.1, targets: all-linear}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $TMP/sft.jsonl}
    optimizer: {lr: 3.0e-3}
    batch: {global: 8, micro: 4, max_length: 64}
    train: {steps: 12}
    checkpoint: {every_steps: 2, keep_last: 2}
    log: {every_steps: 1}
  - name: dpo
    kind: preference
    policy: sft
    reference: base
    data: {train: $TMP/pairs.jsonl}
    $common
  - name: kto
    kind: unpaired
    policy: sft
    reference: {model: base, precompute: true}
    data: {train: $TMP/unpaired.jsonl}
    loss: {type: kto}
    $common
  - name: d2o
    kind: negatives
    policy: sft
    reference: base
    data: {train: $TMP/negatives.jsonl, samples: $TMP/samples.jsonl}
    $common
  - name: distill
    kind: distill
    policy: tiny
    teacher: sft
    data: {train: $TMP/sft.jsonl}
    loss: {type: kd}
    $common
  - name: sft_eval
    kind: eval
    policy: dpo
    data: {eval: $TMP/sft_eval.jsonl}
    batch: {micro: 4, max_length: 64}
  - name: gen
    kind: generate
    policy: dpo
    data: {train: $TMP/prompts.jsonl}
    generation: {max_new_tokens: 4, temperature: 0}
YAML
}
recipe "$TMP/ref" > "$TMP/ref.yaml"
run_long $BIN run "$TMP/ref.yaml"
expect_exit 0 "LoRA pipeline: sft, preference, unpaired, negatives, distill, eval, generate"
for s in sft dpo kto d2o distill; do
  [ -f "$TMP/ref/$s/adapter/adapter_model.safetensors" ] && [ -f "$TMP/ref/$s/adapter/adapter_config.json" ] &&
    [ ! -e "$TMP/ref/$s/model" ] && [ -f "$TMP/ref/$s/DONE" ]
  check "$s: <stage>/adapter written, no <stage>/model" $?
done
[ "$(wc -l < "$TMP/ref/gen/generations.jsonl")" -eq 4 ]
check "generate with the adapter model wrote 4 completions" $?
cmp -s "$TMP/base/model.safetensors" "$TMP/base.orig/model.safetensors"
check "the base model folder is unchanged" $?
python3 -c "
import json; c = json.load(open('$TMP/ref/dpo/adapter/adapter_config.json'))
assert c['peft_type'] == 'LORA' and c['task_type'] == 'CAUSAL_LM' and c['r'] == 4 and c['lora_alpha'] == 8, c
assert c['base_model_name_or_path'] == '$TMP/base' and len(c['target_modules']) == 7, c"
check "adapter_config.json: LORA, CAUSAL_LM, r, lora_alpha, the 7 targets, the base path" $?
loss1=$(metric "$TMP/ref/metrics.jsonl" dpo 1 loss)
near "$loss1" 0.69314718 1e-6
check "dpo: the sft adapter is the policy and the reference is its base: step-1 loss ${loss1} is not log 2" $((! $?))

# export --merge of the last sft checkpoint; a LoRA checkpoint without --merge is a usage error.
run_cmd $BIN export "$TMP/ref/checkpoints/sft" --out "$TMP/merged"
expect_exit 2 "export of a LoRA checkpoint without --merge"
expect_output "--merge" "the message names --merge"
run_cmd $BIN export "$TMP/ref/checkpoints/sft" --out "$TMP/merged" --merge
expect_exit 0 "export --merge"
[ -f "$TMP/merged/model.safetensors" ]
check "export --merge wrote a model" $?

# lora.merge: true also writes the merged model.
sed 's/targets: all-linear}/targets: all-linear, merge: true}/; /  - name: dpo/,$d' "$TMP/ref.yaml" |
  sed "s#output_dir: $TMP/ref#output_dir: $TMP/merge#" > "$TMP/merge.yaml"
run_long $BIN run "$TMP/merge.yaml"
expect_exit 0 "sft with lora.merge: true"
[ -f "$TMP/merge/sft/model/model.safetensors" ] && [ -f "$TMP/merge/sft/adapter/adapter_model.safetensors" ]
check "lora.merge: <stage>/model and <stage>/adapter" $?
cmp -s "$TMP/merge/sft/adapter/adapter_model.safetensors" "$TMP/ref/sft/adapter/adapter_model.safetensors"
check "same adapter as the run without merge" $?
python3 - "$TMP/merged/model.safetensors" "$TMP/merge/sft/model/model.safetensors" <<'PY'
import json, struct, sys
def header(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n)); h.pop("__metadata__", None)
        return {k: (v["dtype"], v["shape"]) for k, v in h.items()}
sys.exit(0 if header(sys.argv[1]) == header(sys.argv[2]) and not any("lora" in k for k in header(sys.argv[1])) else 1)
PY
check "the merged model has the base's tensors only (no lora_A/lora_B), as export --merge" $?
python3 - "$TMP/merged/model.safetensors" "$TMP/merge/sft/model/model.safetensors" "$TMP"/ref/checkpoints/sft/step-12 <<'PY'
import json, struct, sys
def tensors(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n)); h.pop("__metadata__", None)
        data = f.read()
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a == b, [k for k in a if a[k] != b.get(k)]
# The checkpoint leaves out the frozen base: its rank file's model tensors are the adapters alone.
ckpt = tensors(sys.argv[3] + "/rank-00000.safetensors")
model = [k for k in ckpt if k.startswith("model.")]
assert model and all(".lora_A." in k or ".lora_B." in k for k in model), model
state = json.load(open(sys.argv[3] + "/state.json"))
assert state["frozen_base"]["path"].endswith("/base") and state["frozen_base"]["digest"], state.get("frozen_base")
PY
check "export --merge (base re-read from its folder) equals lora.merge's model bitwise; the checkpoint holds the adapters only" $?

# A checkpoint whose frozen base folder has changed: export --merge refuses it (data error).
cp -r "$TMP/ref/checkpoints/sft/step-12" "$TMP/ckpt_moved"
sed -i "s#\"path\": \"$TMP/base\"#\"path\": \"$TMP/base.orig/../merged\"#" "$TMP/ckpt_moved/state.json"
run_cmd $BIN export "$TMP/ckpt_moved" --out "$TMP/merged2" --merge
expect_exit 3 "export --merge of a checkpoint whose base folder holds other weights"
expect_output "frozen base .* has changed" "the error says the base changed"

# kill -9 in the middle of the sft stage, then resume: the adapter is bitwise the uninterrupted run's.
sed '/  - name: dpo/,$d' "$TMP/ref.yaml" | sed "s#output_dir: $TMP/ref#output_dir: $TMP/kill#" > "$TMP/kill.yaml"
setsid env ALIGNTRAIN_TEST_STEP_DELAY_MS=200 $BIN run "$TMP/kill.yaml" > "$TMP/kill.log" 2>&1 &
pid=$!
wait_for_step "$TMP/kill/metrics.jsonl" 7 $pid
kill -KILL -- -$pid 2>/dev/null
wait $pid 2>/dev/null
[ ! -f "$TMP/kill/sft/DONE" ]
check "kill -9 stopped the sft stage before its end" $?
run_long $BIN run "$TMP/kill.yaml"
expect_exit 0 "resume after kill -9"
expect_output "resuming from .*step-" "resumed from a checkpoint"
cmp -s "$TMP/kill/sft/adapter/adapter_model.safetensors" "$TMP/ref/sft/adapter/adapter_model.safetensors"
check "resumed adapter bitwise identical to the uninterrupted run's" $?

# plan: trainable vs frozen parameters and the memory saved.
run_cmd $BIN plan "$TMP/ref.yaml"
expect_exit 0 "plan"
expect_output "dpo +trainable [0-9]+ \([0-9.]+%\), frozen [0-9]+; peak [0-9.]+ MiB vs [0-9.]+ MiB with full training \(saves [0-9.]+ MiB\)" "plan: LoRA line of dpo"

# A stage's own `lora` (fresh adapters): on a fully trained stage (dpo_lora, with `reference: base` = that stage's
# model), and in place of a declared model's untrained `lora` settings (override); `teacher_reference: base` (ADPA's
# π_ref: the teacher with its adapters off, no second copy) gives the losses of naming the teacher's base model itself,
# live and precomputed.
cat > "$TMP/stage.yaml" <<YAML
run: {name: stagelora, output_dir: $TMP/stage, seed: 3}
models:
  plain: {path: $TMP/base, chat_template: plain}
  tiny_lora: {path: $TMP/base, chat_template: plain, lora: {rank: 4, alpha: 8, targets: [q_proj, v_proj]}}
stages:
  - name: full_sft
    kind: sft
    policy: plain
    data: {train: $TMP/sft.jsonl}
    $common
  - name: dpo_lora
    kind: preference
    policy: full_sft
    reference: base
    lora: {rank: 2, alpha: 4, dropout: 0.1, targets: all-linear}
    data: {train: $TMP/pairs.jsonl}
    optimizer: {lr: 2.0e-2}
    batch: {global: 8, micro: 4, max_length: 64}
    train: {steps: 3}
    log: {every_steps: 1}
  - name: override
    kind: sft
    policy: tiny_lora
    lora: {rank: 2, alpha: 2, targets: [o_proj], init: gaussian}
    data: {train: $TMP/sft.jsonl}
    $common
YAML
for t in "adpa_base|base" "adpa_named|full_sft" "adpa_pre|{model: base, precompute: true}" "adpa_self|dpo_lora"; do
  IFS='|' read -r name tref <<< "$t"
  cat >> "$TMP/stage.yaml" <<YAML
  - name: $name
    kind: distill
    policy: plain
    teacher: dpo_lora
    teacher_reference: $tref
    data: {train: $TMP/pairs.jsonl}
    loss: {type: adpa}
    optimizer: {lr: 1.0e-3}
    batch: {global: 8, micro: 4, max_length: 64}
    train: {steps: 2}
    log: {every_steps: 1}
YAML
done
# Online stages with a stage lora: `reference: base` (the policy with its adapters off: GRPO's KL term, f-DPG's
# a(x)) gives the losses of naming the base stage itself.
for t in "grpo_base|grpo|base|" "grpo_named|grpo|full_sft|" "fdpg_base|fdpg|base|, target: reward" \
         "fdpg_named|fdpg|full_sft|, target: reward"; do
  IFS='|' read -r name loss ref extra <<< "$t"
  cat >> "$TMP/stage.yaml" <<YAML
  - name: $name
    kind: online
    policy: full_sft
    reference: $ref
    lora: {rank: 2, alpha: 4, targets: all-linear}
    data: {train: $TMP/sft.jsonl}
    loss: {type: $loss}
    online: {num_samples: 4, beta: 0.1$extra, rewards: [{type: regex, pattern: '[a-z]'}]}
    generation: {max_new_tokens: 8}
    optimizer: {lr: 2.0e-2}
    batch: {global: 4, micro: 2, max_length: 64}
    train: {steps: 3}
    log: {every_steps: 1}
YAML
done
run_long $BIN run "$TMP/stage.yaml"
expect_exit 0 "stage lora: full sft, preference with a stage lora, override, four ADPA stages, four online stages"
for t in "grpo loss" "grpo kl" "fdpg loss" "fdpg z" "fdpg kl_base"; do
  read -r loss key <<< "$t"
  for step in 1 2 3; do
    want=$(metric "$TMP/stage/metrics.jsonl" ${loss}_named $step $key)
    got=$(metric "$TMP/stage/metrics.jsonl" ${loss}_base $step $key)
    near "$got" "$want" 1e-5 1e-12
    check "online $loss, reference: base: step-$step $key ${got:-<none>} equals naming the base (${want:-<none>})" $?
  done
done
kl1=$(metric "$TMP/stage/metrics.jsonl" grpo_base 1 kl); kl3=$(metric "$TMP/stage/metrics.jsonl" grpo_base 3 kl)
near "$kl1" 0 1e-9 && ! near "$kl3" 0 1e-7
check "online grpo, reference: base: KL ${kl1:-<none>} at step 1 (fresh adapters), ${kl3:-<none>} at step 3" $?
python3 -c "
import json; c = json.load(open('$TMP/stage/dpo_lora/adapter/adapter_config.json'))
assert c['r'] == 2 and c['lora_alpha'] == 4 and len(c['target_modules']) == 7, c
assert c['base_model_name_or_path'] == '$TMP/stage/full_sft/model', c
c = json.load(open('$TMP/stage/override/adapter/adapter_config.json'))
assert c['r'] == 2 and c['lora_alpha'] == 2 and c['target_modules'] == ['o_proj'] and c['init_lora_weights'] == 'gaussian', c"
check "stage lora: dpo_lora's adapter (r 2, all-linear) on full_sft's model; override's settings replace tiny_lora's" $?
[ ! -e "$TMP/stage/dpo_lora/model" ] && [ -f "$TMP/stage/full_sft/model/model.safetensors" ]
check "stage lora: <stage>/adapter only; the full sft stage's model is its base" $?
loss1=$(metric "$TMP/stage/metrics.jsonl" dpo_lora 1 loss)
loss3=$(metric "$TMP/stage/metrics.jsonl" dpo_lora 3 loss)
near "$loss1" 0.69314718 1e-6 && ! near "$loss3" 0.69314718 1e-4
check "stage lora + reference: base: step-1 loss ${loss1} = log 2 (fresh adapters, B = 0), step 3 ${loss3} moved" $?
for step in 1 2; do
  want=$(metric "$TMP/stage/metrics.jsonl" adpa_named $step loss)
  for name in adpa_base adpa_pre; do
    got=$(metric "$TMP/stage/metrics.jsonl" $name $step loss)
    near "$got" "$want" 1e-7
    check "teacher_reference: base: $name step-$step loss ${got:-<none>} equals naming the base (${want:-<none>})" $?
  done
done
self=$(metric "$TMP/stage/metrics.jsonl" adpa_self 1 loss)
want=$(metric "$TMP/stage/metrics.jsonl" adpa_named 1 loss)
! near "$self" "$want" 1e-6
check "the teacher's adapters matter: with the teacher itself as reference the step-1 loss is ${self:-<none>}" $?
run_cmd $BIN plan "$TMP/stage.yaml"
expect_exit 0 "plan with a stage lora and teacher_reference: base"
expect_output "dpo_lora +trainable [0-9]+" "plan: LoRA line of the stage with its own lora"

# Recipe errors: exit 2 naming the field.
sed '/  - name: adpa_base/,$d' "$TMP/stage.yaml" > "$TMP/stage_errors.yaml"
cat >> "$TMP/stage_errors.yaml" <<YAML
  - name: stacked
    kind: sft
    policy: dpo_lora
    lora: {rank: 2}
    data: {train: $TMP/sft.jsonl}
  - name: no_adapters
    kind: distill
    policy: plain
    teacher: full_sft
    teacher_reference: base
    data: {train: $TMP/pairs.jsonl}
    loss: {type: adpa}
YAML
run_cmd $BIN validate "$TMP/stage_errors.yaml"
expect_exit 2 "stage lora on trained adapters; teacher_reference: base without adapters"
expect_output "stages.stacked.lora.*already carries trained LoRA adapters \(stage .dpo_lora.\).*not supported" \
  "stage lora on a policy with trained adapters: says it is not supported"
expect_output "stages.no_adapters.teacher_reference.*needs a teacher with LoRA adapters; teacher .full_sft. has none" \
  "teacher_reference: base without adapters: says why"

sed 's#    lora: {rank: 4#    adapter: '"$TMP"'/ref/sft/adapter\n    lora: {rank: 4#' "$TMP/ref.yaml" > "$TMP/both.yaml"
run_cmd $BIN validate "$TMP/both.yaml"
expect_exit 2 "lora and adapter together"
expect_output "models.tiny.adapter" "the error names models.tiny.adapter"
sed 's/targets: all-linear/targets: [q_proj, qkv_proj]/' "$TMP/ref.yaml" > "$TMP/target.yaml"
run_cmd $BIN validate "$TMP/target.yaml"
expect_exit 2 "unknown LoRA target"
expect_output "models.tiny.lora.targets.*qkv_proj" "the error names the field and the target"
sed '/    lora: {rank/d' "$TMP/ref.yaml" > "$TMP/nolora.yaml"
run_cmd $BIN validate "$TMP/nolora.yaml"
expect_exit 2 "reference: base without adapters"
expect_output "reference.*needs a policy with LoRA adapters" "the error says why"
finish
