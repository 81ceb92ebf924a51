//! The planner: (policy, the node's PFs as sysfs shows them, who holds which VF) -> ordered
//! steps, and what is refused and why. Pure: the view and the holders are read elsewhere
//! ([`super::view`]), the steps are done elsewhere ([`super::apply`]).
//!
//! Per selected PF, in this order: `sriov_numvfs` (through 0 when the count changes: the kernel
//! refuses N over M with EBUSY), then each VF's driver (`driver_override`, unbind from the
//! current driver, `drivers_probe`), then the PF's MTU. A VF that a live attachment holds blocks
//! a count change of its PF and its own rebinding; other PFs and other VFs go on. A PF that no
//! entry selects is never touched.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::pci::{PciAddress, PciIds};
use crate::selector::{PfNameSelector, PoolSpec, Selectors};
use crate::state::AllocationRecord;

use super::policy::{DeviceType, NodePolicy, PolicyEntry};

/// A PF as sysfs shows it: a PCI function, or a device that is no PCI function but has
/// `sriov_numvfs` (netdevsim), found through its netdev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfView {
    /// Its real sysfs directory (where `sriov_numvfs` is).
    pub dir: PathBuf,
    /// None for a PF that is no PCI function.
    pub pci: Option<PciAddress>,
    pub netdev: Option<String>,
    pub ids: PciIds,
    pub num_vfs: Option<u32>,
    pub total_vfs: Option<u32>,
    /// MTU of its netdev.
    pub mtu: Option<u32>,
    pub vfs: Vec<VfView>,
}

impl PfView {
    /// "0000:af:00.0 (ens1f0)", or the directory's name and the netdev for a non-PCI PF.
    pub fn label(&self) -> String {
        let id = self.pci.map(|a| a.to_string()).unwrap_or_else(|| {
            self.dir.file_name().map_or_else(
                || self.dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        match &self.netdev {
            Some(n) => format!("{id} ({n})"),
            None => id,
        }
    }
}

/// A VF of a [`PfView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfView {
    /// N of the PF's `virtfnN`.
    pub index: u32,
    pub pci: PciAddress,
    pub driver: Option<String>,
}

/// The PFs of the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub pfs: Vec<PfView>,
}

/// Who holds a VF: a live attachment, a DRA claim, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub container_id: String,
    pub ifname: String,
    /// `namespace/name`, when the record names it.
    pub pod: Option<String>,
    /// `namespace/name` of the ResourceClaim holding the VF, if one does.
    pub claim: Option<String>,
}

impl Holder {
    /// The holder a record names, when it holds the VF: a claim holds it until unprepared, an
    /// attachment while its netns lives.
    pub fn of(r: &AllocationRecord) -> Option<Holder> {
        let claim = r.claim.as_ref().map(|c| c.key());
        let attached = r.is_attached() && r.stale_reason().is_none();
        (claim.is_some() || attached).then(|| Holder {
            container_id: if attached {
                r.container_id.clone()
            } else {
                String::new()
            },
            ifname: if attached {
                r.ifname.clone()
            } else {
                String::new()
            },
            pod: if attached { r.pod.clone() } else { None },
            claim,
        })
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(claim) = &self.claim
            && self.container_id.is_empty()
        {
            return write!(f, "ResourceClaim {claim}");
        }
        match &self.pod {
            Some(pod) => write!(
                f,
                "pod {pod} (container {}, {})",
                self.container_id, self.ifname
            ),
            None => write!(f, "container {} ({})", self.container_id, self.ifname),
        }
    }
}

/// Live holders by VF.
pub type Holders = BTreeMap<PciAddress, Holder>;

/// The PF a step works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfRef {
    pub label: String,
    pub dir: PathBuf,
}

/// One write to sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `<pf>/sriov_numvfs` from `from` to `to`.
    SetNumVfs { pf: PfRef, from: u32, to: u32 },
    /// `<vf>/driver_override`: the driver name, or empty to clear it.
    SetDriverOverride {
        pf: PfRef,
        vf: PciAddress,
        driver: Option<String>,
    },
    /// `bus/pci/drivers/<driver>/unbind` with the VF's address.
    Unbind {
        pf: PfRef,
        vf: PciAddress,
        driver: String,
    },
    /// `bus/pci/drivers_probe` with the VF's address: the kernel binds the override, or the
    /// driver that matches.
    Probe { pf: PfRef, vf: PciAddress },
    /// `class/net/<netdev>/mtu`.
    SetMtu {
        pf: PfRef,
        netdev: String,
        from: Option<u32>,
        to: u32,
    },
}

impl Step {
    pub fn pf(&self) -> &PfRef {
        match self {
            Step::SetNumVfs { pf, .. }
            | Step::SetDriverOverride { pf, .. }
            | Step::Unbind { pf, .. }
            | Step::Probe { pf, .. }
            | Step::SetMtu { pf, .. } => pf,
        }
    }

    /// The VF the step works on, if it is a VF step.
    pub fn vf(&self) -> Option<PciAddress> {
        match self {
            Step::SetDriverOverride { vf, .. }
            | Step::Unbind { vf, .. }
            | Step::Probe { vf, .. } => Some(*vf),
            Step::SetNumVfs { .. } | Step::SetMtu { .. } => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::SetNumVfs { pf, from, to } => {
                write!(f, "{}: sriov_numvfs {from} -> {to}", pf.label)
            }
            Step::SetDriverOverride { pf, vf, driver } => write!(
                f,
                "{}: VF {vf}: driver_override = {}",
                pf.label,
                driver.as_deref().unwrap_or("(cleared)")
            ),
            Step::Unbind { pf, vf, driver } => {
                write!(f, "{}: VF {vf}: unbind from {driver}", pf.label)
            }
            Step::Probe { pf, vf } => write!(f, "{}: VF {vf}: drivers_probe", pf.label),
            Step::SetMtu {
                pf,
                netdev,
                from,
                to,
            } => write!(
                f,
                "{}: mtu of {netdev} {} -> {to}",
                pf.label,
                from.map_or("?".to_owned(), |m| m.to_string())
            ),
        }
    }
}

/// Something the policy asks for that is not done, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The PF's label.
    pub pf: String,
    /// The entry's name.
    pub entry: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.pf, self.entry, self.reason)
    }
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub refused: Vec<Refusal>,
    /// Things worth saying that are no failure (an entry that selects no PF on this node; VF
    /// drivers checked once new VFs exist).
    pub notes: Vec<String>,
    /// The pools the policy forms, with selectors for the VFs of the PFs it selected here.
    pub pools: Vec<PoolSpec>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.refused.is_empty()
    }
}

/// Plans the policy over the view. Deterministic: PFs in the view's order, steps in the order
/// above.
pub fn plan(policy: &NodePolicy, view: &NodeView, holders: &Holders) -> Plan {
    let mut out = Plan::default();
    let selected: Vec<Vec<&PfView>> = policy
        .entries
        .iter()
        .map(|e| {
            view.pfs
                .iter()
                .filter(|pf| e.nic_selector.matches(pf.netdev.as_deref(), pf.pci, pf.ids))
                .collect()
        })
        .collect();
    for (entry, pfs) in policy.entries.iter().zip(&selected) {
        if pfs.is_empty() {
            out.notes
                .push(format!("{}: selects no PF on this node", entry.name));
        }
    }
    for pf in &view.pfs {
        let entries: Vec<&PolicyEntry> = policy
            .entries
            .iter()
            .zip(&selected)
            .filter(|(_, pfs)| pfs.iter().any(|p| p.dir == pf.dir))
            .map(|(e, _)| e)
            .collect();
        match entries.as_slice() {
            [] => {}
            [entry] => plan_pf(entry, pf, holders, &mut out),
            several => out.refused.push(Refusal {
                pf: pf.label(),
                entry: several
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: "selected by more than one policy entry: nothing is done to it".into(),
            }),
        }
    }
    out.pools = pools(policy, &selected);
    out
}

fn plan_pf(entry: &PolicyEntry, pf: &PfView, holders: &Holders, out: &mut Plan) {
    let pf_ref = PfRef {
        label: pf.label(),
        dir: pf.dir.clone(),
    };
    let refuse = |out: &mut Plan, reason: String| {
        out.refused.push(Refusal {
            pf: pf_ref.label.clone(),
            entry: entry.name.clone(),
            reason,
        })
    };
    let Some(current) = pf.num_vfs else {
        refuse(
            out,
            "has no sriov_numvfs: SR-IOV is not enabled on it".into(),
        );
        return;
    };
    let wanted = entry.num_vfs;
    if let Some(total) = pf.total_vfs
        && wanted > total
    {
        refuse(
            out,
            format!("numVfs {wanted} is more than the PF offers (sriov_totalvfs {total})"),
        );
        return;
    }
    if current != wanted {
        let held: Vec<String> = pf
            .vfs
            .iter()
            .filter_map(|vf| {
                holders
                    .get(&vf.pci)
                    .map(|h| format!("VF {} is held by {h}", vf.pci))
            })
            .collect();
        if !held.is_empty() {
            refuse(
                out,
                format!(
                    "sriov_numvfs stays {current} (the policy wants {wanted}): {}",
                    held.join("; ")
                ),
            );
        } else {
            if current > 0 {
                out.steps.push(Step::SetNumVfs {
                    pf: pf_ref.clone(),
                    from: current,
                    to: 0,
                });
            }
            if wanted > 0 {
                out.steps.push(Step::SetNumVfs {
                    pf: pf_ref.clone(),
                    from: 0,
                    to: wanted,
                });
                out.notes.push(format!(
                    "{}: the drivers of its new VFs ({}) are set once they exist",
                    pf_ref.label, entry.device_type
                ));
            }
        }
    } else {
        for vf in &pf.vfs {
            plan_vf(entry.device_type, &pf_ref, vf, holders, out, &entry.name);
        }
    }
    if let Some(mtu) = entry.mtu {
        match &pf.netdev {
            None => refuse(out, format!("mtu {mtu}: the PF has no netdev")),
            Some(netdev) if pf.mtu != Some(mtu) => out.steps.push(Step::SetMtu {
                pf: pf_ref.clone(),
                netdev: netdev.clone(),
                from: pf.mtu,
                to: mtu,
            }),
            Some(_) => {}
        }
    }
}

fn plan_vf(
    device_type: DeviceType,
    pf: &PfRef,
    vf: &VfView,
    holders: &Holders,
    out: &mut Plan,
    entry: &str,
) {
    if device_type.is_satisfied_by(vf.driver.as_deref()) {
        return;
    }
    if let Some(h) = holders.get(&vf.pci) {
        out.refused.push(Refusal {
            pf: pf.label.clone(),
            entry: entry.to_owned(),
            reason: format!(
                "VF {} stays with driver {} (the policy wants {device_type}): it is held by {h}",
                vf.pci,
                vf.driver.as_deref().unwrap_or("(none)")
            ),
        });
        return;
    }
    out.steps.push(Step::SetDriverOverride {
        pf: pf.clone(),
        vf: vf.pci,
        driver: device_type.driver_override().map(str::to_owned),
    });
    if let Some(driver) = &vf.driver {
        out.steps.push(Step::Unbind {
            pf: pf.clone(),
            vf: vf.pci,
            driver: driver.clone(),
        });
    }
    out.steps.push(Step::Probe {
        pf: pf.clone(),
        vf: vf.pci,
    });
}

/// Each named pool with selectors for the VFs of the PFs its entries selected: by PF netdev
/// (by VF address for a PF without one), and by driver for vfio-pci, so that a VF still on
/// its kernel driver is not handed out as a DPDK VF.
fn pools(policy: &NodePolicy, selected: &[Vec<&PfView>]) -> Vec<PoolSpec> {
    let mut pools: Vec<PoolSpec> = Vec::new();
    for (entry, pfs) in policy.entries.iter().zip(selected) {
        let Some(name) = &entry.pool else { continue };
        let at = match pools.iter().position(|p| &p.name == name) {
            Some(i) => i,
            None => {
                pools.push(PoolSpec {
                    name: name.clone(),
                    selectors: Selectors {
                        drivers: entry
                            .device_type
                            .driver_override()
                            .map(|d| vec![d.to_owned()])
                            .unwrap_or_default(),
                        ..Selectors::default()
                    },
                });
                pools.len() - 1
            }
        };
        let sel = &mut pools[at].selectors;
        for pf in pfs {
            match &pf.netdev {
                Some(n) => sel.pf_names.push(PfNameSelector {
                    pf: n.clone(),
                    ranges: None,
                }),
                None => sel.pci_addresses.extend(pf.vfs.iter().map(|v| v.pci)),
            }
        }
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::policy::NodePolicy;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    /// A PCI PF `0000:af:0N.0` named `ens1fN` with `vfs` VFs `0000:af:1N.i` on `driver`.
    fn pf(n: u8, vfs: u32, driver: &str) -> PfView {
        PfView {
            dir: PathBuf::from(format!("/sys/bus/pci/devices/0000:af:0{n}.0")),
            pci: Some(addr(&format!("0000:af:0{n}.0"))),
            netdev: Some(format!("ens1f{n}")),
            ids: PciIds {
                vendor: Some(0x8086),
                device: Some(0x1572),
            },
            num_vfs: Some(vfs),
            total_vfs: Some(8),
            mtu: Some(1500),
            vfs: (0..vfs)
                .map(|i| VfView {
                    index: i,
                    pci: addr(&format!("0000:af:1{n}.{i}")),
                    driver: Some(driver.to_owned()),
                })
                .collect(),
        }
    }

    fn policy(yaml: &str) -> NodePolicy {
        NodePolicy::parse(yaml).unwrap()
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(ToString::to_string).collect()
    }

    fn held(vf: &str, pod: &str) -> Holders {
        [(
            addr(vf),
            Holder {
                container_id: "c0ffee".into(),
                ifname: "net1".into(),
                pod: Some(pod.into()),
                claim: None,
            },
        )]
        .into()
    }

    #[test]
    fn a_count_change_goes_through_zero() {
        let view = NodeView {
            pfs: vec![pf(0, 2, "iavf")],
        };
        let p = plan(
            &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 4}]"),
            &view,
            &Holders::new(),
        );
        assert_eq!(
            lines(&p),
            [
                "0000:af:00.0 (ens1f0): sriov_numvfs 2 -> 0",
                "0000:af:00.0 (ens1f0): sriov_numvfs 0 -> 4"
            ]
        );
        assert!(p.refused.is_empty());
        assert!(p.notes[0].contains("once they exist"), "{:?}", p.notes);
    }

    #[test]
    fn from_zero_and_to_zero_take_one_write() {
        let view = NodeView {
            pfs: vec![pf(0, 0, "iavf"), pf(1, 3, "iavf")],
        };
        let p = plan(
            &policy(
                "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 3}, \
                 {nicSelector: {rootDevices: ['0000:af:01.0']}, numVfs: 0}]",
            ),
            &view,
            &Holders::new(),
        );
        assert_eq!(
            lines(&p),
            [
                "0000:af:00.0 (ens1f0): sriov_numvfs 0 -> 3",
                "0000:af:01.0 (ens1f1): sriov_numvfs 3 -> 0"
            ]
        );
    }

    #[test]
    fn nothing_to_do_when_the_node_matches() {
        let view = NodeView {
            pfs: vec![pf(0, 2, "iavf")],
        };
        let p = plan(
            &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, mtu: 1500}]"),
            &view,
            &Holders::new(),
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn vfs_are_rebound_to_vfio_and_back() {
        let to_vfio = plan(
            &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: vfio-pci}]"),
            &NodeView {
                pfs: vec![pf(0, 2, "iavf")],
            },
            &Holders::new(),
        );
        assert_eq!(
            lines(&to_vfio),
            [
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: driver_override = vfio-pci",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: unbind from iavf",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: drivers_probe",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.1: driver_override = vfio-pci",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.1: unbind from iavf",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.1: drivers_probe",
            ]
        );
        let mut mixed = pf(0, 2, "vfio-pci");
        mixed.vfs[1].driver = None;
        let back = plan(
            &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2}]"),
            &NodeView { pfs: vec![mixed] },
            &Holders::new(),
        );
        assert_eq!(
            lines(&back),
            [
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: driver_override = (cleared)",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: unbind from vfio-pci",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.0: drivers_probe",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.1: driver_override = (cleared)",
                "0000:af:00.0 (ens1f0): VF 0000:af:10.1: drivers_probe",
            ],
            "an unbound VF is only probed"
        );
    }

    #[test]
    fn a_held_vf_blocks_its_pf_only() {
        let view = NodeView {
            pfs: vec![pf(0, 2, "iavf"), pf(1, 2, "iavf")],
        };
        let p = plan(
            &policy(
                "[{name: a, nicSelector: {pfNames: [ens1f0]}, numVfs: 4, mtu: 9000}, \
                 {name: b, nicSelector: {pfNames: [ens1f1]}, numVfs: 4}]",
            ),
            &view,
            &held("0000:af:10.1", "default/web"),
        );
        assert_eq!(
            lines(&p),
            [
                "0000:af:00.0 (ens1f0): mtu of ens1f0 1500 -> 9000",
                "0000:af:01.0 (ens1f1): sriov_numvfs 2 -> 0",
                "0000:af:01.0 (ens1f1): sriov_numvfs 0 -> 4",
            ]
        );
        assert_eq!(p.refused.len(), 1);
        let r = p.refused[0].to_string();
        assert!(r.starts_with("0000:af:00.0 (ens1f0) (a): "), "{r}");
        assert!(
            r.contains("sriov_numvfs stays 2 (the policy wants 4)"),
            "{r}"
        );
        assert!(
            r.contains("VF 0000:af:10.1 is held by pod default/web (container c0ffee, net1)"),
            "{r}"
        );
    }

    #[test]
    fn a_held_vf_keeps_its_driver_while_the_others_move() {
        let p = plan(
            &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: vfio-pci}]"),
            &NodeView {
                pfs: vec![pf(0, 2, "iavf")],
            },
            &held("0000:af:10.0", "ns/db"),
        );
        assert!(
            lines(&p).iter().all(|l| l.contains("0000:af:10.1")),
            "{p:?}"
        );
        assert_eq!(lines(&p).len(), 3);
        assert!(
            p.refused[0]
                .reason
                .contains("VF 0000:af:10.0 stays with driver iavf")
        );
        assert!(p.refused[0].reason.contains("pod ns/db"));
    }

    #[test]
    fn unselected_pfs_are_never_touched() {
        let view = NodeView {
            pfs: vec![pf(0, 2, "vfio-pci"), pf(1, 0, "iavf")],
        };
        let p = plan(
            &policy(
                "[{nicSelector: {vendor: '8086', deviceID: '1572', rootDevices: ['0000:af:01.0']}, numVfs: 1}]",
            ),
            &view,
            &Holders::new(),
        );
        assert_eq!(lines(&p), ["0000:af:01.0 (ens1f1): sriov_numvfs 0 -> 1"]);
        let none = plan(
            &policy("[{nicSelector: {vendor: '15b3', deviceID: '1017'}, numVfs: 1}]"),
            &view,
            &Holders::new(),
        );
        assert!(none.is_empty());
        assert_eq!(none.notes, ["policies[0]: selects no PF on this node"]);
    }

    #[test]
    fn refusals_name_the_reason() {
        let mut no_sriov = pf(0, 0, "iavf");
        no_sriov.num_vfs = None;
        let mut no_netdev = pf(2, 1, "iavf");
        no_netdev.netdev = None;
        let view = NodeView {
            pfs: vec![no_sriov, pf(1, 0, "iavf"), no_netdev],
        };
        let p = plan(
            &policy(
                "[{name: a, nicSelector: {pfNames: [ens1f0]}, numVfs: 1}, \
                 {name: b, nicSelector: {pfNames: [ens1f1]}, numVfs: 9}, \
                 {name: c, nicSelector: {rootDevices: ['0000:af:01.0']}, numVfs: 1}, \
                 {name: d, nicSelector: {rootDevices: ['0000:af:02.0']}, numVfs: 1, mtu: 9000}]",
            ),
            &view,
            &Holders::new(),
        );
        let r: Vec<String> = p.refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            r,
            [
                "0000:af:00.0 (ens1f0) (a): has no sriov_numvfs: SR-IOV is not enabled on it",
                "0000:af:01.0 (ens1f1) (b, c): selected by more than one policy entry: nothing is done to it",
                "0000:af:02.0 (d): mtu 9000: the PF has no netdev",
            ]
        );
        assert!(p.steps.is_empty());
        let over = plan(
            &policy("[{nicSelector: {pfNames: [ens1f1]}, numVfs: 9}]"),
            &NodeView {
                pfs: vec![pf(1, 0, "iavf")],
            },
            &Holders::new(),
        );
        assert!(over.refused[0].reason.contains("sriov_totalvfs 8"));
    }

    #[test]
    fn a_non_pci_pf_is_planned_by_its_netdev() {
        let nsim = PfView {
            dir: PathBuf::from("/sys/devices/netdevsim30"),
            pci: None,
            netdev: Some("eni30np1".into()),
            ids: PciIds::default(),
            num_vfs: Some(0),
            total_vfs: None,
            mtu: Some(1500),
            vfs: Vec::new(),
        };
        let p = plan(
            &policy("[{nicSelector: {pfNames: [eni30np1]}, numVfs: 3}]"),
            &NodeView { pfs: vec![nsim] },
            &Holders::new(),
        );
        assert_eq!(lines(&p), ["netdevsim30 (eni30np1): sriov_numvfs 0 -> 3"]);
    }

    #[test]
    fn pools_get_selectors_for_their_pfs() {
        let mut bare = pf(2, 1, "vfio-pci");
        bare.netdev = None;
        let view = NodeView {
            pfs: vec![pf(0, 2, "iavf"), pf(1, 2, "iavf"), bare],
        };
        let p = plan(
            &policy(
                "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, pool: fast}, \
                 {nicSelector: {pfNames: [ens1f1]}, numVfs: 2, pool: fast}, \
                 {nicSelector: {rootDevices: ['0000:af:02.0']}, numVfs: 1, deviceType: vfio-pci, pool: dpdk}]",
            ),
            &view,
            &Holders::new(),
        );
        assert_eq!(p.pools.len(), 2);
        assert_eq!(p.pools[0].name, "fast");
        let names: Vec<&str> = p.pools[0]
            .selectors
            .pf_names
            .iter()
            .map(|s| s.pf.as_str())
            .collect();
        assert_eq!(names, ["ens1f0", "ens1f1"]);
        assert!(p.pools[0].selectors.drivers.is_empty());
        assert_eq!(p.pools[1].selectors.drivers, ["vfio-pci"]);
        assert_eq!(p.pools[1].selectors.pci_addresses, [addr("0000:af:12.0")]);
    }
}
