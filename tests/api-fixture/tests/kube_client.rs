//! kube's own client, unchanged, against the fixture over HTTPS through a kubeconfig.

// Test helpers outside #[test] functions panic on purpose when the fixture misbehaves.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::api::events::v1::Event as EventsV1;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PartialObjectMeta, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, Resource, ResourceExt};
use multinet_api_fixture::{ApiFixture, Failure, RequestFilter};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// A kube `Config` read from the kubeconfig file the fixture wrote.
async fn config_from_kubeconfig(fx: &ApiFixture) -> (Config, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("kubeconfig");
    fx.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (config, dir)
}

async fn client(fx: &ApiFixture) -> Client {
    let (config, _dir) = config_from_kubeconfig(fx).await;
    Client::try_from(config).unwrap()
}

fn pod(name: &str, namespace: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "img:1"}]},
    }))
    .unwrap()
}

fn api_status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected a Status error, got {other:?}"),
    }
}

fn nad_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition")
}

#[tokio::test]
async fn pods_over_https_with_a_token() {
    let fx = ApiFixture::builder()
        .require_token("t0ken")
        .start()
        .await
        .unwrap();
    fx.load_yaml_file(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/pods/fixture-pods.yaml"),
    )
    .unwrap();
    let client = client(&fx).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fixture");

    let web = pods.get("fixture-web").await.unwrap();
    assert_eq!(
        web.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-a")
    );
    assert_eq!(
        web.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.244.0.5")
    );
    assert!(web.uid().is_some());

    let all = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        all.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        vec!["fixture-db", "fixture-web"]
    );
    let selected = pods
        .list(&ListParams::default().labels("app in (web),app!=db"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-b"))
        .await
        .unwrap();
    assert_eq!(on_node.items[0].name_any(), "fixture-db");

    let created = pods
        .create(&PostParams::default(), &pod("new", "fixture"))
        .await
        .unwrap();
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert!(
        created.resource_version().unwrap().parse::<u64>().unwrap()
            > web.resource_version().unwrap().parse().unwrap()
    );

    // Write-back the way a CNI plugin reports attachments: merge patch on pods/status.
    let status_patch = json!({
        "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[{\"name\":\"net1\"}]"}},
        "status": {"phase": "Running"},
    });
    let patched = pods
        .patch_status("new", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(
        patched.annotations()["k8s.v1.cni.cncf.io/network-status"],
        "[{\"name\":\"net1\"}]"
    );
    let stored = fx.get("Pod", "fixture", "new").unwrap();
    assert_eq!(stored["status"]["phase"], "Running");

    let labelled = pods
        .patch(
            "new",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.labels()["x"], "y");
    let applied = pods
        .patch(
            "applied",
            &PatchParams::apply("multinet-test"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "applied"},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.namespace().as_deref(), Some("fixture"));

    pods.delete("new", &DeleteParams::default()).await.unwrap();
    assert!(fx.get("Pod", "fixture", "new").is_none());

    let requests = fx.requests();
    assert!(requests.iter().all(|r| r.tls));
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer t0ken"))
    );
    let status_write = requests
        .iter()
        .find(|r| r.path.ends_with("/pods/new/status"))
        .unwrap();
    assert_eq!(status_write.method, "PATCH");
    assert_eq!(
        status_write.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(status_write.body_json().unwrap(), status_patch);
}

#[tokio::test]
async fn nads_through_discovery_and_dynamic_objects() {
    let fx = ApiFixture::start().await.unwrap();
    fx.load_yaml_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/nads"))
        .unwrap();
    let client = client(&fx).await;

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("k8s.cni.cncf.io"));
    let (resource, caps) = discovery.resolve_gvk(&nad_gvk()).unwrap();
    assert_eq!(resource.plural, "network-attachment-definitions");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(aggregated.resolve_gvk(&nad_gvk()).is_some());
    let (core_pods, _) = aggregated
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
        .unwrap();
    assert_eq!(core_pods.plural, "pods");

    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "fixture", &resource);
    let listed = nads.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = listed.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(names, vec!["fixture-ipvlan", "fixture-macvlan"]);
    let macvlan = nads.get("fixture-macvlan").await.unwrap();
    assert!(
        macvlan.data["spec"]["config"]
            .as_str()
            .unwrap()
            .contains("macvlan")
    );
    let by_label = nads
        .list(&ListParams::default().labels("tier=storage"))
        .await
        .unwrap();
    assert_eq!(by_label.items[0].name_any(), "fixture-ipvlan");

    let mut new_nad = DynamicObject::new("net-new", &resource).within("fixture");
    new_nad.data = json!({"spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\"}"}});
    let created = nads.create(&PostParams::default(), &new_nad).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        fx.get("net-attach-def", "fixture", "net-new").unwrap()["spec"]["config"],
        new_nad.data["spec"]["config"]
    );
    let err = nads
        .create(&PostParams::default(), &new_nad)
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (409, "AlreadyExists".to_string()));
    nads.delete("net-new", &DeleteParams::default())
        .await
        .unwrap();
    let err = nads.get("net-new").await.unwrap_err();
    assert_eq!(api_status(err), (404, "NotFound".to_string()));
}

#[tokio::test]
async fn stale_updates_get_409_conflict() {
    let fx = ApiFixture::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    let original = pods
        .create(&PostParams::default(), &pod("web", "ns1"))
        .await
        .unwrap();
    let mut first = original.clone();
    first.labels_mut().insert("v".into(), "1".into());
    pods.replace("web", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = original.clone();
    stale.labels_mut().insert("v".into(), "2".into());
    let err = pods
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert!(status.message.contains("the object has been modified"));
            assert_eq!(status.details.unwrap().name, "web");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(pods.get("web").await.unwrap().labels()["v"], "1");
}

#[tokio::test]
async fn status_errors_surface_with_code_and_reason() {
    let fx = ApiFixture::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    assert_eq!(
        api_status(pods.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert!(pods.get_opt("missing").await.unwrap().is_none());

    let err = pods
        .create(&PostParams::default(), &pod("Bad_Name", "ns1"))
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (422, "Invalid".into()));

    fx.faults().fail_next_matching(
        RequestFilter::path("*/pods/*").method("GET"),
        1,
        Failure::forbidden("system:serviceaccount:kube-system:multinet"),
    );
    let err = pods.get("anything").await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert!(status.is_forbidden());
            assert!(
                status
                    .message
                    .contains("system:serviceaccount:kube-system:multinet")
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    fx.faults().fail_next(1, 500);
    assert_eq!(
        api_status(pods.list(&ListParams::default()).await.unwrap_err()),
        (500, "InternalError".into())
    );
    assert_eq!(fx.faults().pending_failures(), 0);
    assert!(pods.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn too_many_requests_is_retried_after_the_advertised_delay() {
    let fx = ApiFixture::start().await.unwrap();
    fx.insert(serde_json::to_value(pod("web", "ns1")).unwrap())
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    fx.faults().fail_next(1, Failure::too_many_requests(1));
    let started = Instant::now();
    let fetched = pods.get("web").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(fetched.name_any(), "web");
    assert!(
        elapsed >= Duration::from_secs(1),
        "retried after {elapsed:?}"
    );
    let gets: Vec<Option<u16>> = fx
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods/web"))
        .map(|r| r.status)
        .collect();
    assert_eq!(gets, vec![Some(429), Some(200)]);

    // With kube's retries off, the 429 reaches the caller as a Status.
    let (mut config, _dir) = config_from_kubeconfig(&fx).await;
    config.default_retry = false;
    let pods: Api<Pod> = Api::namespaced(Client::try_from(config).unwrap(), "ns1");
    fx.faults().fail_next(1, Failure::too_many_requests(3));
    let err = pods.get("web").await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (429, "TooManyRequests")
            );
            assert_eq!(status.details.unwrap().retry_after_seconds, 3);
        }
        other => panic!("expected 429, got {other:?}"),
    }
}

#[tokio::test]
async fn latency_shows_in_request_timing() {
    let fx = ApiFixture::start().await.unwrap();
    fx.insert(serde_json::to_value(pod("web", "ns1")).unwrap())
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    pods.get("web").await.unwrap();
    let timed = |api: Api<Pod>| async move {
        let started = Instant::now();
        api.get("web").await.unwrap();
        started.elapsed()
    };
    fx.faults().set_latency(Duration::from_millis(400));
    assert!(timed(pods.clone()).await >= Duration::from_millis(400));
    fx.faults().clear_latency();
    fx.faults()
        .add_latency("/apis/k8s.cni.cncf.io/*", Duration::from_millis(400));
    assert!(timed(pods.clone()).await < Duration::from_millis(400));
}

/// The watcher's events, as short strings, in order.
fn spawn_watcher(
    api: Api<Pod>,
    config: watcher::Config,
    backoff: bool,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let stream = watcher(api, config);
        let mut stream = if backoff {
            stream.default_backoff().boxed()
        } else {
            stream.boxed()
        };
        while let Some(event) = stream.next().await {
            let text = match event {
                Ok(watcher::Event::Init) => "Init".to_string(),
                Ok(watcher::Event::InitApply(p)) => format!("InitApply({})", p.name_any()),
                Ok(watcher::Event::InitDone) => "InitDone".to_string(),
                Ok(watcher::Event::Apply(p)) => format!("Apply({})", p.name_any()),
                Ok(watcher::Event::Delete(p)) => format!("Delete({})", p.name_any()),
                Err(watcher::Error::WatchError(status)) => {
                    format!("Error({} {})", status.code, status.reason)
                }
                Err(e) => format!("Error({e})"),
            };
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

async fn expect_events(rx: &mut mpsc::UnboundedReceiver<String>, expected: &[&str]) {
    for want in expected {
        assert_eq!(next_event(rx).await, *want);
    }
}

fn watch_requests(fx: &ApiFixture) -> Vec<multinet_api_fixture::RecordedRequest> {
    fx.requests().into_iter().filter(|r| r.is_watch()).collect()
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watches_and_relists_after_expiry() {
    let fx = ApiFixture::builder()
        .bookmark_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    fx.insert(serde_json::to_value(pod("a", "ns1")).unwrap())
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    let mut events = spawn_watcher(pods, watcher::Config::default(), false);
    expect_events(&mut events, &["Init", "InitApply(a)", "InitDone"]).await;
    assert!(fx.wait_for_watches(1, WAIT).await);

    fx.insert(serde_json::to_value(pod("b", "ns1")).unwrap())
        .unwrap();
    expect_events(&mut events, &["Apply(b)"]).await;
    let b_version = fx.resource_version();

    // A dropped watch is resumed from the last version seen, without listing again;
    // what changed in between is replayed.
    fx.faults().drop_watches();
    fx.insert(serde_json::to_value(pod("c", "ns1")).unwrap())
        .unwrap();
    expect_events(&mut events, &["Apply(c)"]).await;
    let watches = watch_requests(&fx);
    assert_eq!(watches.len(), 2);
    assert_eq!(
        watches[1].query_param("resourceVersion"),
        Some(b_version.to_string())
    );
    assert_eq!(
        fx.requests().iter().filter(|r| !r.is_watch()).count(),
        1,
        "no re-list"
    );
    fx.delete("Pod", "ns1", "c").unwrap();
    expect_events(&mut events, &["Delete(c)"]).await;

    // After compaction the resumed watch gets 410 Expired and the watcher lists again.
    assert!(fx.wait_for_watches(1, WAIT).await);
    fx.faults().expire_watch_history();
    fx.faults().drop_watches();
    let error = next_event(&mut events).await;
    assert_eq!(error, "Error(410 Expired)");
    expect_events(
        &mut events,
        &["Init", "InitApply(a)", "InitApply(b)", "InitDone"],
    )
    .await;
    fx.insert(serde_json::to_value(pod("d", "ns1")).unwrap())
        .unwrap();
    expect_events(&mut events, &["Apply(d)"]).await;
    assert_eq!(
        fx.requests().iter().filter(|r| !r.is_watch()).count(),
        2,
        "one re-list"
    );
}

#[tokio::test]
async fn watcher_with_streaming_lists_and_bookmarks() {
    let fx = ApiFixture::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    fx.insert(serde_json::to_value(pod("a", "ns1")).unwrap())
        .unwrap();
    fx.insert(serde_json::to_value(pod("other", "ns2")).unwrap())
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    let config = watcher::Config::default()
        .streaming_lists()
        .labels("app=web");
    let mut events = spawn_watcher(pods, config, false);
    expect_events(&mut events, &["Init", "InitApply(a)", "InitDone"]).await;
    fx.insert(serde_json::to_value(pod("b", "ns1")).unwrap())
        .unwrap();
    expect_events(&mut events, &["Apply(b)"]).await;
    // A bookmark moves the watcher's version, so a dropped watch resumes from it.
    let version_after_b = fx.resource_version();
    tokio::time::sleep(Duration::from_millis(200)).await;
    fx.faults().drop_watches();
    fx.insert(serde_json::to_value(pod("c", "ns1")).unwrap())
        .unwrap();
    expect_events(&mut events, &["Apply(c)"]).await;
    let watches = watch_requests(&fx);
    assert_eq!(
        watches[0].query_param("sendInitialEvents").as_deref(),
        Some("true")
    );
    let resumed = watches.last().unwrap();
    assert_eq!(
        resumed.query_param("resourceVersion"),
        Some(version_after_b.to_string())
    );
    assert_eq!(
        resumed.query_param("labelSelector").as_deref(),
        Some("app=web")
    );
}

#[tokio::test]
async fn refused_while_stopped_and_recovered_after_restart() {
    let fx = ApiFixture::start().await.unwrap();
    fx.insert(serde_json::to_value(pod("a", "ns1")).unwrap())
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
    let mut events = spawn_watcher(pods.clone(), watcher::Config::default(), true);
    expect_events(&mut events, &["Init", "InitApply(a)", "InitDone"]).await;
    assert!(fx.wait_for_watches(1, WAIT).await);

    fx.faults().stop_listening().unwrap();
    let err = pods.get("a").await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
    let refused = format!("{err:?}");
    assert!(
        refused.contains("ConnectionRefused") || refused.contains("Connection refused"),
        "{refused}"
    );
    // The watcher reports the outage and keeps trying with backoff.
    let outage = next_event(&mut events).await;
    assert!(outage.starts_with("Error("), "{outage}");
    fx.insert(serde_json::to_value(pod("during-outage", "ns1")).unwrap())
        .unwrap();

    fx.faults().restart().unwrap();
    assert_eq!(pods.get("a").await.unwrap().name_any(), "a");
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.recv().await.unwrap();
            if event == "Apply(during-outage)" {
                break;
            }
            assert!(event.starts_with("Error("), "unexpected {event}");
        }
    })
    .await;
    assert!(
        recovered.is_ok(),
        "the watcher did not catch up after the restart"
    );
}

#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let fx = ApiFixture::start().await.unwrap();
    fx.insert(serde_json::to_value(pod("a", "ns1")).unwrap())
        .unwrap();
    let client = client(&fx).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ns1");
    let meta = pods.get_metadata("a").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("a"));
    assert_eq!(meta.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    let list = pods.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items[0].metadata.labels.as_ref().unwrap()["app"],
        "web"
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let metadata: Api<PartialObjectMeta<Pod>> = Api::namespaced(client, "ns1");
        let mut stream = watcher(metadata, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(object)) = stream.next().await {
            let kind = object.types.map(|t| t.kind).unwrap_or_default();
            if tx
                .send((object.metadata.name.unwrap_or_default(), kind))
                .is_err()
            {
                break;
            }
        }
    });
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        ("a".to_string(), "PartialObjectMetadata".to_string())
    );
    assert!(fx.wait_for_watches(1, WAIT).await);
    fx.insert(serde_json::to_value(pod("b", "ns1")).unwrap())
        .unwrap();
    let second = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second,
        ("b".to_string(), "PartialObjectMetadata".to_string())
    );
    let watch = fx.requests().into_iter().find(|r| r.is_watch()).unwrap();
    assert!(
        watch
            .header("accept")
            .unwrap()
            .contains("as=PartialObjectMetadata")
    );
}

#[tokio::test]
async fn events_are_recorded_in_both_groups() {
    let fx = ApiFixture::start().await.unwrap();
    let client = client(&fx).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ns1");
    let web = pods
        .create(&PostParams::default(), &pod("web", "ns1"))
        .await
        .unwrap();

    let recorder = Recorder::new(client.clone(), Reporter::from("multinet"));
    let event = RecorderEvent {
        type_: EventType::Normal,
        reason: "AddedInterface".into(),
        note: Some("net1 attached as net1".into()),
        action: "Attach".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &web.object_ref(&()))
        .await
        .unwrap();
    // The same event again becomes a series: a merge patch of the first one.
    recorder
        .publish(&event, &web.object_ref(&()))
        .await
        .unwrap();
    let recorded: Api<EventsV1> = Api::namespaced(client.clone(), "ns1");
    let list = recorded.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("AddedInterface"));
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));

    let core: Api<CoreEvent> = Api::namespaced(client, "ns1");
    let core_event: CoreEvent = serde_json::from_value(json!({
        "metadata": {"generateName": "web."},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns1"},
        "reason": "ErrorAddingInterface", "message": "NAD net2 not found", "type": "Warning",
    }))
    .unwrap();
    core.create(&PostParams::default(), &core_event)
        .await
        .unwrap();
    let warnings = core
        .list(&ListParams::default().fields("type=Warning,involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(warnings.items.len(), 1);
    let stored: Vec<Value> = fx.list("Event", Some("ns1"));
    assert_eq!(stored[0]["reason"], "ErrorAddingInterface");
}

#[test]
fn a_sync_test_can_drive_kube_on_its_own_runtime() {
    let fx = ApiFixture::start_blocking().unwrap();
    fx.insert(serde_json::to_value(pod("web", "ns1")).unwrap())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let name = runtime.block_on(async {
        let pods: Api<Pod> = Api::namespaced(client(&fx).await, "ns1");
        pods.get("web").await.unwrap().name_any()
    });
    assert_eq!(name, "web");
    // The plain HTTP listener through its own kubeconfig.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig-http");
    fx.write_http_kubeconfig(&path).unwrap();
    let node = runtime.block_on(async {
        let kubeconfig = Kubeconfig::read_from(&path).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "default");
        let pods: Api<Pod> = Api::namespaced(Client::try_from(config).unwrap(), "ns1");
        pods.get("web").await.unwrap().spec.unwrap().node_name
    });
    assert_eq!(node.as_deref(), Some("node-a"));
    assert!(
        fx.requests()
            .iter()
            .any(|r| !r.tls && r.path == "/api/v1/namespaces/ns1/pods/web")
    );
    assert_eq!(
        fx.requests()
            .iter()
            .filter(|r| r.tls && r.path == "/api/v1/namespaces/ns1/pods/web")
            .count(),
        1
    );
}
