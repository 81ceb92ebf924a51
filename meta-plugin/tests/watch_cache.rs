//! The daemon's watch caches, through the real binary and the API fixture (which records every
//! request): a pod ADD served from the caches reads neither the pod nor its NADs (thin mode
//! beside it for the count), a just-created pod or NAD is still found, and after each fault the
//! fixture can inject (a dropped watch, 410 Gone, a slow API, an API server restart) the caches
//! recover and no call uses a NAD older than its last update.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Daemon, Node};
use multinet_api_fixture::{ApiFixture, RecordedRequest, RequestFilter};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    api: ApiFixture,
    node: Node,
    /// The node's config, naming the daemon's socket.
    conf: Value,
    daemon_log: PathBuf,
}

/// Pods get three networks: `data` (up0), `storage` (up1, as stor0), `mgmt` (up0).
const NETWORKS: &str = "data,storage@stor0,mgmt";

fn cluster() -> (Cluster, Daemon) {
    let node = Node::new("1.0.0");
    let (api, mut conf) = node.start_api();
    common::insert_team_nads(&node, &api);
    set_nad_subnet(&api, &node, "mgmt", "10.40.0.0/24");
    let socket = node.path("run/multinet.sock");
    conf["daemonSocket"] = json!(socket);
    let daemon_log = node.path("daemon.log");
    let daemon = common::cached_daemon(&node, NODE, &daemon_log, &[], &[]);
    let c = Cluster {
        api,
        node,
        conf,
        daemon_log,
    };
    c.wait_for("the daemon to list pods and NADs", |c| c.lists() >= 2);
    assert!(c.api.wait_for_watches_blocking(2, PATIENCE));
    (c, daemon)
}

/// Creates or replaces NAD `team/<name>`: a macvlan (on up1 for storage, else up0) in `subnet`.
fn set_nad_subnet(api: &ApiFixture, node: &Node, name: &str, subnet: &str) {
    let master = if name == "storage" { "up1" } else { "up0" };
    let config = node.macvlan_nad(name, master, subnet).to_string();
    if api
        .get("NetworkAttachmentDefinition", "team", name)
        .is_some()
    {
        api.merge_patch(
            "NetworkAttachmentDefinition",
            "team",
            name,
            &json!({"spec": {"config": config}}),
        )
        .unwrap();
        return;
    }
    api.insert(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"config": config}
    }))
    .unwrap();
}

fn insert_pod(api: &ApiFixture, name: &str) {
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
                     "annotations": {"k8s.v1.cni.cncf.io/networks": NETWORKS,
                                     // Not read by a call: not kept by the cache either.
                                     "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(4096)}},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
}

/// Reads of one pod or NAD among `requests`: what a call asks (the caches' own lists and
/// watches span every namespace).
fn reads(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/namespaces/"))
        .filter(|r| {
            r.path.contains("/pods/") || r.path.contains("/network-attachment-definitions/")
        })
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

impl Cluster {
    fn wait_for(&self, what: &str, cond: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                fs::read_to_string(&self.daemon_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many lists the daemon's watches made so far (its "listed" lines).
    fn lists(&self) -> usize {
        fs::read_to_string(&self.daemon_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" listed "))
            .count()
    }

    fn thin_conf(&self) -> Value {
        let mut conf = self.conf.clone();
        conf.as_object_mut().unwrap().remove("daemonSocket");
        conf
    }

    /// ADD of pod `pod` (a new pod netns) through `conf`; returns the netns and the requests the
    /// call made.
    fn add(&self, pod: &str, conf: &Value) -> (TestNetns, Vec<RecordedRequest>) {
        let netns = TestNetns::new();
        self.api.clear_requests();
        let answer = self
            .node
            .cni_with("ADD", &format!("c-{pod}"), pod, netns.path_str(), conf);
        answer.ok();
        let requests = self.api.requests();
        (netns, requests)
    }

    fn del(&self, pod: &str, netns: &TestNetns) {
        self.node
            .cni_with(
                "DEL",
                &format!("c-{pod}"),
                pod,
                netns.path_str(),
                &self.conf,
            )
            .ok();
        Node::links(netns)
            .is_empty()
            .then_some(())
            .expect("links left");
    }

    /// The first address network `team/<network>` got in pod `pod`'s network-status.
    fn address(&self, pod: &str, network: &str) -> String {
        let pod = self.api.get("Pod", "team", pod).unwrap();
        let status = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap();
        let status: Vec<Value> = serde_json::from_str(status).unwrap();
        let entry = status
            .iter()
            .find(|s| s["name"] == format!("team/{network}"))
            .unwrap_or_else(|| panic!("no {network} in {status:?}"));
        entry["ips"][0].as_str().unwrap().to_string()
    }
}

#[test]
fn a_cached_add_reads_neither_the_pod_nor_its_nads() {
    require_root!();
    let (c, daemon) = cluster();
    insert_pod(&c.api, "thin");
    insert_pod(&c.api, "cached");
    // Thin mode: the pod, the cluster network (looked for as a NAD first, as Multus does) and
    // each of the pod's three NADs are read.
    let (thin_ns, thin) = c.add("thin", &c.thin_conf());
    let thin_reads = reads(&thin);
    assert_eq!(thin_reads.len(), 5, "{thin_reads:#?}");
    // The daemon: its caches hold the pod (it is on this node) and the NADs.
    let (cached_ns, cached) = c.add("cached", &c.conf);
    assert_eq!(reads(&cached), Vec::<String>::new(), "{cached:#?}");
    // The writes stay: the status patch and the events.
    let patches = cached
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/team/pods/cached/status")
        .count();
    assert_eq!(patches, 1, "{cached:#?}");
    assert!(
        cached
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/events"))
    );
    assert!(c.address("cached", "mgmt").starts_with("10.40.0."));
    eprintln!(
        "API requests per 3-network pod ADD: thin {} ({} reads), thick with caches {} (0 reads)",
        thin.len(),
        thin_reads.len(),
        cached.len()
    );
    c.del("thin", &thin_ns);
    c.del("cached", &cached_ns);

    // A pod created a moment before its ADD, and a NAD created a moment before: found (the
    // call waits briefly for the watch, or asks the API).
    set_nad_subnet(&c.api, &c.node, "late", "10.50.0.0/24");
    c.api
        .insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "fresh", "namespace": "team", "uid": "uid-fresh",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "late"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]}
        }))
        .unwrap();
    let (fresh_ns, _) = c.add("fresh", &c.conf);
    assert!(c.address("fresh", "late").starts_with("10.50.0."));
    c.del("fresh", &fresh_ns);

    // A pod that is not there at all: "not found", after a bounded wait and one read.
    let netns = TestNetns::new();
    c.api.clear_requests();
    let started = Instant::now();
    let (code, msg) = c
        .node
        .cni_with("ADD", "c-ghost", "ghost", netns.path_str(), &c.conf)
        .err();
    assert!(
        msg.contains("team/ghost") && msg.contains("not found"),
        "{code} {msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reads(&c.api.requests()).len(), 1, "{:#?}", c.api.requests());
    // A pod of this name with another UID than the runtime's: the API is asked, not the cache.
    c.api
        .insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "twin", "namespace": "team", "uid": "uid-other",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "data"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]}
        }))
        .unwrap();
    let (code, msg) = c
        .node
        .cni_with("ADD", "c-twin", "twin", netns.path_str(), &c.conf)
        .err();
    assert!(msg.contains("UID"), "{code} {msg}");
    c.node.assert_clean(&netns);
    daemon.stop();
}

#[test]
fn the_caches_recover_from_every_fault_and_never_serve_a_stale_nad() {
    require_root!();
    let (c, daemon) = cluster();
    let mut pods = 0;
    // Each round: a fault, the NAD changed while it lasts, then an ADD that must use the new
    // config (the cache is stale and the API is asked, or the relist brought the change).
    let mut round = |c: &Cluster, fault: &str, subnet: &str| {
        pods += 1;
        let pod = format!("p{pods}");
        insert_pod(&c.api, &pod);
        let before = c.lists();
        // The relist of NADs is slow: the ADD below comes while the cache waits for it.
        let nad_list =
            RequestFilter::path("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions")
                .method("GET")
                .watch(false);
        c.api.faults().add_latency(nad_list, Duration::from_secs(1));
        match fault {
            "drop" => {
                c.api.faults().drop_watches();
                set_nad_subnet(&c.api, &c.node, "data", subnet);
            }
            "410" => {
                c.api.faults().expire_watch_history();
                c.api.faults().drop_watches();
                set_nad_subnet(&c.api, &c.node, "data", subnet);
            }
            "slow" => {
                c.api
                    .faults()
                    .add_latency(RequestFilter::any(), Duration::from_millis(300));
                c.api.faults().drop_watches();
                set_nad_subnet(&c.api, &c.node, "data", subnet);
            }
            "restart" => {
                c.api.faults().stop_listening().unwrap();
                set_nad_subnet(&c.api, &c.node, "data", subnet);
                // A call while the API is away waits for it, within its budget.
                std::thread::sleep(Duration::from_millis(300));
                c.api.faults().restart().unwrap();
            }
            _ => unreachable!(),
        }
        let (netns, _) = c.add(&pod, &c.conf);
        let prefix = subnet.trim_end_matches("0/24");
        assert!(
            c.address(&pod, "data").starts_with(prefix),
            "{fault}: {} is not in {subnet}",
            c.address(&pod, "data")
        );
        c.del(&pod, &netns);
        c.api.faults().reset();
        // Recovered: both watches listed again and are open; an ADD reads nothing.
        c.wait_for(&format!("a relist after {fault}"), |c| {
            c.lists() >= before + 2
        });
        assert!(c.api.wait_for_watches_blocking(2, PATIENCE), "{fault}");
        pods += 1;
        let pod = format!("p{pods}");
        insert_pod(&c.api, &pod);
        let (netns, requests) = c.add(&pod, &c.conf);
        assert!(c.address(&pod, "data").starts_with(prefix), "{fault}");
        let read = reads(&requests);
        assert!(read.is_empty(), "{fault}: {read:#?}");
        c.del(&pod, &netns);
    };
    round(&c, "drop", "10.61.0.0/24");
    round(&c, "410", "10.62.0.0/24");
    round(&c, "slow", "10.63.0.0/24");
    round(&c, "restart", "10.64.0.0/24");
    daemon.stop();
}

/// A watch the API refuses at once (RBAC that allows list but not watch, say) does not turn
/// into a list per moment: the daemon backs off, calls read the API meanwhile, and the caches
/// come back once watches are allowed again.
#[test]
fn a_refused_watch_backs_off_instead_of_listing_without_pause() {
    require_root!();
    let (c, daemon) = cluster();
    let watches = RequestFilter::any().method("GET").watch(true);
    c.api.faults().fail_always(watches, 403u16);
    c.api.clear_requests();
    c.api.faults().drop_watches();
    std::thread::sleep(Duration::from_secs(3));
    let lists = c
        .api
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && !r.path.contains("/namespaces/") && !r.query.contains("watch")
        })
        .count();
    // Two kinds, each backing off 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s: a handful of lists, not hundreds.
    assert!(lists <= 14, "{lists} lists in 3 s");
    insert_pod(&c.api, "meanwhile");
    let (netns, requests) = c.add("meanwhile", &c.conf);
    assert!(
        !reads(&requests).is_empty(),
        "a stale cache sends the call to the API"
    );
    c.del("meanwhile", &netns);
    c.api.faults().clear_failures();
    assert!(c.api.wait_for_watches_blocking(2, PATIENCE));
    daemon.stop();
}
