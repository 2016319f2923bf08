#!/usr/bin/env bash
# Builds a libFuzzer target with ASan + UBSan and runs it: scripts/fuzz.sh TARGET [SECONDS]
#   TARGET   recipe       fuzz/recipe_fuzz.cc: recipe text and --set overrides (config/)
#            safetensors  fuzz/safetensors_fuzz.cc: safetensors headers and files (trainer/model/)
#            examples     fuzz/examples_fuzz.cc: JSONL data files read as every data kind (data/example.h)
#            parquet      the same for Parquet files (data/parquet_rows.h; Arrow's reader is not instrumented)
#            jinja        fuzz/jinja_fuzz.cc: chat templates and their variables (data/jinja.h)
#            tokenizer    fuzz/tokenizer_fuzz.cc: tokenizer.json loading and encoding (data/tokenizer_spm_bpe.h, ...)
#   SECONDS  run time, default 60
# Work files go to $FUZZ_DIR (default /tmp/aligntrain-fuzz/TARGET): the binary, the corpus it grows, and
# crash-* / leak-* / timeout-* reproducers (re-run one with `$FUZZ_DIR/TARGET_fuzz FILE`). Seeds: the
# target's own (below) plus fuzz/corpus-TARGET/ when that folder exists (read, never written).
# Exit status is non-zero when the fuzzer finds a problem.
# To add a target: fuzz/TARGET_fuzz.cc and a case below setting `sources`, `libs` and, optionally, seeds.
set -euo pipefail

target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")/.."

dir=${FUZZ_DIR:-/tmp/aligntrain-fuzz/$target}
std=c++17
# Arrow / Parquet from the venv's pyarrow wheel (third_party/arrow.bzl): include path and libraries.
arrow_libs() {
  local pa
  pa=$(ls -d .venv/lib/python3*/site-packages/pyarrow | head -1)
  [ -d "$pa/include/parquet" ] || { echo "no pyarrow in .venv: run scripts/setup.sh" >&2; exit 2; }
  arrow=(-I"$pa/include" "$pa"/libparquet.so.[0-9]* "$pa"/libarrow.so.[0-9]* -Wl,-rpath,"$PWD/$pa")
}
mkdir -p "$dir/corpus"
extra=()  # extra libFuzzer flags

case "$target" in
  recipe)
    sources=(config/*.cc common/data_source.cc fuzz/recipe_fuzz.cc)
    libs=(-lyaml-cpp -lfmt)
    # The first byte picks the mode (see recipe_fuzz.cc): 0x00 = recipe text, 0x01 = --set lines.
    for f in config/recipes/*.yaml; do
      { printf '\0'; cat "$f"; } > "$dir/corpus/seed-$(basename "$f")"
    done
    printf '\1stages.dpo.loss.beta=0.05\nstages[0].loss.type=[dpo, sft]\n' > "$dir/corpus/seed-overrides"
    # Dictionary: every key of the schema, from the field tables.
    grep -o 'key("[a-z_0-9]*")' config/fields.h | sed 's/key(\(.*\))/\1/' | sort -u > "$dir/recipe.dict"
    extra+=(-dict="$dir/recipe.dict")
    ;;
  safetensors)
    sources=(trainer/model/safetensors.cc common/atomic_file.cc fuzz/safetensors_fuzz.cc)
    libs=()
    ;;
  examples)
    # example.cc links the chat-role check (tokenizer library) and the Parquet reader (Arrow, C++20).
    sources=(data/example.cc data/chat_message_json.cc data/chat_template.cc data/jinja*.cc data/tokenizer*.cc
             data/parquet_rows.cc common/data_source.cc fuzz/examples_fuzz.cc)
    arrow_libs
    libs=(-lpcre2-8 -lsentencepiece "${arrow[@]}")
    std=c++20
    # Seeds: the demo's and the tests' data files, a few lines each.
    for f in config/recipes/data/*.jsonl; do
      [ -f "$f" ] && head -c 4000 "$f" > "$dir/corpus/seed-$(basename "$f")"
    done
    # A conversation with a tool call and its result (data/chat_message_json.h).
    printf '%s\n' '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "name": "f", "tool_call_id": "c1", "content": "r"}, {"role": "assistant", "content": "a"}], "tools": [{"type": "function", "function": {"name": "f"}}]}' \
      > "$dir/corpus/seed-tool-turns.jsonl"
    ;;
  parquet)
    sources=(data/example.cc data/chat_message_json.cc data/chat_template.cc data/jinja*.cc data/tokenizer*.cc
             data/parquet_rows.cc common/data_source.cc fuzz/examples_fuzz.cc -DFUZZ_PARQUET)
    arrow_libs
    libs=(-lpcre2-8 -lsentencepiece "${arrow[@]}")
    std=c++20
    # Seeds: small files of each shape the readers take, written by pyarrow.
    .venv/bin/python - "$dir/corpus" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]
pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["c", None]}), out + "/seed-plain.parquet")
pq.write_table(pa.table({"messages": [[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]]}),
               out + "/seed-messages.parquet", compression="none")
pq.write_table(pa.table({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"], "label": [True]}),
               out + "/seed-pairs.parquet", row_group_size=1, use_dictionary=True)
PY
    ;;
  jinja)
    sources=(data/jinja*.cc fuzz/jinja_fuzz.cc)
    libs=()
    # Seeds: the parity templates, each with a conversation after a NUL byte (see jinja_fuzz.cc).
    for f in test/data/chat_templates/*.jinja; do
      { cat "$f"; printf '\0[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]'; } \
        > "$dir/corpus/seed-$(basename "$f")"
    done
    # A reference cycle through a namespace (a leak this fuzzer found).
    printf '%s' '{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{% set d = {"n": ns} %}{% set ns.g = d.get %}{{ ns.a }}' \
      > "$dir/corpus/seed-cycle"
    # Dictionary: the tags, operators, filters, tests and methods the engine knows.
    printf '"%s"\n' '{%' '%}' '{{' '}}' '{#' '#}' '{%-' '-%}' '{{-' '-}}' 'for ' ' in ' 'endfor' 'if ' 'elif ' \
      'else' 'endif' 'set ' 'endset' 'macro ' 'endmacro' 'call' 'endcall' 'filter ' 'endfilter' 'generation' \
      'endgeneration' 'break' 'continue' 'raw' 'endraw' 'namespace(' 'loop.' 'messages' 'caller(' '|tojson(indent=2)' \
      '|trim' '|join(' '|map(attribute=' '|selectattr(' '|default(' '|list' '|length' '|indent(' '|replace(' \
      ' is defined' ' is string' ' is none' ' not in ' '[::-1]' '[1:]' '.split(' '.strip(' '.format(' '.items()' \
      '.get(' 'raise_exception(' 'strftime_now(' 'range(' ' ~ ' ' ** ' ' // ' > "$dir/jinja.dict"
    extra+=(-dict="$dir/jinja.dict")
    ;;
  tokenizer)
    sources=(fuzz/tokenizer_fuzz.cc)
    for f in data/tokenizer_*.cc; do  # all but the byte-level tokenizer (it needs tokenizer.cc and the templates)
      [ "$f" = data/tokenizer_byte.cc ] || sources+=("$f")
    done
    libs=(-lpcre2-8 -lsentencepiece)
    # Seeds: small tokenizer.json files of every shape scripts/make_spm_test_tokenizer.py builds, each followed by
    # a NUL byte and a text (see tokenizer_fuzz.cc).
    .venv/bin/python - "$dir/corpus" <<'PY'
import json, os, random, sys
sys.path.insert(0, "scripts")
import make_spm_test_tokenizer as m
out = sys.argv[1]
vocab, merges = m.train_vocab(list(m.base.corpus(random.Random(0), 300)), 240)
keep = [t for t in vocab if not t.startswith("<0x") or t in ("<0x0A>", "<0x41>", "<0xC3>", "<0xA9>", "<0xF0>")]
vocab = {t: i for i, t in enumerate(keep)}
merges = [p for p in merges if p[0] in vocab and p[1] in vocab and p[0] + p[1] in vocab]
for name, (spec, _) in m.variant_specs(vocab, merges).items():
    with open(os.path.join(out, "seed-" + name), "w", encoding="utf-8") as f:
        f.write(json.dumps(spec, ensure_ascii=False) + "\0 hello  world <s>\nnaïve 😀 [INST]x")
PY
    ;;
  *)
    echo "unknown fuzz target '$target' (known: recipe, safetensors, examples, parquet, jinja, tokenizer)" >&2
    exit 2
    ;;
esac

seed_dirs=()
[ -d "fuzz/corpus-$target" ] && seed_dirs+=("fuzz/corpus-$target")

binary="$dir/${target}_fuzz"
echo "building $binary"
clang++ -std=$std -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. "${sources[@]}" ${libs[@]+"${libs[@]}"} -o "$binary"

echo "fuzzing $target for ${seconds}s"
"$binary" "$dir/corpus" ${seed_dirs[@]+"${seed_dirs[@]}"} ${extra[@]+"${extra[@]}"} \
  -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$dir/" -print_final_stats=1
