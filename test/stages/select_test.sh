#!/usr/bin/env bash
# `select` stages with method zip_fit (METHODS.md E.1, notes/select_contract.md), through `aligntrain run`:
#  - METHODS' test vectors: Align = 0.780000 and 0.333333 (gzip level 1 with its wrapper; raw deflate would give
#    0.656250 and 0.066667); equal scores keep the earlier line;
#  - a pool of 552 candidates (300 of the demo's sorting examples, 250 unrelated texts of 1 to ~900 bytes in
#    several scripts and with emoji, two copies of one sorting example, blank lines) against 50 sorting targets:
#    every score equals scripts/parity/zipfit_reference.py within 1e-9, selected.jsonl is byte-identical, the
#    metrics line agrees, and the kept lines are sorting examples; the same for conversational lines (messages
#    form, message lists, CRLF line ends) against preference targets;
#  - the same scores and selection, byte for byte, with run.threads 1 and 2 and under mpirun with 2 ranks;
#  - a later sft stage trains on the selection (`data: {train: pick}`); a rerun says "done earlier" and leaves
#    selected.jsonl as it was;
#  - bad input: an empty target file, keep larger than the pool, a line without a text field, an invalid JSON
#    line (exit 3, naming the file and line); an unknown text field, keep with keep_fraction, no target (exit 2).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
REF=scripts/parity/zipfit_reference.py
TMP=${TEST_TMPDIR:-$(mktemp -d)}/select
rm -rf "$TMP" && mkdir -p "$TMP"
DATA=$(cd config/recipes/data && pwd)

# ---- data: the pool, the target, METHODS' vectors ------------------------------------------------------------
python3 - "$DATA" "$TMP" <<'PY'
import json, random, sys
data, tmp = sys.argv[1], sys.argv[2]
rng = random.Random(18)
train = [l.rstrip("\n") for l in open(f"{data}/sft_train.jsonl", encoding="utf-8")]
evals = [l.rstrip("\n") for l in open(f"{data}/sft_eval.jsonl", encoding="utf-8")]
words = ("river stone window market letter garden winter bridge music paper light forest island evening "
         "question answer history morning village doctor teacher family").split()
foreign = ["Das Wetter ist heute schön, und wir gehen später in den Park.", "¿Dónde está la estación?",
           "Le café était délicieux, merci beaucoup !", "今日はとても良い天気ですね。", "Спасибо за вашу помощь.",
           "这个问题很有意思。", "Η θάλασσα είναι ήρεμη σήμερα.", "مرحبا بكم في المدينة", "मुझे यह किताब पसंद है।",
           "Bon appétit 🍽️ and cheers 🎉", "The rocket launched 🚀 at dawn ☀️ 👩‍🚀", "😀😃😄😁🙂"]
def text(n):
    s = ""
    while len(s.encode()) < n:
        r = rng.random()
        piece = rng.choice(foreign) if r < 0.3 else (f"def f{rng.randint(0, 99)}(x):\n    return x * {rng.randint(2, 9)}\n"
                                                     if r < 0.4 else " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + ".")
        s += (" " if s else "") + piece
    return s
lines = train[:300]
for i in range(250):
    n = rng.choice([1, 5, 20, 60, 150, 300, 500, 900])
    p, c = (text(n), text(rng.randint(1, 200))) if i % 5 else (text(n)[:1] or "x", text(1)[:1] or "y")
    lines.append(json.dumps({"prompt": p, "completion": c}, ensure_ascii=(i % 2 == 0)))
dup = json.loads(train[0])
lines += [json.dumps(dict(dup, copy=1)), json.dumps(dict(dup, copy=2))]  # equal texts: equal scores
rng.shuffle(lines)
lines.insert(100, "")
lines.insert(200, "   ")
open(f"{tmp}/pool.jsonl", "w", encoding="utf-8").write("\n".join(lines) + "\n")
open(f"{tmp}/target.jsonl", "w", encoding="utf-8").write("\n".join(evals[:50]) + "\n")
# METHODS E.1: the add() source (twice, equal texts), the fox sentence; targets sub() and mul().
add, fox = "def add(a, b):\n    return a + b\n", "The quick brown fox jumps over the lazy dog."
with open(f"{tmp}/vec_pool.jsonl", "w") as f:
    for o in ({"prompt": fox}, {"prompt": add, "id": 1}, {"prompt": add, "id": 2}):
        f.write(json.dumps(o) + "\n")
with open(f"{tmp}/vec_target.jsonl", "w") as f:
    for t in ("def sub(a, b):\n    return a - b\n", "def mul(a, b):\n    return a * b\n"):
        f.write(json.dumps({"prompt": t}) + "\n")
PY
py_check "sum(1 for l in open('$TMP/pool.jsonl') if l.strip()) == 552"; check "test data: 552 candidates" $?

# recipe NAME OUTDIR SELECT: $TMP/NAME.yaml, one select stage `pick` over $POOL (default the pool); SELECT is the
# body of its select: mapping after the method.
recipe() {
  cat > "$TMP/$1.yaml" <<YAML
run: {name: select, output_dir: $2, seed: 1}
stages:
  - name: pick
    kind: select
    data: {train: ${POOL:-$TMP/pool.jsonl}}
    select: {method: zip_fit, $3}
YAML
}

# ---- (a) METHODS E.1's test vectors -------------------------------------------------------------------------
POOL="$TMP/vec_pool.jsonl" recipe vectors "$TMP/vec" "target: $TMP/vec_target.jsonl, text: prompt, keep: 1"
run_long $BIN run "$TMP/vectors.yaml"
expect_exit 0 "METHODS E.1 vectors: a zip_fit stage over 3 prompts and 2 targets"
python3 - "$TMP/vec/pick/scores.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
print("scores:", [(g["line"], g["score"]) for g in got])
want = [(1, 1 / 3), (2, 0.78), (3, 0.78)]
sys.exit(0 if len(got) == 3 and all(g["line"] == l and abs(g["score"] - s) < 1e-6 for g, (l, s) in zip(got, want)) else 1)
PY
check "METHODS E.1 vectors: Align(add) = 0.780000, Align(fox) = 0.333333 (gzip level 1 with header and trailer)" $?
py_check "open('$TMP/vec/pick/selected.jsonl').read() == open('$TMP/vec_pool.jsonl').readlines()[1]"
check "equal scores: keep 1 takes the earlier of the two add() lines, byte for byte" $?

# ---- (b) 552 candidates x 50 targets against the Python reference --------------------------------------------
recipe main "$TMP/run1" "target: $TMP/target.jsonl, keep_fraction: 0.1"
run_long $BIN run "$TMP/main.yaml" --set run.threads=1
expect_exit 0 "zip_fit stage over 552 candidates and 50 targets (1 thread)"
OUT=$(python3 $REF --pool "$TMP/pool.jsonl" --target "$TMP/target.jsonl" --keep-fraction 0.1 --out "$TMP/ref" \
      --compare "$TMP/run1/pick" 2>&1)
RC=$?
echo "$OUT"
check "scores within 1e-9 of zipfit_reference.py on every line, selected.jsonl byte-identical, metrics agree" $RC
py_check "sum(1 for _ in open('$TMP/run1/pick/selected.jsonl')) == 55"
check "keep_fraction 0.1 of 552 candidates keeps llround(55.2) = 55 lines" $?
py_check "sum('sort these digits' in l for l in open('$TMP/run1/pick/selected.jsonl')) >= 50"
check "the kept lines are sorting examples (the targets' domain)" $?

# Conversational data: messages-form SFT lines (prompt = every message but the last, completion = the last) and
# prompt/completion message lists, some with a system message, CRLF line ends, a blank line holding a CR, no newline
# after the last line; targets are preference pairs of message lists (default text: prompt+chosen).
python3 - "$DATA" "$TMP" <<'PY'
import json, sys
data, tmp = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{data}/sft_train.jsonl")][300:330]
out = []
for i, r in enumerate(rows):
    msgs = ([{"role": "system", "content": "You sort digits. ✨"}] if i % 3 == 0 else []) + \
           [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]
    o = {"messages": msgs} if i % 4 == 1 else {"prompt": msgs[:-1], "completion": msgs[-1:]}
    out.append(json.dumps(o, ensure_ascii=False) + ("\r\n" if i % 2 else "\n"))
out.insert(10, " \r\n")
open(f"{tmp}/conv_pool.jsonl", "w", encoding="utf-8", newline="").write("".join(out).rstrip("\r\n"))
with open(f"{tmp}/conv_target.jsonl", "w") as f:
    for r in [json.loads(l) for l in open(f"{data}/pairs_train.jsonl")][:10]:
        f.write(json.dumps({"prompt": [{"role": "user", "content": r["prompt"]}],
                            "chosen": [{"role": "assistant", "content": r["chosen"]}],
                            "rejected": [{"role": "assistant", "content": r["rejected"]}]}) + "\n")
PY
POOL="$TMP/conv_pool.jsonl" recipe conv "$TMP/conv" "target: $TMP/conv_target.jsonl, keep_fraction: 0.25"
run_long $BIN run "$TMP/conv.yaml"
expect_exit 0 "zip_fit over conversational lines (messages form, message lists, CRLF) against preference targets"
OUT=$(python3 $REF --pool "$TMP/conv_pool.jsonl" --target "$TMP/conv_target.jsonl" --keep-fraction 0.25 \
      --compare "$TMP/conv/pick" 2>&1)
RC=$?
echo "$OUT"
check "conversational text rules: scores and selection (CRs kept, a newline added) equal the reference" $RC

# ---- (c) the same result for any thread and rank count -------------------------------------------------------
same_run() { cmp -s "$TMP/run1/pick/scores.jsonl" "$1/pick/scores.jsonl" && cmp -s "$TMP/run1/pick/selected.jsonl" "$1/pick/selected.jsonl"; }
run_long $BIN run "$TMP/main.yaml" --set run.threads=2 --set run.output_dir="$TMP/run2"
expect_exit 0 "zip_fit stage with run.threads 2"
same_run "$TMP/run2"; check "run.threads 2: scores.jsonl and selected.jsonl byte-identical to 1 thread" $?
run_long "${MPIRUN[@]}" $BIN run "$TMP/main.yaml" --set run.threads=1 --set run.output_dir="$TMP/mpi"
expect_exit 0 "zip_fit stage under mpirun -np 2"
same_run "$TMP/mpi"; check "2 MPI ranks: scores.jsonl and selected.jsonl byte-identical to 1 process" $?

# ---- (d, e) a later sft stage trains on the selection; a rerun reuses it --------------------------------------
cat > "$TMP/train.yaml" <<YAML
run: {name: select-train, output_dir: $TMP/train, seed: 1}
models:
  tiny: {init: {preset: tiny-llama, seed: 1}, tokenizer: byte, chat_template: plain}
stages:
  - name: pick
    kind: select
    data: {train: $TMP/pool.jsonl}
    select: {method: zip_fit, target: $TMP/target.jsonl, keep_fraction: 0.1}
  - name: sft
    kind: sft
    policy: tiny
    data: {train: pick}
    batch: {global: 8, micro: 4, max_length: 64}
    train: {steps: 3}
    checkpoint: {every_steps: 0}
    log: {every_steps: 1}
YAML
run_long $BIN run "$TMP/train.yaml"
expect_exit 0 "a select stage, then an sft stage with data: {train: pick}"
cmp -s "$TMP/run1/pick/selected.jsonl" "$TMP/train/pick/selected.jsonl"
check "the pipeline's selection equals the single stage's" $?
python3 -c "import json,sys; sys.exit(0 if [j['step'] for j in map(json.loads, open('$TMP/train/metrics.jsonl')) if j.get('stage') == 'sft' and 'loss' in j][-1:] == [3] else 1)"
check "the sft stage trained 3 steps (metrics.jsonl)" $?
expect_output "\\[sft\\] 55 training example" "the sft stage trains on the 55 selected lines"
[ -f "$TMP/train/sft/model/model.safetensors" ]; check "the sft stage saved its model" $?
cp "$TMP/train/pick/selected.jsonl" "$TMP/selected.before"
touch -d '2001-01-01' "$TMP/train/pick/selected.jsonl"
run_long $BIN run "$TMP/train.yaml"
expect_exit 0 "rerun of the same recipe"
expect_output "\[pick\] done earlier" "rerun: the select stage is done earlier"
cmp -s "$TMP/selected.before" "$TMP/train/pick/selected.jsonl" &&
  [ "$(stat -c %Y "$TMP/train/pick/selected.jsonl")" = "$(date -d '2001-01-01' +%s)" ]
check "rerun: selected.jsonl unchanged (not rewritten)" $?

# ---- (f) bad input ------------------------------------------------------------------------------------------
: > "$TMP/empty.jsonl"
recipe bad "$TMP/bad1" "target: $TMP/empty.jsonl, keep: 5"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 3 "an empty target file is a data error"
expect_output "empty.jsonl" "the error names the empty target file"
recipe bad "$TMP/bad2" "target: $TMP/target.jsonl, keep: 553"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 3 "keep 553 with 552 candidates is a data error"
expect_output "pool.jsonl" "the error names the pool file"
expect_output "553" "the error gives the requested keep"
printf '%s\n' '{"prompt": "a", "completion": "b"}' '{"prompt": "c", "completion": "d"}' '{"prompt": "e"}' > "$TMP/nocompl.jsonl"
POOL="$TMP/nocompl.jsonl" recipe bad "$TMP/bad3" "target: $TMP/target.jsonl, keep: 1, text: prompt+completion"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 3 "a pool line without the text field's completion is a data error"
expect_output "nocompl.jsonl:3: completion" "the error names FILE:LINE and the field completion"
printf '%s\n' '{"prompt": "a"}' '{"prompt": "b"}' > "$TMP/prompts_only.jsonl"
POOL="$TMP/prompts_only.jsonl" recipe bad "$TMP/bad4" "target: $TMP/target.jsonl, keep: 1, text: prompt+completion"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 3 "text prompt+completion on a prompts file (no completion on any line) is a data error"
expect_output "prompts_only.jsonl:1: completion" "the error names FILE:LINE and the field completion"
printf '%s\n' '{"prompt": "a", "completion": "b"}' '{"prompt": "c", "completion": ' > "$TMP/badjson.jsonl"
POOL="$TMP/badjson.jsonl" recipe bad "$TMP/bad5" "target: $TMP/target.jsonl, keep: 1"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 3 "an invalid JSON line in the pool is a data error"
expect_output "badjson.jsonl:2" "the error names FILE:LINE"
recipe bad "$TMP/bad6" "target: $TMP/target.jsonl, keep: 1, text: prompt+answer"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 2 "text: prompt+answer (an unknown field) is a recipe error"
expect_output "answer" "the error names the unknown field"
recipe bad "$TMP/bad7" "target: $TMP/target.jsonl, keep: 5, keep_fraction: 0.5"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 2 "keep and keep_fraction both set is a recipe error"
POOL="$TMP/pool.jsonl" recipe bad "$TMP/bad8" "keep: 5"
run_cmd $BIN run "$TMP/bad.yaml"
expect_exit 2 "zip_fit without select.target is a recipe error"
expect_output "select.target" "the error names select.target"
[ ! -e "$TMP/bad6/pick/selected.jsonl" ] && [ ! -e "$TMP/bad2/pick/selected.jsonl" ]
check "nothing selected on errors" $?
finish
