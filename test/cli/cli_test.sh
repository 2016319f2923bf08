#!/usr/bin/env bash
# The aligntrain command line on one process: help, version, exit codes, validate / run / plan on the example
# recipes, and precise errors for broken recipes and arguments.
set -u
source test/cli/testlib.sh
BIN=./aligntrain
TMP=${TEST_TMPDIR:-$(mktemp -d)}

run_cmd $BIN --help
expect_exit 0 "--help"
for sub in run validate plan init-model logprobs generate export report; do
  expect_output "$sub" "--help lists $sub"
done

run_cmd $BIN --version
expect_exit 0 "--version"
expect_output '^aligntrain [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]+(-dirty)?|unknown, LibTorch 2\.11' "--version names git revision and LibTorch"

run_cmd $BIN
expect_exit 2 "no subcommand is a usage error"
run_cmd $BIN frobnicate
expect_exit 2 "unknown subcommand is a usage error"
run_cmd $BIN validate
expect_exit 2 "validate without a recipe"
run_cmd $BIN validate --help
expect_exit 0 "validate --help"
expect_output "--set" "validate --help documents --set"

# log.tensorboard: a boolean of training stages, false unless set.
run_cmd $BIN validate config/recipes/sft.yaml
expect_output "^      tensorboard: false" "the resolved recipe shows log.tensorboard (default false)"
run_cmd $BIN validate config/recipes/sft.yaml --set stages.0.log.tensorboard=true
expect_exit 0 "log.tensorboard: true is valid"
expect_output "^      tensorboard: true" "and resolved"
run_cmd $BIN validate config/recipes/sft.yaml --set stages.0.log.tensorboard=sometimes
expect_exit 2 "log.tensorboard must be a boolean"
expect_output "stages\.sft\.log\.tensorboard: expected true or false, got .sometimes." "the error names the key and the value"

for r in config/recipes/*.yaml; do
  run_cmd $BIN validate "$r"
  expect_exit 0 "validate $r"
  expect_output '^stages:' "validate $r prints the resolved recipe"
done

run_cmd $BIN validate config/recipes/demo.yaml --set run.seed=777
expect_exit 0 "validate with --set"
expect_output 'seed: 777' "--set value appears in the resolved recipe"

run_cmd $BIN validate config/recipes/demo.yaml --set run.sed=1
expect_exit 2 "--set with an unknown key"
expect_output 'run\.sed' "--set error names the key"
expect_output 'seed' "--set error suggests the nearest key"

run_cmd $BIN validate does/not/exist.yaml
expect_exit 2 "missing recipe file"
expect_output 'does/not/exist.yaml' "missing recipe error names the file"

printf 'run:\n  name: x\n  sed: 3\nstages: []\n' > "$TMP/bad.yaml"
run_cmd $BIN validate "$TMP/bad.yaml"
expect_exit 2 "recipe with an unknown key"
expect_output 'bad.yaml:3:[0-9]+: .*run\.sed' "error names file:line and key path"
expect_output 'did you mean .seed' "error suggests the nearest key"
expect_no_output 'terminate|Aborted|stack' "no crash or stack trace"

printf 'this: [is: not\n' > "$TMP/notyaml.yaml"
run_cmd $BIN validate "$TMP/notyaml.yaml"
expect_exit 2 "not YAML"
expect_output 'notyaml.yaml:[0-9]+' "YAML syntax error names file:line"

out_dir="$TMP/run-out"
cat > "$TMP/two_steps.yaml" <<YAML
run: {name: two_steps}
models:
  tiny: {init: {preset: tiny-llama, seed: 1}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $PWD/config/recipes/data/sft_train.jsonl}
    batch: {global: 8, micro: 8, max_length: 64}
    train: {steps: 2}
YAML
run_cmd $BIN run "$TMP/two_steps.yaml" --set "run.output_dir=$out_dir"
[ -f "$out_dir/recipe.resolved.yaml" ]
check "run writes output_dir/recipe.resolved.yaml" $?
[ -f "$out_dir/aligntrain.log" ]
check "run writes output_dir/aligntrain.log" $?
run_cmd $BIN validate "$out_dir/recipe.resolved.yaml"
expect_exit 0 "the resolved recipe validates again"

run_cmd $BIN validate config/recipes/demo.yaml --set parallel.tensor=2 --set stages.sft.batch.micro=4
expect_exit 2 "tensor 2 with the tiny preset's odd vocabulary (261)"
expect_output 'demo.yaml:[0-9]+:[0-9]+: models.tiny: vocab_size \(261\) is not divisible by parallel.tensor \(2\)' "names the model, its line and the size"

run_cmd $BIN validate config/recipes/demo.yaml --set models.tiny.init.preset=huge-llama
expect_exit 2 "unknown preset"
expect_output 'models.tiny.init: unknown model preset .huge-llama.' "names the preset and the model"

run_cmd $BIN plan config/recipes/demo.yaml --world-size 4
expect_exit 0 "plan --world-size 4"
expect_output 'world size 4 = tensor [0-9]+ x data [0-9]+' "plan prints the rank layout"
expect_output "student_sft +sft +student +109184 +32 +8 +1 +64 +1\\.7 +0\\.0 +0\\.6 +0\\.0" "plan prints parameters, memory and DP/TP traffic per stage"
expect_output "student_kd +distill +student_sft +109184 +32 +8 +1 +64 +1\\.7 +0\\.8 +0\\.6 +0\\.0" "plan counts a distill stage's resident teacher as frozen memory"

run_cmd $BIN export "$TMP/no-such-checkpoint" --out "$TMP/o"
expect_exit 3 "export of a missing checkpoint folder"
expect_output 'no-such-checkpoint: no such checkpoint folder' "export names the folder"

run_cmd $BIN generate --model m --prompts "$TMP/no-such-prompts.jsonl" --out "$TMP/o.jsonl"
expect_exit 3 "generate with a missing prompts file"
expect_output "no-such-prompts.jsonl: cannot open data file" "generate names the missing file"

# Chat templates and roles (exit codes as README promises): a model template that is none of the built-in ones renders
# through the Jinja engine; one that does not compile is a usage error naming the model folder and the template's
# line, but only for conversational data; an unknown role is a data error naming FILE:LINE.
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/inst-model"
expect_exit 0 "init-model for the chat-template checks"
cp -r "$TMP/inst-model" "$TMP/broken-model"
python3 - "$TMP/inst-model/tokenizer_config.json" "$TMP/broken-model/tokenizer_config.json" <<'PY'
import json, sys
for path, template in [(sys.argv[1], "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"),
                       (sys.argv[2], "{% for m in messages %}\n[INST] {{ m['content'] | nosuchfilter }}{% endfor %}")]:
    config = json.load(open(path))
    config["chat_template"] = template
    json.dump(config, open(path, "w"))
PY
echo '{"prompt": [{"role": "user", "content": "1+1"}], "completion": [{"role": "assistant", "content": "2"}]}' > "$TMP/chat.jsonl"
echo '{"prompt": "1+1=", "completion": "2"}' > "$TMP/plain.jsonl"
run_cmd $BIN logprobs --model "$TMP/inst-model" --data "$TMP/chat.jsonl"
expect_exit 0 "conversational data with a model chat template that is none of the built-in ones (Jinja engine)"
run_cmd $BIN logprobs --model "$TMP/broken-model" --data "$TMP/chat.jsonl"
expect_exit 2 "conversational data with a model chat template that does not compile"
expect_output "the chat template of the model in $TMP/broken-model: chat template line 2, column" "names the model folder and the line"
expect_output "No filter named 'nosuchfilter'" "says what is wrong"
run_cmd $BIN logprobs --model "$TMP/broken-model" --data "$TMP/plain.jsonl"
expect_exit 0 "plain-text data needs no chat template"
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/plain-model"
{ echo '{"prompt": [{"role": "user", "content": "1+1"}], "completion": [{"role": "assistant", "content": "2"}]}'
  echo '{"prompt": [{"role": "robot", "content": "1+1"}], "completion": [{"role": "assistant", "content": "2"}]}'; } > "$TMP/role.jsonl"
run_cmd $BIN logprobs --model "$TMP/plain-model" --data "$TMP/role.jsonl"
expect_exit 3 "a chat message with an unknown role"
expect_output "role.jsonl:2: prompt\[0\]\.role: unknown role 'robot'" "names file, line, field and the role"

# One of several srun tasks without PMIx (srun --mpi=none; the variables srun sets) refuses instead of training alone
# into the shared output folder; a single srun task runs alone as usual. (test/cluster/slurm_test.sh runs the real srun.)
run_cmd env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=0 $BIN validate config/recipes/sft.yaml
expect_exit 2 "task 0 of 2 srun tasks without PMIx"
expect_output "one of 2 tasks without MPI process management .*srun --mpi=pmix" "the error says how to launch"
run_cmd env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 $BIN validate config/recipes/sft.yaml
expect_exit 2 "task 1 of 2 srun tasks without PMIx"
expect_no_output "error" "only task 0 prints the error"
run_cmd env SLURM_STEP_NUM_TASKS=1 SLURM_PROCID=0 $BIN validate config/recipes/sft.yaml
expect_exit 0 "a single srun task runs alone"

finish
