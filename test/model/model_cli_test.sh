#!/usr/bin/env bash
# `aligntrain init-model` and the model-file / data errors of `aligntrain logprobs`:
#   * init-model for every preset writes an HF model dir that transformers loads (no missing, unexpected or
#     mismatched tensors) with the parameter count aligntrain printed; the same seed gives a byte-identical
#     model.safetensors, another seed a different one;
#   * usage errors: unknown preset (exit 2, lists the presets), --preset and --config together or neither (2),
#     a tokenizer larger than the model's vocabulary (2); an unsupported architecture in --config (3, names the
#     file and model_type);
#   * logprobs on broken model dirs (each exit 3, naming the file and, where there is one, the tensor; never a crash):
#     truncated / empty safetensors, header length past the end, non-JSON header, out-of-bounds, size-inconsistent
#     and overlapping data_offsets, unknown dtype, shape disagreeing with config.json, missing and extra tensors, a
#     header entry missing (its data left in place), unsupported / non-JSON / missing config.json, missing
#     model.safetensors, missing or broken tokenizer files;
#   * logprobs on broken data (exit 3, naming file:line and the field): invalid JSON, missing field, wrong type,
#     not an object, empty file, missing file.
#
# Under Bazel the cwd is the runfiles root. By hand, from the repository root:
#   ALIGNTRAIN_BIN=bazel-bin/aligntrain ALIGNTRAIN_PYTHON=.venv/bin/python test/model/model_cli_test.sh
set -u
source test/cli/testlib.sh
BIN=${ALIGNTRAIN_BIN:-./aligntrain}
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f test/cli/testlib.sh)")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/model_cli
rm -rf "$TMP" && mkdir -p "$TMP"
PRESETS="tiny-llama tiny-llama-4l tiny-qwen2 tiny-qwen3 small-llama"
CRASH='terminate called|Segmentation|Aborted|core dumped|std::|what\(\)'

if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, tokenizers, safetensors' 2>/dev/null; then
  echo "model_cli_test: no Python with torch, transformers, tokenizers and safetensors at '$PY'." >&2
  echo "Run scripts/setup.sh, or pass one: bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python" >&2
  exit 1
fi
# The Python steps load torch + transformers: allow them more than run_cmd's 60 s on a busy 2-core machine.
run_py() {
  OUT=$(timeout 300 "$PY" "$@" 2>&1)
  RC=$?
}
export HF_HOME="$TMP/hf" XDG_CACHE_HOME="$TMP/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1

# --- init-model ---------------------------------------------------------------------------------------------------
: > "$TMP/param_counts.txt"
for p in $PRESETS; do
  run_cmd $BIN init-model --preset "$p" --out "$TMP/presets/$p" --seed 7
  expect_exit 0 "init-model --preset $p"
  expect_output "\(([0-9]+) parameters" "init-model $p prints its parameter count"
  n=$(echo "$OUT" | sed -nE 's/.*\(([0-9]+) parameters.*/\1/p' | head -n 1)
  echo "$p ${n:-unknown}" >> "$TMP/param_counts.txt"
  for f in config.json model.safetensors generation_config.json tokenizer_config.json aligntrain_tokenizer.json; do
    test -f "$TMP/presets/$p/$f"
    check "init-model $p writes $f" $?
  done
done

run_cmd $BIN init-model --preset tiny-llama --out "$TMP/seed1a" --seed 1
expect_exit 0 "init-model --seed 1"
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/seed1b" --seed 1
expect_exit 0 "init-model --seed 1 again"
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/seed2" --seed 2
expect_exit 0 "init-model --seed 2"
cmp -s "$TMP/seed1a/model.safetensors" "$TMP/seed1b/model.safetensors"
check "same seed -> byte-identical model.safetensors" $?
! cmp -s "$TMP/seed1a/model.safetensors" "$TMP/seed2/model.safetensors"
check "different seed -> different model.safetensors" $?
cmp -s "$TMP/seed1a/config.json" "$TMP/seed2/config.json"
check "the seed does not change config.json" $?

run_cmd $BIN init-model --preset tiny-lama --out "$TMP/nope"
expect_exit 2 "unknown preset"
expect_output 'tiny-lama' "unknown preset error names it"
for p in $PRESETS; do expect_output "$p" "unknown preset error lists $p"; done
expect_no_output "$CRASH" "unknown preset: no crash"
test ! -e "$TMP/nope/model.safetensors"
check "unknown preset writes no model" $?

run_cmd $BIN init-model --out "$TMP/nope"
expect_exit 2 "init-model without --preset or --config"
run_cmd $BIN init-model --preset tiny-llama --config "$TMP/presets/tiny-llama/config.json" --out "$TMP/nope"
expect_exit 2 "init-model with both --preset and --config"
run_cmd $BIN init-model --preset tiny-llama
expect_exit 2 "init-model without --out"

mkdir -p "$TMP/gpt2"
cat > "$TMP/gpt2/config.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 300, "n_embd": 64, "n_layer": 2,
 "n_head": 4, "n_positions": 128}
EOF
run_cmd $BIN init-model --config "$TMP/gpt2/config.json" --out "$TMP/nope"
expect_exit 3 "init-model --config with model_type gpt2"
expect_output 'gpt2/config\.json' "unsupported architecture error names config.json"
expect_output 'model_type' "unsupported architecture error names model_type"
expect_output 'gpt2' "unsupported architecture error names the architecture"
expect_no_output "$CRASH" "unsupported architecture: no crash"

run_cmd $BIN init-model --config "$TMP/does-not-exist/config.json" --out "$TMP/nope"
expect_exit 3 "init-model --config with a missing file"
expect_output 'does-not-exist/config\.json' "missing --config error names the file"

# --- fixtures: transformers loads every preset; broken model dirs; a BPE tokenizer; broken data -----------------
run_py - "$TMP" <<'EOF'
import json, os, shutil, struct, sys

tmp = sys.argv[1]
presets = os.path.join(tmp, "presets")

# 1. transformers loads every preset; parameter counts (tied embeddings counted once).
import torch
from transformers import AutoModelForCausalLM
with open(os.path.join(tmp, "hf_counts.txt"), "w") as out:
    for line in open(os.path.join(tmp, "param_counts.txt")):
        name = line.split()[0]
        model, info = AutoModelForCausalLM.from_pretrained(os.path.join(presets, name), dtype=torch.float32,
                                                           output_loading_info=True)
        problems = {k: sorted(v) for k, v in info.items() if v}
        count = sum(p.numel() for p in model.parameters())
        out.write(f"{name} {count} {json.dumps(problems, separators=(',', ':'))}\n")

# 2. Broken copies of tiny-llama.
src = os.path.join(presets, "tiny-llama")
bad = os.path.join(tmp, "bad")


def variant(name):
    d = os.path.join(bad, name)
    shutil.copytree(src, d)
    return d


def st(d):
    return os.path.join(d, "model.safetensors")


raw = open(st(src), "rb").read()
hlen = struct.unpack("<Q", raw[:8])[0]
header, data = json.loads(raw[8:8 + hlen]), raw[8 + hlen:]
Q = "model.layers.0.self_attn.q_proj.weight"
by_offset = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
assert header[Q]["dtype"] == "F32" and len(header[Q]["shape"]) == 2


def with_header(name, edit):
    h = json.loads(json.dumps(header))
    edit(h)
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    open(st(variant(name)), "wb").write(struct.pack("<Q", len(text)) + text + data)


open(st(variant("truncated")), "wb").write(raw[: len(raw) // 2])
open(st(variant("empty_file")), "wb").write(b"")
open(st(variant("header_past_end")), "wb").write(struct.pack("<Q", len(raw) * 4) + raw[8:])
open(st(variant("header_not_json")), "wb").write(raw[:8] + b"{not json" + b" " * (hlen - 9) + raw[8 + hlen:])
size = header[Q]["data_offsets"][1] - header[Q]["data_offsets"][0]
# The last tensor in the buffer grows by 16 rows past its end (shape and offsets agree; no hole).
last = by_offset[-1]
row_bytes = 4 * (header[last]["shape"][1] if len(header[last]["shape"]) == 2 else 1)
assert header[last]["dtype"] == "F32" and header[last]["data_offsets"][1] == len(data)
open(os.path.join(tmp, "last_tensor.txt"), "w").write(last)
with_header("offsets_out_of_bounds", lambda h: h[last].update(
    shape=[h[last]["shape"][0] + 16] + h[last]["shape"][1:],
    data_offsets=[h[last]["data_offsets"][0], h[last]["data_offsets"][1] + 16 * row_bytes]))
# One tensor moved past the end of the buffer: it leaves a hole where it was, but the error names it.
with_header("offsets_moved_past_end", lambda h: h[Q].__setitem__("data_offsets", [len(data) + 64, len(data) + 64 + size]))
# One tensor's header entry removed, its data left in place: a hole between its neighbours, blaming neither.
with_header("entry_missing", lambda h: h.pop(Q))
with_header("offsets_wrong_size", lambda h: h[Q].__setitem__("data_offsets", [h[Q]["data_offsets"][0], h[Q]["data_offsets"][1] - 4]))
first, second = by_offset[0], by_offset[1]
with_header("offsets_overlap", lambda h: h[second].__setitem__("data_offsets", [o - 64 for o in h[second]["data_offsets"]]))
with_header("bad_dtype", lambda h: h[Q].__setitem__("dtype", "F33"))
with_header("shape_mismatch", lambda h: h[Q].__setitem__("shape", [h[Q]["shape"][0] // 2, h[Q]["shape"][1] * 2]))

from safetensors.torch import load_file, save_file
tensors = load_file(st(src))
save_file({k: v for k, v in tensors.items() if k != Q}, st(variant("missing_tensor")), metadata={"format": "pt"})
save_file({**tensors, "model.layers.0.self_attn.extra.weight": torch.zeros(4, 4)}, st(variant("extra_tensor")),
          metadata={"format": "pt"})
os.remove(st(variant("no_safetensors")))

cfg = json.load(open(os.path.join(src, "config.json")))
json.dump({**cfg, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]},
          open(os.path.join(variant("config_unsupported"), "config.json"), "w"))
open(os.path.join(variant("config_not_json"), "config.json"), "w").write('{"model_type": "llama", ')
os.remove(os.path.join(variant("config_missing"), "config.json"))
os.remove(os.path.join(variant("tokenizer_missing"), "aligntrain_tokenizer.json"))
open(os.path.join(variant("tokenizer_not_json"), "aligntrain_tokenizer.json"), "w").write("nope")
d = variant("tokenizer_json_not_json")
os.remove(os.path.join(d, "aligntrain_tokenizer.json"))
open(os.path.join(d, "tokenizer.json"), "w").write('{"model": {"type": "BPE", ')

# 3. A BPE tokenizer with more tokens than the presets' 261.
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
lines = [l for f in ("sft_train", "pairs_train") for l in open(f"config/recipes/data/{f}.jsonl")]
tok.train_from_iterator(lines, trainer=trainer)
os.makedirs(os.path.join(tmp, "bpe400"))
tok.save(os.path.join(tmp, "bpe400", "tokenizer.json"))
json.dump({"bos_token": None, "eos_token": "<|endoftext|>"}, open(os.path.join(tmp, "bpe400", "tokenizer_config.json"), "w"))
print("bpe400 vocab", tok.get_vocab_size())
EOF
echo "$OUT" | grep -v '^Loading weights'
expect_exit 0 "fixtures built (transformers loaded every preset)"

for p in $PRESETS; do
  ours=$(awk -v p="$p" '$1 == p {print $2}' "$TMP/param_counts.txt")
  line=$(awk -v p="$p" '$1 == p' "$TMP/hf_counts.txt" 2>/dev/null)
  theirs=$(echo "$line" | awk '{print $2}')
  problems=$(echo "$line" | awk '{print $3}')
  OUT="aligntrain: $ours; transformers: $line"
  [ -n "$ours" ] && [ "$ours" = "$theirs" ]
  check "transformers loads $p with the parameter count aligntrain printed ($ours)" $?
  [ "$problems" = "{}" ]
  check "transformers loads $p with no missing, unexpected or mismatched tensors" $?
done

run_cmd $BIN init-model --preset tiny-llama --tokenizer "$TMP/bpe400" --out "$TMP/nope"
expect_exit 2 "init-model --tokenizer with more tokens than the model's vocab_size"
expect_output 'bpe400' "vocab error names the tokenizer"
expect_output '261' "vocab error names the model's vocab_size"
run_cmd $BIN init-model --preset tiny-llama --tokenizer "$TMP/does-not-exist" --out "$TMP/nope"
[ "$RC" -eq 2 ] || [ "$RC" -eq 3 ]
check "init-model --tokenizer with a missing folder (exit 2 or 3, got $RC)" $?
expect_output 'does-not-exist' "missing tokenizer folder error names it"

# --- logprobs on broken model dirs --------------------------------------------------------------------------------
printf '{"prompt": "1 + 1 =", "completion": " 2"}\n{"prompt": "2 + 2 =", "completion": " 4"}\n' > "$TMP/ok.jsonl"
run_cmd $BIN logprobs --model "$TMP/presets/tiny-llama" --data "$TMP/ok.jsonl"
expect_exit 0 "logprobs on the intact model (baseline for the broken copies)"

Q='model\.layers\.0\.self_attn\.q_proj\.weight'
LAST=$(sed 's/\./\\./g' "$TMP/last_tensor.txt" 2>/dev/null)
# name | regex for the file the message must name | regex for the tensor (or -) | extra regex (or -)
while IFS='|' read -r name file tensor extra; do
  run_cmd $BIN logprobs --model "$TMP/bad/$name" --data "$TMP/ok.jsonl"
  expect_exit 3 "logprobs on a model dir with $name"
  expect_output "bad/$name/?$file" "$name: the message names the file"
  [ "$tensor" = "-" ] || expect_output "$tensor" "$name: the message names the tensor"
  [ "$extra" = "-" ] || expect_output "$extra" "$name: the message says what is wrong"
  expect_no_output "$CRASH" "$name: no crash or stack dump"
done <<EOF
truncated|model\.safetensors|"model\.|truncated|past the end
empty_file|model\.safetensors|-|0 bytes|too short
header_past_end|model\.safetensors|-|header
header_not_json|model\.safetensors|-|JSON
offsets_out_of_bounds|model\.safetensors|$LAST|past the|out of bounds|beyond|exceeds
offsets_moved_past_end|model\.safetensors|$Q|end past the data buffer
entry_missing|model\.safetensors|-|entry missing from the header
offsets_wrong_size|model\.safetensors|$Q|data_offsets
offsets_overlap|model\.safetensors|"model\.|overlap
bad_dtype|model\.safetensors|$Q|F33
shape_mismatch|model\.safetensors|$Q|shape
missing_tensor||$Q|missing
extra_tensor||model\.layers\.0\.self_attn\.extra\.weight|unexpected
no_safetensors|(model\.safetensors)?|-|model\.safetensors
config_unsupported|config\.json|-|model_type.*gpt2|gpt2.*model_type
config_not_json|config\.json|-|JSON
config_missing|config\.json|-|-
tokenizer_missing||-|tokenizer
tokenizer_not_json|aligntrain_tokenizer\.json|-|JSON
tokenizer_json_not_json|tokenizer\.json|-|JSON
EOF

run_cmd $BIN logprobs --model "$TMP/does-not-exist" --data "$TMP/ok.jsonl"
expect_exit 3 "logprobs on a missing model dir"
expect_output 'does-not-exist' "missing model dir error names it"

# --- logprobs on broken data --------------------------------------------------------------------------------------
D="$TMP/data" && mkdir -p "$D"
printf '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n' > "$D/invalid_json.jsonl"
printf '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n' > "$D/missing_completion.jsonl"
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n' > "$D/missing_rejected.jsonl"
printf '{"prompt": "a", "completion": "b"}\n{"prompt": 5, "completion": "b"}\n' > "$D/prompt_number.jsonl"
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b", "rejected": null}\n' > "$D/rejected_null.jsonl"
printf '{"prompt": "a", "completion": "b"}\n[1, 2]\n' > "$D/not_object.jsonl"
: > "$D/empty.jsonl"
printf '\n\n' > "$D/blank_lines.jsonl"
# file | line (or -) | field regex (or -)
while IFS='|' read -r name line field; do
  run_cmd $BIN logprobs --model "$TMP/presets/tiny-llama" --data "$D/$name.jsonl"
  expect_exit 3 "logprobs on data with $name"
  if [ "$line" = "-" ]; then
    expect_output "$name\.jsonl" "$name: the message names the file"
  else
    expect_output "$name\.jsonl:$line\b" "$name: the message names file:line"
  fi
  [ "$field" = "-" ] || expect_output "$field" "$name: the message names the field"
  expect_no_output "$CRASH" "$name: no crash or stack dump"
done <<'EOF'
invalid_json|2|JSON
missing_completion|3|completion
missing_rejected|2|rejected
prompt_number|2|prompt
rejected_null|2|rejected
not_object|2|object
empty|-|empty|no examples
blank_lines|-|empty|no examples
EOF

run_cmd $BIN logprobs --model "$TMP/presets/tiny-llama" --data "$D/does-not-exist.jsonl"
expect_exit 3 "logprobs on a missing data file"
expect_output 'does-not-exist\.jsonl' "missing data file error names it"

# --- logprobs usage errors ----------------------------------------------------------------------------------------
run_cmd $BIN logprobs --data "$TMP/ok.jsonl"
expect_exit 2 "logprobs without --model"
run_cmd $BIN logprobs --model "$TMP/presets/tiny-llama"
expect_exit 2 "logprobs without --data"
run_cmd $BIN logprobs --model "$TMP/presets/tiny-llama" --data "$TMP/ok.jsonl" --batch-size 0
expect_exit 2 "logprobs --batch-size 0"
expect_output 'batch-size' "--batch-size 0 error names the option"

finish
