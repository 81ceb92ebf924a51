#!/bin/bash
# Prepares the kernel lab: host packages, Debian's current kernel (image, headers, source),
# an out-of-tree netdevsim.ko, the uncompressed vmlinux, depmod, and the initramfs.
# Idempotent and cached: every step whose output exists is skipped, so a warm call takes well under a second.
#
# usage: setup.sh [--refresh]
#   --refresh  forget the cached kernel and fetch Debian's current one again
# env:   KERNEL_LAB_DIR  work/cache folder (default: tests/kernel-lab/work)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${KERNEL_LAB_DIR:-$HERE/work}
mkdir -p "$W"
W=$(cd "$W" && pwd)

log() { printf 'kernel-lab setup: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# One setup at a time per work folder: tests may start several labs in parallel.
exec 9>"$W/.setup.lock"
flock 9

if [[ ${1:-} == --refresh ]]; then
  log "refresh: dropping the cached kernel"
  rm -rf "$W/kernel" "$W/debs" "$W/initrd.cpio"
fi

[[ $(id -u) == 0 ]] || die "needs root (apt-get, module build tree); CI runs as root"

# ---- 1. host packages -------------------------------------------------------------------------
HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod iproute2 gcc make xz-utils binutils jq libc6-dev
  containernetworking-plugins)

apt_lists_fresh() {
  # Lists older than a day may name a kernel ABI that Debian has already dropped from the archive.
  [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null) ]]
}
APT_UPDATED=0
apt_update() {
  ((APT_UPDATED)) && return 0
  log "apt-get update"
  apt-get update -q >/dev/null
  APT_UPDATED=1
}
missing_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}
ensure_pkgs() {
  local missing
  mapfile -t missing < <(missing_pkgs "$@")
  ((${#missing[@]})) || return 0
  apt_lists_fresh || apt_update
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}
ensure_pkgs "${HOST_PKGS[@]}"

# ---- 2. which kernel ---------------------------------------------------------------------------
# Resolved once and cached in kernel/kernel.env; --refresh resolves again.
K=$W/kernel
mkdir -p "$K"
if [[ ! -s $K/kernel.env ]]; then
  apt_lists_fresh || apt_update
  resolve() {
    # (awk reads to the end: quitting early would kill apt-cache with SIGPIPE, a failure under pipefail)
    IMG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ && !n++ {print $2}')
    [[ -n $IMG ]] || return 1
    KVER=${IMG#linux-image-}
    VER=$(apt-cache show "$IMG" 2>/dev/null | awk '/^Version:/ && !n++ {print $2}')
    # Headers pull the common headers, kbuild and the compiler the kernel was built with.
    mapfile -t HDR_DEPS < <(apt-cache depends "linux-headers-$KVER" 2>/dev/null \
      | awk '/Depends: /{print $2}' | grep -v '^<')
    SRC=$(apt-cache depends linux-source 2>/dev/null | awk '/Depends: linux-source-/ && !n++ {print $2}')
    [[ -n $VER && -n $SRC && ${#HDR_DEPS[@]} -gt 0 ]]
  }
  resolve || { apt_update; resolve; } || die "cannot resolve Debian's current kernel with apt-cache"
  COMPILER=$(printf '%s\n' "${HDR_DEPS[@]}" | grep '^linux-compiler-' || true)
  # kbuild and common headers must be the image's exact version.
  DEBS=("$IMG=$VER" "linux-headers-$KVER=$VER" "$SRC=$VER")
  for d in "${HDR_DEPS[@]}"; do
    [[ $d == linux-headers-* || $d == linux-kbuild-* ]] && DEBS+=("$d=$VER")
  done
  {
    printf 'KVER=%q\nVER=%q\nSRC=%q\nCOMPILER=%q\n' "$KVER" "$VER" "$SRC" "$COMPILER"
    printf 'DEBS=(%s)\n' "$(printf '%q ' "${DEBS[@]}")"
  } >"$K/kernel.env.tmp"
  mv "$K/kernel.env.tmp" "$K/kernel.env"
  log "kernel: $IMG $VER (source $SRC)"
fi
# shellcheck source=/dev/null
. "$K/kernel.env"
[[ -n $COMPILER ]] && ensure_pkgs "$COMPILER"

# ---- 3. downloads ------------------------------------------------------------------------------
D=$W/debs
mkdir -p "$D"
deb_file() { # NAME=VERSION -> path of the downloaded .deb (epoch-free version, as apt names files)
  local name=${1%%=*} ver=${1#*=}
  local found
  found=$(compgen -G "$D/${name}_${ver#*:}_*.deb") || true
  echo "${found%%$'\n'*}"
}
need=()
for d in "${DEBS[@]}"; do [[ -n $(deb_file "$d") ]] || need+=("$d"); done
if ((${#need[@]})); then
  log "download ${need[*]}"
  rm -rf "$D/.part" && mkdir -p "$D/.part"
  dl() { (cd "$D/.part" && apt-get download -q -o APT::Sandbox::User=root "${need[@]}" >/dev/null); }
  if ! { dl || { apt_update; dl; }; }; then
    # A cached kernel choice whose .debs are gone may have left the archive: choose again, once.
    [[ -z ${LAB_SETUP_RETRIED:-} ]] || die "apt-get download failed"
    log "download failed: resolving the kernel again"
    rm -rf "$K" "$D/.part"
    flock -u 9
    LAB_SETUP_RETRIED=1 exec "$0" "$@"
  fi
  mv "$D"/.part/*.deb "$D"/ && rmdir "$D/.part"
fi

# ---- 4. unpack image and headers ---------------------------------------------------------------
if [[ ! -e $K/root/.done ]]; then
  log "unpack kernel image"
  rm -rf "$K/root"
  dpkg -x "$(deb_file "${DEBS[0]}")" "$K/root"
  touch "$K/root/.done"
fi
MODDIR=$K/root/lib/modules/$KVER
HDR=$K/hdr/usr/src/linux-headers-$KVER
if [[ ! -e $K/hdr/.done ]]; then
  log "unpack headers and kbuild"
  rm -rf "$K/hdr"
  for d in "${DEBS[@]}"; do
    [[ $d == linux-headers-* || $d == linux-kbuild-* ]] && dpkg -x "$(deb_file "$d")" "$K/hdr"
  done
  # Debian's arch Makefile includes the common tree by absolute path; point it into our copy.
  sed -i "s#^include /usr/src/#include $K/hdr/usr/src/#" "$HDR/Makefile"
  touch "$K/hdr/.done"
fi

# ---- 5. the few source files needed: netdevsim and extract-vmlinux ------------------------------
S=$K/src
if [[ ! -e $S/.done ]]; then
  log "unpack netdevsim and extract-vmlinux from $SRC"
  rm -rf "$S" && mkdir -p "$S"
  dpkg --fsys-tarfile "$(deb_file "$SRC=$VER")" | tar -xO "./usr/src/$SRC.tar.xz" \
    | tar -xJ -C "$S" --strip-components=1 "$SRC/drivers/net/netdevsim" "$SRC/scripts/extract-vmlinux"
  touch "$S/.done"
fi

# ---- 6. netdevsim.ko (Debian ships it disabled) -------------------------------------------------
NSIM=$MODDIR/extra/netdevsim.ko
if [[ ! -e $NSIM ]]; then
  log "build netdevsim.ko"
  make -s -C "$HDR" M="$S/drivers/net/netdevsim" CONFIG_NETDEVSIM=m -j"$(nproc)" modules >&2
  mkdir -p "$MODDIR/extra"
  strip --strip-debug -o "$NSIM.tmp" "$S/drivers/net/netdevsim/netdevsim.ko"
  mv "$NSIM.tmp" "$NSIM"
  rm -f "$MODDIR/modules.dep"
fi

# ---- 7. depmod (the .deb has no modules.dep) ----------------------------------------------------
if [[ ! -s $MODDIR/modules.dep ]]; then
  log "depmod"
  depmod -b "$K/root" "$KVER"
fi

# ---- 8. vmlinux: QEMU boots it directly (PVH); the compressed image costs seconds under TCG -------
if [[ ! -s $K/vmlinux ]]; then
  log "extract vmlinux"
  bash "$S/scripts/extract-vmlinux" "$K/root/boot/vmlinuz-$KVER" >"$K/vmlinux.tmp"
  mv "$K/vmlinux.tmp" "$K/vmlinux"
fi

# ---- 9. initramfs (rebuilt when its inputs change) ----------------------------------------------
KERNEL_LAB_DIR=$W "$HERE/build-initramfs.sh"
