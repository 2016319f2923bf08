# Tiny assertion helpers for the shell tests. Source it; call `expect_exit`, `expect_output`, then `finish`.
# Each check prints one line; `finish` exits non-zero if any failed.
FAILS=0
CHECKS=0
OUT=""
RC=0

# run_cmd CMD...: runs a command (60 s limit), keeping its combined output in $OUT and exit code in $RC.
run_cmd() {
  OUT=$(timeout 60 "$@" 2>&1)
  RC=$?
}

check() {  # check DESCRIPTION CONDITION-RESULT(0|1)
  CHECKS=$((CHECKS + 1))
  if [ "$2" -eq 0 ]; then
    echo "ok   - $1"
  else
    FAILS=$((FAILS + 1))
    echo "FAIL - $1"
    echo "------ output (exit $RC) ------"
    echo "$OUT" | head -n 40
    echo "-------------------------------"
  fi
}

expect_exit() {  # expect_exit CODE DESCRIPTION
  [ "$RC" -eq "$1" ]
  check "$2 (exit $1, got $RC)" $?
}

expect_output() {  # expect_output REGEX DESCRIPTION
  echo "$OUT" | grep -Eq -- "$1"
  check "$2 (output matches /$1/)" $?
}

expect_no_output() {  # expect_no_output REGEX DESCRIPTION
  ! echo "$OUT" | grep -Eq -- "$1"
  check "$2 (output does not match /$1/)" $?
}

finish() {
  echo "$((CHECKS - FAILS)) of $CHECKS checks passed"
  [ "$FAILS" -eq 0 ]
}
