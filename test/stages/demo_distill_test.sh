#!/usr/bin/env bash
# The demo pipeline (config/recipes/demo.yaml, fixed seeds) end to end: teacher SFT -> DPO, LoRA DPO, GRPO and f-DPG
# (online, exact-match reward); student SFT -> plain KD (baseline), student SFT -> DCKD -> generate (the student's
# greedy answers) -> ADPA, all from the f-DPG teacher; an eval stage per model with exact-match accuracy on the
# held-out prompts. Asserts that GRPO and f-DPG raise the SFT teacher's held-out exact match by a clear margin, that
# the teacher the students learn from is the strongest model, that the distilled students beat the student-SFT
# baseline and ADPA+ beats plain KD, and that DPO and LoRA DPO both reach held-out rewards/accuracies >= 0.8.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/demo_distill
rm -rf "$TMP" && mkdir -p "$TMP"
# ~4 minutes on 2 idle cores; the limit leaves room for a machine shared with other tests.
OUT=$(timeout 2400 $BIN run config/recipes/demo.yaml --set "run.output_dir=$TMP/demo" 2>&1)
RC=$?
expect_exit 0 "the demo pipeline (19 stages)"
M="$TMP/demo/metrics.jsonl"
em() { metric "$M" "$1" 0 eval/exact_match; }
sft=$(em eval_student_sft); kd=$(em eval_student_kd); dckd=$(em eval_student_dckd); adpa=$(em eval_student_adpa)
tsft=$(em sft_eval); grpo=$(em eval_grpo); fdpg=$(em eval_fdpg); dpo=$(em eval_dpo); dpo_lora=$(em eval_dpo_lora)
echo "held-out exact match: teacher SFT $tsft, +DPO $dpo, +LoRA DPO $dpo_lora, +GRPO $grpo, +f-DPG $fdpg;" \
  "student SFT $sft, KD $kd, DCKD $dckd, DCKD+ADPA $adpa"
py_check "$grpo >= $tsft + 0.1"; check "GRPO ($grpo) raises the SFT teacher's exact match ($tsft) by >= 0.1" $?
py_check "$fdpg >= $tsft + 0.1"; check "f-DPG ($fdpg) raises the SFT teacher's exact match ($tsft) by >= 0.1" $?
py_check "$fdpg >= max($tsft, $dpo, $dpo_lora, $sft, $kd, $dckd, $adpa)"
check "the students' teacher (f-DPG, $fdpg) is the strongest of the teachers and students" $?
py_check "$dckd > $sft + 0.1"; check "DCKD student ($dckd) beats the student-SFT baseline ($sft) by > 0.1" $?
py_check "$adpa > $sft + 0.1"; check "ADPA+ student ($adpa) beats the student-SFT baseline ($sft) by > 0.1" $?
py_check "$adpa > $kd"; check "ADPA+ student ($adpa) beats the plain-KD student ($kd)" $?
for stage in dpo dpo_lora; do
  acc=$(python3 -c "
import json
print([json.loads(l) for l in open('$M') if json.loads(l).get('stage') == '$stage' and 'eval/rewards/accuracies' in json.loads(l)][-1]['eval/rewards/accuracies'])")
  py_check "$acc >= 0.8"; check "teacher $stage: held-out rewards/accuracies $acc >= 0.8" $?
done
test -s "$TMP/demo/dpo_lora/adapter/adapter_model.safetensors" && test -s "$TMP/demo/dpo_lora/adapter/adapter_config.json"
check "the LoRA stage wrote its adapter in PEFT format" $?
# GRPO logs every 20 steps with 2 updates per batch: the samples of each logged step's batch, named by its first step.
[ "$(ls "$TMP/demo/grpo/samples" | wc -l)" = 16 ] && test -s "$TMP/demo/grpo/samples/step-000299.jsonl"
check "GRPO wrote the samples of each of its 16 logged steps (the last: step-000299.jsonl)" $?
py_check "sum(1 for _ in open('$TMP/demo/student_samples/generations.jsonl')) == 800"
check "the generate stage wrote the student's answers to the 800 pair prompts" $?
finish
