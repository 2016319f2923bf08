#!/usr/bin/env bash
# TensorBoard files and report.html of an end-to-end run (SFT with eval, DPO, KD, an eval stage; tiny models, a few
# steps), checked against metrics.jsonl by test/metrics/check_run_outputs.py: every scalar at the same steps with
# float32-equal values, the recipe as a text summary, one report polyline per metric with exactly its points.
# The SFT stage is killed (-9) after logging steps past its last checkpoint and resumed: the second event file's
# SessionLog START must make TensorBoard drop the orphaned steps, so every step shows once. Then
# `aligntrain report`: regenerates the same page, its --help, its exit codes. Finally the page is rendered by
# headless Chromium into a PNG that must be more than one colour (skipped, saying so, when there is no chromium).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
CHECK=test/metrics/check_run_outputs.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f test/cli/testlib.sh)")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/run_outputs
rm -rf "$TMP" && mkdir -p "$TMP"
if [ ! -x "$PY" ] || ! "$PY" -c 'import tensorboard, numpy' 2>/dev/null; then
  echo "run_outputs_test: no Python with tensorboard and numpy at '$PY' (run scripts/setup.sh, or pass" \
       "--test_env=ALIGNTRAIN_PYTHON=/path/to/python)" >&2
  exit 1
fi
DATA=$(cd config/recipes/data && pwd)
RUN=$TMP/run
cat > "$TMP/recipe.yaml" <<YAML
run: {name: outputs, output_dir: $RUN, seed: 3}
models:
  tiny: {init: {preset: tiny-llama, seed: 1}, tokenizer: byte, chat_template: plain}
  student: {init: {preset: tiny-llama, seed: 2, num_layers: 1}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $DATA/sft_train.jsonl, eval: $DATA/sft_eval.jsonl}
    optimizer: {lr: 3.0e-3}
    batch: {global: 8, micro: 8, max_length: 64}
    train: {steps: 14}
    eval: {every_steps: 7}
    checkpoint: {every_steps: 4, keep_last: 2}
    log: {every_steps: 1, tensorboard: true}
  - name: dpo
    kind: preference
    policy: sft
    reference: sft
    loss: {type: dpo, beta: 0.1}
    data: {train: $DATA/pairs_train.jsonl, eval: $DATA/pairs_eval.jsonl}
    batch: {global: 8, micro: 8, max_length: 64}
    train: {steps: 4}
    eval: {every_steps: 2}
    log: {every_steps: 1, tensorboard: true}
  - name: kd
    kind: distill
    policy: student
    teacher: sft
    loss: {type: kd, lmbda: 0.0}
    data: {train: $DATA/sft_train.jsonl}
    batch: {global: 8, micro: 8, max_length: 64}
    train: {steps: 3}
    log: {every_steps: 1, tensorboard: true}
  - name: ev
    kind: eval
    policy: sft
    data: {eval: $DATA/sft_eval.jsonl}
    batch: {micro: 16, max_length: 64}
YAML

# 1. Kill the SFT stage after step 6 is logged (checkpoint at 4), then resume.
ALIGNTRAIN_TEST_STEP_DELAY_MS=400 $BIN run "$TMP/recipe.yaml" > "$TMP/first.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  [ "$(metric "$RUN/metrics.jsonl" sft 6 loss 2>/dev/null)" != "" ] && break
  sleep 0.05
done
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
OUT=$(cat "$TMP/first.log")
last_logged=$(python3 -c "import json; print(max(json.loads(l)['step'] for l in open('$RUN/metrics.jsonl') if l.strip()))")
ckpt=$(ls "$RUN/checkpoints/sft" | sed -n 's/^step-\([0-9]*\)$/\1/p' | sort -n | tail -1)
echo "killed after logging step $last_logged; newest checkpoint step $ckpt"
[ -n "$ckpt" ] && [ "$last_logged" -gt "$ckpt" ] && [ ! -f "$RUN/sft/DONE" ]
check "the kill left steps logged after the newest checkpoint (orphans for TensorBoard to drop)" $?
[ -f "$RUN/report.html" ]; check "report.html exists during the run" $?

run_long $BIN run "$TMP/recipe.yaml"
expect_exit 0 "the resumed run finishes"
expect_output "\[sft\] resuming from" "the SFT stage resumed from its checkpoint"
[ "$(ls "$RUN/tensorboard/sft" | grep -c '^events\.out\.tfevents\.')" -eq 2 ]
check "the resume appended a second event file to tensorboard/sft" $?
[ "$(ls "$RUN/tensorboard/dpo" | grep -c '^events\.out\.tfevents\.')" -eq 1 ]; check "one event file for dpo" $?

OUT=$("$PY" "$CHECK" "$RUN" sft,dpo,kd 2>&1); RC=$?
echo "$OUT"
expect_exit 0 "TensorBoard scalars and text, and report.html polylines, match metrics.jsonl"
grep -q '"stage":"kd".*"kd/forward_kl"' "$RUN/metrics.jsonl" && grep -q 'data-series="kd/forward_kl"' "$RUN/report.html"
check "the distillation stage's divergence is plotted" $?
grep -q 'data-series="rewards/margins"' "$RUN/report.html" && grep -q 'data-series="eval/rewards/accuracies"' "$RUN/report.html"
check "the preference stage's margins and held-out accuracy are plotted" $?

# 2. aligntrain report: the same page from the files alone; help; errors.
strip_time() { sed 's/ · written [0-9: -]* UTC//' "$1"; }
strip_time "$RUN/report.html" > "$TMP/during_run.html"
rm "$RUN/report.html"
run_cmd $BIN report "$RUN"
expect_exit 0 "aligntrain report RUN_DIR"
expect_output "report.html: 4 stage\(s\)" "it names the file it wrote"
strip_time "$RUN/report.html" > "$TMP/regenerated.html"
cmp -s "$TMP/during_run.html" "$TMP/regenerated.html"; check "the regenerated page equals the one the run wrote" $?
run_cmd $BIN report --help
expect_exit 0 "report --help"
expect_output "RUN_DIR" "help names RUN_DIR"
expect_output "Exit codes" "help gives the exit codes"
run_cmd $BIN report "$TMP/nowhere"
expect_exit 2 "a missing run folder is a usage error"
expect_output "nowhere: no such folder" "the message names the folder"
mkdir -p "$TMP/not_a_run"
run_cmd $BIN report "$TMP/not_a_run"
expect_exit 2 "a folder without recipe.resolved.yaml is a usage error"
expect_output "not a run folder: it has no recipe.resolved.yaml" "the message says why"
mkdir -p "$TMP/broken"
cp "$RUN/recipe.resolved.yaml" "$TMP/broken/"
printf '{"stage":"sft","step":1,"loss":1.0}\n{"stage": oops}\n{"stage":"sft","step":2,"loss":1.0}\n' > "$TMP/broken/metrics.jsonl"
run_cmd $BIN report "$TMP/broken"
expect_exit 3 "an unreadable metrics line is a data error"
expect_output "broken/metrics.jsonl:2: not valid JSON" "the message names file and line"
run_cmd $BIN report
expect_exit 2 "report without RUN_DIR is a usage error"

# 3. Headless Chromium renders the page (no network, no script needed) into a PNG with more than one colour.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "SKIP - headless Chromium screenshot: no chromium on PATH (scripts/setup.sh installs Debian's chromium)"
else
  mkdir -p "$TMP/home"
  OUT=$(HOME="$TMP/home" timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --hide-scrollbars --screenshot="$TMP/report.png" --window-size=1280,1600 "file://$RUN/report.html" 2>&1)
  RC=$?
  expect_exit 0 "chromium --headless --screenshot"
  OUT=$("$PY" - "$TMP/report.png" <<'PY' 2>&1
import sys
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
colours = img.getcolors(maxcolors=1 << 24)
dark = sum(n for n, (r, g, b) in colours if r + g + b < 200)
print(f"{img.size[0]}x{img.size[1]}, {len(colours)} colours, {dark} dark pixels")
sys.exit(0 if img.size == (1280, 1600) and len(colours) > 50 and dark > 2000 else 1)
PY
  ); RC=$?
  echo "$OUT"
  expect_exit 0 "the screenshot is 1280x1600 with text and curves (many colours, dark pixels)"
fi
finish
