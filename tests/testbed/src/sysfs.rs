//! A fake sysfs tree with SR-IOV PFs and VFs, in either of the two layouts the reference
//! projects test with, whose VF `net/` entries name links the test creates (veth ends):
//!
//! - [`SysfsLayout::SriovCni`]: SR-IOV CNI's fixture. Device directories live under
//!   `sys/devices/pci0000:00/0000:00:02.0/<bdf>`; `sys/bus/pci/devices/<bdf>`,
//!   `sys/class/net/<if>`, `<if>/device`, `virtfnN` and `physfn` are **absolute** symlinks.
//! - [`SysfsLayout::DevicePlugin`]: the device plugin's fixture. Device directories are real
//!   directories `sys/bus/pci/devices/<bdf>`; `virtfnN -> ../<vf>`, `physfn -> ../<pf>`,
//!   `driver -> ../../../../bus/pci/drivers/<drv>`, `iommu_group ->
//!   ../../../../kernel/iommu_groups/<n>` are **relative**; IDs come from `modalias`.
//!
//! [`FakeSysfs::root`] is the value for `MULTINET_SYSFS_ROOT` (the `sys` directory). The tree
//! is removed on drop. [`FakeSysfsBuilder::minimal`] leaves out what SR-IOV CNI's fixture
//! leaves out (drivers, IDs, NUMA, IOMMU groups, `sriov_totalvfs`, link types).
//! The files VF provisioning writes are regular files here (`sriov_numvfs`, VF `driver_override`,
//! `bus/pci/drivers_probe`, each driver's `bind`/`unbind`, a netdev's `mtu`): a test reads back
//! what was written, and moves `driver` links itself ([`FakeSysfs::bind_driver`]) as the kernel would.
//!
//! ```no_run
//! use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
//! let fake = FakeSysfs::builder(SysfsLayout::DevicePlugin)
//!     .pf(PfSpec::new("0000:af:00.0", "ens1f0").vf("0000:af:02.0", "ens1f0v0").vf_dpdk("0000:af:02.1"))
//!     .build();
//! // Give the root to the code under test (setting the env var of a running, multi-threaded
//! // test process is unsafe in edition 2024): e.g. as `MULTINET_SYSFS_ROOT` of a child process.
//! let _sysfs_root = fake.root();
//! ```

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::names::unique_name;

/// Which reference fixture the tree imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysfsLayout {
    /// Absolute symlinks, devices under `sys/devices/...`.
    SriovCni,
    /// Relative symlinks, devices directly under `sys/bus/pci/devices`.
    DevicePlugin,
}

/// One VF of a [`PfSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfSpec {
    pub addr: String,
    /// Its netdev (a link the test created); None for a VF bound to a DPDK driver.
    pub netdev: Option<String>,
    pub driver: String,
}

/// A PF with its VFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSpec {
    pub addr: String,
    /// The PF's netdev (a link the test created, or a real PF such as netdevsim's).
    pub netdev: Option<String>,
    pub vendor: u16,
    pub device: u16,
    pub vf_device: u16,
    pub driver: String,
    pub vf_driver: String,
    pub total_vfs: u32,
    pub numa_node: i32,
    pub vfs: Vec<VfSpec>,
}

impl PfSpec {
    /// An Intel X710 PF (8086:1572, VFs 8086:154c, drivers i40e/iavf), 64 VFs possible.
    pub fn new(addr: &str, netdev: &str) -> Self {
        PfSpec {
            addr: addr.to_owned(),
            netdev: Some(netdev.to_owned()),
            vendor: 0x8086,
            device: 0x1572,
            vf_device: 0x154c,
            driver: "i40e".to_owned(),
            vf_driver: "iavf".to_owned(),
            total_vfs: 64,
            numa_node: 0,
            vfs: Vec::new(),
        }
    }

    /// Adds a kernel-driver VF whose netdev is `netdev`.
    pub fn vf(mut self, addr: &str, netdev: &str) -> Self {
        let driver = self.vf_driver.clone();
        self.vfs.push(VfSpec {
            addr: addr.to_owned(),
            netdev: Some(netdev.to_owned()),
            driver,
        });
        self
    }

    /// Adds a VF bound to vfio-pci (no netdev).
    pub fn vf_dpdk(mut self, addr: &str) -> Self {
        self.vfs.push(VfSpec {
            addr: addr.to_owned(),
            netdev: None,
            driver: "vfio-pci".to_owned(),
        });
        self
    }

    /// Sets vendor, PF device and VF device IDs.
    pub fn ids(mut self, vendor: u16, device: u16, vf_device: u16) -> Self {
        self.vendor = vendor;
        self.device = device;
        self.vf_device = vf_device;
        self
    }
}

/// A PCI function without SR-IOV (a NIC port, or a PF with SR-IOV disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlainSpec {
    addr: String,
    netdev: Option<String>,
    /// Some(0): an SR-IOV capable function with no VFs enabled.
    num_vfs: Option<u32>,
}

/// Builds a [`FakeSysfs`].
#[derive(Debug, Clone)]
pub struct FakeSysfsBuilder {
    layout: SysfsLayout,
    minimal: bool,
    pfs: Vec<PfSpec>,
    plain: Vec<PlainSpec>,
}

impl FakeSysfsBuilder {
    pub fn pf(mut self, pf: PfSpec) -> Self {
        self.pfs.push(pf);
        self
    }

    /// Adds a PCI function that is not a VF; `num_vfs` Some(0) makes it a PF with SR-IOV off.
    pub fn plain_device(mut self, addr: &str, netdev: Option<&str>, num_vfs: Option<u32>) -> Self {
        self.plain.push(PlainSpec {
            addr: addr.to_owned(),
            netdev: netdev.map(str::to_owned),
            num_vfs,
        });
        self
    }

    /// Only what SR-IOV CNI's fixture has: no driver links, IDs, NUMA, IOMMU groups,
    /// `sriov_totalvfs` or link types.
    pub fn minimal(mut self) -> Self {
        self.minimal = true;
        self
    }

    /// Creates the tree under a fresh directory in the system temp dir.
    pub fn build(self) -> FakeSysfs {
        let base = std::env::temp_dir().join(unique_name("mntb-sysfs-"));
        let fake = FakeSysfs {
            root: base.join("sys"),
            base,
            layout: self.layout,
            minimal: self.minimal,
        };
        for d in [
            "class/net",
            "bus/pci/devices",
            "bus/pci/drivers",
            "kernel/iommu_groups",
        ] {
            mkdir(&fake.root.join(d));
        }
        // Written by VF provisioning: the kernel's bus-wide probe file.
        write(&fake.root.join("bus/pci/drivers_probe"), "");
        let mut group = 0;
        for p in &self.plain {
            let dir = fake.create_device(&p.addr);
            if let Some(n) = p.num_vfs {
                write(&dir.join("sriov_numvfs"), &n.to_string());
                if !self.minimal {
                    write(&dir.join("sriov_totalvfs"), "8");
                }
            }
            if let Some(net) = &p.netdev {
                fake.create_netdev(&p.addr, net);
            }
        }
        for pf in &self.pfs {
            let pf_dir = fake.create_device(&pf.addr);
            write(&pf_dir.join("sriov_numvfs"), &pf.vfs.len().to_string());
            fake.describe(
                &pf.addr,
                pf.vendor,
                pf.device,
                &pf.driver,
                pf.numa_node,
                group,
            );
            group += 1;
            if !self.minimal {
                write(&pf_dir.join("sriov_totalvfs"), &pf.total_vfs.to_string());
            }
            if let Some(net) = &pf.netdev {
                fake.create_netdev(&pf.addr, net);
            }
            for (n, vf) in pf.vfs.iter().enumerate() {
                let vf_dir = fake.create_device(&vf.addr);
                // What the kernel shows while no override is set.
                write(&vf_dir.join("driver_override"), "(null)\n");
                fake.describe(
                    &vf.addr,
                    pf.vendor,
                    pf.vf_device,
                    &vf.driver,
                    pf.numa_node,
                    group,
                );
                group += 1;
                fake.link_device(&pf.addr, &format!("virtfn{n}"), &vf.addr);
                fake.link_device(&vf.addr, "physfn", &pf.addr);
                if let Some(net) = &vf.netdev {
                    fake.create_netdev(&vf.addr, net);
                }
            }
        }
        fake
    }
}

/// A fake sysfs tree, removed on drop.
#[derive(Debug)]
pub struct FakeSysfs {
    base: PathBuf,
    root: PathBuf,
    layout: SysfsLayout,
    minimal: bool,
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn write(p: &Path, content: &str) {
    fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn link(target: &Path, at: &Path) {
    symlink(target, at)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", at.display(), target.display()));
}

/// The parent bridge under which the SR-IOV CNI layout puts every device.
const SRIOV_CNI_PARENT: &str = "devices/pci0000:00/0000:00:02.0";

impl FakeSysfs {
    /// Starts a tree in `layout`.
    pub fn builder(layout: SysfsLayout) -> FakeSysfsBuilder {
        FakeSysfsBuilder {
            layout,
            minimal: false,
            pfs: Vec::new(),
            plain: Vec::new(),
        }
    }

    /// The sysfs root, for `MULTINET_SYSFS_ROOT`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> SysfsLayout {
        self.layout
    }

    /// The real directory of a device.
    pub fn device_dir(&self, addr: &str) -> PathBuf {
        match self.layout {
            SysfsLayout::SriovCni => self.root.join(SRIOV_CNI_PARENT).join(addr),
            SysfsLayout::DevicePlugin => self.root.join("bus/pci/devices").join(addr),
        }
    }

    fn create_device(&self, addr: &str) -> PathBuf {
        let dir = self.device_dir(addr);
        mkdir(&dir);
        if self.layout == SysfsLayout::SriovCni {
            link(&dir, &self.root.join("bus/pci/devices").join(addr));
        }
        dir
    }

    /// `from/<name>` pointing at the device `to`: absolute or `../<to>`.
    fn link_device(&self, from: &str, name: &str, to: &str) {
        let at = self.device_dir(from).join(name);
        match self.layout {
            SysfsLayout::SriovCni => link(&self.device_dir(to), &at),
            SysfsLayout::DevicePlugin => link(&Path::new("..").join(to), &at),
        }
    }

    /// `device/<name>` pointing at `sys/<under>`.
    fn link_up(&self, addr: &str, name: &str, under: &str) {
        let at = self.device_dir(addr).join(name);
        match self.layout {
            SysfsLayout::SriovCni => link(&self.root.join(under), &at),
            SysfsLayout::DevicePlugin => link(&Path::new("../../../..").join(under), &at),
        }
    }

    /// IDs, driver, NUMA node and IOMMU group (none of them in the minimal tree).
    fn describe(&self, addr: &str, vendor: u16, device: u16, driver: &str, numa: i32, group: u32) {
        if self.minimal {
            return;
        }
        let dir = self.device_dir(addr);
        match self.layout {
            SysfsLayout::SriovCni => {
                write(&dir.join("vendor"), &format!("0x{vendor:04x}\n"));
                write(&dir.join("device"), &format!("0x{device:04x}\n"));
            }
            SysfsLayout::DevicePlugin => write(
                &dir.join("modalias"),
                &format!(
                    "pci:v0000{vendor:04X}d0000{device:04X}sv0000{vendor:04X}sd00000000bc02sc00i00\n"
                ),
            ),
        }
        write(&dir.join("numa_node"), &format!("{numa}\n"));
        self.bind_driver(addr, Some(driver));
        mkdir(&self.root.join(format!("kernel/iommu_groups/{group}")));
        self.link_up(addr, "iommu_group", &format!("kernel/iommu_groups/{group}"));
    }

    /// Binds the device to `driver` (None: unbinds), as `echo > bind` would.
    pub fn bind_driver(&self, addr: &str, driver: Option<&str>) {
        let at = self.device_dir(addr).join("driver");
        let _ = fs::remove_file(&at);
        if let Some(d) = driver {
            let dir = self.root.join("bus/pci/drivers").join(d);
            mkdir(&dir);
            // The driver's bind/unbind files, as the kernel offers them (write-only there).
            for f in ["bind", "unbind"] {
                if !dir.join(f).exists() {
                    write(&dir.join(f), "");
                }
            }
            self.link_up(addr, "driver", &format!("bus/pci/drivers/{d}"));
        }
    }

    fn create_netdev(&self, addr: &str, netdev: &str) {
        let dir = self.device_dir(addr).join("net").join(netdev);
        mkdir(&dir);
        if !self.minimal {
            write(&dir.join("type"), "1\n");
            write(&dir.join("mtu"), "1500\n");
        }
        if self.layout == SysfsLayout::SriovCni {
            link(&dir, &self.root.join("class/net").join(netdev));
            link(&self.device_dir(addr), &dir.join("device"));
        }
    }

    /// The device's netdev names as its `net/` directory lists them.
    pub fn netdevs(&self, addr: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.device_dir(addr).join("net"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Renames the device's netdev entry, as the kernel does when the link is renamed (or
    /// removes it with None, as when the driver unbinds).
    pub fn set_netdev(&self, addr: &str, netdev: Option<&str>) {
        for old in self.netdevs(addr) {
            let _ = fs::remove_dir_all(self.device_dir(addr).join("net").join(&old));
            let _ = fs::remove_file(self.root.join("class/net").join(&old));
        }
        if let Some(n) = netdev {
            self.create_netdev(addr, n);
        }
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(layout: SysfsLayout) -> FakeSysfs {
        FakeSysfs::builder(layout)
            .pf(PfSpec::new("0000:af:00.1", "enp175s0f1")
                .vf("0000:af:06.0", "enp175s6")
                .vf_dpdk("0000:af:06.1"))
            .plain_device("0000:05:00.0", Some("ens1"), Some(0))
            .build()
    }

    fn link_target(p: &Path) -> PathBuf {
        fs::read_link(p).unwrap()
    }

    #[test]
    fn sriov_cni_layout_uses_absolute_links() {
        let t = tree(SysfsLayout::SriovCni);
        let bus = t.root().join("bus/pci/devices/0000:af:06.0");
        assert!(link_target(&bus).is_absolute());
        assert!(link_target(&bus).starts_with(t.root().join("devices")));
        let physfn = bus.join("physfn");
        assert_eq!(link_target(&physfn), t.device_dir("0000:af:00.1"));
        assert_eq!(
            fs::read_to_string(bus.join("physfn/sriov_numvfs")).unwrap(),
            "2"
        );
        assert!(t.root().join("class/net/enp175s6/device/physfn").exists());
        assert!(bus.join("net/enp175s6").is_dir());
        assert_eq!(
            fs::read_to_string(bus.join("vendor")).unwrap().trim(),
            "0x8086"
        );
        assert!(
            link_target(&t.root().join("bus/pci/devices/0000:af:06.1/driver"))
                .ends_with("drivers/vfio-pci")
        );
    }

    #[test]
    fn device_plugin_layout_uses_relative_links() {
        let t = tree(SysfsLayout::DevicePlugin);
        let dev = t.root().join("bus/pci/devices/0000:af:06.0");
        assert!(!dev.is_symlink() && dev.is_dir());
        assert_eq!(
            link_target(&dev.join("physfn")),
            Path::new("../0000:af:00.1")
        );
        assert_eq!(
            link_target(&t.root().join("bus/pci/devices/0000:af:00.1/virtfn1")),
            Path::new("../0000:af:06.1")
        );
        assert_eq!(
            link_target(&dev.join("driver")),
            Path::new("../../../../bus/pci/drivers/iavf")
        );
        assert!(dev.join("driver").exists(), "relative driver link resolves");
        assert!(dev.join("iommu_group").exists());
        assert!(
            fs::read_to_string(dev.join("modalias"))
                .unwrap()
                .starts_with("pci:v00008086d0000154C")
        );
    }

    #[test]
    fn minimal_tree_has_only_the_reference_files() {
        let t = FakeSysfs::builder(SysfsLayout::SriovCni)
            .minimal()
            .pf(PfSpec::new("0000:af:00.1", "p0").vf("0000:af:06.0", "v0"))
            .build();
        let vf = t.device_dir("0000:af:06.0");
        for absent in ["driver", "vendor", "numa_node", "iommu_group"] {
            assert!(!vf.join(absent).exists(), "{absent}");
        }
        assert!(!t.device_dir("0000:af:00.1").join("sriov_totalvfs").exists());
        assert!(vf.join("physfn").exists());
    }

    #[test]
    fn netdev_entries_follow_renames_and_the_tree_is_removed() {
        let t = tree(SysfsLayout::SriovCni);
        t.set_netdev("0000:af:06.0", Some("dev42"));
        assert_eq!(t.netdevs("0000:af:06.0"), vec!["dev42"]);
        assert!(!t.root().join("class/net/enp175s6").exists());
        t.set_netdev("0000:af:06.0", None);
        assert!(t.netdevs("0000:af:06.0").is_empty());
        let base = t.root().parent().unwrap().to_owned();
        drop(t);
        assert!(!base.exists());
    }
}
