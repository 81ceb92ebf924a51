#!/bin/bash
# Kernel-lab guest script: multinet-netlink's VF read/write (netdevsim PF) and ipvlan creation,
# driven through examples/netlink-tool.rs and checked against `ip -j`. Run from the repo root:
#
#   exe=$(tests/kernel-lab/build-static.sh build -p multinet-netlink --example netlink-tool)
#   tests/kernel-lab/run.sh /tmp/netlink-lab delegates/netlink/lab/netlink-tool-check.sh "$exe=netlink-tool"
#
# Expected: "netlink-tool-check: 28 passed, 0 failed".
# shellcheck source=/dev/null
. "$LAB_LIB"
T=$LAB_BIN/netlink-tool
echo "10 1" > /sys/bus/netdevsim/new_device
sleep 0.5
PF=$(ls /sys/bus/netdevsim/devices/netdevsim10/net/)
echo 4 > /sys/bus/netdevsim/devices/netdevsim10/sriov_numvfs
check "vf-show runs" $T vf-show "$PF"
$T vf-show "$PF" > /tmp/show0.json; cat /tmp/show0.json
check_eq "4 VFs" "$(jq length /tmp/show0.json)" 4
check "set mac" $T vf-set "$PF" 1 mac 02:11:22:33:44:55
check "set vlan" $T vf-set "$PF" 1 vlan 100 3 802.1Q
check "set spoofchk off" $T vf-set "$PF" 1 spoofchk off
check "set trust on" $T vf-set "$PF" 1 trust on
check "set rate" $T vf-set "$PF" 1 rate 10 200
check "set state" $T vf-set "$PF" 1 state disable
check_fails "vf 4 of 4" $T vf-set "$PF" 4 trust on
check_fails "min > max" $T vf-set "$PF" 2 rate 300 100
$T vf-show "$PF" > /tmp/show1.json; cat /tmp/show1.json
check_eq "mac read back" "$(jq -r '.[1].mac' /tmp/show1.json)" 02:11:22:33:44:55
check_eq "vlan" "$(jq -r '.[1].vlan' /tmp/show1.json)" 100
check_eq "qos" "$(jq -r '.[1].qos' /tmp/show1.json)" 3
check_eq "proto" "$(jq -r '.[1].vlan_proto' /tmp/show1.json)" 802.1Q
check_eq "spoofchk" "$(jq -r '.[1].spoofchk' /tmp/show1.json)" false
check_eq "trust" "$(jq -r '.[1].trust' /tmp/show1.json)" true
check_eq "min" "$(jq -r '.[1].min_tx_rate' /tmp/show1.json)" 10
check_eq "max" "$(jq -r '.[1].max_tx_rate' /tmp/show1.json)" 200
check_eq "state" "$(jq -r '.[1].link_state' /tmp/show1.json)" disable
ip -j link show "$PF" | jq -c '.[0].vfinfo_list[1]'
check_eq "ip agrees on vlan" "$(ip -j link show "$PF" | jq -r '.[0].vfinfo_list[1].vlan_list[0].vlan')" 100
check "set vlan 802.1ad" $T vf-set "$PF" 2 vlan 200 0 802.1ad
$T vf-show "$PF" > /tmp/show2.json
check_eq "qinq proto" "$(jq -r '.[2].vlan_proto' /tmp/show2.json)" 802.1ad
check_eq "qinq vlan" "$(jq -r '.[2].vlan' /tmp/show2.json)" 200
ip -j link show "$PF" | jq -c '.[0].vfinfo_list[2]'
# ipvlan straight into a netns
ip netns add pod1
ip link add lab0 type dummy
check "ipvlan-add l3s" $T ipvlan-add lab0 net1 /run/netns/pod1 l3s private
load_link -n pod1 net1
check_eq "ipvlan kind" "$(jv .linkinfo.info_kind)" ipvlan
check_eq "ipvlan mode" "$(jv .linkinfo.info_data.mode)" l3s
ip -n pod1 -d -j link show net1 | jq -c '.[0].linkinfo'
check_fails "ipvlan duplicate" $T ipvlan-add lab0 net1 /run/netns/pod1 l3s
check_fails "no host link" ip link show net1
lab_finish
