//! Device IDs (SR-IOV VF PCI addresses) that the pod was given, for networks whose NAD names a
//! `resourceName`, from two kinds of source:
//! - DRA: the pod's ResourceClaims, each device keyed by the `k8s.cni.cncf.io/resourceName`
//!   its driver published for it in this node's ResourceSlices, with its
//!   `k8s.cni.cncf.io/deviceID` as the ID (as Multus reads them);
//! - device plugins (asked only for resources DRA did not give): the kubelet's pod-resources
//!   API when its socket exists, else its device-plugin checkpoint file. Pod-resources also
//!   lists DRA devices per claim (keyed by claim name, the ID after `=` in the CDI name).
//!
//! IDs are sorted and handed out in network order by the plan.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::call::plan::LoadedNetwork;
use crate::call::source::dra::{
    AllocatedDevice, ClaimDevice, ClaimInfo, DEVICE_ID_ATTRIBUTE, PublishedDevice,
    RESOURCE_NAME_ATTRIBUTE,
};
use crate::call::source::{ClusterSource, PodInfo};
use crate::error::MetaError;
use multinet_podresources::{self as podresources, QueryError};

/// Resource name → device IDs, sorted.
pub type DeviceMap = BTreeMap<String, Vec<String>>;

pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// Where the kubelet tells which devices a pod holds.
#[derive(Debug, Clone)]
pub struct DeviceSources {
    /// The pod-resources gRPC socket.
    pub socket: PathBuf,
    /// The device manager's checkpoint file.
    pub checkpoint: PathBuf,
}

impl DeviceSources {
    /// The kubelet's paths, or `MULTINET_PODRESOURCES_SOCKET` / `MULTINET_KUBELET_CHECKPOINT`.
    pub fn from_env() -> Self {
        DeviceSources {
            socket: podresources::socket_path(),
            checkpoint: std::env::var_os("MULTINET_KUBELET_CHECKPOINT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT)),
        }
    }
}

/// Parses the checkpoint's entries for one pod: resource name → sorted device IDs. Handles both
/// layouts kubelets have written (`DeviceIDs` as a list, or as a map from NUMA node to list).
pub fn parse_checkpoint(
    text: &str,
    pod_uid: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let entries = v
        .get("Data")
        .and_then(|d| d.get("PodDeviceEntries"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        if e.get("PodUID").and_then(Value::as_str) != Some(pod_uid) {
            continue;
        }
        let Some(resource) = e.get("ResourceName").and_then(Value::as_str) else {
            continue;
        };
        let ids = out.entry(resource.to_string()).or_default();
        match e.get("DeviceIDs") {
            Some(Value::Array(list)) => {
                ids.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Some(Value::Object(by_numa)) => {
                for list in by_numa.values() {
                    if let Some(list) = list.as_array() {
                        ids.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
                    }
                }
            }
            _ => {}
        }
    }
    for ids in out.values_mut() {
        ids.sort();
        ids.dedup();
    }
    Ok(out)
}

/// Device IDs for the networks that need them; reads nothing when none does. DRA claims are
/// read through `source` first; the kubelet is asked only when some needed resource is still
/// missing. An answer from the kubelet that is an error is an error, naming the socket.
pub async fn device_ids_for(
    source: Option<&impl ClusterSource>,
    pod: Option<&PodInfo>,
    cluster: &LoadedNetwork,
    defaults: &[LoadedNetwork],
    selected: &[(multinet_crds::NetworkSelection, LoadedNetwork)],
) -> Result<PodDeviceIds, MetaError> {
    device_ids_from(
        &DeviceSources::from_env(),
        source,
        pod,
        cluster,
        defaults,
        selected,
    )
    .await
}

/// [`device_ids_for`] with explicit kubelet sources.
///
/// DRA is read first; the kubelet is asked when DRA left some needed resource short of the
/// networks that name it, and its device-plugin IDs are merged in (a resource may move from a
/// device plugin to DRA under one name). Its per-claim IDs (pod-resources `dynamic_resources`)
/// count only under names nothing else gave. What went wrong with the pod's claims fails the
/// call only when some resource is still short: a pod whose devices all came, or come from a
/// device plugin, starts as it did before DRA was read (on clusters without resource.k8s.io/v1,
/// or whose RBAC lacks it, too).
pub async fn device_ids_from(
    sources: &DeviceSources,
    source: Option<&impl ClusterSource>,
    pod: Option<&PodInfo>,
    cluster: &LoadedNetwork,
    defaults: &[LoadedNetwork],
    selected: &[(multinet_crds::NetworkSelection, LoadedNetwork)],
) -> Result<PodDeviceIds, MetaError> {
    // How many devices of each resource the networks take. A selection that names its own
    // deviceID needs the pod's IDs too: it may only name one of them.
    let mut needed: BTreeMap<&str, usize> = BTreeMap::new();
    for n in std::iter::once(cluster)
        .chain(defaults)
        .chain(selected.iter().map(|(_, n)| n))
    {
        if let Some(r) = n.resource_name.as_deref() {
            *needed.entry(r).or_default() += 1;
        }
    }
    let Some(pod) = pod else {
        return Ok(PodDeviceIds::default());
    };
    if needed.is_empty() {
        return Ok(PodDeviceIds::default());
    }
    let short = |ids: &DeviceMap| {
        needed
            .iter()
            .any(|(r, n)| ids.get(*r).map_or(0, Vec::len) < *n)
    };
    let ClaimDevices {
        mut ids,
        origins,
        mut problems,
        ..
    } = match source {
        Some(source) if !pod.claims.is_empty() => match claim_device_ids(source, pod).await {
            Ok(found) => found,
            Err(e) => ClaimDevices {
                problems: vec![e],
                ..Default::default()
            },
        },
        _ => ClaimDevices::default(),
    };
    if short(&ids) {
        match kubelet_device_ids(sources, pod).await {
            Ok(kubelet) => {
                for (resource, more) in kubelet.plugins {
                    ids.entry(resource).or_default().extend(more);
                }
                for (claim, more) in kubelet.claims {
                    ids.entry(claim).or_insert(more);
                }
            }
            Err(e) if problems.is_empty() => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    for list in ids.values_mut() {
        list.sort();
        list.dedup();
    }
    if short(&ids) && !problems.is_empty() {
        return Err(match problems.len() {
            1 => problems.remove(0),
            _ => MetaError::Many(problems),
        });
    }
    for p in &problems {
        tracing::warn!(pod = %pod.key(), "{p}");
    }
    Ok(PodDeviceIds { ids, origins })
}

/// The device-plugin (and pod-resources DRA) IDs the kubelet reports for the pod.
async fn kubelet_device_ids(
    sources: &DeviceSources,
    pod: &PodInfo,
) -> Result<podresources::PodDevices, MetaError> {
    let socket = &sources.socket;
    if socket.exists() {
        match podresources::pod_devices(socket, &pod.namespace, &pod.name, podresources::TIMEOUT)
            .await
        {
            Ok(ids) => return Ok(ids),
            Err(e @ QueryError::Unreachable(_)) => {
                tracing::warn!(socket = %socket.display(), error = %e,
                    "kubelet pod-resources API unreachable, reading the checkpoint");
            }
            Err(e) => {
                return Err(MetaError::io(
                    format!("kubelet pod-resources API {}", socket.display()),
                    e,
                ));
            }
        }
    }
    let Some(uid) = pod.uid.as_deref() else {
        return Ok(podresources::PodDevices::default());
    };
    let path = &sources.checkpoint;
    let text = std::fs::read_to_string(path)
        .map_err(|e| MetaError::io(format!("kubelet checkpoint {}", path.display()), e))?;
    let plugins = parse_checkpoint(&text, uid)
        .map_err(|e| MetaError::Decode(format!("kubelet checkpoint {}: {e}", path.display())))?;
    Ok(podresources::PodDevices {
        plugins,
        ..Default::default()
    })
}

/// At most this many of a pod's ResourceClaims are read at once.
const CLAIM_READS_AT_ONCE: usize = 8;

/// The device IDs of the pod's ResourceClaims, and what kept some from counting: every claim
/// is read, then the ResourceSlices of each driver that allocated a device to them, on the
/// pod's node.
pub async fn claim_device_ids(
    source: &impl ClusterSource,
    pod: &PodInfo,
) -> Result<ClaimDevices, MetaError> {
    use futures::{StreamExt, TryStreamExt};
    let Some(node) = pod.node_name.as_deref() else {
        return Err(MetaError::Pod {
            pod: pod.key(),
            msg: "the pod has ResourceClaims but no spec.nodeName".into(),
        });
    };
    let mut names: Vec<&str> = pod.claims.names.iter().map(String::as_str).collect();
    if let Some(e) = &pod.claims.extended
        && !names.contains(&e.claim.as_str())
    {
        names.push(&e.claim);
    }
    let claims: BTreeMap<String, Option<ClaimInfo>> = futures::stream::iter(names)
        .map(|name| async move {
            let claim = source.resource_claim(&pod.namespace, name).await?;
            Ok::<_, MetaError>((name.to_string(), claim))
        })
        .buffer_unordered(CLAIM_READS_AT_ONCE)
        .try_collect()
        .await?;
    let mut drivers: Vec<&str> = claims
        .values()
        .flatten()
        .flat_map(|c| c.allocated.iter().flatten())
        .map(|d| d.driver.as_str())
        .collect();
    drivers.sort();
    drivers.dedup();
    let published: Vec<PublishedDevice> =
        futures::future::try_join_all(drivers.iter().map(|d| source.published_devices(node, d)))
            .await?
            .into_iter()
            .flatten()
            .collect();
    Ok(map_claim_devices(pod, &claims, &published))
}

/// Resource name → device IDs of the pod's claims, and what kept claims or devices from
/// counting. A claim counts only when:
/// - it is allocated and reserved for this pod (its UID in `status.reservedFor`);
/// - it is the pod's alone: made from the pod's template (the pod is its controller) or
///   reserved for this pod only. A pod author may write any claim of the namespace into the
///   pod, and the scheduler then shares it: another pod's VF must not become this pod's.
///
/// A device counts only when it is not an admin-access allocation (that reaches devices other
/// pods use) and this node's newest slices publish it with a resource name and an ID; a device
/// of a counted claim missing from every slice is a problem to retry (the driver may be
/// republishing). For the extended resource claim the mapping is strict, as in Multus: every
/// mapped request must resolve to devices published under exactly the mapped resource name.
pub fn map_claim_devices(
    pod: &PodInfo,
    claims: &BTreeMap<String, Option<ClaimInfo>>,
    published: &[PublishedDevice],
) -> ClaimDevices {
    let pod_err = |msg: String| MetaError::Pod {
        pod: pod.key(),
        msg,
    };
    // A pool's devices come from the slices of its newest generation only, as the scheduler
    // reads them.
    let newest = |driver: &str, pool: &str| {
        published
            .iter()
            .filter(|d| d.driver == driver && d.pool == pool)
            .map(|d| d.generation)
            .max()
    };
    let find = |d: &AllocatedDevice| {
        let generation = newest(&d.driver, &d.pool)?;
        published.iter().find(|p| {
            p.driver == d.driver
                && p.pool == d.pool
                && p.name == d.device
                && p.generation == generation
        })
    };
    let missing = |at: &str, d: &AllocatedDevice| {
        MetaError::Api(format!(
            "{at}: device {}/{}/{} is in no ResourceSlice of this node yet",
            d.driver, d.pool, d.device
        ))
    };
    let usable = |name: &str| -> Result<&[AllocatedDevice], MetaError> {
        let shown = format!("ResourceClaim {}/{name}", pod.namespace);
        let claim = claims
            .get(name)
            .and_then(Option::as_ref)
            .ok_or_else(|| pod_err(format!("{shown} not found")))?;
        let Some(uid) = pod.uid.as_ref() else {
            return Err(pod_err(format!(
                "{shown}: the pod has no UID, so the claim cannot be checked"
            )));
        };
        if !claim.reserved_for.contains(uid) {
            return Err(pod_err(format!(
                "{shown} is not reserved for this pod (status.reservedFor): its devices are \
                 not the pod's"
            )));
        }
        let own = claim.controller.as_ref() == Some(uid) || claim.reserved_for == [uid.clone()];
        if !own {
            return Err(pod_err(format!(
                "{shown} is shared with other pods: its devices are given to no network"
            )));
        }
        claim
            .allocated
            .as_deref()
            .ok_or_else(|| pod_err(format!("{shown} has no device allocation")))
    };
    let mut ids = DeviceMap::new();
    let mut origins = BTreeMap::new();
    let mut problems = Vec::new();
    let mut topology = Topology::default();
    let origin = |claim: &str, d: &AllocatedDevice| ClaimDevice {
        claim: claim.to_owned(),
        driver: d.driver.clone(),
        pool: d.pool.clone(),
        device: d.device.clone(),
    };
    for name in &pod.claims.names {
        let allocated = match usable(name) {
            Ok(allocated) => allocated,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let at = format!("ResourceClaim {}/{name}", pod.namespace);
        for d in allocated.iter().filter(|d| !d.admin_access) {
            if let Some(p) = find(d) {
                topology.numa_nodes.extend(p.numa_node);
                topology.pcie_roots.extend(p.pcie_root.clone());
            }
            match find(d) {
                None => problems.push(missing(&at, d)),
                Some(PublishedDevice {
                    resource_name: Some(resource),
                    device_id: Some(id),
                    ..
                }) => {
                    ids.entry(resource.clone()).or_default().push(id.clone());
                    origins.insert(id.clone(), origin(name, d));
                }
                // A device not published for CNI (a GPU beside the VF, say).
                Some(_) => {}
            }
        }
    }
    if let Some(extended) = &pod.claims.extended {
        match usable(&extended.claim) {
            Err(e) => problems.push(e),
            Ok(allocated) => {
                for (request, resource) in &extended.requests {
                    let at = format!(
                        "extended resource claim {}/{}, request {request:?}",
                        pod.namespace, extended.claim
                    );
                    match extended_ids(&at, allocated, request, resource, &find) {
                        Ok(more) => {
                            for (id, d) in more {
                                ids.entry(resource.clone()).or_default().push(id.clone());
                                origins.insert(id, origin(&extended.claim, d));
                            }
                        }
                        Err(Some(msg)) => problems.push(pod_err(msg)),
                        Err(None) => {
                            for d in allocated.iter().filter(|d| &d.request == request) {
                                if find(d).is_none() {
                                    problems.push(missing(&at, d));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for list in ids.values_mut() {
        list.sort();
        list.dedup();
    }
    ClaimDevices {
        ids,
        origins,
        problems,
        topology,
    }
}

/// Where the pod's devices sit, from the kubelet (device plugins' NUMA nodes) and its claims
/// (NUMA nodes and PCIe roots the drivers published). Best effort: a source that cannot say
/// says nothing, and the pool simply picks as it would without a hint.
pub async fn pod_topology(
    sources: &DeviceSources,
    source: Option<&impl ClusterSource>,
    pod: &PodInfo,
) -> Topology {
    let claims = async {
        match source {
            Some(source) if !pod.claims.is_empty() => claim_device_ids(source, pod)
                .await
                .map(|c| c.topology)
                .unwrap_or_default(),
            _ => Topology::default(),
        }
    };
    let kubelet = async {
        match sources.socket.exists() {
            true => podresources::pod_devices(
                &sources.socket,
                &pod.namespace,
                &pod.name,
                podresources::TIMEOUT,
            )
            .await
            .map(|d| d.numa_nodes)
            .unwrap_or_default(),
            false => Default::default(),
        }
    };
    let (mut topology, numa) = futures::join!(claims, kubelet);
    topology.numa_nodes.extend(numa);
    topology
}

/// What a pod's ResourceClaims give its networks.
#[derive(Debug, Default)]
pub struct ClaimDevices {
    /// Resource name → device IDs.
    pub ids: DeviceMap,
    /// Device ID → the claim device it is.
    pub origins: BTreeMap<String, ClaimDevice>,
    /// What kept claims or devices from counting.
    pub problems: Vec<MetaError>,
    /// Where the devices of the pod's own claims sit, network or not (a GPU beside the VF).
    pub topology: Topology,
}

/// Where a pod's devices sit: what a pool's VF should be near.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub numa_nodes: std::collections::BTreeSet<i64>,
    pub pcie_roots: std::collections::BTreeSet<String>,
}

impl Topology {
    pub fn is_empty(&self) -> bool {
        self.numa_nodes.is_empty() && self.pcie_roots.is_empty()
    }

    /// The SR-IOV delegate's `topologyHint`.
    pub fn hint(&self) -> Value {
        serde_json::json!({"numaNodes": self.numa_nodes, "pcieRoots": self.pcie_roots})
    }
}

/// The device IDs a pod's networks may take, and which of them are devices of its claims.
#[derive(Debug, Default)]
pub struct PodDeviceIds {
    pub ids: DeviceMap,
    pub origins: BTreeMap<String, ClaimDevice>,
}

/// The IDs of the devices serving `request` of the extended resource claim, each published
/// under exactly `resource`. Err(Some) for a mapping that can never hold, Err(None) when a
/// device is in no slice yet.
fn extended_ids<'a>(
    at: &str,
    allocated: &'a [AllocatedDevice],
    request: &str,
    resource: &str,
    find: &impl Fn(&AllocatedDevice) -> Option<&'a PublishedDevice>,
) -> Result<Vec<(String, &'a AllocatedDevice)>, Option<String>> {
    let served: Vec<&AllocatedDevice> = allocated
        .iter()
        .filter(|d| d.request == request && !d.admin_access)
        .collect();
    if served.is_empty() {
        return Err(Some(format!("{at}: no device allocated")));
    }
    let mut out = Vec::new();
    for d in served {
        let p = find(d).ok_or(None)?;
        match (&p.resource_name, &p.device_id) {
            (Some(r), Some(id)) if r == resource => out.push((id.clone(), d)),
            _ => {
                return Err(Some(format!(
                    "{at}: device {}/{}/{} must publish {RESOURCE_NAME_ATTRIBUTE} {resource:?} \
                     and a {DEVICE_ID_ATTRIBUTE}",
                    d.driver, d.pool, d.device
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_checkpoint_layouts_are_read_and_sorted() {
        let text = r#"{"Data":{"PodDeviceEntries":[
          {"PodUID":"u1","ContainerName":"c","ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:af:06.1","0000:af:06.0"]}},
          {"PodUID":"u1","ContainerName":"d","ResourceName":"intel.com/sriov","DeviceIDs":["0000:af:06.3"]},
          {"PodUID":"u2","ContainerName":"c","ResourceName":"intel.com/sriov","DeviceIDs":["0000:af:06.2"]}
        ],"RegisteredDevices":{}},"Checksum":1}"#;
        let ids = parse_checkpoint(text, "u1").unwrap();
        assert_eq!(
            ids["intel.com/sriov"],
            vec!["0000:af:06.0", "0000:af:06.1", "0000:af:06.3"]
        );
        assert!(parse_checkpoint(text, "nobody").unwrap().is_empty());
        assert!(parse_checkpoint("{", "u1").is_err());
    }

    mod claims {
        use super::super::*;
        use crate::call::source::dra::{AllocatedDevice, ExtendedClaim, PodClaims};

        const VF: &str = "sriov.multinet.io";
        const GPU: &str = "gpu.example.com";

        fn pod(names: &[&str]) -> PodInfo {
            PodInfo {
                namespace: "team".into(),
                name: "web".into(),
                uid: Some("pod-uid".into()),
                node_name: Some("node-a".into()),
                claims: PodClaims {
                    names: names.iter().map(|s| s.to_string()).collect(),
                    extended: None,
                },
                ..Default::default()
            }
        }

        fn allocated(driver: &str, device: &str, request: &str) -> AllocatedDevice {
            AllocatedDevice {
                request: request.into(),
                driver: driver.into(),
                pool: "node-a".into(),
                device: device.into(),
                admin_access: false,
            }
        }

        /// A claim made from the pod's template (the pod is its controller).
        fn claim(reserved_for: &[&str], devices: Vec<AllocatedDevice>) -> Option<ClaimInfo> {
            Some(ClaimInfo {
                reserved_for: reserved_for.iter().map(|s| s.to_string()).collect(),
                controller: Some("pod-uid".into()),
                allocated: Some(devices),
            })
        }

        fn published(
            driver: &str,
            device: &str,
            generation: i64,
            attrs: Option<(&str, &str)>,
        ) -> PublishedDevice {
            PublishedDevice {
                driver: driver.into(),
                pool: "node-a".into(),
                generation,
                name: device.into(),
                resource_name: attrs.map(|a| a.0.to_string()),
                device_id: attrs.map(|a| a.1.to_string()),
                ..Default::default()
            }
        }

        fn slices() -> Vec<PublishedDevice> {
            vec![
                published(VF, "vf-1", 1, Some(("multinet.io/fast", "0000:af:06.1"))),
                published(VF, "vf-0", 1, Some(("multinet.io/fast", "0000:af:06.0"))),
                published(VF, "vf-9", 1, Some(("multinet.io/slow", "0000:af:06.9"))),
                published(GPU, "gpu-0", 1, None),
            ]
        }

        fn messages(problems: &[MetaError]) -> Vec<String> {
            problems.iter().map(|p| p.to_string()).collect()
        }

        #[test]
        fn devices_are_keyed_by_their_published_resource_name_and_sorted() {
            let claims = BTreeMap::from([
                (
                    "nics".to_string(),
                    claim(
                        &["pod-uid"],
                        vec![
                            allocated(VF, "vf-1", "a"),
                            allocated(VF, "vf-0", "b"),
                            allocated(VF, "vf-9", "c"),
                        ],
                    ),
                ),
                // A GPU in the same pod: not published for CNI, quietly not a network device.
                (
                    "gpu".to_string(),
                    claim(&["pod-uid"], vec![allocated(GPU, "gpu-0", "g")]),
                ),
            ]);
            let ClaimDevices { ids, problems, .. } =
                map_claim_devices(&pod(&["nics", "gpu"]), &claims, &slices());
            assert_eq!(ids["multinet.io/fast"], ["0000:af:06.0", "0000:af:06.1"]);
            assert_eq!(ids["multinet.io/slow"], ["0000:af:06.9"]);
            assert_eq!(ids.len(), 2);
            assert!(problems.is_empty(), "{:?}", messages(&problems));
        }

        #[test]
        fn only_the_pods_own_claims_count() {
            let mut shared = claim(&["pod-uid", "other-pod"], vec![allocated(VF, "vf-0", "a")]);
            shared.as_mut().unwrap().controller = None;
            let mut named_alone = shared.clone();
            named_alone.as_mut().unwrap().reserved_for = vec!["pod-uid".into()];
            let claims = BTreeMap::from([
                (
                    "theirs".to_string(),
                    claim(&["other-pod"], vec![allocated(VF, "vf-1", "a")]),
                ),
                ("shared".to_string(), shared),
                ("later".to_string(), {
                    let mut c = claim(&["pod-uid"], vec![]);
                    c.as_mut().unwrap().allocated = None;
                    c
                }),
                ("gone".to_string(), None),
            ]);
            let ClaimDevices { ids, problems, .. } = map_claim_devices(
                &pod(&["theirs", "shared", "later", "gone"]),
                &claims,
                &slices(),
            );
            assert!(ids.is_empty(), "{ids:?}");
            let problems = messages(&problems);
            for want in [
                "team/theirs is not reserved for this pod",
                "team/shared is shared with other pods",
                "team/later has no device allocation",
                "team/gone not found",
            ] {
                assert!(
                    problems.iter().any(|p| p.contains(want)),
                    "{want}: {problems:?}"
                );
            }
            // A claim the pod names directly counts when it is reserved for this pod alone.
            let claims = BTreeMap::from([("alone".to_string(), named_alone)]);
            let ClaimDevices { ids, .. } = map_claim_devices(&pod(&["alone"]), &claims, &slices());
            assert_eq!(ids["multinet.io/fast"], ["0000:af:06.0"]);
            // A pod without a UID cannot be checked against any claim.
            let mut no_uid = pod(&["alone"]);
            no_uid.uid = None;
            let ClaimDevices { ids, problems, .. } = map_claim_devices(&no_uid, &claims, &slices());
            assert!(ids.is_empty());
            assert!(messages(&problems)[0].contains("the pod has no UID"));
        }

        #[test]
        fn admin_access_devices_are_no_pods_own() {
            let mut d = allocated(VF, "vf-0", "a");
            d.admin_access = true;
            let claims = BTreeMap::from([("admin".to_string(), claim(&["pod-uid"], vec![d]))]);
            let ClaimDevices { ids, problems, .. } =
                map_claim_devices(&pod(&["admin"]), &claims, &slices());
            assert!(ids.is_empty() && problems.is_empty());
        }

        #[test]
        fn only_this_nodes_newest_slices_count() {
            let claims = BTreeMap::from([(
                "nics".to_string(),
                claim(&["pod-uid"], vec![allocated(VF, "vf-0", "a")]),
            )]);
            // Generation 1 said vf-0 was 06.0; generation 2 renumbered it.
            let mut newer = slices();
            newer.push(published(
                VF,
                "vf-0",
                2,
                Some(("multinet.io/fast", "0000:af:06.4")),
            ));
            let ClaimDevices { ids, .. } = map_claim_devices(&pod(&["nics"]), &claims, &newer);
            assert_eq!(ids["multinet.io/fast"], ["0000:af:06.4"]);
            // A device absent from every slice is a problem to retry, not a guess.
            let ClaimDevices { ids, problems, .. } =
                map_claim_devices(&pod(&["nics"]), &claims, &[]);
            assert!(ids.is_empty());
            assert!(matches!(&problems[0], MetaError::Api(m) if m.contains("in no ResourceSlice")));
        }

        #[test]
        fn the_extended_resource_claim_maps_strictly() {
            let mut p = pod(&[]);
            p.claims.extended = Some(ExtendedClaim {
                claim: "web-extended".into(),
                requests: vec![("container-0-request-0".into(), "multinet.io/fast".into())],
            });
            let claims = |device: &str| {
                BTreeMap::from([(
                    "web-extended".to_string(),
                    claim(
                        &["pod-uid"],
                        vec![allocated(VF, device, "container-0-request-0")],
                    ),
                )])
            };
            let ClaimDevices { ids, problems, .. } =
                map_claim_devices(&p, &claims("vf-1"), &slices());
            assert_eq!(ids["multinet.io/fast"], ["0000:af:06.1"]);
            assert!(problems.is_empty());
            // A device published under another resource name is a problem naming the request.
            let ClaimDevices { ids, problems, .. } =
                map_claim_devices(&p, &claims("vf-9"), &slices());
            assert!(ids.is_empty());
            let problems = messages(&problems);
            assert!(
                problems[0].contains("container-0-request-0"),
                "{problems:?}"
            );
            assert!(problems[0].contains("multinet.io/fast"), "{problems:?}");
        }
    }

    mod sources {
        use super::super::*;
        use multinet_podresources::proto::{ContainerDevices, ContainerResources, PodResources};
        use multinet_podresources::testing::{Behavior, FakeKubelet};

        const RESOURCE: &str = "intel.com/sriov";

        fn pod() -> PodInfo {
            PodInfo {
                namespace: "team".into(),
                name: "web".into(),
                uid: Some("u1".into()),
                ..Default::default()
            }
        }

        const NO_SOURCE: Option<&crate::call::source::AnySource> = None;

        fn net(resource: Option<&str>) -> LoadedNetwork {
            LoadedNetwork {
                key: "team/vf".into(),
                conf: serde_json::json!({"type": "sriov"}).into(),
                resource_name: resource.map(str::to_string),
            }
        }

        fn kubelet_pod(ids: &[&str]) -> PodResources {
            PodResources {
                name: "web".into(),
                namespace: "team".into(),
                containers: vec![ContainerResources {
                    name: "app".into(),
                    devices: vec![ContainerDevices {
                        resource_name: RESOURCE.into(),
                        device_ids: ids.iter().map(|s| s.to_string()).collect(),
                        topology: None,
                    }],
                    ..Default::default()
                }],
            }
        }

        /// A checkpoint that gives the pod a different device than the fake kubelet does.
        fn sources(dir: &tempfile::TempDir, socket: PathBuf) -> DeviceSources {
            let checkpoint = dir.path().join("checkpoint");
            std::fs::write(
                &checkpoint,
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u1","ContainerName":"app",
                   "ResourceName":"intel.com/sriov","DeviceIDs":["0000:af:06.7"]}]},"Checksum":1}"#,
            )
            .unwrap();
            DeviceSources { socket, checkpoint }
        }

        async fn ids(
            sources: &DeviceSources,
            resource: Option<&str>,
        ) -> Result<Vec<String>, MetaError> {
            let cluster = net(None);
            let map = device_ids_from(
                sources,
                NO_SOURCE,
                Some(&pod()),
                &cluster,
                &[net(resource)],
                &[],
            )
            .await?;
            Ok(map.ids.get(RESOURCE).cloned().unwrap_or_default())
        }

        #[tokio::test]
        async fn the_kubelet_socket_is_asked_first() {
            let k = FakeKubelet::start(Behavior::Pods(vec![kubelet_pod(&[
                "0000:af:06.2",
                "0000:af:06.1",
            ])]))
            .await;
            let dir = tempfile::tempdir().unwrap();
            let s = sources(&dir, k.socket.clone());
            assert_eq!(
                ids(&s, Some(RESOURCE)).await.unwrap(),
                vec!["0000:af:06.1", "0000:af:06.2"]
            );
            assert_eq!(k.calls().len(), 1);
        }

        #[tokio::test]
        async fn a_missing_or_dead_socket_falls_back_to_the_checkpoint() {
            let dir = tempfile::tempdir().unwrap();
            let s = sources(&dir, dir.path().join("no-kubelet.sock"));
            assert_eq!(ids(&s, Some(RESOURCE)).await.unwrap(), vec!["0000:af:06.7"]);
            let stale = dir.path().join("stale.sock");
            drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
            let s = sources(&dir, stale);
            assert_eq!(ids(&s, Some(RESOURCE)).await.unwrap(), vec!["0000:af:06.7"]);
        }

        #[tokio::test]
        async fn a_kubelet_error_is_an_error_naming_the_socket_not_a_fallback() {
            let k = FakeKubelet::start(Behavior::Status(14, "shutting down")).await;
            let dir = tempfile::tempdir().unwrap();
            let s = sources(&dir, k.socket.clone());
            let err = ids(&s, Some(RESOURCE)).await.unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&k.socket.display().to_string()), "{msg}");
            assert!(msg.contains("shutting down"), "{msg}");
            assert_eq!(err.to_cni().code, multinet_cni::ErrorCode::Io);
        }

        #[tokio::test]
        async fn nothing_is_asked_when_no_network_needs_a_device() {
            let k = FakeKubelet::start(Behavior::Hang).await;
            let dir = tempfile::tempdir().unwrap();
            let s = sources(&dir, k.socket.clone());
            assert_eq!(ids(&s, None).await.unwrap(), Vec::<String>::new());
            assert!(k.calls().is_empty());
        }
    }
}
