#!/usr/bin/env bash
# aligntrain on a real Slurm cluster (issue 19): a one-node cluster of its own (scripts/slurm/local_cluster.sh:
# munged, slurmctld, slurmd under a temporary folder; partition "urgent" preempts "debug"), then a DP=2 SFT run
#   1. uninterrupted under `mpirun -np 2`: the reference;
#   2. `srun --mpi=pmix -n 2 aligntrain run RECIPE`, and `scancel --signal=TERM JOBID` at a random step in the
#      middle: SIGTERM reaches every rank, which finish the step, write a checkpoint and exit 0 (srun exits 0, the
#      job ends COMPLETED 0:0, the stage unfinished); the same srun again resumes;
#   3. the README's batch script for a preemptible partition (srun, then `scontrol requeue` while the last stage
#      has no DONE), preempted at a random step by a job in "urgent": its ranks get SIGTERM, checkpoint, exit 0,
#      the script requeues the job, and the job's second start resumes and finishes.
# Under srun both ranks must see one world of size 2 (PMIx), and each interrupted run must end with a
# model.safetensors byte-identical to the reference's and the same metrics.jsonl apart from timing fields.
# Needs Debian's slurm-wlm and munge (scripts/setup.sh). Run by a user other than root, when the daemons cannot
# start, it says so and passes; as root (CI) a cluster that does not come up is a failure.
set -u
source test/cli/testlib.sh
source test/stages/stagelib.sh
BIN=$PWD/aligntrain
TMP=${TEST_TMPDIR:-$(mktemp -d)}/slurm
rm -rf "$TMP" && mkdir -p "$TMP"
head -n 64 config/recipes/data/sft_train.jsonl > "$TMP/train.jsonl"
head -n 16 config/recipes/data/sft_eval.jsonl > "$TMP/eval.jsonl"
STEPS=24

# --- the cluster -------------------------------------------------------------------------------------------------
# A short folder of its own: munged's and slurmd's Unix sockets live in it (at most 107 bytes a path, less than a
# Bazel TEST_TMPDIR leaves).
CLUSTER=$(mktemp -d /tmp/aligntrain-slurm.XXXXXX)
cleanup() {
  scripts/slurm/local_cluster.sh stop "$CLUSTER" > /dev/null 2>&1
  rm -rf "$CLUSTER"
}
trap cleanup EXIT
scripts/slurm/local_cluster.sh start "$CLUSTER" > "$TMP/cluster.log" 2>&1
RC=$? OUT=$(cat "$TMP/cluster.log")
if [ $RC -ne 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the local Slurm cluster did not start, and this is not root:"
  echo "$OUT"
  exit 0
fi
expect_exit 0 "the local Slurm cluster comes up (munged, slurmctld, slurmd; node idle)"
[ $RC -eq 0 ] || { finish; exit 1; }
export SLURM_CONF=$CLUSTER/slurm.conf
OUT=$(srun --mpi=list 2>&1)
expect_output "pmix" "Slurm has the mpi/pmix plugin"
# Without PMIx the tasks know nothing of each other: aligntrain refuses rather than train twice into one folder.
run_cmd srun --mpi=none -n 2 "$BIN" validate config/recipes/sft.yaml
expect_exit 2 "srun --mpi=none -n 2: the tasks refuse with exit 2 (usage), and so does srun"
expect_output "error: started by srun as one of 2 tasks without MPI process management" "and says why"
expect_output "task.* Exited with exit code 2" "the tasks exit 2 (usage)"

recipe() {  # recipe OUT_DIR
  cat <<YAML
run: {name: slurm, output_dir: $1, seed: 11}
parallel: {tensor: 1}
models:
  tiny: {init: {preset: tiny-llama, seed: 5, vocab_size: 264}, tokenizer: byte, chat_template: plain}
stages:
  - name: sft
    kind: sft
    policy: tiny
    data: {train: $TMP/train.jsonl, eval: $TMP/eval.jsonl}
    optimizer: {lr: 2.0e-3, weight_decay: 0.01}
    schedule: {warmup_steps: 3, decay: cosine, min_lr_ratio: 0.1}
    batch: {global: 8, micro: 2, max_length: 64}
    train: {steps: $STEPS}
    eval: {every_steps: 8}
    checkpoint: {every_steps: 4, keep_last: 2}
    log: {every_steps: 1}
YAML
}

# job_field JOBID FIELD: a field of `scontrol show job` (JobState, ExitCode, Restarts, ...).
job_field() { scontrol -o show job "$1" 2>/dev/null | grep -oE "(^| )$2=[^ ]*" | head -n 1 | cut -d= -f2; }

# wait_job JOBID STATE...: until the job is in none of the given states; 1 after 60 s.
wait_job() {
  local job=$1 st
  shift
  for _ in $(seq 1 600); do
    st=$(job_field "$job" JobState)
    case " $* " in *" $st "*) sleep 0.1 ;; *) return 0 ;; esac
  done
  return 1
}

# wait_step METRICS STEP JOBID: 0 once the run reached STEP; 1 if the job stopped running first or after 60 s.
wait_step() {
  for _ in $(seq 1 1200); do
    reached_step "$1" "$2" && return 0
    case "$(job_field "$3" JobState)" in PENDING | CONFIGURING | RUNNING | "") ;; *) return 1 ;; esac
    sleep 0.05
  done
  return 1
}

check_world() {  # check_world WHAT: $OUT shows one world of 2 ranks (DP=2), not ranks that each started alone
  expect_output "2 rank\(s\) = tensor 1 x data 2" "$1: the ranks form one world of size 2"
  expect_no_output "[^0-9]1 rank\(s\)" "$1: no rank started on its own (a world of size 1)"
}

# --- 1. the reference, uninterrupted, under mpirun -----------------------------------------------------------------
recipe "$TMP/ref" > "$TMP/ref.yaml"
run_long "${MPIRUN[@]}" "$BIN" run "$TMP/ref.yaml"
expect_exit 0 "reference: uninterrupted DP=2 run under mpirun -np 2"

# Steps take well under a millisecond here: a pause after each (no effect on results) lets the signal land mid-stage.
# Jobs keep the environment of their submission.
DELAY=ALIGNTRAIN_TEST_STEP_DELAY_MS=150

# --- 2. srun, scancel --signal=TERM in the middle, the same srun again ------------------------------------------
recipe "$TMP/srun" > "$TMP/srun.yaml"
k=$((5 + RANDOM % 14))
env $DELAY srun --mpi=pmix -n 2 -J aligntrain-srun "$BIN" run "$TMP/srun.yaml" > "$TMP/srun.log" 2>&1 &
pid=$!
JOB=""
for _ in $(seq 1 300); do
  JOB=$(squeue -h -n aligntrain-srun -o %i | head -n 1)
  [ -n "$JOB" ] && break
  sleep 0.1
done
wait_step "$TMP/srun/metrics.jsonl" $k "$JOB"
check "srun job '$JOB' reached step $k of $STEPS" $?
# To the job's steps, i.e. the ranks (not --full: see README, Launching on Slurm).
scancel --signal=TERM "$JOB"
wait $pid
RC=$? OUT=$(cat "$TMP/srun.log")
expect_exit 0 "srun: SIGTERM at step >= $k, srun exits 0"
check_world "srun --mpi=pmix -n 2"
expect_output "stop requested" "srun: the stop is reported"
wait_job "$JOB" RUNNING COMPLETING CONFIGURING
state=$(job_field "$JOB" JobState) code=$(job_field "$JOB" ExitCode)
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
check "srun: the job ends COMPLETED with exit code 0:0 (got $state $code)" $?
[ ! -f "$TMP/srun/sft/DONE" ] && ls -d "$TMP/srun/checkpoints/sft/step-"* > /dev/null 2>&1
check "srun: SIGTERM left a checkpoint and an unfinished stage" $?
run_long srun --mpi=pmix -n 2 "$BIN" run "$TMP/srun.yaml"
expect_exit 0 "the same srun again: resume after SIGTERM"
expect_output "resuming from .*step-" "srun again: resumed from a checkpoint"
check_world "srun again"
same_result "$TMP/ref" "$TMP/srun" "srun, SIGTERM at step >= $k, srun again"

# --- 3. a batch job on a preemptible partition, preempted, requeued by its script, resumed ------------------------
recipe "$TMP/batch" > "$TMP/batch.yaml"
# The README's script (Launching on Slurm), with this run's paths.
cat > "$TMP/job.sh" <<SCRIPT
#!/bin/bash
srun --mpi=pmix -n 2 "$BIN" run "$TMP/batch.yaml"
echo "attempt \${SLURM_RESTART_COUNT:-0}: srun exit \$?"
[ -f "$TMP/batch/sft/DONE" ] || scontrol requeue "\$SLURM_JOB_ID"
SCRIPT
# Preemption takes a scheduling pass (about a second): an earlier step, and longer pauses, keep it mid-stage.
k=$((5 + RANDOM % 8))
OUT=$(env ALIGNTRAIN_TEST_STEP_DELAY_MS=250 sbatch --parsable --requeue -p debug -n 2 -J aligntrain-batch -o "$TMP/job.out" \
  --open-mode=append "$TMP/job.sh" 2>&1)
RC=$?
expect_exit 0 "sbatch accepts the batch job"
JOB=${OUT%%;*}
wait_step "$TMP/batch/metrics.jsonl" $k "$JOB"
check "batch job $JOB reached step $k of $STEPS" $?
OUT=$(sbatch --parsable -p urgent -n 2 -J urgent -o /dev/null --wrap true 2>&1)
RC=$?
expect_exit 0 "a job in partition urgent is submitted (it preempts the batch job)"
URGENT=${OUT%%;*}
for _ in $(seq 1 600); do  # the first attempt ends, its script requeues the job, which then waits (PENDING)
  grep -q "attempt 0" "$TMP/job.out" 2>/dev/null && [ "$(job_field "$JOB" Restarts)" = 1 ] &&
    [ "$(job_field "$JOB" JobState)" != COMPLETING ] && break
  sleep 0.1
done
OUT=$(cat "$TMP/job.out") RC=0
expect_output "attempt 0: srun exit 0" "preempted: srun exits 0"
expect_output "stop requested" "preempted: the stop is reported"
check_world "batch job, first start"
[ ! -f "$TMP/batch/sft/DONE" ] && ls -d "$TMP/batch/checkpoints/sft/step-"* > /dev/null 2>&1
check "preempted: a checkpoint and an unfinished stage" $?
restarts=$(job_field "$JOB" Restarts) state=$(job_field "$JOB" JobState)
[ "$restarts" = 1 ] && [ "$state" = PENDING ]
check "preempted: the script requeued the job (got $state, Restarts=$restarts)" $?
wait_job "$URGENT" PENDING CONFIGURING RUNNING COMPLETING
check "the urgent job ran and ended ($(job_field "$URGENT" JobState))" $?
# A requeued job waits (BeginTime, two minutes) before it may start again; now, please.
scontrol update JobId="$JOB" StartTime=now
wait_job "$JOB" PENDING CONFIGURING RUNNING COMPLETING
state=$(job_field "$JOB" JobState) code=$(job_field "$JOB" ExitCode)
OUT=$(cat "$TMP/job.out")
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
check "requeued: the job's second start ends COMPLETED 0:0 (got $state $code)" $?
expect_output "attempt 1: srun exit 0" "requeued: srun exits 0"
expect_output "resuming from .*step-" "requeued: resumed from a checkpoint"
same_result "$TMP/ref" "$TMP/batch" "batch job preempted at step >= $k, requeued"
finish
