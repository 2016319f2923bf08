#!/usr/bin/env bash
# bench/gpu/ on the CPU (--device cpu --tiny: the code path the GPU run takes, with a tiny model), on the workloads
# that fit a test's time (sft with packing, kd; the full tiny run with the TRL workloads takes ~2 minutes here and
# is run by hand: bench/gpu/README.md): both sides run and agree on the step-1 loss, the table and JSON are written,
# plan's GPU estimate is read and its FLOPs per token equal bench/gpu/flops.py's, `plan --gpu` refuses an unknown
# chip without --peak-tflops, and --mfu without --gpu is an error. Needs $ALIGNTRAIN_PYTHON (or the repo .venv) with transformers.
set -uo pipefail
source test/cli/testlib.sh
BIN=$PWD/aligntrain
PY=${ALIGNTRAIN_PYTHON:-$PWD/.venv/bin/python}
T=${TEST_TMPDIR:-$(mktemp -d)}

OUT=$(ALIGNTRAIN_BIN=$BIN ALIGNTRAIN_PYTHON=$PY timeout 170 bench/gpu/run.sh --device cpu --tiny --only sft,kd \
      --work "$T/work" --out "$T/out" 2>&1)
RC=$?
expect_exit 0 "bench/gpu/run.sh --device cpu --tiny --only sft,kd"
expect_output '^\| sft \| [0-9,]+ \| [0-9,]+ \| [0-9.]+x' "the table has measured tokens/s and a ratio for sft"
expect_output '^\| kd \| [0-9,]+ \| [0-9,]+ \| [0-9.]+x' "and for kd"
[ -s "$T/out/gpu_bench.md" ] && [ -s "$T/out/gpu_bench.json" ] && [ -s "$T/out/gpu_bench_logs.txt" ]
check "gpu_bench.md, gpu_bench.json and gpu_bench_logs.txt written" $?

OUT=$("$PY" - "$T/out/gpu_bench.json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
for name in ("sft", "kd"):
    w = r["workloads"][name]
    a, p, plan = w["aligntrain"], w["peer"], w["plan"]
    if w["status"] != "ok":
        bad.append(f"{name}: status {w['status']}")
        continue
    # the same work: same tokens per step, the same step-1 loss up to bf16 rounding (fp32 masters on both sides)
    if a["tokens_per_step"] != p["tokens_per_step"]:
        bad.append(f"{name}: tokens per step {a['tokens_per_step']} vs {p['tokens_per_step']}")
    la, lp = a["losses"][0], p["losses"][0]
    if not abs(la - lp) <= 0.02 * abs(lp) + 1e-4:
        bad.append(f"{name}: step-1 loss {la} vs {lp}")
    if not (a["tokens_per_s"] > 0 and p["tokens_per_s"] > 0 and a["peak_mib"] > 0 and p["peak_mib"] > 0):
        bad.append(f"{name}: missing measurements")
    if not (plan["tokens_per_s"] > 0 and plan["total_gib"] > 0 and plan["peak_tflops"] == 989.0):
        bad.append(f"{name}: plan {plan}")
    print(f"{name}: loss {la:.6f} vs {lp:.6f}; {a['tokens_per_s']:.0f} vs {p['tokens_per_s']:.0f} tok/s; "
          f"plan {plan['gflop_per_token']} GFLOP/token, bench {w['flops_per_token'] / 1e9:.6g}")
# kd rows are full-length causal sequences, as plan assumes: both FLOP counts must agree (plan prints 6 digits)
kd = r["workloads"]["kd"]
if abs(kd["plan"]["gflop_per_token"] - kd["flops_per_token"] / 1e9) > 1e-5 * kd["flops_per_token"] / 1e9:
    bad.append(f"kd: plan {kd['plan']['gflop_per_token']} GFLOP/token vs bench {kd['flops_per_token'] / 1e9}")
print("\n".join(bad) if bad else "all consistent")
sys.exit(1 if bad else 0)
PY
)
RC=$?
expect_exit 0 "both sides did the same work; plan's estimate read; FLOP counts agree"

run_cmd "$BIN" plan "$T/work/kd.yaml" --gpu "Tesla T4"
expect_exit 2 "plan --gpu with a chip outside the table"
expect_output "peak-tflops" "says how to give the peak"
run_cmd "$BIN" plan "$T/work/kd.yaml" --gpu "Tesla T4" --peak-tflops 65
expect_exit 0 "plan --gpu with --peak-tflops"
expect_output "GPU estimate: Tesla T4, dense bf16 peak 65 TFLOP/s, assumed MFU 40%" "states the chip, peak and MFU"
run_cmd "$BIN" plan "$T/work/kd.yaml" --mfu 0.5
expect_exit 2 "plan --mfu without --gpu is a usage error, not ignored"
finish
