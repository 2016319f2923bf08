#!/usr/bin/env bash
# Llama 2 and Mistral model folders with SentencePiece-style tokenizers, end to end. Random tiny weights saved by
# transformers (LlamaForCausalLM, MistralForCausalLM); tokenizers built at test time by
# scripts/make_spm_test_tokenizer.py: a Llama-2-shaped tokenizer.json (Prepend + Replace normalizer, byte_fallback,
# added tokens), a Mistral-shaped one (Metaspace prepend_scheme first), and a folder with only a tokenizer.model
# made by the sentencepiece trainer. Each folder ships a Llama 2 [INST] chat template. For each:
#  - `aligntrain logprobs --tokens` equals transformers' (scripts/parity/logprobs_reference.py, fp32) per token,
#    sum and mean within 1e-5 of max(1, |reference|), with identical n_tokens, on the sft and pairs eval files;
#  - `aligntrain generate` (greedy) equals transformers' greedy generate() token for token
#    (one prompt at a time, as scripts/parity/generate_reference.py does);
#  - a 5-step SFT on conversational data (messages, rendered with the folder's template) runs and writes its model.
#
# Under Bazel the cwd is the runfiles root. By hand, from the repository root:
#   ALIGNTRAIN_BIN=bazel-bin/aligntrain ALIGNTRAIN_PYTHON=.venv/bin/python test/model/spm_models_test.sh
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
BIN=${ALIGNTRAIN_BIN:-./aligntrain}
REF=scripts/parity/logprobs_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/spm_models
rm -rf "$TMP" && mkdir -p "$TMP"
DATA=$(cd config/recipes/data && pwd)

if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, tokenizers, sentencepiece' 2>/dev/null; then
  echo "spm_models_test: no Python with torch, transformers, tokenizers and sentencepiece at '$PY'." >&2
  echo "Run scripts/setup.sh, or pass one: bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python" >&2
  exit 1
fi
run_py() {
  OUT=$(timeout 300 "$PY" "$@" 2>&1)
  RC=$?
}
export HF_HOME="$TMP/hf" XDG_CACHE_HOME="$TMP/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1

# --- model folders, data --------------------------------------------------------------------------------------------
run_py - "$TMP" "$DATA" <<'EOF'
import json, os, random, sys
sys.path.insert(0, "scripts")
import make_spm_test_tokenizer as m
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig

tmp, data = sys.argv[1], sys.argv[2]
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
lines = list(m.base.corpus(random.Random(5), 4000))
vocab, merges = m.train_vocab(lines, 700)
specs = m.variant_specs(vocab, merges)


def save(name, config_class, vocab_size, seed, tokenizer_files, **extra):
    cfg = config_class(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **extra)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.mul_(5.0)  # sharper distributions than the 0.02 init
    out = os.path.join(tmp, name)
    model.save_pretrained(out)
    for fname, content in tokenizer_files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(out, fname), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False, indent=1))


for name, config_class, seed, extra in [("llama2", LlamaConfig, 11, {}),
                                         ("mistral", MistralConfig, 12, {"sliding_window": None})]:
    spec, config = specs[name]
    size = max(list(spec["model"]["vocab"].values()) + [t["id"] for t in spec["added_tokens"]]) + 1
    save(name, config_class, size, seed, {"tokenizer.json": spec,
                                          "tokenizer_config.json": dict(config, chat_template=LLAMA2_TEMPLATE)}, **extra)
model_bytes = m.train_sentencepiece(lines, 1000)
save("llama2-spm", LlamaConfig, 1000, 13, {
    "tokenizer.model": model_bytes,
    "tokenizer_config.json": {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                              "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": False,
                              "chat_template": LLAMA2_TEMPLATE}})

# Conversational SFT data, and prompts for generate (with text outside the vocabulary: byte fallback).
rows = [json.loads(line) for line in open(os.path.join(data, "sft_train.jsonl"))][:64]
with open(os.path.join(tmp, "chat.jsonl"), "w", encoding="utf-8") as f:
    for i, r in enumerate(rows):
        messages = ([{"role": "system", "content": "Réponds brièvement 😀"}] if i % 4 == 0 else []) + [
            {"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]
        f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
with open(os.path.join(tmp, "prompts.jsonl"), "w", encoding="utf-8") as f:
    for i, r in enumerate(rows[:6] + [{"prompt": "日本語で 👨‍👩‍👧  two  spaces\n"}, {"prompt": " leading [INST] x"}]):
        f.write(json.dumps({"prompt": r["prompt"], "id": i}, ensure_ascii=False) + "\n")
print("fixtures written")
EOF
expect_exit 0 "tokenizers and transformers models are built (llama2, mistral, llama2-spm)"

MODELS="llama2 mistral llama2-spm"
CASES=""
for m in $MODELS; do
  for data in sft_eval pairs_eval; do
    run_long $BIN logprobs --model "$TMP/$m" --data "$DATA/$data.jsonl" --out "$TMP/$m.$data.jsonl" --tokens
    expect_exit 0 "logprobs $m $data"
    CASES+="$TMP/$m|$DATA/$data.jsonl|$TMP/$m.$data.jsonl|$m $data"$'\n'
  done
  run_long $BIN generate --model "$TMP/$m" --prompts "$TMP/prompts.jsonl" --out "$TMP/$m.gen.jsonl" --token-ids \
    --temperature 0 --max-new-tokens 12 --batch-size 4
  expect_exit 0 "generate $m (greedy)"
  cat > "$TMP/$m.yaml" <<YAML
run: {name: spm-$m, output_dir: $TMP/run-$m, seed: 3}
models:
  base: {path: $TMP/$m}   # chat_template auto: the folder's Llama 2 [INST] template
stages:
  - name: sft
    kind: sft
    policy: base
    data: {train: $TMP/chat.jsonl}
    optimizer: {lr: 1.0e-3, betas: [0.9, 0.95]}
    batch: {global: 8, micro: 4, max_length: 128}
    train: {steps: 5}
    checkpoint: {every_steps: 0}
    log: {every_steps: 1}
YAML
  run_long $BIN run "$TMP/$m.yaml"
  expect_exit 0 "5-step SFT of $m on conversational data"
  reached_step "$TMP/run-$m/metrics.jsonl" 5
  check "SFT $m logged step 5" $?
  test -f "$TMP/run-$m/sft/model/model.safetensors"
  check "SFT $m wrote its model" $?
done

# --- references (one Python process) ------------------------------------------------------------------------------
printf '%s' "$CASES" > "$TMP/cases.txt"
run_py - "$TMP/cases.txt" "$TMP" "$MODELS" <<'EOF'
import json, math, sys
sys.path.insert(0, "scripts/parity")
import torch
import logprobs_reference as ref

torch.use_deterministic_algorithms(True)
failures, worst_all, models = 0, 0.0, {}
for line in open(sys.argv[1]).read().splitlines():
    model_dir, data, out, label = line.split("|")
    if model_dir not in models:
        models[model_dir] = ref.load_model(model_dir)
    want = ref.reference(model_dir, data, tokens=True, model=models[model_dir])
    got = [json.loads(l) for l in open(out)]
    error, worst = None, 0.0
    if len(got) != len(want):
        error = f"{len(got)} lines, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        for field in [f for f in ref.RESPONSE_FIELDS if f in w]:
            if g[field]["n_tokens"] != w[field]["n_tokens"]:
                error = error or f"line {i + 1} {field}: n_tokens {g[field]['n_tokens']}, expected {w[field]['n_tokens']}"
                continue
            pairs = [(g[field]["logp"], w[field]["logp"]), (g[field]["mean"], w[field]["mean"])]
            pairs += list(zip(g[field]["token_logps"], w[field]["token_logps"]))
            for a, b in pairs:
                d = abs(a - b) / max(1.0, abs(b)) if math.isfinite(a) else math.inf
                worst = max(worst, d)
                if d > 1e-5:
                    error = error or f"line {i + 1} {field}: {a!r}, reference {b!r}"
    worst_all = max(worst_all, worst)
    print(f"{'ok' if error is None else 'FAIL':4} logprobs {label}: max relative diff {worst:.3g} {error or ''}")
    failures += error is not None
tmp = sys.argv[2]
for name in sys.argv[3].split():
    model_dir = f"{tmp}/{name}"
    tok = ref.load_tokenizer(model_dir)
    model = models[model_dir]
    got = [json.loads(l)["completion_ids"] for l in open(f"{tmp}/{name}.gen.jsonl")]
    want = []
    for ex in ref.read_examples(f"{tmp}/prompts.jsonl"):
        ids = torch.tensor([[tok.bos_id] + tok.encode(ex["prompt"])])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                                 eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
        seq = out[0, ids.shape[1]:].tolist()
        want.append(seq[:seq.index(tok.eos_id)] if tok.eos_id in seq else seq)
    same = sum(a == b for a, b in zip(got, want))
    ok = len(got) == len(want) and same == len(want)
    print(f"{'ok' if ok else 'FAIL':4} generate {name}: {same}/{len(want)} greedy completions equal to transformers'")
    failures += not ok
print(f"max relative log-prob diff: {worst_all:.3g} (tolerance 1e-5)")
sys.exit(1 if failures else 0)
EOF
echo "$OUT" | grep -v '^Loading weights'
expect_exit 0 "logprobs within 1e-5 and greedy generate identical to transformers for $MODELS"

finish
