//! Device-info files (device-info spec 1.1.0, type "pci") for the pod's network-status.
//!
//! ADD writes the file at runtimeConfig `CNIDeviceInfoFile` when the runtime gives one (the
//! Multus convention, capability `"CNIDeviceInfoFile"`), else at
//! [`default_device_info_path`]: `<dir>/<network>-<containerID>-<ifname>-device.json`, with
//! `<dir>` = `$MULTINET_DEVINFO_DIR` or `/var/run/k8s.cni.cncf.io/devinfo/cni` and `/` in the
//! network name replaced by `-`. The meta-plugin computes the same path (or reads it from the
//! attachment state) to copy the content into network-status. DEL removes the file.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use multinet_cni::files::{self, WriteOptions};

/// Overrides the directory of default device-info files.
pub const DEVINFO_DIR_ENV: &str = "MULTINET_DEVINFO_DIR";
/// Where CNI-written device-info files live on a node.
pub const DEFAULT_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";
/// The device-info spec version written.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// `$MULTINET_DEVINFO_DIR`, else the default.
pub fn devinfo_dir_from_env() -> PathBuf {
    match std::env::var_os(DEVINFO_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_DEVINFO_DIR),
    }
}

/// Where the runtime may put device-info files: Multus's and multinet's default tree (both
/// spellings of /run).
pub const DEVICE_INFO_ROOTS: &[&str] = &[
    "/var/run/k8s.cni.cncf.io/devinfo/",
    "/run/k8s.cni.cncf.io/devinfo/",
];

/// Checks runtimeConfig `CNIDeviceInfoFile`. A meta-plugin sets it, but a NAD may carry a
/// runtimeConfig of its own, and the file is written (renamed over) on ADD and removed on DEL,
/// as root: it must be a file in a device-info tree, beneath [`DEVICE_INFO_ROOTS`] or beneath
/// the parent of `own_dir` (the tree holding the delegate's own device-info directory, e.g.
/// `.../devinfo` for `.../devinfo/cni`), with no `..` component.
pub fn check_device_info_file(path: &Path, own_dir: &Path) -> Result<()> {
    use std::path::Component;
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let beneath = |root: &Path| path.starts_with(root) && path != root;
    // The tree of the delegate's own directory; a top-level directory is its own tree.
    let own_tree = own_dir
        .parent()
        .filter(|p| p.parent().is_some())
        .unwrap_or(own_dir);
    let allowed =
        plain && (beneath(own_tree) || DEVICE_INFO_ROOTS.iter().any(|r| beneath(Path::new(r))));
    if allowed {
        return Ok(());
    }
    Err(SriovError::config(
        format!(
            "runtimeConfig.{}",
            multinet_cni::DEVICE_INFO_FILE_CAPABILITY
        ),
        format!(
            "must be a file beneath {} or {} (no \"..\")",
            DEVICE_INFO_ROOTS.join(" or "),
            own_tree.display()
        ),
    ))
}

/// The file an attachment's device info goes to when the runtime names none.
pub fn default_device_info_path(
    dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> PathBuf {
    let network = network.replace('/', "-");
    dir.join(format!("{network}-{container_id}-{ifname}-device.json"))
}

/// The device-info object of a VF.
pub fn device_info(vf: &PciAddress, pf: &PciAddress) -> Value {
    json!({
        "type": "pci",
        "version": DEVICE_INFO_VERSION,
        "pci": {
            "pci-address": vf.to_string(),
            "pf-pci-address": pf.to_string(),
        }
    })
}

/// Mode of a device-info file: the network-status writer may not be root (the device plugin's
/// own files are world-readable too).
pub const DEVICE_INFO_MODE: u32 = 0o644;
/// Mode of a device-info directory multinet creates.
pub const DEVICE_INFO_DIR_MODE: u32 = 0o755;

/// Writes `info` to `path` atomically, modes explicit whatever the umask. A directory that
/// another uid owns or may write is refused.
pub fn write_device_info(path: &Path, info: &Value) -> Result<()> {
    let bytes = serde_json::to_vec(info)
        .map_err(|e| SriovError::Internal(format!("encoding device info: {e}")))?;
    let what = || format!("writing device info {}", path.display());
    if let Some(dir) = path.parent() {
        files::ensure_dir(dir, DEVICE_INFO_DIR_MODE).map_err(|e| SriovError::io(what(), e))?;
    }
    let opts = WriteOptions {
        mode: DEVICE_INFO_MODE,
        durable: false,
    };
    files::write_atomic(path, &bytes, opts).map_err(|e| SriovError::io(what(), e))
}

/// Removes a device-info file; one that is gone already is fine.
pub fn remove_device_info(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SriovError::io(
            format!("removing device info {}", path.display()),
            e,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_files_stay_in_the_device_info_trees() {
        let own = Path::new("/var/lib/x/devinfo/sriov");
        for ok in [
            "/var/run/k8s.cni.cncf.io/devinfo/cni/net-c1_net1",
            "/run/k8s.cni.cncf.io/devinfo/cni/a.json",
            "/var/lib/x/devinfo/sriov/n-c-i-device.json",
            "/var/lib/x/devinfo/cni/n-c-i",
        ] {
            check_device_info_file(Path::new(ok), own).unwrap();
        }
        for bad in [
            "/etc/shadow",
            "/var/run/k8s.cni.cncf.io/devinfo/../../../etc/shadow",
            "/var/run/k8s.cni.cncf.io/devinfo/",
            "/var/lib/x/devinfo",
            "/var/lib/x/other",
            "relative/devinfo.json",
        ] {
            let err = check_device_info_file(Path::new(bad), own).unwrap_err();
            assert_eq!(err.code().code(), 7, "{bad}");
            assert!(
                err.to_string().contains("runtimeConfig.CNIDeviceInfoFile"),
                "{err}"
            );
        }
    }

    #[test]
    fn path_and_content() {
        let p = default_device_info_path(Path::new("/d"), "ns/net-a", "c1", "net1");
        assert_eq!(p, PathBuf::from("/d/ns-net-a-c1-net1-device.json"));
        let info = device_info(
            &"0000:af:06.0".parse().unwrap(),
            &"0000:af:00.1".parse().unwrap(),
        );
        assert_eq!(info["type"], "pci");
        assert_eq!(info["version"], "1.1.0");
        assert_eq!(info["pci"]["pci-address"], "0000:af:06.0");
        assert_eq!(info["pci"]["pf-pci-address"], "0000:af:00.1");
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("x/dev.json");
        write_device_info(&f, &info).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(back, info);
        remove_device_info(&f).unwrap();
        remove_device_info(&f).unwrap();
        assert!(!f.exists());
    }
}
