#!/usr/bin/env bash
# One rank's failure ends the whole job promptly, never a hang, with its error on the console (DESIGN.md §8).
# Under `mpirun -np 2`, comm_failure_helper's rank 1 throws in step 3 while rank 0 waits in that step's all_reduce;
# the helper's main() catches it and calls World::abort(1). Alone, the same failure is a plain exit 1.
#
#   failure_test.sh [path/to/comm_failure_helper]
set -u
HELPER=${1:-test/runtime/comm_failure_helper}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failures=0

check() {  # check DESCRIPTION CONDITION-STATUS
  if [ "$2" -eq 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}

run() {  # run COMMAND...: sets OUT, CODE, ELAPSED (a hang is cut at 60 s and reads as exit 124)
  local start
  start=$(date +%s)
  OUT=$(timeout 60 "$@" 2>&1)
  CODE=$?
  ELAPSED=$(( $(date +%s) - start ))
  echo "---- $* (exit $CODE, ${ELAPSED}s)"
  echo "$OUT"
  echo "----"
}

run mpirun --oversubscribe -np 2 --bind-to none "$HELPER"
[ "$CODE" -ne 0 ] && [ "$CODE" -ne 124 ]
check "2 ranks: the job exits non-zero without hanging (exit $CODE)" $?
[ "$ELAPSED" -lt 30 ]
check "2 ranks: within 30 s (${ELAPSED}s)" $?
echo "$OUT" | grep -q 'error: rank 1: simulated failure in step 3'
check "2 ranks: rank 1's error is in the output" $?
echo "$OUT" | grep -q 'step 2 done'
check "2 ranks: the steps before the failure ran" $?
! echo "$OUT" | grep -q 'step 3 done'
check "2 ranks: step 3 never completed" $?

run "$HELPER"
[ "$CODE" -eq 1 ]
check "alone: exit 1 (exit $CODE)" $?
echo "$OUT" | grep -q 'error: rank 0: simulated failure in step 3'
check "alone: the error is in the output" $?

echo "$failures failed"
[ "$failures" -eq 0 ]
