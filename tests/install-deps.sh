#!/usr/bin/env bash
# Installs what multinet's tests and demo need on a fresh Debian machine (run as root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail
# containerd and runc: the test that runs a real pod sandbox (gcc builds its pause program).
pkgs=(iproute2 containernetworking-plugins iputils-ping procps strace containerd runc gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The reference plugins are the differential oracle and the demo's cluster network.
test -x /usr/lib/cni/host-local || { echo "containernetworking-plugins did not install /usr/lib/cni" >&2; exit 1; }
