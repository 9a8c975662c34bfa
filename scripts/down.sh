#!/usr/bin/env bash
# Deletes the local cluster scripts/up.sh created: its processes, containers, network
# namespaces, veths, bridge, nftables rules, mounts, cgroups and state.
#
#   ./scripts/down.sh [--name NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
name=tug
if [ "${1:-}" = "--name" ]; then name=${2:?}; fi
"$PWD/target/debug/tug" cluster delete --name "$name"
