#!/bin/bash
# Builds Rust executables for the lab guest and prints their paths, one a line, on stdout; cargo's
# own messages go to stderr. By default fully static, the safe choice (the guest has no Rust runtime
# libraries); --dynamic reuses the normal build instead, as the guest has glibc and libgcc_s.
#
# usage: build-static.sh [--dynamic] build|test [CARGO ARGS...]
#   build-static.sh build -p multinet-ipvlan --bin ipvlan
#   build-static.sh test --no-run -p multinet-sriov --test vf_netlink
#   build-static.sh build --manifest-path tests/kernel-lab/probe/Cargo.toml
#   build-static.sh --dynamic build -p multinet-ipvlan --bin ipvlan
# env: LAB_TARGET_DIR   static builds' target dir (default <repo>/target/lab). It is separate from
#                       the normal target dir because the RUSTFLAGS below would otherwise invalidate
#                       its cache. --dynamic builds go to the normal target dir (CARGO_TARGET_DIR).
#
# Static glibc: '-C target-feature=+crt-static' on the gnu target (musl is not installed). With an
# explicit --target, RUSTFLAGS apply to the target crates only, not to build scripts or proc-macros.
# --dynamic: plain 'cargo build', so in CI it costs nothing after the workspace's own build; each
# library the executable needs must be in the initramfs (checked against work/initrd.libs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=x86_64-unknown-linux-gnu
W=${KERNEL_LAB_DIR:-$HERE/work}

usage() { awk '/^# usage:/{p=1} p && /^# *$/{exit} p{sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}" >&2; exit 2; }
die() { echo "build-static.sh: $*" >&2; exit 1; }

dynamic=0
[[ ${1:-} == --dynamic ]] && { dynamic=1; shift; }
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
artifacts='select(.reason == "compiler-artifact" and .executable != null) | .executable'
if ((dynamic)); then
  cargo "$sub" --message-format=json-render-diagnostics "$@" | jq -r "$artifacts" >"$list"
else
  RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo "$sub" --target "$TARGET" --target-dir "${LAB_TARGET_DIR:-$REPO/target/lab}" \
    --message-format=json-render-diagnostics "$@" | jq -r "$artifacts" >"$list"
fi
[[ -s $list ]] || die "cargo produced no executable"

while read -r exe; do
  if ((dynamic)); then
    [[ -s $W/initrd.libs ]] || die "no $W/initrd.libs: run setup.sh first"
    while read -r lib; do
      grep -qxF "$lib" "$W/initrd.libs" || die "$exe needs $lib, which the guest lacks"
    done < <(ldd "$exe" | awk '$1 ~ /\.so/ && $1 !~ /^linux-vdso/ {n = split($1, p, "/"); print p[n]}')
  elif readelf -lW "$exe" | grep -q 'Requesting program interpreter'; then
    # A dynamic executable would fail in the guest with a confusing 'not found'.
    die "$exe is dynamically linked"
  fi
  echo "$exe"
done <"$list"
