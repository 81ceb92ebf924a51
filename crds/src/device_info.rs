//! Device information (device-info spec 1.1.0): what a device plugin or CNI knows about the
//! device behind an attachment, carried into the network-status annotation.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The device-info spec version this crate writes.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// The kind of device; it names which of the per-type objects is filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// `pci`: a PCI device such as an SR-IOV VF.
    Pci,
    /// `vdpa`: a vDPA device.
    Vdpa,
    /// `vhost-user`: a vhost-user socket.
    VhostUser,
    /// `memif`: a memif socket.
    Memif,
    /// A type this crate does not know, kept as written.
    Other(String),
}

impl DeviceType {
    /// The name used on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pci => "pci",
            Self::Vdpa => "vdpa",
            Self::VhostUser => "vhost-user",
            Self::Memif => "memif",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for DeviceType {
    fn from(s: &str) -> Self {
        match s {
            "pci" => Self::Pci,
            "vdpa" => Self::Vdpa,
            "vhost-user" => Self::VhostUser,
            "memif" => Self::Memif,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DeviceType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}

/// `device-info`: the type, the spec version, and the object for that type. Empty strings are
/// omitted on output, as the Go client does; missing keys read as empty. Keys are the field
/// names in kebab case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct DeviceInfo {
    /// `type`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub device_type: Option<DeviceType>,
    /// `version`, "1.1.0" for what this crate writes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `pci`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    /// `vdpa`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDevice>,
    /// `vhost-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vhost_user: Option<VhostUserDevice>,
    /// `memif`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifDevice>,
}

impl DeviceInfo {
    /// Device info of `device_type` at the current spec version, its object not filled yet.
    fn current(device_type: DeviceType) -> Self {
        Self {
            device_type: Some(device_type),
            version: DEVICE_INFO_VERSION.to_owned(),
            ..Self::default()
        }
    }

    /// Device info for a PCI device, at the current spec version.
    pub fn pci(device: PciDevice) -> Self {
        Self {
            pci: Some(device),
            ..Self::current(DeviceType::Pci)
        }
    }

    /// Device info for a vDPA device, at the current spec version.
    pub fn vdpa(device: VdpaDevice) -> Self {
        Self {
            vdpa: Some(device),
            ..Self::current(DeviceType::Vdpa)
        }
    }

    /// Device info for a vhost-user socket, at the current spec version.
    pub fn vhost_user(device: VhostUserDevice) -> Self {
        Self {
            vhost_user: Some(device),
            ..Self::current(DeviceType::VhostUser)
        }
    }

    /// Device info for a memif socket, at the current spec version.
    pub fn memif(device: MemifDevice) -> Self {
        Self {
            memif: Some(device),
            ..Self::current(DeviceType::Memif)
        }
    }

    /// Parses a device-info document (the file a device plugin writes).
    pub fn from_json(text: &str) -> Result<Self, crate::CrdError> {
        let err = |e: serde_json::Error| crate::CrdError::DeviceInfo(e.to_string());
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(err)?;
        crate::json::strip_nulls(&mut value);
        serde_json::from_value(value).map_err(err)
    }
}

/// `pci`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct PciDevice {
    /// `pci-address`, e.g. `0000:03:02.3`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    /// `vhost-net`: the vhost-net device path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vhost_net: String,
    /// `rdma-device`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rdma_device: String,
    /// `pf-pci-address`: the physical function of a VF.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pf_pci_address: String,
    /// `representor-device`: the VF representor netdev in switchdev mode.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub representor_device: String,
}

/// `vdpa`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct VdpaDevice {
    /// `parent-device`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent_device: String,
    /// `driver`: "vhost" or "virtio".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// `path`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `pci-address`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    /// `pf-pci-address`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pf_pci_address: String,
    /// `representor-device`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub representor_device: String,
}

/// `vhost-user`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct VhostUserDevice {
    /// `mode`: "client" or "server".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// `path` of the socket.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// `memif`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MemifDevice {
    /// `role`: "master" or "slave".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// `path` of the socket.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `mode`: "ethernet", "ip" or "punt".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
}
