#!/usr/bin/env bash
# Tensor- and data-parallel overhead on this CPU (issue 4's regression numbers; CPU is not the target):
#   1. the MPI backend's all_reduce bandwidth between 2 ranks (test/runtime:allreduce_bandwidth)
#   2. SFT training throughput of the same model, data and global batch as
#        TP=1  one process, 2 threads          TP=1  one process, 1 thread
#        TP=2  mpirun -np 2, 1 thread per rank DP=2  mpirun -np 2, 1 thread per rank
#      tokens/s is the median of steps 6..N from metrics.jsonl (same token accounting for all).
# Usage: bench/run_parallel_overhead.sh [steps]   (from the repository root; about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe -np 2 --bind-to none)
bazel build //:aligntrain //test/runtime:allreduce_bandwidth > /dev/null 2>&1
BIN=bazel-bin/aligntrain
OUT=runs/parallel_overhead
rm -rf "$OUT" && mkdir -p "$OUT"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== all_reduce bandwidth, MPI backend, 2 ranks, fp32 sum"
"${MPIRUN[@]}" bazel-bin/test/runtime/allreduce_bandwidth 64

echo "== SFT throughput: small-llama (vocab padded to 264 so TP=2 divides it), demo data, global 16 x <=64 tokens, micro 8"
COMMON=(--set models.tiny.init.preset=small-llama --set models.tiny.init.vocab_size=264 --set stages.sft.train.steps=$STEPS
        --set stages.sft.batch.global=16 --set stages.sft.batch.micro=8 --set stages.sft.log.every_steps=1
        --set stages.sft.checkpoint.every_steps=0)
run_case() {  # run_case NAME LAUNCH... -- SETS...
  local name=$1; shift
  "$@" > "$OUT/$name.log" 2>&1 || { echo "$name failed"; tail -5 "$OUT/$name.log"; exit 1; }
}
# Only the sft stage: the eval stage after it is not part of the measurement.
R=$OUT/recipe.yaml
python3 bench/demo_sft_recipe.py config/recipes/demo.yaml "$R"
run_case tp1_2thr $BIN run $R "${COMMON[@]}" --set run.threads=2 --set run.output_dir=$OUT/tp1_2thr
run_case tp1_1thr $BIN run $R "${COMMON[@]}" --set run.threads=1 --set run.output_dir=$OUT/tp1_1thr
run_case tp2 "${MPIRUN[@]}" $BIN run $R "${COMMON[@]}" --set run.threads=1 --set parallel.tensor=2 --set run.output_dir=$OUT/tp2
run_case dp2 "${MPIRUN[@]}" $BIN run $R "${COMMON[@]}" --set run.threads=1 --set parallel.tensor=1 --set run.output_dir=$OUT/dp2
python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def tps(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    rows = [r for r in rows if r.get("stage") == "sft" and "tokens_per_sec" in r and r["step"] > 5]
    return statistics.median(r["tokens_per_sec"] for r in rows), rows[-1]["loss"]
base, _ = tps("tp1_2thr")
print(f"{'layout':34} {'tokens/s':>10} {'vs TP=1 2 threads':>18} {'last loss':>10}")
for name, label in [("tp1_2thr", "TP=1, 1 process x 2 threads"), ("tp1_1thr", "TP=1, 1 process x 1 thread"),
                    ("tp2", "TP=2, 2 ranks x 1 thread"), ("dp2", "DP=2, 2 ranks x 1 thread")]:
    v, loss = tps(name)
    print(f"{label:34} {v:>10.0f} {v / base:>17.2f}x {loss:>10.4f}")
PY
