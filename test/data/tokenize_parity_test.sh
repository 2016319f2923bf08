#!/usr/bin/env bash
# `aligntrain tokenize` against transformers / TRL: scripts/parity/tokenize_reference.py trains a small byte-level BPE
# tokenizer at test time and writes, for >= 8 chat templates (ours in test/data/chat_templates, and TRL's
# *_training.jinja with {% generation %} blocks) x >= 20 conversations each, the ids and loss masks transformers'
# apply_chat_template gives (last turn: TRL's prompt-completion masks; every assistant turn: assistant_masks where
# the template has generation blocks, prefix spans otherwise). Each must equal what `aligntrain tokenize` writes
# (--chat-template FILE.jinja; --assistant-only-loss), text, ids and mask, line by line; conversations with tool calls
# and tool results among them (loss on assistant turns and their calls, never on results). Also: a template whose
# prompt rendering is not a prefix of the whole is refused naming FILE:LINE (exit 2), and bad per-example
# `tools` / `chat_template_kwargs` fields and malformed tool calls are data errors naming FILE:LINE (exit 3).
#
# Under Bazel everything comes from the runfiles. Python: $ALIGNTRAIN_PYTHON, else the repository's .venv. A missing
# Python is a failure, never a skip.
set -uo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then
  root="${TEST_SRCDIR}/${TEST_WORKSPACE:-aligntrain}"
else
  root="$(cd "$(dirname "$0")/../.." && pwd)"
fi
bin="${ALIGNTRAIN_BIN:-$root/aligntrain}"
script="$root/scripts/parity/tokenize_reference.py"
source "$root/test/cli/testlib.sh"

python="${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$script")")/../../.venv/bin/python}"
if [ ! -x "$python" ] || ! "$python" -c 'import tokenizers, transformers, trl' 2>/dev/null; then
  echo "tokenize_parity_test: no Python with tokenizers, transformers and trl at '$python'." >&2
  exit 1
fi

work="${TEST_TMPDIR:-$(mktemp -d)}/tokenize_parity"
mkdir -p "$work"
export HF_HOME="$work/hf" XDG_CACHE_HOME="$work/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
trl_templates="$("$python" -c 'import os, trl; print(os.path.join(os.path.dirname(trl.__file__), "chat_templates"))')"
"$python" "$script" "$root/test/data/chat_templates" "$trl_templates" "$work/ref" > /dev/null || exit 1

compare() {  # compare EXPECTED ACTUAL: same number of lines, each with the same text, input_ids and loss_mask
  "$python" - "$1" "$2" <<'PY'
import json, sys
exp = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
act = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert len(exp) == len(act), f"{len(exp)} expected lines, {len(act)} written"
for i, (e, a) in enumerate(zip(exp, act)):
    assert a["index"] == i, (i, a.get("index"))
    for key in ("text", "input_ids", "loss_mask"):
        assert e[key] == a[key], f"line {i + 1}: {key} differs:\n expected {e[key]!r}\n got      {a[key]!r}"
print(f"{len(exp)} lines equal")
PY
}

templates=0
conversations=0
for dir in "$work"/ref/*/; do
  name="$(basename "$dir")"
  [ -f "$dir/data.jsonl" ] || continue
  templates=$((templates + 1))
  conversations=$((conversations + $(wc -l < "$dir/data.jsonl")))
  for mode in last all; do
    flag=""
    [ "$mode" = all ] && flag="--assistant-only-loss"
    run_cmd "$bin" tokenize --model "$dir/model" --data "$dir/data.jsonl" --chat-template "$dir/template.jinja" \
      --out "$work/$name.$mode.jsonl" $flag
    expect_exit 0 "$name ($mode): tokenize"
    [ "$RC" -eq 0 ] || continue
    OUT="$(compare "$dir/expected_$mode.jsonl" "$work/$name.$mode.jsonl" 2>&1)"
    RC=$?
    check "$name ($mode turn(s)): ids and loss masks equal transformers/TRL" $RC
  done
done
[ "$templates" -ge 8 ]
check "$templates templates, $conversations conversations compared (>= 8 templates)" $?
tool_templates=$("$python" -c 'import json, sys; m = json.load(open(sys.argv[1]))
print(sum(v.get("with_tool_turns", 0) >= 12 for v in m.values()))' "$work/ref/manifest.json")
[ "$tool_templates" -ge 5 ]
check "$tool_templates templates compared on >= 12 conversations with tool calls and tool results each (>= 5)" $?

# A template whose prompt rendering is not a prefix of the whole rendering (Phi-3 shaped: eos after the last turn).
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' \
  > "$work/one.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/chatml_generation/model" --data "$work/one.jsonl" \
  --chat-template "$root/test/data/chat_templates/phi3.jinja"
expect_exit 2 "phi3: prompt not a prefix of the conversation"
expect_output "one.jsonl:1: .*does not start with its rendered prompt" "names the example"

# Per-example template fields: errors name FILE:LINE (exit 3); tools reach the template.
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' \
  '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tools": "get_weather"}' \
  > "$work/bad_tools.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/bad_tools.jsonl"
expect_exit 3 "tools must be a list"
expect_output "bad_tools.jsonl:2: tools: expected a list" "names FILE:LINE and the field"
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "chat_template_kwargs": [1]}' \
  > "$work/bad_kwargs.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/bad_kwargs.jsonl"
expect_exit 3 "chat_template_kwargs must be an object"
expect_output "bad_kwargs.jsonl:1: chat_template_kwargs: expected an object" "names FILE:LINE and the field"
# Tool calls: a malformed one is a data error naming FILE:LINE and the field; a built-in template renders no tool
# turns, so they are a data error with one too.
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' \
  '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": 1}}]}]}' \
  > "$work/bad_call.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/bad_call.jsonl" \
  --chat-template "$root/test/data/chat_templates/qwen25.jinja"
expect_exit 3 "malformed tool call"
expect_output "bad_call.jsonl:2: messages\[1\]\.tool_calls\[0\]\.function\.arguments: expected an object or a JSON string" \
  "names FILE:LINE and the field"
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "yo"}]}' \
  > "$work/tool_turns.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/tool_turns.jsonl" --chat-template chatml
expect_exit 3 "tool turns with a built-in template"
expect_output "tool_turns.jsonl:1: the built-in chat template chatml renders no tool calls or tool results" "names FILE:LINE"
# The built-in chatml renders no tools: a data error naming the line, not a silently different text.
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tools": [{"type": "function", "function": {"name": "f"}}]}' \
  > "$work/tools.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/tools.jsonl" --chat-template chatml
expect_exit 3 "tools with a built-in template"
expect_output "tools.jsonl:1: tools: the built-in chat template chatml renders no tools" "names FILE:LINE"
# A raise_exception of the template on one example: exit 3 with FILE:LINE.
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' \
  '{"messages": [{"role": "assistant", "content": "first"}, {"role": "assistant", "content": "yo"}]}' > "$work/alt.jsonl"
run_cmd "$bin" tokenize --model "$work/ref/llama2/model" --data "$work/alt.jsonl" \
  --chat-template "$root/test/data/chat_templates/llama2.jinja"
expect_exit 3 "template raise_exception"
expect_output "alt.jsonl:2: .*rejects the conversation" "names FILE:LINE"
# --max-length truncates as the stage does (right: the end of the response).
run_cmd "$bin" tokenize --model "$work/ref/qwen25/model" --data "$work/one.jsonl" --chat-template chatml --max-length 6 --truncate left
expect_exit 0 "--max-length"
echo "$OUT" | "$python" -c 'import json,sys; r=json.loads(sys.stdin.readline()); assert len(r["input_ids"]) == 6 == len(r["loss_mask"]), r'
check "--max-length 6: 6 ids and 6 mask entries" $?
finish
