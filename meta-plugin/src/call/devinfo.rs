//! Device-info files: how an attachment's `device-info` reaches the network-status annotation,
//! in Multus's layout so device plugins and delegates written for it work unchanged.
//!
//! An attachment that has a device ID, or whose delegate declares the `CNIDeviceInfoFile`
//! capability, gets the file `<deviceInfoDir>/<net>-<containerID>_<ifname>` (`/` → `-`). The path
//! goes as runtimeConfig `CNIDeviceInfoFile` to the plugins that declare the capability. When
//! the NAD names a resource and the attachment has a device ID, the device plugin's
//! `<devicePluginInfoDir>/<resource>-<deviceID>-device.json` is copied there first, so a delegate
//! that writes nothing still yields device info. After ADD the file is read into the status;
//! DEL removes it. None of this ever fails a CNI call: a missing or bad file is a log line.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use multinet_cni::{DEVICE_INFO_FILE_CAPABILITY, files};
use multinet_crds::DeviceInfo;

use crate::call::attachment::Attachment;
pub use crate::call::attachment::DeviceInfoFile;
use crate::call::config::MultinetConf;

/// The default folders, kept with the config keys that choose them.
pub use crate::call::config::{DEFAULT_DEVICE_INFO_DIR, DEFAULT_DEVICE_PLUGIN_INFO_DIR};

/// The per-attachment file name: `<net>-<containerID>_<ifname>`, every `/` made `-` so the name
/// stays one path component.
pub fn attachment_file_name(network: &str, container_id: &str, ifname: &str) -> String {
    // Hashed when longer than a file name may be (long network names and container IDs).
    files::name_for(
        &format!("{network}-{container_id}_{ifname}").replace('/', "-"),
        0,
    )
}

/// The device plugin's file name for a device: `<resource>-<deviceID>-device.json`, `/` → `-`.
pub fn device_plugin_file_name(resource: &str, device_id: &str) -> String {
    format!(
        "{}-{}-device.json",
        resource.replace('/', "-"),
        device_id.replace('/', "-")
    )
}

/// Decides each planned attachment's device-info file and hands its path to the plugins that
/// declare `CNIDeviceInfoFile`. Pure: nothing is read or written.
pub fn prepare(
    conf: &MultinetConf,
    container_id: &str,
    mut planned: Vec<Attachment>,
) -> Vec<Attachment> {
    for p in &mut planned {
        let declared = p.conf.declares_capability(DEVICE_INFO_FILE_CAPABILITY);
        if !declared && p.device_id.is_none() {
            continue;
        }
        // The CNI network name, as Multus names the file; the NAD key when there is none.
        let network = p.conf.name().unwrap_or(&p.network);
        let path =
            conf.device_info_dir
                .join(attachment_file_name(network, container_id, &p.ifname));
        let given_to_plugin = p.conf.inject_device_info_file(&path);
        let from_device_plugin = match (&p.device_id, &p.resource_name) {
            (Some(id), Some(resource)) => Some(
                conf.device_plugin_info_dir
                    .join(device_plugin_file_name(resource, id)),
            ),
            _ => None,
        };
        p.device_info_file = Some(DeviceInfoFile {
            path,
            from_device_plugin,
            given_to_plugin,
        });
    }
    planned
}

/// Copies the device plugins' files into place. A device plugin that wrote none is usual; a file
/// that is not device info is not copied.
pub fn copy_from_device_plugin<'a>(files: impl IntoIterator<Item = &'a Option<DeviceInfoFile>>) {
    for f in files.into_iter().flatten() {
        let Some(src) = &f.from_device_plugin else {
            continue;
        };
        match read(src) {
            Ok(None) => {
                tracing::debug!(file = %src.display(), "no device-info file from the device plugin")
            }
            Err(e) => {
                tracing::warn!(file = %src.display(), error = %e, "device plugin's device-info file not copied")
            }
            Ok(Some(_)) => {
                if let Err(e) = fs::read(src).and_then(|bytes| write_atomic(&f.path, &bytes)) {
                    tracing::warn!(from = %src.display(), to = %f.path.display(), error = %e,
                        "copying the device plugin's device-info file");
                }
            }
        }
    }
}

/// Mode of device-info files and their folder: device info is no secret (it goes into the
/// pod's network-status), and readers other than multinet (device plugins, tools) may look;
/// only root writes.
const DEVICE_INFO_FILE_MODE: u32 = 0o644;
const DEVICE_INFO_DIR_MODE: u32 = 0o755;

/// Writes through a temp file and a rename, so a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        files::ensure_dir(dir, DEVICE_INFO_DIR_MODE)?;
    }
    files::write_atomic(
        path,
        bytes,
        files::WriteOptions {
            mode: DEVICE_INFO_FILE_MODE,
            durable: false,
        },
    )
}

/// Reads a device-info file: `Ok(None)` when it does not exist, an error saying why when it
/// cannot be read or is not device info.
pub fn read(path: &Path) -> Result<Option<DeviceInfo>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    // The parser's message names the place, not the text (the file is not multinet's).
    DeviceInfo::from_json(&text)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The device info of each attachment, in the order of `files`, for the network-status.
pub fn read_for_status<'a>(
    files: impl IntoIterator<Item = &'a Option<DeviceInfoFile>>,
) -> Vec<Option<DeviceInfo>> {
    files
        .into_iter()
        .map(|f| {
            let f = f.as_ref()?;
            match read(&f.path) {
                Ok(Some(info)) => Some(info),
                Ok(None) if f.given_to_plugin => {
                    tracing::warn!(file = %f.path.display(),
                        "the delegate declares CNIDeviceInfoFile but wrote no device-info file");
                    None
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(file = %f.path.display(), error = %e,
                        "device-info file left out of network-status");
                    None
                }
            }
        })
        .collect()
}

/// Removes an attachment's device-info file, and the temp files of a write of it that a kill
/// interrupted (the caller holds the container's lock: no write of it is under way); one that
/// is gone already is fine, and a failure is only logged (the file holds no state anything
/// depends on).
pub fn remove(path: Option<&Path>) {
    let Some(path) = path else {
        return;
    };
    files::remove_temps_of(path);
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            tracing::warn!(file = %path.display(), error = %e, "removing device-info file")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    use serde_json::json;

    fn conf() -> MultinetConf {
        MultinetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"m","clusterNetwork":"c",
                 "deviceInfoDir":"/di/cni","devicePluginInfoDir":"/di/dp"}"#,
        )
        .unwrap()
        .0
    }

    fn planned(network: &str, ifname: &str, conf: Value, device: Option<&str>) -> Attachment {
        let mut a = Attachment::planned(network, ifname, conf);
        a.device_id = device.map(str::to_string);
        a
    }

    fn sriov(name: &str) -> Value {
        json!({"cniVersion":"1.0.0","name":name,"type":"sriov",
               "capabilities":{"CNIDeviceInfoFile":true}})
    }

    #[test]
    fn file_names_follow_the_multus_layout() {
        assert_eq!(
            attachment_file_name("sriov-net", "c1", "net1"),
            "sriov-net-c1_net1"
        );
        // A slash anywhere would leave the directory.
        assert_eq!(
            attachment_file_name("team/vf", "c/1", "net1"),
            "team-vf-c-1_net1"
        );
        assert_eq!(
            device_plugin_file_name("intel.com/sriov", "0000:3b:02.0"),
            "intel.com-sriov-0000:3b:02.0-device.json"
        );
    }

    #[test]
    fn only_declaring_or_device_attachments_get_a_file() {
        let input = vec![
            planned(
                "cluster",
                "eth0",
                json!({"name":"cluster","type":"bridge"}),
                None,
            ),
            planned("team/vf", "net1", sriov("vf"), None),
            Attachment {
                resource_name: Some("intel.com/vf".into()),
                ..planned(
                    "team/dp",
                    "net2",
                    json!({"name":"dp","type":"macvlan"}),
                    Some("0000:3b:02.1"),
                )
            },
            planned(
                "team/noname",
                "net3",
                json!({"type":"sriov","capabilities":{"CNIDeviceInfoFile":true}}),
                Some("0000:3b:02.2"),
            ),
        ];
        let out = prepare(&conf(), "c1", input);
        let files: Vec<_> = out.iter().map(|a| a.device_info_file.clone()).collect();
        assert_eq!(files[0], None);
        assert_eq!(out[0].conf.get("runtimeConfig"), None);

        let vf = files[1].clone().unwrap();
        assert_eq!(vf.path, PathBuf::from("/di/cni/vf-c1_net1"));
        assert!(vf.given_to_plugin);
        assert_eq!(vf.from_device_plugin, None, "no device ID, nothing to copy");
        assert_eq!(
            out[1].conf["runtimeConfig"]["CNIDeviceInfoFile"],
            "/di/cni/vf-c1_net1"
        );

        // A device ID without the capability: the file exists for the copy, the plugin never
        // sees the key.
        let dp = files[2].clone().unwrap();
        assert!(!dp.given_to_plugin);
        assert_eq!(out[2].conf.get("runtimeConfig"), None);
        assert_eq!(
            dp.from_device_plugin,
            Some(PathBuf::from(
                "/di/dp/intel.com-vf-0000:3b:02.1-device.json"
            ))
        );

        // No resource name: nothing to copy from; no CNI name: the network key names the file.
        let noname = files[3].clone().unwrap();
        assert_eq!(noname.path, PathBuf::from("/di/cni/team-noname-c1_net3"));
        assert_eq!(noname.from_device_plugin, None);
    }

    #[test]
    fn copy_read_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let dp = dir.path().join("dp/intel.com-vf-0000:3b:02.1-device.json");
        fs::create_dir_all(dp.parent().unwrap()).unwrap();
        fs::write(
            &dp,
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"}}"#,
        )
        .unwrap();
        let bad_dp = dir.path().join("dp/bad-device.json");
        fs::write(&bad_dp, "{not json").unwrap();
        let target = dir.path().join("cni/n-c1_net1");
        let bad_target = dir.path().join("cni/n-c1_net2");
        let missing_target = dir.path().join("cni/n-c1_net3");
        let files = vec![
            Some(DeviceInfoFile {
                path: target.clone(),
                from_device_plugin: Some(dp.clone()),
                given_to_plugin: false,
            }),
            Some(DeviceInfoFile {
                path: bad_target.clone(),
                from_device_plugin: Some(bad_dp),
                given_to_plugin: false,
            }),
            Some(DeviceInfoFile {
                path: missing_target.clone(),
                from_device_plugin: Some(dir.path().join("dp/none-device.json")),
                given_to_plugin: true,
            }),
            None,
        ];
        copy_from_device_plugin(&files);
        assert_eq!(fs::read(&target).unwrap(), fs::read(&dp).unwrap());
        assert!(
            !bad_target.exists(),
            "a corrupt device plugin file is not copied"
        );
        assert!(!missing_target.exists());

        let infos = read_for_status(&files);
        assert_eq!(
            infos[0].as_ref().unwrap().pci.as_ref().unwrap().pci_address,
            "0000:3b:02.1"
        );
        assert_eq!(infos[1..], [None, None, None]);

        fs::write(&bad_target, "[1,2]").unwrap();
        assert!(read(&bad_target).is_err());
        assert_eq!(read_for_status(&files)[1], None);

        remove(Some(&target));
        remove(Some(&target));
        remove(None);
        assert!(!target.exists());
        fs::write(&target, "{}").unwrap();
        remove(files[0].as_ref().map(|f| f.path.as_path()));
        assert!(!target.exists());
        // Only the copies are removed, never the device plugin's own file.
        assert!(dp.exists());
        let names: Vec<_> = fs::read_dir(dir.path().join("cni"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("n-c1_net2")]);
    }
}
