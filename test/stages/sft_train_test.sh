#!/usr/bin/env bash
# `aligntrain run` on an SFT + eval recipe (test/stages/sft_demo.yaml: the demo recipe without its dpo stage, shortened): training loss falls, held-out loss
# ends clearly below the untrained model's, outputs are where DESIGN.md §5 puts them, a rerun skips DONE stages,
# a results-changing recipe edit is refused with the field named, a logging-only edit is accepted, --fresh starts
# over, and a run with packing trains too.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/sft_train
rm -rf "$TMP" && mkdir -p "$TMP"
RECIPE=test/stages/sft_demo.yaml
SETS=(--set "run.output_dir=$TMP/run" --set stages.sft.train.steps=60 --set stages.sft.eval.every_steps=30
      --set stages.sft.checkpoint.every_steps=20 --set stages.sft.log.every_steps=10)

run_long $BIN run $RECIPE "${SETS[@]}"
expect_exit 0 "SFT + eval pipeline runs"
expect_output "\[sft\] step 60/60" "progress line at the last step"
expect_output "summary:" "summary table"
M=$TMP/run/metrics.jsonl
first=$(metric $M sft 1 loss); last=$(metric $M sft 60 loss)
before=$(metric $M sft 0 eval/loss); after=$(metric $M sft 60 eval/loss)
echo "train loss $first -> $last, held-out $before -> $after"
py_check "$last < 0.6 * $first"; check "training loss falls below 0.6x its first value ($first -> $last)" $?
py_check "$before > 5.0 and $after < $before - 2.5"; check "held-out loss drops by more than 2.5 nats ($before -> $after)" $?
final=$(metric $M sft_eval 0 eval/loss)
near "$final" "$after" 1e-6; check "the eval stage on the saved model equals the last in-stage eval ($after, $final)" $?
[ -f $TMP/run/sft/model/model.safetensors ] && [ -f $TMP/run/sft/model/config.json ] && [ -f $TMP/run/sft/DONE ] && [ -f $TMP/run/sft_eval/DONE ]
check "stage model dir and DONE markers written" $?
[ -d $TMP/run/checkpoints/sft/step-60 ] && [ -d $TMP/run/checkpoints/sft/step-40 ] && [ ! -d $TMP/run/checkpoints/sft/step-20 ]
check "checkpoints pruned to keep_last 2" $?
for k in loss ppl lr grad_norm tokens tokens_per_sec; do
  [ "$(metric $M sft 10 $k)" != "" ]; check "metrics.jsonl step 10 has $k" $?
done
python3 -c "import transformers" 2>/dev/null || true

lines=$(wc -l < $M)
run_long $BIN run $RECIPE "${SETS[@]}"
expect_exit 0 "rerun of a finished recipe"
expect_output "\[sft\] done earlier" "DONE stage skipped"
[ "$(wc -l < $M)" -eq "$lines" ]; check "a skipped stage adds no metrics lines" $?

run_long $BIN run $RECIPE "${SETS[@]}" --set stages.sft.optimizer.lr=0.002
expect_exit 2 "a results-changing edit is refused"
expect_output "stages.sft.optimizer.lr: was 0.003, now 0.002" "the refusal names the field and both values"
expect_output "--fresh" "the refusal says how to start over"

run_long $BIN run $RECIPE "${SETS[@]}" --set stages.sft.log.every_steps=7
expect_exit 0 "a logging-only edit is accepted"

run_long $BIN run $RECIPE "${SETS[@]}" --set stages.sft.train.steps=10 --fresh
expect_exit 0 "--fresh starts over with a changed recipe"
expect_output "\[sft\] step 10/10" "the fresh run trained 10 steps"
[ "$(grep -c '"stage":"sft"' $M)" -le 5 ]; check "--fresh restarted metrics.jsonl" $?

run_long $BIN run $RECIPE --set "run.output_dir=$TMP/packed" --set stages.sft.train.steps=30 --set stages.sft.data.packing=true \
  --set stages.sft.batch.global=8 --set stages.sft.batch.micro=4 --set stages.sft.batch.max_length=64
expect_exit 0 "SFT with packing"
pf=$(metric $TMP/packed/metrics.jsonl sft 1 loss); pl=$(metric $TMP/packed/metrics.jsonl sft 30 loss)
pt=$(metric $TMP/packed/metrics.jsonl sft 1 tokens)
py_check "$pl < 0.7 * $pf"; check "packed training loss falls ($pf -> $pl)" $?
py_check "$pt > 8 * 30"; check "packed rows hold several examples ($pt tokens in 8 rows)" $?

# bf16 weights with fp32 master weights: trains, and the saved model is bf16.
run_long $BIN run $RECIPE --set "run.output_dir=$TMP/bf16" --set run.precision=bf16 --set stages.sft.train.steps=30 \
  --set stages.sft.batch.global=16 --set stages.sft.eval.every_steps=0
expect_exit 0 "SFT in bf16"
bf=$(metric $TMP/bf16/metrics.jsonl sft 1 loss); bl=$(metric $TMP/bf16/metrics.jsonl sft 30 loss)
py_check "$bl < 0.8 * $bf"; check "bf16 training loss falls ($bf -> $bl)" $?
grep -q '"torch_dtype": "bfloat16"\|"dtype": "bfloat16"' $TMP/bf16/sft/model/config.json
check "the bf16 stage saves a bf16 model" $?

# Conversational data: {"messages": [...]} rendered with the chatml template, loss on the assistant turn only.
python3 - "$TMP/messages.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        digits = [str((i * 7 + k * 3) % 10) for k in range(4)]
        f.write(json.dumps({"messages": [{"role": "system", "content": "Answer briefly."},
                                         {"role": "user", "content": "sort these digits: " + " ".join(digits)},
                                         {"role": "assistant", "content": " ".join(sorted(digits))}]}) + "\n")
PY
run_long $BIN run $RECIPE --set "run.output_dir=$TMP/messages" --set models.tiny.chat_template=chatml \
  --set "stages.sft.data.train=$TMP/messages.jsonl" --set "stages.sft.data.eval=$TMP/messages.jsonl" \
  --set "stages.sft_eval.data.eval=$TMP/messages.jsonl" --set stages.sft.train.steps=30 --set stages.sft.batch.global=16 \
  --set stages.sft.batch.micro=8 --set stages.sft.eval.every_steps=0 --set stages.sft.batch.max_length=128 \
  --set stages.sft_eval.batch.max_length=128
expect_exit 0 "SFT on chat messages with the chatml template"
mb=$(metric $TMP/messages/metrics.jsonl sft 0 eval/loss); ma=$(metric $TMP/messages/metrics.jsonl sft 30 eval/loss)
mt=$(metric $TMP/messages/metrics.jsonl sft 0 eval/tokens)
py_check "$ma < $mb - 1.0"; check "held-out loss on messages falls ($mb -> $ma)" $?
# Loss tokens per example: the assistant content (7 bytes) + <|im_end|> + "\n" = 9, nothing of the prompt.
py_check "$mt == 64 * 9"; check "loss is on the assistant turn only ($mt tokens for 64 examples)" $?
finish
