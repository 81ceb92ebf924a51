//! Does a plan's steps on sysfs (through the sysfs layer's root) and reports what was done and
//! what could not be. Each VF a step changes (or, for a count change, every VF of the PF) is
//! locked with the allocator's per-VF lock and its record read again under the lock, so an ADD
//! that claims a VF after the plan was made still blocks the change.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use crate::selector::PoolSpec;
use crate::state::{StateDir, VfLock};
use crate::sysfs::Sysfs;

use super::plan::{Holder, NodeView, Plan, Refusal, Step, plan};
use super::policy::NodePolicy;
use super::view::{live_holders, mtu_path, read_view};

/// What applying a policy did.
#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<Step>,
    /// Steps tried or skipped, and why they are not done.
    pub failed: Vec<(Step, String)>,
    pub refused: Vec<Refusal>,
    pub notes: Vec<String>,
    pub pools: Vec<PoolSpec>,
}

impl Report {
    /// True when everything the policy asks for is done.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.refused.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.done {
            writeln!(f, "done: {s}")?;
        }
        for (s, why) in &self.failed {
            writeln!(f, "FAILED: {s}: {why}")?;
        }
        for r in &self.refused {
            writeln!(f, "REFUSED: {r}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Largest policy file read.
pub const MAX_POLICY_LEN: u64 = 1 << 20;

/// Reads and validates the policy file. It drives sysfs writes as root, so a file that someone
/// besides root may have written (not ours, or group/other-writable) is refused. Symlinks are
/// followed: a ConfigMap volume is made of them.
pub fn load_policy(path: &Path) -> Result<NodePolicy> {
    let what = || format!("the SR-IOV policy {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        // A FIFO under the name would block the open; it is refused below as no regular file.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| SriovError::io(format!("reading {}", what()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| SriovError::io(format!("reading {}", what()), e))?;
    if !meta.is_file() {
        return Err(SriovError::Decode(format!(
            "{} is not a regular file",
            what()
        )));
    }
    multinet_cni::files::check_trusted(path, &meta)
        .map_err(|e| SriovError::io(format!("refusing {}", what()), e.into()))?;
    if meta.len() > MAX_POLICY_LEN {
        return Err(SriovError::Decode(format!(
            "{} is {} bytes, more than the {MAX_POLICY_LEN} allowed",
            what(),
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_POLICY_LEN)
        .read_to_string(&mut text)
        .map_err(|e| SriovError::io(format!("reading {}", what()), e))?;
    NodePolicy::parse(&text)
}

/// The plan for this node as it is now (what `--dry-run` prints).
pub fn plan_policy(policy: &NodePolicy, sysfs: &Sysfs, state: &StateDir) -> Plan {
    plan(policy, &read_view(sysfs, policy), &live_holders(state))
}

/// Plans and applies the policy. When a PF's VF count changed, its new VFs are read back and
/// their drivers planned and applied in a second round.
pub fn apply_policy(policy: &NodePolicy, sysfs: &Sysfs, state: &StateDir) -> Report {
    let view = read_view(sysfs, policy);
    let first = plan(policy, &view, &live_holders(state));
    let mut report = Report {
        refused: first.refused,
        notes: first
            .notes
            .into_iter()
            .filter(|n| !n.contains("once they exist"))
            .collect(),
        pools: first.pools,
        ..Report::default()
    };
    let grown = execute(&first.steps, &view, sysfs, state, &mut report);
    if grown.is_empty() {
        return report;
    }
    let mut view = read_view(sysfs, policy);
    view.pfs.retain(|pf| grown.contains(&pf.dir));
    let second = plan(policy, &view, &live_holders(state));
    report.refused.extend(second.refused);
    let (stuck, steps): (Vec<Step>, Vec<Step>) = second
        .steps
        .into_iter()
        .partition(|s| matches!(s, Step::SetNumVfs { .. }));
    for s in stuck {
        if let Step::SetNumVfs { from, .. } = s {
            let why = format!("sriov_numvfs reads {from} after it was written");
            report.failed.push((s, why));
        }
    }
    execute(&steps, &view, sysfs, state, &mut report);
    report
}

/// A run of steps done together: the count change of one PF, the steps of one VF, an MTU.
#[derive(PartialEq, Eq)]
enum UnitKey {
    Count(PathBuf),
    Vf(PciAddress),
    Mtu(PathBuf),
}

fn unit_key(step: &Step) -> UnitKey {
    match step {
        Step::SetNumVfs { pf, .. } => UnitKey::Count(pf.dir.clone()),
        Step::SetMtu { pf, .. } => UnitKey::Mtu(pf.dir.clone()),
        Step::SetDriverOverride { vf, .. } | Step::Unbind { vf, .. } | Step::Probe { vf, .. } => {
            UnitKey::Vf(*vf)
        }
    }
}

/// Does the steps; returns the PFs whose VF count went up from 0 (their VFs are new).
fn execute(
    steps: &[Step],
    view: &NodeView,
    sysfs: &Sysfs,
    state: &StateDir,
    report: &mut Report,
) -> Vec<PathBuf> {
    let mut grown = Vec::new();
    let mut rest = steps;
    while let Some(first) = rest.first() {
        let key = unit_key(first);
        let len = rest.iter().take_while(|s| unit_key(s) == key).count();
        let (unit, after) = rest.split_at(len);
        rest = after;
        let vfs: Vec<PciAddress> = match &key {
            UnitKey::Count(dir) => view
                .pfs
                .iter()
                .filter(|pf| &pf.dir == dir)
                .flat_map(|pf| pf.vfs.iter().map(|v| v.pci))
                .collect(),
            UnitKey::Vf(vf) => vec![*vf],
            UnitKey::Mtu(_) => Vec::new(),
        };
        // Held until the unit is done: no ADD can claim these VFs meanwhile.
        let _locks = match lock_free_vfs(state, &vfs) {
            Ok(locks) => locks,
            Err(why) => {
                report
                    .failed
                    .extend(unit.iter().map(|s| (s.clone(), why.clone())));
                continue;
            }
        };
        let mut failed = false;
        for step in unit {
            if failed {
                let why = "not done: an earlier step of the same device failed".to_owned();
                report.failed.push((step.clone(), why));
                continue;
            }
            match do_step(step, sysfs) {
                Ok(()) => {
                    if let Step::SetNumVfs { pf, to, .. } = step
                        && *to > 0
                    {
                        grown.push(pf.dir.clone());
                    }
                    report.done.push(step.clone());
                }
                Err(e) => {
                    failed = true;
                    report.failed.push((step.clone(), e.to_string()));
                }
            }
        }
    }
    grown
}

/// Locks each VF and checks under the lock that no live attachment holds it.
fn lock_free_vfs(state: &StateDir, vfs: &[PciAddress]) -> std::result::Result<Vec<VfLock>, String> {
    let mut locks = Vec::new();
    for vf in vfs {
        let lock = match state.try_lock_vf(vf) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                return Err(format!(
                    "VF {vf} is being attached or released right now; try again"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        match state.read_record(vf) {
            Ok(Some(r)) if let Some(holder) = Holder::of(&r) => {
                return Err(format!("VF {vf} is held by {holder}"));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("VF {vf}: its record cannot be read: {e}")),
        }
        locks.push(lock);
    }
    Ok(locks)
}

/// The sysfs file a step writes and what it writes there.
pub fn step_write(step: &Step, sysfs: &Sysfs) -> (PathBuf, String) {
    let bus = sysfs.root().join("bus/pci");
    match step {
        Step::SetNumVfs { pf, to, .. } => (pf.dir.join("sriov_numvfs"), to.to_string()),
        Step::SetDriverOverride { vf, driver, .. } => (
            bus.join("devices")
                .join(vf.to_string())
                .join("driver_override"),
            // A newline clears the override.
            driver.clone().unwrap_or_else(|| "\n".to_owned()),
        ),
        Step::Unbind { vf, driver, .. } => (
            bus.join("drivers").join(driver).join("unbind"),
            vf.to_string(),
        ),
        Step::Probe { vf, .. } => (bus.join("drivers_probe"), vf.to_string()),
        Step::SetMtu { pf, netdev, to, .. } => (mtu_path(&pf.dir, netdev), to.to_string()),
    }
}

fn do_step(step: &Step, sysfs: &Sysfs) -> Result<()> {
    let (path, value) = step_write(step, sysfs);
    // Never created: a missing file means the kernel does not offer this here.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| SriovError::io(format!("opening {}", path.display()), e))?;
    file.write_all(value.as_bytes()).map_err(|e| {
        SriovError::io(
            format!("writing {:?} to {}", value.trim_end(), path.display()),
            e,
        )
    })
}
