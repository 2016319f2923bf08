#!/usr/bin/env bash
# The demo pipeline (config/recipes/demo.yaml, fixed seeds) end to end: teacher SFT -> teacher DPO, student SFT ->
# plain KD (baseline), student SFT -> DCKD -> generate (the student's greedy answers) -> ADPA, and an eval stage per
# model with exact-match accuracy on the held-out prompts. Asserts that the distilled students beat the student-SFT
# baseline, that ADPA+ beats plain KD, and that the teacher's DPO stage reaches held-out rewards/accuracies >= 0.8.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/demo_distill
rm -rf "$TMP" && mkdir -p "$TMP"
# ~2.5 minutes on 2 idle cores; the limit leaves room for a machine shared with other tests.
OUT=$(timeout 2400 $BIN run config/recipes/demo.yaml --set "run.output_dir=$TMP/demo" 2>&1)
RC=$?
expect_exit 0 "the demo pipeline (13 stages)"
M="$TMP/demo/metrics.jsonl"
em() { metric "$M" "$1" 0 eval/exact_match; }
sft=$(em eval_student_sft); kd=$(em eval_student_kd); dckd=$(em eval_student_dckd); adpa=$(em eval_student_adpa)
teacher=$(em eval_dpo)
echo "held-out exact match: teacher (SFT+DPO) $teacher; student SFT $sft, KD $kd, DCKD $dckd, DCKD+ADPA $adpa"
py_check "$dckd > $sft + 0.1"; check "DCKD student ($dckd) beats the student-SFT baseline ($sft) by > 0.1" $?
py_check "$adpa > $sft + 0.1"; check "ADPA+ student ($adpa) beats the student-SFT baseline ($sft) by > 0.1" $?
py_check "$adpa > $kd"; check "ADPA+ student ($adpa) beats the plain-KD student ($kd)" $?
acc=$(python3 -c "
import json
print([json.loads(l) for l in open('$M') if json.loads(l).get('stage') == 'dpo' and 'eval/rewards/accuracies' in json.loads(l)][-1]['eval/rewards/accuracies'])")
py_check "$acc >= 0.8"; check "teacher DPO: held-out rewards/accuracies $acc >= 0.8" $?
py_check "sum(1 for _ in open('$TMP/demo/student_samples/generations.jsonl')) == 800"
check "the generate stage wrote the student's answers to the 800 pair prompts" $?
finish
