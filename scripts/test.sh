#!/usr/bin/env bash
# The README's test command: setup (idempotent), build, run every test (gtest binaries, MPI tests under
# `mpirun --oversubscribe -np 2`, end-to-end recipe tests), then print `N passed, N failed` as the last line.
# Extra arguments are passed to `bazel test` (e.g. --test_output=all, or a target pattern).
set -uo pipefail
cd "$(dirname "$0")/.."

summary() { echo "$1 passed, $2 failed"; }

if ! ./scripts/setup.sh; then
  echo "test.sh: setup failed (see above)" >&2
  summary 0 1
  exit 1
fi

export ALIGNTRAIN_PYTHON="$PWD/.venv/bin/python"  # parity tests compute references with transformers

targets=("//...")
extra=()
for a in "$@"; do
  case "$a" in
    //*) targets=("$@"); extra=(); break ;;
    *) extra+=("$a") ;;
  esac
done

if ! bazel build "${targets[@]}"; then
  echo "test.sh: build failed (see above)" >&2
  summary 0 1
  exit 1
fi

bazel test "${extra[@]}" "${targets[@]}"
rc=$?

# The layer order of the README (Development): no Bazel dependency from a lower layer to a higher one.
layers_failed=0
if ! python3 scripts/check_layers.py; then
  echo "test.sh: dependencies against the layer order (see above)" >&2
  layers_failed=1
fi

# Count test cases from the JUnit XML of every test target: gtest cases individually, shell tests as one each.
mapfile -t tests < <(bazel query "tests(set(${targets[*]}))" 2>/dev/null)
counts=$(python3 scripts/count_tests.py "${tests[@]}")
passed=$(( ${counts% *} + 1 - layers_failed ))
failed=$(( ${counts#* } + layers_failed ))
if [ "$rc" -ne 0 ] && [ "$failed" -eq "$layers_failed" ]; then failed=$((failed + 1)); fi  # a build or infrastructure failure in bazel test
summary "$passed" "$failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
