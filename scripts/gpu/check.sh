#!/usr/bin/env bash
# GPU smoke check of a binary packed by scripts/gpu/pack.sh, run against the GPU host's own LibTorch: the
# binary starts, a model runs on CUDA, and CUDA log-probs agree with CPU log-probs. Results go to $OUT.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/aligntrain
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
bash "$HERE/unpack_libs.sh"
export LD_LIBRARY_PATH=$TL:$HERE/lib
export OUT=${OUT:-$(mktemp -d)}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$BIN --version || { ldd $BIN | grep "not found"; exit 1; }
$BIN init-model --preset small-llama --seed 1 --out /tmp/m || exit 1
for d in cpu cuda; do
  /usr/bin/time -f "$d logprobs wall %e s" $BIN logprobs --model /tmp/m --data config/recipes/data/pairs_eval.jsonl --out $OUT/lp_$d.jsonl --tokens --device $d
done
python3 - <<'PY'
import json, os
o = os.environ["OUT"]
a = [json.loads(l) for l in open(f"{o}/lp_cpu.jsonl")]
b = [json.loads(l) for l in open(f"{o}/lp_cuda.jsonl")]
d = max(abs(x[k]["logp"] - y[k]["logp"]) for x, y in zip(a, b) for k in ("chosen", "rejected"))
t = max(abs(p - q) for x, y in zip(a, b) for k in ("chosen", "rejected") for p, q in zip(x[k]["token_logps"], y[k]["token_logps"]))
print(f"cuda vs cpu logprobs on {len(a)} pairs (small-llama, fp32): max |dlogp| {d:.2e}, max |dtoken| {t:.2e}")
PY
echo "== CUDA forward/backward vs CPU, bf16 steps"
"$HERE/gpu_smoke" || echo "gpu_smoke FAILED"
echo "== NCCL communicator (world of one on one GPU; every collective and dtype)"
"$HERE/communicator_test" --cuda --gtest_brief=1 2>&1 | tail -n 5
echo "== SFT training on CUDA (test/stages/sft_demo.yaml): fp32 CUDA vs CPU, bf16, SIGTERM + resume"
R=test/stages/sft_demo.yaml
S=(--set stages.sft.train.steps=100 --set stages.sft.log.every_steps=10 --set stages.sft_eval.batch.micro=16)
for v in "cpu fp32" "cuda fp32" "cuda bf16"; do
  set -- $v
  /usr/bin/time -f "$1 $2 run wall %e s" $BIN run $R "${S[@]}" --set run.device=$1 --set run.precision=$2 \
    --set run.output_dir=/tmp/sft_$1_$2 > $OUT/sft_$1_$2.log 2>&1 || { echo "run $1 $2 FAILED"; tail -5 $OUT/sft_$1_$2.log; }
  cp /tmp/sft_$1_$2/metrics.jsonl $OUT/metrics_$1_$2.jsonl 2>/dev/null
done
python3 - <<'PY'
import json, os
o = os.environ["OUT"]
def m(name):
    try:
        rows = [json.loads(l) for l in open(f"{o}/metrics_{name}.jsonl")]
    except OSError:
        return None
    tr = {r["step"]: r for r in rows if r.get("stage") == "sft" and "loss" in r}
    ev = [r for r in rows if r.get("stage") == "sft" and "eval/loss" in r]
    return tr, ev
for name in ("cpu_fp32", "cuda_fp32", "cuda_bf16"):
    r = m(name)
    if r is None:
        print(name, "no metrics"); continue
    tr, ev = r
    tps = sum(t["tokens_per_sec"] for t in tr.values()) / len(tr)
    print(f"{name}: loss step1 {tr[1]['loss']:.6f} step100 {tr[100]['loss']:.6f}, eval {ev[0]['eval/loss']:.4f} -> {ev[-1]['eval/loss']:.4f}, mean logged tok/s {tps:.0f}")
a, b = m("cpu_fp32"), m("cuda_fp32")
if a and b:
    d = max(abs(a[0][s]["loss"] - b[0][s]["loss"]) for s in a[0] if s in b[0])
    print(f"cuda fp32 vs cpu fp32: max |dloss| over logged steps {d:.2e}")
PY
# SIGTERM at about step 40 of a CUDA bf16 run, then resume; compare with the uninterrupted bf16 run.
$BIN run $R "${S[@]}" --set run.device=cuda --set run.precision=bf16 --set run.output_dir=/tmp/sft_term \
  --set stages.sft.checkpoint.every_steps=25 > $OUT/sft_term.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q '"step":40' /tmp/sft_term/metrics.jsonl 2>/dev/null && break; sleep 0.05
done
kill -TERM $pid; wait $pid; echo "SIGTERM run exit $?"
$BIN run $R "${S[@]}" --set run.device=cuda --set run.precision=bf16 --set run.output_dir=/tmp/sft_term \
  --set stages.sft.checkpoint.every_steps=25 >> $OUT/sft_term.log 2>&1; echo "resumed run exit $?"
grep -E "stop requested|resuming" $OUT/sft_term.log | head -3
cmp -s /tmp/sft_term/sft/model/model.safetensors /tmp/sft_cuda_bf16/sft/model/model.safetensors \
  && echo "CUDA bf16 resume: weights bitwise identical to the uninterrupted run" \
  || echo "CUDA bf16 resume: weights differ from the uninterrupted run (CUDA kernels are not bitwise deterministic)"
echo "== SFT throughput on CUDA: small-llama (10.7M), demo data, global 64 x 64 tokens, 60 steps"
for p in fp32 bf16; do
  $BIN run $R --set models.tiny.init.preset=small-llama --set stages.sft.train.steps=60 --set stages.sft.batch.global=64 \
    --set stages.sft.batch.micro=32 --set stages.sft.log.every_steps=20 --set run.device=cuda --set run.precision=$p \
    --set run.output_dir=/tmp/tp_$p > $OUT/throughput_$p.log 2>&1 || echo "throughput run $p FAILED"
  echo "$p: $(grep -E 'step 60/60' $OUT/throughput_$p.log)"
done
