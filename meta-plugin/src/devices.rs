//! Device IDs (SR-IOV VF PCI addresses) that the kubelet gave the pod, for networks whose NAD
//! names a `resourceName`. Read from the kubelet's device-plugin checkpoint file; IDs are sorted
//! and handed out in network order by the plan.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::MetaError;
use crate::plan::LoadedNetwork;
use crate::source::PodInfo;

pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

fn checkpoint_path() -> PathBuf {
    std::env::var_os("MULTINET_KUBELET_CHECKPOINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT))
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

/// Device IDs for the networks that need them; reads nothing when none does.
pub fn device_ids_for(
    pod: Option<&PodInfo>,
    cluster: &LoadedNetwork,
    defaults: &[LoadedNetwork],
    selected: &[(multinet_crds::NetworkSelection, LoadedNetwork)],
) -> Result<BTreeMap<String, Vec<String>>, MetaError> {
    let needs = std::iter::once(cluster)
        .chain(defaults)
        .chain(
            selected
                .iter()
                .filter(|(s, _)| s.device_id.is_none())
                .map(|(_, n)| n),
        )
        .any(|n| n.resource_name.is_some());
    let Some(uid) = pod.and_then(|p| p.uid.as_deref()) else {
        return Ok(BTreeMap::new());
    };
    if !needs {
        return Ok(BTreeMap::new());
    }
    let path = checkpoint_path();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| MetaError::Io(format!("kubelet checkpoint {}: {e}", path.display())))?;
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
}
