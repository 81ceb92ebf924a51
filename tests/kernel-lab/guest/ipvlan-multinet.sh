#!/bin/bash
# multinet's ipvlan beside the reference ipvlan, in the lab guest (the host kernel has no ipvlan):
# ADD, CHECK, DEL in l2, l3 and l3s for cniVersion 0.3.1, 0.4.0, 1.0.0 and 1.1.0, chained use
# (master and addresses from prevResult), mtu, DEL after the netns is gone, error cases, and
# linkInContainer (ours only: the installed reference predates it). Results and kernel state must
# be identical to the reference's; errors must carry the same code, or the spec's specific code
# where the reference answers its generic 999; ours must leave nothing behind on any error.
#
# Binaries, in $SHARE/bin:
#   ipvlan, host-local, static   the reference plugins (containernetworking-plugins, /usr/lib/cni)
#   ipvlan-multinet              multinet's ipvlan (host-local and static run in-process)
# The installed reference speaks at most CNI 1.0.0: for 1.1.0 it gets the 1.0.0 config, and the
# results are compared without cniVersion (both versions have the same result shape).
#
# Host side:
#   tests/kernel-lab/run.sh -t 900 /tmp/ipvlan-share tests/kernel-lab/guest/ipvlan-multinet.sh \
#     /usr/lib/cni/ipvlan /usr/lib/cni/host-local /usr/lib/cni/static \
#     "$(tests/kernel-lab/build-static.sh --dynamic build -p multinet-ipvlan --bin ipvlan)=ipvlan-multinet"
# shellcheck disable=SC2086 # names and addresses here are fixed words
# shellcheck source=lib.sh
. "$LAB_LIB"

BIN=$LAB_BIN
export CNI_PATH=$BIN
OUT=/tmp/ipvlan-multinet
mkdir -p $OUT

declare -A PLUGIN=([reference]=$BIN/ipvlan [multinet]=$BIN/ipvlan-multinet)
declare -A SUBNET=([l2]=192.0.2 [l3]=198.51.100 [l3s]=203.0.113)
declare -A PARENT_MAC=([l2]=02:00:5e:00:53:11 [l3]=02:00:5e:00:53:12 [l3s]=02:00:5e:00:53:13)
VERSIONS=(0.3.1 0.4.0 1.0.0 1.1.0)

for b in ipvlan host-local static ipvlan-multinet; do
  check "$b shared" test -x "$BIN/$b"
done

# The version each implementation is given: the reference stops at 1.0.0.
version_for() { # IMPL VERSION
  if [[ $1 == reference && $2 == 1.1.0 ]]; then echo 1.0.0; else echo "$2"; fi
}

# cni IMPL COMMAND NETNS [IFNAME] < config: stdout to $OUT/last.out, stderr to last.err.
cni() {
  CNI_COMMAND=$2 CNI_CONTAINERID=ctr-lab CNI_NETNS=/run/netns/$3 CNI_IFNAME=${4:-net1} \
    "${PLUGIN[$1]}" >$OUT/last.out 2>$OUT/last.err
}

with_prev() { jq -c --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"; }

# The result, sorted, without cniVersion when the versions differ by design (1.1.0).
norm_result() { # VERSION < result
  if [[ $1 == 1.1.0 ]]; then jq -S 'del(.cniVersion)'; else jq -S .; fi
}

# state NS: every link, address and route in the netns, without what differs per boot (ifindex,
# lifetimes, counters). IPv6 duplicate address detection of the link-local address (which adds
# its local route when done) is waited for first, so both implementations are seen settled.
state() {
  local i
  for ((i = 0; i < 60; i++)); do
    [[ $(ip -n "$1" -6 -j addr show tentative 2>/dev/null) != *'"local"'* ]] && break
    sleep 0.1
  done
  {
    ip -n "$1" -j -d link show
    ip -n "$1" -j addr show
    ip -n "$1" -4 -j route show table all
    ip -n "$1" -6 -j route show table all
  } 2>/dev/null | jq -S -s '{
      links: [.[0][] | {ifname, flags, mtu, address, operstate, link_type,
              kind: .linkinfo.info_kind, data: .linkinfo.info_data}],
      addrs: [.[1][] | {ifname, a: [.addr_info[] | del(.valid_life_time, .preferred_life_time)]}],
      routes4: .[2], routes6: .[3]}'
}

fresh_world() { # PARENT MAC NETNS
  ip link del $1 2>/dev/null
  ip netns del $3 2>/dev/null
  ip link add $1 address $2 type dummy && ip link set $1 up && ip netns add $3
}

# One implementation through ADD, CHECK, DEL in one mode and version; leaves its result and
# state in $OUT for the comparison.
run_matrix_case() { # IMPL VERSION MODE
  local impl=$1 v=$2 mode=$3 ns=pod-$3 parent=par-$3 net=${SUBNET[$3]}
  local iv tag="$1 $2 $3" config result rc
  iv=$(version_for $impl $v)
  local dir=/run/ipam/$impl-$v-$mode
  check "$tag: fresh world" fresh_world $parent ${PARENT_MAC[$mode]} $ns
  config=$(jq -nc --arg v $iv --arg m $mode --arg p $parent --arg s $net.0/24 --arg d $dir \
    '{cniVersion:$v, name:"lab-\($m)", type:"ipvlan", master:$p, mode:$m,
      ipam:{type:"host-local", subnet:$s, dataDir:$d, routes:[{dst:"0.0.0.0/0"}]}}')

  cni $impl ADD $ns <<<"$config"
  rc=$?
  check_eq "$tag: ADD exit" $rc 0
  ((rc == 0)) || sed 's/^/    /' $OUT/last.out $OUT/last.err
  result=$(cat $OUT/last.out)
  norm_result $v <<<"$result" >$OUT/$impl-$v-$mode.result
  state $ns >$OUT/$impl-$v-$mode.state
  jload "$result"
  [[ $impl == multinet ]] && check_eq "$tag: result cniVersion" "$(jv .cniVersion)" $v
  check_eq "$tag: result MAC is the parent's" "$(jv '.interfaces[0].mac')" ${PARENT_MAC[$mode]}
  load_link -n $ns net1
  check_eq "$tag: net1 mode" "$(jv .linkinfo.info_data.mode)" $mode
  check "$tag: IPAM reserved $net.2" test -e $dir/lab-$mode/$net.2

  local checked
  checked=$(with_prev "$config" "$result")
  cni $impl CHECK $ns <<<"$checked"
  rc=$?
  if [[ $v == 0.3.1 ]]; then
    check_eq "$tag: CHECK refused below 0.4.0 (code)" "$(jq -r .code $OUT/last.out 2>&1)" 1
  else
    check_eq "$tag: CHECK exit" $rc 0
    ((rc == 0)) || sed 's/^/    /' $OUT/last.out $OUT/last.err
    ip -n $ns addr del $net.2/24 dev net1
    cni $impl CHECK $ns <<<"$checked"
    check_eq "$tag: CHECK fails without the address" $? 1
    local code
    code=$(jq -r .code $OUT/last.out 2>&1)
    if [[ $impl == multinet ]]; then
      check_eq "$tag: CHECK mismatch code" "$code" 101
    else
      check "$tag: CHECK error JSON (code $code)" test -n "$code"
    fi
  fi

  cni $impl DEL $ns <<<"$checked"
  check_eq "$tag: DEL exit" $? 0
  check_fails "$tag: net1 gone" ip -n $ns link show dev net1
  check_fails "$tag: IP released" test -e $dir/lab-$mode/$net.2
  cni $impl DEL $ns <<<"$checked"
  check_eq "$tag: second DEL exit" $? 0
  ip netns del $ns
  ip link del $parent
}

for v in "${VERSIONS[@]}"; do
  for mode in l2 l3 l3s; do
    lab_section "matrix $v $mode"
    run_matrix_case reference $v $mode
    run_matrix_case multinet $v $mode
    check "$v $mode: ADD results identical" diff -u $OUT/reference-$v-$mode.result $OUT/multinet-$v-$mode.result
    check "$v $mode: kernel state identical" diff -u $OUT/reference-$v-$mode.state $OUT/multinet-$v-$mode.state
  done
done

# Chained: no master and no IPAM: the master is prevResult's single interface and its addresses
# and routes are reused.
run_chained() { # IMPL VERSION
  local impl=$1 v=$2 iv tag="chained $1 $2" config rc
  iv=$(version_for $impl $v)
  check "$tag: fresh world" fresh_world par-ch 02:00:5e:00:53:21 pod-ch
  local prev='{"interfaces":[{"name":"par-ch"}],"ips":[{"address":"192.0.2.50/24","gateway":"192.0.2.1"}],"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.9.0.0/16","gw":"192.0.2.254"}]}'
  if [[ $iv == 0.* ]]; then
    prev=$(jq -c '.ips[0].version = "4"' <<<"$prev")
  fi
  config=$(jq -nc --arg v $iv --argjson prev "$(jq -c --arg v $iv '.cniVersion = $v' <<<"$prev")" \
    '{cniVersion:$v, name:"lab-chain", type:"ipvlan", mode:"l2", prevResult:$prev}')
  cni $impl ADD pod-ch <<<"$config"
  rc=$?
  check_eq "$tag: ADD exit" $rc 0
  ((rc == 0)) || sed 's/^/    /' $OUT/last.out $OUT/last.err
  norm_result $v <$OUT/last.out >$OUT/chain-$impl-$v.result
  state pod-ch >$OUT/chain-$impl-$v.state
  check_eq "$tag: net1 address from prevResult" "$(ipv4_of -n pod-ch net1)" 192.0.2.50/24
  cni $impl DEL pod-ch <<<"$config"
  check_eq "$tag: DEL exit" $? 0
  check_fails "$tag: net1 gone" ip -n pod-ch link show dev net1
  ip netns del pod-ch
  ip link del par-ch
}

for v in "${VERSIONS[@]}"; do
  lab_section "chained $v"
  run_chained reference $v
  run_chained multinet $v
  check "chained $v: results identical" diff -u $OUT/chain-reference-$v.result $OUT/chain-multinet-$v.result
  check "chained $v: state identical" diff -u $OUT/chain-reference-$v.state $OUT/chain-multinet-$v.state
done

# mtu below the master's, and DEL after the netns is gone (both at 1.0.0, both implementations).
for impl in reference multinet; do
  tag="extras $impl"
  lab_section "$tag"
  dir=/run/ipam/extras-$impl
  check "$tag: fresh world" fresh_world par-x 02:00:5e:00:53:31 pod-x
  ip link set par-x mtu 9000
  config=$(jq -nc --arg d $dir '{cniVersion:"1.0.0", name:"lab-x", type:"ipvlan", master:"par-x",
    mode:"l3", mtu:1400, ipam:{type:"host-local", subnet:"198.51.100.0/24", dataDir:$d}}')
  cni $impl ADD pod-x <<<"$config"
  check_eq "$tag: ADD exit" $? 0
  jq -S . $OUT/last.out >$OUT/extras-$impl.result
  state pod-x >$OUT/extras-$impl.state
  load_link -n pod-x net1
  check_eq "$tag: mtu" "$(jv .mtu)" 1400
  check "$tag: netns deleted" ip netns del pod-x
  cni $impl DEL pod-x <<<"$config"
  check_eq "$tag: DEL without netns exit" $? 0
  check_fails "$tag: IP released" test -e $dir/lab-x/198.51.100.2
  CNI_COMMAND=DEL CNI_CONTAINERID=ctr-lab CNI_NETNS='' CNI_IFNAME=net1 "${PLUGIN[$impl]}" <<<"$config" >$OUT/last.out 2>&1
  check_eq "$tag: DEL with empty CNI_NETNS exit" $? 0
  ip link del par-x
done
check "extras: results identical" diff -u $OUT/extras-reference.result $OUT/extras-multinet.result
check "extras: state identical" diff -u $OUT/extras-reference.state $OUT/extras-multinet.state

# The host has a link named like CNI_IFNAME. This kernel (before 6.13) checks a new link's name
# in the caller's namespace first; ours is created under its pending name (which the host never
# has) and named inside the pod, as the reference does with its temporary name.
for impl in reference multinet; do
  tag="ifname also in the host, $impl"
  lab_section "$tag"
  check "$tag: fresh world" fresh_world par-s 02:00:5e:00:53:61 pod-s
  check "$tag: host link named net1" ip link add net1 type dummy
  config=$(jq -nc --arg d /run/ipam/same-$impl '{cniVersion:"1.0.0", name:"lab-s", type:"ipvlan",
    master:"par-s", mode:"l2", ipam:{type:"host-local", subnet:"192.0.2.0/24", dataDir:$d,
    routes:[{dst:"0.0.0.0/0"}]}}')
  cni $impl ADD pod-s <<<"$config"
  check_eq "$tag: ADD exit" $? 0
  if [[ $impl == multinet ]]; then
    check_eq "$tag: no pending-named link is left in the host" \
      "$(ip -j link show | jq -c '[.[].ifname | select(test("^mn[0-9a-f]{13}$"))]')" '[]'
  fi
  jq -S . $OUT/last.out >$OUT/same-$impl.result
  state pod-s >$OUT/same-$impl.state
  check "$tag: the host's net1 is untouched" ip link show dev net1 type dummy
  cni $impl DEL pod-s <<<"$config"
  check_eq "$tag: DEL exit" $? 0
  check "$tag: the host's net1 is still there" ip link show dev net1
  check_eq "$tag: pod has no net1" "$(ip -n pod-s -j link show | jq -c '[.[].ifname]')" '["lo"]'
  ip link del net1
  ip netns del pod-s
  ip link del par-s
done
check "ifname also in the host: results identical" diff -u $OUT/same-reference.result $OUT/same-multinet.result
check "ifname also in the host: state identical" diff -u $OUT/same-reference.state $OUT/same-multinet.state

# Errors: same code as the reference, or the specific one where it says 999; ours leaves nothing.
# With REFERENCE_ACCEPTS, the reference takes the config silently and only ours refuses it.
run_error() { # NAME OUR_CODE KEY CONFIG_JQ [REFERENCE_ACCEPTS]
  local name=$1 want=$2 key=$3 filter=$4 accepts=${5:-} v impl code
  for v in "${VERSIONS[@]}"; do
    local tag="error $name $v" ref_code=""
    for impl in reference multinet; do
      fresh_world par-e 02:00:5e:00:53:41 pod-e
      local dir=/run/ipam/err-$impl-$v-$name config
      config=$(jq -nc --arg v "$(version_for $impl $v)" --arg d $dir \
        '{cniVersion:$v, name:"lab-e", type:"ipvlan", master:"par-e",
          ipam:{type:"host-local", subnet:"192.0.2.0/24", dataDir:$d}} | '"$filter")
      cni $impl ADD pod-e <<<"$config"
      code=$(jq -r .code $OUT/last.out 2>/dev/null)
      if [[ $impl == reference ]]; then
        ref_code=$code
        [[ $ref_code != null && -n $(ip -n pod-e -j link show dev net1 2>/dev/null) ]] &&
          echo "    note: the reference left net1 behind ($tag)"
      else
        check_eq "$tag: our code" "$code" $want
        if [[ -n $accepts ]]; then
          check_eq "$tag: the reference accepts it" "$ref_code" null
        else
          check "$tag: reference code $ref_code is ours or 999" test "$ref_code" = $want -o "$ref_code" = 999
        fi
        check "$tag: message names $key" grep -qF -- "$key" <<<"$(jq -r .msg $OUT/last.out)"
        check_eq "$tag: error cniVersion" "$(jq -r .cniVersion $OUT/last.out)" $v
        check_eq "$tag: nothing left in the netns" "$(ip -n pod-e -j link show | jq -c '[.[].ifname]')" '["lo"]'
        check_eq "$tag: nothing allocated" "$(compgen -G "$dir/lab-e/[0-9]*" | wc -l)" 0
      fi
      ip netns del pod-e
      ip link del par-e
    done
  done
}

lab_section "errors"
run_error unknown-mode 7 '"mode"' '.mode = "l4"'
run_error no-ipam 7 '"ipam"' 'del(.ipam)'
run_error missing-master 7 '"master"' '.master = "nosuch0"'
run_error mode-wrong-case 7 '"mode"' '.mode = "L2"'
run_error master-not-a-string 7 '"master"' '.master = 5'
run_error mtu-negative 7 '"mtu"' '.mtu = -1' reference-accepts
run_error bad-cidr 7 'subnet' '.ipam.subnet = "192.0.2.0/33"'

# linkInContainer: the master lives in the pod (ours only).
lab_section "linkInContainer"
tag="linkInContainer multinet"
ip netns add pod-l
check "$tag: master in the pod" ip -n pod-l link add par-l address 02:00:5e:00:53:51 type dummy
ip -n pod-l link set par-l up
config='{"cniVersion":"1.1.0","name":"lab-l","type":"ipvlan","master":"par-l","mode":"l2","linkInContainer":true,"ipam":{"type":"static","addresses":[{"address":"192.0.2.77/24"}]}}'
cni multinet ADD pod-l <<<"$config"
check_eq "$tag: ADD exit" $? 0
load_link -n pod-l net1
check_eq "$tag: kind" "$(jv .linkinfo.info_kind)" ipvlan
check_eq "$tag: MAC is the in-pod master's" "$(jv .address)" 02:00:5e:00:53:51
check_eq "$tag: address" "$(ipv4_of -n pod-l net1)" 192.0.2.77/24
cni multinet CHECK pod-l <<<"$(with_prev "$config" "$(cat $OUT/last.out)")"
check_eq "$tag: CHECK exit" $? 0
cni multinet DEL pod-l <<<"$config"
check_eq "$tag: DEL exit" $? 0
check_fails "$tag: net1 gone" ip -n pod-l link show dev net1
check "$tag: master kept" ip -n pod-l link show dev par-l
ip netns del pod-l

lab_finish
