#!/usr/bin/env bash
# Data-parallel gradient all-reduce with and without overlap with the backward pass (parallel.overlap_grad_reduce),
# DP=2 on this CPU: `mpirun -np 2`, 1 thread per rank, SFT of small-llama (byte vocabulary: 9.6M parameters, 37 MiB
# of fp32 gradients) on the demo data, global batch 16 in micro-batches of 4 (2 per rank: the first only accumulates).
# For each case: rank 0's seconds on the all-reduce after the backward pass ("exposed": the step waits for it) and
# inside it (launched from the autograd hooks), per step, from the stage's closing log line; tokens/s (median of
# steps 6..N); and whether the final weights equal the non-overlapped run's byte for byte.
# Usage: bench/run_dp_overlap.sh [steps]   (from the repository root; about a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
MPIRUN=(mpirun --oversubscribe -np 2 --bind-to none)
bazel build //:aligntrain > /dev/null 2>&1
BIN=bazel-bin/aligntrain
OUT=runs/dp_overlap
rm -rf "$OUT" && mkdir -p "$OUT"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Only the sft stage of the demo recipe, without its eval split.
R=$OUT/recipe.yaml
python3 bench/demo_sft_recipe.py config/recipes/demo.yaml "$R"
COMMON=(--set models.tiny.init.preset=small-llama --set stages.sft.train.steps=$STEPS --set stages.sft.batch.global=16
        --set stages.sft.batch.micro=4 --set stages.sft.log.every_steps=1 --set stages.sft.checkpoint.every_steps=0
        --set run.threads=1)
run_case() {  # run_case NAME SETS...
  local name=$1; shift
  "${MPIRUN[@]}" $BIN run $R "${COMMON[@]}" --set run.output_dir=$OUT/$name "$@" > "$OUT/$name.log" 2>&1 ||
    { echo "$name failed"; tail -5 "$OUT/$name.log"; exit 1; }
}
run_case after_25 --set parallel.overlap_grad_reduce=false --set parallel.bucket_mb=25
run_case overlap_25 --set parallel.overlap_grad_reduce=true --set parallel.bucket_mb=25
run_case overlap_4 --set parallel.overlap_grad_reduce=true --set parallel.bucket_mb=4
python3 - "$OUT" <<'PY'
import json, re, statistics, sys, filecmp
out = sys.argv[1]
def case(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    rows = [r for r in rows if r.get("stage") == "sft" and "tokens_per_sec" in r]
    tps = statistics.median(r["tokens_per_sec"] for r in rows if r["step"] > 5)
    m = re.search(r"data-parallel gradient all-reduce \(.*?\): ([0-9.]+) s after the backward pass, ([0-9.]+) s inside "
                  r"it, over (\d+) step", open(f"{out}/{name}.log").read())
    after, inside, steps = float(m.group(1)), float(m.group(2)), int(m.group(3))
    same = filecmp.cmp(f"{out}/after_25/sft/model/model.safetensors", f"{out}/{name}/sft/model/model.safetensors",
                       shallow=False)
    losses = [r["loss"] for r in rows]
    return tps, 1e3 * after / steps, 1e3 * inside / steps, same, losses
_, _, _, _, base_losses = case("after_25")
print(f"{'case':40} {'tokens/s':>9} {'exposed ms/step':>16} {'in backward ms/step':>20} {'weights = after_25':>19}")
for name, label in [("after_25", "after the backward, bucket 25 MiB"), ("overlap_25", "overlapped, bucket 25 MiB"),
                    ("overlap_4", "overlapped, bucket 4 MiB")]:
    tps, after, inside, same, losses = case(name)
    same_text = "identical" if same and losses == base_losses else "DIFFERENT"
    print(f"{label:40} {tps:>9.0f} {after:>16.1f} {inside:>20.1f} {same_text:>19}")
PY
