#!/bin/bash
# multinet's SR-IOV delegate against a real PF: netdevsim with sriov_numvfs=4 is the PF, where every
# VF setting is really programmed; a fake PCI sysfs tree (device-plugin layout, relative links) names
# veth links as the VFs' netdevs. The static `sriov` binary runs ADD, CHECK and DEL as a runtime calls
# it, and each VF setting is read back from the kernel (ip -j link show PF -> vfinfo_list) after ADD
# and after DEL. Then the sriov crate's netdevsim tests (vf_netlink) run here too.
#
# Binaries, in $SHARE/bin (delegates/sriov/run-lab.sh builds and shares them):
#   sriov        multinet's SR-IOV plugin, static
#   vf_netlink   the multinet-sriov test executable `--test vf_netlink`, static
#   provision_netdevsim  the multinet-sriov test executable `--test provision_netdevsim`, static:
#                VF provisioning from a node policy on netdevsim PFs
# shellcheck disable=SC2086 # names and addresses here are fixed words
# shellcheck source=lib.sh
. "$LAB_LIB"

SRIOV=$LAB_BIN/sriov
NSIM=/sys/bus/netdevsim
DEV=$NSIM/devices/netdevsim30
ROOT=/tmp/sriov-fakesys/sys
STATE=/tmp/sriov-state
IPAM=/tmp/sriov-ipam
PF_ADDR=0000:af:00.0

check "sriov binary shared" test -x "$SRIOV"
check "vf_netlink tests shared" test -x "$LAB_BIN/vf_netlink"
check "provision_netdevsim tests shared" test -x "$LAB_BIN/provision_netdevsim"

lab_section "netdevsim PF with 4 VFs"
check "new_device 30 1" sh -c "echo '30 1' > $NSIM/new_device"
PF=
for _ in 1 2 3 4 5 6 7 8 9 10; do
  for p in "$DEV"/net/*; do [[ -e $p ]] && PF=${p##*/}; done
  [[ -n $PF ]] && break
  sleep 0.1
done
check "PF netdev present" test -n "$PF"
PF=${PF:-none}
check "sriov_numvfs=4" sh -c "echo 4 > $DEV/sriov_numvfs"
check "PF up" ip link set $PF up

lab_section "VF netdevs (veth) and the fake sysfs naming them"
check "netns wire" ip netns add wire
# vf_dir N: the fake sysfs directory of VF N.
vf_dir() { echo "$ROOT/bus/pci/devices/0000:af:02.$1"; }
mkdir -p $ROOT/bus/pci/devices $ROOT/bus/pci/drivers/i40e $ROOT/bus/pci/drivers/iavf $ROOT/class/net
pf_dir=$ROOT/bus/pci/devices/$PF_ADDR
mkdir -p $pf_dir/net/$PF
echo 4 >$pf_dir/sriov_numvfs
echo 64 >$pf_dir/sriov_totalvfs
echo pci:v00008086d00001572sv00008086sd00000000bc02sc00i00 >$pf_dir/modalias
ln -s ../../../../bus/pci/drivers/i40e $pf_dir/driver
declare -A ORIG_MAC=()
for i in 0 1 2 3; do
  check "veth sv$i" ip link add sv$i type veth peer name svp$i netns wire
  ORIG_MAC[$i]=$(cat /sys/class/net/sv$i/address)
  d=$(vf_dir $i)
  mkdir -p $d/net/sv$i
  echo 1 >$d/net/sv$i/type
  echo pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00 >$d/modalias
  echo 0 >$d/numa_node
  ln -s ../../../../bus/pci/drivers/iavf $d/driver
  ln -s ../0000:af:02.$i $pf_dir/virtfn$i
  ln -s ../$PF_ADDR $d/physfn
done

# plugin COMMAND CONTAINER NETNS CONFIG: runs the sriov binary as a runtime does; its stdout goes
# to $OUT, its exit status is returned.
OUT=/tmp/sriov-last.out
plugin() {
  CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=net1 CNI_PATH=$LAB_BIN \
    MULTINET_SYSFS_ROOT=$ROOT MULTINET_SRIOV_STATE_DIR=$STATE MULTINET_DEVINFO_DIR=/tmp/sriov-devinfo \
    "$SRIOV" <<<"$4" >$OUT 2>/tmp/sriov-last.err
}

conf() { # DEVICE_ID EXTRA_JSON_MEMBERS
  echo "{\"cniVersion\":\"1.0.0\",\"name\":\"lab-sriov\",\"type\":\"sriov\",\"deviceID\":\"$1\"$2,
   \"ipam\":{\"type\":\"host-local\",\"subnet\":\"192.0.2.0/24\",\"dataDir\":\"$IPAM\"}}"
}

# load_vf N: jload VF N as the PF reports it.
load_vf() { jload "$(ip -j link show dev $PF)" ".[0].vfinfo_list[$1]"; }

lab_section "the PF's view of the VFs before ADD"
load_vf 1
VF1_BEFORE="$(jv .spoofchk)/$(jv .trust)/$(jv .link_state)/$(jv .address)"
check_eq "VF 1 listed" "$(jv .vf)" 1

lab_section "ADD with every VF setting"
ALL=$(conf 0000:af:02.0 ',"vlan":100,"vlanQoS":3,"vlanProto":"802.1ad","mac":"02:5a:00:00:00:01",
  "spoofchk":"on","trust":"on","link_state":"enable","min_tx_rate":10,"max_tx_rate":100')
check "netns pod1" ip netns add pod1
if plugin ADD c1 /run/netns/pod1 "$ALL"; then lab_pass "ADD"; else lab_fail "ADD: $(cat $OUT /tmp/sriov-last.err)"; fi
jload "$(cat $OUT)"
check_eq "result interface" "$(jv .interfaces[0].name)" net1
check_eq "result mac" "$(jv .interfaces[0].mac)" 02:5a:00:00:00:01
check_eq "result pciID" "$(jv .interfaces[0].pciID)" 0000:af:02.0
check_eq "result address" "$(jv .ips[0].address)" 192.0.2.2/24
load_vf 0
check_eq "VF 0 vlan" "$(jv .vlan_list[0].vlan)" 100
check_eq "VF 0 qos" "$(jv .vlan_list[0].qos)" 3
check_eq "VF 0 vlan protocol" "$(jv .vlan_list[0].protocol)" 802.1ad
check_eq "VF 0 admin MAC" "$(jv .address)" 02:5a:00:00:00:01
check_eq "VF 0 spoofchk" "$(jv .spoofchk)" true
check_eq "VF 0 trust" "$(jv .trust)" true
check_eq "VF 0 min_tx_rate" "$(jv .rate.min_tx)" 10
check_eq "VF 0 max_tx_rate" "$(jv .rate.max_tx)" 100
check_eq "VF 0 link state" "$(jv .link_state)" enable
load_vf 1
check_eq "VF 1 untouched" "$(jv .spoofchk)/$(jv .trust)/$(jv .link_state)/$(jv .address)" "$VF1_BEFORE"
load_link -n pod1 net1
check_eq "net1 in pod1, MAC" "$(jv .address)" 02:5a:00:00:00:01
check "net1 up" sh -c "ip -n pod1 -o link show dev net1 | grep -q '[<,]UP[,>]'"
check_eq "net1 address" "$(ipv4_of -n pod1 net1)" 192.0.2.2/24
check_fails "sv0 gone from the host" ip link show dev sv0
check "state record for the VF" test -s $STATE/pci/0000:af:02.0
check "device info written" grep -q '"pci-address":"0000:af:02.0"' /tmp/sriov-devinfo/lab-sriov-c1-net1-device.json

lab_section "CHECK"
if plugin CHECK c1 /run/netns/pod1 "$ALL"; then lab_pass "CHECK passes"; else lab_fail "CHECK: $(cat $OUT)"; fi
ip -n pod1 link set net1 address 02:5a:00:00:00:99
if plugin CHECK c1 /run/netns/pod1 "$ALL"; then
  lab_fail "CHECK passed with a changed MAC"
else
  jload "$(cat $OUT)"
  check_eq "CHECK error code" "$(jv .code)" 101
fi

lab_section "a second pod asking for the same VF, and bad input"
check "netns pod2" ip netns add pod2
if plugin ADD c2 /run/netns/pod2 "$ALL"; then lab_fail "ADD of a taken VF succeeded"; else
  jload "$(cat $OUT)"
  check_eq "taken VF: code" "$(jv .code)" 11
fi
if plugin ADD c2 /run/netns/pod2 "$(conf 0000:af:02.1 ',"vlan":4095')"; then lab_fail "vlan 4095 accepted"; else
  jload "$(cat $OUT)"
  check_eq "vlan 4095: code" "$(jv .code)" 7
  check "vlan 4095: message names vlan" grep -q '\\"vlan\\"' $OUT
fi
check "sv1 still in the host" ip link show dev sv1

lab_section "DEL restores everything"
if plugin DEL c1 /run/netns/pod1 "$ALL"; then lab_pass "DEL"; else lab_fail "DEL: $(cat $OUT /tmp/sriov-last.err)"; fi
load_vf 0
check_eq "VF 0 vlan restored" "$(jv .vlan_list[0].vlan 0)" 0
check_eq "VF 0 admin MAC restored" "$(jv .address)" 00:00:00:00:00:00
check_eq "VF 0 spoofchk restored" "$(jv .spoofchk)" false
check_eq "VF 0 trust restored" "$(jv .trust)" false
check_eq "VF 0 min_tx_rate restored" "$(jv .rate.min_tx)" 0
check_eq "VF 0 max_tx_rate restored" "$(jv .rate.max_tx)" 0
check_eq "VF 0 link state restored" "$(jv .link_state)" auto
load_link sv0
check_eq "sv0 back in the host, original MAC" "$(jv .address)" "${ORIG_MAC[0]}"
check_fails "net1 gone from pod1" ip -n pod1 link show dev net1
check_fails "record gone" test -e $STATE/pci/0000:af:02.0
check_fails "device info gone" test -e /tmp/sriov-devinfo/lab-sriov-c1-net1-device.json
check_fails "IP released" test -e $IPAM/lab-sriov/192.0.2.2
if plugin DEL c1 /run/netns/pod1 "$ALL"; then lab_pass "second DEL"; else lab_fail "second DEL: $(cat $OUT)"; fi

lab_section "DEL after the pod netns is gone"
SOME=$(conf 0000:af:02.2 ',"vlan":42,"trust":"on"')
check "netns pod3" ip netns add pod3
if plugin ADD c3 /run/netns/pod3 "$SOME"; then lab_pass "ADD VF 2"; else lab_fail "ADD VF 2: $(cat $OUT)"; fi
load_vf 2
check_eq "VF 2 vlan" "$(jv .vlan_list[0].vlan)" 42
check "netns pod3 deleted" ip netns del pod3
if plugin DEL c3 /run/netns/pod3 "$SOME"; then lab_pass "DEL with the netns gone"; else lab_fail "DEL: $(cat $OUT)"; fi
load_vf 2
check_eq "VF 2 vlan restored" "$(jv .vlan_list[0].vlan 0)" 0
check_eq "VF 2 trust restored" "$(jv .trust)" false
check_fails "VF 2 record gone" test -e $STATE/pci/0000:af:02.2

lab_section "the sriov crate's netdevsim tests"
check_run "vf_netlink (both sysfs layouts, only requested settings, DPDK, rollback)" \
  "$LAB_BIN/vf_netlink" --test-threads=1

lab_section "VF provisioning from a node policy"
check_run "provision_netdevsim (VFs created, changed through 0, removed; a held VF blocks)" \
  "$LAB_BIN/provision_netdevsim" --test-threads=1

lab_finish
