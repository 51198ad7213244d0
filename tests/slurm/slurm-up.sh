#!/usr/bin/env bash
# A single-node Slurm on this machine, for tests/slurm.test.ts: munged (when not already running),
# slurmctld and slurmd on localhost with their own config, state and ports under DIR.
# Usage: tests/slurm/slurm-up.sh DIR   → prints `export SLURM_CONF=DIR/slurm.conf`
# Stop with tests/slurm/slurm-down.sh DIR (kills only the daemons this script started).
set -euo pipefail
DIR=$(realpath -m "${1:?usage: slurm-up.sh DIR}")
mkdir -p "$DIR/state" "$DIR/spool"
HOST=$(hostname -s)
CPUS=${SLURM_TEST_CPUS:-4}
PORT=${SLURM_TEST_PORT:-$((20000 + RANDOM % 20000))}

# munge: the key from the package (created when missing), the daemon when not answering.
if ! (munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1); then
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1; then runuser -u munge -- munged; else munged --force; fi
  pgrep -n -x munged > "$DIR/munged.pid"
  for _ in $(seq 50); do (munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1) && break; sleep 0.1; done
fi

cat > "$DIR/slurm.conf" <<CONF
ClusterName=concordtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
echo "$PORT" > "$DIR/port"
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then echo "export SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.2
done
echo "slurm-up: the node did not become idle; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
sinfo >&2 || true
exit 1
