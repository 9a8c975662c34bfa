#!/usr/bin/env bash
# The front door: creates a local tug cluster on this machine (kind-like, no Docker:
# each node is a network namespace with its own IP and hostname on one bridge), deploys
# the seeds' demo workload from manifests/ and shows it answering.
#
#   ./scripts/up.sh [--control-planes 1|3|5] [--workers N] [--name NAME]
#
# Needs root (the node agents create namespaces, cgroups and mounts). Installs the Debian
# packages it needs when they are missing. ./scripts/down.sh deletes the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

name=tug
control_planes=1
workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    --control-planes) control_planes=${2:?}; shift 2 ;;
    --workers) workers=${2:?}; shift 2 ;;
    --name) name=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--control-planes 1|3|5] [--workers N] [--name NAME]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "the node agents create namespaces, cgroups and mounts: run this as root" >&2
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

echo "==> building tug (apiserver, scheduler, controllers, agent, shim, image tool, CLI)"
cargo build -q -p tug-apiserver -p tug-scheduler -p tug-controllers -p tug-agent -p tug-runtime -p tug-image -p tug-ctl
bin="$PWD/target/debug"
tug() { "$bin/tug" "$@"; }

echo "==> creating cluster $name ($control_planes control plane(s), $workers worker(s))"
tug cluster create --name "$name" --control-planes "$control_planes" --workers "$workers" >/dev/null
KUBECONFIG=$(tug cluster kubeconfig --name "$name")
export KUBECONFIG

echo "==> deploying the seeds' workload from manifests/"
tug apply -f manifests/greeter-job.yaml -f manifests/static-site-deployment.yaml \
  -f manifests/web-service.yaml -f manifests/prod-external-service.yaml
tug rollout status deployment/static-site-deployment --timeout 120s
for _ in $(seq 1 100); do
  [ "$(tug get job greeter -o jsonpath='{.status.succeeded}' 2>/dev/null)" = 1 ] && break
  sleep 0.2
done

echo
tug get nodes -o wide
echo
tug get pods -o wide
echo
tug get services
echo
echo "==> the greeter Job's log:"
tug logs job/greeter
port=$(tug get service web -o jsonpath='{.spec.ports[0].nodePort}')
for ip in $(tug get nodes -o jsonpath='{.items[*].status.addresses[0].address}'); do
  echo "==> the web Service answers on node $ip, port $port:"
  busybox wget -qO- "http://$ip:$port/" | grep '<h1>' || echo "(no answer from $ip:$port)"
done
cat <<EOT

The cluster "$name" is running. Use it with:
  export KUBECONFIG=$KUBECONFIG
  $bin/tug get pods -o wide         # or: kubectl get pods -o wide
  $bin/tug exec -it <pod> -- sh     # a shell in a busybox pod
Delete it with ./scripts/down.sh (or: $bin/tug cluster delete --name $name).
EOT
