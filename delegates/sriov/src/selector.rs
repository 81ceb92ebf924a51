//! VF pools, selected like the SR-IOV device plugin selects its resources: `vendors`,
//! `devices`, `drivers`, `pciAddresses`, `pfNames` (with VF ranges, `"ens1f0#0-3,6"`) and
//! `linkTypes`, all of which must match. Pure: matching works on an already read [`VfDevice`].

use std::ops::RangeInclusive;

use serde_json::Value;

use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use crate::sysfs::VfDevice;

/// One `pfNames` entry: a PF netdev name (compared ignoring case) and optional VF ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfNameSelector {
    pub pf: String,
    /// None selects every VF of the PF.
    pub ranges: Option<Vec<RangeInclusive<u32>>>,
}

impl PfNameSelector {
    /// Parses `"ens1f0"` or `"ens1f0#0,2-7,9"` (inclusive, 0-based).
    pub fn parse(s: &str) -> std::result::Result<PfNameSelector, String> {
        let (pf, ranges) = match s.split_once('#') {
            None => (s, None),
            Some((pf, list)) => {
                let mut ranges = Vec::new();
                for part in list.split(',') {
                    let part = part.trim();
                    let num = |x: &str| {
                        x.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("{s:?}: bad VF index {x:?}"))
                    };
                    let range = match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (num(a)?, num(b)?);
                            if a > b {
                                return Err(format!("{s:?}: range {part:?} runs backwards"));
                            }
                            a..=b
                        }
                        None => {
                            let n = num(part)?;
                            n..=n
                        }
                    };
                    ranges.push(range);
                }
                (pf, Some(ranges))
            }
        };
        if pf.is_empty() {
            return Err(format!("{s:?}: no PF name"));
        }
        Ok(PfNameSelector {
            pf: pf.to_owned(),
            ranges,
        })
    }

    pub fn matches(&self, pf_netdev: &str, vf_index: u32) -> bool {
        self.pf.eq_ignore_ascii_case(pf_netdev)
            && self
                .ranges
                .as_ref()
                .is_none_or(|r| r.iter().any(|r| r.contains(&vf_index)))
    }
}

/// The selectors of a pool; an empty list does not filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selectors {
    /// Lowercase hex without 0x ("8086").
    pub vendors: Vec<String>,
    pub devices: Vec<String>,
    pub drivers: Vec<String>,
    pub pci_addresses: Vec<PciAddress>,
    pub pf_names: Vec<PfNameSelector>,
    pub link_types: Vec<String>,
}

fn norm_hex(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_prefix("0x").unwrap_or(&s);
    format!("{:0>4}", s)
}

impl Selectors {
    /// True when `vf` passes every selector, in the device plugin's order.
    pub fn matches(&self, vf: &VfDevice) -> bool {
        let in_list = |list: &[String], value: Option<String>| {
            list.is_empty()
                || value.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(&v)))
        };
        in_list(&self.vendors, vf.ids.vendor_hex())
            && in_list(&self.devices, vf.ids.device_hex())
            && in_list(&self.drivers, vf.driver.clone())
            && (self.pci_addresses.is_empty() || self.pci_addresses.contains(&vf.addr))
            && (self.pf_names.is_empty()
                || vf
                    .pf_netdev
                    .as_deref()
                    .is_some_and(|pf| self.pf_names.iter().any(|s| s.matches(pf, vf.index))))
            && in_list(&self.link_types, vf.link_type.clone())
    }
}

/// A pool named in a NAD: `"pool": {"name": "...", "pfNames": [...], ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    pub selectors: Selectors,
}

impl PoolSpec {
    /// Parses the `pool` object; `key` is the key as the config wrote it, for messages.
    pub fn from_value(key: &str, v: &Value) -> Result<PoolSpec> {
        let obj = v
            .as_object()
            .ok_or_else(|| SriovError::config(key, format!("must be an object, not {v}")))?;
        let sub = |k: &str| format!("{key}.{k}");
        let mut name = None;
        let mut sel = Selectors::default();
        for (k, val) in obj {
            let strings = || -> Result<Vec<String>> {
                let list = val.as_array().ok_or_else(|| {
                    SriovError::config(sub(k), format!("must be a list of strings, not {val}"))
                })?;
                list.iter()
                    .map(|x| {
                        x.as_str().map(str::to_owned).ok_or_else(|| {
                            SriovError::config(
                                sub(k),
                                format!("must be a list of strings, not {val}"),
                            )
                        })
                    })
                    .collect()
            };
            match k.to_ascii_lowercase().as_str() {
                "name" => {
                    name =
                        Some(val.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                            SriovError::config(sub(k), "must be a non-empty string")
                        })?);
                }
                "vendors" => sel.vendors = strings()?.iter().map(|s| norm_hex(s)).collect(),
                "devices" => sel.devices = strings()?.iter().map(|s| norm_hex(s)).collect(),
                "drivers" => sel.drivers = strings()?,
                "linktypes" => sel.link_types = strings()?,
                "pciaddresses" => {
                    sel.pci_addresses = strings()?
                        .iter()
                        .map(|s| s.parse().map_err(|e: String| SriovError::config(sub(k), e)))
                        .collect::<Result<_>>()?;
                }
                "pfnames" => {
                    sel.pf_names = strings()?
                        .iter()
                        .map(|s| {
                            PfNameSelector::parse(s).map_err(|e| SriovError::config(sub(k), e))
                        })
                        .collect::<Result<_>>()?;
                }
                _ => {
                    return Err(SriovError::config(
                        sub(k),
                        "unknown or unsupported selector (supported: name, vendors, devices, \
                         drivers, pciAddresses, pfNames, linkTypes)",
                    ));
                }
            }
        }
        let name = name.ok_or_else(|| SriovError::config(sub("name"), "a pool needs a name"))?;
        Ok(PoolSpec {
            name: name.to_owned(),
            selectors: sel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::PciIds;
    use serde_json::json;

    fn vf(pf: &str, index: u32, driver: &str) -> VfDevice {
        VfDevice {
            addr: format!("0000:af:06.{index}").parse().unwrap(),
            pf: "0000:af:00.0".parse().unwrap(),
            index,
            pf_netdev: Some(pf.to_owned()),
            netdev: Some(format!("{pf}v{index}")),
            driver: Some(driver.to_owned()),
            ids: PciIds {
                vendor: Some(0x8086),
                device: Some(0x154c),
            },
            numa_node: Some(0),
            iommu_group: None,
            link_type: Some("ether".to_owned()),
            pcie_root: None,
        }
    }

    #[test]
    fn pf_name_ranges() {
        let s = PfNameSelector::parse("ens1f0#0-3,6").unwrap();
        assert_eq!(s.ranges, Some(vec![0..=3, 6..=6]));
        let hits: Vec<u32> = (0..8).filter(|i| s.matches("ENS1F0", *i)).collect();
        assert_eq!(hits, vec![0, 1, 2, 3, 6]);
        assert!(!s.matches("ens1f1", 0));
        assert!(
            PfNameSelector::parse("ens1f0")
                .unwrap()
                .matches("ens1f0", 63)
        );
        for bad in ["#1", "p#", "p#3-1", "p#a", "p#1-"] {
            assert!(PfNameSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_selector_must_match() {
        let spec = PoolSpec::from_value(
            "pool",
            &json!({"name": "fast", "vendors": ["8086"], "devices": ["0x154C"],
                "drivers": ["iavf"], "pfNames": ["ens1f0#0-1"], "linkTypes": ["ether"]}),
        )
        .unwrap();
        assert_eq!(spec.name, "fast");
        let s = &spec.selectors;
        assert!(s.matches(&vf("ens1f0", 0, "iavf")));
        assert!(s.matches(&vf("ens1f0", 1, "iavf")));
        assert!(!s.matches(&vf("ens1f0", 2, "iavf")), "out of range");
        assert!(!s.matches(&vf("ens1f0", 0, "vfio-pci")), "driver");
        assert!(!s.matches(&vf("ens1f1", 0, "iavf")), "PF");
        let mut other_vendor = vf("ens1f0", 0, "iavf");
        other_vendor.ids.vendor = Some(0x15b3);
        assert!(!s.matches(&other_vendor));
        let mut no_pf = vf("ens1f0", 0, "iavf");
        no_pf.pf_netdev = None;
        assert!(
            !s.matches(&no_pf),
            "a VF without PF name is excluded by pfNames"
        );
        assert!(Selectors::default().matches(&no_pf));
    }

    #[test]
    fn pci_address_selector() {
        let spec = PoolSpec::from_value(
            "pool",
            &json!({"name": "p", "pciAddresses": ["0000:af:06.1"]}),
        )
        .unwrap();
        assert!(spec.selectors.matches(&vf("x", 1, "iavf")));
        assert!(!spec.selectors.matches(&vf("x", 2, "iavf")));
    }

    #[test]
    fn bad_pools_name_the_key() {
        for (v, key) in [
            (json!("p"), "pool"),
            (json!({}), "pool.name"),
            (json!({"name": ""}), "pool.name"),
            (json!({"name": "p", "pfNames": ["x#9-1"]}), "pool.pfNames"),
            (json!({"name": "p", "pfNames": "x"}), "pool.pfNames"),
            (
                json!({"name": "p", "pciAddresses": ["nope"]}),
                "pool.pciAddresses",
            ),
            (json!({"name": "p", "isRdma": true}), "pool.isRdma"),
        ] {
            match PoolSpec::from_value("pool", &v) {
                Err(SriovError::Config { key: k, .. }) => assert_eq!(k, key, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
        }
    }
}
