//! The node policy: which PFs get how many VFs, bound to which driver, with which PF MTU, and
//! which pool the VFs form. The node admin writes it (a file the DaemonSet mounts), so it is
//! trusted, but every field is checked and a bad one is named by its path
//! (`policies[1].nicSelector.pfNames[0]`). Pure: parsing works on the file's text.
//!
//! The names follow the sriov-network-operator's SriovNetworkNodePolicy where they fit
//! (`nicSelector` with `pfNames`, `rootDevices`, `vendor`, `deviceID`; `numVfs`, `deviceType`,
//! `mtu`); `pool` is the name multinet's SR-IOV pools use (the operator's `resourceName`).
//!
//! ```yaml
//! policies:
//!   - name: fast-nics
//!     nicSelector: {pfNames: [ens1f0, ens1f1]}
//!     numVfs: 8
//!     deviceType: netdevice   # or vfio-pci (DPDK)
//!     mtu: 9000
//!     pool: fast
//! ```

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Result, SriovError};
use crate::pci::{PciAddress, PciIds};

/// Highest `numVfs` accepted at all (the PCI SR-IOV capability counts VFs in 16 bits); the
/// PF's own `sriov_totalvfs` is checked when planning.
pub const MAX_NUM_VFS: u64 = u16::MAX as u64;
/// MTU bounds: IPv4's minimum and the largest a netdev can have.
pub const MIN_MTU: u64 = 68;
pub const MAX_MTU: u64 = u16::MAX as u64;
/// Longest pool name (a DNS label: it becomes a DRA attribute value too).
pub const MAX_POOL_NAME: usize = 63;

/// Which driver the VFs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// The PF's kernel VF driver (whatever the kernel probes for the VF): VFs have netdevs.
    Netdevice,
    /// vfio-pci: VFs go to user space (DPDK).
    VfioPci,
}

impl DeviceType {
    /// The driver name a VF must have, None for "the kernel's own choice".
    pub fn driver_override(self) -> Option<&'static str> {
        match self {
            DeviceType::Netdevice => None,
            DeviceType::VfioPci => Some("vfio-pci"),
        }
    }

    /// True when a VF bound to `driver` (None: unbound) is as this type wants it.
    pub fn is_satisfied_by(self, driver: Option<&str>) -> bool {
        match self {
            DeviceType::Netdevice => {
                driver.is_some_and(|d| !crate::sysfs::DPDK_DRIVERS.contains(&d))
            }
            DeviceType::VfioPci => driver == Some("vfio-pci"),
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceType::Netdevice => "netdevice",
            DeviceType::VfioPci => "vfio-pci",
        })
    }
}

/// Which PFs an entry selects; every selector given must match (as the operator's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicSelector {
    /// PF netdev names (exact).
    pub pf_names: Vec<String>,
    /// PF PCI addresses.
    pub root_devices: Vec<PciAddress>,
    /// The PF's vendor and device IDs, given together.
    pub ids: Option<(u16, u16)>,
}

impl NicSelector {
    /// True when a PF with this netdev, address and IDs is selected.
    pub fn matches(&self, netdev: Option<&str>, pci: Option<PciAddress>, ids: PciIds) -> bool {
        (self.pf_names.is_empty() || netdev.is_some_and(|n| self.pf_names.iter().any(|p| p == n)))
            && (self.root_devices.is_empty() || pci.is_some_and(|a| self.root_devices.contains(&a)))
            && self
                .ids
                .is_none_or(|(v, d)| ids.vendor == Some(v) && ids.device == Some(d))
    }
}

/// One entry of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Its `name`, or `policies[N]` when it has none: used in every message about it.
    pub name: String,
    pub nic_selector: NicSelector,
    pub num_vfs: u32,
    pub device_type: DeviceType,
    /// Set on the PF's netdev.
    pub mtu: Option<u32>,
    /// The pool the VFs form (`pool.name` in a NAD's SR-IOV config).
    pub pool: Option<String>,
}

/// A validated node policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePolicy {
    pub entries: Vec<PolicyEntry>,
}

const TOP_KEYS: &str = "policies";
const ENTRY_KEYS: &str = "name, nicSelector, numVfs, deviceType, mtu, pool";
const SELECTOR_KEYS: &str = "pfNames, rootDevices, vendor, deviceID";

impl NodePolicy {
    /// Parses the policy file's text: YAML or JSON, either `{"policies": [...]}` or the list
    /// itself.
    pub fn parse(text: &str) -> Result<NodePolicy> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| {
            SriovError::Decode(format!("the SR-IOV policy is not YAML or JSON: {e}"))
        })?;
        NodePolicy::from_value(&value)
    }

    /// Validates an already decoded policy.
    pub fn from_value(value: &Value) -> Result<NodePolicy> {
        let list = match value {
            Value::Array(list) => list,
            Value::Object(obj) => {
                if let Some(k) = obj.keys().find(|k| k.as_str() != "policies") {
                    return Err(SriovError::config(
                        k.as_str(),
                        format!("unknown key (the policy file has: {TOP_KEYS})"),
                    ));
                }
                match obj.get("policies") {
                    Some(Value::Array(list)) => list,
                    Some(other) => {
                        return Err(SriovError::config(
                            "policies",
                            format!("must be a list of entries, not {other}"),
                        ));
                    }
                    None => return Err(SriovError::config("policies", "missing")),
                }
            }
            Value::Null => return Ok(NodePolicy::default()),
            other => {
                return Err(SriovError::config(
                    "policies",
                    format!(
                        "the policy must be a list of entries or an object with policies, not {other}"
                    ),
                ));
            }
        };
        let entries = list
            .iter()
            .enumerate()
            .map(|(i, v)| entry(&format!("policies[{i}]"), v))
            .collect::<Result<Vec<_>>>()?;
        check_across(&entries)?;
        Ok(NodePolicy { entries })
    }
}

/// Rules between entries: names unique, one device type per pool.
fn check_across(entries: &[PolicyEntry]) -> Result<()> {
    for (i, a) in entries.iter().enumerate() {
        for (j, b) in entries.iter().enumerate().skip(i + 1) {
            if a.name == b.name {
                return Err(SriovError::config(
                    format!("policies[{j}].name"),
                    format!("{:?} is the name of policies[{i}] already", b.name),
                ));
            }
            if a.pool.is_some() && a.pool == b.pool && a.device_type != b.device_type {
                return Err(SriovError::config(
                    format!("policies[{j}].deviceType"),
                    format!(
                        "pool {:?} is {} in {:?} but {} here: a pool's VFs share one device type",
                        b.pool.as_deref().unwrap_or_default(),
                        a.device_type,
                        a.name,
                        b.device_type
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn entry(path: &str, v: &Value) -> Result<PolicyEntry> {
    let obj = v
        .as_object()
        .ok_or_else(|| SriovError::config(path, format!("must be an object, not {v}")))?;
    let key = |k: &str| format!("{path}.{k}");
    if let Some(k) = obj
        .keys()
        .find(|k| !ENTRY_KEYS.split(", ").any(|x| x == k.as_str()))
    {
        return Err(SriovError::config(
            key(k),
            format!("unknown key (an entry has: {ENTRY_KEYS})"),
        ));
    }
    let name = match obj.get("name") {
        None => path.to_owned(),
        Some(n) => {
            let n = non_empty_str(&key("name"), n)?;
            if n.chars().any(char::is_control) {
                return Err(SriovError::config(key("name"), "has control characters"));
            }
            n.to_owned()
        }
    };
    let nic_selector = match obj.get("nicSelector") {
        Some(s) => selector(&key("nicSelector"), s)?,
        None => {
            return Err(SriovError::config(
                key("nicSelector"),
                format!("missing: say which PFs ({SELECTOR_KEYS})"),
            ));
        }
    };
    let num_vfs = match obj.get("numVfs") {
        Some(n) => number(&key("numVfs"), n, 0, MAX_NUM_VFS)?,
        None => return Err(SriovError::config(key("numVfs"), "missing")),
    };
    let device_type = match obj.get("deviceType") {
        None => DeviceType::Netdevice,
        Some(t) => match t.as_str() {
            Some("netdevice") => DeviceType::Netdevice,
            Some("vfio-pci") => DeviceType::VfioPci,
            _ => {
                return Err(SriovError::config(
                    key("deviceType"),
                    format!("must be \"netdevice\" or \"vfio-pci\", not {t}"),
                ));
            }
        },
    };
    let mtu = obj
        .get("mtu")
        .map(|m| number(&key("mtu"), m, MIN_MTU, MAX_MTU))
        .transpose()?;
    let pool = obj
        .get("pool")
        .map(|p| pool_name(&key("pool"), p))
        .transpose()?;
    Ok(PolicyEntry {
        name,
        nic_selector,
        num_vfs,
        device_type,
        mtu,
        pool,
    })
}

fn selector(path: &str, v: &Value) -> Result<NicSelector> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| SriovError::config(path, format!("must be an object, not {v}")))?;
    let key = |k: &str| format!("{path}.{k}");
    if let Some(k) = obj
        .keys()
        .find(|k| !SELECTOR_KEYS.split(", ").any(|x| x == k.as_str()))
    {
        return Err(SriovError::config(
            key(k),
            format!("unknown selector (a nicSelector has: {SELECTOR_KEYS})"),
        ));
    }
    let mut sel = NicSelector::default();
    if let Some(list) = obj.get("pfNames") {
        for (i, n) in strings(&key("pfNames"), list)?.into_iter().enumerate() {
            let at = format!("{path}.pfNames[{i}]");
            if n.contains('#') {
                return Err(SriovError::config(
                    at,
                    format!(
                        "{n:?}: VF ranges (#) are not supported here: a policy entry sets \
                         the whole PF"
                    ),
                ));
            }
            if n.is_empty()
                || n.len() > 15
                || n.contains(['/', ' ', ':'])
                || n.chars().any(char::is_control)
            {
                return Err(SriovError::config(
                    at,
                    format!("{n:?} is not a netdev name"),
                ));
            }
            sel.pf_names.push(n.to_owned());
        }
    }
    if let Some(list) = obj.get("rootDevices") {
        for (i, a) in strings(&key("rootDevices"), list)?.into_iter().enumerate() {
            let addr = a
                .parse()
                .map_err(|e: String| SriovError::config(format!("{path}.rootDevices[{i}]"), e))?;
            sel.root_devices.push(addr);
        }
    }
    let vendor = obj
        .get("vendor")
        .map(|v| hex_id(&key("vendor"), v))
        .transpose()?;
    let device = obj
        .get("deviceID")
        .map(|v| hex_id(&key("deviceID"), v))
        .transpose()?;
    sel.ids = match (vendor, device) {
        (Some(v), Some(d)) => Some((v, d)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(SriovError::config(
                key("deviceID"),
                "missing: vendor selects PFs together with deviceID",
            ));
        }
        (None, Some(_)) => {
            return Err(SriovError::config(
                key("vendor"),
                "missing: deviceID selects PFs together with vendor",
            ));
        }
    };
    if sel.pf_names.is_empty() && sel.root_devices.is_empty() && sel.ids.is_none() {
        return Err(SriovError::config(
            path,
            format!("selects no PF: give at least one of {SELECTOR_KEYS}"),
        ));
    }
    Ok(sel)
}

fn non_empty_str<'a>(path: &str, v: &'a Value) -> Result<&'a str> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SriovError::config(path, format!("must be a non-empty string, not {v}")))
}

fn strings<'a>(path: &str, v: &'a Value) -> Result<Vec<&'a str>> {
    let list = v
        .as_array()
        .ok_or_else(|| SriovError::config(path, format!("must be a list of strings, not {v}")))?;
    list.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str().ok_or_else(|| {
                SriovError::config(format!("{path}[{i}]"), format!("must be a string, not {x}"))
            })
        })
        .collect()
}

fn number(path: &str, v: &Value, min: u64, max: u64) -> Result<u32> {
    v.as_u64()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            SriovError::config(
                path,
                format!("must be a whole number from {min} to {max}, not {v}"),
            )
        })
}

/// A vendor or device ID as the operator writes it: a string of hex digits ("8086", "0x158b").
/// A bare YAML number is refused: `vendor: 8086` would be read as decimal.
fn hex_id(path: &str, v: &Value) -> Result<u16> {
    let s = v.as_str().ok_or_else(|| {
        SriovError::config(
            path,
            format!("must be a quoted hex string such as \"8086\", not {v}"),
        )
    })?;
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(SriovError::config(
            path,
            format!("{s:?} is not a 16-bit hex ID such as \"8086\""),
        ));
    }
    u16::from_str_radix(digits, 16)
        .map_err(|_| SriovError::config(path, format!("{s:?} is not a 16-bit hex ID")))
}

fn pool_name(path: &str, v: &Value) -> Result<String> {
    let s = non_empty_str(path, v)?;
    if s.len() > MAX_POOL_NAME
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(SriovError::config(
            path,
            format!("{s:?}: a pool name is up to {MAX_POOL_NAME} letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_json_forms() {
        let yaml = "policies:\n  - name: fast\n    nicSelector: {pfNames: [ens1f0], rootDevices: ['0000:af:00.1'], vendor: '8086', deviceID: '0x1572'}\n    numVfs: 4\n    deviceType: vfio-pci\n    mtu: 9000\n    pool: dpdk\n";
        let p = NodePolicy::parse(yaml).unwrap();
        assert_eq!(
            p.entries,
            vec![PolicyEntry {
                name: "fast".into(),
                nic_selector: NicSelector {
                    pf_names: vec!["ens1f0".into()],
                    root_devices: vec!["0000:af:00.1".parse().unwrap()],
                    ids: Some((0x8086, 0x1572)),
                },
                num_vfs: 4,
                device_type: DeviceType::VfioPci,
                mtu: Some(9000),
                pool: Some("dpdk".into()),
            }]
        );
        let json = r#"[{"nicSelector": {"pfNames": ["eth9"]}, "numVfs": 0}]"#;
        let p = NodePolicy::parse(json).unwrap();
        assert_eq!(p.entries[0].name, "policies[0]");
        assert_eq!(p.entries[0].device_type, DeviceType::Netdevice);
        assert_eq!(p.entries[0].mtu, None);
        assert_eq!(NodePolicy::parse("").unwrap(), NodePolicy::default());
        assert_eq!(
            NodePolicy::parse("policies: []").unwrap(),
            NodePolicy::default()
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let ok = r#"{"nicSelector": {"pfNames": ["p0"]}, "numVfs": 2"#;
        for (text, key) in [
            (r#"{"policy": []}"#.to_owned(), "policy"),
            (r#"{"policies": {}}"#.to_owned(), "policies"),
            ("[7]".to_owned(), "policies[0]"),
            (r#"[{"numVfs": 2}]"#.to_owned(), "policies[0].nicSelector"),
            (
                r#"[{"nicSelector": {}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector",
            ),
            (
                r#"[{"nicSelector": {"pfNames": ["p0"]}}]"#.to_owned(),
                "policies[0].numVfs",
            ),
            (format!("[{ok}, \"numvfs\": 1}}]"), "policies[0].numvfs"),
            (format!("[{ok}, \"numVfs\": -1}}]"), "policies[0].numVfs"),
            (format!("[{ok}, \"numVfs\": 70000}}]"), "policies[0].numVfs"),
            (format!("[{ok}, \"numVfs\": \"4\"}}]"), "policies[0].numVfs"),
            (
                format!("[{ok}, \"deviceType\": \"dpdk\"}}]"),
                "policies[0].deviceType",
            ),
            (format!("[{ok}, \"mtu\": 20}}]"), "policies[0].mtu"),
            (format!("[{ok}, \"mtu\": 1500.5}}]"), "policies[0].mtu"),
            (format!("[{ok}, \"pool\": \"\"}}]"), "policies[0].pool"),
            (format!("[{ok}, \"pool\": \"a b\"}}]"), "policies[0].pool"),
            (format!("[{ok}, \"name\": 3}}]"), "policies[0].name"),
            (
                format!("[{ok}}}, {ok}, \"pool\": \"p\", \"name\": \"policies[0]\"}}]"),
                "policies[1].name",
            ),
            (
                format!(
                    "[{ok}, \"pool\": \"p\"}}, {{\"nicSelector\": {{\"pfNames\": [\"p1\"]}}, \"numVfs\": 1, \"pool\": \"p\", \"deviceType\": \"vfio-pci\"}}]"
                ),
                "policies[1].deviceType",
            ),
            (
                r#"[{"nicSelector": {"pfNames": ["p0#0-3"]}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.pfNames[0]",
            ),
            (
                r#"[{"nicSelector": {"pfNames": ["a/b"]}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.pfNames[0]",
            ),
            (
                r#"[{"nicSelector": {"pfNames": [1]}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.pfNames[0]",
            ),
            (
                r#"[{"nicSelector": {"pfNames": "p0"}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.pfNames",
            ),
            (
                r#"[{"nicSelector": {"rootDevices": ["af:00.0"]}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.rootDevices[0]",
            ),
            (
                r#"[{"nicSelector": {"vendor": "8086"}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.deviceID",
            ),
            (
                r#"[{"nicSelector": {"deviceID": "1572"}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.vendor",
            ),
            (
                r#"[{"nicSelector": {"vendor": 8086, "deviceID": "1572"}, "numVfs": 2}]"#
                    .to_owned(),
                "policies[0].nicSelector.vendor",
            ),
            (
                r#"[{"nicSelector": {"vendor": "18086", "deviceID": "1572"}, "numVfs": 2}]"#
                    .to_owned(),
                "policies[0].nicSelector.vendor",
            ),
            (
                r#"[{"nicSelector": {"netFilter": "x"}, "numVfs": 2}]"#.to_owned(),
                "policies[0].nicSelector.netFilter",
            ),
        ] {
            match NodePolicy::parse(&text) {
                Err(SriovError::Config { key: k, msg }) => assert_eq!(k, key, "{text}: {msg}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            NodePolicy::parse("[: x"),
            Err(SriovError::Decode(_))
        ));
    }

    #[test]
    fn selectors_must_all_match() {
        let ids = PciIds {
            vendor: Some(0x8086),
            device: Some(0x1572),
        };
        let addr: PciAddress = "0000:af:00.0".parse().unwrap();
        let sel = NicSelector {
            pf_names: vec!["ens1f0".into()],
            root_devices: vec![addr],
            ids: Some((0x8086, 0x1572)),
        };
        assert!(sel.matches(Some("ens1f0"), Some(addr), ids));
        assert!(
            !sel.matches(Some("ENS1F0"), Some(addr), ids),
            "names are exact"
        );
        assert!(!sel.matches(None, Some(addr), ids));
        assert!(!sel.matches(Some("ens1f0"), None, ids));
        assert!(!sel.matches(Some("ens1f0"), Some(addr), PciIds::default()));
        let by_name = NicSelector {
            pf_names: vec!["eni30np1".into()],
            ..Default::default()
        };
        assert!(
            by_name.matches(Some("eni30np1"), None, PciIds::default()),
            "a netdevsim PF"
        );
    }

    #[test]
    fn device_types() {
        assert!(DeviceType::Netdevice.is_satisfied_by(Some("iavf")));
        assert!(!DeviceType::Netdevice.is_satisfied_by(Some("vfio-pci")));
        assert!(!DeviceType::Netdevice.is_satisfied_by(None));
        assert!(DeviceType::VfioPci.is_satisfied_by(Some("vfio-pci")));
        assert!(!DeviceType::VfioPci.is_satisfied_by(Some("iavf")));
        assert_eq!(DeviceType::VfioPci.driver_override(), Some("vfio-pci"));
    }
}
