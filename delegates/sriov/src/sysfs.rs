//! The sysfs model of SR-IOV PCI functions: PFs (`sriov_totalvfs`, `sriov_numvfs`, `virtfnN`),
//! VFs (`physfn`, `net/`, `driver`, `numa_node`, `vendor`/`device` or `modalias`,
//! `iommu_group`) and their netdevs.
//!
//! The root is configurable (default `/sys`; env `MULTINET_SYSFS_ROOT`) so tests and the demo
//! run on a fake tree. Symlinks may be relative (the kernel's and the device plugin fixture's
//! layout) or absolute (SR-IOV CNI's fixture). An absolute target that lies outside a fake root
//! but starts with `/sys/` is taken to mean the same path inside the root.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, SriovError};
use crate::pci::{PciAddress, PciIds};

/// Overrides the sysfs root.
pub const SYSFS_ROOT_ENV: &str = "MULTINET_SYSFS_ROOT";
/// The real sysfs.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// Drivers that hand a VF to user space (DPDK): it has no netdev, nothing is moved.
pub const DPDK_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Longest symlink chain followed before giving up (a loop in a broken tree).
const MAX_LINK_HOPS: usize = 16;

/// A PCI function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunction {
    pub addr: PciAddress,
    /// Real directory of the function (links followed).
    pub dir: PathBuf,
    pub ids: PciIds,
    /// Basename of the `driver` link; None when no driver is bound.
    pub driver: Option<String>,
    pub numa_node: Option<i32>,
    /// Entries of `net/`, sorted.
    pub netdevs: Vec<String>,
    /// Basename of the `iommu_group` link.
    pub iommu_group: Option<String>,
    /// The PF of a VF (`physfn` link).
    pub physfn: Option<PciAddress>,
    pub total_vfs: Option<u32>,
    pub num_vfs: Option<u32>,
}

impl PciFunction {
    /// True for a PF: it has SR-IOV capability files or VF links.
    pub fn is_pf(&self) -> bool {
        self.total_vfs.is_some() || self.num_vfs.is_some()
    }

    /// True when its driver hands it to user space.
    pub fn is_dpdk(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| DPDK_DRIVERS.contains(&d))
    }
}

/// A VF with what the delegate and the allocator need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfDevice {
    pub addr: PciAddress,
    pub pf: PciAddress,
    /// N of the PF's `virtfnN` link that points at this VF.
    pub index: u32,
    /// The PF's netdev (first entry of `physfn/net/`).
    pub pf_netdev: Option<String>,
    /// The VF's netdev (first entry of `net/`); None when bound to a DPDK driver.
    pub netdev: Option<String>,
    pub driver: Option<String>,
    pub ids: PciIds,
    pub numa_node: Option<i32>,
    pub iommu_group: Option<String>,
    /// "ether", "infiniband", ... from `net/<netdev>/type`.
    pub link_type: Option<String>,
    /// The PCIe root complex above the VF, `pci<domain>:<bus>` (the first component of its
    /// path under `devices/`), as `resource.kubernetes.io/pcieRoot` spells it.
    pub pcie_root: Option<String>,
}

impl VfDevice {
    /// True when its driver hands it to user space.
    pub fn is_dpdk(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| DPDK_DRIVERS.contains(&d))
    }
}

/// A PF and its VFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfDevice {
    pub function: PciFunction,
    /// (N, address) of every `virtfnN` link, by N.
    pub vfs: Vec<(u32, PciAddress)>,
}

impl PfDevice {
    pub fn addr(&self) -> PciAddress {
        self.function.addr
    }

    /// The PF's first netdev.
    pub fn netdev(&self) -> Option<&str> {
        self.function.netdevs.first().map(String::as_str)
    }
}

/// A sysfs tree: the real one or a fake one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new(DEFAULT_SYSFS_ROOT)
    }
}

impl Sysfs {
    /// A tree rooted at `root` (what is mounted at /sys on a real node).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// `$MULTINET_SYSFS_ROOT`, else `/sys`.
    pub fn from_env() -> Self {
        match std::env::var_os(SYSFS_ROOT_ENV) {
            Some(root) if !root.is_empty() => Sysfs::new(root),
            _ => Sysfs::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bus_devices(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// Resolves `path` through symlinks (relative, absolute, or `/sys/...` inside a fake root)
    /// to the real path; a path that is not a link is returned as it is.
    pub fn follow(&self, path: &Path) -> io::Result<PathBuf> {
        let mut current = path.to_path_buf();
        for _ in 0..MAX_LINK_HOPS {
            let target = match fs::read_link(&current) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(current),
                Err(e) => return Err(e),
            };
            current = if target.is_absolute() {
                self.reroot(&target)
            } else {
                // Relative to the link's real directory, which may itself be reached through
                // a link (class/net/<if>/device).
                let parent = current.parent().unwrap_or(Path::new("/"));
                let parent = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
                normalize(&parent.join(target))
            };
        }
        Err(io::Error::other(format!(
            "too many symlinks from {}",
            path.display()
        )))
    }

    /// An absolute link target: kept when it lies in the root; `/sys/x` is read as `<root>/x`
    /// when that exists (a fake tree written with real-system targets).
    fn reroot(&self, target: &Path) -> PathBuf {
        if target.starts_with(&self.root) {
            return target.to_path_buf();
        }
        match target.strip_prefix(DEFAULT_SYSFS_ROOT) {
            Ok(rest) if self.root.join(rest).exists() => self.root.join(rest),
            _ => target.to_path_buf(),
        }
    }

    /// Basename of a symlink's target (what a `driver`, `physfn` or `virtfnN` link names).
    fn link_name(path: &Path) -> Option<String> {
        let target = fs::read_link(path).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The real directory of a PCI function; None when the node has no such function.
    pub fn device_dir(&self, addr: &PciAddress) -> Option<PathBuf> {
        let dir = self
            .follow(&self.bus_devices().join(addr.to_string()))
            .ok()?;
        dir.is_dir().then_some(dir)
    }

    /// Every PCI function under `bus/pci/devices`, sorted.
    pub fn pci_addresses(&self) -> io::Result<Vec<PciAddress>> {
        let mut out: Vec<PciAddress> = fs::read_dir(self.bus_devices())?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// What sysfs says about `addr`.
    pub fn function(&self, addr: &PciAddress) -> Option<PciFunction> {
        let dir = self.device_dir(addr)?;
        Some(self.function_at(*addr, dir))
    }

    fn function_at(&self, addr: PciAddress, dir: PathBuf) -> PciFunction {
        let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
        let mut ids = PciIds {
            vendor: read("vendor").and_then(|s| PciIds::parse_id_file(&s)),
            device: read("device").and_then(|s| PciIds::parse_id_file(&s)),
        };
        if ids.vendor.is_none() || ids.device.is_none() {
            let alias = read("modalias")
                .map(|s| PciIds::from_modalias(&s))
                .unwrap_or_default();
            ids.vendor = ids.vendor.or(alias.vendor);
            ids.device = ids.device.or(alias.device);
        }
        PciFunction {
            addr,
            ids,
            driver: Self::link_name(&dir.join("driver")),
            numa_node: read("numa_node").and_then(|s| s.trim().parse().ok()),
            netdevs: sorted_entries(&dir.join("net")),
            iommu_group: Self::link_name(&dir.join("iommu_group")),
            physfn: Self::link_name(&dir.join("physfn")).and_then(|s| s.parse().ok()),
            total_vfs: read("sriov_totalvfs").and_then(|s| s.trim().parse().ok()),
            num_vfs: read("sriov_numvfs").and_then(|s| s.trim().parse().ok()),
            dir,
        }
    }

    /// A PF and its `virtfnN` links (limited to N < sriov_numvfs when that is known).
    pub fn pf(&self, addr: &PciAddress) -> Option<PfDevice> {
        let function = self.function(addr)?;
        let mut vfs: Vec<(u32, PciAddress)> = fs::read_dir(&function.dir)
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let n: u32 = e
                    .file_name()
                    .to_str()?
                    .strip_prefix("virtfn")?
                    .parse()
                    .ok()?;
                let vf: PciAddress = Self::link_name(&e.path())?.parse().ok()?;
                Some((n, vf))
            })
            .filter(|(n, _)| function.num_vfs.is_none_or(|max| *n < max))
            .collect();
        vfs.sort();
        if !function.is_pf() && vfs.is_empty() {
            return None;
        }
        Some(PfDevice { function, vfs })
    }

    /// Every PF, sorted by address.
    pub fn pfs(&self) -> Vec<PfDevice> {
        self.pci_addresses()
            .unwrap_or_default()
            .iter()
            .filter_map(|a| self.pf(a))
            .collect()
    }

    /// The PCI function behind a netdev (`class/net/<name>/device`).
    pub fn netdev_pci(&self, netdev: &str) -> Option<PciAddress> {
        let dir = self
            .follow(&self.root.join("class/net").join(netdev).join("device"))
            .ok()?;
        dir.file_name()?.to_str()?.parse().ok()
    }

    /// The VF at `addr`, resolved to its PF and index. Errors name the key `deviceID`.
    pub fn vf(&self, addr: &PciAddress) -> Result<VfDevice> {
        let key = "deviceID";
        let Some(function) = self.function(addr) else {
            return Err(SriovError::config(
                key,
                format!(
                    "no PCI device {addr} on this node (nothing at {})",
                    self.bus_devices().join(addr.to_string()).display()
                ),
            ));
        };
        let Some(pf_addr) = function.physfn else {
            let what = if function.is_pf() {
                format!(
                    "a PF with {} VFs",
                    function.num_vfs.map_or("?".to_owned(), |n| n.to_string())
                )
            } else {
                "a PCI function without SR-IOV".to_owned()
            };
            return Err(SriovError::config(
                key,
                format!(
                    "{addr} ({}) is not an SR-IOV VF (no physfn link): it is {what}",
                    function.ids.describe()
                ),
            ));
        };
        let pf = self.pf(&pf_addr).ok_or_else(|| {
            SriovError::config(
                key,
                format!("the PF {pf_addr} of VF {addr} is not a PF on this node"),
            )
        })?;
        let index = pf
            .vfs
            .iter()
            .find(|(_, vf)| vf == addr)
            .map(|(n, _)| *n)
            .ok_or_else(|| {
                SriovError::config(
                    key,
                    format!(
                        "{addr} names PF {pf_addr} as its physfn, but that PF lists no \
                         virtfn link to it (sriov_numvfs {})",
                        pf.function
                            .num_vfs
                            .map_or("unknown".to_owned(), |n| n.to_string())
                    ),
                )
            })?;
        let netdev = function.netdevs.first().cloned();
        let link_type = netdev.as_ref().and_then(|n| {
            let t = fs::read_to_string(function.dir.join("net").join(n).join("type")).ok()?;
            Some(link_type_name(t.trim()))
        });
        Ok(VfDevice {
            addr: *addr,
            pf: pf_addr,
            index,
            pf_netdev: pf.netdev().map(str::to_owned),
            netdev,
            driver: function.driver,
            ids: function.ids,
            numa_node: function.numa_node,
            iommu_group: function.iommu_group,
            link_type,
            pcie_root: self.pcie_root(&function.dir),
        })
    }

    /// `pci<domain>:<bus>` of the device at `dir`: its resolved path runs
    /// `.../devices/pci0000:00/0000:00:02.0/...`.
    fn pcie_root(&self, dir: &Path) -> Option<String> {
        let resolved = self.follow(dir).ok()?;
        let inside = resolved.strip_prefix(&self.root).ok()?;
        let mut parts = inside.components().filter_map(|c| c.as_os_str().to_str());
        parts.find(|c| *c == "devices")?;
        parts.next().and_then(pcie_root_name)
    }
}

/// `pci<domain>:<bus>` (4 and 2 hex digits), lower case, when `name` is one.
fn pcie_root_name(name: &str) -> Option<String> {
    let (domain, bus) = name.strip_prefix("pci")?.split_once(':')?;
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    (hex(domain, 4) && hex(bus, 2)).then(|| name.to_ascii_lowercase())
}

/// The name the device plugin's `linkTypes` selector uses for an ARPHRD number.
pub fn link_type_name(arphrd: &str) -> String {
    match arphrd {
        "1" => "ether".to_owned(),
        "32" => "infiniband".to_owned(),
        "772" => "loopback".to_owned(),
        "65534" => "none".to_owned(),
        other => other.to_owned(),
    }
}

fn sorted_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Removes `.` and `a/..` lexically; the inputs are real (already resolved) directories.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn pcie_roots_are_pci_domain_and_bus_in_hex() {
        assert_eq!(pcie_root_name("pci0000:AE").as_deref(), Some("pci0000:ae"));
        for bad in [
            "pci0000:zz",
            "pci00:00",
            "pci0000",
            "0000:ae:00.0",
            "pcie0000:00",
        ] {
            assert_eq!(pcie_root_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn normalizes_parent_components() {
        assert_eq!(
            normalize(Path::new("/a/b/devices/x/../../bus/./y")),
            PathBuf::from("/a/b/bus/y")
        );
    }

    #[test]
    fn reroots_system_paths_into_a_fake_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sys");
        fs::create_dir_all(root.join("devices/pci0000:00/0000:00:01.0")).unwrap();
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        symlink(
            "/sys/devices/pci0000:00/0000:00:01.0",
            root.join("bus/pci/devices/0000:00:01.0"),
        )
        .unwrap();
        let sysfs = Sysfs::new(&root);
        let addr: PciAddress = "0000:00:01.0".parse().unwrap();
        assert_eq!(
            sysfs.device_dir(&addr),
            Some(root.join("devices/pci0000:00/0000:00:01.0"))
        );
    }

    #[test]
    fn link_types() {
        assert_eq!(link_type_name("1"), "ether");
        assert_eq!(link_type_name("32"), "infiniband");
        assert_eq!(link_type_name("280"), "280");
    }
}
