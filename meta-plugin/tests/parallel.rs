//! By default networks are attached one after another (multi-net spec 7.3). With
//! `parallelNetworks`, independent secondary networks are attached at the same time, and a network
//! of any other kind is a barrier that runs after everything before it and before everything
//! after it. Proven without
//! clocks: the macvlan plugin is wrapped by a script that waits for its sibling to have started
//! (which can only happen when both run at once), and a fake bond plugin checks that the
//! interfaces it would enslave already exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Node;
use multinet_testbed::{TestNetns, require_root};

const CONTAINER: &str = "par1";

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Replaces the reference macvlan in CNI_PATH by a wrapper: on ADD, net1 and net2 each wait (up to
/// 5 s) until both have started; net4 fails unless the bond finished. Then the real macvlan runs.
fn wrap_macvlan(node: &Node) {
    let marks = node.path("marks");
    fs::create_dir_all(&marks).unwrap();
    let wrapper = node.bin().join("macvlan");
    fs::remove_file(&wrapper).unwrap();
    write_script(
        &wrapper,
        &format!(
            r#"#!/bin/sh
d={marks}
fail() {{ echo "{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"$1\"}}"; exit 1; }}
if [ "$CNI_COMMAND" = ADD ]; then
  touch "$d/started-$CNI_IFNAME"
  case "$CNI_IFNAME" in
    net1|net2)
      i=0
      while [ ! -e "$d/started-net1" ] || [ ! -e "$d/started-net2" ]; do
        i=$((i+1)); [ $i -gt 100 ] && fail "$CNI_IFNAME: its sibling never started alongside"
        sleep 0.05
      done;;
    net4) [ -e "$d/bond-done" ] || fail "net4 started before the bond finished";;
  esac
fi
exec /usr/lib/cni/macvlan
"#,
            marks = marks.display()
        ),
    );
}

/// A stand-in for a bond plugin: it needs net1 and net2 in the pod before it can run.
fn fake_bond(node: &Node) {
    write_script(
        &node.bin().join("fake-bond"),
        &format!(
            r#"#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  for l in net1 net2; do
    nsenter --net="$CNI_NETNS" ip link show dev $l >/dev/null 2>&1 || {{
      echo "{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"bond: $l is not there yet\"}}"; exit 1; }}
  done
  touch {marks}/bond-done
  echo '{{"cniVersion":"1.0.0","interfaces":[],"ips":[]}}'
fi
exit 0
"#,
            marks = node.path("marks").display()
        ),
    );
}

fn node_with_two_macvlans() -> Node {
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
    wrap_macvlan(&node);
    node
}

fn parallel_conf(node: &Node) -> serde_json::Value {
    let mut conf = node.conf();
    conf["parallelNetworks"] = true.into();
    conf
}

#[test]
fn with_parallel_networks_independent_ones_are_attached_at_once() {
    require_root!();
    let node = node_with_two_macvlans();
    node.add_pod("web", "data,storage");
    let pod = TestNetns::new();
    let conf = parallel_conf(&node);
    node.cni_with("ADD", CONTAINER, "web", pod.path_str(), &conf)
        .ok();
    let mut links = Node::links(&pod);
    links.sort();
    assert_eq!(links, ["eth0", "net1", "net2"]);
    let status = node.network_status("web");
    let names: Vec<&str> = status.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["cluster", "team/data", "team/storage"],
        "status in network order"
    );
    node.cni_with("DEL", CONTAINER, "web", pod.path_str(), &conf)
        .ok();
    node.assert_clean(&pod);
}

#[test]
fn by_default_networks_are_attached_one_after_another() {
    require_root!();
    let node = node_with_two_macvlans();
    node.add_pod("web", "data,storage");
    let pod = TestNetns::new();
    let conf = node.conf();
    // net1 runs alone, so its sibling never starts beside it: the wrapper gives up.
    let (code, msg) = node
        .cni_with("ADD", CONTAINER, "web", pod.path_str(), &conf)
        .err();
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("team/data"), "{msg}");
    assert!(msg.contains("never started alongside"), "{msg}");
    assert!(
        !node.path("marks/started-net2").exists(),
        "net2 must not start while net1 runs"
    );
    node.assert_clean(&pod);
    node.cni_with("DEL", CONTAINER, "web", pod.path_str(), &conf)
        .ok();
}

#[test]
fn a_network_of_another_kind_is_a_barrier_in_annotation_order() {
    require_root!();
    let node = node_with_two_macvlans();
    fake_bond(&node);
    node.add_nad(
        "bond",
        serde_json::json!({"cniVersion":"1.0.0","name":"bond","type":"fake-bond"}),
    );
    node.add_nad("late", node.macvlan_nad("late", "up0", "10.30.0.0/24"));
    node.add_pod("web", "data,storage,bond,late");
    let pod = TestNetns::new();
    let conf = parallel_conf(&node);
    node.cni_with("ADD", CONTAINER, "web", pod.path_str(), &conf)
        .ok();
    let mut links = Node::links(&pod);
    links.sort();
    assert_eq!(links, ["eth0", "net1", "net2", "net4"]);
    node.cni("DEL", CONTAINER, "web", Some(&pod)).ok();
    node.assert_clean(&pod);
}
