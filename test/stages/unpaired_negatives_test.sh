#!/usr/bin/env bash
# `kind: unpaired` (KTO, BCO) and `kind: negatives` (D2O) end to end (issue 6):
#   step-1 losses equal the closed forms when the policy starts as the reference (KTO 0.5 = 1 − σ(0) with z0 = 0,
#   BCO log 2 with δ = 0, D2O log 2), D2O's loss falls and KTO/BCO reward desirable over undesirable completions; KTO warns about the class balance; BCO's running mean δ survives
#   a SIGTERM + resume exactly (bitwise weights); bad data: missing label, label not a bool, a prompt without
#   samples, BCO UDM naming no declared model. KTO, BCO and D2O start from a short SFT stage, as they would in practice.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/unpaired
rm -rf "$TMP" && mkdir -p "$TMP"
python3 - config/recipes/data/pairs_train.jsonl "$TMP" <<'PY'
import json, sys
pairs = [json.loads(l) for l in open(sys.argv[1])][:240]
out = sys.argv[2]
with open(f"{out}/unpaired.jsonl", "w") as f:
    for i, p in enumerate(pairs):  # 2 desirable : 1 undesirable
        good = i % 3 != 2
        f.write(json.dumps({"prompt": p["prompt"], "completion": p["chosen"] if good else p["rejected"], "label": good}) + "\n")
with open(f"{out}/negatives.jsonl", "w") as f, open(f"{out}/samples.jsonl", "w") as g:
    for p in pairs[:120]:
        f.write(json.dumps({"prompt": p["prompt"], "rejected": p["rejected"]}) + "\n")
        for k, c in enumerate([p["chosen"], p["chosen"] + " "]):
            g.write(json.dumps({"prompt": p["prompt"], "completion": c, "sample": k}) + "\n")
PY
recipe() {  # recipe OUT_DIR
  cat <<YAML
run: {name: u, output_dir: $1, seed: 3}
models:
  tiny: {init: {preset: tiny-llama, seed: 1}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $PWD/config/recipes/data/sft_train.jsonl}
    optimizer: {lr: 3.0e-3, betas: [0.9, 0.95]}
    schedule: {warmup_steps: 10, decay: cosine, min_lr_ratio: 0.1}
    batch: {global: 32, micro: 16, max_length: 64}
    train: {steps: 100}
    log: {every_steps: 50}
  - name: kto
    kind: unpaired
    policy: sft
    reference: {model: sft, precompute: true}
    data: {train: $TMP/unpaired.jsonl}
    loss: {type: kto}
    optimizer: {lr: 2.0e-3}
    batch: {global: 16, micro: 8, max_length: 64}
    train: {steps: 24}
    log: {every_steps: 1}
  - name: bco
    kind: unpaired
    policy: sft
    reference: sft
    data: {train: $TMP/unpaired.jsonl}
    loss: {type: bco}
    optimizer: {lr: 2.0e-3}
    batch: {global: 16, micro: 8, max_length: 64}
    train: {steps: 24}
    checkpoint: {every_steps: 4}
    log: {every_steps: 1}
  - name: d2o
    kind: negatives
    policy: sft
    reference: sft
    data: {train: $TMP/negatives.jsonl, samples: $TMP/samples.jsonl}
    loss: {type: d2o}
    optimizer: {lr: 2.0e-3}
    batch: {global: 16, micro: 8, max_length: 64}
    train: {steps: 24}
    log: {every_steps: 1}
YAML
}
recipe "$TMP/ref" > "$TMP/ref.yaml"
run_long $BIN run "$TMP/ref.yaml"
expect_exit 0 "kto, bco and d2o stages run"
expect_output "outside \[1, 4/3\], the range TRL recommends for KTO" "KTO warns about a 2:1 class balance"
expect_output "\[d2o\] 120 training prompt\(s\) with a rejected response and 2 sample\(s\) each" "D2O takes K = 2 samples per prompt"
M=$TMP/ref/metrics.jsonl
for s in "kto 0.5" "bco 0.6931471805599453" "d2o 0.6931471805599453"; do
  set -- $s
  first=$(metric $M $1 1 loss); last=$(metric $M $1 24 loss)
  near "$first" "$2" 1e-5; check "$1: step-1 loss $first equals the closed form $2" $?
done
d2o_last=$(metric $M d2o 24 loss)
py_check "$d2o_last < 0.6"; check "d2o: loss falls (0.693 -> $d2o_last)" $?
# KTO and BCO: desirable completions gain reward over undesirable ones (mean over the last 12 steps).
for st in kto bco; do
  margin=$(python3 - "$M" $st <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r.get("stage") == sys.argv[2] and r.get("step", 0) > 12 and "rewards/chosen" in r]
print(sum(r["rewards/chosen"] - r["rewards/rejected"] for r in rows) / len(rows))
PY
)
  py_check "$margin > 0.05"; check "$st: desirable completions gain reward over undesirable ones (mean margin $margin)" $?
done
[ "$(metric $M kto 5 kl)" != "" ]; check "kto logs kl (z0)" $?
[ "$(metric $M bco 5 delta)" != "" ]; check "bco logs delta" $?

# BCO's running mean survives SIGTERM + resume: bitwise the same weights.
recipe "$TMP/term" > "$TMP/term.yaml"
ALIGNTRAIN_TEST_STEP_DELAY_MS=150 $BIN run "$TMP/term.yaml" > "$TMP/term.log" 2>&1 &  # a pause after each step: the signal lands mid-stage
pid=$!
for _ in $(seq 1 4000); do
  grep -q '"stage":"bco","step":9' "$TMP/term/metrics.jsonl" 2>/dev/null && break
  sleep 0.05
done
kill -TERM $pid; wait $pid
RC=$?; OUT=$(cat "$TMP/term.log")
expect_exit 0 "SIGTERM during the bco stage exits 0"
run_long $BIN run "$TMP/term.yaml"
expect_exit 0 "resume"
cmp -s "$TMP/term/bco/model/model.safetensors" "$TMP/ref/bco/model/model.safetensors"
check "bco after SIGTERM + resume: weights bitwise identical (delta restored)" $?
cmp -s "$TMP/term/d2o/model/model.safetensors" "$TMP/ref/d2o/model/model.safetensors"
check "d2o after the resumed run: weights bitwise identical" $?

# Bad data.
head -n 7 "$TMP/unpaired.jsonl" > "$TMP/nolabel.jsonl"; echo '{"prompt": "p", "completion": "c"}' >> "$TMP/nolabel.jsonl"
head -n 7 "$TMP/unpaired.jsonl" > "$TMP/strlabel.jsonl"; echo '{"prompt": "p", "completion": "c", "label": "yes"}' >> "$TMP/strlabel.jsonl"
run_long $BIN run "$TMP/ref.yaml" --set "run.output_dir=$TMP/bad1" --set "stages.kto.data.train=$TMP/nolabel.jsonl"
expect_exit 3 "missing label"
expect_output "nolabel.jsonl:8: label: missing field" "names file, line and field"
run_long $BIN run "$TMP/ref.yaml" --set "run.output_dir=$TMP/bad2" --set "stages.kto.data.train=$TMP/strlabel.jsonl"
expect_exit 3 "label not a bool"
expect_output 'strlabel.jsonl:8: label: expected true or false, got "yes"' "names file, line, field and the value"
head -n 100 "$TMP/samples.jsonl" > "$TMP/fewsamples.jsonl"
run_long $BIN run "$TMP/ref.yaml" --set "run.output_dir=$TMP/bad3" --set "stages.d2o.data.samples=$TMP/fewsamples.jsonl"
expect_exit 3 "a prompt without self-generated samples"
expect_output "negatives.jsonl:51: prompt: no self-generated sample for this prompt" "names the file, line and the samples file"
run_long $BIN run "$TMP/ref.yaml" --set "run.output_dir=$TMP/bad4" --set stages.bco.loss.udm_model=sft
expect_exit 2 "BCO UDM with a udm_model that is a stage, not a declared model"
expect_output "udm_model" "names the field"
finish
