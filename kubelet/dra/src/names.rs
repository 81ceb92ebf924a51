//! Device names in the ResourceSlice: a DNS label made from the VF's PCI address, and back.
//! `0000:af:06.1` is published as `pci-0000-af-06-1`; only that exact spelling maps back, so one
//! VF never has two names.

use multinet_sriov::PciAddress;

const PREFIX: &str = "pci-";

/// The device name of the VF at `pci`: lowercase hex fields joined by `-`.
pub fn device_name(pci: &PciAddress) -> String {
    format!(
        "{PREFIX}{:04x}-{:02x}-{:02x}-{:x}",
        pci.domain, pci.bus, pci.device, pci.function
    )
}

/// The PCI address a device name was made from; None for any other name.
pub fn pci_of(name: &str) -> Option<PciAddress> {
    let fields: Vec<&str> = name.strip_prefix(PREFIX)?.split('-').collect();
    let [domain, bus, device, function] = fields.as_slice() else {
        return None;
    };
    let pci: PciAddress = format!("{domain}:{bus}:{device}.{function}").parse().ok()?;
    (device_name(&pci) == name).then_some(pci)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_dns_labels_and_map_back() {
        for s in ["0000:af:06.1", "0000:00:1f.7", "10000:ff:00.0"] {
            let pci: PciAddress = s.parse().unwrap();
            let name = device_name(&pci);
            assert!(name.len() <= 63);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(!name.ends_with('-'));
            assert_eq!(pci_of(&name), Some(pci), "{name}");
        }
        assert_eq!(
            device_name(&"0000:AF:06.1".parse().unwrap()),
            "pci-0000-af-06-1"
        );
    }

    #[test]
    fn other_spellings_and_names_are_not_ours() {
        for name in [
            "pci-0000-AF-06-1",
            "pci-000-af-06-1",
            "pci-0000-af-6-1",
            "pci-0000-af-06-8",
            "pci-0000-af-06",
            "pci-0000-af-06-1-0",
            "gpu-0",
            "0000-af-06-1",
            "",
        ] {
            assert_eq!(pci_of(name), None, "{name}");
        }
    }
}
