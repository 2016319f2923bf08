#!/usr/bin/env bash
# GRPO step throughput (samples/s, completion tokens/s) and peak memory of `aligntrain run bench/grpo_bench.yaml`
# vs TRL's GRPOTrainer without vLLM (bench/grpo_step_peer.py): same model folder, prompts and prompt order, group
# size G, sampling settings (max_new_tokens, temperature, top_p, top_k), regex reward, GRPO loss settings (beta 0,
# epsilon 0.2, scale_rewards group, dapo aggregation), batch, AdamW, clipping, fp32, intra-op thread count.
#
#   bench/run_grpo_step.sh [--threads "2"] [--reps 3] [--warmup 2] [--steps 6] [--no-build]
#
# Each run is one fresh process that takes warmup + steps optimizer steps; one step = sample G completions of each
# of batch.global prompts, decode and score them, advantages, forward/backward, clip, AdamW. samples/s = samples of
# the timed steps / their summed step time; completion tokens/s = their completion tokens (EOS included) / the same
# time (aligntrain: from metrics.jsonl -- step time = tokens / tokens_per_sec, completion tokens = completion_length
# x samples; the peer times the same span and counts the same tokens). The completions themselves differ (each side
# draws its own sampling noise), so their lengths may differ too: both rates are shown. Peak RSS is the whole
# process's maximum resident set size as /usr/bin/time -v reports it (else ru_maxrss from wait4, the same number),
# split by sampling /proc/PID/status every 20 ms into peak anonymous and file-backed memory.
# Runs alternate (TRL first on odd repetitions, aligntrain first on even ones), `--reps` times per thread count;
# the table shows medians. Each run waits for a quiet machine first (see wait_quiet); a run during which other
# processes still used more than $BENCH_MAX_FOREIGN cores (default 0.25) is repeated up to $BENCH_TRIES times
# (default 3) and the least disturbed try is kept; the table's "other" column shows what was left.
# After the runs, the prompts of every step are compared (aligntrain's samples/step-N.jsonl against the peer's
# record) and aligntrain's prompt token ids against [BOS] + utf8(prompt), the peer's tokenisation.
#   --no-build uses bazel-bin/aligntrain as it is.
# Outputs (model, prompts, per-run logs, results.jsonl) go to $BENCH_BUILD_DIR (default runs/grpo_bench, which
# bench/grpo_bench.yaml also points at).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${ALIGNTRAIN_PYTHON:-$PWD/.venv/bin/python}
BUILD=${BENCH_BUILD_DIR:-runs/grpo_bench}
THREADS="2"
REPS=3
WARMUP=2
STEPS=6
DO_BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --no-build) DO_BUILD=0 ;;
    *) echo "usage: $0 [--threads \"2 1\"] [--reps N] [--warmup N] [--steps N] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done
TOTAL=$((WARMUP + STEPS))
RECIPE=bench/grpo_bench.yaml
mkdir -p "$BUILD/logs"
BUILD=$(cd "$BUILD" && pwd)

# ---- binary: built by Bazel, then copied so that a rebuild in the same workspace cannot swap it mid-benchmark --
if [ $DO_BUILD = 1 ]; then
  ALIGNTRAIN_PYTHON=$PY bazel build //:aligntrain 2>&1 | tail -1
fi
cp -f bazel-bin/aligntrain "$BUILD/aligntrain.new" && mv -f "$BUILD/aligntrain.new" "$BUILD/aligntrain"
BIN="$BUILD/aligntrain"
"$BIN" --version

# ---- the shared model folder and prompts (made once) --------------------------------------------------------
MODEL="$BUILD/model"
DATA="$BUILD/data/prompts.jsonl"
[ -f "$MODEL/model.safetensors" ] || "$BIN" init-model --preset small-llama --seed 1 --out "$MODEL"
[ -f "$DATA" ] || "$PY" bench/grpo_step_peer.py --make-data "$DATA" --prompts 64 --seed 0
NPROMPTS=$(grep -c . "$DATA")
GLOBAL=$(awk '/batch:/ && /global:/ {sub(/.*global: */, ""); sub(/,.*/, ""); print; exit}' "$RECIPE")
if [ $((TOTAL * GLOBAL)) -gt "$NPROMPTS" ]; then
  echo "warmup + steps = $TOTAL steps x global $GLOBAL > $NPROMPTS prompts (the peer handles one epoch only)" >&2
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
load0 = open("/proc/loadavg").read().split()[0]
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
           "minflt": ru.ru_minflt, "foreign_cores": max(0.0, (busy - cpu) / wall),
           "load_before": float(load0), "load_after": float(open("/proc/loadavg").read().split()[0])}, open(out_json, "w"))
sys.exit(0 if rc == 0 else 1)
EOF_WRAP

# one_run LABEL THREADS LOG METRICS SAMPLES_DIR command...: runs it through wrap.py, prints a JSON result line.
# METRICS: aligntrain's metrics.jsonl or the peer's per-step JSON lines; SAMPLES_DIR: aligntrain's samples folder
# (the prompts of each step), "-" for the peer (its lines carry them).
one_run() {
  local label=$1 threads=$2 log=$3 metrics=$4 samples=$5; shift 5
  "$PY" "$BUILD/wrap.py" "$log.run.json" "$log" "$@" || { echo "run failed ($label): see $log" >&2; tail -5 "$log" >&2; return 1; }
  "$PY" - "$label" "$threads" "$metrics" "$log.run.json" "$WARMUP" "$samples" <<'EOF_PARSE'
import glob, json, os, statistics, sys
label, threads, metrics, runf, warmup, samples_dir = sys.argv[1:7]
warmup = int(warmup)
rows = [json.loads(l) for l in open(metrics) if l.strip()]
steps = []  # per step: samples, completion tokens, seconds, prompts
if samples_dir == "-":  # the peer
    for r in rows:
        steps.append({"step": r["step"], "samples": r["samples"], "completion_tokens": r["completion_tokens"],
                      "sec": r["step_sec"], "gen_sec": r["gen_sec"], "prompts": r["prompts"], "loss": r["loss"],
                      "reward": r["reward"], "grad_norm": r["grad_norm"]})
else:  # aligntrain: metrics.jsonl + samples/step-N.jsonl
    for r in rows:
        if r.get("stage") != "grpo" or "tokens_per_sec" not in r:
            continue
        lines = [json.loads(l) for l in open(os.path.join(samples_dir, f"step-{r['step']:06d}.jsonl")) if l.strip()]
        ct = sum(len(l["completion_ids"]) for l in lines)
        if abs(ct - r["completion_length"] * len(lines)) > 0.5:
            sys.exit(f"step {r['step']}: completion tokens {ct} in the samples vs completion_length x samples")
        steps.append({"step": r["step"], "samples": len(lines), "completion_tokens": ct,
                      "sec": r["tokens"] / r["tokens_per_sec"], "gen_sec": None,
                      "prompts": sorted({l["example"] for l in lines}), "loss": r["loss"], "reward": r["reward"],
                      "grad_norm": r["grad_norm"],
                      "prompt_ids": {l["example"]: l["prompt_ids"] for l in lines}})
timed = [s for s in steps if s["step"] > warmup]
secs = sum(s["sec"] for s in timed)
samples = sum(s["samples"] for s in timed)
ctoks = sum(s["completion_tokens"] for s in timed)
gen = [s["gen_sec"] for s in timed if s["gen_sec"] is not None]
run = json.load(open(runf))
print(json.dumps({
    "impl": label, "threads": int(threads), "steps": len(timed), "samples": samples, "completion_tokens": ctoks,
    "seconds": secs, "samples_per_s": samples / secs, "completion_tokens_per_s": ctoks / secs,
    "step_s_median": statistics.median(s["sec"] for s in timed), "gen_share": sum(gen) / secs if gen else None,
    "mean_completion_length": ctoks / samples,
    "peak_rss_mib": run["maxrss_kb"] / 1024, "peak_rss_source": run["maxrss_source"],
    "peak_anon_mib": run["peak_anon_kb"] / 1024, "peak_file_mib": run["peak_file_kb"] / 1024,
    "wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "minor_faults": run["minflt"],
    "foreign_cores": run["foreign_cores"], "load_before": run.get("load_before"), "load_after": run.get("load_after"),
    "step_prompts": [s["prompts"] for s in steps], "rewards": [s["reward"] for s in steps],
    "losses": [s["loss"] for s in steps], "grad_norms": [s["grad_norm"] for s in steps],
    "prompt_ids": {str(k): v for s in steps for k, v in s.get("prompt_ids", {}).items()}}))
EOF_PARSE
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

# measure LABEL THREADS KIND: runs one configuration (KIND: trl | aligntrain), repeats a disturbed run, keeps the
# least disturbed try.
measure() {
  local label=$1 threads=$2 kind=$3
  local best="" best_f=99 out f i log
  for i in $(seq "$TRIES"); do
    wait_quiet
    log="$BUILD/logs/${label}-t${threads}-$(date +%H%M%S%N).log"
    if [ "$kind" = aligntrain ]; then
      rm -rf "$BUILD/out-$label"
      out=$(one_run "$label" "$threads" "$log" "$BUILD/out-$label/metrics.jsonl" "$BUILD/out-$label/grpo/samples" \
            "$BIN" run "$RECIPE" --fresh --set run.threads="$threads" --set run.output_dir="$BUILD/out-$label" \
            --set stages.grpo.train.steps="$TOTAL" --set models.small.path="$MODEL" \
            --set stages.grpo.data.train="$DATA") || return 1
    else
      out=$(one_run "$label" "$threads" "$log" "$log.jsonl" - "$PY" bench/grpo_step_peer.py --recipe "$RECIPE" \
            --model-dir "$MODEL" --data "$DATA" --threads "$threads" --steps "$TOTAL" --out "$log.jsonl") || return 1
    fi
    f=$(echo "$out" | sed -E 's/.*"foreign_cores": ?([0-9.eE+-]+).*/\1/')
    printf '  %-12s threads %s: %6.2f samples/s  %6.1f completion tok/s  peak RSS %5.0f MiB  (other processes: %.2f cores; load %s)\n' \
      "$label" "$threads" "$(echo "$out" | sed -E 's/.*"samples_per_s": ?([0-9.eE+-]+).*/\1/')" \
      "$(echo "$out" | sed -E 's/.*"completion_tokens_per_s": ?([0-9.eE+-]+).*/\1/')" \
      "$(echo "$out" | sed -E 's/.*"peak_rss_mib": ?([0-9.eE+-]+).*/\1/')" "$f" "$(cut -d' ' -f1-3 /proc/loadavg)"
    if awk -v a="$f" -v b="$best_f" 'BEGIN{exit !(a < b)}'; then best=$out; best_f=$f; fi
    awk -v a="$f" -v m="$MAX_FOREIGN" 'BEGIN{exit !(a <= m)}' && break
    echo "    (disturbed; repeating)"
  done
  echo "$best" >> "$RESULTS"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) core(s)"
start=$(date +%s)
for t in $THREADS; do
  echo "== $t thread(s): $REPS repetitions of $WARMUP warm-up + $STEPS timed steps"
  for rep in $(seq "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then
      measure trl "$t" trl
      measure aligntrain "$t" aligntrain
    else
      measure aligntrain "$t" aligntrain
      measure trl "$t" trl
    fi
  done
done
echo "benchmark wall time: $(( $(date +%s) - start )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- table --------------------------------------------------------------------------------------------------
"$PY" - "$RESULTS" "$DATA" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
prompts = [json.loads(l)["prompt"] for l in open(sys.argv[2]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["threads"], r["impl"]), []).append(r)
med = lambda k, rs: statistics.median(r[k] for r in rs)
order = ["trl", "aligntrain"]
print()
print(f"{'impl':<11} {'thr':>3} {'runs':>4} {'samples/s (range)':>20} {'compl tok/s':>11} {'step s':>7} {'len':>5} "
      f"{'gen':>4} {'peak RSS MiB':>12} {'anon':>5} {'file':>5} {'other':>6}  vs trl")
for (t, impl), rs in sorted(groups.items(), key=lambda kv: (-kv[0][0], order.index(kv[0][1]))):
    base = groups.get((t, "trl"))
    sps = med("samples_per_s", rs)
    rng = f"{min(r['samples_per_s'] for r in rs):.2f}-{max(r['samples_per_s'] for r in rs):.2f}"
    gen = [r["gen_share"] for r in rs if r["gen_share"] is not None]
    ratio = (f"{sps / med('samples_per_s', base):.2f}x samples/s, "
             f"{med('completion_tokens_per_s', rs) / med('completion_tokens_per_s', base):.2f}x tok/s, "
             f"{med('peak_rss_mib', rs) / med('peak_rss_mib', base):.2f}x mem" if base else "-")
    print(f"{impl:<11} {t:>3} {len(rs):>4} {sps:>7.2f} ({rng:>11}) {med('completion_tokens_per_s', rs):>11.1f} "
          f"{med('step_s_median', rs):>7.2f} {med('mean_completion_length', rs):>5.1f} "
          f"{(f'{statistics.median(gen):.2f}' if gen else '-'):>4} {med('peak_rss_mib', rs):>12.0f} "
          f"{med('peak_anon_mib', rs):>5.0f} {med('peak_file_mib', rs):>5.0f} "
          f"{max(r['foreign_cores'] for r in rs):>6.2f}  {ratio}")
print("\nsamples/s: completions of the timed steps / their summed step time (sampling + scoring + update), median over")
print("runs; compl tok/s: their completion tokens (EOS included) / the same time; step s: median step time; len: mean")
print("completion length; gen: share of the step time inside transformers' generate (the peer only); peak RSS: maximum")
print(f"resident set size of the process ({rows[0].get('peak_rss_source', 'wait4')}), anon / file: peak anonymous and")
print("file-backed RSS (sampled every 20 ms); other: the most cores' worth of CPU other processes used during any one")
print("kept run (whole process lifetime).")
print("1-minute load average at the kept runs' starts / ends: "
      + ", ".join(f"{r['impl']} {r['load_before']:.2f}/{r['load_after']:.2f}" for r in rows))
# Same prompts every step, same prompt token ids, rewards in the same range.
ours = [r for r in rows if r["impl"] == "aligntrain"]
peer = [r for r in rows if r["impl"] == "trl"]
if ours and peer:
    same = all(a["step_prompts"] == peer[0]["step_prompts"] for a in ours + peer)
    ids_ok = all(v == [256] + list(prompts[int(k)].encode("utf-8")) for a in ours for k, v in a["prompt_ids"].items())
    print(f"\nprompts of every step identical on both sides: {same}; aligntrain's prompt ids = [BOS] + utf8(prompt) "
          f"(the peer's, checked before it trains): {ids_ok}")
    fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)
    print(f"mean reward per step  aligntrain: {fmt(ours[0]['rewards'])}\n                      trl:        {fmt(peer[0]['rewards'])}")
for t in sorted({r["threads"] for r in rows}, reverse=True):
    ga, gb = groups.get((t, "aligntrain")), groups.get((t, "trl"))
    if ga and gb:
        print(f"RATIO threads={t}: aligntrain / trl = {med('samples_per_s', ga) / med('samples_per_s', gb):.2f}x samples/s "
              f"({med('samples_per_s', ga):.2f} vs {med('samples_per_s', gb):.2f}), "
              f"{med('completion_tokens_per_s', ga) / med('completion_tokens_per_s', gb):.2f}x completion tokens/s, "
              f"{med('peak_rss_mib', ga) / med('peak_rss_mib', gb):.2f}x peak RSS "
              f"({med('peak_rss_mib', ga):.0f} vs {med('peak_rss_mib', gb):.0f} MiB)")
EOF
