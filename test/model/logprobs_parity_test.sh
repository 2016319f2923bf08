#!/usr/bin/env bash
# `aligntrain logprobs` against an independent Hugging Face reference (scripts/parity/logprobs_reference.py:
# transformers fp32 + the byte rule or the `tokenizers` library): per-token log-probs, sums and means within 1e-5 of
# max(1, |reference|) (two fp32 forward passes round in proportion to the values; a sum's rounding is its tokens'),
# identical n_tokens and index order, with --tokens and without, with the default batch and with --batch-size 3
# (right padding), on the preference and sft eval files, for
#   tiny-llama, tiny-qwen2                      init-model presets with the byte tokenizer (BOS 256, EOS 257);
#   bpe-llama3, bpe-gpt2                        init-model --config (vocab 1024 / 640) --tokenizer DIR with BPE
#                                               tokenizers from scripts/make_test_tokenizer.py (Llama-3 style with
#                                               BOS; GPT-2 style with legacy merges and BOS = EOS);
#   hf-qwen2                                    a Qwen2 built and saved by transformers (q/k/v biases), with the
#                                               Qwen2-style tokenizer: tokenizer_config.json says "bos_token": null
#                                               while config.json / generation_config.json carry bos_token_id, as
#                                               real Qwen2.5 models do -> no BOS is prepended.
#
# Under Bazel the cwd is the runfiles root. By hand, from the repository root:
#   ALIGNTRAIN_BIN=bazel-bin/aligntrain ALIGNTRAIN_PYTHON=.venv/bin/python test/model/logprobs_parity_test.sh
set -u
source test/cli/testlib.sh
BIN=${ALIGNTRAIN_BIN:-./aligntrain}
REF=scripts/parity/logprobs_reference.py
PY=${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$REF")")/../../.venv/bin/python}
TMP=${TEST_TMPDIR:-$(mktemp -d)}/logprobs_parity
rm -rf "$TMP" && mkdir -p "$TMP"
PAIRS=config/recipes/data/pairs_eval.jsonl
SFT=config/recipes/data/sft_eval.jsonl

if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, tokenizers' 2>/dev/null; then
  echo "logprobs_parity_test: no Python with torch, transformers and tokenizers at '$PY'." >&2
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

# --- models -------------------------------------------------------------------------------------------------------
run_cmd $BIN init-model --preset tiny-llama --out "$TMP/tiny-llama" --seed 3
expect_exit 0 "init-model tiny-llama"
run_cmd $BIN init-model --preset tiny-qwen2 --out "$TMP/tiny-qwen2" --seed 4
expect_exit 0 "init-model tiny-qwen2"

# BPE tokenizers (small vocab, ~3 s), configs for init-model --config, and a Qwen2 saved by transformers.
run_py - "$TMP" <<'EOF'
import json, os, random, shutil, sys
sys.path.insert(0, "scripts")
import make_test_tokenizer as mtt

tmp = sys.argv[1]
variants, _ = mtt.build_variants(random.Random(5), 600)
mtt.write_model_dirs(os.path.join(tmp, "tok"), variants)

def config_from(preset_dir, vocab_size, path):
    with open(os.path.join(tmp, preset_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = vocab_size
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the tokenizer's ids are taken instead
        cfg.pop(key, None)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)

assert variants["llama3"].get_vocab_size() <= 1024 and variants["gpt2"].get_vocab_size() <= 640
config_from("tiny-llama", 1024, os.path.join(tmp, "cfg_llama3.json"))
config_from("tiny-qwen2", 640, os.path.join(tmp, "cfg_gpt2.json"))

import torch
from transformers import AutoModelForCausalLM, Qwen2Config
tok = variants["qwen2"]
endoftext, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
cfg = Qwen2Config(vocab_size=tok.get_vocab_size() + 5, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                  rope_theta=1000000.0, tie_word_embeddings=False, bos_token_id=endoftext, eos_token_id=im_end,
                  pad_token_id=endoftext)
torch.manual_seed(11)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        elif name.endswith(".bias"):
            p.copy_(0.05 * torch.randn_like(p))
        else:
            p.mul_(5.0)  # sharper distributions than the 0.02 init
out = os.path.join(tmp, "hf-qwen2")
model.save_pretrained(out)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tmp, "tok", "qwen2", name), out)
print("fixtures written")
EOF
expect_exit 0 "BPE tokenizers, configs and the transformers Qwen2 are built"

run_cmd $BIN init-model --config "$TMP/cfg_llama3.json" --tokenizer "$TMP/tok/llama3" --out "$TMP/bpe-llama3" --seed 5
expect_exit 0 "init-model --config (llama, vocab 1024) --tokenizer llama3-style BPE"
run_cmd $BIN init-model --config "$TMP/cfg_gpt2.json" --tokenizer "$TMP/tok/gpt2" --out "$TMP/bpe-gpt2" --seed 6
expect_exit 0 "init-model --config (qwen2, vocab 640) --tokenizer gpt2-style BPE"
run_cmd test -f "$TMP/bpe-llama3/tokenizer.json"
expect_exit 0 "init-model --tokenizer DIR copies tokenizer.json"

# --- aligntrain logprobs ------------------------------------------------------------------------------------------
MODELS="tiny-llama tiny-qwen2 bpe-llama3 bpe-gpt2 hf-qwen2"
CASES=""  # model|data|output|tokens(0/1)|label
for m in $MODELS; do
  mkdir -p "$TMP/out/$m"
  while read -r data name tokens args; do
    o="$TMP/out/$m/$name.jsonl"
    # shellcheck disable=SC2086
    run_cmd $BIN logprobs --model "$TMP/$m" --data "$data" --out "$o" $args
    expect_exit 0 "logprobs $m $name"
    expect_no_output 'terminate called|Segmentation|Aborted' "logprobs $m $name does not crash"
    CASES+="$TMP/$m|$data|$o|$tokens|$m $name"$'\n'
  done <<EOF2
$PAIRS pairs_tokens 1 --tokens
$PAIRS pairs_tokens_b3 1 --tokens --batch-size 3
$SFT sft 0
$SFT sft_tokens_b3 1 --tokens --batch-size 3
EOF2
done

# stdout (no --out) carries the same JSON lines.
run_cmd sh -c "$BIN logprobs --model '$TMP/tiny-llama' --data $SFT > '$TMP/out/stdout.jsonl' 2>/dev/null"
expect_exit 0 "logprobs to stdout"
run_cmd cmp "$TMP/out/stdout.jsonl" "$TMP/out/tiny-llama/sft.jsonl"
expect_exit 0 "stdout output equals the --out file"

# --- reference and comparison (one Python process) ----------------------------------------------------------------
printf '%s' "$CASES" > "$TMP/cases.txt"
run_py - "$TMP/cases.txt" "$TMP/results.tsv" <<'EOF'
import json, math, sys
sys.path.insert(0, "scripts/parity")
import torch
import logprobs_reference as ref

torch.use_deterministic_algorithms(True)
RTOL = 1e-5  # of max(1, |reference value|)
cases = [line.split("|") for line in open(sys.argv[1]).read().splitlines() if line]
models, refs, results = {}, {}, []


def compare(expected, path, tokens):
    """Returns (error or None, max |diff| / max(1, |reference|) over logp, mean and token log-probs)."""
    worst = 0.0
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except Exception as e:  # noqa: BLE001 - any unreadable output is a failure
        return f"unreadable output {path}: {e}", worst
    if len(lines) != len(expected):
        return f"{len(lines)} lines, expected {len(expected)}", worst
    for i, (got, want) in enumerate(zip(lines, expected)):
        if got.get("index") != i:
            return f"line {i + 1}: index {got.get('index')}, expected {i}", worst
        if set(got) != set(want):
            return f"line {i + 1}: keys {sorted(got)}, expected {sorted(want)}", worst
        for field in [f for f in ref.RESPONSE_FIELDS if f in want]:
            g, w = got[field], want[field]
            keys = {"logp", "mean", "n_tokens"} | ({"token_logps"} if tokens else set())
            if set(g) != keys:
                return f"line {i + 1} {field}: keys {sorted(g)}, expected {sorted(keys)}", worst
            if g["n_tokens"] != w["n_tokens"]:
                return f"line {i + 1} {field}: n_tokens {g['n_tokens']}, expected {w['n_tokens']}", worst
            pairs = [("logp", g["logp"], w["logp"]), ("mean", g["mean"], w["mean"])]
            if tokens:
                if len(g["token_logps"]) != w["n_tokens"]:
                    return f"line {i + 1} {field}: {len(g['token_logps'])} token_logps, expected {w['n_tokens']}", worst
                pairs += [(f"token {t}", a, b) for t, (a, b) in enumerate(zip(g["token_logps"], w["token_logps"]))]
            for what, a, b in pairs:
                d = abs(a - b) / max(1.0, abs(b)) if isinstance(a, (int, float)) and math.isfinite(a) else math.inf
                worst = max(worst, d)
                if d > RTOL:
                    return f"line {i + 1} {field} {what}: {a!r}, reference {b!r} (relative diff {d:.3g})", worst
    return None, worst


overall = 0.0
for model_dir, data, out, tokens, label in cases:
    key = (model_dir, data)
    if key not in refs:
        if model_dir not in models:
            models[model_dir] = ref.load_model(model_dir)
        refs[key] = ref.reference(model_dir, data, tokens=True, model=models[model_dir])
    expected = refs[key]
    if tokens != "1":
        expected = [{k: ({kk: vv for kk, vv in v.items() if kk != "token_logps"} if k != "index" else v)
                     for k, v in row.items()} for row in expected]
    error, worst = compare(expected, out, tokens == "1")
    overall = max(overall, worst)
    status = "ok" if error is None else "FAIL"
    print(f"{status:4} {label}: max relative diff {worst:.3g}" + ("" if error is None else f"; {error}"))
    results.append(f"{0 if error is None else 1}\t{worst:.3g}\t{label}\t{error or ''}")
print(f"max relative diff over all cases: {overall:.3g} (tolerance {RTOL})")
with open(sys.argv[2], "w") as f:
    f.write("\n".join(results) + "\n")
EOF
echo "$OUT" | grep -v '^Loading weights'
expect_exit 0 "reference computed"
if [ -f "$TMP/results.tsv" ]; then
  while IFS=$'\t' read -r rc worst label error; do
    OUT="$error"
    check "parity with the HF reference: $label (max relative diff $worst, tolerance 1e-5; same keys, n_tokens and order)" "$rc"
  done < "$TMP/results.tsv"
fi

finish
