//! The multinet binary against the Kubernetes API fixture (real HTTPS, kubeconfig, Status errors,
//! faults): pods and NADs from the API, network-status written with a merge patch on pods/status,
//! retries inside a time budget, and DEL that needs no API at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, VERSIONS};
use multinet_api_fixture::{ApiFixture, RequestFilter};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

struct Cluster {
    api: ApiFixture,
    node: Node,
    conf: Value,
}

fn cluster(version: &str) -> Cluster {
    let node = Node::new(version);
    let (api, conf) = node.start_api();
    common::insert_team_nads(&node, &api);
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "data,storage@stor0"}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
    Cluster { api, node, conf }
}

fn status_of(api: &ApiFixture) -> Vec<Value> {
    let pod = api.get("Pod", "team", "web").unwrap();
    let s = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
        .as_str()
        .unwrap_or("[]")
        .to_string();
    serde_json::from_str(&s).unwrap()
}

#[test]
fn pods_and_nads_from_the_api_in_every_version() {
    require_root!();
    for version in VERSIONS {
        let c = cluster(version);
        let pod = TestNetns::new();
        let ns = pod.path_str().to_string();
        let result = c.node.cni_with("ADD", "c1", "web", &ns, &c.conf);
        assert_eq!(result.ok()["cniVersion"], *version);
        let status = status_of(&c.api);
        let names: Vec<&str> = status.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            vec!["cluster", "team/data", "team/storage"],
            "{version}"
        );
        assert_eq!(status[2]["interface"], "stor0");
        // The status went out as one merge patch on pods/status, with no GET+PUT.
        let requests = c.api.requests();
        let patches: Vec<_> = requests
            .iter()
            .filter(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/team/pods/web/status")
            .collect();
        assert_eq!(patches.len(), 1, "{requests:?}");
        assert_eq!(
            patches[0].content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert!(!requests.iter().any(|r| r.method == "PUT"));
        // One TLS connection carried the whole ADD: its concurrent requests (the NADs; the
        // status patch and the events) were multiplexed over HTTP/2, not given a connection each.
        assert!(requests.len() >= 5, "{requests:?}");
        assert!(requests.iter().all(|r| r.tls && r.http2), "{requests:?}");
        let connections: std::collections::BTreeSet<u64> =
            requests.iter().map(|r| r.connection).collect();
        assert_eq!(connections.len(), 1, "{requests:?}");
        if *version != "0.3.1" {
            c.node.cni_with("CHECK", "c1", "web", &ns, &c.conf).ok();
        }
        c.node.cni_with("DEL", "c1", "web", &ns, &c.conf).ok();
        c.node.assert_clean(&pod);
    }
}

#[test]
fn api_down_during_del_still_releases_everything() {
    require_root!();
    let c = cluster("1.0.0");
    let pod = TestNetns::new();
    let ns = pod.path_str().to_string();
    c.node.cni_with("ADD", "c1", "web", &ns, &c.conf).ok();
    c.api.faults().stop_listening().unwrap();
    let started = Instant::now();
    c.node.cni_with("DEL", "c1", "web", &ns, &c.conf).ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "DEL must not wait for the API"
    );
    c.node.assert_clean(&pod);
    c.api.faults().restart().unwrap();
}

#[test]
fn slow_api_is_waited_for_and_transient_errors_are_retried() {
    require_root!();
    let c = cluster("1.0.0");
    // Slower than Multus's 250 ms per-request cut, well inside the budget.
    c.api.faults().set_latency(Duration::from_millis(400));
    c.api.faults().fail_next(2, 503);
    let pod = TestNetns::new();
    let ns = pod.path_str().to_string();
    c.node.cni_with("ADD", "c1", "web", &ns, &c.conf).ok();
    assert_eq!(status_of(&c.api).len(), 3);
    c.api.faults().reset();
    c.node.cni_with("DEL", "c1", "web", &ns, &c.conf).ok();
    c.node.assert_clean(&pod);
}

#[test]
fn api_that_never_answers_fails_add_with_try_again_and_leaves_nothing() {
    require_root!();
    let c = cluster("1.0.0");
    c.api
        .faults()
        .fail_always(multinet_api_fixture::RequestFilter::any(), 500);
    let pod = TestNetns::new();
    let ns = pod.path_str().to_string();
    let (code, msg) = c.node.cni_with("ADD", "c1", "web", &ns, &c.conf).err();
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("team/web"), "{msg}");
    c.node.assert_clean(&pod);
}

#[test]
fn replaced_pod_uid_mismatch_is_refused() {
    require_root!();
    let c = cluster("1.0.0");
    // The pod was deleted and created again under the same name: a new UID.
    let mut pod_obj = c.api.delete("Pod", "team", "web").unwrap();
    pod_obj["metadata"]["uid"] = json!("uid-new");
    pod_obj["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    c.api.insert(pod_obj).unwrap();
    let pod = TestNetns::new();
    let (code, msg) = c
        .node
        .cni_with("ADD", "c1", "web", pod.path_str(), &c.conf)
        .err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("UID"), "{msg}");
    c.node.assert_clean(&pod);
}

#[test]
fn unknown_nad_is_a_clear_error_and_nothing_is_created() {
    require_root!();
    let c = cluster("1.0.0");
    c.api
        .merge_patch(
            "Pod",
            "team",
            "web",
            &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "data,nope"}}}),
        )
        .expect("pod exists");
    let pod = TestNetns::new();
    let (code, msg) = c
        .node
        .cni_with("ADD", "c1", "web", pod.path_str(), &c.conf)
        .err();
    assert_eq!(code, 7);
    assert!(
        msg.contains("team/nope") && msg.contains("not found"),
        "{msg}"
    );
    c.node.assert_clean(&pod);
}

/// NAD names are Kubernetes object names, so they may contain dots; both annotation forms reach
/// such a NAD through the API.
#[test]
fn nad_names_with_dots_are_attached() {
    require_root!();
    let c = cluster("1.0.0");
    let conf = c.node.macvlan_nad("storage.v2", "up1", "10.30.0.0/24");
    c.api
        .insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "storage.v2", "namespace": "team"},
            "spec": {"config": conf.to_string()}
        }))
        .unwrap();
    for (pod_name, networks) in [
        ("db", "team/storage.v2@st2"),
        ("db2", r#"[{"name":"storage.v2","interface":"st2"}]"#),
    ] {
        c.api
            .insert(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": "team", "uid": format!("uid-{pod_name}"),
                             "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
                "spec": {"containers": [{"name": "app", "image": "app"}]}
            }))
            .unwrap();
        let pod = TestNetns::new();
        let ns = pod.path_str().to_string();
        c.node.cni_with("ADD", "c1", pod_name, &ns, &c.conf).ok();
        assert!(pod.has_link("st2"), "{networks}");
        let status = c.api.get("Pod", "team", pod_name).unwrap();
        let status: Vec<Value> = serde_json::from_str(
            status["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(status[1]["name"], "team/storage.v2", "{networks}");
        c.node.cni_with("DEL", "c1", pod_name, &ns, &c.conf).ok();
        c.node.assert_clean(&pod);
    }
}

/// Each network added is an `AddedInterface` event on the pod, worded as Multus words it, so
/// `kubectl describe pod` reads the same; an API that refuses events does not fail the ADD.
#[test]
fn added_interface_events_are_recorded_on_the_pod() {
    require_root!();
    let c = cluster("1.0.0");
    let pod = TestNetns::new();
    let ns = pod.path_str().to_string();
    c.node.cni_with("ADD", "c1", "web", &ns, &c.conf).ok();
    let mut events: Vec<(String, String, String)> = c
        .api
        .list("Event", Some("team"))
        .iter()
        .map(|e| {
            assert_eq!(e["involvedObject"]["kind"], "Pod");
            assert_eq!(e["involvedObject"]["uid"], "uid-web");
            assert_eq!(e["type"], "Normal");
            assert_eq!(e["source"]["component"], "multinet");
            (
                e["involvedObject"]["name"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    events.sort();
    let status = status_of(&c.api);
    let ip = |i: usize| {
        let cidr = pod.ip_json(&[
            "-4",
            "addr",
            "show",
            "dev",
            status[i]["interface"].as_str().unwrap(),
        ]);
        format!(
            "{}/{}",
            cidr[0]["addr_info"][0]["local"].as_str().unwrap(),
            cidr[0]["addr_info"][0]["prefixlen"]
        )
    };
    let mut want = vec![
        (
            "web".to_string(),
            "AddedInterface".to_string(),
            format!("Add eth0 [{}] from cluster", ip(0)),
        ),
        (
            "web".to_string(),
            "AddedInterface".to_string(),
            format!("Add net1 [{}] from team/data", ip(1)),
        ),
        (
            "web".to_string(),
            "AddedInterface".to_string(),
            format!("Add stor0 [{}] from team/storage", ip(2)),
        ),
    ];
    want.sort();
    assert_eq!(events, want);
    c.node.cni_with("DEL", "c1", "web", &ns, &c.conf).ok();

    c.api.faults().fail_always(
        RequestFilter::path("/api/v1/namespaces/*/events").method("POST"),
        500,
    );
    c.node.cni_with("ADD", "c2", "web", &ns, &c.conf).ok();
    assert_eq!(
        c.api.list("Event", Some("team")).len(),
        3,
        "the second ADD's events were refused"
    );
    let status_patches = c
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/team/pods/web/status")
        .count();
    assert_eq!(status_patches, 2, "the status is written all the same");
    c.node.cni_with("DEL", "c2", "web", &ns, &c.conf).ok();
    c.node.assert_clean(&pod);
}
