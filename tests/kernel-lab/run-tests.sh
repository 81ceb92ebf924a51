#!/bin/bash
# Every kernel-lab suite, one VM boot each; the CI entry point (tests/run-all.sh calls it).
#   selftest         the lab itself: ipvlan, 802.1q, netdevsim SR-IOV, a static Rust binary in a netns
#   reference-ipvlan the reference ipvlan + host-local plugins, ADD/CHECK/DEL in l2, l3, l3s; and
#                    multinet's ipvlan compared with them once the multinet-ipvlan package has a binary
#   DIR              plug-in suites: every executable DIR/run-lab.sh in the repo (e.g. delegates/sriov),
#                    which builds what it needs, calls run.sh, and exits 0 only if its guest passed
#
# usage: run-tests.sh [SUITE...]         (default: all)
# env:   KERNEL_LAB_DIR, LAB_TIMEOUT, ... as run.sh
#        LAB_IPVLAN_MULTINET  auto (default): build multinet-ipvlan's binary if it has one;
#                             off: reference only; or the path of an ipvlan binary to compare
#        LAB_STATIC=1         build multinet's binaries static into target/lab (a second build of
#                             their dependencies) instead of reusing the normal, dynamic build
# Exit 0 only if every suite passed. Ends with "kernel-lab: N passed, M failed" (suites).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export KERNEL_LAB_DIR=${KERNEL_LAB_DIR:-$HERE/work}
RUNS=$KERNEL_LAB_DIR/runs
log() { printf 'kernel-lab: %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
  # The lab installs packages and runs privileged steps: it needs root, as CI has.
  if [[ ${CI:-} == true ]]; then
    log "FAIL: needs root (CI=true)"
    exit 1
  fi
  log "SKIPPED: needs root"
  exit 0
fi

# Plug-in suites: <dir>/run-lab.sh owned by the code they test, found up to three levels down.
plugin_suites() {
  (cd "$REPO" && find . -maxdepth 4 -path ./target -prune -o -path ./tests/kernel-lab -prune -o \
    -name run-lab.sh -type f -perm -u+x -printf '%h\n') | sed 's#^\./##' | sort
}

suites=("$@")
if ((${#suites[@]} == 0)); then
  mapfile -t plugins < <(plugin_suites)
  suites=(selftest reference-ipvlan ipvlan-multinet "${plugins[@]}")
fi

start=$(date +%s)
"$HERE/setup.sh" || { log "FAIL: setup"; exit 1; }
log "setup done in $(($(date +%s) - start))s"

# multinet's ipvlan binary to compare with the reference, if any (prints its path).
multinet_ipvlan() {
  local mode=${LAB_IPVLAN_MULTINET:-auto} bins
  case $mode in
    off) return 0 ;;
    auto) ;;
    *) echo "$mode"; return 0 ;;
  esac
  bins=$(cd "$REPO" && cargo metadata --no-deps --format-version 1 2>/dev/null \
    | jq -r '.packages[] | select(.name == "multinet-ipvlan") | .targets[]
        | select(.kind | index("bin")) | .name')
  [[ -n $bins ]] || return 0
  if [[ $(wc -l <<<"$bins") != 1 ]]; then
    log "multinet-ipvlan has several binaries ($bins): set LAB_IPVLAN_MULTINET to one"
    return 1
  fi
  local link=(--dynamic)
  [[ ${LAB_STATIC:-} == 1 ]] && link=()
  "$HERE/build-static.sh" "${link[@]}" build -p multinet-ipvlan --bin "$bins" | tail -1
}

run_suite() {
  local suite=$1 share=$RUNS/$1
  rm -rf "$share" && mkdir -p "$share"
  case $suite in
    selftest)
      cargo test -q --manifest-path "$HERE/probe/Cargo.toml" --target-dir "$REPO/target/lab" >&2 || return 1
      local probe
      probe=$("$HERE/build-static.sh" build --manifest-path "$HERE/probe/Cargo.toml" | grep '/lab-probe$') \
        || return 1
      "$HERE/run.sh" "$share" "$HERE/guest/selftest.sh" "$probe=lab-probe"
      ;;
    reference-ipvlan)
      local files=(/usr/lib/cni/ipvlan /usr/lib/cni/host-local) ours
      ours=$(multinet_ipvlan) || return 1
      if [[ -n $ours ]]; then
        log "comparing multinet's ipvlan ($ours) with the reference"
        files+=("$ours=ipvlan-multinet")
      fi
      "$HERE/run.sh" "$share" "$HERE/guest/reference-ipvlan.sh" "${files[@]}"
      ;;
    ipvlan-multinet)
      local ours
      ours=$(multinet_ipvlan) || return 1
      [[ -n $ours ]] || { log "no multinet ipvlan binary"; return 1; }
      "$HERE/run.sh" -t 900 "$share" "$HERE/guest/ipvlan-multinet.sh" \
        /usr/lib/cni/ipvlan /usr/lib/cni/host-local /usr/lib/cni/static "$ours=ipvlan-multinet"
      ;;
    *)
      if [[ -x $REPO/$suite/run-lab.sh ]]; then
        "$REPO/$suite/run-lab.sh"
      else
        log "unknown suite $suite (no $suite/run-lab.sh)"
        return 2
      fi
      ;;
  esac
}

passed=0 failed=0 failures=()
for suite in "${suites[@]}"; do
  echo "=== kernel-lab suite: $suite"
  if run_suite "$suite"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$suite")
  fi
done
log "suites took $(($(date +%s) - start))s in all${failures[*]:+; failed: ${failures[*]}}"
echo "kernel-lab: $passed passed, $failed failed"
((failed == 0))
