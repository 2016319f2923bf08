#!/usr/bin/env bash
# Runs a test binary on N ranks: alone when N is 1 (no launcher, so a world of one), else under
# `mpirun --oversubscribe -np N --bind-to none` (OMPI_ALLOW_RUN_AS_ROOT* come from .bazelrc's --test_env).
#
#   run_ranks.sh N BINARY [ARGS...]
set -u
if [ $# -lt 2 ]; then
  echo "usage: run_ranks.sh N BINARY [ARGS...]" >&2
  exit 2
fi
ranks=$1
shift
if [ "$ranks" -eq 1 ]; then exec "$@"; fi
exec mpirun --oversubscribe -np "$ranks" --bind-to none "$@"
