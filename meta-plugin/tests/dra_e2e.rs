//! One SR-IOV VF's whole DRA story on one node, every party real except the scheduler and the
//! kubelet, which the test plays:
//! 1. `multinet daemon --dra-driver` publishes the node's VFs as a ResourceSlice (API fixture);
//! 2. the test's allocator (the scheduler's rules: DeviceClass and request CEL selectors, a
//!    matchAttribute constraint) allocates a claim from that slice and reserves it for the pod;
//! 3. the test, as the kubelet, registers the plugin and prepares the claim over its gRPC socket;
//! 4. the daemon restarts (nothing changes);
//! 5. the runtime's ADD through the multinet binary gives the pod the claim's VF (our SR-IOV
//!    plugin on a fake sysfs whose VF netdevs are veth links), and the claim's status gets the
//!    network data;
//! 6. DEL returns the VF to the node and leaves it with the claim; unprepare frees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod allocator;
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Answer, Daemon, Node};
use multinet_api_fixture::ApiFixture;
use multinet_dra::proto::v1;
use multinet_dra::testing;
use multinet_sriov::{PciAddress, StateDir};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const DRIVER: &str = "sriov.multinet.io";
const NODE: &str = "node-a";
const PF: (&str, &str) = ("0000:3b:00.0", "pf0");
const VFS: &[(&str, &str)] = &[
    ("0000:3b:02.0", "vf0"),
    ("0000:3b:02.1", "vf1"),
    ("0000:3b:02.2", "vf2"),
];
const PATIENCE: Duration = Duration::from_secs(20);

struct Lab {
    node: Node,
    api: ApiFixture,
    conf: Value,
    sysfs: FakeSysfs,
}

fn lab() -> Lab {
    let node = Node::new("1.0.0");
    node.use_own("sriov");
    for link in std::iter::once(PF.1).chain(VFS.iter().map(|v| v.1)) {
        let peer = format!("{link}p");
        node.ns
            .ip(&["link", "add", link, "type", "veth", "peer", "name", &peer]);
    }
    let mut pf = PfSpec::new(PF.0, PF.1);
    for (addr, netdev) in VFS {
        pf = pf.vf(addr, netdev);
    }
    let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(pf).build();
    let (api, conf) = node.start_api();
    api.insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))
        .unwrap();
    api.insert(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "fast", "namespace": "team",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": DRIVER}},
        "spec": {"config": json!({"cniVersion": "1.0.0", "name": "fast", "type": "sriov",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.40.0.0/24"}]],
                     "dataDir": node.path("ipam")}}).to_string()}}))
        .unwrap();
    Lab {
        node,
        api,
        conf,
        sysfs,
    }
}

impl Lab {
    fn state(&self) -> StateDir {
        StateDir::new(self.node.path("sriov"))
    }

    fn dra_socket(&self) -> std::path::PathBuf {
        self.node.path("plugins").join(DRIVER).join("dra.sock")
    }

    /// `multinet daemon --dra-driver` in the node's namespace (where the API fixture listens).
    fn daemon(&self) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node.path("daemon.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.node.ns.name()])
            .arg(env!("CARGO_BIN_EXE_multinet"))
            .arg("daemon")
            .args(common::dra_daemon_flags(&self.node.path(""), DRIVER))
            .env("NODE_NAME", NODE)
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.node.path("sriov"))
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon(child);
        let socket = self.dra_socket();
        self.wait_for("the DRA socket", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        daemon
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                std::fs::read_to_string(self.node.path("daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cni(&self, command: &str, pod_ns: &TestNetns) -> Answer {
        let call = self
            .node
            .call(command, "c1", "web", pod_ns.path_str())
            .stdin_json(&self.conf)
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.node.path("sriov"))
            .env(
                "MULTINET_PODRESOURCES_SOCKET",
                self.node.path("no-kubelet.sock"),
            )
            .env(
                "MULTINET_KUBELET_CHECKPOINT",
                self.node.path("no-checkpoint"),
            );
        Answer::lenient(&call.run())
    }

    /// Who holds VF `pci`, as its record says.
    fn holder(&self, pci: &str) -> Option<(Option<String>, String)> {
        let pci: PciAddress = pci.parse().unwrap();
        let r = self.state().read_record(&pci).unwrap()?;
        Some((r.claim.map(|c| c.key()), r.container_id))
    }
}

async fn prepare(lab: &Lab, claim: v1::Claim) -> v1::NodePrepareResourcesResponse {
    let mut client = testing::v1(&lab.dra_socket()).await.unwrap();
    client
        .node_prepare_resources(v1::NodePrepareResourcesRequest {
            claims: vec![claim],
        })
        .await
        .unwrap()
        .into_inner()
}

#[test]
fn a_claim_goes_from_allocation_to_a_pods_vf_and_back() {
    require_root!();
    let lab = lab();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let daemon = lab.daemon();

    // 1. The daemon publishes the node's VFs.
    lab.wait_for("the node's ResourceSlice", || {
        !lab.api.list("resourceslices", None).is_empty()
    });
    let slices = lab.api.list("resourceslices", None);

    // 2. The scheduler (the test's allocator) allocates a VF of pf0 with a VF index of at least
    //    1, all under one PCIe root, and reserves the claim for pod team/web.
    let class = json!({"metadata": {"name": "sriov-vf.multinet.io"}, "spec": {"selectors": [
        {"cel": {"expression": format!("device.driver == \"{DRIVER}\"")}}]}});
    let spec = json!({"devices": {
        "requests": [{"name": "vf", "exactly": {"deviceClassName": "sriov-vf.multinet.io",
            "selectors": [{"cel": {"expression": format!(
                "device.attributes[\"{DRIVER}\"].pfName == \"pf0\" && \
                 device.attributes[\"{DRIVER}\"].vfIndex >= 1")}}]}}],
        "constraints": [{"requests": ["vf"], "matchAttribute": "resource.kubernetes.io/pcieRoot"}]}});
    let allocation = allocator::allocate(&json!({"spec": spec}), &[class], &slices, NODE).unwrap();
    let device = allocation["devices"]["results"][0]["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let claim = lab
        .api
        .insert(
            json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "web-nics", "namespace": "team", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web",
                 "controller": true}]},
            "spec": spec,
            "status": {"allocation": allocation,
                       "reservedFor": [{"resource": "pods", "name": "web", "uid": "uid-web"}]}}),
        )
        .unwrap();
    let claim_uid = claim["metadata"]["uid"].as_str().unwrap().to_owned();
    // The lowest VF the selector allows: vf1.
    let vf = VFS[1].0;
    let published = slices[0]["spec"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == device.as_str())
        .unwrap();
    assert_eq!(
        published["attributes"]["k8s.cni.cncf.io/deviceID"]["string"],
        vf
    );
    lab.api
        .insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "fast"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}],
                     "resourceClaims": [{"name": "nics", "resourceClaimTemplateName": "t"}]},
            "status": {"resourceClaimStatuses": [{"name": "nics", "resourceClaimName": "web-nics"}]}}))
        .unwrap();

    // 3. The kubelet prepares the claim: the VF is the claim's.
    let prepared = rt.block_on(prepare(
        &lab,
        v1::Claim {
            namespace: "team".into(),
            uid: claim_uid.clone(),
            name: "web-nics".into(),
        },
    ));
    let answer = &prepared.claims[&claim_uid];
    assert_eq!(answer.error, "", "{answer:?}");
    assert_eq!(answer.devices[0].device_name, device);
    assert_eq!(
        lab.holder(vf),
        Some((Some("team/web-nics".into()), String::new()))
    );

    // 4. A daemon restart changes nothing.
    daemon.stop();
    let daemon = lab.daemon();
    assert_eq!(
        lab.holder(vf),
        Some((Some("team/web-nics".into()), String::new()))
    );

    // 5. The pod's ADD gets the claim's VF; the claim's status says what it became.
    let pod_ns = TestNetns::new();
    lab.cni("ADD", &pod_ns).ok();
    assert_eq!(lab.node.recorded_device_id("c1", "team/fast"), vf);
    assert!(pod_ns.has_link("net1"));
    assert_eq!(
        lab.holder(vf),
        Some((Some("team/web-nics".into()), "c1".to_owned()))
    );
    let status = &lab.api.get("ResourceClaim", "team", "web-nics").unwrap()["status"]["devices"];
    assert_eq!(status[0]["device"], device.as_str(), "{status:#}");
    assert_eq!(status[0]["networkData"]["interfaceName"], "net1");
    assert!(
        status[0]["networkData"]["ips"][0]
            .as_str()
            .unwrap()
            .starts_with("10.40.0."),
        "{status:#}"
    );

    // 6. DEL: the VF is the node's again, still the claim's; unprepare frees it.
    lab.cni("DEL", &pod_ns).ok();
    assert!(lab.node.ns.has_link(VFS[1].1));
    assert_eq!(
        lab.holder(vf),
        Some((Some("team/web-nics".into()), String::new()))
    );
    let mut client = rt.block_on(testing::v1(&lab.dra_socket())).unwrap();
    let unprepared = rt
        .block_on(
            client.node_unprepare_resources(v1::NodeUnprepareResourcesRequest {
                claims: vec![v1::Claim {
                    namespace: "team".into(),
                    uid: claim_uid.clone(),
                    name: "web-nics".into(),
                }],
            }),
        )
        .unwrap()
        .into_inner();
    assert_eq!(unprepared.claims[&claim_uid].error, "");
    assert_eq!(lab.holder(vf), None);
    lab.node.assert_clean(&pod_ns);
    daemon.stop();
}
