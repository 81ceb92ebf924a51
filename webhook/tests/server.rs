//! The real server on 127.0.0.1 over HTTPS, with the NADs in the API fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers outside #[test] fns fail loudly by design.

mod common;

use std::time::{Duration, Instant};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use multinet_api_fixture::ApiFixture;
use multinet_webhook::server::{
    HEALTHZ_PATH, ISOLATE_PATH, MUTATE_PATH, READYZ_PATH, VALIDATE_PATH,
};
use multinet_webhook::{RunningWebhook, start};
use serde_json::{Value, json};
use tempfile::TempDir;

use common::{TestCert, cert_files, config, https, nad_review, pod_review};

struct Setup {
    fixture: ApiFixture,
    server: RunningWebhook,
    cert: TestCert,
    dir: TempDir,
}

fn nad(namespace: &str, name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"config": r#"{"cniVersion":"1.0.0","type":"sriov","ipam":{"type":"host-local","subnet":"10.56.217.0/24"}}"#}
    })
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// [`setup`] with the server's config changed by `tweak` first.
async fn setup_with(tweak: impl FnOnce(&mut multinet_webhook::WebhookConfig)) -> Setup {
    let fixture = ApiFixture::start().await.unwrap();
    fixture
        .insert(nad(
            "team",
            "sriov-a",
            json!({"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_a"}),
        ))
        .unwrap();
    fixture
        .insert(nad(
            "default",
            "sriov-b",
            json!({
                "k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_b",
                "k8s.v1.cni.cncf.io/nodeSelector": "feature.node.kubernetes.io/sriov=true"
            }),
        ))
        .unwrap();
    fixture.insert(nad("team", "plain", json!({}))).unwrap();
    let dir = TempDir::new().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fixture.write_kubeconfig(&kubeconfig).unwrap();
    let files = cert_files(dir.path());
    let cert = TestCert::generate("multinet-webhook first");
    cert.write(&files);
    let mut config = config(files, &kubeconfig);
    tweak(&mut config);
    let server = start(config).await.unwrap();
    Setup {
        fixture,
        server,
        cert,
        dir,
    }
}

fn pod(networks: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team", "labels": {"app": "dpdk"},
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"containers": [
            {"name": "app", "image": "dpdk", "resources": {"requests": {"cpu": "1"}}},
            {"name": "sidecar", "image": "busybox", "resources": {}}
        ]}
    })
}

impl Setup {
    async fn post(&self, path: &str, body: Vec<u8>) -> Value {
        let reply = https(
            self.server.local_addr(),
            &[&self.cert.ca_pem],
            "POST",
            path,
            body,
        )
        .await
        .unwrap();
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let review = reply.json();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }

    fn nad_gets(&self) -> usize {
        self.fixture
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/network-attachment-definitions/"))
            .count()
    }
}

fn decoded_patch(response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = BASE64_STANDARD
        .decode(response["patch"].as_str().expect("a base64 patch"))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_admits_good_nads_and_names_the_bad_field() {
    let s = setup().await;
    let good = nad("team", "0net", json!({}));
    let response = s.post(VALIDATE_PATH, nad_review("uid-good", good)).await;
    assert_eq!(response["uid"], "uid-good");
    assert_eq!(response["allowed"], true);

    let mut bad = nad("team", "net1", json!({}));
    bad["spec"]["config"] = json!(r#"{"name":"x","plugins":{"type":"macvlan"}}"#);
    let response = s.post(VALIDATE_PATH, nad_review("uid-bad", bad)).await;
    assert_eq!(response["uid"], "uid-bad");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "spec.config has a \"plugins\" that is not an array"
    );

    let response = s
        .post(
            VALIDATE_PATH,
            nad_review("uid-name", nad("team", "-net", json!({}))),
        )
        .await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("metadata.name \"-net\"")
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_refuses_other_namespaces_and_bad_annotations() {
    let s = setup().await;
    let response = s
        .post(
            ISOLATE_PATH,
            pod_review("i1", "team", pod("sriov-a,default/sriov-b")),
        )
        .await;
    assert_eq!(response["allowed"], true, "{response}");

    let response = s
        .post(
            ISOLATE_PATH,
            pod_review("i2", "team", pod("sriov-a,other/secret@net2")),
        )
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("networks[1] selects network other/secret"),
        "{message}"
    );

    let response = s
        .post(
            ISOLATE_PATH,
            pod_review(
                "i3",
                "team",
                pod(r#"[{"name":"sriov-a","ips":["10.0.0.300"]}]"#),
            ),
        )
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("networks[0].ips"), "{message}");
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_injects_resources_from_nads_in_the_api() {
    let s = setup().await;
    let response = s
        .post(
            MUTATE_PATH,
            pod_review(
                "m1",
                "team",
                pod("sriov-a,sriov-a@net2,default/sriov-b,plain"),
            ),
        )
        .await;
    assert_eq!(response["uid"], "m1");
    assert_eq!(response["allowed"], true, "{response}");
    let mount = json!({"name": "podnetinfo", "mountPath": "/etc/podnetinfo", "readOnly": true});
    assert_eq!(
        decoded_patch(&response),
        json!([
            {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_a", "value": "2"},
            {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_b", "value": "1"},
            {"op": "add", "path": "/spec/containers/0/resources/limits",
             "value": {"intel.com/sriov_a": "2", "intel.com/sriov_b": "1"}},
            {"op": "add", "path": "/spec/nodeSelector", "value": {"feature.node.kubernetes.io/sriov": "true"}},
            {"op": "add", "path": "/spec/volumes", "value": [{"name": "podnetinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
            ]}}]},
            {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount]},
            {"op": "add", "path": "/spec/containers/1/volumeMounts", "value": [mount]},
        ])
    );
    // Three NADs, each read once.
    assert_eq!(s.nad_gets(), 3);

    // The cache serves the next pod; a missing NAD is looked up and refused by name.
    let response = s
        .post(MUTATE_PATH, pod_review("m2", "team", pod("sriov-a,ghost")))
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "networks[1] selects NetworkAttachmentDefinition team/ghost, which does not exist"
    );
    assert_eq!(s.nad_gets(), 4);

    // A NAD created now is found at once: absence is never cached.
    s.fixture
        .insert(nad(
            "team",
            "ghost",
            json!({"k8s.v1.cni.cncf.io/resourceName": "example.com/ghost"}),
        ))
        .unwrap();
    let response = s
        .post(MUTATE_PATH, pod_review("m3", "team", pod("ghost")))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        decoded_patch(&response)[0],
        json!({"op": "add", "path": "/spec/containers/0/resources/requests/example.com~1ghost", "value": "1"})
    );

    // kube-system is left alone without asking the API.
    let gets = s.nad_gets();
    let mut system_pod = pod("missing");
    system_pod["metadata"]["namespace"] = json!("kube-system");
    let response = s
        .post(MUTATE_PATH, pod_review("m4", "kube-system", system_pod))
        .await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    assert_eq!(s.nad_gets(), gets);
    s.server.shutdown().await;
}

/// A pod whose app container asks for 1Gi hugepages, naming the container for its resources.
fn hugepage_pod(uid: &str) -> Vec<u8> {
    let mut p = pod("sriov-a");
    p["metadata"]["annotations"]["multinet.io/resources-container"] = json!("sidecar");
    p["spec"]["containers"][0]["resources"] =
        json!({"requests": {"hugepages-1Gi": "2Gi"}, "limits": {"hugepages-1Gi": "2Gi"}});
    pod_review(uid, "team", p)
}

/// Whether the patch exposes hugepages: the flags say no, the control ConfigMap may say yes.
async fn exposes_hugepages(s: &Setup, uid: &str) -> bool {
    let response = s.post(MUTATE_PATH, hugepage_pod(uid)).await;
    assert_eq!(response["allowed"], true, "{response}");
    let patch = decoded_patch(&response);
    // The named container gets the resources, whatever the switches say.
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/spec/containers/1/resources/requests",
               "value": {"intel.com/sriov_a": "1"}}),
        "{patch}"
    );
    patch.to_string().contains("hugepages_1G_request_app")
}

/// Waits until the switches the webhook holds make `exposes_hugepages` answer `want`.
async fn wait_for_hugepages(s: &Setup, want: bool, step: &str) {
    for attempt in 0..50 {
        if exposes_hugepages(s, &format!("{step}-{attempt}")).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{step}: hugepages exposed should be {want}");
}

fn control_map(config: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "multinet-webhook-control", "namespace": "multinet"},
           "data": {"config.json": config}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_configmap_switches_features_at_run_time() {
    let s = setup().await;
    // No ConfigMap: the flags rule (hugepages off).
    assert!(!exposes_hugepages(&s, "none").await);
    s.fixture
        .insert(control_map(
            r#"{"features": {"enableHugePageDownApi": true}}"#,
        ))
        .unwrap();
    wait_for_hugepages(&s, true, "on").await;
    let response = s.post(MUTATE_PATH, hugepage_pod("on-detail")).await;
    let patch = decoded_patch(&response);
    let items = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/spec/volumes")
        .map(|op| op["value"][0]["downwardAPI"]["items"].clone())
        .unwrap();
    assert_eq!(
        items[2],
        json!({"path": "hugepages_1G_request_app",
               "resourceFieldRef": {"containerName": "app", "resource": "requests.hugepages-1Gi", "divisor": "1Mi"}})
    );
    assert!(
        patch.as_array().unwrap().contains(&json!(
            {"op": "add", "path": "/spec/containers/0/env", "value": [{"name": "CONTAINER_NAME", "value": "app"}]}
        )),
        "{patch}"
    );

    // A map that does not parse keeps the last good switches.
    s.fixture
        .insert(control_map(
            r#"{"features": {"enableHugePageDownApi": "yes"}}"#,
        ))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(exposes_hugepages(&s, "bad").await);

    // A user-defined injection: a labelled pod gets the networks annotation, and so its network's
    // resources.
    s.fixture
        .insert(control_map(
            r#"{"features": {"enableHugePageDownApi": false},
                "user-defined-injections": {"sriov": {"op": "add", "path": "/metadata/annotations",
                    "value": {"k8s.v1.cni.cncf.io/networks": "sriov-a"}}}}"#,
        ))
        .unwrap();
    wait_for_hugepages(&s, false, "off").await;
    let labelled = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "l", "namespace": "team", "labels": {"sriov": "true"}},
        "spec": {"containers": [{"name": "app", "image": "dpdk"}]}});
    let response = s
        .post(MUTATE_PATH, pod_review("inj", "team", labelled))
        .await;
    let patch = decoded_patch(&response);
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/metadata/annotations",
               "value": {"k8s.v1.cni.cncf.io/networks": "sriov-a"}})
    );
    assert_eq!(
        patch[1]["value"]["requests"]["intel.com/sriov_a"], "1",
        "{patch}"
    );

    // The ConfigMap deleted: back to the flags.
    s.fixture
        .delete("ConfigMap", "multinet", "multinet-webhook-control")
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(!exposes_hugepages(&s, "deleted").await);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_refuses_when_the_api_is_down() {
    let s = setup().await;
    s.fixture.faults().stop_listening().unwrap();
    let response = s
        .post(MUTATE_PATH, pod_review("down", "team", pod("sriov-a")))
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("networks[0]: cannot read NetworkAttachmentDefinition team/sriov-a:"),
        "{message}"
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_routes_methods_and_garbage() {
    let s = setup().await;
    let addr = s.server.local_addr();
    let ca = s.cert.ca_pem.as_str();
    for path in [HEALTHZ_PATH, READYZ_PATH] {
        let reply = https(addr, &[ca], "GET", path, Vec::new()).await.unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok\n"[..]));
    }
    let reply = https(addr, &[ca], "GET", VALIDATE_PATH, Vec::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 405);
    let reply = https(addr, &[ca], "POST", "/nothing", Vec::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    // The API server may add a timeout query.
    let reply = https(
        addr,
        &[ca],
        "POST",
        "/validate?timeout=10s",
        b"{not json".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["reason"], "InvalidRequest");
    let reply = https(addr, &[ca], "POST", VALIDATE_PATH, vec![b' '; 9 << 20])
        .await
        .unwrap();
    assert_eq!(reply.status, 413);
    // A client that does not trust the CA gets no answer.
    let other = TestCert::generate("stranger");
    assert!(
        https(addr, &[&other.ca_pem], "GET", HEALTHZ_PATH, Vec::new())
            .await
            .is_err()
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_served_on_the_next_handshake() {
    let s = setup().await;
    let addr = s.server.local_addr();
    let files = cert_files(s.dir.path());
    let second = TestCert::generate("multinet-webhook second");
    let both = [s.cert.ca_pem.as_str(), second.ca_pem.as_str()];

    let first = https(addr, &both, "GET", HEALTHZ_PATH, Vec::new())
        .await
        .unwrap();
    assert_eq!(first.leaf_der, s.cert.leaf_der);

    // Written the way a careless rotation would: the new chain first, the new key a moment later.
    std::fs::write(&files.cert, &second.chain_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let between = https(addr, &both, "GET", HEALTHZ_PATH, Vec::new())
        .await
        .unwrap();
    assert_eq!(
        between.leaf_der, s.cert.leaf_der,
        "a chain without its key is not served"
    );
    std::fs::write(&files.key, &second.key_pem).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = https(addr, &both, "GET", HEALTHZ_PATH, Vec::new())
            .await
            .unwrap();
        if reply.leaf_der == second.leaf_der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only the new CA is needed now.
    let reply = https(addr, &[&second.ca_pem], "GET", HEALTHZ_PATH, Vec::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    // Garbage in the files keeps the last good certificate.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = https(addr, &both, "GET", HEALTHZ_PATH, Vec::new())
        .await
        .unwrap();
    assert_eq!(reply.leaf_der, second.leaf_der);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_missing_or_mismatched_tls_material() {
    let dir = TempDir::new().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let fixture = ApiFixture::start().await.unwrap();
    fixture.write_kubeconfig(&kubeconfig).unwrap();
    let files = cert_files(dir.path());
    let err = start(config(files.clone(), &kubeconfig))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("tls.crt"), "{err}");

    let one = TestCert::generate("one");
    let two = TestCert::generate("two");
    std::fs::write(&files.cert, &one.chain_pem).unwrap();
    std::fs::write(&files.key, &two.key_pem).unwrap();
    let err = start(config(files, &kubeconfig)).await.err().unwrap();
    assert!(
        err.to_string().contains("does not fit the certificate"),
        "{err}"
    );
}

/// One plain HTTP/1.1 exchange with `addr`; the whole answer.
async fn plain_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let answer = plain_http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample `series` exactly as exposed, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_reviews_and_api_lookups_and_are_off_unless_asked() {
    // Off unless asked: no metrics address, and the HTTPS port does not serve them.
    let s = setup().await;
    assert_eq!(s.server.metrics_addr(), None);
    let reply = https(
        s.server.local_addr(),
        &[&s.cert.ca_pem],
        "GET",
        "/metrics",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
    s.server.shutdown().await;

    let s = setup_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = s.server.metrics_addr().expect("metrics are served");
    let before = scrape(addr).await;
    assert_eq!(
        sample(
            &before,
            "multinet_webhook_requests_total{path=\"/validate\",result=\"allowed\"}"
        ),
        0.0
    );
    s.post(
        VALIDATE_PATH,
        nad_review("g", nad("team", "good", json!({}))),
    )
    .await;
    s.post(
        VALIDATE_PATH,
        nad_review("b", nad("team", "-bad", json!({}))),
    )
    .await;
    s.post(MUTATE_PATH, pod_review("m", "team", pod("sriov-a,plain")))
        .await;
    s.post(MUTATE_PATH, pod_review("m2", "team", pod("ghost")))
        .await;
    let text = scrape(addr).await;
    for (series, want) in [
        (
            "multinet_webhook_requests_total{path=\"/validate\",result=\"allowed\"}",
            1.0,
        ),
        (
            "multinet_webhook_requests_total{path=\"/validate\",result=\"denied\"}",
            1.0,
        ),
        (
            "multinet_webhook_requests_total{path=\"/mutate\",result=\"patched\"}",
            1.0,
        ),
        (
            "multinet_webhook_requests_total{path=\"/mutate\",result=\"denied\"}",
            1.0,
        ),
        (
            "multinet_webhook_request_duration_seconds_count{path=\"/validate\"}",
            2.0,
        ),
        (
            "multinet_webhook_request_duration_seconds_count{path=\"/mutate\"}",
            2.0,
        ),
        ("multinet_webhook_requests_in_flight", 0.0),
        // sriov-a, plain and ghost: each looked up once (found or not, the API answered).
        ("multinet_webhook_api_requests_total{result=\"ok\"}", 3.0),
        ("multinet_webhook_api_request_duration_seconds_count", 3.0),
    ] {
        assert_eq!(sample(&text, series), want, "{series} in\n{text}");
    }
    assert_eq!(s.nad_gets(), 3);

    // The metrics port serves metrics only, never a review.
    let review = plain_http(
        addr,
        "POST /validate HTTP/1.1\r\nHost: w\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    assert!(review.starts_with("HTTP/1.1 404"), "{review}");
    let post = plain_http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: w\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    // The API down: lookups are counted as errors.
    s.fixture.faults().stop_listening().unwrap();
    s.post(MUTATE_PATH, pod_review("down", "team", pod("other")))
        .await;
    let text = scrape(addr).await;
    let failed = sample(
        &text,
        "multinet_webhook_api_requests_total{result=\"error\"}",
    ) + sample(
        &text,
        "multinet_webhook_api_requests_total{result=\"timeout\"}",
    );
    assert_eq!(failed, 1.0, "{text}");
    s.server.shutdown().await;
}
