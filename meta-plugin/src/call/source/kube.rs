//! The Kubernetes API as a cluster source. Every call retries transient failures (connection
//! errors, 429, 5xx) with backoff inside one time budget per CNI request, and each attempt may take
//! as long as the budget allows: a slow API server is waited for, not cut off after 250 ms.
//!
//! No error quotes a kubeconfig, a token file or an exec credential plugin's output: kube's own
//! messages may (a YAML parser's snippet of the file, the plugin's stdout with its token), so
//! every kube error is described here from its kind, the file's name and the line and column.

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::client::AuthError;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError, LoadDataError};
use kube::{Client, Config};
use serde_json::json;

use super::cache::{Lookup, WatchCache};
use super::dra::{self, ClaimDevice, ClaimInfo, NetworkData, PodClaims, PublishedDevice};
use super::local::NETWORK_STATUS;
use super::{
    ClusterSource, NAD_ANNOTATIONS_READ, NadInfo, POD_ANNOTATIONS_READ, PodEvent, PodInfo,
    annotations_read,
};
use crate::error::MetaError;
use crate::metrics::Metrics;

pub struct KubeSource {
    client: Client,
    deadline: Instant,
    metrics: Metrics,
    /// The daemon's watch caches, when they reflect this call's API.
    cache: Option<Arc<WatchCache>>,
}

/// How long a call waits for the pod watch to bring a pod it does not hold yet.
const POD_CACHE_WAIT: Duration = Duration::from_millis(500);

/// What a call keeps of a pod.
pub(crate) fn pod_info(p: Pod) -> PodInfo {
    let (spec, status) = (p.spec.as_ref(), p.status.as_ref());
    PodInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        node_name: spec.and_then(|s| s.node_name.clone()),
        claims: PodClaims::of(
            spec.and_then(|s| s.resource_claims.as_deref()),
            status.and_then(|s| s.resource_claim_statuses.as_deref()),
            status.and_then(|s| s.extended_resource_claim_status.as_ref()),
        ),
        uid: p.metadata.uid,
        annotations: annotations_read(
            p.metadata.annotations.unwrap_or_default(),
            &POD_ANNOTATIONS_READ,
        ),
    }
}

/// What a call keeps of a NAD.
pub(crate) fn nad_info(n: DynamicObject) -> NadInfo {
    NadInfo {
        namespace: n.metadata.namespace.clone().unwrap_or_default(),
        name: n.metadata.name.clone().unwrap_or_default(),
        config: n
            .data
            .get("spec")
            .and_then(|s| s.get("config"))
            .and_then(|c| c.as_str())
            .map(str::to_string),
        annotations: annotations_read(
            n.metadata.annotations.unwrap_or_default(),
            &NAD_ANNOTATIONS_READ,
        ),
    }
}

pub(crate) fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// Whether a call keeps its API client for the next call on the same thread. The node daemon
/// asks for it: a client and its connections belong to the runtime they were made on, and each
/// of its call threads keeps one runtime for all its calls, so clients are kept per thread. A
/// one-shot process has nothing to keep them for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientReuse {
    /// A new client for each call.
    #[default]
    PerCall,
    /// The thread's kept client, while its kubeconfig is unchanged.
    PerThread,
}

/// A kept client and what it was built from: a rewritten kubeconfig (token rotation, a new
/// server) gets a new client.
struct KeptClient {
    kubeconfig: Option<PathBuf>,
    modified: Option<SystemTime>,
    budget: Duration,
    client: Client,
}

thread_local! {
    static KEPT: RefCell<Vec<KeptClient>> = const { RefCell::new(Vec::new()) };
}

fn modified(kubeconfig: Option<&Path>) -> Option<SystemTime> {
    std::fs::metadata(kubeconfig?)
        .and_then(|m| m.modified())
        .ok()
}

impl KubeSource {
    /// From a kubeconfig file, or the in-cluster service account when `kubeconfig` is `None`.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        budget: Duration,
        reuse: ClientReuse,
        metrics: &Metrics,
    ) -> Result<Self, MetaError> {
        let deadline = Instant::now() + budget;
        let metrics = metrics.clone();
        if reuse == ClientReuse::PerCall {
            let client = build_client(kubeconfig, budget).await?;
            return Ok(KubeSource {
                client,
                deadline,
                metrics,
                cache: None,
            });
        }
        let modified = modified(kubeconfig);
        let same = |k: &KeptClient| {
            k.kubeconfig.as_deref() == kubeconfig && k.modified == modified && k.budget == budget
        };
        let kept = KEPT.with_borrow(|kept| kept.iter().find(|k| same(k)).map(|k| k.client.clone()));
        let client = match kept {
            Some(client) => client,
            None => {
                let client = build_client(kubeconfig, budget).await?;
                KEPT.with_borrow_mut(|kept| {
                    kept.retain(|k| k.kubeconfig.as_deref() != kubeconfig);
                    kept.push(KeptClient {
                        kubeconfig: kubeconfig.map(Path::to_path_buf),
                        modified,
                        budget,
                        client: client.clone(),
                    });
                });
                client
            }
        };
        Ok(KubeSource {
            client,
            deadline,
            metrics,
            cache: None,
        })
    }

    /// Answers pod and NAD reads from `cache` when it reflects the API of `kubeconfig`.
    pub fn with_cache(
        mut self,
        cache: Option<&Arc<WatchCache>>,
        kubeconfig: Option<&Path>,
    ) -> Self {
        self.cache = cache.filter(|c| c.serves(kubeconfig)).cloned();
        self
    }

    /// Whether this client's user may do `verb` on `resource` (`subresource`) of API `group` in
    /// every namespace, as the API server itself answers it (a SelfSubjectAccessReview, what
    /// `kubectl auth can-i` asks); the reason is the authorizer's, when it gives one.
    pub async fn may(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
    ) -> Result<(bool, Option<String>), MetaError> {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource: (!subresource.is_empty()).then(|| subresource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let post = PostParams::default();
        let answer = self
            .with_retries(
                "self_subject_access_review",
                &format!("may {verb} {resource}"),
                || api.create(&post, &review),
            )
            .await?;
        let status = answer.status.unwrap_or_default();
        Ok((status.allowed, status.reason.filter(|r| !r.is_empty())))
    }

    /// Runs `op` until it succeeds, fails for good, or the budget is spent. Each attempt is
    /// counted under `request` in the metrics.
    async fn with_retries<T, F, Fut>(
        &self,
        request: &str,
        what: &str,
        mut op: F,
    ) -> Result<T, MetaError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(50);
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let started = Instant::now();
            let attempt = tokio::time::timeout(remaining, op()).await;
            let result = match &attempt {
                Ok(outcome) => api_result(outcome),
                Err(_) => "timeout".to_owned(),
            };
            self.metrics
                .api_request(request, &result, started.elapsed());
            let err = match attempt {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => return Err(MetaError::Api(format!("{what}: timed out"))),
            };
            if !is_transient(&err) || Instant::now() + delay >= self.deadline {
                return Err(MetaError::Api(format!("{what}: {}", api_error(&err))));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

impl KubeSource {
    /// The cache's answer for a NAD, when it has one: the NAD, or (`missing_is_final`) its
    /// absence from a fresh cache.
    fn cached_nad(
        &self,
        namespace: &str,
        name: &str,
        missing_is_final: bool,
    ) -> Option<Option<NadInfo>> {
        let cache = self.cache.as_ref()?;
        let answer = match cache.nads.get(namespace, name) {
            Lookup::Found(nad) => Some(Some(NadInfo::clone(&nad))),
            Lookup::Missing if missing_is_final => Some(None),
            Lookup::Missing | Lookup::Stale => None,
        };
        self.metrics.cache_lookup("nad", answer.is_some());
        answer
    }

    async fn get_nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &nad_resource());
        let nad = self
            .with_retries(
                "get_nad",
                &format!("get NetworkAttachmentDefinition {namespace}/{name}"),
                || api.get_opt(name),
            )
            .await?;
        Ok(nad.map(nad_info))
    }
}

/// A client from a kubeconfig file or the in-cluster service account.
pub(crate) async fn build_client(
    kubeconfig: Option<&Path>,
    budget: Duration,
) -> Result<Client, MetaError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(path, &e))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| kubeconfig_error(path, &e))?
        }
        None => Config::incluster().map_err(|e| {
            // The service account's files are the kubelet's; their errors name paths only.
            MetaError::Api(format!("in-cluster config: {e}"))
        })?,
    };
    config.connect_timeout = Some(budget);
    config.read_timeout = Some(budget);
    config.write_timeout = Some(budget);
    // kube's own stack for what ours does not cover (a proxy, a TLS server name override).
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return Client::try_from(config).map_err(|e| client_error(kubeconfig, &e));
    }
    http2_client(config).map_err(|e| client_error(kubeconfig, &e))
}

/// A client that could not be built, naming the kubeconfig it came from.
fn client_error(kubeconfig: Option<&Path>, e: &kube::Error) -> MetaError {
    match kubeconfig {
        Some(path) => MetaError::Api(format!("{}: {}", path.display(), api_error(e))),
        None => MetaError::Api(format!("in-cluster config: {}", api_error(e))),
    }
}

/// A kubeconfig error: the file, what is wrong, and where (line and column) when the parser
/// knows; never the text (kube's parse error shows a snippet of the file, a context name or a
/// bad URL is the file's content too).
fn kubeconfig_error(path: &Path, e: &KubeconfigError) -> MetaError {
    MetaError::Api(format!(
        "kubeconfig {}: {}",
        path.display(),
        kubeconfig_problem(e)
    ))
}

/// What is wrong with a kubeconfig, from the error's kind alone.
fn kubeconfig_problem(e: &KubeconfigError) -> String {
    match e {
        KubeconfigError::ReadConfig(io, _) => format!("cannot be read: {io}"),
        KubeconfigError::Parse(parse) => match parse.location() {
            Some(at) => format!(
                "is not valid kubeconfig YAML (error at line {} column {})",
                at.line(),
                at.column()
            ),
            None => "is not valid kubeconfig YAML".into(),
        },
        KubeconfigError::CurrentContextNotSet => "sets no current context".into(),
        KubeconfigError::LoadContext(_) => "does not define its current context".into(),
        KubeconfigError::LoadClusterOfContext(_) => {
            "does not define the cluster of its current context".into()
        }
        KubeconfigError::MissingClusterUrl => "gives no server for its cluster".into(),
        KubeconfigError::ParseClusterUrl(_) => "has a cluster server that is not a URL".into(),
        KubeconfigError::ParseProxyUrl(_) => "has a proxy-url that is not a URL".into(),
        KubeconfigError::LoadCertificateAuthority(d) => {
            format!("certificate-authority: {}", load_data_error(d))
        }
        KubeconfigError::LoadClientCertificate(d) => {
            format!("client-certificate: {}", load_data_error(d))
        }
        KubeconfigError::LoadClientKey(d) => format!("client-key: {}", load_data_error(d)),
        KubeconfigError::ParseCertificates(_) => "holds certificates that are not valid PEM".into(),
        _ => "is not a usable kubeconfig".into(),
    }
}

fn load_data_error(e: &LoadDataError) -> String {
    match e {
        LoadDataError::DecodeBase64(_) => "the data is not valid base64".into(),
        LoadDataError::ReadFile(io, file) => format!("{}: {io}", file.display()),
        LoadDataError::NoBase64DataOrFile => "neither data nor a file is given".into(),
    }
}

/// A credentials error, without the token, the exec plugin's output or the token file's text.
fn auth_error(e: &AuthError) -> String {
    let what = match e {
        AuthError::InvalidBasicAuth(_) => "the basic-auth user or password is not a valid header",
        AuthError::InvalidBearerToken(_) => "the token is not a valid header value",
        AuthError::ReadTokenFile(io, file) => {
            return format!("credentials: token file {}: {io}", file.display());
        }
        AuthError::AuthExecStart(io) => {
            return format!("credentials: the exec plugin cannot be started: {io}");
        }
        AuthError::AuthExecRun { out, .. } => {
            return format!("credentials: the exec plugin failed ({})", out.status);
        }
        AuthError::AuthExecParse(parse) => {
            return match parse.location() {
                Some(at) => format!(
                    "credentials: the exec plugin's output is not valid (error at line {} column {})",
                    at.line(),
                    at.column()
                ),
                None => "credentials: the exec plugin's output is not valid".into(),
            };
        }
        AuthError::MissingCommand => "the exec plugin has no command",
        AuthError::ExecPluginFailed | AuthError::AuthExec(_) => "the exec plugin failed",
        AuthError::MalformedTokenExpirationDate(_) => {
            "the exec plugin's token expiration date is not valid"
        }
        _ => "the credentials cannot be used",
    };
    format!("credentials: {what}")
}

/// A kube error for a message: credential and kubeconfig errors anywhere in its chain are
/// described from their kind ([`auth_error`], [`kubeconfig_problem`]); the others (HTTP, TLS,
/// API status) carry no file content.
fn api_error(err: &kube::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(auth) = e.downcast_ref::<AuthError>() {
            return auth_error(auth);
        }
        if let Some(kube::Error::Auth(auth)) = e.downcast_ref::<kube::Error>() {
            return auth_error(auth);
        }
        if let Some(kc) = e.downcast_ref::<KubeconfigError>() {
            return format!("kubeconfig {}", kubeconfig_problem(kc));
        }
        source = e.source();
    }
    err.to_string()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client that offers HTTP/2 (ALPN) and falls back to HTTP/1.1: a call's requests sent at once
/// (its NADs; its status patch and events) share one connection and one TLS handshake instead of
/// opening one connection each. The layers are kube's own: the server's base URI, the
/// credentials of the kubeconfig (tokens, client certificates, exec plugins), extra headers.
fn http2_client(config: Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    let tls = config.rustls_client_config()?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // HTTP/2 sends small frames (SETTINGS, WINDOW_UPDATE, HEADERS) that Nagle's algorithm would
    // hold back until the peer's delayed ACK: tens of milliseconds per request.
    tcp.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// The metrics' result label of one API request: "ok", the HTTP status of a refusal, or
/// "error" when no answer came.
fn api_result<T>(outcome: &Result<T, kube::Error>) -> String {
    match outcome {
        Ok(_) => "ok".to_owned(),
        Err(kube::Error::Api(status)) => status.code.to_string(),
        Err(_) => "error".to_owned(),
    }
}

fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

impl ClusterSource for KubeSource {
    async fn pod(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<PodInfo>, MetaError> {
        if let Some(cache) = &self.cache {
            // A pod just bound to this node may reach the watch a moment after the runtime
            // calls: it is waited for, briefly, before the API is asked.
            let fits = |p: &PodInfo| uid.is_none() || p.uid.as_deref() == uid;
            let cached = cache
                .pods
                .get_waiting(namespace, name, POD_CACHE_WAIT, fits)
                .await;
            self.metrics.cache_lookup("pod", cached.is_some());
            if let Some(pod) = cached {
                return Ok(Some(PodInfo::clone(&pod)));
            }
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self
            .with_retries("get_pod", &format!("get pod {namespace}/{name}"), || {
                api.get_opt(name)
            })
            .await?;
        Ok(pod.map(pod_info))
    }

    async fn nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        // Missing from a fresh cache: maybe created a moment ago; the API is asked.
        if let Some(nad) = self.cached_nad(namespace, name, false) {
            return Ok(nad);
        }
        self.get_nad(namespace, name).await
    }

    async fn nad_if_any(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        if let Some(nad) = self.cached_nad(namespace, name, true) {
            return Ok(nad);
        }
        self.get_nad(namespace, name).await
    }

    async fn write_network_status(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
    ) -> Result<(), MetaError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // A merge patch on pods/status carries no resourceVersion, so it cannot conflict and needs
        // no GET first.
        let patch = json!({"metadata": {"annotations": {NETWORK_STATUS: status}}});
        let params = PatchParams::default();
        self.with_retries(
            "patch_pod_status",
            &format!("patch pod {namespace}/{name} status"),
            || async {
                match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
                    Err(e) if is_not_found(&e) => Ok(()),
                    other => other.map(|_| ()),
                }
            },
        )
        .await
    }

    async fn record_events(&self, pod: &PodInfo, events: &[PodEvent]) -> Result<(), MetaError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        let posts = events.iter().enumerate().map(|(i, e)| {
            let event = pod_event(pod, e, now, i);
            let api = &api;
            async move {
                let started = Instant::now();
                let created = api.create(&PostParams::default(), &event).await;
                self.metrics
                    .api_request("create_event", &api_result(&created), started.elapsed());
                created
            }
        });
        futures::future::try_join_all(posts)
            .await
            .map(|_| ())
            .map_err(|e| MetaError::Api(format!("events of pod {}: {}", pod.key(), api_error(&e))))
    }

    async fn resource_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClaimInfo>, MetaError> {
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), namespace);
        let claim = self
            .with_retries(
                "get_resource_claim",
                &format!("get ResourceClaim {namespace}/{name}"),
                || api.get_opt(name),
            )
            .await?;
        Ok(claim.as_ref().map(ClaimInfo::from))
    }

    /// Read, change, replace: `status.devices` is a list keyed by driver, pool and device, and
    /// a merge patch would replace the entries other drivers wrote. A conflict (someone wrote
    /// the claim meanwhile) is read again, a few times.
    async fn write_claim_network_data(
        &self,
        namespace: &str,
        claim: &str,
        entries: &[(ClaimDevice, NetworkData)],
    ) -> Result<(), MetaError> {
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("ResourceClaim {namespace}/{claim} status");
        for _ in 0..4 {
            let Some(mut current) = self
                .with_retries("get_resource_claim", &what, || api.get_opt(claim))
                .await?
            else {
                return Ok(());
            };
            let status = current.status.get_or_insert_with(Default::default);
            status.devices = Some(dra::with_network_data(
                status.devices.take().unwrap_or_default(),
                entries,
            ));
            let params = PostParams::default();
            match self
                .with_retries("replace_resource_claim_status", &what, || {
                    api.replace_status(claim, &params, &current)
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(MetaError::Api(msg)) if msg.contains("409") || msg.contains("onflict") => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(MetaError::Api(format!(
            "{what}: kept conflicting with other writers"
        )))
    }

    async fn published_devices(
        &self,
        node: &str,
        driver: &str,
    ) -> Result<Vec<PublishedDevice>, MetaError> {
        let api: Api<ResourceSlice> = Api::all(self.client.clone());
        // The API server filters by node and driver; `published_on` checks the node again.
        let params =
            ListParams::default().fields(&format!("spec.nodeName={node},spec.driver={driver}"));
        let slices = self
            .with_retries(
                "list_resource_slices",
                &format!("list ResourceSlices of driver {driver} on node {node}"),
                || api.list(&params),
            )
            .await?;
        Ok(slices
            .items
            .iter()
            .flat_map(|slice| dra::published_on(slice, node))
            .filter(|d| d.driver == driver)
            .collect())
    }
}

/// The core/v1 Event object `kubectl describe pod` shows, named like client-go names its events
/// (`<pod>.<hex nanoseconds>`); `seq` keeps the names of one batch distinct.
fn pod_event(pod: &PodInfo, e: &PodEvent, now: k8s_openapi::jiff::Timestamp, seq: usize) -> Event {
    let nanos = now.as_nanosecond() + seq as i128;
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{nanos:x}", pod.name)),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            uid: pod.uid.clone(),
            ..Default::default()
        },
        reason: Some(e.reason.into()),
        message: Some(e.message.clone()),
        type_: Some(e.kind.as_str().into()),
        source: Some(EventSource {
            component: Some("multinet".into()),
            host: None,
        }),
        reporting_component: Some("multinet".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "s3cr3t-T0KEN-do-not-print";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn kubeconfig(cluster: &str, user: &str, current: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n{cluster}contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: {current}\nusers:\n- name: u\n  user:\n{user}"
        )
    }

    /// The error the runtime would see for this kubeconfig, at connect or at the first request.
    fn error_for(text: &str) -> (String, multinet_cni::CniError) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multinet.kubeconfig");
        std::fs::write(&path, text).unwrap();
        let err = runtime().block_on(async {
            match KubeSource::connect(
                Some(&path),
                Duration::from_secs(2),
                ClientReuse::PerCall,
                &Metrics::off(),
            )
            .await
            {
                Err(e) => e,
                Ok(src) => src.pod("default", "p", None).await.unwrap_err(),
            }
        });
        (path.display().to_string(), err.to_cni())
    }

    #[test]
    fn a_bad_kubeconfig_is_named_with_its_place_and_never_quoted() {
        let token = format!("    token: {SECRET}\n");
        let cases = [
            // Broken YAML right after the token.
            (
                "syntax",
                format!("{}    bad: [\n", kubeconfig("", &token, "ctx")),
            ),
            // The token where a list belongs.
            (
                "type",
                format!("apiVersion: v1\nkind: Config\nusers: {SECRET}\nclusters: []\n"),
            ),
            // A mapping key holding the token, indented wrongly.
            (
                "indent",
                kubeconfig("", &format!("  {SECRET}: x\n   y: z\n"), "ctx"),
            ),
        ];
        for (case, text) in cases {
            let (path, e) = error_for(&text);
            let shown = e.to_string();
            assert!(shown.contains(&path), "{case}: {shown}");
            assert!(shown.contains("line "), "{case}: {shown}");
            assert!(!shown.contains(SECRET), "{case}: {shown}");
            assert!(!shown.contains("s3cr3t"), "{case}: {shown}");
        }
    }

    #[test]
    fn kubeconfig_content_errors_name_the_key_not_the_value() {
        let cases = [
            ("current context", kubeconfig("", "    token: t\n", SECRET)),
            (
                "client-certificate",
                kubeconfig(
                    "",
                    &format!(
                        "    client-certificate-data: {SECRET}$$\n    client-key-data: {SECRET}\n"
                    ),
                    "ctx",
                ),
            ),
            (
                "certificate-authority",
                kubeconfig(
                    &format!("    certificate-authority-data: {SECRET}$$\n"),
                    "    token: t\n",
                    "ctx",
                ),
            ),
        ];
        for (needle, text) in cases {
            let (path, e) = error_for(&text);
            let shown = e.to_string();
            assert!(shown.contains(&path), "{needle}: {shown}");
            assert!(shown.contains(needle), "{needle}: {shown}");
            assert!(!shown.contains("s3cr3t"), "{needle}: {shown}");
        }
    }

    #[test]
    fn an_exec_plugin_that_fails_does_not_leak_its_output() {
        let user = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/sh\n      args: [\"-c\", \"echo '{{\\\"token\\\":\\\"{SECRET}\\\"}}'; echo {SECRET} >&2; exit 3\"]\n      interactiveMode: Never\n"
        );
        let (_, e) = error_for(&kubeconfig("", &user, "ctx"));
        let shown = e.to_string();
        assert!(shown.contains("exec plugin failed"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        // An exec plugin whose output is not a credential: same rule.
        let user = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/sh\n      args: [\"-c\", \"echo 'status: [{SECRET}'\"]\n      interactiveMode: Never\n"
        );
        let (_, e) = error_for(&kubeconfig("", &user, "ctx"));
        let shown = e.to_string();
        assert!(shown.contains("exec plugin"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn an_unreadable_token_file_is_named() {
        let (_, e) = error_for(&kubeconfig(
            "",
            "    tokenFile: /nonexistent/multinet-token\n",
            "ctx",
        ));
        let shown = e.to_string();
        assert!(shown.contains("/nonexistent/multinet-token"), "{shown}");
    }
}
