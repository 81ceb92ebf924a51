//! Topology-aware choice of a pool's VF: when the pod's other devices (a GPU, another VF) are
//! known to sit on some NUMA nodes or under some PCIe roots, a free VF under the same PCIe root
//! is taken first, then one on the same NUMA node, then any. The meta-plugin hands the hint in
//! the delegate config as `topologyHint`, from what the kubelet and DRA say of the pod's devices;
//! it is a preference only, never a reason to refuse a VF.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SriovError};
use crate::sysfs::VfDevice;

/// The config key holding the hint.
pub const TOPOLOGY_HINT_KEY: &str = "topologyHint";

/// Where the pod's other devices are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyHint {
    #[serde(default)]
    pub numa_nodes: Vec<i32>,
    /// `pci<domain>:<bus>`, as `resource.kubernetes.io/pcieRoot` spells it.
    #[serde(default)]
    pub pcie_roots: Vec<String>,
}

impl TopologyHint {
    pub fn from_value(key: &str, v: &Value) -> Result<TopologyHint> {
        serde_json::from_value(v.clone()).map_err(|_| {
            SriovError::config(
                key,
                "must be {\"numaNodes\": [integers], \"pcieRoots\": [strings]}",
            )
        })
    }

    pub fn is_empty(&self) -> bool {
        self.numa_nodes.is_empty() && self.pcie_roots.is_empty()
    }

    /// How well `vf` sits with the pod's devices: 2 under one of their PCIe roots, 1 on one of
    /// their NUMA nodes, 0 elsewhere or unknown.
    pub fn affinity(&self, vf: &VfDevice) -> u8 {
        if vf
            .pcie_root
            .as_ref()
            .is_some_and(|r| self.pcie_roots.contains(r))
        {
            2
        } else if vf.numa_node.is_some_and(|n| self.numa_nodes.contains(&n)) {
            1
        } else {
            0
        }
    }

    /// `members` best first (stable: equal ones keep their order).
    pub fn order(&self, mut members: Vec<VfDevice>) -> Vec<VfDevice> {
        members.sort_by_key(|vf| std::cmp::Reverse(self.affinity(vf)));
        members
    }

    /// Why `vf` was a good or a poor choice, for the log.
    pub fn explain(&self, vf: &VfDevice) -> String {
        match self.affinity(vf) {
            2 => format!(
                "under PCIe root {} with the pod's other devices",
                vf.pcie_root.as_deref().unwrap_or_default()
            ),
            1 => format!(
                "on NUMA node {} with the pod's other devices",
                vf.numa_node.unwrap_or_default()
            ),
            _ => format!(
                "no free VF shares a PCIe root {:?} or NUMA node {:?} with the pod's other devices",
                self.pcie_roots, self.numa_nodes
            ),
        }
    }
}
