#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs everything (format, lints, all tests,
# the kernel lab). Run as root on a fresh Debian machine; CI runs exactly this through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { echo; echo "=== $* ($(date +%T))"; }

step "install test dependencies"
bash tests/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --no-fail-fast

step "release build: the demo and the Kubernetes source"
bash tests/smoke-release.sh

if [ -x tests/kernel-lab/run-tests.sh ]; then
  step "kernel lab (ipvlan, 802.1q, netdevsim SR-IOV in QEMU)"
  bash tests/kernel-lab/run-tests.sh
fi

if [ -x crds/fuzz/run-bounded.sh ]; then
  step "fuzz the annotation parsers (bounded)"
  bash crds/fuzz/run-bounded.sh
fi

step "all tests passed"
