//! One attachment: one network of one container, from the plan to the record. The plan makes
//! it, the attachment store records it, the delegates run from it, DEL reads it back, and the
//! network-status is built from it; the fields only the ADD that planned it needs are not
//! recorded.

use std::net::IpAddr;
use std::path::PathBuf;

use multinet_cni::{DelegateConf, NetworkResult};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A network whose config has been loaded (from a NAD, confDir, or the inline delegates).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedNetwork {
    /// `namespace/name` of the NAD, or the network's CNI name.
    pub key: String,
    /// The conf or conflist; `name` already filled in.
    pub conf: DelegateConf,
    /// `k8s.v1.cni.cncf.io/resourceName` of the NAD, if any.
    pub resource_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentState {
    /// Recorded before the delegate ran: DEL must still run it, the delegate may have half-built.
    Planned,
    /// The delegate's ADD succeeded.
    Added,
    /// A DEL was attempted and failed: the next DEL retries it.
    DeleteFailed,
}

/// The device-info file of one attachment. Only its path is recorded (DEL removes the file);
/// where it is copied from and whether a plugin was told to write it matter to the ADD alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfoFile {
    pub path: PathBuf,
    /// The device plugin's file to copy to `path` before the delegate runs.
    pub from_device_plugin: Option<PathBuf>,
    /// Some plugin of the attachment got `path` as `CNIDeviceInfoFile` and should write it.
    pub given_to_plugin: bool,
}

impl DeviceInfoFile {
    /// A file known by its path alone, as a record read back knows it.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        DeviceInfoFile {
            path: path.into(),
            from_device_plugin: None,
            given_to_plugin: false,
        }
    }
}

impl Serialize for DeviceInfoFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.path.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceInfoFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PathBuf::deserialize(d).map(DeviceInfoFile::at)
    }
}

/// One network of one container, as it was (or is about to be) handed to its delegate. The
/// recorded fields keep the names of the record format, so records written before this type
/// existed load unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `namespace/name` of the NAD, or the CNI network name of the cluster network.
    pub network: String,
    pub ifname: String,
    #[serde(default)]
    pub is_default: bool,
    /// The delegate config (conf or conflist) exactly as invoked, runtimeConfig and args included.
    pub conf: DelegateConf,
    pub state: AttachmentState,
    /// The delegate's result, in the call's CNI version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<DeviceInfoFile>,
    /// The device the attachment was given (also in `conf` as `deviceID`).
    #[serde(skip)]
    pub device_id: Option<String>,
    /// The device plugin resource the device comes from (the NAD's `resourceName`).
    #[serde(skip)]
    pub resource_name: Option<String>,
    /// Gateways that must become the pod's only default route for their family.
    #[serde(skip)]
    pub default_route: Vec<IpAddr>,
    /// The result as read in this ADD, for the routes and the network-status.
    #[serde(skip)]
    pub added: Option<NetworkResult>,
}

impl Attachment {
    /// A planned attachment of `network` on `ifname` with its delegate config.
    pub fn planned(
        network: impl Into<String>,
        ifname: impl Into<String>,
        conf: impl Into<DelegateConf>,
    ) -> Self {
        Attachment {
            network: network.into(),
            ifname: ifname.into(),
            is_default: false,
            conf: conf.into(),
            state: AttachmentState::Planned,
            result: None,
            device_info_file: None,
            device_id: None,
            resource_name: None,
            default_route: Vec::new(),
            added: None,
        }
    }

    /// The delegate's ADD succeeded with `result` (`value` is it in the call's version).
    pub fn mark_added(&mut self, value: Value, result: NetworkResult) {
        self.state = AttachmentState::Added;
        self.result = Some(value);
        self.added = Some(result);
    }

    /// The path of its device-info file, if it has one.
    pub fn device_info_path(&self) -> Option<&std::path::Path> {
        self.device_info_file.as_ref().map(|f| f.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_info_file_is_recorded_as_its_path() {
        let mut a = Attachment::planned("team/vf", "net1", json!({"type": "sriov"}));
        a.device_info_file = Some(DeviceInfoFile {
            path: "/di/cni/vf-c1_net1".into(),
            from_device_plugin: Some("/di/dp/x-device.json".into()),
            given_to_plugin: true,
        });
        a.device_id = Some("0000:3b:02.1".into());
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(
            text,
            r#"{"network":"team/vf","ifname":"net1","isDefault":false,"conf":{"type":"sriov"},"state":"planned","deviceInfoFile":"/di/cni/vf-c1_net1"}"#
        );
        let back: Attachment = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.device_info_file,
            Some(DeviceInfoFile::at("/di/cni/vf-c1_net1"))
        );
        assert_eq!(back.device_id, None);
    }
}
