#!/bin/bash
# Builds the lab's initramfs ($KERNEL_LAB_DIR/initrd.cpio) from the kernel that setup.sh unpacked:
# busybox, iproute2's ip and bridge, bash and jq (with their libraries), the network modules in load
# order, the guest's /init and the guest helper library. Skipped when nothing it is made of changed.
#
# env: KERNEL_LAB_DIR         work/cache folder (default: tests/kernel-lab/work)
#      LAB_EXTRA_MODULES      more module names to load at boot (space separated)
#      LAB_FORCE=1            rebuild even if up to date
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$(cd "${KERNEL_LAB_DIR:-$HERE/work}" && pwd)
K=$W/kernel
log() { printf 'kernel-lab initramfs: %s\n' "$*" >&2; }

[[ -s $K/kernel.env ]] || { log "ERROR: run setup.sh first"; exit 1; }
# shellcheck source=/dev/null
. "$K/kernel.env"
MODDIR=$K/root/lib/modules/$KVER

# Loaded at boot, in this order after their dependencies. virtio_mmio serves -M microvm, virtio_pci -M pc.
read -ra extra_modules <<<"${LAB_EXTRA_MODULES:-}"
MODULES=(virtio_mmio virtio_pci 9pnet_virtio 9p virtio_rng
  dummy veth macvlan ipvlan 8021q bridge netdevsim "${extra_modules[@]}")
HOST_PROGS=(/bin/busybox /sbin/ip /sbin/bridge /bin/bash /usr/bin/jq)
EXTRA_LIBS=(libgcc_s.so.1) # lets dynamically linked Rust binaries run too

OUT=$W/initrd.cpio
# glibc too: binaries built later (build-static.sh --dynamic) must find the same one in the guest.
INPUTS=("$HERE/init" "$HERE/guest/lib.sh" "$HERE/build-initramfs.sh" "$HERE/modorder.sh" "$K/kernel.env"
  "$MODDIR/modules.dep" "${HOST_PROGS[@]}" /lib/x86_64-linux-gnu/libc.so.6)
MANIFEST="modules: ${MODULES[*]}"

if [[ -s $OUT && -s $W/initrd.libs && -z ${LAB_FORCE:-} && "$(cat "$OUT.manifest" 2>/dev/null)" == "$MANIFEST" ]]; then
  stale=0
  for f in "${INPUTS[@]}"; do [[ $f -nt $OUT ]] && stale=1; done
  ((stale)) || exit 0
fi
log "building $OUT"

R=$W/initramfs.tmp
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,run,tmp,mnt/host,root,lab,usr/bin,usr/sbin,lib/modules,var/lib}
ln -s /run "$R/var/run"
ln -s /tmp "$R/var/tmp"

# busybox applets as links; ip and bridge come from iproute2 (busybox's lack netns and VF support).
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do
  case $a in busybox | ip | bridge | bash | sh) continue ;; esac
  ln -s busybox "$R/bin/$a"
done
# sh is bash: busybox's sh runs its own applets first, so 'sh -c "ip ..."' would get busybox's ip.
ln -s bash "$R/bin/sh"

copy_with_libs() { # copy a host program and the shared libraries ldd names for it
  local prog=$1 lib
  mkdir -p "$R$(dirname "$prog")"
  cp -L "$prog" "$R$prog"
  while read -r lib; do
    [[ -e $R$lib ]] && continue
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
  done < <(ldd "$prog" 2>/dev/null | grep -o '/[^ ]*' || true)
}
for p in "${HOST_PROGS[@]}"; do copy_with_libs "$p"; done
for l in "${EXTRA_LIBS[@]}"; do
  src=$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ && !found++ {print $NF}')
  [[ -n $src ]] && { mkdir -p "$R$(dirname "$src")"; cp -L "$src" "$R$src"; }
done

printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"

# Modules, flat in load order. Compressed ones are unpacked: busybox insmod reads plain .ko only.
"$HERE/modorder.sh" "$K/root" "$KVER" "${MODULES[@]}" >"$R/etc/modules.order.src"
: >"$R/etc/modules.order"
while read -r rel; do
  name=$(basename "$rel")
  case $name in
    *.ko.xz) xz -dc "$MODDIR/$rel" >"$R/lib/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$R/lib/modules/${name%.zst}"; name=${name%.zst} ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" >"$R/lib/modules/${name%.gz}"; name=${name%.gz} ;;
    *) cp "$MODDIR/$rel" "$R/lib/modules/$name" ;;
  esac
  echo "$name" >>"$R/etc/modules.order"
done <"$R/etc/modules.order.src"
rm "$R/etc/modules.order.src"
echo "$KVER" >"$R/etc/lab-kernel"

install -m 0755 "$HERE/init" "$R/init"
install -m 0644 "$HERE/guest/lib.sh" "$R/lab/lib.sh"

# Uncompressed: QEMU just copies it, while a gzip image costs the guest a second to unpack under TCG.
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$MANIFEST" >"$OUT.manifest"
# The shared libraries the guest has, for build-static.sh --dynamic to check executables against.
find "$R" -name '*.so*' \( -type f -o -type l \) -printf '%f\n' | sort -u >"$W/initrd.libs"
log "$(du -h "$OUT" | cut -f1), $(wc -l <"$R/etc/modules.order") modules"
rm -rf "$R"
