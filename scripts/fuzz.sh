#!/usr/bin/env bash
# Builds a libFuzzer target with ASan + UBSan and runs it: scripts/fuzz.sh TARGET [SECONDS]
#   TARGET   recipe       fuzz/recipe_fuzz.cc: recipe text and --set overrides (config/)
#            safetensors  fuzz/safetensors_fuzz.cc: safetensors headers and files (trainer/model/)
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
mkdir -p "$dir/corpus"
extra=()  # extra libFuzzer flags

case "$target" in
  recipe)
    sources=(config/*.cc fuzz/recipe_fuzz.cc)
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
  *)
    echo "unknown fuzz target '$target' (known: recipe, safetensors)" >&2
    exit 2
    ;;
esac

seed_dirs=()
[ -d "fuzz/corpus-$target" ] && seed_dirs+=("fuzz/corpus-$target")

binary="$dir/${target}_fuzz"
echo "building $binary"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. "${sources[@]}" ${libs[@]+"${libs[@]}"} -o "$binary"

echo "fuzzing $target for ${seconds}s"
"$binary" "$dir/corpus" ${seed_dirs[@]+"${seed_dirs[@]}"} ${extra[@]+"${extra[@]}"} \
  -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$dir/" -print_final_stats=1
