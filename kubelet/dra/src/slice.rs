//! What this node publishes in its ResourceSlices (pure): one device per VF with the attributes
//! a claim's CEL selectors and Multus read, split into slices of at most [`MAX_DEVICES`].

use std::collections::BTreeMap;

use k8s_openapi::api::resource::v1::{Device, DeviceAttribute, ResourcePool, ResourceSliceSpec};
use multinet_sriov::VfDevice;

use crate::names::device_name;

/// The API's limit of devices in one slice.
pub const MAX_DEVICES: usize = 128;
/// The API's limit on a string attribute's value.
const MAX_STRING: usize = 64;
/// Standard attribute names (k8s.io/dynamic-resource-allocation `deviceattribute`).
pub const PCIE_ROOT: &str = "resource.kubernetes.io/pcieRoot";
pub const PCI_BUS_ID: &str = "resource.kubernetes.io/pciBusID";
/// What Multus reads from a device to find its deviceID and the NAD it belongs to.
pub const CNI_DEVICE_ID: &str = "k8s.cni.cncf.io/deviceID";
pub const CNI_RESOURCE_NAME: &str = "k8s.cni.cncf.io/resourceName";

/// Whose slices these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The DRA driver name, also the domain of the driver's own attributes.
    pub driver: String,
    /// This node's name, also the pool's name.
    pub node: String,
    /// The `k8s.cni.cncf.io/resourceName` of every device (a NAD's resourceName annotation).
    pub resource_name: String,
}

/// One VF as the slice shows it (its PCIe root is `vf.pcie_root`, read by the sysfs layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfEntry {
    pub vf: VfDevice,
}

fn string(value: &str) -> DeviceAttribute {
    let mut end = value.len().min(MAX_STRING);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    DeviceAttribute {
        string: Some(value[..end].to_owned()),
        ..Default::default()
    }
}

fn int(value: i64) -> DeviceAttribute {
    DeviceAttribute {
        int: Some(value),
        ..Default::default()
    }
}

impl Publisher {
    /// The device of one VF; attributes sysfs does not tell are left out.
    pub fn device(&self, entry: &VfEntry) -> Device {
        let vf = &entry.vf;
        let own = |id: &str| format!("{}/{id}", self.driver);
        let mut attrs: BTreeMap<String, DeviceAttribute> = BTreeMap::new();
        let pci = vf.addr.to_string();
        attrs.insert(own("pciAddress"), string(&pci));
        attrs.insert(own("pfPciAddress"), string(&vf.pf.to_string()));
        attrs.insert(own("vfIndex"), int(i64::from(vf.index)));
        let (vendor, device_id) = (vf.ids.vendor_hex(), vf.ids.device_hex());
        let optional = [
            ("pfName", vf.pf_netdev.as_deref()),
            ("vendor", vendor.as_deref()),
            ("deviceID", device_id.as_deref()),
            ("vendorName", vf.ids.vendor_name()),
            ("deviceName", vf.ids.device_name()),
            ("driver", vf.driver.as_deref()),
            ("linkType", vf.link_type.as_deref()),
        ];
        for (id, value) in optional {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attrs.insert(own(id), string(value));
            }
        }
        // sysfs says -1 when the platform has no NUMA information.
        if let Some(numa) = vf.numa_node.filter(|n| *n >= 0) {
            attrs.insert(own("numaNode"), int(i64::from(numa)));
        }
        if let Some(root) = &entry.vf.pcie_root {
            attrs.insert(PCIE_ROOT.to_owned(), string(root));
        }
        attrs.insert(PCI_BUS_ID.to_owned(), string(&pci));
        attrs.insert(CNI_DEVICE_ID.to_owned(), string(&pci));
        attrs.insert(CNI_RESOURCE_NAME.to_owned(), string(&self.resource_name));
        Device {
            name: device_name(&vf.addr),
            attributes: Some(attrs),
            ..Default::default()
        }
    }

    /// The specs of the pool's slices at `generation`: the VFs in PCI order, at most
    /// [`MAX_DEVICES`] a slice; a node without VFs publishes one empty slice, so the pool exists.
    pub fn slice_specs(&self, generation: i64, entries: &[VfEntry]) -> Vec<ResourceSliceSpec> {
        let mut entries: Vec<&VfEntry> = entries.iter().collect();
        entries.sort_by_key(|e| e.vf.addr);
        let chunks: Vec<Vec<Device>> = if entries.is_empty() {
            vec![Vec::new()]
        } else {
            entries
                .chunks(MAX_DEVICES)
                .map(|chunk| chunk.iter().map(|e| self.device(e)).collect())
                .collect()
        };
        let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        chunks
            .into_iter()
            .map(|devices| ResourceSliceSpec {
                driver: self.driver.clone(),
                node_name: Some(self.node.clone()),
                pool: ResourcePool {
                    name: self.node.clone(),
                    generation,
                    resource_slice_count: count,
                },
                devices: Some(devices),
                ..Default::default()
            })
            .collect()
    }

    /// The `generateName` of this node's slices: node and driver, cut to leave room for the
    /// API server's suffix.
    pub fn generate_name(&self) -> String {
        let mut prefix: String = format!("{}-{}", self.node, self.driver)
            .chars()
            .take(200)
            .collect();
        while prefix.ends_with(['.', '-']) {
            prefix.pop();
        }
        prefix.push('-');
        prefix
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use multinet_sriov::PciIds;

    fn publisher() -> Publisher {
        Publisher {
            driver: "sriov.multinet.io".into(),
            node: "node-1".into(),
            resource_name: "sriov.multinet.io".into(),
        }
    }

    fn vf(addr: &str, index: u32) -> VfEntry {
        VfEntry {
            vf: VfDevice {
                addr: addr.parse().unwrap(),
                pf: "0000:af:00.1".parse().unwrap(),
                index,
                pf_netdev: Some("ens1f1".into()),
                netdev: Some(format!("ens1f1v{index}")),
                driver: Some("iavf".into()),
                ids: PciIds {
                    vendor: Some(0x8086),
                    device: Some(0x154c),
                },
                numa_node: Some(1),
                iommu_group: None,
                link_type: Some("ether".into()),
                pcie_root: Some("pci0000:ae".into()),
            },
        }
    }

    fn s(d: &Device, key: &str) -> Option<String> {
        d.attributes.as_ref()?.get(key)?.string.clone()
    }

    fn i(d: &Device, key: &str) -> Option<i64> {
        d.attributes.as_ref()?.get(key)?.int
    }

    #[test]
    fn a_vf_becomes_a_device_with_its_attributes() {
        let d = publisher().device(&vf("0000:af:06.3", 3));
        assert_eq!(d.name, "pci-0000-af-06-3");
        let own = |id: &str| format!("sriov.multinet.io/{id}");
        assert_eq!(s(&d, &own("pciAddress")).unwrap(), "0000:af:06.3");
        assert_eq!(s(&d, &own("pfPciAddress")).unwrap(), "0000:af:00.1");
        assert_eq!(s(&d, &own("pfName")).unwrap(), "ens1f1");
        assert_eq!(s(&d, &own("vendor")).unwrap(), "8086");
        assert_eq!(s(&d, &own("deviceID")).unwrap(), "154c");
        assert_eq!(s(&d, &own("vendorName")).unwrap(), "Intel Corporation");
        assert!(
            s(&d, &own("deviceName"))
                .unwrap()
                .contains("Virtual Function")
        );
        assert_eq!(s(&d, &own("driver")).unwrap(), "iavf");
        assert_eq!(s(&d, &own("linkType")).unwrap(), "ether");
        assert_eq!(i(&d, &own("numaNode")), Some(1));
        assert_eq!(i(&d, &own("vfIndex")), Some(3));
        assert_eq!(s(&d, PCIE_ROOT).unwrap(), "pci0000:ae");
        assert_eq!(s(&d, PCI_BUS_ID).unwrap(), "0000:af:06.3");
        assert_eq!(s(&d, CNI_DEVICE_ID).unwrap(), "0000:af:06.3");
        assert_eq!(s(&d, CNI_RESOURCE_NAME).unwrap(), "sriov.multinet.io");
        for (key, value) in d.attributes.as_ref().unwrap() {
            assert!(value.string.iter().all(|v| v.len() <= MAX_STRING), "{key}");
        }
    }

    #[test]
    fn unknown_facts_are_left_out() {
        let mut entry = vf("0000:af:06.0", 0);
        entry.vf.numa_node = Some(-1);
        entry.vf.driver = None;
        entry.vf.ids = PciIds::default();
        entry.vf.pcie_root = None;
        let d = publisher().device(&entry);
        let attrs = d.attributes.unwrap();
        for gone in [
            "numaNode",
            "driver",
            "vendor",
            "deviceID",
            "vendorName",
            "deviceName",
        ] {
            assert!(
                !attrs.contains_key(&format!("sriov.multinet.io/{gone}")),
                "{gone}"
            );
        }
        assert!(!attrs.contains_key(PCIE_ROOT));
    }

    #[test]
    fn slices_hold_at_most_128_devices_in_pci_order() {
        let p = publisher();
        let many: Vec<VfEntry> = (0..130u32)
            .rev()
            .map(|n| {
                vf(
                    &format!(
                        "0000:{:02x}:{:02x}.{}",
                        0xb0 + n / 32,
                        n % 32 / 8 * 8,
                        n % 8
                    ),
                    n,
                )
            })
            .collect();
        let specs = p.slice_specs(7, &many);
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].devices.as_ref().unwrap().len(), 128);
        assert_eq!(specs[1].devices.as_ref().unwrap().len(), 2);
        for spec in &specs {
            assert_eq!(spec.pool.generation, 7);
            assert_eq!(spec.pool.resource_slice_count, 2);
            assert_eq!(spec.pool.name, "node-1");
            assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        }
        let names: Vec<&str> = specs
            .iter()
            .flat_map(|s| s.devices.as_ref().unwrap().iter().map(|d| d.name.as_str()))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let empty = p.slice_specs(1, &[]);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].devices.as_ref().unwrap().len(), 0);
    }

    #[test]
    fn generate_names_fit() {
        let mut p = publisher();
        assert_eq!(p.generate_name(), "node-1-sriov.multinet.io-");
        p.node = "n".repeat(253);
        assert!(p.generate_name().len() <= 201);
    }
}
