# Helpers for the end-to-end stage tests (source after test/cli/testlib.sh).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe -np 2 --bind-to none)
BIN=${ALIGNTRAIN_BIN:-./aligntrain}

# metric FILE STAGE STEP KEY: the value of KEY in the metrics.jsonl line of STAGE at STEP (first match).
metric() {
  python3 - "$@" <<'PY'
import json, sys
path, stage, step, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for line in open(path):
    j = json.loads(line)
    if j.get("stage") == stage and j.get("step") == step and key in j:
        print(repr(j[key]))
        break
PY
}

# metrics_without_timing FILE: metrics.jsonl with the timing fields and the measured memory peak (which differ
# between runs: a resumed stage's peak counts from the resume) removed.
metrics_without_timing() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    for k in ("tokens_per_sec", "elapsed_sec", "peak_mib"):
        j.pop(k, None)
    print(json.dumps(j, sort_keys=True))
PY
}

# py_check EXPR: exit status 0 when the Python expression is true.
py_check() { python3 -c "import sys; sys.exit(0 if ($1) else 1)"; }

# near GOT WANT RTOL [FLOOR]: exit status 0 when |GOT − WANT| ≤ RTOL · max(FLOOR, |WANT|) (FLOOR 1; a missing or NaN
# GOT fails). Two computations of a loss or metric from fp32 log-probs differ by rounding proportional to their
# scale, and never by less than that of the log-probs they are made of (order one; more where a loss multiplies
# them); see test/util/tolerance.h.
near() {
  python3 - "${1:-nan}" "${2:-nan}" "$3" "${4:-1}" <<'PY'
import sys
got, want, rtol, floor = map(float, sys.argv[1:5])
sys.exit(0 if abs(got - want) <= rtol * max(floor, abs(want)) else 1)
PY
}

# run_cmd with a longer limit (training runs on a loaded 2-core machine).
run_long() {
  OUT=$(timeout 600 "$@" 2>&1)
  RC=$?
}

# reached_step FILE STEP: exit status 0 when metrics.jsonl FILE has a training line at step >= STEP.
reached_step() {
  [ -f "$1" ] && python3 - "$1" "$2" <<'PY'
import json, sys
steps = [json.loads(l).get("step", 0) for l in open(sys.argv[1]) if l.strip().endswith("}") and '"loss"' in l]
sys.exit(0 if steps and max(steps) >= int(sys.argv[2]) else 1)
PY
}

# same_result REF_DIR DIR WHAT: the SFT stage "sft" of run DIR ended with bitwise the weights of REF_DIR, and its
# metrics.jsonl equals REF_DIR's apart from timing fields (two checks).
same_result() {
  cmp -s "$1/sft/model/model.safetensors" "$2/sft/model/model.safetensors"
  check "$3: final weights bitwise identical to the uninterrupted run" $?
  diff <(metrics_without_timing "$1/metrics.jsonl") <(metrics_without_timing "$2/metrics.jsonl") > "$2.metrics.diff"
  check "$3: metrics.jsonl identical apart from timing fields" $?
}

# wait_for_step FILE STEP PID: until metrics.jsonl has a training line at >= STEP (or the job ended).
wait_for_step() {
  for _ in $(seq 1 6000); do
    kill -0 "$3" 2>/dev/null || return 1
    reached_step "$1" "$2" && return 0
    sleep 0.05
  done
  return 1
}
