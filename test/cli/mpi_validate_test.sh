#!/usr/bin/env bash
# `validate` under `mpirun --oversubscribe -np 2`: one report from rank 0 and exit 0 for a good recipe; both ranks
# exit 2 promptly for a broken one.
set -u
source test/cli/testlib.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --oversubscribe -np 2 --bind-to none)
TMP=${TEST_TMPDIR:-$(mktemp -d)}

run_cmd "${MPIRUN[@]}" ./aligntrain validate config/recipes/demo.yaml
expect_exit 0 "validate demo.yaml on 2 ranks"
n=$(echo "$OUT" | grep -c 'valid (')
[ "$n" -eq 1 ]
check "exactly one report (got $n)" $?
n=$(echo "$OUT" | grep -c '^stages:')
[ "$n" -eq 1 ]
check "the resolved recipe is printed once (got $n)" $?
expect_output 'world size 2' "the report names world size 2"

printf 'run:\n  name: x\n  sed: 3\nstages: []\n' > "$TMP/bad.yaml"
start=$(date +%s)
run_cmd "${MPIRUN[@]}" ./aligntrain validate "$TMP/bad.yaml"
elapsed=$(( $(date +%s) - start ))
expect_exit 2 "a broken recipe ends both ranks with exit 2"
[ "$elapsed" -lt 30 ]
check "promptly (${elapsed}s < 30s)" $?
n=$(echo "$OUT" | grep -c 'run\.sed')
[ "$n" -eq 1 ]
check "the error is reported once (got $n)" $?

# tensor degree must divide the world size: checked at run time
run_cmd "${MPIRUN[@]}" ./aligntrain validate config/recipes/demo.yaml --set parallel.tensor=4
expect_exit 2 "tensor 4 on 2 ranks"
expect_output 'parallel\.tensor' "names parallel.tensor"

finish
