//! The multinet binary against the Kubernetes API fixture with multinet's OWN delegates, run
//! in-process (multi-call install: every plugin in binDir/CNI_PATH is a link to the multinet
//! binary, so no reference plugin can be exec'd), for cniVersion 0.3.1, 0.4.0, 1.0.0 and 1.1.0.
//!
//! The cluster network (confDir) is our macvlan + host-local on its own uplink. The pod selects
//! three NADs: our macvlan + host-local, our macvlan + static (IPv4 and IPv6), and our SR-IOV
//! delegate picking a VF from a pool on a fake NIC (fake sysfs whose VF netdevs are veth ends).
//! Every verb is checked against the kernel: links, kinds, addresses and MACs in the pod netns,
//! the network-status in the API, and the node state left after DEL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Answer, Node};
use multinet_api_fixture::ApiFixture;
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{TestNetns, require_root, unique_link_name};
use serde_json::{Value, json};

const PF_ADDR: &str = "0000:3b:00.0";
const VF_ADDRS: &[&str] = &["0000:3b:02.0", "0000:3b:02.1"];

/// A node whose binDir holds only links to the multinet binary, the API fixture serving the pod
/// and its NADs, and a fake SR-IOV NIC.
struct OwnCluster {
    api: ApiFixture,
    node: Node,
    conf: Value,
    /// Present when the delegates are ours (the reference plugins have no SR-IOV delegate).
    sriov: Option<FakeNic>,
}

struct FakeNic {
    sysfs: FakeSysfs,
    /// (PCI address, netdev name, MAC) of each VF, as created in the node netns.
    vfs: Vec<(String, String, String)>,
}

/// Which delegates CNI_PATH holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delegates {
    /// Links to the multinet binary named macvlan, host-local, static, sriov: in-process.
    Ours,
    /// The reference plugins from /usr/lib/cni: exec'd.
    Reference,
}

fn uplink(node: &Node, name: &str) {
    let peer = format!("{name}p");
    node.ns
        .ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
    node.ns.ip(&["link", "set", name, "up"]);
    node.ns.ip(&["link", "set", &peer, "up"]);
}

/// A PF and two VFs whose netdevs are veth ends in the node netns (their peers stay there when a
/// VF moves into a pod), described by a fake sysfs tree.
fn fake_nic(node: &Node) -> (FakeNic, String) {
    let pf = unique_link_name("pf");
    uplink(node, &pf);
    let mut spec = PfSpec::new(PF_ADDR, &pf);
    let mut vfs = Vec::new();
    for addr in VF_ADDRS {
        let vf = unique_link_name("vf");
        uplink(node, &vf);
        spec = spec.vf(addr, &vf);
        let mac = node.ns.link_mac(&vf);
        vfs.push((addr.to_string(), vf, mac));
    }
    let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(spec).build();
    (FakeNic { sysfs, vfs }, pf)
}

fn own_cluster(version: &str, delegates: Delegates, with_sriov: bool) -> OwnCluster {
    let node = Node::new(version);
    if delegates == Delegates::Ours {
        // Nothing but multinet in CNI_PATH: a reference plugin cannot be run by accident.
        for p in ["bridge", "loopback", "portmap", "tuning"] {
            fs::remove_file(node.bin().join(p)).unwrap();
        }
        for p in ["macvlan", "host-local", "static", "sriov"] {
            node.use_own(p);
        }
    }
    let ipam_dir = node.path("ipam");
    // Our delegates speak every version; Debian's reference plugins stop at 1.0.0.
    let dv = match delegates {
        Delegates::Ours => version.to_string(),
        Delegates::Reference => node.delegate_version().to_string(),
    };
    uplink(&node, "cl0");
    let cluster = json!({
        "cniVersion": dv, "name": "cluster",
        "plugins": [{"type": "macvlan", "master": "cl0", "mode": "bridge",
                     "ipam": {"type": "host-local",
                              "ranges": [[{"subnet": "10.99.0.0/24", "gateway": "10.99.0.1"}]],
                              "routes": [{"dst": "0.0.0.0/0"}],
                              "dataDir": ipam_dir}}]
    });
    fs::write(node.path("net.d/10-cluster.conflist"), cluster.to_string()).unwrap();

    let (api, conf) = node.start_api();

    let mut nads = vec![
        (
            "data",
            json!({"cniVersion": dv, "name": "data", "type": "macvlan", "master": "up0",
                   "mode": "bridge",
                   "ipam": {"type": "host-local",
                            "ranges": [[{"subnet": "10.10.0.0/24", "rangeStart": "10.10.0.10",
                                         "rangeEnd": "10.10.0.20"}]],
                            "dataDir": ipam_dir}}),
        ),
        (
            "fixed",
            json!({"cniVersion": dv, "name": "fixed", "type": "macvlan", "master": "up1",
                   "mode": "bridge",
                   // macvlan's result carries the config's dns, not the IPAM's (as the
                   // reference does).
                   "dns": {"nameservers": ["10.40.0.53"], "search": ["team.example"]},
                   "ipam": {"type": "static",
                            "addresses": [{"address": "10.40.0.7/24", "gateway": "10.40.0.1"},
                                          {"address": "fd00:40::7/64"}],
                            "routes": [{"dst": "10.41.0.0/16", "gw": "10.40.0.1"},
                                       {"dst": "fd00:41::/48"}]}}),
        ),
    ];
    let mut selection = vec![
        json!({"name": "data"}),
        json!({"name": "fixed", "interface": "fix0"}),
    ];
    let sriov = if with_sriov {
        let (nic, pf) = fake_nic(&node);
        nads.push((
            "vfnet",
            json!({"cniVersion": dv, "name": "vfnet", "type": "sriov",
                   "pool": {"name": "test_nic", "pfNames": [format!("{pf}#0-1")]},
                   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.30.0.0/24"}]],
                            "dataDir": ipam_dir}}),
        ));
        selection.push(json!({"name": "vfnet", "interface": "vf0"}));
        Some(nic)
    } else {
        None
    };
    for (name, config) in nads {
        api.insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"config": config.to_string()}
        }))
        .unwrap();
    }
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks":
                                     Value::Array(selection).to_string()}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
    OwnCluster {
        api,
        node,
        conf,
        sriov,
    }
}

impl OwnCluster {
    /// One CNI call of the multinet binary in the node netns, as a runtime makes it, with the
    /// SR-IOV delegate's sysfs and state directories in the test's own tree.
    fn cni(&self, command: &str, container: &str, netns: &str) -> Answer {
        let node = &self.node;
        let sysfs = match &self.sriov {
            Some(nic) => nic.sysfs.root().to_path_buf(),
            None => node.path("no-sysfs"),
        };
        let call = node
            .call(command, container, "web", netns)
            .env("MULTINET_SRIOV_STATE_DIR", node.path("sriov"))
            .env("MULTINET_DEVINFO_DIR", node.path("devinfo"))
            // No kubelet here: never ask the host's.
            .env("MULTINET_PODRESOURCES_SOCKET", node.path("no-kubelet.sock"))
            .env("MULTINET_KUBELET_CHECKPOINT", node.path("no-checkpoint"))
            .env("MULTINET_SYSFS_ROOT", sysfs)
            .stdin_json(&self.conf);
        Answer::of(&call.run())
    }

    fn status(&self) -> Vec<Value> {
        let pod = self.api.get("Pod", "team", "web").unwrap();
        let s = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap_or("[]")
            .to_string();
        serde_json::from_str(&s).unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.node.path("multinet.log")).unwrap_or_default()
    }

    /// Log lines of delegates run since `from` (a byte offset into the log).
    fn delegate_lines(&self, from: usize) -> Vec<String> {
        self.log()[from..]
            .lines()
            .filter(|l| l.contains("delegate in-process") || l.contains("delegate exec"))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that every delegate call since `from` ran in-process, that `verb` ran for each
    /// of `plugins`, and that nothing was exec'd.
    fn assert_in_process(&self, from: usize, verb: &str, plugins: &[&str]) {
        let lines = self.delegate_lines(from);
        assert!(
            lines.iter().all(|l| l.contains("delegate in-process")),
            "a delegate was exec'd: {lines:#?}"
        );
        for p in plugins {
            let needle = format!("plugin={p} verb=\"{verb}\"");
            assert!(
                lines.iter().any(|l| l.contains(&needle)),
                "{needle} missing: {lines:#?}"
            );
        }
    }

    /// Files left in the SR-IOV delegate's state and device-info dirs, locks aside.
    fn sriov_state_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in ["sriov", "devinfo"] {
            files_under(&self.node.path(d), &mut out);
        }
        out.retain(|p| !p.components().any(|c| c.as_os_str() == "vf_lock"));
        out.retain(|p| !p.to_string_lossy().ends_with(".lock"));
        out
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Global-scope addresses on `link` in `ns`, without prefix length, sorted.
fn addrs_on(ns: &TestNetns, link: &str) -> Vec<String> {
    let info = ns.ip_json(&["addr", "show", "dev", link]);
    let mut out: Vec<String> = info[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| a["local"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// (link name, kind) of every link in `ns` but lo, sorted by name.
fn link_kinds(ns: &TestNetns) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Node::link_details(ns)
        .iter()
        .map(|l| {
            (
                l["ifname"].as_str().unwrap().to_string(),
                l["linkinfo"]["info_kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The result printed for the runtime is the cluster network's, in the requested version, with
/// the fields that version has and none it lacks, and it matches the kernel.
fn assert_result_shape(result: &Value, version: &str, pod: &TestNetns) {
    assert_eq!(result["cniVersion"], version, "{result}");
    let legacy_fields = version.starts_with("0.");
    let interfaces = result["interfaces"].as_array().expect("interfaces");
    let eth0 = interfaces
        .iter()
        .position(|i| i["name"] == "eth0" && i["sandbox"] == pod.path_str())
        .unwrap_or_else(|| panic!("no eth0 in the pod among the interfaces: {result}"));
    assert_eq!(interfaces[eth0]["mac"], pod.link_mac("eth0"), "{result}");
    for i in interfaces {
        for key in ["mtu", "socketPath", "pciID"] {
            if legacy_fields {
                assert!(i.get(key).is_none(), "{version}: {key} is 1.0.0+: {result}");
            }
        }
    }
    let ips = result["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{result}");
    let ip = &ips[0];
    let address = ip["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.99.0.") && address.ends_with("/24"),
        "{address}"
    );
    assert_eq!(ip["gateway"], "10.99.0.1", "{result}");
    assert_eq!(ip["interface"], json!(eth0), "{result}");
    match ip.get("version") {
        Some(v) => assert!(legacy_fields && v == "4", "{version}: {result}"),
        None => assert!(!legacy_fields, "{version}: ips[].version missing: {result}"),
    }
    assert_eq!(
        addrs_on(pod, "eth0"),
        vec![address.split('/').next().unwrap().to_string()],
        "the printed IP is the one on eth0"
    );
    let routes = result["routes"].as_array().expect("routes");
    assert!(routes.iter().any(|r| r["dst"] == "0.0.0.0/0"), "{result}");
    let default_route = pod.ip_json(&["-4", "route", "show", "default"]);
    assert_eq!(default_route[0]["dev"], "eth0", "{default_route}");
    assert_eq!(default_route[0]["gateway"], "10.99.0.1");
}

/// The network-status lists every network in order, each with the interface, the IPs really on
/// that link in the pod, and its MAC.
fn assert_network_status(c: &OwnCluster, pod: &TestNetns, version: &str) {
    let status = c.status();
    let names: Vec<&str> = status.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let mut want = vec!["cluster", "team/data", "team/fixed"];
    let mut ifaces = vec!["eth0", "net1", "fix0"];
    if c.sriov.is_some() {
        want.push("team/vfnet");
        ifaces.push("vf0");
    }
    assert_eq!(names, want, "{version}: {status:#?}");
    for (s, ifname) in status.iter().zip(&ifaces) {
        assert_eq!(s["interface"], *ifname, "{s}");
        assert_eq!(s["default"] == true, *ifname == "eth0", "{s}");
        assert_eq!(s["mac"], pod.link_mac(ifname), "{s}");
        let mut ips = str_list(&s["ips"]);
        ips.sort();
        assert_eq!(ips, addrs_on(pod, ifname), "{version}: {s}");
    }
    assert!(str_list(&status[0]["ips"])[0].starts_with("10.99.0."));
    assert_eq!(str_list(&status[1]["ips"]), vec!["10.10.0.10"]);
    assert_eq!(
        str_list(&status[2]["ips"]),
        vec!["10.40.0.7", "fd00:40::7"],
        "static addresses in their order"
    );
    assert_eq!(
        status[2]["dns"],
        json!({"nameservers": ["10.40.0.53"], "search": ["team.example"]})
    );
    let routes = pod.ip_json(&["route", "show", "10.41.0.0/16"]);
    assert_eq!(routes[0]["gateway"], "10.40.0.1", "{routes}");
    assert_eq!(routes[0]["dev"], "fix0", "{routes}");
    let routes = pod.ip_json(&["-6", "route", "show", "fd00:41::/48"]);
    assert_eq!(routes[0]["dev"], "fix0", "{routes}");
    // An MTU is a 1.0.0 result field: none before, and the link's own when given.
    for (s, ifname) in status.iter().zip(&ifaces) {
        if let Some(mtu) = s.get("mtu") {
            assert!(!version.starts_with("0."), "{version}: {s}");
            let link = pod.ip_json(&["link", "show", "dev", ifname]);
            assert_eq!(*mtu, link[0]["mtu"], "{s}");
        }
    }
    if let Some(nic) = &c.sriov {
        assert!(str_list(&status[3]["ips"])[0].starts_with("10.30.0."));
        // The VF itself moved into the pod: its MAC is one of the fake NIC's VFs', and that VF's
        // netdev left the node.
        let (addr, netdev, _) = nic
            .vfs
            .iter()
            .find(|(_, _, mac)| *mac == status[3]["mac"])
            .unwrap_or_else(|| panic!("vf0 is none of the VFs {:?}", nic.vfs));
        assert!(!c.node.ns.has_link(netdev), "{netdev} still on the node");
        if let Some(info) = status[3].get("device-info") {
            assert_eq!(info["pci"]["pci-address"], *addr, "{info}");
        }
    }
}

/// ADD, CHECK, CHECK after a link was deleted by hand, DEL, DEL again, DEL without netns, and an
/// ADD released by a DEL without netns, all with our delegates in-process.
fn full_cycle(version: &str) {
    let c = own_cluster(version, Delegates::Ours, true);
    let checks = version != "0.3.1";
    let plugins = ["macvlan", "sriov"];

    // ADD
    let pod = TestNetns::new();
    let result = c.cni("ADD", "c1", pod.path_str());
    let result = result.ok();
    c.assert_in_process(0, "ADD", &plugins);
    assert_result_shape(result, version, &pod);
    assert_network_status(&c, &pod, version);
    assert_eq!(
        link_kinds(&pod),
        vec![
            ("eth0".into(), "macvlan".into()),
            ("fix0".into(), "macvlan".into()),
            ("net1".into(), "macvlan".into()),
            // The fake VF is a veth end.
            ("vf0".into(), "veth".into()),
        ],
        "{version}"
    );
    assert_eq!(c.node.allocated_ips().len(), 3, "cluster, data and vfnet");
    assert_eq!(c.node.records().len(), 1);

    // CHECK
    if checks {
        let mark = c.log().len();
        c.cni("CHECK", "c1", pod.path_str()).ok();
        c.assert_in_process(mark, "CHECK", &plugins);
        pod.ip(&["link", "del", "net1"]);
        let (code, msg) = c.cni("CHECK", "c1", pod.path_str()).err();
        assert!(msg.contains("team/data"), "{code} {msg}");
        assert!(msg.contains("net1"), "{code} {msg}");
    } else {
        // 0.3.1 has no CHECK: refused, whatever the pod's state.
        let (code, msg) = c.cni("CHECK", "c1", pod.path_str()).err();
        assert_eq!(code, 1, "incompatible CNI version: {msg}");
        assert!(msg.contains("0.4.0"), "{msg}");
        pod.ip(&["link", "del", "net1"]);
    }

    // DEL
    let mark = c.log().len();
    c.cni("DEL", "c1", pod.path_str()).ok();
    c.assert_in_process(mark, "DEL", &plugins);
    c.node.assert_clean(&pod);
    assert_eq!(c.sriov_state_files(), Vec::<PathBuf>::new());
    let nic = c.sriov.as_ref().unwrap();
    for (_, netdev, mac) in &nic.vfs {
        assert_eq!(
            c.node.ns.link_mac(netdev),
            *mac,
            "VF {netdev} back on the node"
        );
    }
    // Runtimes repeat DEL, the second time often without a netns.
    c.cni("DEL", "c1", pod.path_str()).ok();
    c.cni("DEL", "c1", "").ok();

    // A DEL without netns (the pod's netns is already gone) still releases every IP, the VF's
    // allocation and the record.
    let pod2 = TestNetns::new();
    c.cni("ADD", "c2", pod2.path_str()).ok();
    assert_eq!(c.node.allocated_ips().len(), 3);
    assert!(
        !c.sriov_state_files().is_empty(),
        "the VF's allocation is recorded"
    );
    c.cni("DEL", "c2", "").ok();
    assert_eq!(c.node.allocated_ips(), Vec::<PathBuf>::new());
    assert_eq!(c.node.records(), Vec::<PathBuf>::new());
    assert_eq!(c.sriov_state_files(), Vec::<PathBuf>::new());
    c.cni("DEL", "c2", "").ok();
}

#[test]
fn own_delegates_in_process_from_the_api_cni_0_3_1() {
    require_root!();
    full_cycle("0.3.1");
}

#[test]
fn own_delegates_in_process_from_the_api_cni_0_4_0() {
    require_root!();
    full_cycle("0.4.0");
}

#[test]
fn own_delegates_in_process_from_the_api_cni_1_0_0() {
    require_root!();
    full_cycle("1.0.0");
}

#[test]
fn own_delegates_in_process_from_the_api_cni_1_1_0() {
    require_root!();
    full_cycle("1.1.0");
}

/// What a pod's attachment looks like, MACs and netns paths aside.
fn comparable(c: &OwnCluster, result: &Value, pod: &TestNetns) -> Value {
    let mut result = result.clone();
    for i in result["interfaces"].as_array_mut().unwrap() {
        let i = i.as_object_mut().unwrap();
        i.remove("mac");
        assert_eq!(i.remove("sandbox").unwrap(), pod.path_str());
    }
    let mut status = c.status();
    for s in &mut status {
        s.as_object_mut().unwrap().remove("mac");
    }
    let addrs = ["eth0", "net1", "fix0"].map(|l| addrs_on(pod, l));
    // Each link's MTU, state and macvlan mode.
    let mut links: Vec<Value> = Node::link_details(pod)
        .iter()
        .map(|l| {
            json!([
                l["ifname"],
                l["linkinfo"]["info_kind"],
                l["mtu"],
                l["operstate"],
                l["linkinfo"]["info_data"]["mode"]
            ])
        })
        .collect();
    // Independent networks are attached at once, so their interface indexes (the kernel's
    // listing order) may come in either order.
    links.sort_by_key(|l| l.to_string());
    let mut routes = Vec::new();
    for family in ["-4", "-6"] {
        for mut r in pod
            .ip_json(&[family, "route", "show", "table", "main"])
            .as_array()
            .unwrap()
            .clone()
        {
            // Kernel bookkeeping that differs with timing.
            r.as_object_mut().unwrap().remove("expires");
            routes.push(r);
        }
    }
    routes.sort_by_key(|r| r.to_string());
    json!({"result": result, "status": status, "links": links, "addrs": addrs,
           "routes": routes})
}

/// The same pod (cluster macvlan + host-local, macvlan + host-local, macvlan + static v4/v6)
/// through our delegates in-process and through the reference plugins exec'd, at 1.0.0 (the
/// reference's newest): the same printed result, network-status, links and addresses. This adds
/// the API source, the static IPAM and a macvlan cluster network to e2e_local's differential.
#[test]
fn own_delegates_match_the_reference_plugins_through_the_api() {
    require_root!();
    let mut seen = Vec::new();
    for delegates in [Delegates::Reference, Delegates::Ours] {
        let c = own_cluster("1.0.0", delegates, false);
        let pod = TestNetns::new();
        let result = c.cni("ADD", "c1", pod.path_str()).ok().clone();
        let lines = c.delegate_lines(0);
        let in_process = lines.iter().filter(|l| l.contains("in-process")).count();
        match delegates {
            Delegates::Ours => c.assert_in_process(0, "ADD", &["macvlan"]),
            Delegates::Reference => assert_eq!(in_process, 0, "{lines:#?}"),
        }
        assert_eq!(lines.len(), 3, "one delegate per network: {lines:#?}");
        assert_network_status(&c, &pod, "1.0.0");
        seen.push(comparable(&c, &result, &pod));
        c.cni("CHECK", "c1", pod.path_str()).ok();
        c.cni("DEL", "c1", pod.path_str()).ok();
        c.node.assert_clean(&pod);
    }
    assert_eq!(
        seen[0], seen[1],
        "reference (left) vs ours in-process (right)"
    );
}

/// CHECK notices what changed behind the runtime's back on any network, and names it: an
/// address removed from a static network's link, then the VF taken out of the pod. DEL still
/// returns the VF to the node under its own name.
#[test]
fn check_names_the_network_that_changed_and_del_recovers_the_vf() {
    require_root!();
    let c = own_cluster("1.1.0", Delegates::Ours, true);
    let pod = TestNetns::new();
    c.cni("ADD", "c1", pod.path_str()).ok();
    c.cni("CHECK", "c1", pod.path_str()).ok();

    pod.ip(&["addr", "del", "10.40.0.7/24", "dev", "fix0"]);
    let (code, msg) = c.cni("CHECK", "c1", pod.path_str()).err();
    assert!(
        msg.contains("team/fixed") && msg.contains("fix0"),
        "{code} {msg}"
    );
    // Putting it back (with the route that went with it) makes the pod right again.
    pod.ip(&["addr", "add", "10.40.0.7/24", "dev", "fix0"]);
    pod.ip(&[
        "route",
        "add",
        "10.41.0.0/16",
        "via",
        "10.40.0.1",
        "dev",
        "fix0",
    ]);
    c.cni("CHECK", "c1", pod.path_str()).ok();

    let nic = c.sriov.as_ref().unwrap();
    let vf0_mac = pod.link_mac("vf0");
    let (vf_addr, _, _) = nic.vfs.iter().find(|(_, _, m)| *m == vf0_mac).unwrap();
    let node_ns = c.node.ns.name().to_string();
    pod.ip(&["link", "set", "vf0", "netns", &node_ns]);
    // The kernel's sysfs names a VF's netdev as the host sees it now.
    nic.sysfs.set_netdev(vf_addr, Some("vf0"));
    let (code, msg) = c.cni("CHECK", "c1", pod.path_str()).err();
    assert!(
        msg.contains("team/vfnet") && msg.contains("vf0"),
        "{code} {msg}"
    );

    c.cni("DEL", "c1", pod.path_str()).ok();
    c.node.assert_clean(&pod);
    assert_eq!(c.sriov_state_files(), Vec::<PathBuf>::new());
    for (_, netdev, mac) in &nic.vfs {
        assert_eq!(
            c.node.ns.link_mac(netdev),
            *mac,
            "VF {netdev} back on the node"
        );
    }
    assert!(!c.node.ns.has_link("vf0"));
}

/// A delegate failing after the VF and the macvlans were attached in-process rolls every one of
/// them back: VF on the node under its own name, no IP, no SR-IOV state, no record.
#[test]
fn failure_after_the_vf_rolls_back_every_in_process_attachment() {
    require_root!();
    let c = own_cluster("1.0.0", Delegates::Ours, true);
    c.api
        .insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "broken", "namespace": "team"},
            "spec": {"config": json!({"cniVersion": "1.0.0", "name": "broken", "type": "macvlan",
                                      "master": "no-such-link",
                                      "ipam": {"type": "host-local",
                                               "ranges": [[{"subnet": "10.50.0.0/24"}]],
                                               "dataDir": c.node.path("ipam")}}).to_string()}
        }))
        .unwrap();
    let pod_obj = c.api.get("Pod", "team", "web").unwrap();
    let mut selection: Vec<Value> = serde_json::from_str(
        pod_obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    selection.push(json!({"name": "broken"}));
    c.api
        .merge_patch(
            "Pod",
            "team",
            "web",
            &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks":
                                                 Value::Array(selection).to_string()}}}),
        )
        .unwrap();
    let pod = TestNetns::new();
    let (code, msg) = c.cni("ADD", "c1", pod.path_str()).err();
    assert!(
        msg.contains("team/broken") && msg.contains("no-such-link"),
        "{code} {msg}"
    );
    c.assert_in_process(0, "DEL", &["macvlan", "sriov"]);
    c.node.assert_clean(&pod);
    assert_eq!(c.sriov_state_files(), Vec::<PathBuf>::new());
    for (_, netdev, mac) in &c.sriov.as_ref().unwrap().vfs {
        assert_eq!(
            c.node.ns.link_mac(netdev),
            *mac,
            "VF {netdev} back on the node"
        );
    }
    assert_eq!(
        c.status(),
        Vec::<Value>::new(),
        "no network-status for a failed ADD"
    );
    c.cni("DEL", "c1", pod.path_str()).ok();
}
