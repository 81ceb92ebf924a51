//! Device IDs from the kubelet pod-resources API, through the multinet binary: a fake kubelet
//! (gRPC over HTTP/2 on a unix socket, built from multinet's own codec) gives the pod a VF, and
//! the network whose NAD names that resource gets it as `deviceID`. A kubelet that answers with
//! an error fails ADD with a message naming the socket, and leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{Answer, Node};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use multinet::podresources::proto::{ContainerDevices, ContainerResources, PodResources};
use multinet::podresources::{GET_PATH, grpc, proto};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const RESOURCE: &str = "intel.com/sriov";

/// What the fake kubelet answers to Get.
#[derive(Clone)]
enum KubeletAnswer {
    Devices(Vec<&'static str>),
    Status(u32, &'static str),
}

async fn handle(
    req: hyper::Request<Incoming>,
    answer: KubeletAnswer,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let (name, namespace) = proto::decode_get_request(&grpc::unframe(&body).unwrap()).unwrap();
    let (message, trailers) = match (&answer, path == GET_PATH) {
        (KubeletAnswer::Devices(ids), true) => {
            let pod = PodResources {
                name,
                namespace,
                containers: vec![ContainerResources {
                    name: "app".into(),
                    devices: vec![ContainerDevices {
                        resource_name: RESOURCE.into(),
                        device_ids: ids.iter().map(|s| s.to_string()).collect(),
                    }],
                }],
            };
            (
                grpc::frame(&proto::encode_get_response(Some(&pod))),
                grpc::status_headers(0, ""),
            )
        }
        (KubeletAnswer::Status(code, text), _) => (Bytes::new(), grpc::status_headers(*code, text)),
        (_, false) => (Bytes::new(), grpc::status_headers(12, "unknown method")),
    };
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .body(
            Full::new(message)
                .with_trailers(async move { Some(Ok(trailers)) })
                .boxed(),
        )
        .unwrap())
}

/// Serves on `socket` from a thread of its own until the test process ends.
fn start_fake_kubelet(socket: &Path, answer: KubeletAnswer) {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, answer.clone()));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
}

/// A node whose `vf` NAD (a macvlan, standing in for SR-IOV) names the resource.
fn node_with_vf_network() -> Node {
    let node = Node::new("1.0.0");
    let mut nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "vf", "namespace": "team",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}},
        "spec": {}});
    nad["spec"]["config"] = node
        .macvlan_nad("vf", "up0", "10.30.0.0/24")
        .to_string()
        .into();
    fs::write(node.path("cluster/nads/vf.json"), nad.to_string()).unwrap();
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

fn recorded_device_id(node: &Node) -> Value {
    let record: Value =
        serde_json::from_str(&fs::read_to_string(node.path("cni/attachments/c1.json")).unwrap())
            .unwrap();
    let vf = &record["attachments"][1];
    assert_eq!(vf["network"], "team/vf");
    vf["conf"]["deviceID"].clone()
}

#[test]
fn the_network_naming_a_resource_gets_the_device_the_kubelet_gave_the_pod() {
    require_root!();
    let node = node_with_vf_network();
    let socket = socket_in(&node);
    start_fake_kubelet(
        &socket,
        KubeletAnswer::Devices(vec!["0000:af:06.3", "0000:af:06.1"]),
    );
    write_checkpoint(&node);
    let pod_ns = TestNetns::new();
    cni(&node, "ADD", &pod_ns, &socket).ok();
    // The lowest of the pod's IDs goes to the first network that needs one.
    assert_eq!(recorded_device_id(&node), "0000:af:06.1");
    assert!(pod_ns.has_link("net1"));
    cni(&node, "DEL", &pod_ns, &socket).ok();
    node.assert_clean(&pod_ns);
}

#[test]
fn a_kubelet_error_fails_add_naming_the_socket_and_leaves_nothing() {
    require_root!();
    let node = node_with_vf_network();
    let socket = socket_in(&node);
    start_fake_kubelet(
        &socket,
        KubeletAnswer::Status(2, "pod web in namespace team not found"),
    );
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
    assert_eq!(recorded_device_id(&node), "0000:af:06.7");
    cni(&node, "DEL", &pod_ns, &socket_in(&node)).ok();
    node.assert_clean(&pod_ns);
}
