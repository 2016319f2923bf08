#!/usr/bin/env bash
# ZIP-FIT data selection (METHODS.md E.1): wall time of `aligntrain run` with a zip_fit `select` stage vs the
# paper's Python implementation (bench/zipfit_peer.py: gzip level 1, a multiprocessing Pool), on the same pool,
# targets, K and cores; and whether both keep the same top-K set.
#
#   bench/run_zipfit.sh [--candidates 20000] [--targets 200] [--keep 2000] [--cores 2] [--reps 1] [--reference]
#                       [--no-build]
#
# The workload (made once, deterministic): `zipfit_peer.py --make-data`, synthetic {"prompt", "completion"}
# lines of a few hundred bytes (code, prose, word problems, sorting tasks, dialogues with non-ASCII text) against
# Python-function targets; the text of a line is prompt + completion on both sides. Runs, each a fresh process
# timed from start to exit (start-up, reading, scoring, writing):
#   peer                      zipfit_peer.py --processes CORES
#   aligntrain threads=CORES  one process, run.threads CORES
#   aligntrain mpirun -np N   CORES ranks, run.threads 1
# Runs alternate their order over the repetitions; each waits for a quiet machine first (other processes using
# under $BENCH_QUIET cores, default 0.15, at most $BENCH_MAX_WAIT s, default 600) and reports the cores' worth of
# CPU that other processes used meanwhile. The table shows the fastest run of each. Top-K sets: aligntrain's
# selected.jsonl mapped back to line numbers (every pool line is distinct) against the peer's list; where they
# differ, the differing candidates' aligntrain scores are compared with the K-th score (a tie at the threshold
# is the only legitimate difference: the peer breaks ties by arrival order, aligntrain by line).
# --reference also checks every aligntrain score against scripts/parity/zipfit_reference.py (1e-9; one Python
# process, a few minutes). --no-build uses bazel-bin/aligntrain as it is.
# Outputs go to $BENCH_BUILD_DIR (default runs/zipfit_bench).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${ALIGNTRAIN_PYTHON:-$PWD/.venv/bin/python}
BUILD=${BENCH_BUILD_DIR:-runs/zipfit_bench}
CANDIDATES=20000
TARGETS=200
KEEP=2000
CORES=2
REPS=1
REFERENCE=0
DO_BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --candidates) CANDIDATES="$2"; shift ;;
    --targets) TARGETS="$2"; shift ;;
    --keep) KEEP="$2"; shift ;;
    --cores) CORES="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --reference) REFERENCE=1 ;;
    --no-build) DO_BUILD=0 ;;
    *) echo "usage: $0 [--candidates N] [--targets N] [--keep K] [--cores N] [--reps N] [--reference] [--no-build]" >&2
       exit 2 ;;
  esac
  shift
done
mkdir -p "$BUILD/logs"
BUILD=$(cd "$BUILD" && pwd)

# ---- binary: built by Bazel, then copied so that a rebuild in the same workspace cannot swap it mid-benchmark --
if [ $DO_BUILD = 1 ]; then
  ALIGNTRAIN_PYTHON=$PY bazel build //:aligntrain 2>&1 | tail -1
fi
cp -f bazel-bin/aligntrain "$BUILD/aligntrain.new" && mv -f "$BUILD/aligntrain.new" "$BUILD/aligntrain"
BIN="$BUILD/aligntrain"
"$BIN" --version
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online; runs use $CORES"

# ---- the workload (made once) -------------------------------------------------------------------------------
DATA="$BUILD/data-${CANDIDATES}x${TARGETS}"
[ -f "$DATA/target.jsonl" ] || "$PY" bench/zipfit_peer.py --make-data "$DATA" --candidates "$CANDIDATES" \
  --targets "$TARGETS" --seed 0
RECIPE="$BUILD/zipfit.yaml"
cat > "$RECIPE" <<YAML
run: {name: zipfit-bench, output_dir: $BUILD/out, seed: 1}
stages:
  - name: pick
    kind: select
    data: {train: $DATA/pool.jsonl}
    select: {method: zip_fit, target: $DATA/target.jsonl, keep: $KEEP}
YAML

# ---- timing ---------------------------------------------------------------------------------------------------
RESULTS="$BUILD/results.jsonl"
: > "$RESULTS"
# wrap.py LABEL command...: runs it, prints one JSON line: wall time, CPU time and peak RSS of the process tree
# (ru_maxrss of the largest process), and the cores' worth of CPU other processes used meanwhile.
cat > "$BUILD/wrap.py" <<'EOF_WRAP'
import json, os, resource, subprocess, sys, time
def busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:11]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
label, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
b0, t0 = busy_s(), time.monotonic()
with open(log, "w") as lf:
    rc = subprocess.call(cmd, stdout=lf, stderr=subprocess.STDOUT)
wall, busy = time.monotonic() - t0, busy_s() - b0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print(json.dumps({"impl": label, "rc": rc, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": ru.ru_maxrss / 1024,
                  "foreign_cores": max(0.0, (busy - cpu) / wall)}))
EOF_WRAP

busy_ms() {  # busy CPU time of the whole machine (all processes, all cores) in ms, from /proc/stat
  awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.0f\n", ($2+$3+$4+$7+$8+$9+$10+$11) * 1000 / hz; exit}' /proc/stat
}
QUIET=${BENCH_QUIET:-0.15}
MAX_WAIT=${BENCH_MAX_WAIT:-600}
wait_quiet() {
  local waited=0 b0 b1
  while :; do
    b0=$(busy_ms); sleep 3; b1=$(busy_ms)
    awk -v a="$b0" -v b="$b1" -v q="$QUIET" 'BEGIN{exit !((b - a) / 3000 < q)}' && return 0
    if [ $waited -ge "$MAX_WAIT" ]; then echo "    (still busy after ${MAX_WAIT}s; running anyway)"; return 0; fi
    [ $waited = 0 ] && echo "    (other processes busy: $(awk -v a="$b0" -v b="$b1" 'BEGIN{printf "%.2f", (b - a) / 3000}') cores; waiting for a quiet machine)"
    sleep 7; waited=$((waited + 10))
  done
}

# measure LABEL command...: one timed run; its JSON line goes to $RESULTS.
measure() {
  local label=$1; shift
  wait_quiet
  local log="$BUILD/logs/${label// /_}-$(date +%H%M%S%N).log" out
  out=$("$PY" "$BUILD/wrap.py" "$label" "$log" "$@")
  echo "$out" >> "$RESULTS"
  "$PY" -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"  {r['impl']:<26} {r['wall_s']:8.2f} s wall  {r['cpu_s']:8.2f} s CPU  peak RSS {r['peak_rss_mib']:6.0f} MiB  (other processes: {r['foreign_cores']:.2f} cores){'' if r['rc'] == 0 else '  FAILED, see $log'}\")" "$out"
  [[ $out == *'"rc": 0'* ]] || { tail -5 "$log" >&2; return 1; }
}
peer() {
  measure "peer" "$PY" bench/zipfit_peer.py --pool "$DATA/pool.jsonl" --target "$DATA/target.jsonl" --k "$KEEP" \
    --out "$BUILD/peer_topk.txt" --processes "$CORES"
}
ours_threads() {
  measure "aligntrain threads=$CORES" "$BIN" run "$RECIPE" --fresh --set run.threads="$CORES" \
    --set run.output_dir="$BUILD/out-threads"
}
ours_mpi() {
  measure "aligntrain mpirun -np $CORES" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --oversubscribe -np "$CORES" --bind-to none "$BIN" run "$RECIPE" --fresh --set run.threads=1 \
    --set run.output_dir="$BUILD/out-mpi"
}

echo "workload: $CANDIDATES candidates x $TARGETS targets ($((CANDIDATES * TARGETS)) compressed pairs), keep $KEEP"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  echo "== repetition $rep"
  if [ $((rep % 2)) = 1 ]; then peer; ours_threads; ours_mpi; else ours_mpi; ours_threads; peer; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the same selection? --------------------------------------------------------------------------------------
"$PY" - "$DATA/pool.jsonl" "$BUILD/peer_topk.txt" "$BUILD/out-threads/pick" "$BUILD/out-mpi/pick" "$RESULTS" \
  "$KEEP" <<'EOF'
import json, statistics, sys
pool, peer_file, threads_dir, mpi_dir, results, keep = sys.argv[1:7]
raw = open(pool, "rb").read().split(b"\n")
line_of = {l: i + 1 for i, l in enumerate(raw) if l}
assert len(line_of) == sum(1 for l in raw if l), "pool lines are not all distinct"
peer = [int(x) for x in open(peer_file)]
ours = sorted(line_of[l] for l in open(f"{threads_dir}/selected.jsonl", "rb").read().split(b"\n") if l)
same_mpi = (open(f"{threads_dir}/selected.jsonl", "rb").read() == open(f"{mpi_dir}/selected.jsonl", "rb").read()
            and open(f"{threads_dir}/scores.jsonl", "rb").read() == open(f"{mpi_dir}/scores.jsonl", "rb").read())
rows = [json.loads(l) for l in open(results)]
best = {}
for r in rows:
    if r["rc"] == 0 and (r["impl"] not in best or r["wall_s"] < best[r["impl"]]["wall_s"]):
        best[r["impl"]] = r
print()
print(f"{'impl':<28} {'runs':>4} {'wall s (best)':>13} {'CPU s':>8} {'peak RSS MiB':>12} {'other cores':>11}  speed-up vs peer")
p = best.get("peer")
for impl, r in best.items():
    n = sum(1 for x in rows if x["impl"] == impl and x["rc"] == 0)
    ratio = f"{p['wall_s'] / r['wall_s']:.1f}x" if p else "-"
    print(f"{impl:<28} {n:>4} {r['wall_s']:>13.2f} {r['cpu_s']:>8.2f} {r['peak_rss_mib']:>12.0f} "
          f"{max(x['foreign_cores'] for x in rows if x['impl'] == impl):>11.2f}  {ratio}")
for impl, r in best.items():
    if p and impl != "peer":
        print(f"RATIO {impl}: peer / aligntrain wall time = {p['wall_s']:.2f} / {r['wall_s']:.2f} s = "
              f"{p['wall_s'] / r['wall_s']:.1f}x")
print(f"top-{keep} sets identical (peer vs aligntrain): {set(peer) == set(ours)} ({len(peer)} and {len(ours)} lines)")
print(f"aligntrain threads vs mpirun: scores.jsonl and selected.jsonl byte-identical: {same_mpi}")
if set(peer) != set(ours):
    scores = {j["line"]: j["score"] for j in map(json.loads, open(f"{threads_dir}/scores.jsonl"))}
    kth = min(scores[l] for l in ours)
    diff = sorted(set(peer) ^ set(ours))
    ties = all(abs(scores[l] - kth) <= 1e-12 for l in diff)
    print(f"  {len(diff)} lines differ: {diff[:10]}; K-th score {kth!r}; their scores "
          f"{[scores[l] for l in diff[:10]]}; all ties at the threshold: {ties}")
EOF
if [ $REFERENCE = 1 ]; then
  echo "checking every aligntrain score against scripts/parity/zipfit_reference.py (one Python process) ..."
  "$PY" scripts/parity/zipfit_reference.py --pool "$DATA/pool.jsonl" --target "$DATA/target.jsonl" --keep "$KEEP" \
    --compare "$BUILD/out-threads/pick"
fi
