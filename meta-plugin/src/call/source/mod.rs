//! Where pods and NADs come from: the Kubernetes API, or a local folder of YAML files for nodes
//! without a cluster (and for the demo and tests). The rest of the meta-plugin sees only this trait.

use std::collections::BTreeMap;

use crate::error::MetaError;

pub mod cache;
pub mod dra;
pub mod kube;
pub mod local;

use dra::{ClaimDevice, ClaimInfo, NetworkData, PodClaims, PublishedDevice};

/// The parts of a pod the meta-plugin uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.nodeName`: DRA devices are looked up among this node's ResourceSlices.
    pub node_name: Option<String>,
    /// The ResourceClaims (DRA) the pod uses.
    pub claims: PodClaims,
}

/// The pod annotations a call reads; a pod's other annotations (a last-applied configuration,
/// the network-status multinet writes) are not kept.
pub const POD_ANNOTATIONS_READ: [&str; 3] = [
    multinet_crds::NETWORKS_ANNOTATION,
    multinet_crds::DEFAULT_NETWORK_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION,
];

/// Where the kubelet got a pod from: "api", or a file or URL for a static pod.
const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// The NAD annotations a call reads.
pub const NAD_ANNOTATIONS_READ: [&str; 1] = [multinet_crds::RESOURCE_NAME_ANNOTATION];

/// The entries of `annotations` whose keys are in `read`.
pub fn annotations_read(
    annotations: BTreeMap<String, String>,
    read: &[&str],
) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .filter(|(k, _)| read.contains(&k.as_str()))
        .collect()
}

impl PodInfo {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Static pods keep a UID of their own that differs from the mirror pod's in the API.
    pub fn is_static(&self) -> bool {
        self.annotations
            .get(CONFIG_SOURCE_ANNOTATION)
            .is_some_and(|s| s != "api")
    }
}

/// The parts of a NetworkAttachmentDefinition the meta-plugin uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NadInfo {
    pub namespace: String,
    pub name: String,
    /// `spec.config`; empty or absent means "the file in confDir with this name".
    pub config: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// An event about a pod, as `kubectl describe pod` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub reason: &'static str,
    pub message: String,
    pub kind: EventKind,
}

/// The event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait ClusterSource {
    /// `Ok(None)` when the pod does not exist. `uid` is the UID the runtime named
    /// (K8S_POD_UID), when it named one: a cached pod of another UID is not the one asked for.
    async fn pod(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<PodInfo>, MetaError>;
    /// `Ok(None)` when the NAD does not exist.
    async fn nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError>;
    /// A NAD that may well not exist (a configured network looked for as a NAD before the
    /// config folder): a source with a fresh cache answers from it alone.
    async fn nad_if_any(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        self.nad(namespace, name).await
    }
    /// Writes `k8s.v1.cni.cncf.io/network-status`; a pod that vanished meanwhile is not an error.
    async fn write_network_status(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
    ) -> Result<(), MetaError>;
    /// Records `events` on `pod`, all at once. Events are informative: the caller logs a failure.
    async fn record_events(&self, pod: &PodInfo, events: &[PodEvent]) -> Result<(), MetaError>;
    /// ResourceClaim `namespace/name`; `Ok(None)` when it does not exist.
    async fn resource_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClaimInfo>, MetaError>;
    /// The devices `driver` published in its ResourceSlices of node `node`.
    async fn published_devices(
        &self,
        node: &str,
        driver: &str,
    ) -> Result<Vec<PublishedDevice>, MetaError>;
    /// Writes each device's network data into ResourceClaim `namespace/claim`'s
    /// `status.devices`, leaving the other entries as they are.
    async fn write_claim_network_data(
        &self,
        namespace: &str,
        claim: &str,
        entries: &[(ClaimDevice, NetworkData)],
    ) -> Result<(), MetaError>;
}

/// Sends each call to the source the config selected.
pub enum AnySource {
    Kube(kube::KubeSource),
    Local(local::LocalSource),
}

impl ClusterSource for AnySource {
    async fn pod(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<PodInfo>, MetaError> {
        match self {
            AnySource::Kube(s) => s.pod(namespace, name, uid).await,
            AnySource::Local(s) => s.pod(namespace, name, uid).await,
        }
    }
    async fn nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        match self {
            AnySource::Kube(s) => s.nad(namespace, name).await,
            AnySource::Local(s) => s.nad(namespace, name).await,
        }
    }
    async fn nad_if_any(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        match self {
            AnySource::Kube(s) => s.nad_if_any(namespace, name).await,
            AnySource::Local(s) => s.nad_if_any(namespace, name).await,
        }
    }
    async fn write_network_status(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
    ) -> Result<(), MetaError> {
        match self {
            AnySource::Kube(s) => s.write_network_status(namespace, name, status).await,
            AnySource::Local(s) => s.write_network_status(namespace, name, status).await,
        }
    }
    async fn record_events(&self, pod: &PodInfo, events: &[PodEvent]) -> Result<(), MetaError> {
        match self {
            AnySource::Kube(s) => s.record_events(pod, events).await,
            AnySource::Local(s) => s.record_events(pod, events).await,
        }
    }
    async fn resource_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClaimInfo>, MetaError> {
        match self {
            AnySource::Kube(s) => s.resource_claim(namespace, name).await,
            AnySource::Local(s) => s.resource_claim(namespace, name).await,
        }
    }
    async fn published_devices(
        &self,
        node: &str,
        driver: &str,
    ) -> Result<Vec<PublishedDevice>, MetaError> {
        match self {
            AnySource::Kube(s) => s.published_devices(node, driver).await,
            AnySource::Local(s) => s.published_devices(node, driver).await,
        }
    }
    async fn write_claim_network_data(
        &self,
        namespace: &str,
        claim: &str,
        entries: &[(ClaimDevice, NetworkData)],
    ) -> Result<(), MetaError> {
        match self {
            AnySource::Kube(s) => s.write_claim_network_data(namespace, claim, entries).await,
            AnySource::Local(s) => s.write_claim_network_data(namespace, claim, entries).await,
        }
    }
}
