#!/usr/bin/env bash
# Stop the daemons tests/slurm/slurm-up.sh DIR started (by their pid files; nothing else).
DIR=$(realpath -m "${1:?usage: slurm-down.sh DIR}")
for f in slurmd slurmctld munged; do
  if [ -s "$DIR/$f.pid" ]; then kill "$(cat "$DIR/$f.pid")" 2>/dev/null || true; fi
done
exit 0
