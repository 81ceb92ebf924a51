#!/bin/bash
# The SR-IOV kernel-lab suite: builds the sriov plugin and the vf_netlink and provision_netdevsim
# tests statically, boots the lab guest (tests/kernel-lab) with guest/sriov-netdevsim.sh, where
# netdevsim is the PF. Exit 0 only if every check in the guest passed. env: as tests/kernel-lab/run.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/../../tests/kernel-lab" && pwd)
W=${KERNEL_LAB_DIR:-$LAB/work}

sriov=$("$LAB/build-static.sh" build -p multinet-sriov --bin sriov | grep '/sriov$')
tests=$("$LAB/build-static.sh" test --no-run -p multinet-sriov --test vf_netlink | grep '/vf_netlink-')
provision=$("$LAB/build-static.sh" test --no-run -p multinet-sriov --test provision_netdevsim \
  | grep '/provision_netdevsim-')
share=$W/runs/sriov-netdevsim
rm -rf "$share"
mkdir -p "$share"
exec "$LAB/run.sh" "$share" "$LAB/guest/sriov-netdevsim.sh" "$sriov=sriov" "$tests=vf_netlink" \
  "$provision=provision_netdevsim"
