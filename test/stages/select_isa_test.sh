#!/usr/bin/env bash
# The select stage's ISA method (METHODS.md E.2): candidates embedded by a tiny Llama, a Gaussian mixture fitted by
# EM, candidates ranked by their entropy change. Checked against scripts/parity/isa_reference.py, which refits the
# mixture with scikit-learn from the contract's deterministic initialisation on the saved embeddings and recomputes
# the embeddings with transformers:
#  - diag and full covariances: weights, means, covariances, lower bound, log densities, n_iter/converged, selection;
#  - the selection size follows keep and keep_fraction (K = max(1, llround(keep_fraction · N))), prefer rare/common;
#  - a rerun reuses the selection ("done earlier"); isa without embedding_model, or keep with keep_fraction, is a
#    recipe error (exit 2); keep larger than the pool is a data error (exit 3).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/isa_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/select_isa
rm -rf "$TMP" && mkdir -p "$TMP"
DATA=$(cd config/recipes/data && pwd)

# A pool of 203 candidates: 120 sorting examples and 83 lines of unrelated text (some longer than max_length), mixed
# deterministically, so that the embeddings form groups.
python3 - "$DATA/sft_train.jsonl" "$TMP/pool.jsonl" <<'PY'
import json, random, sys
rng = random.Random(18)
rows = [json.loads(l) for l in open(sys.argv[1])][:120]
words = ("the a river stone cloud green music paper table window garden orange silver yellow bridge candle forest "
         "island letter market pencil rocket summer winter basket walks sings under over quietly bright").split()
for i in range(83):
    sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 18)))
    rows.append({"prompt": f"Tell me about {rng.choice(words)}.\n", "completion": sentence.capitalize() + "."})
rng.shuffle(rows)
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY

run_long $BIN init-model --preset tiny-llama --seed 1 --out "$TMP/emb"
expect_exit 0 "init-model: the embedding model on disk, for the transformers check"

stage() {  # stage NAME SELECT-OPTIONS: an isa select stage on the pool
  cat <<YAML
  - name: $1
    kind: select
    data: {train: $TMP/pool.jsonl}
    batch: {micro: 16, max_length: 64}
    select: {method: isa, embedding_model: emb, save_embeddings: true, $2}
YAML
}
recipe() {  # recipe NAME STAGES...: $TMP/NAME.yaml, output in $TMP/NAME, declaring the tiny Llama (= $TMP/emb)
  local name=$1; shift
  {
    echo "run: {name: $name, output_dir: $TMP/$name, seed: 3}"
    echo "models:"
    echo "  emb: {init: {preset: tiny-llama, seed: 1}, tokenizer: byte, chat_template: plain}"
    echo "stages:"
    printf '%s\n' "$@"
  } > "$TMP/$name.yaml"
}
DIAG_OPTS="covariance: diag, components: 3, keep_fraction: 0.1"
FULL_OPTS="covariance: full, components: 2, reg_covar: 1.0e-4, tol: 1.0e-4, max_iter: 50, prefer: common, keep: 17, text: completion"
recipe run "$(stage diag "$DIAG_OPTS")" "$(stage full "$FULL_OPTS")"
run_long $BIN run "$TMP/run.yaml"
expect_exit 0 "two isa select stages (diag and full covariance)"

if [ -x "$PY" ] && "$PY" -c 'import sklearn, torch, transformers, safetensors' 2>/dev/null; then
  "$PY" $REF "$TMP/run/diag" "$TMP/pool.jsonl" --covariance diag --components 3 --keep-fraction 0.1 \
    --model "$TMP/emb" --max-length 64 > "$TMP/ref_diag.txt" 2>&1
  R=$?; cat "$TMP/ref_diag.txt"
  check "diag: embeddings, mixture, log densities and selection equal the reference's" $R
  "$PY" $REF "$TMP/run/full" "$TMP/pool.jsonl" --covariance full --components 2 --reg-covar 1e-4 --tol 1e-4 \
    --max-iter 50 --prefer common --keep 17 --model "$TMP/emb" --max-length 64 --text completion \
    > "$TMP/ref_full.txt" 2>&1
  R=$?; cat "$TMP/ref_full.txt"
  check "full: embeddings, mixture, log densities and selection equal the reference's" $R
else
  check "no Python with scikit-learn, torch and transformers at '$PY' (run scripts/setup.sh)" 1
fi

N=$(grep -c . "$TMP/pool.jsonl")
[ "$(wc -l < "$TMP/run/diag/selected.jsonl")" -eq 20 ]
check "keep_fraction 0.1 of $N candidates keeps llround(20.3) = 20 lines" $?
[ "$(wc -l < "$TMP/run/full/selected.jsonl")" -eq 17 ]
check "keep 17 keeps 17 lines" $?
py_check "$(metric "$TMP/run/metrics.jsonl" diag 0 select/kept) == 20 and $(metric "$TMP/run/metrics.jsonl" diag 0 select/candidates) == $N"
check "metrics.jsonl: select/candidates $N, select/kept 20" $?
python3 - "$TMP/pool.jsonl" "$TMP/run/diag/selected.jsonl" "$TMP/run/full/selected.jsonl" <<'PY'
import sys
pool = open(sys.argv[1], "rb").read().splitlines(keepends=True)
sys.exit(0 if all(l in pool for f in sys.argv[2:] for l in open(f, "rb").read().splitlines(keepends=True)) else 1)
PY
check "selected lines are pool lines byte for byte" $?

cp "$TMP/run/diag/selected.jsonl" "$TMP/diag_first.jsonl"
run_long $BIN run "$TMP/run.yaml"
expect_exit 0 "rerun"
expect_output "\[diag\] done earlier" "a rerun skips the finished select stage"
cmp -s "$TMP/diag_first.jsonl" "$TMP/run/diag/selected.jsonl"; check "the rerun keeps the selection" $?

# Recipe and data errors.
recipe bad1 "  - {name: s, kind: select, data: {train: $TMP/pool.jsonl}, select: {method: isa, keep: 5}}"
run_cmd $BIN run "$TMP/bad1.yaml"
expect_exit 2 "isa without embedding_model"
expect_output "embedding_model" "the error names select.embedding_model"
recipe bad2 "$(stage s "keep: 5, keep_fraction: 0.1")"
run_cmd $BIN run "$TMP/bad2.yaml"
expect_exit 2 "keep and keep_fraction together"
recipe bad3 "$(stage s "keep: 500")"
run_cmd $BIN run "$TMP/bad3.yaml"
expect_exit 3 "keep larger than the number of candidates"
expect_output "pool.jsonl" "the error names the pool file"
finish
