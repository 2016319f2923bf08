#!/usr/bin/env bash
# Chat-template parity with transformers: scripts/parity/chat_template_reference.py renders every template with
# every conversation of its corpus through transformers' render_jinja_template, and jinja_parity_check renders the
# same with aligntrain's Jinja engine (data/jinja.h): byte-identical text, {% generation %} ranges, raise_exception
# messages, and errors where transformers errs. Two template sets: ours (test/data/chat_templates/, written in the
# shapes of the families' templates) and the real ones that the installed TRL ships (trl/chat_templates/*.jinja:
# Llama 3.x, Qwen 2.5/3, Gemma 3/4, Phi-3, gpt-oss, DeepSeek, ..., with and without {% generation %}).
#
# Under Bazel everything comes from the runfiles. By hand: test/data/jinja_parity_test.sh PATH/TO/jinja_parity_check
# Python: $ALIGNTRAIN_PYTHON, else the repository's .venv (found through the real path of the script). A missing
# Python is a failure, never a skip.
set -euo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then
  root="${TEST_SRCDIR}/${TEST_WORKSPACE:-aligntrain}"
  check="$root/test/data/jinja_parity_check"
else
  root="$(cd "$(dirname "$0")/../.." && pwd)"
  check="${1:?usage: $0 PATH/TO/jinja_parity_check}"
fi
script="$root/scripts/parity/chat_template_reference.py"
templates="$root/test/data/chat_templates"

python="${ALIGNTRAIN_PYTHON:-$(dirname "$(readlink -f "$script")")/../../.venv/bin/python}"
if [ ! -x "$python" ] || ! "$python" -c 'import jinja2, transformers, trl' 2>/dev/null; then
  echo "jinja_parity_test: no Python with jinja2, transformers and trl at '$python'." >&2
  echo "Run scripts/setup.sh, or pass one: bazel test --test_env=ALIGNTRAIN_PYTHON=/path/to/python" >&2
  exit 1
fi

work="${TEST_TMPDIR:-$(mktemp -d)}/jinja_parity"
mkdir -p "$work"
export HF_HOME="$work/hf" XDG_CACHE_HOME="$work/cache" PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
"$python" "$script" "$templates" "$work/reference.jsonl"
trl_templates="$("$python" -c 'import os, trl; print(os.path.join(os.path.dirname(trl.__file__), "chat_templates"))')"
ls "$trl_templates"/*.jinja > /dev/null  # fails the test if this TRL ships none
"$python" "$script" "$trl_templates" "$work/trl_reference.jsonl"

echo "== our templates ($templates)"
ALIGNTRAIN_JINJA_REFERENCE="$work/reference.jsonl" ALIGNTRAIN_JINJA_TEMPLATES="$templates" "$check"
echo "== TRL's templates ($trl_templates)"
ALIGNTRAIN_JINJA_REFERENCE="$work/trl_reference.jsonl" ALIGNTRAIN_JINJA_TEMPLATES="$trl_templates" "$check"
