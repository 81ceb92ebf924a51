//! NADs from the Kubernetes API for `/mutate`, kept for a short time: a burst of pods (a
//! Deployment scaling up) selecting the same networks costs one GET per NAD, while a NAD created
//! or annotated moments ago is seen within the cache time. Absent NADs are never cached, so a pod
//! created right after its NAD is not refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use multinet_crds::NetworkAttachmentDefinition;

use crate::error::WebhookError;
use crate::metrics::Metrics;
use crate::mutate::{FetchedNads, NadRef};

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeAccess {
    /// The pod's service account.
    InCluster,
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
}

/// NADs read through the API, with a short-lived cache.
pub struct KubeNads {
    client: Client,
    timeout: Duration,
    ttl: Duration,
    cache: Mutex<HashMap<NadRef, (Instant, NetworkAttachmentDefinition)>>,
    metrics: Metrics,
}

impl KubeNads {
    /// The API client, for the webhook's other reads (the control ConfigMap).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client for `access`; nothing is sent until the first lookup.
    pub async fn connect(
        access: &KubeAccess,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, WebhookError> {
        let mut config = match access {
            KubeAccess::InCluster => Config::incluster()
                .map_err(|e| WebhookError::Api(format!("in-cluster configuration: {e}")))?,
            KubeAccess::Kubeconfig(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    WebhookError::Api(format!("kubeconfig {}: {e}", path.display()))
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| WebhookError::Api(format!("kubeconfig {}: {e}", path.display())))?
            }
        };
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let client = Client::try_from(config).map_err(|e| WebhookError::Api(e.to_string()))?;
        Ok(Self {
            client,
            timeout,
            ttl,
            cache: Mutex::new(HashMap::new()),
            metrics: Metrics::off(),
        })
    }

    /// Where each lookup sent to the API is counted.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn cached(&self, nad: &NadRef) -> Option<NetworkAttachmentDefinition> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(nad) {
            Some((at, found)) if at.elapsed() < self.ttl => Some(found.clone()),
            Some(_) => {
                cache.remove(nad);
                None
            }
            None => None,
        }
    }

    /// Looks every NAD up (from the cache when fresh). A failure is recorded, not returned: the
    /// decision turns it into a denial naming the network.
    pub async fn fetch(&self, nads: &[NadRef]) -> FetchedNads {
        let mut fetched = FetchedNads::new();
        for nad in nads {
            if let Some(found) = self.cached(nad) {
                fetched.record(nad.clone(), Ok(Some(found)));
                continue;
            }
            let api: Api<NetworkAttachmentDefinition> =
                Api::namespaced(self.client.clone(), &nad.namespace);
            let started = Instant::now();
            let (outcome, result) =
                match tokio::time::timeout(self.timeout, api.get_opt(&nad.name)).await {
                    Ok(Ok(found)) => (Ok(found), "ok"),
                    Ok(Err(e)) => (Err(e.to_string()), "error"),
                    Err(_) => (
                        Err(format!("no answer within {:?}", self.timeout)),
                        "timeout",
                    ),
                };
            self.metrics.api_request(result, started.elapsed());
            if let Ok(Some(found)) = &outcome {
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(nad.clone(), (Instant::now(), found.clone()));
            }
            fetched.record(nad.clone(), outcome);
        }
        fetched
    }
}
