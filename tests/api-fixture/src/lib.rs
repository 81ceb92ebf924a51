//! A Kubernetes API fixture server on loopback for multinet's tests.
//!
//! kube-apiserver cannot run here, so code that talks to Kubernetes is tested against
//! this server: real HTTP and HTTPS on 127.0.0.1, the same REST paths, JSON bodies,
//! `Status` errors, resourceVersions, patches and watches as kube-apiserver for pods
//! (and `pods/status`), events, nodes and NetworkAttachmentDefinitions. A test can make
//! it slow, fail chosen requests, drop watches, or stop listening, and can read back
//! every request it received.
//!
//! ```no_run
//! # fn main() -> Result<(), multinet_api_fixture::FixtureError> {
//! use multinet_api_fixture::{ApiFixture, Failure};
//! let fixture = ApiFixture::start_blocking()?;
//! fixture.load_yaml_dir("examples/nads")?;
//! fixture.write_kubeconfig("/tmp/kubeconfig")?;
//! fixture.faults().fail_next(1, Failure::too_many_requests(1));
//! // ... run the code under test with KUBECONFIG=/tmp/kubeconfig ...
//! assert!(fixture.requests().iter().any(|r| r.path.ends_with("/network-attachment-definitions")));
//! # Ok(())
//! # }
//! ```
//!
//! The server runs on a thread with its own tokio runtime, so synchronous tests and
//! tests on any async runtime use it alike; every method here may be called from either.
//!
//! # What it serves
//! - `authorization.k8s.io/v1 selfsubjectaccessreviews` (create): allowed unless
//!   [`ApiFixture::deny_access`] said otherwise.
//! - Resources: core v1 `pods` (+ `pods/status`), `events`, `nodes` (+ `nodes/status`), `configmaps`,
//!   `events.k8s.io/v1 events`, `k8s.cni.cncf.io/v1 network-attachment-definitions`,
//!   `resource.k8s.io/v1 resourceclaims` (+ `/status`) and `resourceslices`;
//!   more through [`ApiFixtureBuilder::resource`].
//! - Verbs: get, list (labelSelector, fieldSelector with kube-apiserver's per-resource
//!   field labels, limit/continue), watch (resourceVersion, allowWatchBookmarks,
//!   sendInitialEvents, timeoutSeconds; 410 Expired after [`Faults::expire_watch_history`]),
//!   create (generateName, 409 AlreadyExists, 422 on bad names), update (409 Conflict on a
//!   stale resourceVersion), merge / JSON / strategic / apply patch, delete (preconditions,
//!   finalizers), deletecollection, `dryRun=All`, metadata-only (`PartialObjectMetadata`).
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`, also
//!   aggregated discovery (apidiscovery.k8s.io/v2).
//! - Pod rules: writes to `pods` keep `status`; writes to `pods/status` keep `spec` and
//!   owner references but may change labels and annotations; pod spec updates other than
//!   images, tolerations and deadlines get 422; API-created pods start `Pending`.
//! - Transport: HTTP/1.1, and HTTP/2 over TLS for clients that ask for it (ALPN), as
//!   kube-apiserver; every recorded request says which and over which connection.
//!
//! # Where it differs from kube-apiserver
//! - Strategic merge patch and server-side apply are applied as JSON merge patches
//!   (lists replace instead of merging by key; no managedFields or field ownership).
//! - Deletion is immediate unless finalizers remain: pods have no grace period, as
//!   there is no kubelet to confirm termination.
//! - Lists always read the latest state (resourceVersion / resourceVersionMatch on a
//!   list are ignored), and a watch from a future resourceVersion starts at once.
//! - No namespaces resource: objects may be created in any namespace.
//! - No admission, RBAC or validation beyond what is listed above; JSON only (no
//!   protobuf, no YAML responses).

mod access;
mod discovery;
mod error;
mod faults;
mod handler;
mod ids;
mod kubeconfig;
mod load;
mod patch;
mod query;
mod resource;
mod selector;
mod server;
mod status;
mod store;
mod tls;
mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use crate::error::FixtureError;
pub use crate::faults::{Failure, RequestFilter};
pub use crate::handler::RecordedRequest;
pub use crate::resource::{ResourceDef, StatusSubresource};
pub use crate::status::{ApiError, reason_for_code};

use crate::faults::FaultState;
use crate::handler::{Shared, lock};
use crate::server::{Server, ServerControl};
use crate::store::{ResourceId, Store};

/// Options for a fixture; [`ApiFixture::builder`] makes one.
#[derive(Clone, Debug)]
pub struct ApiFixtureBuilder {
    resources: Vec<ResourceDef>,
    token: Option<String>,
    bookmark_interval: Duration,
    history_limit: usize,
}

impl Default for ApiFixtureBuilder {
    fn default() -> Self {
        ApiFixtureBuilder {
            resources: ResourceDef::defaults(),
            token: None,
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
        }
    }
}

impl ApiFixtureBuilder {
    /// Requests without `Authorization: Bearer <token>` get 401; kubeconfigs written
    /// by the fixture carry the token.
    pub fn require_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How often watches that allow bookmarks get one (default 1 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many changes are kept for watches resuming from a resourceVersion
    /// (default 10 000); older resumptions get 410 Expired.
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.history_limit = changes.max(1);
        self
    }

    /// Serves one more resource type besides pods, events, nodes and NADs.
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Starts the server and waits until it listens.
    pub fn start_blocking(self) -> Result<ApiFixture, FixtureError> {
        let tls = tls::generate()?;
        let (drop_watches, _) = tokio::sync::watch::channel(0u64);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(self.resources, self.history_limit)),
            faults: Mutex::new(FaultState::default()),
            requests: Mutex::new(Vec::new()),
            drop_watches,
            open_watches: Arc::new(AtomicUsize::new(0)),
            token: self.token.clone(),
            bookmark_interval: self.bookmark_interval,
            connections: Default::default(),
            denied: Mutex::new(access::Denied::default()),
        });
        let server = server::spawn(shared.clone(), tls.server_config)?;
        Ok(ApiFixture {
            shared,
            server,
            ca_pem: tls.ca_pem,
            token: self.token,
        })
    }

    /// The same as [`start_blocking`](Self::start_blocking), for async callers; the wait
    /// is a few milliseconds of binding sockets.
    pub async fn start(self) -> Result<ApiFixture, FixtureError> {
        self.start_blocking()
    }
}

/// A running fixture server. Dropping it stops the server.
pub struct ApiFixture {
    shared: Arc<Shared>,
    server: Server,
    ca_pem: String,
    token: Option<String>,
}

impl ApiFixture {
    pub fn builder() -> ApiFixtureBuilder {
        ApiFixtureBuilder::default()
    }

    /// Starts a fixture with the default resources and no authentication.
    pub async fn start() -> Result<ApiFixture, FixtureError> {
        Self::builder().start().await
    }

    /// [`start`](Self::start) for synchronous callers.
    pub fn start_blocking() -> Result<ApiFixture, FixtureError> {
        Self::builder().start_blocking()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.http_addr)
    }

    /// `https://127.0.0.1:PORT`, served with a certificate signed by [`ca_pem`](Self::ca_pem).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.server.https_addr)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.server.https_addr
    }

    /// The PEM of the CA clients should trust for the HTTPS listener.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the server requires, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A kubeconfig for the HTTPS listener with the CA data (and token), context
    /// namespace `default`.
    pub fn kubeconfig_yaml(&self) -> Result<String, FixtureError> {
        let doc = kubeconfig::document(
            "multinet-fixture",
            &self.https_url(),
            Some(&self.ca_pem),
            self.token(),
            "default",
        );
        Ok(serde_yaml::to_string(&doc)?)
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), FixtureError> {
        write_file(path.as_ref(), &self.kubeconfig_yaml()?)
    }

    /// Writes a kubeconfig for the plain HTTP listener.
    pub fn write_http_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), FixtureError> {
        let doc = kubeconfig::document(
            "multinet-fixture",
            &self.url(),
            None,
            self.token(),
            "default",
        );
        write_file(path.as_ref(), &serde_yaml::to_string(&doc)?)
    }

    /// Creates or replaces an object as given (status included), filling in the
    /// namespace (`default`), uid, creationTimestamp and a new resourceVersion; watchers
    /// see ADDED or MODIFIED. Returns the stored object.
    pub fn insert(&self, object: Value) -> Result<Value, FixtureError> {
        let mut store = lock(&self.shared.store);
        let id = store.resolve_object(&object).ok_or_else(|| {
            FixtureError::Object(format!(
                "no served resource has apiVersion {} and kind {}",
                object["apiVersion"], object["kind"]
            ))
        })?;
        store.upsert(id, object).map_err(FixtureError::Object)
    }

    /// Inserts an object, an array of objects, or a List.
    pub fn load_json(&self, value: Value) -> Result<Vec<Value>, FixtureError> {
        let mut objects = Vec::new();
        load::flatten(value, &mut objects);
        objects.into_iter().map(|o| self.insert(o)).collect()
    }

    /// Inserts every object of a YAML text (multi-document, `kind: List` allowed).
    pub fn load_yaml_str(&self, text: &str) -> Result<Vec<Value>, FixtureError> {
        let objects = load::objects_from_yaml(text, Path::new("<string>"))?;
        objects.into_iter().map(|o| self.insert(o)).collect()
    }

    /// Inserts every object of a YAML or JSON file.
    pub fn load_yaml_file(&self, path: impl AsRef<Path>) -> Result<Vec<Value>, FixtureError> {
        let objects = load::objects_from_file(path.as_ref())?;
        objects.into_iter().map(|o| self.insert(o)).collect()
    }

    /// Inserts every object of every `.yaml`, `.yml` and `.json` file under `dir`,
    /// in path order.
    pub fn load_yaml_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<Value>, FixtureError> {
        let mut inserted = Vec::new();
        for file in load::manifest_files(dir.as_ref())? {
            inserted.extend(self.load_yaml_file(&file)?);
        }
        Ok(inserted)
    }

    fn resource(&self, store: &Store, kind: &str) -> ResourceId {
        match store.resolve_name(kind) {
            Some(id) => id,
            // A misspelt kind in a test: fail loudly rather than read as "absent".
            None => panic!("the API fixture serves no resource named {kind:?}"),
        }
    }

    /// An object by kind (`Pod`, `pods`, `NetworkAttachmentDefinition`,
    /// `net-attach-def`, `events.events.k8s.io`, ...), namespace (ignored for
    /// cluster-scoped kinds) and name.
    ///
    /// # Panics
    /// When `kind` names no served resource.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = lock(&self.shared.store);
        let id = self.resource(&store, kind);
        store.get(id, Some(namespace), name)
    }

    /// Every object of a kind, in one namespace or all (`None`), ordered by namespace
    /// and name.
    ///
    /// # Panics
    /// When `kind` names no served resource.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = lock(&self.shared.store);
        let id = self.resource(&store, kind);
        let filter = store::ObjectFilter {
            namespace: namespace.map(str::to_string),
            ..Default::default()
        };
        store.list(id, &filter).0
    }

    /// Merge-patches an object as another client would (no subresource rules); returns
    /// it, or None when it does not exist.
    ///
    /// # Panics
    /// When `kind` names no served resource.
    pub fn merge_patch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Option<Value> {
        let mut store = lock(&self.shared.store);
        let id = self.resource(&store, kind);
        store.merge_unchecked(id, Some(namespace), name, patch)
    }

    /// Deletes an object at once, finalizers or not; returns its last state.
    ///
    /// # Panics
    /// When `kind` names no served resource.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut store = lock(&self.shared.store);
        let id = self.resource(&store, kind);
        store.remove(id, Some(namespace), name)
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).resource_version()
    }

    /// The handle for injecting faults.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
            control: self.server.control.clone(),
        }
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// `SelfSubjectAccessReview`s for `verb` on `resource` (`pods/status` for a
    /// subresource) answer "not allowed" from now on; every other review is allowed.
    pub fn deny_access(&self, verb: &str, resource: &str) {
        lock(&self.shared.denied).deny(verb, resource);
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// How many watch responses are streaming now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` watches are open; false on timeout. Lets a test
    /// change objects only once the watcher under test is listening. Needs a tokio
    /// runtime; see [`wait_for_watches_blocking`](Self::wait_for_watches_blocking).
    pub async fn wait_for_watches(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// [`wait_for_watches`](Self::wait_for_watches) for synchronous tests. Do not call
    /// it on the runtime thread that drives the watcher under test.
    pub fn wait_for_watches_blocking(&self, count: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.open_watches() < count {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), FixtureError> {
    std::fs::write(path, contents)
        .map_err(|e| FixtureError::io(format!("writing {}", path.display()), e))
}

/// Injects faults into a running fixture. Clones act on the same fixture.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
    control: ServerControl,
}

impl Faults {
    /// Delays every request by `latency`, replacing all latency rules.
    pub fn set_latency(&self, latency: Duration) {
        let mut faults = lock(&self.shared.faults);
        faults.clear_latency();
        faults.add_latency(RequestFilter::any(), latency);
    }

    /// Delays matching requests by `latency`, on top of other matching rules.
    pub fn add_latency(&self, filter: impl Into<RequestFilter>, latency: Duration) {
        lock(&self.shared.faults).add_latency(filter.into(), latency);
    }

    pub fn clear_latency(&self) {
        lock(&self.shared.faults).clear_latency();
    }

    /// The next `count` requests, whatever they are, fail with `failure` (a code such
    /// as `500`, or a [`Failure`]).
    pub fn fail_next(&self, count: usize, failure: impl Into<Failure>) {
        self.fail_next_matching(RequestFilter::any(), count, failure);
    }

    /// The next `count` matching requests fail with `failure`.
    pub fn fail_next_matching(
        &self,
        filter: impl Into<RequestFilter>,
        count: usize,
        failure: impl Into<Failure>,
    ) {
        lock(&self.shared.faults).add_failure(filter.into(), Some(count), failure.into());
    }

    /// Every matching request fails until [`clear_failures`](Self::clear_failures).
    pub fn fail_always(&self, filter: impl Into<RequestFilter>, failure: impl Into<Failure>) {
        lock(&self.shared.faults).add_failure(filter.into(), None, failure.into());
    }

    pub fn clear_failures(&self) {
        lock(&self.shared.faults).clear_failures();
    }

    /// Injected failures not yet served (`usize::MAX` while a `fail_always` is active).
    pub fn pending_failures(&self) -> usize {
        lock(&self.shared.faults).pending_failures()
    }

    /// Ends every open watch response cleanly, as an apiserver restart or a load
    /// balancer timeout does; clients resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.shared
            .drop_watches
            .send_modify(|generation| *generation += 1);
    }

    /// Forgets the change history (etcd compaction): resuming a watch from any version
    /// handed out so far gets 410 Expired, so every client must list again. Combine
    /// with [`drop_watches`](Self::drop_watches) to force watchers to re-list now.
    pub fn expire_watch_history(&self) {
        lock(&self.shared.store).expire_history();
    }

    /// Closes both listeners and all open connections; until
    /// [`restart`](Self::restart), connecting is refused.
    pub fn stop_listening(&self) -> Result<(), FixtureError> {
        self.control.stop()
    }

    /// Listens again on the same ports, with the same objects.
    pub fn restart(&self) -> Result<(), FixtureError> {
        self.control.start()
    }

    /// Removes all latency and failure rules.
    pub fn reset(&self) {
        let mut faults = lock(&self.shared.faults);
        faults.clear_latency();
        faults.clear_failures();
    }
}
