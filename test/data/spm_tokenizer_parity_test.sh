#!/usr/bin/env bash
# SentencePiece-style tokenizer parity with Hugging Face: builds the fixtures with the `tokenizers` and
# `sentencepiece` trainers (scripts/make_spm_test_tokenizer.py, ~15 s) and runs spm_tokenizer_parity_check on them
# (identical ids, with and without special tokens, and decodes on every test string, for every variant).
#
# Under Bazel both come from the runfiles. By hand: test/data/spm_tokenizer_parity_test.sh PATH/TO/spm_tokenizer_parity_check
# Python: $ALIGNTRAIN_PYTHON (e.g. bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python), else the repository's
# .venv (found through the real path of the script, which Bazel's runfiles link to).
set -euo pipefail

runfiles="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-aligntrain}"
if [ -n "${TEST_SRCDIR:-}" ]; then
  script="$runfiles/scripts/make_spm_test_tokenizer.py"
  check="$runfiles/test/data/spm_tokenizer_parity_check"
else
  script="$(cd "$(dirname "$0")/../.." && pwd)/scripts/make_spm_test_tokenizer.py"
  check="${1:?usage: $0 PATH/TO/spm_tokenizer_parity_check}"
fi

python="${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$script")")/../.venv/bin/python}"
if [ ! -x "$python" ] || ! "$python" -c 'import tokenizers, transformers, sentencepiece' 2>/dev/null; then
  echo "spm_tokenizer_parity_test: no Python with tokenizers, transformers and sentencepiece at '$python'." >&2
  echo "Run scripts/setup.sh, or pass one: bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python" >&2
  exit 1
fi

work="${TEST_TMPDIR:-$(mktemp -d)}/spm_tokenizer_parity"
mkdir -p "$work"
# Keep the Hugging Face libraries offline and their caches inside the test's own directory.
export HF_HOME="$work/hf" XDG_CACHE_HOME="$work/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$python" "$script" "$work/fixtures"

if [ -n "${XML_OUTPUT_FILE:-}" ]; then export GTEST_OUTPUT="xml:$XML_OUTPUT_FILE"; fi
ALIGNTRAIN_SPM_FIXTURES="$work/fixtures" "$check"
