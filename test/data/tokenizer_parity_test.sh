#!/usr/bin/env bash
# Tokenizer parity with Hugging Face: trains the fixture tokenizers with the `tokenizers` library
# (scripts/make_test_tokenizer.py, ~20 s) and runs tokenizer_parity_check on them (identical ids and decodes on
# every test string, NFC, special tokens, chat templates).
#
# Under Bazel both come from the runfiles. By hand: test/data/tokenizer_parity_test.sh PATH/TO/tokenizer_parity_check
# Python: $ALIGNTRAIN_PYTHON (e.g. bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python), else the repository's
# .venv (found through the real path of the script, which Bazel's runfiles link to).
set -euo pipefail

runfiles="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-aligntrain}"
if [ -n "${TEST_SRCDIR:-}" ]; then
  script="$runfiles/scripts/make_test_tokenizer.py"
  check="$runfiles/test/data/tokenizer_parity_check"
else
  script="$(cd "$(dirname "$0")/../.." && pwd)/scripts/make_test_tokenizer.py"
  check="${1:?usage: $0 PATH/TO/tokenizer_parity_check}"
fi

python="${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$script")")/../.venv/bin/python}"
if [ ! -x "$python" ] || ! "$python" -c 'import tokenizers, transformers' 2>/dev/null; then
  echo "tokenizer_parity_test: no Python with tokenizers and transformers at '$python'." >&2
  echo "Run scripts/setup.sh, or pass one: bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python" >&2
  exit 1
fi

work="${TEST_TMPDIR:-$(mktemp -d)}/tokenizer_parity"
mkdir -p "$work"
# Keep the Hugging Face libraries offline and their caches inside the test's own directory.
export HF_HOME="$work/hf" XDG_CACHE_HOME="$work/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$python" "$script" "$work/fixtures"

if [ -n "${XML_OUTPUT_FILE:-}" ]; then export GTEST_OUTPUT="xml:$XML_OUTPUT_FILE"; fi
ALIGNTRAIN_TOKENIZER_FIXTURES="$work/fixtures" "$check"
