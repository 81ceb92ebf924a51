//! The Kubernetes API as a cluster source. Every call retries transient failures (connection
//! errors, 429, 5xx) with backoff inside one time budget per CNI request, and each attempt may take
//! as long as the budget allows: a slow API server is waited for, not cut off after 250 ms.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::runtime::Handle;

use super::local::NETWORK_STATUS;
use super::{ClusterSource, NadInfo, PodEvent, PodInfo};
use crate::error::MetaError;

pub struct KubeSource {
    client: Client,
    deadline: Instant,
}

fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// Where clients are kept for later calls: set by the node daemon, whose calls share one warm
/// connection to the API server. A client's background task lives on the runtime it was built on,
/// so clients are built on the daemon's long-lived runtime, never on a call's own.
static REUSE: OnceLock<Handle> = OnceLock::new();

/// A kept client and what it was built from: a rewritten kubeconfig (token rotation, a new
/// server) gets a new client.
struct KeptClient {
    kubeconfig: Option<PathBuf>,
    modified: Option<SystemTime>,
    budget: Duration,
    client: Client,
}

static KEPT: Mutex<Vec<KeptClient>> = Mutex::new(Vec::new());

/// Keeps API clients for reuse across calls, built on `runtime` (the node daemon's).
pub fn reuse_clients_on(runtime: Handle) {
    let _ = REUSE.set(runtime);
}

fn modified(kubeconfig: Option<&Path>) -> Option<SystemTime> {
    std::fs::metadata(kubeconfig?)
        .and_then(|m| m.modified())
        .ok()
}

impl KubeSource {
    /// From a kubeconfig file, or the in-cluster service account when `kubeconfig` is `None`.
    pub async fn connect(kubeconfig: Option<&Path>, budget: Duration) -> Result<Self, MetaError> {
        let deadline = Instant::now() + budget;
        let Some(runtime) = REUSE.get() else {
            let client = build_client(kubeconfig, budget, None).await?;
            return Ok(KubeSource { client, deadline });
        };
        let modified = modified(kubeconfig);
        let same = |k: &KeptClient| {
            k.kubeconfig.as_deref() == kubeconfig && k.modified == modified && k.budget == budget
        };
        let kept = KEPT
            .lock()
            .ok()
            .and_then(|kept| kept.iter().find(|k| same(k)).map(|k| k.client.clone()));
        let client = match kept {
            Some(client) => client,
            None => {
                let client = build_client(kubeconfig, budget, Some(runtime)).await?;
                if let Ok(mut kept) = KEPT.lock() {
                    kept.retain(|k| k.kubeconfig.as_deref() != kubeconfig);
                    kept.push(KeptClient {
                        kubeconfig: kubeconfig.map(Path::to_path_buf),
                        modified,
                        budget,
                        client: client.clone(),
                    });
                }
                client
            }
        };
        Ok(KubeSource { client, deadline })
    }

    /// Runs `op` until it succeeds, fails for good, or the budget is spent.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, MetaError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(50);
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, op()).await;
            let err = match attempt {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => return Err(MetaError::Api(format!("{what}: timed out"))),
            };
            if !is_transient(&err) || Instant::now() + delay >= self.deadline {
                return Err(MetaError::Api(format!("{what}: {err}")));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// A client from a kubeconfig file or the in-cluster service account; its background task runs
/// on `runtime` when given, else on the current one.
async fn build_client(
    kubeconfig: Option<&Path>,
    budget: Duration,
    runtime: Option<&Handle>,
) -> Result<Client, MetaError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| MetaError::Api(format!("kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| MetaError::Api(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => {
            Config::incluster().map_err(|e| MetaError::Api(format!("in-cluster config: {e}")))?
        }
    };
    config.connect_timeout = Some(budget);
    config.read_timeout = Some(budget);
    config.write_timeout = Some(budget);
    let Some(runtime) = runtime else {
        return Client::try_from(config).map_err(|e| MetaError::Api(e.to_string()));
    };
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|e| MetaError::Api(e.to_string()))?;
    let on_runtime = tower::layer::layer_fn(|inner| OnRuntime {
        inner,
        runtime: runtime.clone(),
    });
    // The client's request queue runs on `runtime` too.
    let _entered = runtime.enter();
    Ok(builder.with_layer(&on_runtime).build())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs each API request, connection set-up included, on the daemon's runtime rather than the
/// calling CNI call's own: connections (and their TLS sessions) then outlive the call that opened
/// them and serve the next ones.
#[derive(Clone)]
struct OnRuntime<S> {
    inner: S,
    runtime: Handle,
}

impl<S, Req> tower::Service<Req> for OnRuntime<S>
where
    S: tower::Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let request = self.runtime.spawn(self.inner.call(req));
        Box::pin(async move { request.await.map_err(BoxError::from)?.map_err(Into::into) })
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
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>, MetaError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self
            .with_retries(&format!("get pod {namespace}/{name}"), || api.get_opt(name))
            .await?;
        Ok(pod.map(|p| PodInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: p.metadata.uid,
            annotations: p.metadata.annotations.unwrap_or_default(),
        }))
    }

    async fn nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &nad_resource());
        let nad = self
            .with_retries(
                &format!("get NetworkAttachmentDefinition {namespace}/{name}"),
                || api.get_opt(name),
            )
            .await?;
        Ok(nad.map(|n| NadInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            config: n
                .data
                .get("spec")
                .and_then(|s| s.get("config"))
                .and_then(|c| c.as_str())
                .map(str::to_string),
            annotations: n.metadata.annotations.unwrap_or_default(),
        }))
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
        self.with_retries(&format!("patch pod {namespace}/{name} status"), || async {
            match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    async fn record_events(&self, pod: &PodInfo, events: &[PodEvent]) -> Result<(), MetaError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        let posts = events.iter().enumerate().map(|(i, e)| {
            let event = pod_event(pod, e, now, i);
            let api = &api;
            async move { api.create(&PostParams::default(), &event).await }
        });
        futures::future::try_join_all(posts)
            .await
            .map(|_| ())
            .map_err(|e| MetaError::Api(format!("events of pod {}: {e}", pod.key())))
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
        type_: Some("Normal".into()),
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
