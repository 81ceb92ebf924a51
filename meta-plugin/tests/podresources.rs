//! Device IDs from the kubelet pod-resources API, through the multinet binary: a fake kubelet
//! (the generated pod-resources gRPC server on a unix socket) gives the pod a VF, and
//! the network whose NAD names that resource gets it as `deviceID`. A kubelet that answers with
//! an error fails ADD with a message naming the socket, and leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Answer, Node};
use multinet_podresources::proto::{ContainerDevices, ContainerResources, PodResources};
use multinet_podresources::testing::{Behavior, FakeKubelet};
use multinet_testbed::{TestNetns, require_root};
use serde_json::json;

const RESOURCE: &str = "intel.com/sriov";

/// The fake kubelet (the generated pod-resources server) and the runtime serving it while the
/// test runs the plugin binary.
struct Kubelet {
    fake: Option<FakeKubelet>,
    _runtime: tokio::runtime::Runtime,
}

impl Kubelet {
    fn start(behavior: Behavior) -> Kubelet {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fake = runtime.block_on(FakeKubelet::start(behavior));
        Kubelet {
            fake: Some(fake),
            _runtime: runtime,
        }
    }

    fn socket(&self) -> PathBuf {
        self.fake.as_ref().unwrap().socket.clone()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        // The server task is stopped while its runtime still runs.
        self.fake.take();
    }
}

/// Pod team/web holding these devices of the resource.
fn kubelet_pod(ids: &[&str]) -> PodResources {
    PodResources {
        name: "web".into(),
        namespace: "team".into(),
        containers: vec![ContainerResources {
            name: "app".into(),
            devices: vec![ContainerDevices {
                resource_name: RESOURCE.into(),
                device_ids: ids.iter().map(|s| s.to_string()).collect(),
                topology: None,
            }],
            ..Default::default()
        }],
    }
}

/// A node whose `vf` NAD (a macvlan, standing in for SR-IOV) names the resource.
fn node_with_vf_network() -> Node {
    let node = Node::new("1.0.0");
    node.add_resource_nad("vf", RESOURCE);
    node.add_pod("web", "vf");
    node
}

fn cni(node: &Node, command: &str, pod_ns: &TestNetns, socket: &Path) -> Answer {
    let call = node
        .call(command, "c1", "web", pod_ns.path_str())
        .env("MULTINET_PODRESOURCES_SOCKET", socket)
        .env("MULTINET_KUBELET_CHECKPOINT", node.path("checkpoint"));
    Answer::lenient(&call.run())
}

fn socket_in(node: &Node) -> PathBuf {
    node.path("kubelet.sock")
}

/// A device-manager checkpoint giving the pod another device than the fake kubelet does, so a
/// test sees which source was used.
fn write_checkpoint(node: &Node) {
    fs::write(
        node.path("checkpoint"),
        json!({"Data": {"PodDeviceEntries": [{"PodUID": "uid-web", "ContainerName": "app",
            "ResourceName": RESOURCE, "DeviceIDs": {"0": ["0000:af:06.7"]}}],
            "RegisteredDevices": {}}, "Checksum": 1})
        .to_string(),
    )
    .unwrap();
}

#[test]
fn the_network_naming_a_resource_gets_the_device_the_kubelet_gave_the_pod() {
    require_root!();
    let node = node_with_vf_network();
    let kubelet = Kubelet::start(Behavior::Pods(vec![kubelet_pod(&[
        "0000:af:06.3",
        "0000:af:06.1",
    ])]));
    let socket = kubelet.socket();
    write_checkpoint(&node);
    let pod_ns = TestNetns::new();
    cni(&node, "ADD", &pod_ns, &socket).ok();
    // The lowest of the pod's IDs goes to the first network that needs one.
    assert_eq!(node.recorded_device_id("c1", "team/vf"), "0000:af:06.1");
    assert!(pod_ns.has_link("net1"));
    cni(&node, "DEL", &pod_ns, &socket).ok();
    node.assert_clean(&pod_ns);
}

#[test]
fn a_kubelet_error_fails_add_naming_the_socket_and_leaves_nothing() {
    require_root!();
    let node = node_with_vf_network();
    let kubelet = Kubelet::start(Behavior::Status(2, "pod web in namespace team not found"));
    let socket = kubelet.socket();
    let pod_ns = TestNetns::new();
    let (code, msg) = cni(&node, "ADD", &pod_ns, &socket).err();
    assert_eq!(code, 5, "{msg}");
    assert!(msg.contains(&socket.display().to_string()), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    node.assert_clean(&pod_ns);
    cni(&node, "DEL", &pod_ns, &socket).ok();
}

#[test]
fn without_a_kubelet_socket_the_checkpoint_is_read() {
    require_root!();
    let node = node_with_vf_network();
    let pod_ns = TestNetns::new();
    // No socket and no checkpoint: the error names the checkpoint.
    let (code, msg) = cni(&node, "ADD", &pod_ns, &socket_in(&node)).err();
    assert_eq!(code, 5, "{msg}");
    assert!(msg.contains("kubelet checkpoint"), "{msg}");
    node.assert_clean(&pod_ns);

    write_checkpoint(&node);
    cni(&node, "ADD", &pod_ns, &socket_in(&node)).ok();
    assert_eq!(node.recorded_device_id("c1", "team/vf"), "0000:af:06.7");
    cni(&node, "DEL", &pod_ns, &socket_in(&node)).ok();
    node.assert_clean(&pod_ns);
}
