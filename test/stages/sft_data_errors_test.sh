#!/usr/bin/env bash
# Malformed SFT data (DESIGN.md §4, issue 5): each case gets its documented behaviour from `aligntrain run`.
#   invalid JSON, missing field, wrong type, empty completion   exit 3, "FILE:LINE: FIELD: problem", no training
#   a chat message with an unknown role                         exit 3, "FILE:LINE: messages[i].role: unknown role"
#   a malformed tool call                                       exit 3, "FILE:LINE: messages[i].tool_calls[j]...: problem"
#   tool turns with a built-in template (renders none)          exit 3, "FILE:LINE: the built-in chat template ..."
#   tool calls and results with a Jinja template                trains; loss on the assistant turns, not the results
#   empty file                                                  exit 2 from recipe validation, before any model loads
#   over-long example with truncate: drop                       dropped and counted; training goes on
#   over-long prompt with truncate: left / right                 prompt start cut and kept / nothing left: dropped
#   every example over-long with truncate: drop                 exit 3 naming the file
#   data.skip_invalid: true                                     bad lines skipped, count and first line reported
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
TMP=${TEST_TMPDIR:-$(mktemp -d)}/sft_data_errors
rm -rf "$TMP" && mkdir -p "$TMP"
GOOD='{"prompt": "sort 321: ", "completion": "123"}'
good_lines() { for _ in $(seq 1 7); do echo "$GOOD"; done; }
{ good_lines; echo '{"prompt": "x", "completion": }'; } > "$TMP/invalid.jsonl"
{ good_lines; echo '{"prompt": "x"}'; } > "$TMP/missing.jsonl"
{ good_lines; echo '{"prompt": "x", "completion": 5}'; } > "$TMP/wrongtype.jsonl"
{ good_lines; echo '{"prompt": "x", "completion": ""}'; } > "$TMP/emptycompletion.jsonl"
{ good_lines; echo '{"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}, {"role": "assistant", "content": "z"}]}'; } > "$TMP/unknownrole.jsonl"
{ good_lines; echo '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": {}}}]}, {"role": "tool", "content": "y"}, {"role": "assistant", "content": "z"}]}'; } > "$TMP/badcall.jsonl"
{ good_lines; echo '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}, {"role": "tool", "content": "y"}, {"role": "assistant", "content": "z"}]}'; } > "$TMP/toolplain.jsonl"
: > "$TMP/empty.jsonl"
long=$(python3 -c 'print("9" * 200)')
{ good_lines; echo "{\"prompt\": \"$long\", \"completion\": \"1\"}"; } > "$TMP/long.jsonl"
{ echo "{\"prompt\": \"$long\", \"completion\": \"1\"}"; } > "$TMP/alllong.jsonl"
{ good_lines; echo 'not json'; echo '{"prompt": 1, "completion": "2"}'; good_lines; } > "$TMP/mixed.jsonl"

train() {  # train FILE [--set ...]
  local f=$1; shift
  run_long $BIN run test/stages/sft_demo.yaml --set "run.output_dir=$TMP/out-$(basename $f .jsonl)" \
    --set "stages.sft.data.train=$f" --set stages.sft.train.steps=2 --set stages.sft.batch.global=4 \
    --set stages.sft.batch.micro=4 "$@"
}

train "$TMP/invalid.jsonl"
expect_exit 3 "invalid JSON"
expect_output "invalid.jsonl:8: invalid JSON" "names file and line"
[ ! -d "$TMP/out-invalid/checkpoints" ]; check "invalid JSON: nothing trained" $?
train "$TMP/missing.jsonl"
expect_exit 3 "missing field"
expect_output "missing.jsonl:8: completion: missing field" "names file, line and field"
train "$TMP/wrongtype.jsonl"
expect_exit 3 "wrong type"
expect_output "wrongtype.jsonl:8: completion: expected a string" "names file, line, field and the expected type"
train "$TMP/emptycompletion.jsonl"
expect_exit 3 "empty completion"
expect_output "emptycompletion.jsonl:8: completion: empty" "names file, line and field"
train "$TMP/unknownrole.jsonl"
expect_exit 3 "unknown chat role"
expect_output "unknownrole.jsonl:8: messages\[1\]\.role: unknown role 'bot' \(expected system, user, assistant or tool\)" \
  "names file, line, field and the role"
[ ! -d "$TMP/out-unknownrole/checkpoints" ]; check "unknown role: nothing trained" $?
train "$TMP/badcall.jsonl"
expect_exit 3 "malformed tool call"
expect_output "badcall.jsonl:8: messages\[1\]\.tool_calls\[0\]\.function\.name: missing field" "names file, line and field"
train "$TMP/toolplain.jsonl"
expect_exit 3 "tool turns with the built-in plain template"
expect_output "toolplain.jsonl:8: the built-in chat template plain renders no tool calls or tool results" "names file and line"
[ ! -d "$TMP/out-toolplain/checkpoints" ]; check "tool turns with plain: nothing trained" $?
train "$TMP/empty.jsonl"
expect_exit 2 "empty file"
expect_output "stages.sft.data.train: the file is empty" "validation names the field and the file"
train "$TMP/long.jsonl" --set stages.sft.data.truncate=drop
expect_exit 0 "over-long example with truncate: drop trains on the rest"
expect_output "long.jsonl: 0 example\(s\) truncated \(drop\), 1 dropped, to max_length 64" "the drop is counted"
train "$TMP/long.jsonl" --set stages.sft.data.truncate=left --fresh
expect_exit 0 "over-long prompt with truncate: left"
expect_output "1 example\(s\) truncated \(left\), 0 dropped" "the prompt is cut from the left and the example kept"
train "$TMP/long.jsonl" --set stages.sft.data.truncate=right --fresh
expect_exit 0 "over-long prompt with truncate: right"
expect_output "1 example\(s\) truncated \(right\), 1 dropped" "cutting the end leaves no completion: counted and dropped"
train "$TMP/alllong.jsonl" --set stages.sft.data.truncate=drop
expect_exit 3 "every example dropped"
expect_output "alllong.jsonl: no usable example" "names the file"
train "$TMP/mixed.jsonl"
expect_exit 3 "bad lines without skip_invalid"
train "$TMP/mixed.jsonl" --set stages.sft.data.skip_invalid=true
expect_exit 0 "skip_invalid trains on the valid lines"
expect_output "mixed.jsonl: skipped 2 invalid line\(s\) of 16 .*mixed.jsonl:8" "skipped count and the first bad line reported"

# Conversations with tool calls and tool results train through a Jinja template, with the loss on every assistant
# turn (a tool call is one) and none on the tool results: the eval's loss tokens are exactly the assistant turns'.
expected_tokens=$(python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
with open(f"{tmp}/tools.jinja", "w") as f:
    f.write("{% for m in messages %}<|im_start|>{{ m.role }}{{ '\\n' }}{% if m.content %}{{ m.content }}{% endif %}"
            "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}"
            "<|im_end|>{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}")
tokens = 0
with open(f"{tmp}/tooldata.jsonl", "w") as f:
    for i in range(16):
        digits = " ".join(str((i * 7 + k * 3) % 10) for k in range(4))
        answer = " ".join(sorted(digits.split()))
        function = {"name": "sort", "arguments": {"digits": digits}}
        f.write(json.dumps({"messages": [
            {"role": "user", "content": "sort " + digits},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": function}]},
            {"role": "tool", "name": "sort", "content": answer},
            {"role": "assistant", "content": answer}]}) + "\n")
        # Byte tokenizer: one token a byte, <|im_end|> one token; each assistant turn ends with <|im_end|> "\n".
        tokens += len(f"<tool_call>{json.dumps(function)}</tool_call>".encode()) + 2 + len(answer) + 2
print(tokens)
PY
)
train "$TMP/tooldata.jsonl" --set "models.tiny.chat_template=$TMP/tools.jinja" \
  --set stages.sft.data.assistant_only_loss=true --set "stages.sft.data.eval=$TMP/tooldata.jsonl" \
  --set stages.sft.batch.max_length=256 --set stages.sft.batch.max_prompt_length=200
expect_exit 0 "SFT on conversations with tool calls and tool results"
tt=$(metric "$TMP/out-tooldata/metrics.jsonl" sft 0 eval/tokens)
py_check "$tt == $expected_tokens"
check "loss on the assistant turns and their tool calls only ($tt tokens, expected $expected_tokens)" $?
finish
