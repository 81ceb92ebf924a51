//! The multinet binary end to end, as a runtime calls it, with the local-folder cluster source and
//! the reference plugins as delegates (bridge for the cluster network, macvlan + host-local/static
//! for NADs), for every CNI version with each verb.

mod common;

use common::{Node, VERSIONS};
use multinet_testbed::{TestNetns, require_root};
use serde_json::json;

fn two_macvlan_pod(node: &Node) {
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
    node.add_pod(
        "web",
        r#"[{"name":"data"},{"name":"storage","interface":"stor0"}]"#,
    );
}

#[test]
fn pod_gets_cluster_and_two_macvlan_networks_in_every_version() {
    require_root!();
    for version in VERSIONS {
        let node = Node::new(version);
        two_macvlan_pod(&node);
        let pod = TestNetns::new();
        let result = node.cni("ADD", "c1", "web", Some(&pod));
        let result = result.ok();
        assert_eq!(
            result["cniVersion"], *version,
            "result printed in the request's version"
        );
        let ip = result["ips"][0]["address"].as_str().unwrap();
        assert!(ip.starts_with("10.99.0."), "{ip}");
        assert_eq!(
            result["ips"][0].get("version").is_some(),
            version.starts_with("0."),
            "{version}: ips[].version only before 1.0.0"
        );
        let mut links = Node::links(&pod);
        links.sort();
        assert_eq!(links, vec!["eth0", "net1", "stor0"], "{version}");

        let status = node.network_status("web");
        assert_eq!(status.len(), 3, "{status:?}");
        assert_eq!(status[0]["name"], "cluster");
        assert_eq!(status[0]["default"], true);
        assert_eq!(status[1]["name"], "team/data");
        assert_eq!(status[1]["interface"], "net1");
        assert!(
            status[1]["ips"][0]
                .as_str()
                .unwrap()
                .starts_with("10.10.0.")
        );
        assert_eq!(status[2]["interface"], "stor0");
        assert_eq!(status[2]["mac"], pod.link_mac("stor0"));

        if *version != "0.3.1" {
            node.cni("CHECK", "c1", "web", Some(&pod)).ok();
        }
        node.cni("DEL", "c1", "web", Some(&pod)).ok();
        node.assert_clean(&pod);
        // The three links (veth, two macvlans) went in one kernel operation.
        let log = std::fs::read_to_string(node.path("multinet.log")).unwrap();
        assert!(log.contains("pod links deleted together links=3"), "{log}");
        // Runtimes repeat DEL, the second time often without a netns.
        node.cni("DEL", "c1", "web", None).ok();
    }
}

#[test]
fn delegate_failing_mid_add_leaves_nothing() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "broken",
        node.macvlan_nad("broken", "no-such-link", "10.30.0.0/24"),
    );
    node.add_pod("web", "data,broken");
    let pod = TestNetns::new();
    let (code, msg) = node.cni("ADD", "c1", "web", Some(&pod)).err();
    assert!(
        msg.contains("team/broken") && msg.contains("macvlan"),
        "{code} {msg}"
    );
    node.assert_clean(&pod);
    // The runtime's DEL after a failed ADD succeeds.
    node.cni("DEL", "c1", "web", Some(&pod)).ok();
}

#[test]
fn del_works_after_the_nad_and_the_pod_are_gone_and_without_netns() {
    require_root!();
    let node = Node::new("1.0.0");
    two_macvlan_pod(&node);
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "web", Some(&pod)).ok();
    node.remove_nad("data");
    node.remove_nad("storage");
    std::fs::remove_file(node.path("cluster/pods/web.yaml")).unwrap();
    node.cni("DEL", "c1", "web", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn del_without_netns_releases_every_ip() {
    require_root!();
    let node = Node::new("1.1.0");
    two_macvlan_pod(&node);
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "web", Some(&pod)).ok();
    assert_eq!(node.allocated_ips().len(), 3);
    node.cni("DEL", "c1", "web", None).ok();
    assert!(
        node.allocated_ips().is_empty(),
        "{:?}",
        node.allocated_ips()
    );
    assert!(node.records().is_empty());
}

#[test]
fn corrupt_record_is_named_by_check_and_set_aside_by_del() {
    require_root!();
    let node = Node::new("1.0.0");
    std::fs::create_dir_all(node.path("cni/attachments")).unwrap();
    std::fs::write(node.path("cni/attachments/c9.json"), "{\"format\":1,").unwrap();
    // CHECK reports it, naming the file, never a silent success.
    let pod = TestNetns::new();
    let (code, msg) = node.cni("CHECK", "c9", "web", Some(&pod)).err();
    assert_eq!(code, 5);
    assert!(msg.contains("c9.json"), "{msg}");
    // DEL never leaves the sandbox stuck: the record is kept aside for inspection.
    node.cni("DEL", "c9", "web", None).ok();
    assert_eq!(node.records(), Vec::<std::path::PathBuf>::new());
    let aside: Vec<_> = std::fs::read_dir(node.path("cni/attachments/corrupt"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("c9.json."), "{aside:?}");
    node.cni("DEL", "c9", "web", None).ok();
}

#[test]
fn requested_ips_reach_static_ipam_through_the_ips_capability() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad(
        "fixed",
        json!({"cniVersion":"1.0.0","name":"fixed","type":"macvlan","master":"up0",
               "capabilities":{"ips":true},"ipam":{"type":"static"}}),
    );
    node.add_pod(
        "db",
        r#"[{"name":"fixed","ips":["10.40.0.7/24"],"interface":"fix0"}]"#,
    );
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "db", Some(&pod)).ok();
    let addrs = pod.ip_json(&["addr", "show", "fix0"]);
    assert_eq!(addrs[0]["addr_info"][0]["local"], "10.40.0.7");
    node.cni("DEL", "c1", "db", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn gc_removes_attachments_of_containers_not_in_the_valid_list() {
    require_root!();
    let node = Node::new("1.1.0");
    two_macvlan_pod(&node);
    let keep = TestNetns::new();
    let gone = TestNetns::new();
    node.cni("ADD", "keep", "web", Some(&keep)).ok();
    node.cni("ADD", "gone", "web", Some(&gone)).ok();
    let mut conf = node.conf();
    conf["cni.dev/valid-attachments"] = json!([{"containerID":"keep","ifname":"eth0"}]);
    node.cni_with("GC", "keep", "web", "", &conf).ok();
    assert_eq!(node.records().len(), 1);
    assert_eq!(
        node.allocated_ips().len(),
        3,
        "only the kept pod's IPs remain"
    );
    // The collected container's netns still exists: its links went with its attachments.
    assert_eq!(Node::links(&gone), Vec::<String>::new());
    assert_eq!(Node::links(&keep).len(), 3);
    node.cni("DEL", "keep", "web", Some(&keep)).ok();
    node.assert_clean(&keep);
}

/// The same pod through multinet's own macvlan and host-local run in-process (multi-call
/// install) and through the reference binaries: the same networks, addresses and status shape.
#[test]
fn own_delegates_in_process_give_the_same_attachments_as_exec() {
    require_root!();
    let mut seen = Vec::new();
    for own in [false, true] {
        let node = Node::new("1.0.0");
        if own {
            node.use_own("macvlan");
            node.use_own("host-local");
        }
        two_macvlan_pod(&node);
        let pod = TestNetns::new();
        let result = node.cni("ADD", "c1", "web", Some(&pod)).ok().clone();
        let status = node.network_status("web");
        let shape: Vec<(String, String, Vec<String>)> = status
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["interface"].as_str().unwrap().to_string(),
                    s["ips"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i.to_string())
                        .collect(),
                )
            })
            .collect();
        let kinds: Vec<String> = pod
            .ip_json(&["-d", "link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["linkinfo"]["info_kind"].as_str().map(str::to_string))
            .collect();
        let log = std::fs::read_to_string(node.path("multinet.log")).unwrap();
        assert_eq!(
            log.contains("delegate in-process plugin=macvlan verb=\"ADD\""),
            own,
            "{log}"
        );
        seen.push((result["ips"].clone(), shape, kinds));
        node.cni("DEL", "c1", "web", Some(&pod)).ok();
        node.assert_clean(&pod);
    }
    assert_eq!(seen[0], seen[1], "exec vs in-process");
}

/// `default-route` makes the requested gateway the pod's only IPv4 default route, replacing the
/// cluster network's.
#[test]
fn default_route_becomes_the_only_default_route_of_its_family() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("web", r#"[{"name":"data","default-route":["10.10.0.1"]}]"#);
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "web", Some(&pod)).ok();
    let routes = pod.ip_json(&["-4", "route", "show", "default"]);
    let routes = routes.as_array().unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "10.10.0.1");
    assert_eq!(routes[0]["dev"], "net1");
    let status = node.network_status("web");
    assert_eq!(status[1]["gateway"], json!(["10.10.0.1"]));
    node.cni("DEL", "c1", "web", Some(&pod)).ok();
    node.assert_clean(&pod);
}

/// STATUS: not ready (code 50) while the readiness indicator file is missing, ready once it is
/// there.
#[test]
fn status_follows_the_readiness_indicator_file() {
    require_root!();
    let node = Node::new("1.1.0");
    let indicator = node.path("ready");
    let mut conf = node.conf();
    conf["readinessindicatorfile"] = json!(indicator);
    let (code, msg) = node.cni_with("STATUS", "c1", "web", "", &conf).err();
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains("ready"), "{msg}");
    std::fs::write(&indicator, "").unwrap();
    node.cni_with("STATUS", "c1", "web", "", &conf).ok();
}
