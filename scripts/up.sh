#!/usr/bin/env bash
# Starts a local tug control plane (1, 3 or 5 Raft replicas on loopback) and applies the
# demo workload in manifests/. State, logs and the admin kubeconfig live in ./.tug/.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=1
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) replicas=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--replicas 1|3|5]" >&2; exit 2 ;;
  esac
done
case "$replicas" in 1|3|5) ;; *) echo "--replicas must be 1, 3 or 5" >&2; exit 2 ;; esac

state="$PWD/.tug"
if [ -s "$state/pids" ]; then
  echo "tug is already running (state in $state); run ./scripts/down.sh first" >&2
  exit 1
fi

echo "==> building tug-apiserver, tug-scheduler, tug-controllers and tug"
cargo build -q -p tug-apiserver -p tug-scheduler -p tug-controllers -p tug-ctl
bin="$PWD/target/debug"

mkdir -p "$state"
peers=""
for i in $(seq 1 "$replicas"); do peers+="${peers:+,}$i=127.0.0.1:$((2379 + i))"; done

kubeconfig="$state/pki/admin.kubeconfig"
for i in $(seq 1 "$replicas"); do
  port=$((6442 + i))
  echo "==> starting tug-apiserver replica $i on https://127.0.0.1:$port"
  # Replica 1 creates the cluster PKI (CA, serving, peer and admin certificates) once.
  init=()
  [ "$i" = 1 ] && init=(--init)
  "$bin/tug-apiserver" --id "$i" --peers "$peers" --listen "127.0.0.1:$port" \
    --data-dir "$state/replica-$i" --pki-dir "$state/pki" "${init[@]}" \
    >"$state/replica-$i.log" 2>&1 &
  echo $! >>"$state/pids"
  if [ "$i" = 1 ]; then
    for _ in $(seq 1 100); do [ -s "$kubeconfig" ] && break; sleep 0.1; done
  fi
done

echo "==> waiting for the API"
tug() { "$bin/tug" --kubeconfig "$kubeconfig" "$@"; }
for _ in $(seq 1 100); do
  tug get namespaces >/dev/null 2>&1 && break
  sleep 0.2
done
tug get namespaces >/dev/null || { echo "the API did not come up; see $state/replica-*.log" >&2; exit 1; }

for component in scheduler controllers; do
  echo "==> starting tug-$component"
  "$bin/tug-$component" --kubeconfig "$kubeconfig" >"$state/$component.log" 2>&1 &
  echo $! >>"$state/pids"
done

echo "==> applying manifests/"
tug apply -f manifests/
echo
tug get deployments
echo
tug get services -A
echo
tug get jobs
echo
sleep 2
tug get replicasets
echo
tug get pods
cat <<EOT

tug's control plane is running: $replicas apiserver replica(s), the scheduler and the
controllers (logs in $state/*.log).
Use it with:
  export KUBECONFIG=$kubeconfig
  $bin/tug get deployments        # or: kubectl get deployments
Stop it with ./scripts/down.sh.
The Deployment's and the Job's Pods stay Pending: there are no nodes yet (the node
agent, which runs containers, is the next issue). \`tug get events\` shows why.
EOT
