#!/usr/bin/env bash
# Parquet data end to end (issue 19): SFT on the demo's data written as Hub-style Parquet shards (a folder, and a
# glob) trains on exactly the examples of the JSONL file, in the same order (identical metrics); a changed shard
# changes the stage's fingerprint; a folder without .parquet files or a glob that matches nothing is a recipe
# error (exit 2) and a column of the wrong type a data error naming file, row group and row (exit 3).
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
PY=${ALIGNTRAIN_PYTHON:-.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/parquet_sft
rm -rf "$TMP" && mkdir -p "$TMP/shards" "$TMP/empty"
JSONL=config/recipes/data/sft_train.jsonl
"$PY" - "$JSONL" "$TMP" <<'PY'
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
src, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(src) if l.strip()]
table = pa.Table.from_pylist(rows)
step = (len(rows) + 2) // 3
for s in range(3):
    pq.write_table(table.slice(s * step, step), "%s/shards/train-%05d-of-00003.parquet" % (out, s), row_group_size=7)
pq.write_table(pa.table({"prompt": ["a", "b"], "completion": [1.5, 2.5]}), out + "/wrongtype.parquet")
PY
check "pyarrow wrote the shards" $?

train() {  # train NAME DATA [--set ...]
  local name=$1 data=$2; shift 2
  run_long $BIN run test/stages/sft_demo.yaml --set "run.output_dir=$TMP/out-$name" \
    --set "stages.sft.data.train=$data" --set stages.sft.train.steps=3 --set stages.sft.batch.global=4 \
    --set stages.sft.batch.micro=4 "$@"
}

train jsonl "$JSONL"
expect_exit 0 "SFT on JSONL"
train folder "$TMP/shards"
expect_exit 0 "SFT on a folder of Parquet shards"
train glob "$TMP/shards/train-*-of-00003.parquet"
expect_exit 0 "SFT on a glob of Parquet shards"
metrics_without_timing "$TMP/out-jsonl/metrics.jsonl" | grep -v '"event"' > "$TMP/m-jsonl"
for form in folder glob; do
  metrics_without_timing "$TMP/out-$form/metrics.jsonl" | grep -v '"event"' > "$TMP/m-$form"
  [ -s "$TMP/m-$form" ] && cmp -s "$TMP/m-jsonl" "$TMP/m-$form"
  check "$form: the same examples in the same order as JSONL (identical metrics)" $?
done

# The fingerprint covers every shard: after a shard changes, the finished stage no longer matches the recipe.
"$PY" -c 'import pyarrow.parquet as pq, sys
t = pq.read_table(sys.argv[1]); pq.write_table(t.slice(1), sys.argv[1])' "$TMP/shards/train-00001-of-00003.parquet"
train folder "$TMP/shards"
expect_exit 2 "a changed shard: the finished stage is refused"
expect_output "stages.sft.data.train \(file contents\)" "the message names the data as what changed"

train empty "$TMP/empty"
expect_exit 2 "a folder without .parquet files"
expect_output "stages.sft.data.train: not a regular file, and no .parquet files in the folder" "names the field and the folder"
train nomatch "$TMP/shards/nothing-*.parquet"
expect_exit 2 "a glob that matches nothing"
expect_output "stages.sft.data.train: no files match" "names the field and the pattern"
train missing "$TMP/missing.parquet"
expect_exit 2 "a .parquet file that does not exist"
expect_output "stages.sft.data.train: no such file: .*missing.parquet" "names the field and the file"
train wrongtype "$TMP/wrongtype.parquet"
expect_exit 3 "a column of the wrong type"
expect_output "wrongtype.parquet: row group 0, row 0: completion: expected a string" "names file, row group, row and field"
finish
