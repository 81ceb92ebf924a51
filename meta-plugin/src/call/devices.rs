//! Device IDs (SR-IOV VF PCI addresses) that the kubelet gave the pod, for networks whose NAD
//! names a `resourceName`. Asked from the kubelet's pod-resources API when its socket exists,
//! else read from the kubelet's device-plugin checkpoint file; IDs are sorted and handed out in
//! network order by the plan.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::call::plan::LoadedNetwork;
use crate::call::source::PodInfo;
use crate::error::MetaError;
use multinet_podresources::{self as podresources, QueryError};

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

/// Device IDs for the networks that need them; reads nothing when none does. The pod-resources
/// socket is asked first; the checkpoint is used when the socket is missing or nothing listens
/// on it. An answer from the kubelet that is an error is an error, naming the socket.
pub async fn device_ids_for(
    pod: Option<&PodInfo>,
    cluster: &LoadedNetwork,
    defaults: &[LoadedNetwork],
    selected: &[(multinet_crds::NetworkSelection, LoadedNetwork)],
) -> Result<BTreeMap<String, Vec<String>>, MetaError> {
    device_ids_from(&DeviceSources::from_env(), pod, cluster, defaults, selected).await
}

/// [`device_ids_for`] with explicit sources.
pub async fn device_ids_from(
    sources: &DeviceSources,
    pod: Option<&PodInfo>,
    cluster: &LoadedNetwork,
    defaults: &[LoadedNetwork],
    selected: &[(multinet_crds::NetworkSelection, LoadedNetwork)],
) -> Result<BTreeMap<String, Vec<String>>, MetaError> {
    // A selection that names its own deviceID needs the pod's IDs too: it may only name one of
    // them.
    let needs = std::iter::once(cluster)
        .chain(defaults)
        .chain(selected.iter().map(|(_, n)| n))
        .any(|n| n.resource_name.is_some());
    let Some(pod) = pod else {
        return Ok(BTreeMap::new());
    };
    if !needs {
        return Ok(BTreeMap::new());
    }
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
        return Ok(BTreeMap::new());
    };
    let path = &sources.checkpoint;
    let text = std::fs::read_to_string(path)
        .map_err(|e| MetaError::io(format!("kubelet checkpoint {}", path.display()), e))?;
    parse_checkpoint(&text, uid)
        .map_err(|e| MetaError::Decode(format!("kubelet checkpoint {}: {e}", path.display())))
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
                annotations: Default::default(),
            }
        }

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
                    }],
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
            let map =
                device_ids_from(sources, Some(&pod()), &cluster, &[net(resource)], &[]).await?;
            Ok(map.get(RESOURCE).cloned().unwrap_or_default())
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
