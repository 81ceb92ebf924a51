//! The client against the generated server (a fake kubelet) on a unix socket in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use multinet_podresources::proto::{
    CdiDevice, ClaimResource, ContainerDevices, ContainerResources, DynamicResource,
    GetPodResourcesRequest, PodResources,
};
use multinet_podresources::testing::{Behavior, Call, FakeKubelet};
use multinet_podresources::{
    DeviceMap, GET_PATH, LIST_PATH, PodDevices, QueryError, TIMEOUT, pod_devices,
};
use prost::Message;

fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
    ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
        topology: None,
    }
}

fn pod(ns: &str, name: &str, containers: Vec<Vec<ContainerDevices>>) -> PodResources {
    PodResources {
        name: name.into(),
        namespace: ns.into(),
        containers: containers
            .into_iter()
            .enumerate()
            .map(|(i, devices)| ContainerResources {
                name: format!("c{i}"),
                devices,
                ..Default::default()
            })
            .collect(),
    }
}

fn web() -> PodResources {
    pod(
        "team",
        "web",
        vec![
            // An init container's device is handed on to the app container.
            vec![devices("intel.com/sriov", &["0000:af:06.3"])],
            vec![
                devices("intel.com/sriov", &["0000:af:06.3", "0000:af:06.1"]),
                devices("nvidia.com/gpu", &["GPU-2"]),
            ],
            vec![devices("intel.com/sriov", &["0000:af:06.0"])],
        ],
    )
}

fn other() -> PodResources {
    pod(
        "team",
        "db",
        vec![vec![devices("intel.com/sriov", &["0000:af:07.0"])]],
    )
}

fn want_web() -> DeviceMap {
    let mut m = DeviceMap::new();
    m.insert(
        "intel.com/sriov".into(),
        vec![
            "0000:af:06.0".into(),
            "0000:af:06.1".into(),
            "0000:af:06.3".into(),
        ],
    );
    m.insert("nvidia.com/gpu".into(), vec!["GPU-2".into()]);
    m
}

/// The device-plugin IDs the kubelet gives team/web.
async fn ask(k: &FakeKubelet) -> Result<DeviceMap, QueryError> {
    ask_all(k).await.map(|d| d.plugins)
}

async fn ask_all(k: &FakeKubelet) -> Result<PodDevices, QueryError> {
    pod_devices(&k.socket, "team", "web", Duration::from_secs(5)).await
}

#[tokio::test]
async fn dra_claims_are_listed_apart_by_claim_name() {
    let mut web = web();
    web.containers[2].dynamic_resources = vec![DynamicResource {
        claim_name: "fast-nics".into(),
        claim_namespace: "team".into(),
        claim_resources: vec![ClaimResource {
            cdi_devices: vec![
                CdiDevice {
                    name: "sriov.multinet.io/vf=0000:af:06.5".into(),
                },
                // Not a qualified CDI name, or two `=`: skipped.
                CdiDevice {
                    name: "0000:af:06.6".into(),
                },
                CdiDevice {
                    name: "a/b=c=0000:af:06.7".into(),
                },
                CdiDevice {
                    name: "sriov.multinet.io/vf=0000:af:06.4".into(),
                },
            ],
            driver_name: "sriov.multinet.io".into(),
            pool_name: "node-a".into(),
            device_name: "vf-4".into(),
        }],
    }];
    let k = FakeKubelet::start(Behavior::Pods(vec![other(), web])).await;
    let answer = ask_all(&k).await.unwrap();
    assert_eq!(answer.plugins, want_web());
    assert_eq!(
        answer.claims,
        DeviceMap::from([(
            "fast-nics".to_owned(),
            vec!["0000:af:06.4".to_owned(), "0000:af:06.5".to_owned()]
        )])
    );
}

#[tokio::test]
async fn the_numa_nodes_of_the_pods_devices_are_reported() {
    use multinet_podresources::proto::{NumaNode, TopologyInfo};
    let mut web = web();
    web.containers[1].devices[1].topology = Some(TopologyInfo {
        nodes: vec![NumaNode { id: 1 }],
    });
    web.containers[2].devices[0].topology = Some(TopologyInfo {
        nodes: vec![NumaNode { id: 0 }, NumaNode { id: 1 }],
    });
    let k = FakeKubelet::start(Behavior::Pods(vec![other(), web])).await;
    let answer = ask_all(&k).await.unwrap();
    assert_eq!(answer.numa_nodes.into_iter().collect::<Vec<_>>(), [0, 1]);
}

#[tokio::test]
async fn get_answers_the_pods_devices_sorted_per_resource() {
    let k = FakeKubelet::start(Behavior::Pods(vec![other(), web()])).await;
    assert_eq!(ask(&k).await.unwrap(), want_web());
    assert_eq!(
        k.calls(),
        vec![Call {
            path: GET_PATH.into(),
            pod: Some(("web".into(), "team".into()))
        }]
    );
}

#[tokio::test]
async fn a_kubelet_without_get_is_asked_with_list() {
    for (code, text) in [
        (12, "unknown method Get for service v1.PodResourcesLister"),
        (2, "PodResources API Get method disabled"),
    ] {
        let k = FakeKubelet::start(Behavior::GetFails(code, text, vec![other(), web()])).await;
        assert_eq!(ask(&k).await.unwrap(), want_web(), "{code}");
        let paths: Vec<String> = k.calls().into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec![GET_PATH, LIST_PATH]);
    }
}

#[tokio::test]
async fn other_errors_of_get_do_not_ask_list() {
    // Unknown (2) without the feature gate's wording is a real failure of Get.
    let k = FakeKubelet::start(Behavior::GetFails(2, "boom", vec![web()])).await;
    let err = ask(&k).await.unwrap_err().to_string();
    assert!(err.contains("Get team/web: gRPC status 2: boom"), "{err}");
    assert_eq!(k.calls().len(), 1);
}

#[tokio::test]
async fn a_pod_without_devices_gets_an_empty_map() {
    let k = FakeKubelet::start(Behavior::Pods(vec![pod("team", "web", vec![vec![]])])).await;
    assert_eq!(ask(&k).await.unwrap(), DeviceMap::new());
    let k = FakeKubelet::start(Behavior::GetFails(12, "", vec![other()])).await;
    assert_eq!(ask(&k).await.unwrap(), DeviceMap::new());
}

#[tokio::test]
async fn a_grpc_error_is_an_error_naming_the_status() {
    for behavior in [
        Behavior::Pods(vec![other()]),
        Behavior::Status(7, "permission denied: 50% of 100"),
    ] {
        let k = FakeKubelet::start(behavior).await;
        let err = ask(&k).await.unwrap_err();
        assert!(matches!(err, QueryError::Failed(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("gRPC status"), "{msg}");
        assert!(
            msg.contains("pod not found") || msg.contains("permission denied: 50% of 100"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn get_refused_and_list_failing_names_both() {
    let k = FakeKubelet::start(Behavior::Status(12, "not here")).await;
    let err = ask(&k).await.unwrap_err().to_string();
    assert!(err.contains("Get:") && err.contains("List:"), "{err}");
}

#[tokio::test]
async fn status_messages_arrive_as_sent() {
    // grpc-message is percent-encoded on the wire.
    let k = FakeKubelet::start(Behavior::Status(3, "bad: 100% \u{e9}t\u{e9}")).await;
    let err = ask(&k).await.unwrap_err().to_string();
    assert!(
        err.ends_with("gRPC status 3: bad: 100% \u{e9}t\u{e9}"),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_kubelet_times_out() {
    let k = FakeKubelet::start(Behavior::Hang).await;
    let started = std::time::Instant::now();
    let err = pod_devices(&k.socket, "team", "web", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Failed(_)));
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn no_listener_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let err = pod_devices(&missing, "team", "web", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Unreachable(_)), "{err}");
    // A socket file left by a kubelet that is gone: connection refused.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = pod_devices(&stale, "team", "web", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Unreachable(_)), "{err}");
}

#[test]
fn request_encoding_matches_the_wire_format() {
    // field 1 (tag 0x0a) "web", field 2 (tag 0x12) "team".
    let request = GetPodResourcesRequest {
        pod_name: "web".into(),
        pod_namespace: "team".into(),
    };
    assert_eq!(request.encode_to_vec(), b"\x0a\x03web\x12\x04team".to_vec());
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let mut bytes = web().encode_to_vec();
    // a packed field 4 (LEN), a varint field 9, a fixed64 field 10, a fixed32 field 11.
    bytes.extend([0x22, 0x02, 0x01, 0x02]);
    bytes.extend([0x48, 0x96, 0x01]);
    bytes.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]);
    bytes.extend([0x5d, 1, 2, 3, 4]);
    let decoded = PodResources::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, web());
    assert!(
        PodResources::decode([0x0b].as_slice()).is_err(),
        "group wire type"
    );
    assert!(
        PodResources::decode([0x48, 0xff].as_slice()).is_err(),
        "truncated varint"
    );
}

#[test]
fn the_published_field_numbers_are_used() {
    // ContainerResources.devices = 2, ContainerDevices.resource_name = 1 / device_ids = 2,
    // PodResources.containers = 3: what a kubelet sends for one device decodes to it.
    let kubelet =
        b"\x0a\x03web\x12\x04team\x1a\x1b\x0a\x03app\x12\x14\x0a\x01r\x12\x0f0000:af:06.0abc";
    let pod = PodResources::decode(kubelet.as_slice()).unwrap();
    assert_eq!(pod.devices().plugins["r"], vec!["0000:af:06.0abc"]);
}
