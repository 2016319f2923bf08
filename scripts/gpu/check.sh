#!/usr/bin/env bash
# GPU smoke check of a binary packed by scripts/gpu/pack.sh, run against the GPU host's own LibTorch: the
# binary starts, a model runs on CUDA, and CUDA log-probs agree with CPU log-probs. Results go to $OUT.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/aligntrain
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
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
