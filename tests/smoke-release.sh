#!/usr/bin/env bash
# The README's main job exactly as a newcomer runs it (release build, no test-only dependencies
# compiled in), plus one call through the Kubernetes source, so a binary that only works with the
# test dependencies' features cannot pass.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p multinet --bin multinet
bin=target/release/multinet

echo "== multinet demo (release build)"
"$bin" demo

echo "== release binary through the Kubernetes source, API unreachable"
tmp=$(mktemp -d)
# A pod network namespace of the smoke's own: the node's and multinet's own are refused.
ns="mn-smoke-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
cat > "$tmp/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
KC
conf='{"cniVersion":"1.0.0","name":"m","type":"multinet","clusterNetwork":"x","apiTimeoutSeconds":2,"kubeconfig":"'"$tmp"'/kubeconfig","cniDir":"'"$tmp"'/cni"}'
set +e
out=$(echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=smoke CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 \
  CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=p" CNI_PATH=/usr/lib/cni "$bin" 2>"$tmp/stderr")
status=$?
set -e
echo "$out"
if [ "$status" -eq 0 ] || ! echo "$out" | grep -q '"code": *11' || grep -q panicked "$tmp/stderr"; then
  echo "expected a CNI error with code 11 (API unreachable), got exit $status:" >&2
  cat "$tmp/stderr" >&2
  exit 1
fi
echo "smoke: 2 passed, 0 failed"
