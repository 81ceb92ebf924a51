//! What multinet reads of Dynamic Resource Allocation (resource.k8s.io/v1): which ResourceClaims
//! a pod uses, which devices each claim was allocated, and the two attributes a DRA driver
//! publishes for CNI on each device of its ResourceSlices (`k8s.cni.cncf.io/deviceID` and
//! `k8s.cni.cncf.io/resourceName`, the keys Multus reads). Both cluster sources build these from
//! the API's own types, so the API and a local folder are read alike.

use k8s_openapi::api::core::v1::{
    PodExtendedResourceClaimStatus, PodResourceClaim, PodResourceClaimStatus,
};
use k8s_openapi::api::resource::v1::{
    AllocatedDeviceStatus, Device, NetworkDeviceData, ResourceClaim, ResourceSlice,
};

/// The device attribute holding the ID a delegate gets as `deviceID` (a VF's PCI address).
pub const DEVICE_ID_ATTRIBUTE: &str = "k8s.cni.cncf.io/deviceID";
/// The device attribute naming the resource a NAD's `k8s.v1.cni.cncf.io/resourceName` matches.
pub const RESOURCE_NAME_ATTRIBUTE: &str = "k8s.cni.cncf.io/resourceName";

/// The ResourceClaims a pod's devices come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodClaims {
    /// ResourceClaim objects in the pod's namespace: those the pod names itself
    /// (`spec.resourceClaims[].resourceClaimName`) and those made from its templates
    /// (`status.resourceClaimStatuses[].resourceClaimName`), each once.
    pub names: Vec<String>,
    /// The claim the scheduler made for the pod's extended resources.
    pub extended: Option<ExtendedClaim>,
}

/// `status.extendedResourceClaimStatus`: one claim, and which of its requests serves which
/// extended resource name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtendedClaim {
    pub claim: String,
    /// (request name, resource name).
    pub requests: Vec<(String, String)>,
}

impl PodClaims {
    pub fn of(
        spec: Option<&[PodResourceClaim]>,
        statuses: Option<&[PodResourceClaimStatus]>,
        extended: Option<&PodExtendedResourceClaimStatus>,
    ) -> Self {
        let mut names: Vec<String> = Vec::new();
        let direct = spec
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.resource_claim_name.clone());
        let generated = statuses
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.resource_claim_name.clone());
        for name in direct.chain(generated) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        PodClaims {
            names,
            extended: extended.map(|e| ExtendedClaim {
                claim: e.resource_claim_name.clone(),
                requests: e
                    .request_mappings
                    .iter()
                    .map(|m| (m.request_name.clone(), m.resource_name.clone()))
                    .collect(),
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.extended.is_none()
    }
}

/// One ResourceClaim as far as device IDs go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimInfo {
    /// UIDs of the objects the claim is reserved for (`status.reservedFor`): a pod uses a
    /// claim's devices only when the scheduler reserved the claim for it.
    pub reserved_for: Vec<String>,
    /// UID of the claim's controller (the pod whose template made it), if it has one.
    pub controller: Option<String>,
    /// `status.allocation.devices.results`; None while the claim is not allocated.
    pub allocated: Option<Vec<AllocatedDevice>>,
}

/// One allocated device of a claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocatedDevice {
    /// The request it serves (`<request>` or `<request>/<subrequest>`).
    pub request: String,
    pub driver: String,
    pub pool: String,
    pub device: String,
    /// An admin-access allocation: the device may be in use by other pods.
    pub admin_access: bool,
}

impl From<&ResourceClaim> for ClaimInfo {
    fn from(claim: &ResourceClaim) -> Self {
        let status = claim.status.as_ref();
        ClaimInfo {
            reserved_for: status
                .and_then(|s| s.reserved_for.as_ref())
                .map(|r| r.iter().map(|c| c.uid.clone()).collect())
                .unwrap_or_default(),
            controller: claim
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            allocated: status
                .and_then(|s| s.allocation.as_ref())
                .and_then(|a| a.devices.as_ref())
                .and_then(|d| d.results.as_ref())
                .map(|results| {
                    results
                        .iter()
                        .map(|r| AllocatedDevice {
                            request: r.request.clone(),
                            driver: r.driver.clone(),
                            pool: r.pool.clone(),
                            device: r.device.clone(),
                            admin_access: r.admin_access == Some(true),
                        })
                        .collect()
                }),
        }
    }
}

/// One device a driver published on a node, with the attributes CNI reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedDevice {
    pub driver: String,
    pub pool: String,
    /// The pool's generation: when a pool changes, slices of an older generation are stale.
    pub generation: i64,
    pub name: String,
    pub device_id: Option<String>,
    pub resource_name: Option<String>,
    /// `resource.kubernetes.io/numaNode`, or a driver's own `<domain>/numaNode`.
    pub numa_node: Option<i64>,
    /// `resource.kubernetes.io/pcieRoot`.
    pub pcie_root: Option<String>,
}

/// The devices of `slice` when it is a slice of node `node` (a slice of another node, or of
/// every node, publishes no device this node may hand to a pod).
pub fn published_on(slice: &ResourceSlice, node: &str) -> Vec<PublishedDevice> {
    let spec = &slice.spec;
    if spec.node_name.as_deref() != Some(node) {
        return Vec::new();
    }
    spec.devices
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|d| PublishedDevice {
            driver: spec.driver.clone(),
            pool: spec.pool.name.clone(),
            generation: spec.pool.generation,
            name: d.name.clone(),
            device_id: string_attribute(d, DEVICE_ID_ATTRIBUTE),
            resource_name: string_attribute(d, RESOURCE_NAME_ATTRIBUTE),
            numa_node: numa_attribute(d),
            pcie_root: string_attribute(d, PCIE_ROOT_ATTRIBUTE),
        })
        .collect()
}

/// The standard attribute naming a device's PCIe root complex.
pub const PCIE_ROOT_ATTRIBUTE: &str = "resource.kubernetes.io/pcieRoot";
const NUMA_NODE_ATTRIBUTE: &str = "resource.kubernetes.io/numaNode";

/// The standard NUMA attribute, else any `<domain>/numaNode` (drivers published their own
/// before the standard name existed).
fn numa_attribute(device: &Device) -> Option<i64> {
    let attrs = device.attributes.as_ref()?;
    attrs
        .get(NUMA_NODE_ATTRIBUTE)
        .and_then(|v| v.int)
        .or_else(|| {
            attrs
                .iter()
                .find(|(k, _)| k.ends_with("/numaNode"))
                .and_then(|(_, v)| v.int)
        })
}

fn string_attribute(device: &Device, key: &str) -> Option<String> {
    device.attributes.as_ref()?.get(key)?.string.clone()
}

/// Where a device ID handed to a network came from: a device of a pod's ResourceClaim, so that
/// after ADD its network data can be written to the claim's `status.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimDevice {
    pub claim: String,
    pub driver: String,
    pub pool: String,
    pub device: String,
}

/// KEP-4817 `NetworkDeviceData`: what the pod's network made of the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkData {
    pub interface_name: String,
    /// CIDR strings (`192.0.2.5/24`).
    pub ips: Vec<String>,
    pub hardware_address: String,
}

/// `status.devices` of a claim with `entries` written in: an entry for the same driver, pool
/// and device is replaced (its conditions and data kept), others are left as they are.
pub fn with_network_data(
    devices: Vec<AllocatedDeviceStatus>,
    entries: &[(ClaimDevice, NetworkData)],
) -> Vec<AllocatedDeviceStatus> {
    let mut out = devices;
    for (d, data) in entries {
        let network_data = Some(NetworkDeviceData {
            interface_name: Some(data.interface_name.clone()).filter(|s| !s.is_empty()),
            ips: Some(data.ips.clone()).filter(|ips| !ips.is_empty()),
            hardware_address: Some(data.hardware_address.clone()).filter(|s| !s.is_empty()),
        });
        match out
            .iter_mut()
            .find(|s| s.driver == d.driver && s.pool == d.pool && s.device == d.device)
        {
            Some(existing) => existing.network_data = network_data,
            None => out.push(AllocatedDeviceStatus {
                driver: d.driver.clone(),
                pool: d.pool.clone(),
                device: d.device.clone(),
                network_data,
                ..Default::default()
            }),
        }
    }
    out
}
