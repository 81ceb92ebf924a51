#!/bin/bash
# Proves the kernel lab works: builds the static Rust probe, boots the guest and runs
# guest/selftest.sh (ipvlan l2/l3/l3s, 802.1q, netdevsim SR-IOV VF settings, a static binary in a netns).
# Exit 0 only if every check in the guest passed. env: as run.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${KERNEL_LAB_DIR:-$HERE/work}

probe=$("$HERE/build-static.sh" build --manifest-path "$HERE/probe/Cargo.toml" | grep '/lab-probe$')
share=$W/runs/selftest
rm -rf "$share"
mkdir -p "$share"
exec "$HERE/run.sh" "$share" "$HERE/guest/selftest.sh" "$probe=lab-probe"
