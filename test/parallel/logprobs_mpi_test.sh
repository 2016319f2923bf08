#!/usr/bin/env bash
# `aligntrain logprobs` under `mpirun --oversubscribe -np 2`: with data parallelism (DP=2) and with tensor
# parallelism (--tensor-parallel 2) it writes the same examples in the same order as one process, with every token
# log-prob within 2e-6 of max(1, |value|) (sums and token log-probs round in proportion to their size); a TP degree
# that does not divide the vocabulary ends both ranks promptly with exit 2.
set -u
source test/cli/testlib.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
BIN=${ALIGNTRAIN_BIN:-./aligntrain}
MPIRUN=(mpirun --oversubscribe -np 2 --bind-to none)
TMP=${TEST_TMPDIR:-$(mktemp -d)}
DATA=config/recipes/data/pairs_eval.jsonl

# A Qwen2 (q/k/v biases) with an even vocabulary, so TP=2 can split it; byte tokenizer.
printf '{"model_type": "qwen2", "vocab_size": 262, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}\n' > "$TMP/config.json"
run_cmd $BIN init-model --config "$TMP/config.json" --tokenizer byte --seed 4 --out "$TMP/model"
expect_exit 0 "init-model"

run_cmd $BIN logprobs --model "$TMP/model" --data $DATA --tokens --out "$TMP/one.jsonl"
expect_exit 0 "logprobs on one process"
run_cmd "${MPIRUN[@]}" $BIN logprobs --model "$TMP/model" --data $DATA --tokens --out "$TMP/dp2.jsonl"
expect_exit 0 "logprobs with DP=2"
run_cmd "${MPIRUN[@]}" $BIN logprobs --model "$TMP/model" --data $DATA --tokens --tensor-parallel 2 --out "$TMP/tp2.jsonl"
expect_exit 0 "logprobs with TP=2"

for f in dp2 tp2; do
  OUT=$(python3 - "$TMP/one.jsonl" "$TMP/$f.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 100, (len(a), len(b))
assert [x["index"] for x in a] == [x["index"] for x in b], "order differs"
d = 0.0  # the largest |difference| / max(1, |one process's value|)
for x, y in zip(a, b):
    for k in ("chosen", "rejected"):
        assert x[k]["n_tokens"] == y[k]["n_tokens"]
        pairs = [(y[k]["logp"], x[k]["logp"])] + list(zip(y[k]["token_logps"], x[k]["token_logps"]))
        d = max(d, *(abs(p - q) / max(1.0, abs(q)) for p, q in pairs))
print(f"max relative diff {d:.2e}")
sys.exit(0 if d <= 2e-6 else 1)
PY
)
  RC=$?
  expect_exit 0 "$f equals one process within 2e-6 of the values' scale ($OUT)"
done

run_cmd $BIN init-model --preset tiny-llama --out "$TMP/odd"   # vocabulary 261
start=$(date +%s)
run_cmd "${MPIRUN[@]}" $BIN logprobs --model "$TMP/odd" --data $DATA --tensor-parallel 2
expect_exit 2 "TP=2 with an odd vocabulary is a usage error"
expect_output 'vocab_size \(261\) is not divisible by the tensor-parallel degree 2' "the error names vocab_size and the degree"
[ $(( $(date +%s) - start )) -lt 30 ]
check "both ranks end promptly" $?

finish
