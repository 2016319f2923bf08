#!/usr/bin/env bash
# Resume on another layout (issue 19, DESIGN.md §8): a run killed mid-stage under one (tensor, data, ZeRO-1) layout
# resumes under another, and ends within 1e-5 relative of the uninterrupted run of the original layout in every metric
# of metrics.jsonl, with the same data positions at every step (no example skipped or repeated). The matrix:
#   DP2 → DP1, DP1 → DP2, DP2 with ZeRO-1 → DP1, DP1 → DP2 with ZeRO-1, TP2 → TP1, TP1 → TP2, TP2 → DP2
# (half of them after SIGKILL, half after SIGTERM). Also: the log says what was resharded; a resume that changes the
# global batch is refused naming the field; a checkpoint without its parameter list, or missing a rank file, is a
# precise error (exit 3) and leaves the checkpoint as it was.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/resume_layout
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 48 config/recipes/data/sft_train.jsonl > "$TMP/train.jsonl"
head -n 8 config/recipes/data/sft_eval.jsonl > "$TMP/eval.jsonl"

recipe() {  # recipe OUT_DIR
  cat <<YAML
run: {name: resume-layout, output_dir: $1, seed: 11}
models:
  tiny: {init: {preset: tiny-llama, seed: 5, vocab_size: 264}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $TMP/train.jsonl, eval: $TMP/eval.jsonl}
    optimizer: {lr: 2.0e-3, weight_decay: 0.01}
    schedule: {warmup_steps: 2, decay: cosine, min_lr_ratio: 0.1}
    batch: {global: 8, micro: 2, max_length: 64}
    train: {steps: 12}
    eval: {every_steps: 4}
    checkpoint: {every_steps: 2, keep_last: 2}
    log: {every_steps: 1}
YAML
}

# launch LAYOUT: the command prefix and overrides of a layout. The test's step pause (0: none) reaches every rank.
export ALIGNTRAIN_TEST_STEP_DELAY_MS=0
MPI=("${MPIRUN[@]}" -x ALIGNTRAIN_TEST_STEP_DELAY_MS)
launch() {
  case "$1" in
    dp1) LAUNCH=($BIN) SETS=(--set parallel.tensor=1) ;;
    dp2) LAUNCH=("${MPI[@]}" $BIN) SETS=(--set parallel.tensor=1) ;;
    dp2z) LAUNCH=("${MPI[@]}" $BIN) SETS=(--set parallel.tensor=1 --set parallel.zero1=true) ;;
    tp1) LAUNCH=($BIN) SETS=(--set parallel.tensor=1) ;;
    tp2) LAUNCH=("${MPI[@]}" $BIN) SETS=(--set parallel.tensor=2) ;;
  esac
}

# close_metrics REF RUN: every line of REF is in RUN (same stage, step and kind), integer fields equal (data
# positions, tokens), every other number within 1e-5 relative (floor 1e-3); timing and memory fields ignored.
close_metrics() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def lines(path):
    out = {}
    for l in open(path):
        j = json.loads(l)
        if "stage" not in j or "step" not in j:
            continue
        kind = "train" if "lr" in j else "eval"
        out[(j["stage"], j["step"], kind)] = j
    return out
ref, run = lines(sys.argv[1]), lines(sys.argv[2])
bad = []
if set(ref) != set(run):
    bad.append(f"lines differ: only in ref {sorted(set(ref) - set(run))}, only in run {sorted(set(run) - set(ref))}")
for key in sorted(set(ref) & set(run)):
    a, b = ref[key], run[key]
    for k in set(a) | set(b):
        if k in ("tokens_per_sec", "elapsed_sec", "peak_mib", "cuda_peak_allocated_mib", "cuda_peak_reserved_mib"):
            continue  # timing and measured memory (a resumed stage's peak counts from the resume)
        x, y = a.get(k), b.get(k)
        if isinstance(x, bool) or isinstance(x, str) or x is None or y is None:
            ok = x == y
        elif isinstance(x, int) and isinstance(y, int):
            ok = x == y
        else:
            ok = abs(x - y) <= 1e-5 * max(abs(x), 1e-3)
        if not ok:
            bad.append(f"{key} {k}: uninterrupted {x}, resumed {y}")
for b in bad[:10]:
    print(b, file=sys.stderr)
positions = [run[k]["data_position"] for k in sorted(run) if k[2] == "train"]
if positions != sorted(positions) or len(positions) != 12:
    print(f"data positions {positions}", file=sys.stderr)
    bad.append("positions")
sys.exit(1 if bad else 0)
PY
}

# Uninterrupted runs of the original layouts.
for layout in dp1 dp2 tp2; do
  recipe "$TMP/ref-$layout" > "$TMP/ref-$layout.yaml"
  launch $layout
  run_long "${LAUNCH[@]}" run "$TMP/ref-$layout.yaml" "${SETS[@]}"
  expect_exit 0 "uninterrupted run, layout $layout"
done

# interrupt NAME FROM SIGNAL STEP: runs NAME under layout FROM and stops it with SIGNAL once step STEP is logged.
interrupt() {
  local name=$1 from=$2 sig=$3 k=$4
  recipe "$TMP/$name" > "$TMP/$name.yaml"
  launch $from
  # Steps take milliseconds here: a pause after each (no effect on results) lets the signal land mid-stage.
  ALIGNTRAIN_TEST_STEP_DELAY_MS=150 setsid "${LAUNCH[@]}" run "$TMP/$name.yaml" "${SETS[@]}" \
    > "$TMP/$name.log" 2>&1 &
  local pid=$!
  wait_for_step "$TMP/$name/metrics.jsonl" $k $pid
  if [ "$sig" = KILL ]; then
    kill -KILL -- -$pid 2>/dev/null
  else
    # mpirun's ranks get it as from Slurm's scancel; a single process directly.
    if pgrep -P $pid > /dev/null; then pkill -TERM -P $pid; else kill -TERM $pid; fi
  fi
  wait $pid 2>/dev/null
  [ ! -f "$TMP/$name/sft/DONE" ] && ls -d "$TMP/$name/checkpoints/sft/step-"* > /dev/null 2>&1
  check "$name: SIG$sig at step >= $k left a checkpoint and an unfinished stage" $?
}

# case NAME FROM TO SIGNAL REF-LAYOUT SAVED-TEXT NEW-TEXT
case_() {
  local name=$1 from=$2 to=$3 sig=$4 ref=$5 saved=$6 new=$7
  interrupt "$name" $from $sig $((3 + RANDOM % 6))
  launch $to
  run_long "${LAUNCH[@]}" run "$TMP/$name.yaml" "${SETS[@]}"
  expect_exit 0 "$name: resumed under $to"
  expect_output "resharded the checkpoint from $saved to $new" "$name: the log says what was resharded"
  expect_output "resuming from .*step-[0-9]+ \(step [0-9]+/12, data position [0-9]+\)" "$name: resumed mid-stage"
  close_metrics "$TMP/ref-$ref/metrics.jsonl" "$TMP/$name/metrics.jsonl"
  check "$name: every metric within 1e-5 of the uninterrupted $ref run, the same data positions" $?
}

case_ dp2-dp1 dp2 dp1 KILL dp2 "tensor 1 x data 2, ZeRO-1 off" "tensor 1 x data 1, ZeRO-1 off"
case_ dp1-dp2 dp1 dp2 TERM dp1 "tensor 1 x data 1, ZeRO-1 off" "tensor 1 x data 2, ZeRO-1 off"
case_ dp2z-dp1 dp2z dp1 TERM dp2 "tensor 1 x data 2, ZeRO-1 on" "tensor 1 x data 1, ZeRO-1 off"
case_ dp1-dp2z dp1 dp2z KILL dp1 "tensor 1 x data 1, ZeRO-1 off" "tensor 1 x data 2, ZeRO-1 on"
case_ tp2-tp1 tp2 tp1 KILL tp2 "tensor 2 x data 1, ZeRO-1 off" "tensor 1 x data 1, ZeRO-1 off"
case_ tp1-tp2 tp1 tp2 TERM dp1 "tensor 1 x data 1, ZeRO-1 off" "tensor 2 x data 1, ZeRO-1 off"
case_ tp2-dp2 tp2 dp2 TERM tp2 "tensor 2 x data 1, ZeRO-1 off" "tensor 1 x data 2, ZeRO-1 off"

# The global batch must stay: refused before anything is touched, naming the field.
interrupt batch dp2 TERM 4
before=$(ls "$TMP/batch/checkpoints/sft")
launch dp1
run_long "${LAUNCH[@]}" run "$TMP/batch.yaml" "${SETS[@]}" --set stages.sft.batch.global=16
expect_exit 2 "a resume that changes the global batch is refused"
expect_output "stages.sft.batch.global: was 8, now 16" "the refusal names the global batch"
[ "$(ls "$TMP/batch/checkpoints/sft")" = "$before" ]; check "the refused resume left the checkpoints as they were" $?

# A checkpoint written before parameter lists were recorded cannot be resharded: exit 3, naming state.json.
latest=$(ls -d "$TMP/batch/checkpoints/sft/step-"* | sort -t- -k2 -n | tail -n 1)
cp "$latest/state.json" "$TMP/state.json.saved"
python3 - "$latest/state.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
del j["parameters"]
json.dump(j, open(sys.argv[1], "w"), indent=2)
PY
run_long "${LAUNCH[@]}" run "$TMP/batch.yaml" "${SETS[@]}"
expect_exit 3 "resharding a checkpoint without a parameter list is a data error"
expect_output "state.json: no parameter list .*tensor 1 x data 2" "the error names state.json and the layout to resume with"
cp "$TMP/state.json.saved" "$latest/state.json"

# A missing rank file: exit 3 naming it.
mv "$latest/rank-00001.safetensors" "$TMP/rank1.saved"
run_long "${LAUNCH[@]}" run "$TMP/batch.yaml" "${SETS[@]}"
expect_exit 3 "a checkpoint missing a rank file is a data error"
expect_output "rank-00001.safetensors: missing" "the error names the missing rank file"
mv "$TMP/rank1.saved" "$latest/rank-00001.safetensors"

# With the files restored, the same resume goes through.
run_long "${LAUNCH[@]}" run "$TMP/batch.yaml" "${SETS[@]}"
expect_exit 0 "the restored checkpoint resumes under DP=1"
close_metrics "$TMP/ref-dp2/metrics.jsonl" "$TMP/batch/metrics.jsonl"
check "batch: every metric within 1e-5 of the uninterrupted dp2 run" $?
finish
