#!/usr/bin/env bash
# The MPI tests (Bazel tag "mpi") with OpenMPI's TCP transport only, as between two nodes: ranks on one machine
# otherwise talk through shared memory (the vader BTL) and TCP is never exercised. Every test's `mpirun` (and
# `srun`) reads OpenMPI's settings from OMPI_MCA_* in its environment, which `--test_env` sets:
#   OMPI_MCA_btl=tcp,self   byte transports: TCP between ranks, "self" for a rank to itself (no shared memory)
#   OMPI_MCA_pml=ob1        the point-to-point layer that uses those BTLs (not UCX, which has its own transports)
# First a check that the setting reaches the ranks: with OMPI_MCA_btl=self alone two ranks cannot reach each other,
# so a 2-rank test must fail. Then the mpi-tagged tests, never from Bazel's cache. Extra arguments go to
# `bazel test` (e.g. a target pattern instead of //...). Last line: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
export ALIGNTRAIN_PYTHON="$PWD/.venv/bin/python"  # parity tests compute references with transformers

PROBE=//test/cli:mpi_validate_test
echo "==> check: $PROBE must fail with OMPI_MCA_btl=self (no transport between ranks)"
bazel test --nocache_test_results --test_output=summary --test_env=OMPI_MCA_btl=self --test_env=OMPI_MCA_pml=ob1 \
  "$PROBE" > /dev/null 2>&1
probe_rc=$?
log="bazel-testlogs/${PROBE#//}"
log="${log/://}/test.log"
if [ "$probe_rc" -eq 0 ] || ! grep -q "unable to reach each other" "$log" 2>/dev/null; then
  echo "test_mpi_tcp.sh: $PROBE did not fail for lack of a transport with OMPI_MCA_btl=self (bazel exit" \
    "$probe_rc): OMPI_MCA_* does not reach the tests' mpirun, so a TCP-only run would prove nothing" >&2
  exit 1
fi
echo "    ok: it failed with OpenMPI's 'unable to reach each other' (BTLs attempted: self)"

targets=("//...")
extra=()
for a in "$@"; do
  case "$a" in
    //*) targets=("$@"); extra=(); break ;;
    *) extra+=("$a") ;;
  esac
done

echo "==> the mpi-tagged tests with OMPI_MCA_btl=tcp,self OMPI_MCA_pml=ob1"
start=$SECONDS
bazel test --nocache_test_results --build_tests_only --test_tag_filters=mpi \
  --test_env=OMPI_MCA_btl=tcp,self --test_env=OMPI_MCA_pml=ob1 "${extra[@]}" "${targets[@]}"
rc=$?
mapfile -t tests < <(bazel query "attr(tags, '\\bmpi\\b', tests(set(${targets[*]})))" 2>/dev/null)
counts=$(python3 scripts/count_tests.py "${tests[@]}")
passed=${counts% *} failed=${counts#* }
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a build or infrastructure failure in bazel test
echo "${#tests[@]} mpi-tagged test targets in $((SECONDS - start)) s on $(hostname) ($(nproc) cores)"
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
