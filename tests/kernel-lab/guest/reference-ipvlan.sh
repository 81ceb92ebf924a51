#!/bin/bash
# ipvlan CNI plugin cases in the lab guest: ADD, CHECK, DEL of l2, l3 and l3s with host-local IPAM,
# checking the result and the kernel's state after each step.
#
# Binaries, in $SHARE/bin (run.sh copies them there):
#   ipvlan, host-local   the reference plugins (containernetworking-plugins, /usr/lib/cni)
#   ipvlan-multinet      optional: multinet's ipvlan. When present, every case runs with it too and
#                        its results and kernel state must equal the reference's.
# Each implementation gets the same fresh world per mode (parent with a fixed MAC, empty IPAM store,
# new netns), so the two runs are comparable byte for byte.
# shellcheck disable=SC2086 # names and addresses here are fixed words
# shellcheck source=lib.sh
. "$LAB_LIB"

BIN=$LAB_BIN
export CNI_PATH=$BIN
OUT=/tmp/ipvlan-cases
mkdir -p $OUT

declare -A SUBNET=([l2]=192.0.2 [l3]=198.51.100 [l3s]=203.0.113)
declare -A PARENT_MAC=([l2]=02:00:5e:00:53:01 [l3]=02:00:5e:00:53:02 [l3s]=02:00:5e:00:53:03)

IMPLS=(reference)
declare -A PLUGIN=([reference]=$BIN/ipvlan)
if [[ -x $BIN/ipvlan-multinet ]]; then
  IMPLS+=(multinet)
  PLUGIN[multinet]=$BIN/ipvlan-multinet
fi
check "reference ipvlan shared" test -x "$BIN/ipvlan"
check "reference host-local shared" test -x "$BIN/host-local"

conf() { # MODE [MASTER] -> network config (cniVersion 1.0.0)
  local mode=$1 master=${2:-lab-$1}
  cat <<EOF
{"cniVersion":"1.0.0","name":"lab-$mode","type":"ipvlan","master":"$master","mode":"$mode",
 "ipam":{"type":"host-local","subnet":"${SUBNET[$mode]}.0/24","dataDir":"$IPAM_DIR"}}
EOF
}

# cni IMPL COMMAND NETNS < config: runs the plugin; stdout to $OUT/last.out, stderr to last.err.
cni() {
  CNI_COMMAND=$2 CNI_CONTAINERID=ctr-$MODE CNI_NETNS=/run/netns/$3 CNI_IFNAME=net1 \
    "${PLUGIN[$1]}" >$OUT/last.out 2>$OUT/last.err
}

# with_prev CONFIG RESULT: the config with prevResult set, as CHECK and DEL receive it.
with_prev() { jq -c --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"; }

# state NS: net1 as the kernel sees it, normalised for comparison (no ifindex, which differs per run).
state() {
  ip -n "$1" -j -d link show dev net1 2>/dev/null | jq -S '.[0] | {
      kind: .linkinfo.info_kind, data: .linkinfo.info_data, flags, mtu, address, operstate}'
  ip -n "$1" -j addr show dev net1 2>/dev/null | jq -S '[.[0].addr_info[] | select(.family == "inet")
      | {local, prefixlen, scope}]'
  ip -n "$1" -j route show 2>/dev/null | jq -S '.'
}

run_cases() { # IMPL MODE
  local impl=$1 mode=$2 ns=pod-$2 parent=lab-$2 result rc
  MODE=$mode
  IPAM_DIR=/run/ipam/$impl-$mode
  local net=${SUBNET[$mode]} tag="$impl $mode"
  lab_section "$tag"

  # A fresh world: parent (fixed MAC), netns, IPAM store.
  ip link del $parent 2>/dev/null
  ip netns del $ns 2>/dev/null
  check "$tag: parent $parent" ip link add $parent address ${PARENT_MAC[$mode]} type dummy
  check "$tag: parent up" ip link set $parent up
  check "$tag: netns $ns" ip netns add $ns
  load_link $parent
  local parent_index
  parent_index=$(jv .ifindex)
  local config
  config=$(conf $mode)

  # ADD
  cni $impl ADD $ns <<<"$config"
  rc=$?
  check_eq "$tag: ADD exit" $rc 0
  [[ $rc == 0 ]] || sed 's/^/    /' $OUT/last.out $OUT/last.err
  result=$(cat $OUT/last.out)
  jq -S . <<<"$result" >$OUT/$impl-$mode.result 2>/dev/null
  jload "$result"
  check_eq "$tag: result cniVersion" "$(jv .cniVersion)" 1.0.0
  check_eq "$tag: result address" "$(jv '.ips[0].address')" $net.2/24
  check_eq "$tag: result gateway" "$(jv '.ips[0].gateway')" $net.1
  check_eq "$tag: result interface name" "$(jv '.interfaces[0].name')" net1
  check_eq "$tag: result interface sandbox" "$(jv '.interfaces[0].sandbox')" /run/netns/$ns
  check_eq "$tag: result interface MAC is the parent's" "$(jv '.interfaces[0].mac')" ${PARENT_MAC[$mode]}
  check_eq "$tag: result ip -> interface 0" "$(jv '.ips[0].interface')" 0

  load_link -n $ns net1
  check_eq "$tag: net1 kind" "$(jv .linkinfo.info_kind)" ipvlan
  check_eq "$tag: net1 mode" "$(jv .linkinfo.info_data.mode)" $mode
  check_eq "$tag: net1 parent (in the host ns)" "$(jv .link_index)" "$parent_index"
  check_eq "$tag: net1 up" "$(jq -r '.[0].flags | index("UP") != null' <<<"$(ip -n $ns -j link show dev net1)")" true
  check_eq "$tag: net1 address" "$(ipv4_of -n $ns net1)" $net.2/24
  check "$tag: IPAM reserved $net.2 for the container" grep -q ctr-$mode $IPAM_DIR/lab-$mode/$net.2
  state $ns >$OUT/$impl-$mode.state

  # CHECK: passes on the state ADD made, fails once the address is gone.
  local checked
  checked=$(with_prev "$config" "$result")
  cni $impl CHECK $ns <<<"$checked"
  rc=$?
  check_eq "$tag: CHECK exit" $rc 0
  [[ $rc == 0 ]] || sed 's/^/    /' $OUT/last.out $OUT/last.err
  check "$tag: address removed behind the plugin's back" ip -n $ns addr del $net.2/24 dev net1
  cni $impl CHECK $ns <<<"$checked"
  check_eq "$tag: CHECK fails without the address" "$?" 1
  check_eq "$tag: CHECK error is CNI error JSON" "$(jq -r 'has("code") and has("msg")' $OUT/last.out 2>&1)" true

  # DEL: link gone, IP released, parent kept; twice is fine.
  cni $impl DEL $ns <<<"$checked"
  check_eq "$tag: DEL exit" $? 0
  check_fails "$tag: net1 gone" ip -n $ns link show dev net1
  check_fails "$tag: IP released" test -e $IPAM_DIR/lab-$mode/$net.2
  check "$tag: parent kept" ip link show dev $parent
  cni $impl DEL $ns <<<"$checked"
  check_eq "$tag: second DEL exit" $? 0

  # DEL after the netns is gone still releases the IP.
  cni $impl ADD $ns <<<"$config"
  check_eq "$tag: ADD again exit" $? 0
  # host-local hands out the address after the last one it reserved.
  check_eq "$tag: ADD again address" "$(jq -r '.ips[0].address' $OUT/last.out 2>&1)" $net.3/24
  check "$tag: IP reserved again" test -e $IPAM_DIR/lab-$mode/$net.3
  check "$tag: netns deleted" ip netns del $ns
  cni $impl DEL $ns <<<"$config"
  check_eq "$tag: DEL without netns exit" $? 0
  check_fails "$tag: IP released without netns" test -e $IPAM_DIR/lab-$mode/$net.3

  # ADD on a parent that does not exist fails with a CNI error.
  check "$tag: netns again" ip netns add $ns
  cni $impl ADD $ns <<<"$(conf $mode nosuch0)"
  rc=$?
  check "$tag: ADD with a missing master fails (exit $rc)" test $rc -ne 0
  check_eq "$tag: ... with CNI error JSON" "$(jq -r 'has("code") and has("msg")' $OUT/last.out 2>&1)" true
  check_fails "$tag: ... and leaves no net1" ip -n $ns link show dev net1
  check_fails "$tag: ... and no IP reserved" test -e $IPAM_DIR/lab-$mode/$net.2

  ip netns del $ns 2>/dev/null
  ip link del $parent 2>/dev/null
}

for impl in "${IMPLS[@]}"; do
  for mode in l2 l3 l3s; do
    run_cases $impl $mode
  done
done

if [[ -n ${PLUGIN[multinet]:-} ]]; then
  lab_section "multinet ipvlan against the reference"
  for mode in l2 l3 l3s; do
    for kind in result state; do
      check "$mode $kind identical" diff -u $OUT/reference-$mode.$kind $OUT/multinet-$mode.$kind
    done
  done
else
  echo "(no \$SHARE/bin/ipvlan-multinet: reference cases only)"
fi

lab_finish
