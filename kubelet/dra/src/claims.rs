//! Which devices of a ResourceClaim are this driver's to prepare (pure): the claim must be the
//! one the kubelet named (same uid) and allocated; results of other drivers or pools are not
//! ours, adminAccess results are left alone.

use k8s_openapi::api::resource::v1::ResourceClaim;
use multinet_sriov::PciAddress;

use crate::names::pci_of;

/// A claim as the kubelet names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub namespace: String,
    pub uid: String,
    pub name: String,
}

impl ClaimRef {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One allocated device of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The claim's request, without a `/subrequest` part.
    pub request: String,
    pub device: String,
    pub pci: PciAddress,
}

/// The devices of `claim` (as read from the API) that `driver` prepares in `pool`, or why the
/// claim cannot be prepared.
pub fn wanted_devices(
    claim: &ResourceClaim,
    asked: &ClaimRef,
    driver: &str,
    pool: &str,
) -> Result<Vec<Wanted>, String> {
    let uid = claim.metadata.uid.as_deref().unwrap_or_default();
    if uid != asked.uid {
        return Err(format!(
            "ResourceClaim {} has uid {uid}, not {}: it was replaced",
            asked.key(),
            asked.uid
        ));
    }
    let Some(allocation) = claim.status.as_ref().and_then(|s| s.allocation.as_ref()) else {
        return Err(format!("ResourceClaim {} is not allocated", asked.key()));
    };
    let results = allocation
        .devices
        .as_ref()
        .and_then(|d| d.results.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in results {
        if r.driver != driver || r.pool != pool || r.admin_access == Some(true) {
            continue;
        }
        let pci = pci_of(&r.device).ok_or_else(|| {
            format!(
                "ResourceClaim {}: device {:?} of pool {pool} is not a device of {driver}",
                asked.key(),
                r.device
            )
        })?;
        let request = r
            .request
            .split_once('/')
            .map_or(&*r.request, |(base, _)| base);
        out.push(Wanted {
            request: request.to_owned(),
            device: r.device.clone(),
            pci,
        });
    }
    Ok(out)
}

/// UIDs of the pods the claim is reserved for.
pub fn reserved_pods(claim: &ResourceClaim) -> Vec<String> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.reserved_for.as_ref())
        .map(|r| {
            r.iter()
                .filter(|c| c.resource == "pods" && c.api_group.as_deref().unwrap_or("").is_empty())
                .map(|c| c.uid.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn asked() -> ClaimRef {
        ClaimRef {
            namespace: "team".into(),
            uid: "u1".into(),
            name: "net".into(),
        }
    }

    fn claim(status: serde_json::Value) -> ResourceClaim {
        serde_json::from_value(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "net", "namespace": "team", "uid": "u1"},
            "spec": {}, "status": status,
        }))
        .unwrap()
    }

    fn result(request: &str, driver: &str, pool: &str, device: &str) -> serde_json::Value {
        json!({"request": request, "driver": driver, "pool": pool, "device": device})
    }

    #[test]
    fn only_our_results_are_wanted() {
        let c = claim(json!({
            "allocation": {"devices": {"results": [
                result("vf", "sriov.multinet.io", "node-1", "pci-0000-af-06-0"),
                result("gpu", "gpu.example.com", "node-1", "gpu-0"),
                result("vf2", "sriov.multinet.io", "node-2", "pci-0000-af-06-1"),
                result("fast/big", "sriov.multinet.io", "node-1", "pci-0000-af-06-2"),
                {"request": "admin", "driver": "sriov.multinet.io", "pool": "node-1",
                 "device": "pci-0000-af-06-3", "adminAccess": true},
            ]}},
            "reservedFor": [
                {"resource": "pods", "name": "p", "uid": "pod-uid"},
                {"apiGroup": "example.com", "resource": "things", "name": "t", "uid": "x"},
            ],
        }));
        let wanted = wanted_devices(&c, &asked(), "sriov.multinet.io", "node-1").unwrap();
        let got: Vec<(&str, &str)> = wanted
            .iter()
            .map(|w| (w.request.as_str(), w.device.as_str()))
            .collect();
        assert_eq!(
            got,
            [("vf", "pci-0000-af-06-0"), ("fast", "pci-0000-af-06-2")]
        );
        assert_eq!(wanted[1].pci.to_string(), "0000:af:06.2");
        assert_eq!(reserved_pods(&c), ["pod-uid"]);
    }

    #[test]
    fn replaced_unallocated_and_foreign_devices_are_refused() {
        let allocated = claim(json!({"allocation": {"devices": {"results": [
            result("vf", "sriov.multinet.io", "node-1", "eth0"),
        ]}}}));
        let err = wanted_devices(&allocated, &asked(), "sriov.multinet.io", "node-1").unwrap_err();
        assert!(
            err.contains("\"eth0\"") && err.contains("not a device"),
            "{err}"
        );

        let other = ClaimRef {
            uid: "u2".into(),
            ..asked()
        };
        let err = wanted_devices(&allocated, &other, "sriov.multinet.io", "node-1").unwrap_err();
        assert!(err.contains("replaced"), "{err}");

        let err = wanted_devices(&claim(json!({})), &asked(), "d", "p").unwrap_err();
        assert!(err.contains("not allocated"), "{err}");
    }
}
