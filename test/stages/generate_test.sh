#!/usr/bin/env bash
# Generation (KV-cache decoding): `aligntrain generate`, generate stages and eval stages with exact match.
#  - greedy completions equal transformers' greedy generate() token for token (scripts/parity/generate_reference.py)
#    on a briefly fine-tuned tiny Llama, with prompts of different lengths batched together (left padding);
#  - TP=2 and DP=2 under mpirun give the same completions as one rank, greedy and sampled (top-k + top-p);
#  - seeded sampling is reproducible and independent of the batch size; another seed gives other samples;
#  - K samples per prompt; a generate stage's output feeds the recipe; eval.exact_match counts what generate
#    produces; bad arguments and bad prompt files fail with exit 2 / 3.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/generate_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/generate
rm -rf "$TMP" && mkdir -p "$TMP"
DATA=$(cd config/recipes/data && pwd)
python3 - "$DATA/sft_eval.jsonl" "$TMP" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2] + "/prompts.jsonl", "w") as f:
    for i, r in enumerate(rows[:16]):
        f.write(json.dumps({"prompt": r["prompt"], "id": i}) + "\n")
with open(sys.argv[2] + "/eval.jsonl", "w") as f:
    for r in rows[:40]:
        f.write(json.dumps(r) + "\n")
PY

# A tiny Llama (vocab 264 so that TP=2 divides it) fine-tuned for 150 steps, then a generate and an eval stage.
cat > "$TMP/recipe.yaml" <<YAML
run: {name: gen, output_dir: $TMP/run, seed: 11}
models:
  tiny: {init: {preset: tiny-llama, seed: 1, vocab_size: 264}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $DATA/sft_train.jsonl}
    optimizer: {lr: 3.0e-3, betas: [0.9, 0.95]}
    schedule: {warmup_steps: 10, decay: cosine, min_lr_ratio: 0.1}
    batch: {global: 32, micro: 8, max_length: 64}
    train: {steps: 150}
    checkpoint: {every_steps: 0}
    log: {every_steps: 50}
  - name: samples
    kind: generate
    policy: sft
    data: {train: $TMP/prompts.jsonl}
    batch: {micro: 5}
    generation: {max_new_tokens: 24, temperature: 0.8, top_k: 20, num_samples: 2}
  - name: eval
    kind: eval
    policy: sft
    data: {eval: $TMP/eval.jsonl}
    batch: {micro: 8, max_length: 64}
    eval: {exact_match: true}
    generation: {max_new_tokens: 24}
YAML
run_long $BIN run "$TMP/recipe.yaml"
expect_exit 0 "SFT, generate and eval stages"
M="$TMP/run/sft/model"
GEN="$TMP/run/samples/generations.jsonl"
py_check "sum(1 for _ in open('$GEN')) == 32"; check "generate stage: 2 samples of each of 16 prompts in $GEN" $?
python3 -c "import json,sys; sys.exit(0 if all(set(json.loads(l)) >= {'prompt','id','completion','sample'} for l in open('$GEN')) else 1)"
check "generate stage: each line is the input object plus completion and sample" $?
em=$(metric "$TMP/run/metrics.jsonl" eval 0 eval/exact_match)
echo "exact match after 150 SFT steps: $em"
expect_output "exact match [0-9]+/40" "eval stage logs the exact-match count"

g() {  # g NAME ARGS...: one-rank generate of the prompts into $TMP/NAME.jsonl
  local name=$1; shift
  run_long $BIN generate --model "$M" --prompts "$TMP/prompts.jsonl" --out "$TMP/$name.jsonl" --token-ids "$@"
}
gmpi() {  # gmpi NAME ARGS...: the same under mpirun -np 2
  local name=$1; shift
  run_long "${MPIRUN[@]}" $BIN generate --model "$M" --prompts "$TMP/prompts.jsonl" --out "$TMP/$name.jsonl" --token-ids "$@"
}
same() { cmp -s "$TMP/$1.jsonl" "$TMP/$2.jsonl"; }

# Greedy: transformers parity, batch-size independence, TP=2, DP=2.
g greedy --temperature 0 --max-new-tokens 24 --batch-size 6
expect_exit 0 "greedy generate (batches of 6 prompts of different lengths)"
if [ -x "$PY" ] && "$PY" -c 'import torch, transformers' 2>/dev/null; then
  "$PY" $REF "$M" "$TMP/prompts.jsonl" 24 > "$TMP/hf.jsonl" 2>/dev/null
  python3 - "$TMP/greedy.jsonl" "$TMP/hf.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["completion_ids"] for l in open(sys.argv[1])]
b = [json.loads(l)["completion_ids"] for l in open(sys.argv[2])]
same = sum(x == y for x, y in zip(a, b))
print(f"greedy completions equal to transformers': {same} of {len(b)}; tokens {sum(map(len, a))}")
sys.exit(0 if len(a) == len(b) == 16 and same == 16 and sum(map(len, a)) > 16 * 4 else 1)
PY
  check "greedy completions equal transformers' generate() token for token (16 prompts)" $?
else
  check "no Python with torch and transformers at '$PY' (run scripts/setup.sh)" 1
fi
g greedy_b1 --temperature 0 --max-new-tokens 24 --batch-size 1
same greedy greedy_b1; check "greedy: batch size 6 = batch size 1" $?
gmpi greedy_tp2 --temperature 0 --max-new-tokens 24 --batch-size 6 --tensor-parallel 2
expect_exit 0 "greedy generate with TP=2"
same greedy greedy_tp2; check "greedy: TP=2 = one rank" $?
gmpi greedy_dp2 --temperature 0 --max-new-tokens 24 --batch-size 6
same greedy greedy_dp2; check "greedy: DP=2 = one rank (input order kept)" $?

# Sampling with top-k and top-p, 3 samples per prompt.
S=(--temperature 0.9 --top-k 20 --top-p 0.9 --num-samples 3 --max-new-tokens 24 --seed 5)
g s1 "${S[@]}" --batch-size 4
expect_exit 0 "sampled generate"
python3 -c "import json,sys; sys.exit(0 if [json.loads(l)['sample'] for l in open('$TMP/s1.jsonl')][:6]==[0,1,2,0,1,2] and sum(1 for _ in open('$TMP/s1.jsonl'))==48 else 1)"
check "3 samples per prompt, ordered by prompt then sample (48 lines)" $?
g s2 "${S[@]}" --batch-size 4
same s1 s2; check "sampling with a seed is reproducible" $?
g s3 "${S[@]}" --batch-size 7
same s1 s3; check "sampling does not depend on the batch size" $?
g s4 --temperature 0.9 --top-k 20 --top-p 0.9 --num-samples 3 --max-new-tokens 24 --seed 6
! same s1 s4; check "another seed gives other samples" $?
python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$TMP/s1.jsonl')]
distinct=sum(len({tuple(r['completion_ids']) for r in rows[i:i+3]})>1 for i in range(0,48,3))
print('prompts whose 3 samples are not all equal:', distinct)
sys.exit(0 if distinct >= 3 else 1)"
check "samples of one prompt differ" $?
gmpi s_tp2 "${S[@]}" --batch-size 4 --tensor-parallel 2
same s1 s_tp2; check "sampling: TP=2 = one rank (noise indexed by global token id)" $?
gmpi s_dp2 "${S[@]}" --batch-size 4
same s1 s_dp2; check "sampling: DP=2 = one rank" $?

# The eval stage's exact match is what generate's greedy completions give.
run_long $BIN generate --model "$M" --prompts "$TMP/eval.jsonl" --out "$TMP/eval_gen.jsonl" --temperature 0 --max-new-tokens 24
python3 - "$TMP/eval.jsonl" "$TMP/eval_gen.jsonl" "$em" <<'PY'
import json, sys
ref = [json.loads(l)["completion"].strip() for l in open(sys.argv[1])]
got = [json.loads(l)["completion"].strip() for l in open(sys.argv[2])]
acc = sum(a == b for a, b in zip(ref, got)) / len(ref)
print(f"exact match from generate: {acc}, eval stage: {sys.argv[3]}")
sys.exit(0 if abs(acc - float(sys.argv[3])) < 1e-12 else 1)
PY
check "eval.exact_match equals the fraction of greedy completions equal to the reference" $?

# Bad input.
run_cmd $BIN generate --model "$M" --prompts "$TMP/prompts.jsonl" --out "$TMP/x.jsonl" --temperature 0 --num-samples 2
expect_exit 2 "--num-samples 2 with greedy decoding is refused"
run_cmd $BIN generate --model "$M" --prompts "$TMP/prompts.jsonl" --out "$TMP/x.jsonl" --top-p 0
expect_exit 2 "--top-p 0 is refused"
printf '{"prompt": "a"}\n{"text": "b"}\n' > "$TMP/bad.jsonl"
run_cmd $BIN generate --model "$M" --prompts "$TMP/bad.jsonl" --out "$TMP/x.jsonl"
expect_exit 3 "a prompts file with a line without prompt"
expect_output "bad.jsonl:2" "the error names file:line"
[ ! -e "$TMP/x.jsonl" ]; check "nothing written on errors" $?
finish
