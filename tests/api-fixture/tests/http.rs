//! The fixture over plain HTTP with a bare hyper client: the wire format itself.

// Test helpers outside #[test] functions panic on purpose when the fixture misbehaves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use multinet_api_fixture::{ApiFixture, Failure, RequestFilter};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const PODS: &str = "/api/v1/namespaces/ns1/pods";
const NADS: &str = "/apis/k8s.cni.cncf.io/v1/namespaces/ns1/network-attachment-definitions";

async fn send_raw(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
    token: Option<&str>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", addr.to_string());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    Ok(sender
        .send_request(request.body(Full::new(Bytes::from(body.to_string())))?)
        .await?)
}

/// Sends a request and returns the code and the body as JSON.
async fn call(
    fx: &ApiFixture,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let response = send_raw(fx.http_addr(), method, uri, content_type, body, fx.token())
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (code, value)
}

async fn get(fx: &ApiFixture, uri: &str) -> (u16, Value) {
    call(fx, "GET", uri, None, "").await
}

fn pod(name: &str, labels: Value, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns1", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img:1"}]},
    })
}

async fn create(fx: &ApiFixture, uri: &str, object: &Value) -> (u16, Value) {
    call(
        fx,
        "POST",
        uri,
        Some("application/json"),
        &object.to_string(),
    )
    .await
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Reads a watch body until `count` events arrived or `limit` passed.
async fn read_events(body: &mut Incoming, count: usize, limit: Duration) -> Vec<Value> {
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while events.len() < count {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            _ => break,
        };
        if let Some(data) = frame.data_ref() {
            buffer.extend_from_slice(data);
        }
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
    }
    events
}

fn summary(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let name = e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (e["type"].as_str().unwrap().to_string(), name)
        })
        .collect()
}

#[tokio::test]
async fn discovery_documents_describe_the_served_resources() {
    let fx = ApiFixture::start().await.unwrap();
    let (code, version) = get(&fx, "/version").await;
    assert_eq!(code, 200);
    assert_eq!(version["major"], "1");
    let (_, api) = get(&fx, "/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, core) = get(&fx, "/api/v1").await;
    let core_names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        core_names.contains(&"pods")
            && core_names.contains(&"pods/status")
            && core_names.contains(&"events")
    );
    let (_, groups) = get(&fx, "/apis").await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "k8s.cni.cncf.io")
    );
    let (_, nads) = get(&fx, "/apis/k8s.cni.cncf.io/v1").await;
    assert_eq!(
        nads["resources"][0]["name"],
        "network-attachment-definitions"
    );
    let (code, status) = get(&fx, "/apis/apps/v1").await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn create_get_conflict_and_delete_speak_status() {
    let fx = ApiFixture::start().await.unwrap();
    let (code, created) = create(&fx, PODS, &pod("web", json!({"app": "web"}), "node-a")).await;
    assert_eq!(code, 201);
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert!(
        created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(created["metadata"]["creationTimestamp"].is_string());

    let (code, status) = create(&fx, PODS, &pod("web", json!({}), "node-a")).await;
    assert_eq!(code, 409);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["code"], 409);
    assert_eq!(status["details"]["name"], "web");

    let (code, fetched) = get(&fx, &format!("{PODS}/web")).await;
    assert_eq!(code, 200);
    assert_eq!(fetched["metadata"]["uid"], uid);
    assert_eq!(fx.get("Pod", "ns1", "web").unwrap()["metadata"]["uid"], uid);

    let (code, deleted) = call(&fx, "DELETE", &format!("{PODS}/web"), None, "").await;
    assert_eq!(code, 200);
    assert_eq!(deleted["metadata"]["name"], "web");
    let (code, status) = get(&fx, &format!("{PODS}/web")).await;
    assert_eq!(code, 404);
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["message"], "pods \"web\" not found");
    assert!(fx.get("pods", "ns1", "web").is_none());
}

#[tokio::test]
async fn invalid_objects_get_422_and_bad_bodies_400() {
    let fx = ApiFixture::start().await.unwrap();
    let (code, status) = create(&fx, PODS, &pod("Not_Valid", json!({}), "n")).await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    let (code, status) = call(&fx, "POST", PODS, Some("application/json"), "{not json").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = call(&fx, "POST", PODS, Some("text/plain"), "{}").await;
    assert_eq!(code, 415);
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let fx = ApiFixture::start().await.unwrap();
    for (name, app, tier, node) in [
        ("a", "web", "front", "n1"),
        ("b", "web", "back", "n2"),
        ("c", "db", "back", "n1"),
    ] {
        create(
            &fx,
            PODS,
            &pod(name, json!({"app": app, "tier": tier}), node),
        )
        .await;
    }
    fx.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other", "namespace": "ns2"}}))
        .unwrap();
    let cases = [
        ("labelSelector=app%3Dweb", vec!["a", "b"]),
        ("labelSelector=app%3D%3Dweb%2Ctier%21%3Dback", vec!["a"]),
        ("labelSelector=tier+in+%28back%29", vec!["b", "c"]),
        ("labelSelector=app+notin+%28web%29", vec!["c"]),
        ("labelSelector=tier", vec!["a", "b", "c"]),
        ("labelSelector=%21tier", vec![]),
        ("fieldSelector=spec.nodeName%3Dn1", vec!["a", "c"]),
        ("fieldSelector=metadata.name%3Db", vec!["b"]),
        (
            "fieldSelector=metadata.namespace%3Dns1%2Cspec.nodeName%21%3Dn1",
            vec!["b"],
        ),
    ];
    for (query, expected) in cases {
        let (code, list) = get(&fx, &format!("{PODS}?{query}")).await;
        assert_eq!(code, 200, "{query}");
        assert_eq!(names(&list), expected, "{query}");
    }
    let (_, list) = get(&fx, PODS).await;
    assert_eq!(list["kind"], "PodList");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        fx.resource_version().to_string()
    );
    // Built-in list items carry no type meta, as kube-apiserver sends them.
    assert!(list["items"][0].get("kind").is_none());
    let (_, everywhere) = get(&fx, "/api/v1/pods").await;
    assert_eq!(names(&everywhere), vec!["a", "b", "c", "other"]);
    let (code, status) = get(&fx, &format!("{PODS}?fieldSelector=spec.containers%3Dx")).await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported")
    );
    let (code, _) = get(&fx, &format!("{PODS}?labelSelector=a+in+b")).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let fx = ApiFixture::start().await.unwrap();
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        create(&fx, PODS, &pod(name, json!({}), "n")).await;
    }
    let mut seen = Vec::new();
    let mut uri = format!("{PODS}?limit=2");
    let mut pages = 0;
    loop {
        let (_, page) = get(&fx, &uri).await;
        pages += 1;
        seen.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                assert!(page["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                uri = format!("{PODS}?limit=2&continue={token}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["p1", "p2", "p3", "p4", "p5"]);
}

#[tokio::test]
async fn updates_with_a_stale_resource_version_conflict() {
    let fx = ApiFixture::start().await.unwrap();
    let (_, created) = create(&fx, PODS, &pod("web", json!({}), "n")).await;
    let mut fresh = created.clone();
    fresh["metadata"]["labels"] = json!({"v": "1"});
    let (code, updated) = call(
        &fx,
        "PUT",
        &format!("{PODS}/web"),
        Some("application/json"),
        &fresh.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let mut stale = created.clone();
    stale["metadata"]["labels"] = json!({"v": "2"});
    let (code, status) = call(
        &fx,
        "PUT",
        &format!("{PODS}/web"),
        Some("application/json"),
        &stale.to_string(),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    assert_eq!(
        fx.get("Pod", "ns1", "web").unwrap()["metadata"]["labels"]["v"],
        "1"
    );
}

#[tokio::test]
async fn patches_in_every_format_on_pods_and_pods_status() {
    let fx = ApiFixture::start().await.unwrap();
    create(&fx, PODS, &pod("web", json!({"app": "web"}), "n")).await;
    let status_uri = format!("{PODS}/web/status");
    let merge = json!({
        "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}},
        "status": {"phase": "Running"},
    });
    let (code, patched) = call(
        &fx,
        "PATCH",
        &status_uri,
        Some("application/merge-patch+json"),
        &merge.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(patched["status"]["phase"], "Running");
    assert_eq!(
        patched["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"],
        "[]"
    );

    let json_patch = json!([
        {"op": "test", "path": "/metadata/labels/app", "value": "web"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
    ]);
    let (code, patched) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/web"),
        Some("application/json-patch+json"),
        &json_patch.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(patched["metadata"]["labels"]["tier"], "front");
    // The main resource cannot change status.
    let (_, patched) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/web"),
        Some("application/strategic-merge-patch+json"),
        r#"{"status": {"phase": "Failed"}, "metadata": {"labels": {"smp": "yes"}}}"#,
    )
    .await;
    assert_eq!(patched["status"]["phase"], "Running");
    assert_eq!(patched["metadata"]["labels"]["smp"], "yes");

    let failing = json!([{"op": "test", "path": "/metadata/labels/app", "value": "db"}]);
    let (code, _) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/web"),
        Some("application/json-patch+json"),
        &failing.to_string(),
    )
    .await;
    assert_eq!(code, 422);
    let (code, _) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/web"),
        Some("application/json"),
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    let (code, _) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/nope"),
        Some("application/merge-patch+json"),
        "{}",
    )
    .await;
    assert_eq!(code, 404);

    let requests = fx.requests();
    let status_patch = requests
        .iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .unwrap();
    assert_eq!(
        status_patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(status_patch.body_json().unwrap(), merge);
    assert_eq!(status_patch.status, Some(200));
}

#[tokio::test]
async fn events_and_nads_are_served() {
    let fx = ApiFixture::start().await.unwrap();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": "web."},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns1"},
        "reason": "AddedInterface", "message": "net1 attached", "type": "Normal",
    });
    let (code, created) = create(&fx, "/api/v1/namespaces/ns1/events", &event).await;
    assert_eq!(code, 201);
    assert!(
        created["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web.")
    );
    let (_, events) = get(
        &fx,
        "/api/v1/namespaces/ns1/events?fieldSelector=involvedObject.name%3Dweb",
    )
    .await;
    assert_eq!(events["items"][0]["reason"], "AddedInterface");

    let nad = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "net1"},
        "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"macvlan\"}"},
    });
    let (code, _) = create(&fx, NADS, &nad).await;
    assert_eq!(code, 201);
    let (_, list) = get(&fx, NADS).await;
    assert_eq!(list["kind"], "NetworkAttachmentDefinitionList");
    // Custom resource list items keep their type meta.
    assert_eq!(list["items"][0]["kind"], "NetworkAttachmentDefinition");
    let (code, _) = get(&fx, &format!("{NADS}/net1/status")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn watches_stream_changes_after_a_resource_version() {
    let fx = ApiFixture::start().await.unwrap();
    create(&fx, PODS, &pod("before", json!({"app": "web"}), "n")).await;
    let from = fx.resource_version();
    let uri = format!(
        "{PODS}?watch=true&resourceVersion={from}&labelSelector=app%3Dweb&timeoutSeconds=5"
    );
    let response = send_raw(fx.http_addr(), "GET", &uri, None, "", None)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    assert!(fx.wait_for_watches(1, Duration::from_secs(5)).await);

    create(&fx, PODS, &pod("web", json!({"app": "web"}), "n")).await;
    create(&fx, PODS, &pod("db", json!({"app": "db"}), "n")).await;
    fx.merge_patch(
        "Pod",
        "ns1",
        "web",
        &json!({"metadata": {"labels": {"v": "2"}}}),
    )
    .unwrap();
    // Leaving the selector looks like a deletion to this watcher.
    fx.merge_patch(
        "Pod",
        "ns1",
        "web",
        &json!({"metadata": {"labels": {"app": "gone"}}}),
    )
    .unwrap();
    fx.merge_patch(
        "Pod",
        "ns1",
        "db",
        &json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .unwrap();
    fx.delete("Pod", "ns1", "db").unwrap();

    let events = read_events(&mut body, 5, Duration::from_secs(5)).await;
    let expected = [
        ("ADDED", "web"),
        ("MODIFIED", "web"),
        ("DELETED", "web"),
        ("ADDED", "db"),
        ("DELETED", "db"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .collect();
    assert_eq!(summary(&events), expected);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}

#[tokio::test]
async fn watches_from_zero_start_with_the_current_objects_and_time_out() {
    let fx = ApiFixture::start().await.unwrap();
    create(&fx, PODS, &pod("a", json!({}), "n")).await;
    create(&fx, PODS, &pod("b", json!({}), "n")).await;
    let started = Instant::now();
    let uri = format!("{PODS}?watch=1&resourceVersion=0&timeoutSeconds=1");
    let response = send_raw(fx.http_addr(), "GET", &uri, None, "", None)
        .await
        .unwrap();
    let mut body = response.into_body();
    let events = read_events(&mut body, 10, Duration::from_secs(5)).await;
    assert_eq!(
        summary(&events),
        vec![("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert_eq!(fx.open_watches(), 0);
}

#[tokio::test]
async fn watches_send_bookmarks_and_initial_events_end() {
    let fx = ApiFixture::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    create(&fx, PODS, &pod("a", json!({}), "n")).await;
    let version = fx.resource_version();
    let uri = format!(
        "{PODS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
    );
    let response = send_raw(fx.http_addr(), "GET", &uri, None, "", None)
        .await
        .unwrap();
    let mut body = response.into_body();
    let events = read_events(&mut body, 3, Duration::from_secs(5)).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        events[1]["object"]["metadata"]["resourceVersion"],
        version.to_string()
    );
    assert_eq!(events[1]["object"]["kind"], "Pod");
    assert_eq!(events[2]["type"], "BOOKMARK");
    assert!(events[2]["object"]["metadata"].get("annotations").is_none());
}

#[tokio::test]
async fn watches_from_expired_versions_get_410() {
    let fx = ApiFixture::start().await.unwrap();
    create(&fx, PODS, &pod("a", json!({}), "n")).await;
    let old = fx.resource_version();
    create(&fx, PODS, &pod("b", json!({}), "n")).await;
    fx.faults().expire_watch_history();
    let uri = format!("{PODS}?watch=true&resourceVersion={old}");
    let response = send_raw(fx.http_addr(), "GET", &uri, None, "", None)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    let events = read_events(&mut body, 2, Duration::from_secs(5)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn dropped_watches_end_their_streams() {
    let fx = ApiFixture::start().await.unwrap();
    let response = send_raw(
        fx.http_addr(),
        "GET",
        &format!("{PODS}?watch=true"),
        None,
        "",
        None,
    )
    .await
    .unwrap();
    let mut body = response.into_body();
    assert!(fx.wait_for_watches(1, Duration::from_secs(5)).await);
    fx.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the watch stream did not end");
}

#[tokio::test]
async fn injected_failures_latency_and_the_request_log() {
    let fx = ApiFixture::start().await.unwrap();
    let faults = fx.faults();
    faults.fail_next(2, 500);
    let (code, status) = get(&fx, PODS).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (500, Some("InternalError"))
    );
    assert_eq!(get(&fx, PODS).await.0, 500);
    assert_eq!(get(&fx, PODS).await.0, 200);

    faults.fail_next_matching(
        RequestFilter::path("/api/v1/namespaces/*/pods/*").method("GET"),
        1,
        403,
    );
    assert_eq!(
        get(&fx, PODS).await.0,
        200,
        "the list path does not match the filter"
    );
    let (code, status) = get(&fx, &format!("{PODS}/x")).await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")));

    faults.fail_next(1, Failure::too_many_requests(7));
    let response = send_raw(fx.http_addr(), "GET", PODS, None, "", None)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["details"]["retryAfterSeconds"], 7);

    faults.fail_always("/apis*", Failure::code(503).message("maintenance"));
    assert_eq!(get(&fx, "/apis").await.1["message"], "maintenance");
    assert_eq!(get(&fx, "/apis").await.0, 503);
    faults.clear_failures();
    assert_eq!(get(&fx, "/apis").await.0, 200);

    faults.add_latency("/api/v1/*", Duration::from_millis(300));
    let started = Instant::now();
    get(&fx, PODS).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    get(&fx, "/version").await;
    assert!(started.elapsed() < Duration::from_millis(300));
    faults.reset();

    let log = fx.requests();
    assert_eq!(log.len(), 11);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, PODS);
    assert_eq!(log[0].status, Some(500));
    assert!(!log[0].tls);
    fx.clear_requests();
    assert!(fx.requests().is_empty());
}

#[tokio::test]
async fn a_required_token_is_enforced() {
    let fx = ApiFixture::builder()
        .require_token("s3cret")
        .start()
        .await
        .unwrap();
    let response = send_raw(fx.http_addr(), "GET", PODS, None, "", None)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = send_raw(fx.http_addr(), "GET", PODS, None, "", Some("wrong"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = send_raw(fx.http_addr(), "GET", PODS, None, "", Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        fx.requests()[2].header("Authorization"),
        Some("Bearer s3cret")
    );
}

#[tokio::test]
async fn stopped_servers_refuse_connections_until_restarted() {
    let fx = ApiFixture::start().await.unwrap();
    create(&fx, PODS, &pod("kept", json!({}), "n")).await;
    let (http, https) = (fx.http_addr(), fx.https_addr());
    fx.faults().stop_listening().unwrap();
    for addr in [http, https] {
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    fx.faults().restart().unwrap();
    assert_eq!((fx.http_addr(), fx.https_addr()), (http, https));
    let (code, kept) = get(&fx, &format!("{PODS}/kept")).await;
    assert_eq!(code, 200);
    assert_eq!(kept["metadata"]["name"], "kept");
    assert!(TcpStream::connect(https).await.is_ok());
}

#[test]
fn blocking_start_works_without_a_runtime() {
    let fx = ApiFixture::start_blocking().unwrap();
    fx.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (code, list) = runtime.block_on(get(&fx, "/api/v1/namespaces/default/pods"));
    assert_eq!(code, 200);
    assert_eq!(names(&list), vec!["a"]);
    fx.faults().stop_listening().unwrap();
    assert!(std::net::TcpStream::connect(fx.http_addr()).is_err());
    fx.faults().restart().unwrap();
    assert!(std::net::TcpStream::connect(fx.http_addr()).is_ok());
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn loads_the_example_manifests() {
    let fx = ApiFixture::start_blocking().unwrap();
    let nads = fx.load_yaml_dir(examples().join("nads")).unwrap();
    let pods = fx.load_yaml_dir(examples().join("pods")).unwrap();
    assert!(
        nads.iter()
            .all(|o| o["kind"] == "NetworkAttachmentDefinition")
    );
    assert!(pods.iter().all(|o| o["kind"] == "Pod"));
    let macvlan = fx
        .get("NetworkAttachmentDefinition", "fixture", "fixture-macvlan")
        .unwrap();
    assert!(
        macvlan["spec"]["config"]
            .as_str()
            .unwrap()
            .contains("\"macvlan\"")
    );
    assert_eq!(macvlan["metadata"]["labels"]["tier"], "data");
    assert!(
        fx.get("net-attach-def", "fixture", "fixture-ipvlan")
            .is_some()
    );
    let web = fx.get("pods", "fixture", "fixture-web").unwrap();
    assert_eq!(web["status"]["podIP"], "10.244.0.5");
    assert_eq!(web["spec"]["nodeName"], "node-a");
    assert_eq!(fx.list("Pod", Some("fixture")).len(), 2);
    let total = fx.list("Pod", None).len() + fx.list("NetworkAttachmentDefinition", None).len();
    assert_eq!(total, nads.len() + pods.len());
}

#[test]
fn loads_json_values_and_rejects_unknown_kinds() {
    let fx = ApiFixture::start_blocking().unwrap();
    let loaded = fx
        .load_json(json!({"kind": "List", "apiVersion": "v1", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}},
        ]}))
        .unwrap();
    assert_eq!(loaded.len(), 2);
    assert!(loaded[0]["metadata"].get("namespace").is_none());
    assert!(fx.get("nodes", "", "node-a").is_some());
    let err = fx
        .insert(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}));
    assert!(err.is_err());
    let err = fx.load_yaml_str("apiVersion: v1\nkind: Pod\nmetadata: {}\n");
    assert!(err.is_err());
}

#[tokio::test]
async fn dry_runs_change_nothing() {
    let fx = ApiFixture::start().await.unwrap();
    let (code, created) = call(
        &fx,
        "POST",
        &format!("{PODS}?dryRun=All"),
        Some("application/json"),
        &pod("ghost", json!({}), "n").to_string(),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["name"], "ghost");
    assert!(fx.get("Pod", "ns1", "ghost").is_none());
    assert_eq!(fx.resource_version(), 0);

    create(&fx, PODS, &pod("real", json!({}), "n")).await;
    let version = fx.resource_version();
    let (code, _) = call(&fx, "DELETE", &format!("{PODS}/real?dryRun=All"), None, "").await;
    assert_eq!(code, 200);
    let (code, patched) = call(
        &fx,
        "PATCH",
        &format!("{PODS}/real?dryRun=All"),
        Some("application/merge-patch+json"),
        r#"{"metadata": {"labels": {"x": "y"}}}"#,
    )
    .await;
    assert_eq!(
        (code, &patched["metadata"]["labels"]["x"]),
        (200, &json!("y"))
    );
    let stored = fx.get("Pod", "ns1", "real").unwrap();
    assert!(stored["metadata"]["labels"].get("x").is_none());
    assert_eq!(fx.resource_version(), version);
    let (code, _) = call(&fx, "DELETE", &format!("{PODS}/real?dryRun=Some"), None, "").await;
    assert_eq!(code, 400);
}
