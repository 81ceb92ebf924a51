//! The DRA kubelet plugin of `multinet daemon`, with the test playing the kubelet: the real
//! daemon binary, the API fixture, a fake sysfs with SR-IOV VFs and a real VF state directory.
//! Registration, the published ResourceSlice field by field, prepare/unprepare in both API
//! versions, per-claim refusals that change nothing, and holds that outlive a daemon restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Daemon;
use std::time::{Duration, Instant};

use multinet_api_fixture::ApiFixture;
use multinet_dra::proto::registration::{InfoRequest, RegistrationStatus};
use multinet_dra::proto::{v1, v1beta1};
use multinet_dra::testing;
use multinet_sriov::{Owner, PciAddress, StateDir, Sysfs, VfAllocator};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use serde_json::{Value, json};

const DRIVER: &str = "sriov.multinet.io";
const NODE: &str = "node-1";
const PATIENCE: Duration = Duration::from_secs(20);

struct Node {
    dir: tempfile::TempDir,
    fixture: ApiFixture,
    sysfs: FakeSysfs,
    node_uid: String,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let fixture = ApiFixture::start().await.unwrap();
    fixture
        .write_kubeconfig(dir.path().join("kubeconfig"))
        .unwrap();
    let node = fixture
        .insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))
        .unwrap();
    let mut pf = PfSpec::new("0000:af:00.1", "ens1f1");
    for i in 0..3 {
        pf = pf.vf(&format!("0000:af:06.{i}"), &format!("ens1f1v{i}"));
    }
    let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(pf).build();
    Node {
        dir,
        fixture,
        sysfs,
        node_uid: node["metadata"]["uid"].as_str().unwrap().to_owned(),
    }
}

impl Node {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn registration_socket(&self) -> PathBuf {
        self.path("registry").join(format!("{DRIVER}-reg.sock"))
    }

    fn dra_socket(&self) -> PathBuf {
        self.path("plugins").join(DRIVER).join("dra.sock")
    }

    fn state(&self) -> StateDir {
        StateDir::new(self.path("sriov-state"))
    }

    fn daemon(&self) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_multinet"))
            .arg("daemon")
            .args(common::dra_daemon_flags(self.dir.path(), DRIVER))
            .arg("--log-level=debug")
            .env("NODE_NAME", NODE)
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.path("sriov-state"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon(child);
        let socket = self.registration_socket();
        wait_for(
            "the registration socket",
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            || self.log(),
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Puts a claim in the API allocated to `devices` (request `vf<n>`) and reserved for pod
    /// `pod-uid`; returns its uid.
    fn claim(&self, name: &str, devices: &[(&str, &str, &str)]) -> String {
        let results: Vec<Value> = devices
            .iter()
            .enumerate()
            .map(|(n, (driver, pool, device))| {
                json!({"request": format!("vf{n}/fast"), "driver": driver, "pool": pool,
                       "device": device})
            })
            .collect();
        let stored = self
            .fixture
            .insert(json!({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"devices": {"requests": []}},
                "status": {
                    "allocation": {"devices": {"results": results}},
                    "reservedFor": [{"resource": "pods", "name": "web", "uid": "pod-uid"}],
                },
            }))
            .unwrap();
        stored["metadata"]["uid"].as_str().unwrap().to_owned()
    }

    fn holder(&self, pci: &str) -> Option<String> {
        let pci: PciAddress = pci.parse().unwrap();
        let record = self.state().read_record(&pci).unwrap()?;
        Some(match record.claim {
            Some(c) => format!("claim {} {}", c.uid, c.key()),
            None => format!("container {}", record.container_id),
        })
    }

    async fn wait_for_slice(&self) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let slices = self.fixture.list("resourceslices", None);
            if let Some(s) = slices.first() {
                assert_eq!(slices.len(), 1, "{slices:#?}");
                return s.clone();
            }
            assert!(Instant::now() < deadline, "no slice; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn v1_claim(uid: &str, name: &str) -> v1::Claim {
    v1::Claim {
        namespace: "team".into(),
        uid: uid.into(),
        name: name.into(),
    }
}

fn v1beta1_claim(uid: &str, name: &str) -> v1beta1::Claim {
    v1beta1::Claim {
        namespace: "team".into(),
        uid: uid.into(),
        name: name.into(),
    }
}

async fn prepare(node: &Node, claims: Vec<v1::Claim>) -> v1::NodePrepareResourcesResponse {
    let mut client = testing::v1(&node.dra_socket()).await.unwrap();
    client
        .node_prepare_resources(v1::NodePrepareResourcesRequest { claims })
        .await
        .unwrap()
        .into_inner()
}

async fn unprepare(node: &Node, claims: Vec<v1::Claim>) -> v1::NodeUnprepareResourcesResponse {
    let mut client = testing::v1(&node.dra_socket()).await.unwrap();
    client
        .node_unprepare_resources(v1::NodeUnprepareResourcesRequest { claims })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_registers_the_driver_and_prepares_claims_in_both_versions() {
    let node = node().await;
    let daemon = node.daemon();

    // Registration, as the kubelet's plugin watcher does it.
    let mut reg = testing::registration(&node.registration_socket())
        .await
        .unwrap();
    let info = reg.get_info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.r#type, "DRAPlugin");
    assert_eq!(info.name, DRIVER);
    assert_eq!(PathBuf::from(&info.endpoint), node.dra_socket());
    assert!(Path::new(&info.endpoint).is_absolute());
    assert_eq!(
        info.supported_versions,
        ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    );
    reg.notify_registration_status(RegistrationStatus {
        plugin_registered: true,
        error: String::new(),
    })
    .await
    .unwrap();
    let refused = reg
        .notify_registration_status(RegistrationStatus {
            plugin_registered: false,
            error: "bad endpoint".into(),
        })
        .await
        .unwrap_err();
    assert!(refused.message().contains("bad endpoint"), "{refused:?}");
    // Both sockets are root's alone.
    use std::os::unix::fs::PermissionsExt;
    for socket in [node.registration_socket(), node.dra_socket()] {
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{}: {mode:o}", socket.display());
    }

    // v1: prepare, again (same answer), unprepare twice.
    let uid = node.claim("net-a", &[(DRIVER, NODE, "pci-0000-af-06-1")]);
    let first = prepare(&node, vec![v1_claim(&uid, "net-a")]).await;
    let entry = &first.claims[&uid];
    assert_eq!(entry.error, "");
    assert_eq!(
        entry.devices,
        [v1::Device {
            request_names: vec!["vf0".into()],
            pool_name: NODE.into(),
            device_name: "pci-0000-af-06-1".into(),
            cdi_device_ids: vec![],
            share_id: None,
        }]
    );
    assert_eq!(
        node.holder("0000:af:06.1"),
        Some(format!("claim {uid} team/net-a"))
    );
    let record = node
        .state()
        .read_record(&"0000:af:06.1".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.claim.unwrap().pods, ["pod-uid"]);
    let again = prepare(&node, vec![v1_claim(&uid, "net-a")]).await;
    assert_eq!(again, first);
    for _ in 0..2 {
        let answer = unprepare(&node, vec![v1_claim(&uid, "net-a")]).await;
        assert_eq!(answer.claims.len(), 1);
        assert_eq!(answer.claims[&uid].error, "");
        assert_eq!(node.holder("0000:af:06.1"), None);
    }

    // v1beta1: the same on another device.
    let uid = node.claim("net-b", &[(DRIVER, NODE, "pci-0000-af-06-2")]);
    let mut beta = testing::v1beta1(&node.dra_socket()).await.unwrap();
    let ask = || v1beta1::NodePrepareResourcesRequest {
        claims: vec![v1beta1_claim(&uid, "net-b")],
    };
    let first = beta
        .node_prepare_resources(ask())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.claims[&uid],
        v1beta1::NodePrepareResourceResponse {
            devices: vec![v1beta1::Device {
                request_names: vec!["vf0".into()],
                pool_name: NODE.into(),
                device_name: "pci-0000-af-06-2".into(),
                cdi_device_ids: vec![],
            }],
            error: String::new(),
        }
    );
    assert_eq!(
        node.holder("0000:af:06.2"),
        Some(format!("claim {uid} team/net-b"))
    );
    let again = beta
        .node_prepare_resources(ask())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    for _ in 0..2 {
        let answer = beta
            .node_unprepare_resources(v1beta1::NodeUnprepareResourcesRequest {
                claims: vec![v1beta1_claim(&uid, "net-b"), v1beta1_claim("gone", "old")],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.claims.len(), 2, "every claim gets an entry");
        assert!(answer.claims.values().all(|c| c.error.is_empty()));
        assert_eq!(node.holder("0000:af:06.2"), None);
    }

    // Stopping removes both sockets: the kubelet deregisters the driver.
    daemon.stop();
    assert!(!node.registration_socket().exists());
    assert!(!node.dra_socket().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slice_lists_every_vf_with_its_attributes() {
    let node = node().await;
    let _daemon = node.daemon();
    let slice = node.wait_for_slice().await;
    let spec = &slice["spec"];
    assert_eq!(spec["driver"], DRIVER);
    assert_eq!(spec["nodeName"], NODE);
    assert_eq!(spec["pool"]["name"], NODE);
    assert!(spec["pool"]["generation"].as_i64().unwrap() >= 1);
    assert_eq!(spec["pool"]["resourceSliceCount"], 1);
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["name"], NODE);
    assert_eq!(owner["uid"], node.node_uid.as_str());
    let devices = spec["devices"].as_array().unwrap();
    let names: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["pci-0000-af-06-0", "pci-0000-af-06-1", "pci-0000-af-06-2"]
    );
    let a = &devices[1]["attributes"];
    let own = |id: &str| format!("{DRIVER}/{id}");
    let expect_string = [
        (own("pciAddress"), "0000:af:06.1"),
        (own("pfName"), "ens1f1"),
        (own("pfPciAddress"), "0000:af:00.1"),
        (own("vendor"), "8086"),
        (own("deviceID"), "154c"),
        (own("vendorName"), "Intel Corporation"),
        (own("driver"), "iavf"),
        (own("linkType"), "ether"),
        ("resource.kubernetes.io/pcieRoot".into(), "pci0000:00"),
        ("resource.kubernetes.io/pciBusID".into(), "0000:af:06.1"),
        ("k8s.cni.cncf.io/deviceID".into(), "0000:af:06.1"),
        ("k8s.cni.cncf.io/resourceName".into(), DRIVER),
    ];
    let strings = expect_string.len();
    for (key, value) in expect_string {
        assert_eq!(a[&key], json!({"string": value}), "{key}: {a:#}");
    }
    let device_name = a[&own("deviceName")]["string"].as_str().unwrap();
    assert!(device_name.contains("Virtual Function"), "{device_name}");
    assert_eq!(a[&own("numaNode")], json!({"int": 0}));
    assert_eq!(a[&own("vfIndex")], json!({"int": 1}));
    assert_eq!(a.as_object().unwrap().len(), strings + 3);

    // A VF gone from sysfs is gone from the slice, with a higher generation.
    let generation = spec["pool"]["generation"].as_i64().unwrap();
    std::fs::remove_file(
        node.sysfs
            .root()
            .join("bus/pci/devices/0000:af:00.1/virtfn2"),
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let slice = node.wait_for_slice().await;
        if slice["spec"]["devices"].as_array().unwrap().len() == 2 {
            assert!(slice["spec"]["pool"]["generation"].as_i64().unwrap() > generation);
            break;
        }
        assert!(Instant::now() < deadline, "slice not updated: {slice:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_that_cannot_be_prepared_fail_alone_and_change_nothing() {
    let node = node().await;
    let _daemon = node.daemon();
    // An attachment holds 06.0 (a live netns: this test's).
    let sysfs = Sysfs::new(node.sysfs.root());
    let state = node.state();
    state.prepare().unwrap();
    {
        let alloc = VfAllocator::new(&sysfs, &state);
        let vf = sysfs.vf(&"0000:af:06.0".parse().unwrap()).unwrap();
        let owner = Owner {
            container_id: "c-attached".into(),
            ifname: "net1".into(),
            netns: format!("/proc/{}/ns/net", std::process::id()),
            pod: Some("other/pod".into()),
            pod_uid: Some("other-pod".into()),
        };
        alloc.claim_device(vf, &owner, None).unwrap();
    }
    // Another claim holds 06.1.
    let holder = node.claim("holder", &[(DRIVER, NODE, "pci-0000-af-06-1")]);
    let held = prepare(&node, vec![v1_claim(&holder, "holder")]).await;
    assert_eq!(held.claims[&holder].error, "");

    let unallocated = node
        .fixture
        .insert(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "pending", "namespace": "team"},
            "spec": {"devices": {"requests": []}},
        }))
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    node.claim("replaced", &[(DRIVER, NODE, "pci-0000-af-06-2")]);
    let foreign = node.claim("foreign", &[(DRIVER, NODE, "eth0")]);
    let missing_vf = node.claim("missing", &[(DRIVER, NODE, "pci-0000-af-07-0")]);
    let attached = node.claim("attached", &[(DRIVER, NODE, "pci-0000-af-06-0")]);
    // 06.2 is free, 06.1 is the holder's: neither is left held.
    let partial = node.claim(
        "partial",
        &[
            (DRIVER, NODE, "pci-0000-af-06-2"),
            (DRIVER, NODE, "pci-0000-af-06-1"),
        ],
    );
    let records_before = state.records();
    assert_eq!(
        node.holder("0000:af:06.0"),
        Some("container c-attached".into())
    );
    let answer = prepare(
        &node,
        vec![
            v1_claim(&unallocated, "pending"),
            v1_claim("not-the-uid", "replaced"),
            v1_claim(&foreign, "foreign"),
            v1_claim(&missing_vf, "missing"),
            v1_claim(&attached, "attached"),
            v1_claim(&partial, "partial"),
            v1_claim("no-such-uid", "absent"),
        ],
    )
    .await;
    assert_eq!(answer.claims.len(), 7);
    let error = |uid: &str| {
        let entry = &answer.claims[uid];
        assert!(entry.devices.is_empty(), "{uid}: {entry:?}");
        entry.error.clone()
    };
    assert!(error(&unallocated).contains("not allocated"));
    assert!(error("not-the-uid").contains("replaced"));
    assert!(error(&foreign).contains("\"eth0\""));
    assert!(error(&missing_vf).contains("pci-0000-af-07-0"));
    for (uid, device) in [
        (&attached, "pci-0000-af-06-0"),
        (&partial, "pci-0000-af-06-1"),
    ] {
        let e = error(uid);
        assert!(e.contains(device) && e.contains("in use"), "{e}");
        // The holder is never named to another claim.
        assert!(
            !e.contains("holder") && !e.contains("c-attached") && !e.contains("other/pod"),
            "{e}"
        );
    }
    assert!(error("no-such-uid").contains("does not exist"));
    assert_eq!(state.records(), records_before, "nothing changed");
    assert_eq!(node.holder("0000:af:06.2"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_claim_outlives_a_daemon_restart() {
    let node = node().await;
    let daemon = node.daemon();
    let uid = node.claim("net", &[(DRIVER, NODE, "pci-0000-af-06-0")]);
    let answer = prepare(&node, vec![v1_claim(&uid, "net")]).await;
    assert_eq!(answer.claims[&uid].error, "");
    daemon.stop();
    assert_eq!(
        node.holder("0000:af:06.0"),
        Some(format!("claim {uid} team/net"))
    );

    // A daemon killed outright leaves its sockets behind; the next one replaces them.
    let killed = node.daemon();
    drop(killed);
    assert!(node.registration_socket().exists());
    let _daemon = node.daemon();
    assert_eq!(
        node.holder("0000:af:06.0"),
        Some(format!("claim {uid} team/net"))
    );
    // Preparing again after the restart answers as before.
    assert_eq!(prepare(&node, vec![v1_claim(&uid, "net")]).await, answer);
    let answer = unprepare(&node, vec![v1_claim(&uid, "net")]).await;
    assert_eq!(answer.claims[&uid].error, "");
    assert_eq!(node.holder("0000:af:06.0"), None);
}
