# Helpers for guest test scripts (bash). In the guest this file is /lab/lib.sh, and $LAB_LIB names it:
#   . "$LAB_LIB"
#   check "ipvlan l2 on d0" ip link add ipv0 link d0 type ipvlan mode l2
#   check_eq "mode" "$(ip -j -d link show ipv0 | jq -r '.[0].linkinfo.info_data.mode')" l2
#   lab_finish          # prints "NAME: N passed, N failed" and exits 0 only if all passed
# Every check prints one PASS:/FAIL: line. A script that ran no check fails: it proved nothing.
set -uo pipefail

LAB_NAME=${LAB_NAME:-$(basename "${0%.sh}")}
LAB_PASSED=0
LAB_FAILED=0

lab_pass() { LAB_PASSED=$((LAB_PASSED + 1)); echo "PASS: $*"; }
lab_fail() { LAB_FAILED=$((LAB_FAILED + 1)); echo "FAIL: $*"; }
lab_section() { echo "--- $*"; }

# check DESC CMD...: CMD must succeed.
check() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then lab_pass "$desc"; else lab_fail "$desc: $* -> $out"; fi
}

# check_fails DESC CMD...: CMD must fail (the kernel or a plugin must refuse it).
check_fails() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then lab_fail "$desc: succeeded but should fail: $* -> $out"; else lab_pass "$desc"; fi
}

# check_run DESC CMD...: like check, but shows CMD's output as it comes (indented): for test
# binaries that print their own report, e.g. check_run "sriov netlink" "$LAB_BIN/vf_netlink-1a2b"
check_run() {
  local desc=$1 rc
  shift
  "$@" 2>&1 | sed 's/^/    /'
  rc=${PIPESTATUS[0]}
  if ((rc == 0)); then lab_pass "$desc"; else lab_fail "$desc: $* -> exit $rc"; fi
}

# check_eq DESC ACTUAL EXPECTED
check_eq() {
  if [[ $2 == "$3" ]]; then lab_pass "$1 = $3"; else lab_fail "$1: got '$2', want '$3'"; fi
}

# jq takes about 0.2 s to start under TCG, so a document is flattened by ONE jq call into the
# associative array JV (path -> value), and each value is then read with jv, without jq:
#   jload "$(ip -j link show dev eth0)" '.[0]'     # optional root filter
#   jv .address; jv .vfinfo_list[1].rate.max_tx; jv .vlan_list[0].vlan 0   # default if absent
# Paths name object keys as .key and array items as [N]. A path that is absent prints
# "<absent PATH>" (or the default), so a check_eq on it fails instead of comparing empty strings.
declare -A JV=()
jload() {
  local key value
  JV=()
  while IFS=$'\t' read -r key value; do
    JV[$key]=$value
  done < <(jq -r "${2:-.}"' | paths(type != "object" and type != "array") as $p
      | [($p | map(if type == "number" then "[\(.)]" else ".\(.)" end) | join("")),
         (getpath($p) | tostring)] | @tsv' <<<"$1" 2>/dev/null)
}
jv() {
  if [[ -v JV[$1] ]]; then echo "${JV[$1]}"; else echo "${2-<absent $1>}"; fi
}

# load_link [-n NS] IFNAME: jload the link's detailed JSON (ip -j -d link show); JV is empty if absent.
load_link() {
  local nsopt=()
  [[ $1 == -n ]] && { nsopt=(-n "$2"); shift 2; }
  jload "$(ip "${nsopt[@]}" -j -d link show dev "$1" 2>/dev/null)" '.[0] // {}'
}

# ipv4_of [-n NS] IFNAME: the link's IPv4 addresses with prefix length, one a line.
ipv4_of() {
  local nsopt=()
  [[ $1 == -n ]] && { nsopt=(-n "$2"); shift 2; }
  ip "${nsopt[@]}" -j addr show dev "$1" 2>/dev/null \
    | jq -r '.[0].addr_info[]? | select(.family == "inet") | "\(.local)/\(.prefixlen)"' 2>/dev/null
}

lab_finish() {
  if ((LAB_PASSED + LAB_FAILED == 0)); then
    lab_fail "$LAB_NAME ran no check"
  fi
  echo "$LAB_NAME: $LAB_PASSED passed, $LAB_FAILED failed"
  ((LAB_FAILED == 0))
  exit
}
