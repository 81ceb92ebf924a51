//! `multinet sriov list`: every PF and VF on the node with driver, netdev, owner and names.

use std::fmt;

use crate::pci::PciAddress;
use crate::state::StateDir;
use crate::sysfs::Sysfs;

/// One line of the listing: a PF (vf fields None) or one of its VFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub pf: PciAddress,
    pub pf_netdev: Option<String>,
    /// None on the PF's own row.
    pub vf_index: Option<u32>,
    pub vf: Option<PciAddress>,
    pub netdev: Option<String>,
    pub driver: Option<String>,
    pub numa_node: Option<i32>,
    /// "containerID/ifname" of the allocation record, "(stale)" appended when its netns is gone.
    pub owner: Option<String>,
    /// "namespace/name" of the pod that owns the VF.
    pub pod: Option<String>,
    /// Vendor and device names (or IDs) from the PCI ID database.
    pub name: String,
    /// For a PF: "numvfs/totalvfs".
    pub vfs: Option<String>,
}

/// PFs and their VFs, in PCI order, with owners and their pods from the allocation records.
pub fn list_devices(sysfs: &Sysfs, state: &StateDir) -> Vec<DeviceRow> {
    list_devices_with(sysfs, state, |_| None)
}

/// Like [`list_devices`]; a record that names no pod (written by an earlier version, or an
/// ADD without K8S_POD_* args) gets the one `pod_of(container ID)` finds elsewhere (the
/// meta-plugin's attachment record).
pub fn list_devices_with(
    sysfs: &Sysfs,
    state: &StateDir,
    pod_of: impl Fn(&str) -> Option<String>,
) -> Vec<DeviceRow> {
    let records = state.records();
    let mut rows = Vec::new();
    for pf in sysfs.pfs() {
        let f = &pf.function;
        rows.push(DeviceRow {
            pf: f.addr,
            pf_netdev: pf.netdev().map(str::to_owned),
            vf_index: None,
            vf: None,
            netdev: pf.netdev().map(str::to_owned),
            driver: f.driver.clone(),
            numa_node: f.numa_node,
            owner: None,
            pod: None,
            name: f.ids.describe(),
            vfs: Some(format!(
                "{}/{}",
                f.num_vfs.map_or("?".to_owned(), |n| n.to_string()),
                f.total_vfs.map_or("?".to_owned(), |n| n.to_string())
            )),
        });
        for (index, addr) in &pf.vfs {
            let func = sysfs.function(addr);
            let record = records.iter().find(|r| r.pci == *addr);
            let pod = record.and_then(|r| r.pod.clone().or_else(|| pod_of(&r.container_id)));
            let owner = record.map(|r| {
                let stale = if r.stale_reason().is_some() {
                    " (stale)"
                } else {
                    ""
                };
                let attachment = format!("{}/{}{stale}", r.container_id, r.ifname);
                match (&r.claim, r.is_attached()) {
                    (Some(c), true) => format!("{attachment} (claim {})", c.key()),
                    (Some(c), false) => format!("claim {}", c.key()),
                    (None, _) => attachment,
                }
            });
            rows.push(DeviceRow {
                pf: f.addr,
                pf_netdev: pf.netdev().map(str::to_owned),
                vf_index: Some(*index),
                vf: Some(*addr),
                netdev: func.as_ref().and_then(|v| v.netdevs.first().cloned()),
                driver: func.as_ref().and_then(|v| v.driver.clone()),
                numa_node: func.as_ref().and_then(|v| v.numa_node),
                owner,
                pod,
                name: func.map_or_else(|| "missing".to_owned(), |v| v.ids.describe()),
                vfs: None,
            });
        }
    }
    rows
}

/// The listing as an aligned text table.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTable<'a>(pub &'a [DeviceRow]);

impl fmt::Display for DeviceTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_owned());
        let header = [
            "PCI", "KIND", "PF", "VF", "NETDEV", "DRIVER", "NUMA", "POD", "OWNER", "DEVICE",
        ];
        let mut lines: Vec<[String; 10]> = vec![header.map(str::to_owned)];
        for r in self.0 {
            let (pci, kind) = match r.vf {
                Some(vf) => (format!("  {vf}"), "VF".to_owned()),
                None => (r.pf.to_string(), format!("PF {}", dash(&r.vfs))),
            };
            lines.push([
                pci,
                kind,
                dash(&r.pf_netdev),
                r.vf_index.map_or("-".to_owned(), |i| i.to_string()),
                dash(&r.netdev),
                dash(&r.driver),
                r.numa_node.map_or("-".to_owned(), |n| n.to_string()),
                dash(&r.pod),
                dash(&r.owner),
                r.name.clone(),
            ]);
        }
        let mut widths = [0usize; 10];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for line in &lines {
            let mut out = String::new();
            for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
                if i + 1 == line.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  "));
                }
            }
            writeln!(f, "{}", out.trim_end())?;
        }
        Ok(())
    }
}
