//! Reads what the planner needs: the node's PFs from sysfs, and who holds which VF from the
//! allocation records.

use std::fs;
use std::path::Path;

use crate::pci::{PciAddress, PciIds};
use crate::state::StateDir;
use crate::sysfs::Sysfs;

use super::plan::{Holder, Holders, NodeView, PfView, VfView};
use super::policy::NodePolicy;

/// Every PCI PF, then each PF the policy names by netdev that is no PCI function but has
/// `sriov_numvfs` (netdevsim: `class/net/<pf>/device/sriov_numvfs`).
pub fn read_view(sysfs: &Sysfs, policy: &NodePolicy) -> NodeView {
    let mut pfs: Vec<PfView> = sysfs
        .pfs()
        .into_iter()
        .map(|pf| {
            let netdev = pf.netdev().map(str::to_owned);
            PfView {
                mtu: netdev
                    .as_deref()
                    .and_then(|n| read_mtu(&pf.function.dir, n)),
                vfs: pf
                    .vfs
                    .iter()
                    .map(|(index, addr)| VfView {
                        index: *index,
                        pci: *addr,
                        driver: sysfs.function(addr).and_then(|f| f.driver),
                    })
                    .collect(),
                dir: pf.function.dir,
                pci: Some(pf.function.addr),
                netdev,
                ids: pf.function.ids,
                num_vfs: pf.function.num_vfs,
                total_vfs: pf.function.total_vfs,
            }
        })
        .collect();
    let named = policy
        .entries
        .iter()
        .flat_map(|e| e.nic_selector.pf_names.iter());
    for name in named {
        if pfs
            .iter()
            .any(|pf| pf.netdev.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        let Ok(dir) = sysfs.follow(&sysfs.root().join("class/net").join(name).join("device"))
        else {
            continue;
        };
        let is_pci = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<PciAddress>().is_ok());
        if is_pci || pfs.iter().any(|pf| pf.dir == dir) || !dir.join("sriov_numvfs").exists() {
            continue;
        }
        pfs.push(PfView {
            num_vfs: read_number(&dir.join("sriov_numvfs")),
            total_vfs: read_number(&dir.join("sriov_totalvfs")),
            mtu: read_mtu(&dir, name),
            dir,
            pci: None,
            netdev: Some(name.clone()),
            ids: PciIds::default(),
            vfs: Vec::new(),
        });
    }
    NodeView { pfs }
}

/// The VFs that live attachments hold (a record whose netns is gone holds nothing).
pub fn live_holders(state: &StateDir) -> Holders {
    state
        .records()
        .iter()
        .filter_map(|r| Some((r.pci, Holder::of(r)?)))
        .collect()
}

/// `<device>/net/<netdev>/mtu`: the same file as `class/net/<netdev>/mtu`.
pub(crate) fn mtu_path(device_dir: &Path, netdev: &str) -> std::path::PathBuf {
    device_dir.join("net").join(netdev).join("mtu")
}

fn read_mtu(device_dir: &Path, netdev: &str) -> Option<u32> {
    read_number(&mtu_path(device_dir, netdev))
}

fn read_number(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
