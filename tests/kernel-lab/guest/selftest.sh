#!/bin/bash
# The lab's self-test, run in the guest by ../selftest.sh: proves the kernel features that the
# ipvlan and SR-IOV delegates' tests rely on, reading every value back from the kernel.
# Needs $SHARE/bin/lab-probe, a static Rust binary (init copies it to $LAB_BIN).
# shellcheck disable=SC2086 # names and addresses here are fixed words
# shellcheck source=lib.sh
. "$LAB_LIB"

NS=lab-self

lab_section "kernel $(uname -r)"
for m in ipvlan macvlan 8021q dummy veth netdevsim 9p; do
  check "module $m loaded" grep -q "^$m " /proc/modules
done
check "netns $NS" ip netns add $NS

lab_section "ipvlan l2, l3, l3s on dummy parents inside a netns"
# One parent per mode: every ipvlan on a parent shares the parent's mode.
n=0
for mode in l2 l3 l3s; do
  n=$((n + 1))
  parent=pd-$mode
  check "dummy $parent" ip -n $NS link add $parent type dummy
  check "ipvlan $mode on $parent" ip -n $NS link add ipv-$mode link $parent type ipvlan mode $mode
  check "links up" sh -c "ip -n $NS link set $parent up && ip -n $NS link set ipv-$mode up"
  check "address on ipv-$mode" ip -n $NS addr add 192.0.2.$n/24 dev ipv-$mode
  load_link -n $NS $parent
  parent_mac=$(jv '.address')
  load_link -n $NS ipv-$mode
  check_eq "ipv-$mode kind" "$(jv '.linkinfo.info_kind')" ipvlan
  check_eq "ipv-$mode mode" "$(jv '.linkinfo.info_data.mode')" $mode
  check_eq "ipv-$mode parent" "$(jv '.link')" $parent
  check_eq "ipv-$mode operstate" "$(jv '.operstate')" UNKNOWN
  check_eq "ipv-$mode shares the parent's MAC" "$(jv '.address')" "$parent_mac"
  check_eq "ipv-$mode address" "$(ipv4_of -n $NS ipv-$mode)" 192.0.2.$n/24
done
check "ipvlan l2 private" ip -n $NS link add ipv-priv link pd-l2 type ipvlan mode l2 private
load_link -n $NS ipv-priv
check_eq "ipv-priv flag" "$(jv '.linkinfo.info_data.private')" true
check_fails "macvlan refused on an ipvlan parent" ip -n $NS link add mv0 link pd-l2 type macvlan mode bridge

# What a CNI plugin does: create on the host's parent, move into the pod's netns, rename.
check "host parent" ip link add hostpd type dummy
check "ipvlan on the host parent" ip link add tmp-ipv link hostpd type ipvlan mode l3
check "moved into $NS as net1" ip link set tmp-ipv netns $NS name net1
load_link -n $NS net1
check_eq "net1 kind after the move" "$(jv '.linkinfo.info_kind')" ipvlan
check_eq "net1 mode after the move" "$(jv '.linkinfo.info_data.mode')" l3
check_fails "tmp-ipv gone from the host ns" ip link show dev tmp-ipv

lab_section "802.1q"
check "vlan 100 on pd-l2" ip -n $NS link add link pd-l2 name pd-l2.100 type vlan id 100
load_link -n $NS pd-l2.100
check_eq "vlan kind" "$(jv '.linkinfo.info_kind')" vlan
check_eq "vlan id" "$(jv '.linkinfo.info_data.id')" 100
check_eq "vlan protocol" "$(jv '.linkinfo.info_data.protocol')" 802.1Q
check_eq "vlan parent" "$(jv '.link')" pd-l2
check "802.1ad vlan 200 on pd-l3" ip -n $NS link add link pd-l3 name pd-l3.200 type vlan proto 802.1ad id 200
load_link -n $NS pd-l3.200
check_eq "802.1ad protocol" "$(jv '.linkinfo.info_data.protocol')" 802.1ad
check_fails "vlan id 4095 refused" ip -n $NS link add link pd-l2 name bad.4095 type vlan id 4095

lab_section "netdevsim as an SR-IOV PF"
DEV=/sys/bus/netdevsim/devices/netdevsim10
check "new_device 10 1" sh -c 'echo "10 1" > /sys/bus/netdevsim/new_device'
PF=
for link in "$DEV"/net/*; do [[ -e $link ]] && PF=${link##*/} && break; done # netdevsim names it ethN
check "PF netdev present" test -n "$PF"
PF=${PF:-none}
load_vfs() { # read the PF back; the check keeps a failed read from passing "absent" checks
  jload "$(ip "$@" -j link show dev "$PF" 2>/dev/null)" '.[0] // {}'
  check_eq "PF $PF read back" "$(jv .ifname)" "$PF"
}
check "sriov_numvfs=4" sh -c "echo 4 > $DEV/sriov_numvfs"
check_eq "sriov_numvfs" "$(cat $DEV/sriov_numvfs 2>/dev/null)" 4
load_vfs
check_eq "VF 3 listed" "$(jv '.vfinfo_list[3].vf')" 3
check_eq "no VF 4" "$(jv '.vfinfo_list[4].vf' none)" none

check "vf 0 mac" ip link set $PF vf 0 mac 02:00:5e:10:00:01
check "vf 0 vlan 100 qos 3" ip link set $PF vf 0 vlan 100 qos 3
check "vf 0 spoofchk on, trust on" ip link set $PF vf 0 spoofchk on trust on
check "vf 1 max_tx_rate 100 min_tx_rate 10" ip link set $PF vf 1 max_tx_rate 100 min_tx_rate 10
check "vf 2 state disable" ip link set $PF vf 2 state disable
check "vf 3 state enable, spoofchk on" ip link set $PF vf 3 state enable spoofchk on
load_vfs
check_eq "vf 0 mac" "$(jv '.vfinfo_list[0].address')" 02:00:5e:10:00:01
check_eq "vf 0 vlan" "$(jv '.vfinfo_list[0].vlan_list[0].vlan')" 100
check_eq "vf 0 qos" "$(jv '.vfinfo_list[0].vlan_list[0].qos')" 3
check_eq "vf 0 spoofchk" "$(jv '.vfinfo_list[0].spoofchk')" true
check_eq "vf 0 trust" "$(jv '.vfinfo_list[0].trust')" true
check_eq "vf 1 max_tx_rate" "$(jv '.vfinfo_list[1].rate.max_tx')" 100
check_eq "vf 1 min_tx_rate" "$(jv '.vfinfo_list[1].rate.min_tx')" 10
check_eq "vf 1 trust untouched" "$(jv '.vfinfo_list[1].trust')" false
check_eq "vf 1 mac untouched" "$(jv '.vfinfo_list[1].address')" 00:00:00:00:00:00
check_eq "vf 2 state" "$(jv '.vfinfo_list[2].link_state')" disable
check_eq "vf 3 state" "$(jv '.vfinfo_list[3].link_state')" enable
check_eq "vf 3 spoofchk" "$(jv '.vfinfo_list[3].spoofchk')" true
# Restoring a VF (what DEL does) must really take effect.
check "vf 0 restored" ip link set $PF vf 0 mac 00:00:00:00:00:00 vlan 0 spoofchk off trust off
check "vf 2 state auto" ip link set $PF vf 2 state auto
load_vfs
check_eq "vf 0 mac restored" "$(jv '.vfinfo_list[0].address')" 00:00:00:00:00:00
check_eq "vf 0 vlan restored" "$(jv '.vfinfo_list[0].vlan_list[0].vlan' 0)" 0
check_eq "vf 0 spoofchk restored" "$(jv '.vfinfo_list[0].spoofchk')" false
check_eq "vf 0 trust restored" "$(jv '.vfinfo_list[0].trust')" false
check_eq "vf 2 state restored" "$(jv '.vfinfo_list[2].link_state')" auto
check_fails "vf 4 does not exist" ip link set $PF vf 4 mac 02:00:5e:10:00:05
check_fails "min_tx_rate above max_tx_rate refused" ip link set $PF vf 1 max_tx_rate 10 min_tx_rate 100

check "vf 1 mac before the move" ip link set $PF vf 1 mac 02:00:5e:10:00:02
check "PF moved into $NS" ip link set $PF netns $NS
load_vfs -n $NS
check_eq "vf 1 mac survives the move" "$(jv '.vfinfo_list[1].address')" 02:00:5e:10:00:02
check_eq "vf 1 rate survives the move" "$(jv '.vfinfo_list[1].rate.max_tx')" 100
check "PF back to the root ns" ip -n $NS link set $PF netns 1
check "sriov_numvfs=0" sh -c "echo 0 > $DEV/sriov_numvfs"
load_vfs
check_eq "no VFs left" "$(jv '.vfinfo_list[0].vf' none)" none
check "del_device 10" sh -c 'echo 10 > /sys/bus/netdevsim/del_device'
check_fails "device gone" test -e $DEV

lab_section "static Rust binary inside the netns"
PROBE=$LAB_BIN/lab-probe
check "lab-probe shared" test -x "$PROBE"
# A root holding nothing but the binary and /proc: it can only run if it is fully static.
BARE=/tmp/bare-root
mkdir -p $BARE/proc && cp "$PROBE" $BARE/lab-probe && mount -t proc proc $BARE/proc
check "static lab-probe sees exactly the netns's links, in a bare root" \
  ip netns exec $NS chroot $BARE /lab-probe expect-links \
  pd-l2 pd-l3 pd-l3s ipv-l2 ipv-l3 ipv-l3s ipv-priv net1 pd-l2.100 pd-l3.200
root_ns=$("$PROBE" netns 2>&1)
pod_ns=$(ip netns exec $NS "$PROBE" netns 2>&1)
check "lab-probe in the root ns: $root_ns" test "${root_ns#net:}" != "$root_ns"
check "lab-probe in $NS: $pod_ns, another netns" test "${pod_ns#net:}" != "$pod_ns" -a "$pod_ns" != "$root_ns"
check_run "lab-probe lists the links of $NS" ip netns exec $NS "$PROBE" links
check_fails "lab-probe reports a missing link" ip netns exec $NS "$PROBE" expect-links nosuch0

lab_finish
