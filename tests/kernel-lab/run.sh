#!/bin/bash
# Boots the lab VM (Debian's kernel under QEMU/TCG), shares a host folder with it over 9p, runs a
# script from that folder in the guest, streams the guest's console, and exits 0 only if the script
# passed. A guest that hangs is killed after the timeout and counts as a failure.
#
# usage: run.sh [-t SECONDS] [-m MIB] [-M microvm|pc] SHARE SCRIPT [HOSTFILE[=NAME]...]
#   SHARE     host folder, created if missing; the guest sees it at /mnt/host (env SHARE), read-write
#   SCRIPT    a script in SHARE (path relative to SHARE), or a host file, copied into SHARE first;
#             the guest runs it with bash, in /mnt/host
#   HOSTFILE  host files copied to SHARE/bin/ (as NAME if given), e.g. test binaries, plugins
# env: KERNEL_LAB_DIR work/cache folder; LAB_TIMEOUT (300), LAB_MEM (512), LAB_MACHINE (microvm)
# exit: 0 passed; 1 the guest script failed (its status is printed); 2 usage; 3 the guest timed
#       out; 4 the guest died without a status (panic, oops) or QEMU failed
# The console is also saved to SHARE/console.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KERNEL_LAB_DIR=${KERNEL_LAB_DIR:-$HERE/work}
timeout_s=${LAB_TIMEOUT:-300}
mem=${LAB_MEM:-512}
machine=${LAB_MACHINE:-microvm}

usage() { sed -n '6,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
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

qemu=(qemu-system-x86_64 "${machine_args[@]}" -accel tcg -cpu max -m "$mem" -smp 1
  -nodefaults -no-user-config -display none -no-reboot
  -chardev stdio,id=con,signal=off -serial chardev:con
  -kernel "$W/kernel/vmlinux" -initrd "$W/initrd.cpio" -append "$append"
  -fsdev "local,id=hs,path=$share,security_model=none" -device "virtio-9p-$dev,fsdev=hs,mount_tag=hostshare"
  -device "virtio-rng-$dev"
  -device isa-debug-exit,iobase=0xf4,iosize=0x04)

log "boot ($machine, ${mem} MiB, timeout ${timeout_s}s): $rel"
start=$(date +%s.%N)
set +e
# -k: QEMU that ignores SIGTERM is killed; timeout also forwards SIGINT/SIGTERM sent to this script.
timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | tr -d '\r' | tee "$share/console.log"
rc=${PIPESTATUS[0]}
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
  log "FAIL: $rel: guest status $status (${secs}s)"
  exit 1
else
  log "FAIL: $rel: guest ended without a status (QEMU exit $rc: panic, oops or QEMU error) (${secs}s)"
  exit 4
fi
