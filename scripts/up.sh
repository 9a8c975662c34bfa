#!/usr/bin/env bash
# Starts a local tug cluster on this machine: a control plane (1, 3 or 5 Raft replicas on
# loopback), the scheduler, the controllers and one node agent that runs the pods as real
# containers (needs root), then applies the demo workload in manifests/ and shows it
# answering. State, logs and the admin kubeconfig live in ./.tug/.
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

if [ "$(id -u)" != 0 ]; then
  echo "the node agent creates namespaces, cgroups and mounts: run this as root" >&2
  exit 1
fi
missing=()
for tool in ip nft unshare nsenter busybox; do command -v "$tool" >/dev/null || missing+=("$tool"); done
dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q "ok installed" || missing+=(libseccomp-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing what is missing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libseccomp-dev busybox-static nftables iproute2 util-linux pkg-config >/dev/null
fi

state="$PWD/.tug"
if [ -s "$state/pids" ]; then
  echo "tug is already running (state in $state); run ./scripts/down.sh first" >&2
  exit 1
fi

echo "==> building tug-apiserver, tug-scheduler, tug-controllers, tug-agent, tug-image and tug"
cargo build -q -p tug-apiserver -p tug-scheduler -p tug-controllers -p tug-agent -p tug-runtime -p tug-image -p tug-ctl
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

echo "==> building the demo images (manifests/images/) into $state/images"
"$bin/tug-image" build-demo --out "$state/images"

node=$(hostname)
echo "==> starting tug-agent (node $node, pods on 10.244.0.0/24 behind bridge tug0)"
"$bin/tug-agent" --node-name "$node" --server https://127.0.0.1:6443 --pki-dir "$state/pki" \
  --root-dir "$state/agent" --node-ip 127.0.0.1 --pod-cidr 10.244.0.0/24 --bridge tug0 \
  --listen 127.0.0.1:10250 --preload-images "$state/images" >"$state/agent.log" 2>&1 &
echo $! >>"$state/pids"
for _ in $(seq 1 100); do
  tug get nodes 2>/dev/null | grep -q " Ready" && break
  sleep 0.2
done
tug get nodes

echo "==> applying manifests/"
tug apply -f manifests/
echo "==> waiting for the demo pods"
for _ in $(seq 1 150); do
  [ "$(tug get pods -l app=static-site 2>/dev/null | grep -c ' Running')" -ge 2 ] && break
  sleep 0.2
done
echo
tug get deployments
echo
tug get services
echo
tug get pods -o wide
echo
ip=$(tug get pods -l app=static-site -o jsonpath='{.items[0].status.podIP}' 2>/dev/null || true)
if [ -z "$ip" ]; then
  ip=$(tug get pods -l app=static-site -o json | sed -n 's/.*"podIP": *"\([0-9.]*\)".*/\1/p' | head -1)
fi
echo "==> the static site answers on its pod IP $ip:"
busybox wget -qO- "http://$ip/" || echo "(no answer yet: see $state/agent.log)"
cat <<EOT

tug is running: $replicas apiserver replica(s), the scheduler, the controllers and a node
agent (logs in $state/*.log).
Use it with:
  export KUBECONFIG=$kubeconfig
  $bin/tug get pods -o wide        # or: kubectl get pods -o wide
  $bin/tug logs job/greeter
Stop it with ./scripts/down.sh (stops the pods and removes everything it made).
EOT
