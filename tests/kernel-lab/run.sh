#!/bin/bash
# Boots the lab VM (Debian's kernel under QEMU/TCG), shares a host folder with it over 9p, runs a
# script from that folder in the guest, streams the guest's console, and exits 0 only if the script
# passed. A guest that hangs is killed after the timeout and counts as a failure.
#
# usage: run.sh [-t SECONDS] [-m MIB] [-M microvm|pc] SHARE SCRIPT [HOSTFILE[=NAME]...]
#   SHARE     host folder, created if missing; the guest sees it at /mnt/host (env SHARE), read-write
#   SCRIPT    a script in SHARE (path relative to SHARE), or a host file, copied into SHARE first;
#             the guest runs it with bash, in /mnt/host
#   HOSTFILE  host files copied to SHARE/bin/ (as NAME if given), e.g. test binaries, plugins;
#             the guest copies SHARE/bin/ to RAM at boot and names that folder in $LAB_BIN
# env: KERNEL_LAB_DIR work/cache folder; LAB_TIMEOUT (300), LAB_MEM (512), LAB_SMP (1),
#      LAB_MACHINE (microvm, or pc)
# exit: 0 passed; 1 the guest script failed (its status is printed); 2 usage; 3 the guest timed
#       out; 4 the guest died without a status (panic, oops) or QEMU failed
# The console is also saved to SHARE/console.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KERNEL_LAB_DIR=${KERNEL_LAB_DIR:-$HERE/work}
timeout_s=${LAB_TIMEOUT:-300}
mem=${LAB_MEM:-512}
smp=${LAB_SMP:-1}
machine=${LAB_MACHINE:-microvm}

usage() { awk '/^# usage:/{p=1} p && !/^#/{exit} p{sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}" >&2; exit 2; }
while getopts 't:m:M:h' opt; do
  case $opt in
    t) timeout_s=$OPTARG ;;
    m) mem=$OPTARG ;;
    M) machine=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
(($# >= 2)) || usage
share=$1 script=$2
shift 2
log() { printf 'kernel-lab: %s\n' "$*" >&2; }

"$HERE/setup.sh"
W=$(cd "$KERNEL_LAB_DIR" && pwd)

mkdir -p "$share"
share=$(cd "$share" && pwd)
for spec in "$@"; do
  src=${spec%%=*} name=$(basename "${spec%%=*}")
  [[ $spec == *=* ]] && name=${spec#*=}
  [[ -f $src ]] || { log "no such host file: $src"; exit 2; }
  mkdir -p "$share/bin"
  cp -f "$src" "$share/bin/$name"
done

if [[ -f $share/$script ]]; then
  rel=$script
elif [[ -f $script ]]; then
  rel=$(basename "$script")
  [[ $(cd "$(dirname "$script")" && pwd)/$rel -ef $share/$rel ]] || cp -f "$script" "$share/$rel"
else
  log "no such script: $script (neither in $share nor on the host)"
  exit 2
fi
[[ $rel != *[[:space:]]* ]] || { log "script path must not contain spaces: $rel"; exit 2; }

append="console=ttyS0 quiet panic=-1 oops=panic lab.script=/mnt/host/$rel"
# The guest's own watchdog fires first so the console says why; the host's timeout is the backstop.
((timeout_s > 30)) && append+=" lab.timeout=$((timeout_s - 15))"

case $machine in
  microvm)
    # Under TCG the guest's TSC ticks at the host's rate. Giving that rate skips calibration,
    # which otherwise hangs microvm boots now and then.
    tsc_khz=$(awk -F: '/^cpu MHz/{printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
    if [[ -n $tsc_khz && $tsc_khz -gt 0 ]]; then
      append+=" tsc_early_khz=$tsc_khz"
      machine_args=(-M microvm)
      dev=device
    else
      log "host TSC rate unknown: using -M pc"
      machine=pc
    fi
    ;;
  pc) ;;
  *) log "unknown machine $machine (microvm or pc)"; exit 2 ;;
esac
if [[ $machine == pc ]]; then
  machine_args=(-M pc)
  dev=pci
fi

# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
qemu=(qemu-system-x86_64 "${machine_args[@]}" -accel tcg -cpu max -m "$mem" -smp "$smp"
  -nodefaults -no-user-config -display none -no-reboot
  -chardev stdio,id=con,signal=off -serial chardev:con
  -kernel "$W/kernel/vmlinux" -initrd "$W/initrd.cpio" -append "$append"
  -fsdev "local,id=hs,path=$share,security_model=none" -device "virtio-9p-$dev,fsdev=hs,mount_tag=hostshare"
  -device "virtio-rng-$dev"
  -device isa-debug-exit,iobase=0xf4,iosize=0x04)

log "boot ($machine, ${mem} MiB, timeout ${timeout_s}s): $rel"
start=$(date +%s.%N)
# QEMU runs in the background so that this script, interrupted or killed by a signal, stops it
# first: no VM outlives run.sh. timeout kills a hung guest (-k: SIGKILL if SIGTERM is ignored).
console=$(mktemp -u "${TMPDIR:-/tmp}/kernel-lab-console.XXXXXX")
mkfifo "$console"
tr -d '\r' <"$console" | tee "$share/console.log" &
reader=$!
timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null >"$console" 2>&1 &
vm=$!
# shellcheck disable=SC2317 # called from the traps
stop_vm() {
  kill -TERM "$vm" 2>/dev/null && wait "$vm" 2>/dev/null
  rm -f "$console"
}
trap 'stop_vm; exit 130' INT
trap 'stop_vm; exit 143' TERM HUP
trap 'stop_vm' EXIT
set +e
wait "$vm"
rc=$?
wait "$reader"
set -e
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')

if ((rc == 1)); then
  log "PASS: $rel (${secs}s)"
  exit 0
elif ((rc == 124 || rc == 137)); then
  log "FAIL: $rel: guest killed after ${timeout_s}s (${secs}s)"
  exit 3
elif ((rc % 2 == 1)); then
  status=$(((rc - 1) / 2))
  case $status in
    100) why="a kernel module did not load" ;;
    101) why="the share did not mount or its bin/ did not copy" ;;
    102) why="the guest found no script" ;;
    103) log "FAIL: $rel: the guest's watchdog stopped the script (${secs}s)"; exit 3 ;;
    *) why="the script failed" ;;
  esac
  log "FAIL: $rel: guest status $status: $why (${secs}s)"
  exit 1
else
  log "FAIL: $rel: guest ended without a status (QEMU exit $rc: panic, oops or QEMU error) (${secs}s)"
  exit 4
fi
