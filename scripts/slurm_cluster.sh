#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for running the workflow through Snakemake's SLURM executor
# (scripts/slurm_ci.sh, CI). Needs root and Debian's munge, slurmctld, slurmd and slurm-client (installed
# here if missing). No accounting: `--slurm-no-account` in the profile, job status from squeue/scontrol.
#   scripts/slurm_cluster.sh start [STATE_DIR]   writes slurm.conf, starts munged, slurmctld, slurmd
#   scripts/slurm_cluster.sh stop  [STATE_DIR]   stops exactly the daemons it started (by their PID files)
set -euo pipefail
action=${1:?usage: slurm_cluster.sh start|stop [STATE_DIR]}
state=${2:-/tmp/modgap-slurm}
conf=$state/slurm.conf

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null; }
}

write_conf() {
  local node cpus mem
  node=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$state"/{spool,ctld,log,munge}
  cat > "$conf" <<CONF
ClusterName=modgap-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  install_packages
  write_conf
  # munge: a private key and socket, so nothing system-wide is touched.
  [ -f "$state/munge/munge.key" ] || dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 700 "$state/munge"; chmod 400 "$state/munge/munge.key"
  munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge/seed"
  # srun inside a batch job finds its configuration only at the default path: link it there, unless the
  # machine has a SLURM configuration of its own (then export SLURM_CONF for the jobs instead).
  if [ ! -e /etc/slurm/slurm.conf ]; then
    mkdir -p /etc/slurm && ln -s "$conf" /etc/slurm/slurm.conf && touch "$state/linked-etc-conf"
  fi
  SLURM_CONF=$conf slurmctld -f "$conf"
  SLURM_CONF=$conf slurmd -f "$conf"
  for _ in $(seq 1 30); do
    if SLURM_CONF=$conf sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
      echo "slurm_cluster: up ($(SLURM_CONF=$conf sinfo -h -o '%P %D %c %T'))"; echo "export SLURM_CONF=$conf"; return 0
    fi
    sleep 1
  done
  echo "slurm_cluster: the node did not become idle" >&2; tail -n 20 "$state"/log/*.log >&2; return 1
}

stop() {
  local pidfile pid
  for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$pidfile"
  done
  if [ -f "$state/linked-etc-conf" ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$conf" ]; then
    rm -f /etc/slurm/slurm.conf "$state/linked-etc-conf"
  fi
  echo "slurm_cluster: stopped"
}

"$action"
