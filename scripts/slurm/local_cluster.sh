#!/usr/bin/env bash
# A one-node Slurm cluster in a folder of its own, for trying `srun`/`sbatch`/`scancel` with aligntrain on one
# machine (and for test/cluster/slurm_test.sh). It touches no system configuration: munged runs with its own key
# and socket, and slurmctld/slurmd with a generated slurm.conf whose state, spool, pid and log files all live
# under DIR, on free ports. No systemd or cgroups are needed (proctrack/linuxproc, task/none), so it works in a
# container. Needs Debian's slurm-wlm and munge packages (scripts/setup.sh installs them). The daemons run as the
# user who starts them (SlurmUser): root, or an unprivileged user whose cluster then runs only that user's jobs
# (this worked as user nobody in a gVisor container; a kernel that refuses slurmstepd's setgroups would not let it).
#
#   scripts/slurm/local_cluster.sh start DIR   # configure and start; waits until the node is idle
#   scripts/slurm/local_cluster.sh env DIR     # prints 'export SLURM_CONF=DIR/slurm.conf' (eval it)
#   scripts/slurm/local_cluster.sh stop DIR    # cancel every job, stop the daemons
#   scripts/slurm/local_cluster.sh logs DIR    # the daemons' logs
#
# Then, e.g.:  eval "$(scripts/slurm/local_cluster.sh env DIR)"; srun --mpi=pmix -n 2 hostname
# Settings (environment): SLURM_LOCAL_CPUS (default: nproc, at least 2), SLURM_LOCAL_TIMEOUT (seconds to wait for
# the node to come up, default 60).
set -euo pipefail

die() { printf 'local_cluster.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '8,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
[ "$cmd" != start ] || mkdir -p "$2" 2>/dev/null || die "cannot create $2"
[ -d "$2" ] || die "no cluster in $2 (no such folder)"
DIR=$(cd "$2" && pwd)
CONF=$DIR/slurm.conf
# munged's and slurmd's Unix sockets (and PMIx's, in slurmd's spool) must fit in 107 bytes.
[ ${#DIR} -le 60 ] || die "DIR is too long for the daemons' Unix sockets (${#DIR} > 60 characters): $DIR; use a short one, e.g. \$(mktemp -d /tmp/slurm.XXXXXX)"
PLUGIN_DIR=""
for d in /usr/lib/x86_64-linux-gnu/slurm-wlm /usr/lib/aarch64-linux-gnu/slurm-wlm /usr/lib/slurm /usr/lib64/slurm; do
  [ -e "$d/select_cons_tres.so" ] && { PLUGIN_DIR=$d; break; }
done

show_logs() {  # each daemon's log file, or what it printed where it wrote none (e.g. a slurm.conf error)
  local d f
  for d in munged slurmctld slurmd; do
    f=$DIR/log/$d.log
    [ -s "$f" ] || f=$DIR/log/$d.out
    [ -s "$f" ] || continue
    printf -- '----- %s (last 40 lines) -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_free() {  # nothing accepts a connection on 127.0.0.1:PORT
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_ports() {
  local base tries=0
  while :; do
    base=$((20000 + (RANDOM % 2000) * 2 + ($$ % 2) * 4000))
    if port_free "$base" && port_free $((base + 1)); then
      echo "$base"
      return
    fi
    tries=$((tries + 1))
    [ $tries -lt 50 ] || die "found no two free TCP ports in 20000-28000"
  done
}

start() {
  for b in munged mungekey slurmctld slurmd sinfo srun; do
    command -v "$b" >/dev/null || die "'$b' not found; install Debian's slurm-wlm and munge (scripts/setup.sh does)"
  done
  [ -n "$PLUGIN_DIR" ] || die "no Slurm plugin folder with select_cons_tres.so found"
  if alive "$DIR/run/slurmctld.pid" || alive "$DIR/run/slurmd.pid" || alive "$DIR/run/munged.pid"; then
    die "a cluster is already running in $DIR (stop it first: $0 stop $DIR)"
  fi
  rm -rf "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  # munged refuses a key or socket folder that others can write to.
  chmod 700 "$DIR/munge"
  chmod 755 "$DIR" "$DIR/run" "$DIR/log" "$DIR/state" "$DIR/spool"

  local host cpus user ports mpi
  host=$(hostname -s)
  cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
  [ "$cpus" -ge 2 ] || cpus=2
  user=$(id -un)
  ports=$(pick_ports)
  mpi=none
  [ -e "$PLUGIN_DIR/mpi_pmix.so" ] && mpi=pmix

  # --- munge: own key, socket, pid, log, seed -------------------------------------------------------------
  mungekey --create --keyfile="$DIR/munge/munge.key" --bits=1024 >/dev/null 2>&1 ||
    die "mungekey --create failed"
  chmod 400 "$DIR/munge/munge.key"
  # --force: tolerate a world-writable folder above DIR (e.g. /tmp); the files munged writes are still private.
  # In the foreground, in the background: like slurmctld and slurmd below.
  munged --foreground --force --socket="$DIR/run/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed" \
    >"$DIR/log/munged.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/munged.pid"
  local i
  for i in $(seq 1 100); do
    [ -S "$DIR/run/munge.socket" ] && break
    alive "$DIR/run/munged.pid" || break
    sleep 0.1
  done
  [ -S "$DIR/run/munge.socket" ] || { show_logs; stop_daemons; die "munged did not start (log above)"; }

  # --- slurm.conf ----------------------------------------------------------------------------------------
  cat >"$CONF" <<EOF
# Generated by scripts/slurm/local_cluster.sh for a one-node cluster in $DIR.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ports
SlurmdPort=$((ports + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/run/munge.socket
PluginDir=$PLUGIN_DIR
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups, no systemd: processes are tracked through /proc, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=$mpi
ReturnToService=2
# The node reports the CPUs configured here even where the container shows fewer.
SlurmdParameters=config_overrides
# Seconds between SIGTERM and SIGKILL when a job is cancelled or reaches its time limit.
KillWait=30
InactiveLimit=0
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
# Preemption to try locally: a job in "urgent" preempts jobs in "debug", whose job steps get SIGTERM, then
# GraceTime seconds, then SIGKILL, and are requeued (batch jobs) if still running.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=1 GraceTime=60
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=2 PreemptMode=OFF
EOF
  # A plugstack.conf of our own, so that system SPANK plugins are not loaded.
  : >"$DIR/plugstack.conf"
  echo "PlugStackConfig=$DIR/plugstack.conf" >>"$CONF"

  export SLURM_CONF=$CONF
  # -D (foreground) in the background: the daemons stay in the caller's process group, so a test harness that
  # kills its process group on a timeout takes them along.
  slurmctld -D -i -f "$CONF" >"$DIR/log/slurmctld.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/slurmctld.pid"
  slurmd -D -f "$CONF" -N "$host" >"$DIR/log/slurmd.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/slurmd.pid"

  local timeout=${SLURM_LOCAL_TIMEOUT:-60} t0=$SECONDS state=""
  while :; do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && break
    if ! alive "$DIR/run/slurmctld.pid" || ! alive "$DIR/run/slurmd.pid"; then
      show_logs
      stop_daemons
      die "a Slurm daemon exited during start-up (logs above, in $DIR/log)"
    fi
    if [ $((SECONDS - t0)) -ge "$timeout" ]; then
      show_logs
      stop_daemons
      die "node $host not idle after ${timeout}s (sinfo state: '${state:-no answer}'; logs above, in $DIR/log)"
    fi
    sleep 0.5
  done
  echo "local Slurm cluster up in $DIR: node $host, $cpus CPUs, MpiDefault=$mpi, slurmctld port $ports"
  echo "use it with: export SLURM_CONF=$CONF"
}

kill_pidfile() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_daemons() {
  kill_pidfile "$DIR/run/slurmd.pid"
  kill_pidfile "$DIR/run/slurmctld.pid"
  kill_pidfile "$DIR/run/munged.pid"
}

stop() {
  [ -f "$CONF" ] || die "no cluster in $DIR (no slurm.conf)"
  export SLURM_CONF=$CONF
  if alive "$DIR/run/slurmctld.pid"; then
    # Cancel what still runs, so that no job step outlives the daemons.
    local jobs i
    jobs=$(squeue -h -o '%i' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel --signal=KILL --full $jobs 2>/dev/null || true  # running: at once, no KillWait
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true  # pending
      for i in $(seq 1 50); do
        [ -z "$(squeue -h -t RUNNING,COMPLETING -o '%i' 2>/dev/null || true)" ] && break
        sleep 0.2
      done
    fi
  fi
  stop_daemons
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) [ -f "$CONF" ] || die "no cluster in $DIR (no slurm.conf)"; echo "export SLURM_CONF=$CONF" ;;
  logs) show_logs ;;
  *) usage ;;
esac
