#!/bin/bash
# Prints, in load order and once each, the module files (relative to the modules folder) that the
# named modules need, dependencies first. Built-in modules are skipped; an unknown module is an error.
#
# usage: modorder.sh ROOT KVER MODULE...    (ROOT holds lib/modules/KVER with a modules.dep)
set -euo pipefail
root=$(cd "$1" && pwd) kver=$2
shift 2
moddir=$root/lib/modules/$kver
declare -A seen=()
for m in "$@"; do
  # modprobe resolves aliases, dependencies and built-ins from modules.dep/modules.builtin.
  out=$(modprobe -d "$root" -S "$kver" --show-depends "$m" 2>&1) || {
    echo "modorder: $m: $out" >&2
    exit 1
  }
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue # "builtin NAME": nothing to load
    rel=${path#"$moddir"/}
    [[ -n ${seen[$rel]:-} ]] && continue
    seen[$rel]=1
    echo "$rel"
  done <<<"$out"
done
