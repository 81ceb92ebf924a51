//! `device-info` in network-status, through the multinet binary as a runtime calls it: an SR-IOV
//! VF on a fake sysfs (veth links as VF netdevs) gets its file at the Multus path and its device
//! info in the pod's status; a device plugin's file is copied for a network whose delegate writes
//! nothing; plugins that do not declare `CNIDeviceInfoFile` never see the key; a corrupt file
//! costs only the device info; DEL (and a failed ADD) removes every file multinet made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Answer, Node};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const PF: (&str, &str) = ("0000:3b:00.0", "pf0");
const VFS: &[(&str, &str)] = &[("0000:3b:02.0", "vf0"), ("0000:3b:02.1", "vf1")];
const RESOURCE: &str = "intel.com/sriov";

/// A node with a fake SR-IOV NIC (PF and VF netdevs are veth links in the node namespace), our
/// own binary as the `sriov` plugin, and every device-info folder inside the test's temp dir.
struct DevNode {
    node: Node,
    sysfs: FakeSysfs,
}

impl DevNode {
    fn new() -> DevNode {
        let node = Node::new("1.0.0");
        node.use_own("sriov");
        let mut pf = PfSpec::new(PF.0, PF.1);
        for link in std::iter::once(PF.1).chain(VFS.iter().map(|v| v.1)) {
            let peer = format!("{link}p");
            node.ns
                .ip(&["link", "add", link, "type", "veth", "peer", "name", &peer]);
        }
        for (addr, netdev) in VFS {
            pf = pf.vf(addr, netdev);
        }
        let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(pf).build();
        DevNode { node, sysfs }
    }

    fn conf(&self) -> Value {
        let mut conf = self.node.conf();
        conf["deviceInfoDir"] = json!(self.cni_dir());
        conf["devicePluginInfoDir"] = json!(self.dp_dir());
        conf
    }

    /// multinet's per-attachment files.
    fn cni_dir(&self) -> PathBuf {
        self.node.path("devinfo/cni")
    }

    fn dp_dir(&self) -> PathBuf {
        self.node.path("devinfo/dp")
    }

    /// Where the SR-IOV plugin writes when it is given no path.
    fn sriov_own_dir(&self) -> PathBuf {
        self.node.path("devinfo/sriov-own")
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A NAD with annotations (e.g. a resourceName), in the JSON form the local source reads.
    fn add_nad_with_resource(&self, name: &str, config: Value) {
        let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "team",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}},
            "spec": {"config": config.to_string()}});
        fs::write(
            self.node.path(&format!("cluster/nads/{name}.json")),
            nad.to_string(),
        )
        .unwrap();
    }

    fn sriov_nad(&self, name: &str, declares: bool, subnet: &str) -> Value {
        let mut nad = json!({"cniVersion": "1.0.0", "name": name, "type": "sriov",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                     "dataDir": self.node.path("ipam")}});
        if declares {
            nad["capabilities"] = json!({"CNIDeviceInfoFile": true});
        }
        nad
    }

    /// A shell plugin `plugin` that saves the config it got to `spy/<ifname>-<plugin>.json`, writes `body`
    /// to the CNIDeviceInfoFile it was given (if any) on ADD, and never removes anything.
    fn add_spy_plugin(&self, plugin: &str, body: &str) {
        let spy = self.node.path("spy");
        fs::create_dir_all(&spy).unwrap();
        let script = format!(
            r#"#!/bin/sh
conf=$(cat)
case "$CNI_COMMAND" in
ADD)
  printf '%s' "$conf" > "{spy}/$CNI_IFNAME-{plugin}.json"
  f=$(printf '%s' "$conf" | sed -n 's/.*"CNIDeviceInfoFile":"\([^"]*\)".*/\1/p')
  if [ -n "$f" ]; then mkdir -p "$(dirname "$f")"; printf '%s' '{body}' > "$f"; fi
  printf '{{"cniVersion":"1.0.0","interfaces":[{{"name":"%s","sandbox":"%s"}}]}}' "$CNI_IFNAME" "$CNI_NETNS"
  ;;
VERSION)
  printf '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}}'
  ;;
esac
"#,
            spy = spy.display()
        );
        let path = self.node.bin().join(plugin);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// What the spy plugin `plugin` got for `ifname`.
    fn spied(&self, ifname: &str, plugin: &str) -> Value {
        let text =
            fs::read_to_string(self.node.path(&format!("spy/{ifname}-{plugin}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn cni(&self, command: &str, container: &str, pod: &str, netns: Option<&TestNetns>) -> Answer {
        let netns = netns.map(|n| n.path_str()).unwrap_or("");
        let call = self
            .node
            .call(command, container, pod, netns)
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.node.path("sriov"))
            .env("MULTINET_DEVINFO_DIR", self.sriov_own_dir())
            // No kubelet socket: the device manager's checkpoint says which devices each pod holds
            // (a selection may only name one of them).
            .env(
                "MULTINET_PODRESOURCES_SOCKET",
                self.node.path("no-kubelet.sock"),
            )
            .env("MULTINET_KUBELET_CHECKPOINT", self.checkpoint())
            .stdin_json(&self.conf());
        Answer::of(&call.run())
    }

    /// A kubelet checkpoint giving every test pod the devices the tests select.
    fn checkpoint(&self) -> std::path::PathBuf {
        let path = self.node.path("kubelet_internal_checkpoint");
        let entries: Vec<Value> = ["web", "before", "after"]
            .iter()
            .map(|pod| {
                json!({"PodUID": format!("uid-{pod}"), "ContainerName": "app",
                       "ResourceName": RESOURCE,
                       "DeviceIDs": ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:09.0"]})
            })
            .collect();
        let text = json!({"Data": {"PodDeviceEntries": entries, "RegisteredDevices": {}},
                          "Checksum": 1});
        fs::write(&path, text.to_string()).unwrap();
        path
    }

    fn status_of<'a>(status: &'a [Value], network: &str) -> &'a Value {
        status
            .iter()
            .find(|s| s["name"] == network)
            .unwrap_or_else(|| panic!("no {network} in {status:?}"))
    }

    /// The attachment record of a container.
    fn record(&self, container: &str) -> Value {
        let text = fs::read_to_string(self.node.path(&format!("cni/attachments/{container}.json")))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.node.path("multinet.log")).unwrap_or_default()
    }
}

#[test]
fn sriov_vf_device_info_reaches_network_status_and_del_removes_the_file() {
    require_root!();
    let n = DevNode::new();
    n.add_nad_with_resource("vf", n.sriov_nad("vf", true, "10.40.0.0/24"));
    n.node
        .add_pod("web", r#"[{"name":"vf","deviceID":"0000:3b:02.1"}]"#);
    let pod = TestNetns::new();
    n.cni("ADD", "c1", "web", Some(&pod)).ok();

    let status = n.node.network_status("web");
    let vf = DevNode::status_of(&status, "team/vf");
    assert_eq!(vf["interface"], "net1");
    assert_eq!(
        vf["device-info"],
        json!({"type": "pci", "version": "1.1.0",
               "pci": {"pci-address": "0000:3b:02.1", "pf-pci-address": PF.0}}),
        "{status:?}"
    );
    // The cluster network has no device and declares nothing: no device-info.
    assert_eq!(
        DevNode::status_of(&status, "cluster").get("device-info"),
        None
    );

    // The file is at Multus's path, the plugin was told so, and the record remembers it.
    let file = n.cni_dir().join("vf-c1_net1");
    let on_disk: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(on_disk, vf["device-info"]);
    let record = n.record("c1");
    let entry = &record["attachments"][1];
    assert_eq!(entry["network"], "team/vf");
    assert_eq!(entry["deviceInfoFile"], json!(file));
    assert_eq!(
        entry["conf"]["runtimeConfig"]["CNIDeviceInfoFile"],
        json!(file)
    );
    assert_eq!(record["attachments"][0].get("deviceInfoFile"), None);
    assert_eq!(
        DevNode::files(&n.sriov_own_dir()),
        Vec::<String>::new(),
        "the plugin wrote where it was told, not to its own folder"
    );

    // `multinet sriov list` names the VF's pod; for a record of an earlier version (no pod in
    // it) it finds the pod in the meta-plugin's record of the container.
    let list = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_multinet"))
            .args(["sriov", "list"])
            .env("MULTINET_SYSFS_ROOT", n.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", n.node.path("sriov"))
            .env("MULTINET_CNI_DIR", n.node.path("cni"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("0000:3b:02.1"))
            .unwrap_or_else(|| panic!("no VF line in\n{text}"))
            .to_string();
        (text, line)
    };
    let (table, line) = list();
    assert!(table.lines().next().unwrap().contains("POD"), "{table}");
    assert!(
        line.contains("team/web") && line.contains("c1/net1"),
        "{table}"
    );
    let record_file = n.node.path("sriov/pci/0000:3b:02.1");
    let mut old: Value = serde_json::from_slice(&fs::read(&record_file).unwrap()).unwrap();
    assert_eq!(old["pod"], "team/web");
    old.as_object_mut().unwrap().remove("pod");
    fs::write(&record_file, serde_json::to_vec(&old).unwrap()).unwrap();
    let (table, line) = list();
    assert!(
        line.contains("team/web") && line.contains("c1/net1"),
        "{table}"
    );

    n.cni("DEL", "c1", "web", Some(&pod)).ok();
    assert!(!file.exists(), "DEL left {}", file.display());
    assert_eq!(DevNode::files(&n.cni_dir()), Vec::<String>::new());
    n.node.assert_clean(&pod);
    assert!(n.node.ns.has_link("vf1"), "the VF went back to the node");
    n.cni("DEL", "c1", "web", Some(&pod)).ok();
}

#[test]
fn plugins_that_do_not_declare_the_capability_never_get_the_key() {
    require_root!();
    let n = DevNode::new();
    let written = json!({"type": "vhost-user", "version": "1.1.0",
        "vhost-user": {"mode": "client", "path": "/var/run/vhu/net2.sock"}});
    n.add_spy_plugin("spy", &written.to_string());
    n.add_spy_plugin("spy-b", &written.to_string());
    // A device ID but no capability: multinet makes a path for a device plugin's file, but the
    // plugin is not told.
    n.add_nad_with_resource(
        "plain",
        json!({"cniVersion": "1.0.0", "name": "plain", "type": "spy"}),
    );
    // A conflist where only the first plugin declares it.
    n.node.add_nad(
        "chain",
        json!({"cniVersion": "1.0.0", "name": "chain", "plugins": [
            {"type": "spy", "capabilities": {"CNIDeviceInfoFile": true}},
            {"type": "spy-b", "capabilities": {"mac": true}}]}),
    );
    n.add_nad_with_resource("vf", n.sriov_nad("vf", false, "10.41.0.0/24"));
    n.node.add_pod(
        "web",
        r#"[{"name":"plain","deviceID":"0000:3b:09.0"},{"name":"chain"},{"name":"vf","deviceID":"0000:3b:02.0"}]"#,
    );
    let pod = TestNetns::new();
    n.cni("ADD", "c1", "web", Some(&pod)).ok();

    let plain = n.spied("net1", "spy");
    assert_eq!(plain["deviceID"], "0000:3b:09.0", "{plain}");
    assert!(
        !plain.to_string().contains("CNIDeviceInfoFile"),
        "a plugin without the capability got the key: {plain}"
    );
    let chain = n.spied("net2", "spy");
    assert_eq!(
        chain["runtimeConfig"]["CNIDeviceInfoFile"],
        json!(n.cni_dir().join("chain-c1_net2"))
    );
    let second = n.spied("net2", "spy-b");
    assert_eq!(second["type"], "spy-b");
    assert!(
        !second.to_string().contains("CNIDeviceInfoFile"),
        "the chain's second plugin got the key: {second}"
    );
    let record = n.record("c1");
    let vf_conf = &record["attachments"][3]["conf"];
    assert_eq!(vf_conf["deviceID"], "0000:3b:02.0");
    assert_eq!(vf_conf.get("runtimeConfig"), None, "{vf_conf}");

    // The undeclared SR-IOV plugin wrote to its own folder, which multinet does not read.
    assert_eq!(DevNode::files(&n.sriov_own_dir()).len(), 1);
    let status = n.node.network_status("web");
    for net in ["team/plain", "team/vf"] {
        assert_eq!(
            DevNode::status_of(&status, net).get("device-info"),
            None,
            "{net}"
        );
    }
    assert_eq!(
        DevNode::status_of(&status, "team/chain")["device-info"],
        written
    );

    n.cni("DEL", "c1", "web", Some(&pod)).ok();
    assert_eq!(DevNode::files(&n.cni_dir()), Vec::<String>::new());
    assert_eq!(DevNode::files(&n.sriov_own_dir()), Vec::<String>::new());
    n.node.assert_clean(&pod);
}

#[test]
fn device_plugin_file_is_copied_for_a_delegate_that_writes_nothing() {
    require_root!();
    let n = DevNode::new();
    let dp_info = json!({"type": "pci", "version": "1.1.0",
        "pci": {"pci-address": "0000:3b:02.0", "rdma-device": "mlx5_3"}});
    fs::create_dir_all(n.dp_dir()).unwrap();
    let dp_file = n.dp_dir().join("intel.com-sriov-0000:3b:02.0-device.json");
    fs::write(&dp_file, dp_info.to_string()).unwrap();
    // The reference macvlan stands in for a device's delegate: it declares nothing and writes
    // no device-info file.
    n.add_nad_with_resource("dpnet", n.node.macvlan_nad("dpnet", "up0", "10.42.0.0/24"));
    n.node
        .add_pod("web", r#"[{"name":"dpnet","deviceID":"0000:3b:02.0"}]"#);
    let pod = TestNetns::new();
    n.cni("ADD", "c1", "web", Some(&pod)).ok();

    let status = n.node.network_status("web");
    assert_eq!(
        DevNode::status_of(&status, "team/dpnet")["device-info"],
        dp_info
    );
    let copy = n.cni_dir().join("dpnet-c1_net1");
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&dp_file).unwrap());
    assert_eq!(
        n.record("c1")["attachments"][1]["conf"].get("runtimeConfig"),
        None
    );

    n.cni("DEL", "c1", "web", Some(&pod)).ok();
    assert!(!copy.exists());
    assert!(
        dp_file.exists(),
        "the device plugin's own file is not multinet's to remove"
    );
    n.node.assert_clean(&pod);
}

#[test]
fn a_corrupt_device_info_file_costs_only_the_device_info() {
    require_root!();
    let n = DevNode::new();
    n.add_spy_plugin("spy", r#"{"type":"pci","pci":"#);
    n.node.add_nad(
        "broken-info",
        json!({"cniVersion": "1.0.0", "name": "broken-info", "type": "spy",
               "capabilities": {"CNIDeviceInfoFile": true}}),
    );
    n.node.add_pod("web", "broken-info");
    let pod = TestNetns::new();
    n.cni("ADD", "c1", "web", Some(&pod)).ok();

    let file = n.cni_dir().join("broken-info-c1_net1");
    assert!(file.exists(), "the plugin wrote its (corrupt) file");
    let status = n.node.network_status("web");
    let entry = DevNode::status_of(&status, "team/broken-info");
    assert_eq!(entry["interface"], "net1");
    assert_eq!(entry.get("device-info"), None, "{entry}");
    let log = n.log();
    assert!(
        log.contains("device-info file left out of network-status"),
        "{log}"
    );

    // The plugin's DEL leaves the file; multinet removes it.
    n.cni("DEL", "c1", "web", Some(&pod)).ok();
    assert!(!file.exists());
    n.node.assert_clean(&pod);
}

#[test]
fn a_failed_add_removes_the_device_info_files_it_made() {
    require_root!();
    let n = DevNode::new();
    fs::create_dir_all(n.dp_dir()).unwrap();
    for id in ["0000:3b:02.0", "0000:3b:02.1"] {
        fs::write(
            n.dp_dir().join(format!("intel.com-sriov-{id}-device.json")),
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": id}}).to_string(),
        )
        .unwrap();
    }
    n.add_nad_with_resource("dpnet", n.node.macvlan_nad("dpnet", "up0", "10.43.0.0/24"));
    n.node.add_nad(
        "broken",
        n.node.macvlan_nad("broken", "no-such-link", "10.44.0.0/24"),
    );
    // Added then rolled back (first pod), and copied but never run (second pod).
    n.node.add_pod(
        "before",
        r#"[{"name":"dpnet","deviceID":"0000:3b:02.0"},{"name":"broken"}]"#,
    );
    n.node.add_pod(
        "after",
        r#"[{"name":"broken"},{"name":"dpnet","deviceID":"0000:3b:02.1"}]"#,
    );
    for (container, pod_name) in [("c1", "before"), ("c2", "after")] {
        let pod = TestNetns::new();
        let (_, msg) = n.cni("ADD", container, pod_name, Some(&pod)).err();
        assert!(msg.contains("team/broken"), "{msg}");
        assert_eq!(
            DevNode::files(&n.cni_dir()),
            Vec::<String>::new(),
            "{pod_name}: device-info files left after a failed ADD"
        );
        n.node.assert_clean(&pod);
    }
    assert_eq!(DevNode::files(&n.dp_dir()).len(), 2);
}
