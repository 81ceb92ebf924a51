//! Hot-plug through the real daemon (`--hot-plug`), the API fixture and real network namespaces:
//! a running pod's networks annotation changes and the daemon attaches, detaches and replaces
//! networks in its netns, rewrites its network-status and tells it in events; an invalid change
//! is refused with an event and changes nothing; a change made while the daemon is down is
//! caught up when it starts; DEL then leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Daemon, Node};
use multinet_api_fixture::ApiFixture;
use multinet_sriov::{PciAddress, StateDir};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const PATIENCE: Duration = Duration::from_secs(30);
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

struct Cluster {
    api: ApiFixture,
    node: Node,
    conf: Value,
    /// The node's multinet config file, as the daemon's --hot-plug names it.
    conf_file: PathBuf,
    daemon_log: PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let node = Node::new("1.0.0");
        let (api, mut conf) = node.start_api();
        common::insert_team_nads(&node, &api);
        api.insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "mgmt", "namespace": "team"},
            "spec": {"config": node.macvlan_nad("mgmt", "up0", "10.40.0.0/24").to_string()}
        }))
        .unwrap();
        conf["daemonSocket"] = json!(node.path("run/multinet.sock"));
        let conf_file = node.path("multinet.conf");
        fs::write(&conf_file, conf.to_string()).unwrap();
        let daemon_log = node.path("daemon.log");
        Cluster {
            api,
            node,
            conf,
            conf_file,
            daemon_log,
        }
    }

    fn daemon(&self) -> Daemon {
        self.daemon_with(&[])
    }

    fn daemon_with(&self, env: &[(&str, PathBuf)]) -> Daemon {
        let hot_plug = [format!("--hot-plug={}", self.conf_file.display())];
        let daemon = common::cached_daemon(&self.node, NODE, &self.daemon_log, &hot_plug, env);
        self.wait_for("the daemon's watches", || self.api.open_watches() >= 2);
        daemon
    }

    fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                fs::read_to_string(&self.daemon_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn insert_web(&self, networks: &str) {
        self.api
            .insert(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                             "annotations": {NETWORKS: networks}},
                "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]}
            }))
            .unwrap();
    }

    /// The runtime's ADD of pod web (container c-web) in `pod`, through the daemon.
    fn add_web(&self, pod: &TestNetns) {
        self.node
            .cni_with("ADD", "c-web", "web", pod.path_str(), &self.conf)
            .ok();
    }

    /// Its DEL, which must leave nothing behind.
    fn del_web(&self, pod: &TestNetns) {
        self.node
            .cni_with("DEL", "c-web", "web", pod.path_str(), &self.conf)
            .ok();
        self.node.assert_clean(pod);
    }

    fn set_networks(&self, networks: &str) {
        self.api
            .merge_patch(
                "Pod",
                "team",
                "web",
                &json!({"metadata": {"annotations": {NETWORKS: networks}}}),
            )
            .unwrap();
    }

    /// `(network, interface)` of each network-status entry.
    fn status(&self) -> Vec<(String, String)> {
        let pod = self.api.get("Pod", "team", "web").unwrap();
        let text = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap_or("[]")
            .to_string();
        let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
        entries
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["interface"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The first address of `network` in the network-status (without its prefix length).
    fn status_ip(&self, network: &str) -> String {
        let pod = self.api.get("Pod", "team", "web").unwrap();
        let text = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap()
            .to_string();
        let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
        let entry = entries.iter().find(|e| e["name"] == network).unwrap();
        entry["ips"][0].as_str().unwrap().to_string()
    }

    /// `reason: message` of the pod's events.
    fn events(&self) -> Vec<String> {
        self.api
            .list("Event", Some("team"))
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["reason"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn links(netns: &TestNetns) -> Vec<String> {
    sorted(Node::links(netns))
}

fn names(list: &[&str]) -> Vec<String> {
    sorted(list.iter().map(|s| s.to_string()).collect())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn networks_follow_a_running_pods_annotation() {
    require_root!();
    let c = Cluster::new();
    c.insert_web("data");
    let daemon = c.daemon();
    let pod = TestNetns::new();
    c.add_web(&pod);
    assert_eq!(links(&pod), names(&["eth0", "net1"]));

    // Added: mgmt on the next free name; the status and an event say so.
    c.set_networks("data,mgmt");
    c.wait_for("net2 to appear", || {
        links(&pod) == names(&["eth0", "net1", "net2"])
    });
    c.wait_for("the status to list mgmt", || {
        c.status()
            == pairs(&[
                ("cluster", "eth0"),
                ("team/data", "net1"),
                ("team/mgmt", "net2"),
            ])
    });
    c.wait_for("an AddedInterface event", || {
        c.events().iter().any(|e| {
            e.starts_with("AddedInterface: Add net2 [10.40.0.") && e.ends_with("from team/mgmt")
        })
    });
    assert_eq!(
        c.node.allocated_ips().len(),
        3,
        "cluster, data and mgmt hold one IP each"
    );

    // Removed: data goes with its IP; mgmt keeps its interface name.
    c.set_networks("mgmt");
    c.wait_for("net1 to go", || links(&pod) == names(&["eth0", "net2"]));
    c.wait_for("the status without data", || {
        c.status() == pairs(&[("cluster", "eth0"), ("team/mgmt", "net2")])
    });
    c.wait_for("a RemovedInterface event", || {
        c.events()
            .iter()
            .any(|e| e == "RemovedInterface: Remove net1 from team/data")
    });
    assert_eq!(c.node.allocated_ips().len(), 2);

    // Changed: mgmt replaced by storage, named by the pod.
    c.set_networks("storage@stor0");
    c.wait_for("stor0 instead of net2", || {
        links(&pod) == names(&["eth0", "stor0"])
    });
    c.wait_for("the status with storage", || {
        c.status() == pairs(&[("cluster", "eth0"), ("team/storage", "stor0")])
    });

    // Invalid: an unknown NAD is refused with an event, and nothing changes.
    c.set_networks("storage@stor0,nope");
    c.wait_for("a HotPlugFailed event", || {
        c.events()
            .iter()
            .any(|e| e.starts_with("HotPlugFailed:") && e.contains("team/nope"))
    });
    assert_eq!(links(&pod), names(&["eth0", "stor0"]));
    assert_eq!(
        c.status(),
        pairs(&[("cluster", "eth0"), ("team/storage", "stor0")])
    );
    // An interface name the pod already uses: refused the same way.
    c.set_networks("storage@stor0,data@stor0");
    c.wait_for("a HotPlugFailed event naming the interface", || {
        c.events()
            .iter()
            .any(|e| e.starts_with("HotPlugFailed:") && e.contains("stor0"))
    });
    assert_eq!(links(&pod), names(&["eth0", "stor0"]));

    // Changed while the daemon is down: caught up when it starts.
    daemon.stop();
    c.set_networks("storage@stor0,data");
    let daemon = c.daemon();
    c.wait_for("net1 after the restart", || {
        links(&pod) == names(&["eth0", "net1", "stor0"])
    });
    c.wait_for("the status after the restart", || {
        c.status()
            == pairs(&[
                ("cluster", "eth0"),
                ("team/storage", "stor0"),
                ("team/data", "net1"),
            ])
    });

    // DEL takes everything, hot-plugged networks included.
    c.del_web(&pod);
    daemon.stop();
}

/// A device-backed network: an SR-IOV VF picked from a pool (fake sysfs, VF netdevs are veth
/// links) is hot-plugged into the running pod, held by its container, and returned to the node
/// and the pool when the network is removed.
#[test]
fn a_vf_from_a_pool_is_hot_plugged_and_given_back() {
    require_root!();
    let c = Cluster::new();
    c.node.use_own("sriov");
    let vfs = [("0000:3b:02.0", "vf0"), ("0000:3b:02.1", "vf1")];
    for link in ["pf0", "vf0", "vf1"] {
        c.node.ns.ip(&[
            "link",
            "add",
            link,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{link}p"),
        ]);
    }
    let mut pf = PfSpec::new("0000:3b:00.0", "pf0");
    for (addr, netdev) in vfs {
        pf = pf.vf(addr, netdev);
    }
    let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(pf).build();
    c.api
        .insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vfnet", "namespace": "team"},
            "spec": {"config": json!({"cniVersion": "1.0.0", "name": "vfnet", "type": "sriov",
                "pool": {"name": "fast", "pfNames": ["pf0"]},
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.70.0.0/24"}]],
                         "dataDir": c.node.path("ipam")}}).to_string()}
        }))
        .unwrap();
    c.insert_web("data");
    let state = StateDir::new(c.node.path("sriov"));
    let holders = || -> Vec<String> {
        vfs.iter()
            .filter_map(|(pci, _)| {
                let pci: PciAddress = pci.parse().unwrap();
                state.read_record(&pci).unwrap().map(|r| r.container_id)
            })
            .collect()
    };
    let daemon = c.daemon_with(&[
        ("MULTINET_SYSFS_ROOT", sysfs.root().to_path_buf()),
        ("MULTINET_SRIOV_STATE_DIR", c.node.path("sriov")),
        (
            "MULTINET_PODRESOURCES_SOCKET",
            c.node.path("no-kubelet.sock"),
        ),
        ("MULTINET_KUBELET_CHECKPOINT", c.node.path("no-checkpoint")),
    ]);
    let pod = TestNetns::new();
    c.add_web(&pod);
    assert!(holders().is_empty());

    c.set_networks("data,vfnet");
    c.wait_for("a VF as net2", || {
        links(&pod) == names(&["eth0", "net1", "net2"])
    });
    assert_eq!(holders(), ["c-web"]);
    c.wait_for("the status with the VF", || {
        c.status()
            == pairs(&[
                ("cluster", "eth0"),
                ("team/data", "net1"),
                ("team/vfnet", "net2"),
            ])
    });
    let node_links = Node::links(&c.node.ns);
    assert_eq!(
        vfs.iter()
            .filter(|(_, l)| node_links.contains(&l.to_string()))
            .count(),
        1,
        "one VF left the node: {node_links:?}"
    );

    c.set_networks("data");
    c.wait_for("the VF to leave the pod", || {
        links(&pod) == names(&["eth0", "net1"])
    });
    c.wait_for("the VF to be free", || holders().is_empty());
    let node_links = Node::links(&c.node.ns);
    for (_, l) in vfs {
        assert!(
            node_links.contains(&l.to_string()),
            "{l} back on the node: {node_links:?}"
        );
    }
    c.del_web(&pod);
    daemon.stop();
}

/// What a pod author could try through its annotation: a link in the pod that multinet did not
/// create is never taken over (the change is refused and the link stays), and removing one of
/// two attachments of one network keeps the other's address reserved.
#[test]
fn a_change_never_touches_what_is_not_its_own() {
    require_root!();
    let c = Cluster::new();
    c.insert_web("data,data@dx");
    let daemon = c.daemon();
    let pod = TestNetns::new();
    c.add_web(&pod);
    assert_eq!(links(&pod), names(&["dx", "eth0", "net1"]));
    let ips = c.node.allocated_ips();
    assert_eq!(ips.len(), 3, "{ips:?}");

    // One of the two attachments of `data` goes: the other keeps its address.
    c.set_networks("data");
    c.wait_for("dx to go", || links(&pod) == names(&["eth0", "net1"]));
    let left = c.node.allocated_ips();
    assert_eq!(left.len(), 2, "{left:?}");
    let net1_ip = c.status_ip("team/data");
    assert!(
        left.iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == net1_ip),
        "{net1_ip} still reserved: {left:?}"
    );

    // A link the pod made itself, under the name the next network would get: refused, kept.
    pod.ip(&[
        "link", "add", "net2", "type", "veth", "peer", "name", "own0",
    ]);
    c.set_networks("data,mgmt");
    c.wait_for("a HotPlugFailed event naming net2", || {
        c.events()
            .iter()
            .any(|e| e.starts_with("HotPlugFailed:") && e.contains("net2"))
    });
    assert_eq!(links(&pod), names(&["eth0", "net1", "net2", "own0"]));
    assert_eq!(
        Node::link_details(&pod)
            .iter()
            .find(|l| l["ifname"] == "net2")
            .unwrap()["linkinfo"]["info_kind"],
        "veth"
    );
    pod.ip(&["link", "del", "net2"]);
    c.del_web(&pod);
    daemon.stop();
}

/// The daemon killed in the middle of a change (its delegate has made the link, the record
/// still says planned): after a restart the unfinished entry is undone and the change made
/// again, so the pod ends with exactly the networks it asks for, and DEL leaves nothing.
#[test]
fn a_change_cut_off_by_a_killed_daemon_is_finished_after_its_restart() {
    require_root!();
    let c = Cluster::new();
    c.insert_web("data");
    let marker = c.node.path("failpoint-reached");
    let daemon = c.daemon_with(&[
        ("MULTINET_FAILPOINT", "hot-plug-after-delegate".into()),
        ("MULTINET_FAILPOINT_MARKER", marker.clone()),
    ]);
    let pod = TestNetns::new();
    c.add_web(&pod);
    c.set_networks("data,mgmt");
    c.wait_for("the change to stop halfway", || marker.exists());
    drop(daemon);
    // Cut off: the link is there, the record has it as planned.
    assert_eq!(links(&pod), names(&["eth0", "net1", "net2"]));
    let record: Value = serde_json::from_str(
        &fs::read_to_string(c.node.path("cni/attachments/c-web.json")).unwrap(),
    )
    .unwrap();
    let states: Vec<&str> = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["added", "added", "planned"]);

    let daemon = c.daemon();
    c.wait_for("the change finished", || {
        c.status()
            == pairs(&[
                ("cluster", "eth0"),
                ("team/data", "net1"),
                ("team/mgmt", "net2"),
            ])
    });
    assert_eq!(links(&pod), names(&["eth0", "net1", "net2"]));
    assert_eq!(
        c.node.allocated_ips().len(),
        3,
        "one address per network, none left over"
    );
    c.del_web(&pod);
    daemon.stop();
}
