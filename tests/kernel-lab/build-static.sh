#!/bin/bash
# Builds fully static Rust executables for the lab guest (its root has no Rust runtime libraries)
# and prints their paths, one a line, on stdout; cargo's own messages go to stderr.
#
# usage: build-static.sh build|test [CARGO ARGS...]
#   build-static.sh build -p multinet-ipvlan --bin ipvlan
#   build-static.sh test --no-run -p multinet-sriov --test vf_netlink
#   build-static.sh build --manifest-path tests/kernel-lab/probe/Cargo.toml
# env: LAB_TARGET_DIR   cargo target dir (default <repo>/target/lab). It is separate from the normal
#                       target dir because the RUSTFLAGS below would otherwise invalidate its cache.
#
# Static glibc: '-C target-feature=+crt-static' on the gnu target (musl is not installed). With an
# explicit --target, RUSTFLAGS apply to the target crates only, not to build scripts or proc-macros.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=x86_64-unknown-linux-gnu
target_dir=${LAB_TARGET_DIR:-$REPO/target/lab}

usage() { awk '/^# usage:/{p=1} p && /^# *$/{exit} p{sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}" >&2; exit 2; }
(($# >= 1)) || usage
sub=$1
shift
case $sub in
  build | test) ;;
  *) echo "build-static.sh: subcommand must be build or test, not $sub" >&2; exit 2 ;;
esac

cd "$REPO"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo "$sub" --target "$TARGET" --target-dir "$target_dir" \
  --message-format=json-render-diagnostics "$@" \
  | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' >"$list"

[[ -s $list ]] || { echo "build-static.sh: cargo produced no executable" >&2; exit 1; }
while read -r exe; do
  # A dynamic executable would fail in the guest with a confusing 'not found'.
  if readelf -lW "$exe" | grep -q 'Requesting program interpreter'; then
    echo "build-static.sh: $exe is dynamically linked" >&2
    exit 1
  fi
  echo "$exe"
done <"$list"
