#!/usr/bin/env bash
# DPO training-step throughput (tokens/s) and peak memory of `aligntrain run bench/dpo_bench.yaml` (live
# reference, and precomputed reference) vs TRL's DPOTrainer (bench/dpo_step_peer.py, live reference): same model
# folder, data, tokens, data order, batch / micro-batch / accumulation, loss (DPO sigmoid, beta 0.1), AdamW,
# clipping, fp32, intra-op thread count.
#
#   bench/run_dpo_step.sh [--threads "2"] [--reps 3] [--warmup 3] [--steps 8] [--vocab V] [--width small|1b] [--lora R] [--extra] [--no-build]
#
# Each run is one fresh process that trains warmup + steps optimizer steps; tokens/s = non-padding tokens of
# chosen + rejected of the timed steps / their summed step time (aligntrain: from metrics.jsonl, tokens /
# tokens_per_sec per step; the peer times the same span and counts the same tokens). Peak RSS is the whole
# process's maximum resident set size as /usr/bin/time -v reports it (when /usr/bin/time is present; else
# ru_maxrss from wait4, the same number): start-up, model loads, reference precompute, training, and for aligntrain
# its end-of-stage checkpoint and model save. It is split by sampling /proc/PID/status every 20 ms into peak
# anonymous memory (heap: weights, gradients, optimizer state, activations, allocator caches) and peak
# file-backed memory (mapped libraries).
# Runs alternate (TRL first on odd repetitions, aligntrain first on even ones), `--reps` times per thread count;
# the table shows medians. Each run waits for a quiet machine first (see wait_quiet); a run during which other
# processes still used more than $BENCH_MAX_FOREIGN cores (default 0.25) is repeated up to $BENCH_TRIES times
# (default 3) and the least disturbed try is kept.
#   --extra    also runs TRL with precompute_ref_log_probs=True (TRL's counterpart of the precomputed reference),
#              TRL with aligntrain's allocator setting (mallopt, --malloc keep) and aligntrain (live reference)
#              with glibc's default allocator (ALIGNTRAIN_MALLOC=default).
#   --no-build uses bazel-bin/aligntrain as it is.
#   --lora R   also runs LoRA DPO: TRL's DPOTrainer with a PEFT LoraConfig (rank R, alpha 2R, all-linear, no
#              dropout; reference = the base with adapters off) and aligntrain with the same `models.small.lora` and
#              `reference: base` (issue 16's comparison; the full-DPO rows give the memory that LoRA saves).
#   --peer-precompute  also runs TRL with precompute_ref_log_probs=True (without the rest of --extra).
#   --vocab V, --width 1b  the model at a real vocabulary (e.g. 128256) and/or Llama-3.2-1B's width with 2 layers
#              (bench/model_config.py), instead of small-llama with the byte vocabulary.
# Outputs (model, data, per-run logs, results.jsonl) go to $BENCH_BUILD_DIR (default runs/dpo_bench, which
# bench/dpo_bench.yaml also points at). ~8 minutes per thread count on an idle 2-core machine with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${ALIGNTRAIN_PYTHON:-$PWD/.venv/bin/python}
BUILD=${BENCH_BUILD_DIR:-runs/dpo_bench}
THREADS="2"
REPS=3
WARMUP=3
STEPS=8
EXTRA=0
DO_BUILD=1
VOCAB=
WIDTH=small
PEER_PRECOMPUTE=0
LORA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --extra) EXTRA=1 ;;
    --no-build) DO_BUILD=0 ;;
    --vocab) VOCAB="$2"; shift ;;
    --width) WIDTH="$2"; shift ;;
    --peer-precompute) PEER_PRECOMPUTE=1 ;;
    --lora) LORA="$2"; shift ;;
    *) echo "usage: $0 [--threads \"2 1\"] [--reps N] [--warmup N] [--steps N] [--vocab V] [--width small|1b] [--peer-precompute] [--lora R] [--extra] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done
TOTAL=$((WARMUP + STEPS))
RECIPE=bench/dpo_bench.yaml
mkdir -p "$BUILD/logs"
BUILD=$(cd "$BUILD" && pwd)

# ---- binary: built by Bazel, then copied so that a rebuild in the same workspace cannot swap it mid-benchmark --
if [ $DO_BUILD = 1 ]; then
  ALIGNTRAIN_PYTHON=$PY bazel build //:aligntrain 2>&1 | tail -1
fi
cp -f bazel-bin/aligntrain "$BUILD/aligntrain.new" && mv -f "$BUILD/aligntrain.new" "$BUILD/aligntrain"
BIN="$BUILD/aligntrain"
"$BIN" --version

# ---- the shared model folder and data set (made once) -------------------------------------------------------
MODEL="$BUILD/model"
DATA="$BUILD/data/pairs.jsonl"
if [ -n "$VOCAB" ] || [ "$WIDTH" != small ]; then
  # --vocab V / --width 1b: the size of real models (bench/make_model.sh), one folder per shape; 2 layers at 1b.
  MODEL="$BUILD/model-v${VOCAB:-261}-$WIDTH"
  [ -f "$MODEL/model.safetensors" ] ||
    bench/make_model.sh "$BIN" "$PY" "$MODEL" "${VOCAB:-261}" "$WIDTH" "$([ "$WIDTH" = 1b ] && echo 2 || echo 0)" 1
fi
[ -f "$MODEL/model.safetensors" ] || "$BIN" init-model --preset small-llama --seed 1 --out "$MODEL"
[ -f "$DATA" ] || "$PY" bench/dpo_step_peer.py --make-data "$DATA" --pairs 128 --seed 0
NPAIRS=$(grep -c . "$DATA")
GLOBAL=$(awk '/batch:/ && /global:/ {sub(/.*global: */, ""); sub(/,.*/, ""); print; exit}' "$RECIPE")
if [ $((TOTAL * GLOBAL)) -gt "$NPAIRS" ]; then
  echo "warmup + steps = $TOTAL steps x global $GLOBAL > $NPAIRS pairs (the peer handles one epoch only)" >&2
  exit 2
fi

# ---- runs ---------------------------------------------------------------------------------------------------
RESULTS="$BUILD/results.jsonl"
: > "$RESULTS"
MAX_FOREIGN=${BENCH_MAX_FOREIGN:-0.25}
TRIES=${BENCH_TRIES:-3}

# The wrapper every run goes through: starts the command (under /usr/bin/time -v when present), samples the
# command's /proc/PID/status every 20 ms (peak anonymous and file-backed resident memory), reaps it with wait4
# (ru_maxrss -- what /usr/bin/time -v reports too -- and CPU time of the process tree) and reads /proc/stat
# before and after (CPU that other processes used meanwhile).
cat > "$BUILD/wrap.py" <<'EOF_WRAP'
import json, os, re, signal, subprocess, sys, time
def busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:11]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("RssAnon", "RssFile"):
                    out[k] = int(rest.split()[0])
    except OSError:
        pass
    return out
def child_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None
out_json, log = sys.argv[1], sys.argv[2]
cmd = sys.argv[3:]
timef = log + ".time"
use_time = os.access("/usr/bin/time", os.X_OK)
if use_time:
    cmd = ["/usr/bin/time", "-v", "-o", timef] + cmd
b0, t0 = busy_s(), time.monotonic()
with open(log, "w") as lf:
    proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)
for sig in (signal.SIGINT, signal.SIGTERM):  # an interrupted benchmark stops its run too
    signal.signal(sig, lambda s, f: (proc.kill(), sys.exit(130)))
peak = {"RssAnon": 0, "RssFile": 0}
target = None if use_time else proc.pid
while True:
    pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if target is None:
        target = child_of(proc.pid)
    if target is not None:
        for k, v in status(target).items():
            peak[k] = max(peak[k], v)
    time.sleep(0.02)
wall, busy = time.monotonic() - t0, busy_s() - b0
cpu = ru.ru_utime + ru.ru_stime
rc = os.waitstatus_to_exitcode(st)
maxrss, source = ru.ru_maxrss, "wait4"
if use_time and os.path.exists(timef):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(timef).read())
    if m:
        maxrss, source = int(m.group(1)), "/usr/bin/time -v"
json.dump({"rc": rc, "maxrss_kb": maxrss, "maxrss_source": source, "wait4_maxrss_kb": ru.ru_maxrss,
           "peak_anon_kb": peak["RssAnon"], "peak_file_kb": peak["RssFile"], "wall_s": wall, "cpu_s": cpu,
           "minflt": ru.ru_minflt, "foreign_cores": max(0.0, (busy - cpu) / wall)}, open(out_json, "w"))
sys.exit(0 if rc == 0 else 1)
EOF_WRAP

# one_run LABEL THREADS LOG METRICS command...: runs it through wrap.py, prints a JSON result line.
one_run() {
  local label=$1 threads=$2 log=$3 metrics=$4; shift 4
  "$PY" "$BUILD/wrap.py" "$log.run.json" "$log" "$@" || { echo "run failed ($label): see $log" >&2; tail -5 "$log" >&2; return 1; }
  "$PY" - "$label" "$threads" "$metrics" "$log.run.json" "$WARMUP" "$log" <<'EOF'
import json, re, statistics, sys
label, threads, metrics, runf = sys.argv[1:5]
warmup, log = int(sys.argv[5]), sys.argv[6]
rows = [json.loads(l) for l in open(metrics) if l.strip()]
rows = [r for r in rows if "tokens_per_sec" in r and r.get("stage") == "dpo"]
timed = [r for r in rows if r["step"] > warmup]
secs = [r["tokens"] / r["tokens_per_sec"] for r in timed]
tokens = sum(r["tokens"] for r in timed)
run = json.load(open(runf))
text = open(log, errors="replace").read()
m = re.search(r"peak memory of rank 0: (\d+) MiB", text)
print(json.dumps({
    "impl": label, "threads": int(threads), "steps": len(timed), "tokens": tokens, "seconds": sum(secs),
    "tokens_per_s": tokens / sum(secs), "step_s_median": statistics.median(secs), "step_s_best": min(secs),
    "peak_rss_mib": run["maxrss_kb"] / 1024, "peak_rss_source": run["maxrss_source"],
    "peak_anon_mib": run["peak_anon_kb"] / 1024, "peak_file_mib": run["peak_file_kb"] / 1024,
    "self_reported_peak_mib": int(m.group(1)) if m else None, "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
    "minor_faults": run["minflt"], "foreign_cores": run["foreign_cores"],
    "losses": [r["loss"] for r in rows], "grad_norms": [r["grad_norm"] for r in rows],
    "step_tokens": [r["tokens"] for r in rows]}))
EOF
}

busy_ms() {  # busy CPU time of the whole machine (all processes, all cores) in ms, from /proc/stat
  awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.0f\n", ($2+$3+$4+$7+$8+$9+$10+$11) * 1000 / hz; exit}' /proc/stat
}
# Before each run: wait (at most $BENCH_MAX_WAIT s, default 900) until other processes use under $QUIET cores
# (default 0.15) over 3 s, so that runs start on a quiet machine.
QUIET=${BENCH_QUIET:-0.15}
MAX_WAIT=${BENCH_MAX_WAIT:-900}
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

# measure LABEL THREADS KIND ENV... -- runs one configuration (KIND: trl | aligntrain), repeats a disturbed run,
# keeps the least disturbed try. ARGS (the environment variable) adds flags: peer flags for trl, --set
# overrides for aligntrain.
measure() {
  local label=$1 threads=$2 kind=$3; shift 3
  local best="" best_f=99 out f i log
  for i in $(seq "$TRIES"); do
    wait_quiet
    log="$BUILD/logs/${label}-t${threads}-$(date +%H%M%S%N).log"
    if [ "$kind" = aligntrain ]; then
      rm -rf "$BUILD/out-$label"
      out=$(one_run "$label" "$threads" "$log" "$BUILD/out-$label/metrics.jsonl" env "$@" "$BIN" run "$RECIPE" --fresh \
            --set run.threads="$threads" --set run.output_dir="$BUILD/out-$label" \
            --set stages.dpo.train.steps="$TOTAL" --set models.small.path="$MODEL" \
            --set stages.dpo.data.train="$DATA" ${ARGS:-}) || return 1
    else
      out=$(one_run "$label" "$threads" "$log" "$log.jsonl" env "$@" "$PY" bench/dpo_step_peer.py --recipe "$RECIPE" \
            --model-dir "$MODEL" --data "$DATA" --threads "$threads" --steps "$TOTAL" --out "$log.jsonl" \
            ${ARGS:-}) || return 1
    fi
    f=$(echo "$out" | sed -E 's/.*"foreign_cores": ?([0-9.eE+-]+).*/\1/')
    printf '  %-26s threads %s: %7.0f tokens/s  peak RSS %5.0f MiB  (other processes: %.2f cores)\n' "$label" \
      "$threads" "$(echo "$out" | sed -E 's/.*"tokens_per_s": ?([0-9.eE+-]+).*/\1/')" \
      "$(echo "$out" | sed -E 's/.*"peak_rss_mib": ?([0-9.eE+-]+).*/\1/')" "$f"
    if awk -v a="$f" -v b="$best_f" 'BEGIN{exit !(a < b)}'; then best=$out; best_f=$f; fi
    awk -v a="$f" -v m="$MAX_FOREIGN" 'BEGIN{exit !(a <= m)}' && break
    echo "    (disturbed; repeating)"
  done
  echo "$best" >> "$RESULTS"
}

trl() { ARGS="$2" measure "$1" "$3" trl; }                        # trl LABEL "PEER FLAGS" THREADS
ours() { ARGS="$2" measure "$1" "$3" aligntrain "${@:4}"; }       # ours LABEL "--set ..." THREADS [ENV=V...]

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
PRE="--set stages.dpo.reference.precompute=true"
for t in $THREADS; do
  echo "== $t thread(s): $REPS repetitions of $WARMUP warm-up + $STEPS timed steps"
  for rep in $(seq "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then
      trl trl "" "$t"
      ours aligntrain "" "$t"
      ours aligntrain-precompute "$PRE" "$t"
    else
      ours aligntrain-precompute "$PRE" "$t"
      ours aligntrain "" "$t"
      trl trl "" "$t"
    fi
    if [ "$LORA" != 0 ]; then
      LORA_SETS="--set models.small.lora.rank=$LORA --set models.small.lora.alpha=$((2 * LORA)) --set models.small.lora.dropout=0.0 --set models.small.lora.targets=all-linear --set stages.dpo.reference=base"
      if [ $((rep % 2)) = 1 ]; then
        trl trl-lora "--lora $LORA" "$t"
        ours aligntrain-lora "$LORA_SETS" "$t"
      else
        ours aligntrain-lora "$LORA_SETS" "$t"
        trl trl-lora "--lora $LORA" "$t"
      fi
    fi
    if [ $EXTRA = 1 ] || [ $PEER_PRECOMPUTE = 1 ]; then
      trl trl-precompute "--precompute" "$t"
    fi
    if [ $EXTRA = 1 ]; then
      trl trl-keepmem "--malloc keep" "$t"
      ours aligntrain-glibcmem "" "$t" ALIGNTRAIN_MALLOC=default
    fi
  done
done
echo "benchmark wall time: $(( $(date +%s) - start )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- table --------------------------------------------------------------------------------------------------
"$PY" - "$RESULTS" <<'EOF'
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["threads"], r["impl"]), []).append(r)
med = lambda k, rs: statistics.median(r[k] for r in rs)
order = ["trl", "aligntrain", "aligntrain-precompute", "trl-precompute", "trl-keepmem", "aligntrain-glibcmem",
         "trl-lora", "aligntrain-lora"]
print()
print(f"{'impl':<24} {'thr':>3} {'runs':>4} {'tokens/s median (range)':>25} {'step s':>7} {'peak RSS MiB':>12} "
      f"{'anon':>5} {'file':>5} {'other':>6}  vs trl (live reference)")
for (t, impl), rs in sorted(groups.items(), key=lambda kv: (-kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else 99)):
    base = groups.get((t, "trl-lora" if impl.endswith("-lora") else "trl"))
    tps = med("tokens_per_s", rs)
    rng = f"{min(r['tokens_per_s'] for r in rs):.0f}-{max(r['tokens_per_s'] for r in rs):.0f}"
    ratio = (f"{tps / med('tokens_per_s', base):.2f}x tok/s, {med('peak_rss_mib', rs) / med('peak_rss_mib', base):.2f}x mem"
             if base else "-")
    print(f"{impl:<24} {t:>3} {len(rs):>4} {tps:>10.0f} ({rng:>12}) {med('step_s_median', rs):>7.3f} "
          f"{med('peak_rss_mib', rs):>12.0f} {med('peak_anon_mib', rs):>5.0f} {med('peak_file_mib', rs):>5.0f} "
          f"{max(r['foreign_cores'] for r in rs):>6.2f}  {ratio}")
print(f"\ntokens/s: non-padding tokens (chosen + rejected) of the timed steps / their summed step time, median over")
print("runs; step s: median step time; peak RSS: maximum resident set size of the process "
      f"({rows[0].get('peak_rss_source', 'wait4')}), anon / file: peak")
print("anonymous and file-backed RSS (sampled every 20 ms); other: the most cores' worth of CPU other processes used")
print("during any one kept run (whole process lifetime).")
# Same work: step losses and token counts.
base = next((r for r in rows if r["impl"] == "trl"), None)
if base:
    print(f"\nstep-1 loss (log 2 = {math.log(2):.6f}):")
    for impl in [i for i in order if any(r["impl"] == i for r in rows)]:
        a = next(r for r in rows if r["impl"] == impl)
        n = min(len(a["losses"]), len(base["losses"]))
        print(f"  {impl:<24} {a['losses'][0]:.8f}  |diff to log 2| {abs(a['losses'][0] - math.log(2)):.1e}; vs trl over "
              f"{n} steps: max |loss diff| {max(abs(x - y) for x, y in zip(a['losses'], base['losses'])):.1e}, grad norm max "
              f"rel diff {max(abs(x - y) / abs(y) for x, y in zip(a['grad_norms'], base['grad_norms'])):.1e}, tokens per step "
              f"identical: {a['step_tokens'][:n] == base['step_tokens'][:n]}")
for t in sorted({r["threads"] for r in rows}, reverse=True):
    gb = groups.get((t, "trl"))
    for impl in ("aligntrain", "aligntrain-precompute"):
        ga = groups.get((t, impl))
        if ga and gb:
            print(f"RATIO threads={t}: {impl} / trl = {med('tokens_per_s', ga) / med('tokens_per_s', gb):.2f}x "
                  f"tokens/s ({med('tokens_per_s', ga):.0f} vs {med('tokens_per_s', gb):.0f}), "
                  f"{med('peak_rss_mib', ga) / med('peak_rss_mib', gb):.2f}x peak RSS "
                  f"({med('peak_rss_mib', ga):.0f} vs {med('peak_rss_mib', gb):.0f} MiB)")
EOF
