#!/usr/bin/env bash
# Stops the cluster started by scripts/up.sh (by the PIDs it recorded), stops its pods'
# containers and removes their network, cgroups and mounts, then its state in ./.tug/.
set -euo pipefail
cd "$(dirname "$0")/.."
state="$PWD/.tug"
if [ -s "$state/pids" ]; then
  while read -r pid; do
    kill "$pid" 2>/dev/null || true
  done <"$state/pids"
  # Give them a moment to exit cleanly before the state goes away.
  for pid in $(cat "$state/pids"); do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
fi
if [ -d "$state/agent" ]; then
  "$PWD/target/debug/tug-agent" --root-dir "$state/agent" --cleanup || echo "warning: tug-agent --cleanup failed" >&2
fi
rm -rf "$state"
echo "tug stopped"
