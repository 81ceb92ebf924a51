//! The VF allocator: who owns which VF, decided under the VF's flock.
//!
//! A VF is owned by the (container ID, ifname) named in its allocation record. Claiming takes
//! the VF's lock, reads the record and writes a new one only when there is none, when it is
//! stale (its netns is gone), or when it already names the same owner; the lock is held until
//! the caller drops the [`Claim`], i.e. for the whole ADD. Since every record change happens
//! under the lock, a VF never has two owners.
//!
//! A DRA claim holds a VF from the kubelet's prepare to its unprepare ([`VfAllocator::prepare`],
//! [`VfAllocator::unprepare`]). While it does, the VF is no pool's to give, and an attachment
//! may take it only for a pod the claim is reserved for (the runtime's K8S_POD_UID); the
//! attachment's DEL leaves the VF with the claim.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use crate::selector::PoolSpec;
use crate::state::{AllocationRecord, ClaimHold, DEFAULT_LOCK_TIMEOUT, StateDir, VfLock};
use crate::sysfs::{Sysfs, VfDevice};
use crate::topology::TopologyHint;

/// How long a pool claim keeps retrying VFs that other calls hold locked.
const POOL_BUSY_BUDGET: Duration = Duration::from_secs(2);

/// The attachment that wants a VF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub container_id: String,
    pub ifname: String,
    /// CNI_NETNS; the record is stale once this namespace is gone.
    pub netns: String,
    /// `namespace/name` of the pod (CNI_ARGS K8S_POD_NAMESPACE, K8S_POD_NAME), when the
    /// runtime named it: recorded so `multinet sriov list` can say whose VF it is.
    pub pod: Option<String>,
    /// The pod's UID (CNI_ARGS K8S_POD_UID, set by the runtime): a VF a DRA claim holds may be
    /// attached only for a pod the claim is reserved for.
    pub pod_uid: Option<String>,
}

/// A VF held for `owner`: its record is written and its lock is held until this is dropped.
#[derive(Debug)]
pub struct Claim {
    pub vf: VfDevice,
    pub lock: VfLock,
    pub record: AllocationRecord,
    /// A stale record that was replaced, and why it was stale.
    pub reclaimed: Option<(AllocationRecord, String)>,
}

/// The VFs of one pool by state (see [`VfAllocator::pool_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub free: usize,
    pub used: usize,
    pub stale: usize,
}

/// What the record of a locked VF says about `owner`'s claim.
enum Verdict {
    Free,
    /// Already `owner`'s, or held by a claim reserved for `owner`'s pod and not attached.
    Mine(Option<ClaimHold>),
    /// Attached to a gone netns: the attachment may be replaced (a claim holding the VF stays).
    Stale(AllocationRecord, String),
    Taken(AllocationRecord),
}

/// What kind of holder keeps a VF from `r`'s would-be taker, for its error message.
fn held_by(r: &AllocationRecord) -> &'static str {
    match (&r.claim, r.is_attached()) {
        (Some(_), false) => "a ResourceClaim this pod is not reserved for",
        _ => "another container",
    }
}

/// Who a record says holds a VF, for the node's log.
pub fn holder(r: &AllocationRecord) -> String {
    let attachment = format!(
        "container {} (ifname {}, netns {})",
        r.container_id, r.ifname, r.netns
    );
    match (&r.claim, r.is_attached()) {
        (Some(c), true) => format!("ResourceClaim {} and its {attachment}", c.key()),
        (Some(c), false) => format!("ResourceClaim {}", c.key()),
        (None, _) => attachment,
    }
}

/// Allocates VFs from sysfs, recording owners in the state directory.
#[derive(Debug, Clone)]
pub struct VfAllocator<'a> {
    sysfs: &'a Sysfs,
    state: &'a StateDir,
    lock_timeout: Duration,
    topology: TopologyHint,
}

impl<'a> VfAllocator<'a> {
    pub fn new(sysfs: &'a Sysfs, state: &'a StateDir) -> Self {
        VfAllocator {
            sysfs,
            state,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            topology: TopologyHint::default(),
        }
    }

    /// Pool claims try the VFs nearest the pod's other devices first.
    pub fn preferring(mut self, topology: TopologyHint) -> Self {
        self.topology = topology;
        self
    }

    /// How long [`VfAllocator::claim_device`] waits for a VF another call holds locked.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Every VF on the node matching the pool's selectors, by PCI address.
    pub fn pool_members(&self, pool: &PoolSpec) -> Vec<VfDevice> {
        let mut out: Vec<VfDevice> = self
            .sysfs
            .pfs()
            .iter()
            .flat_map(|pf| pf.vfs.iter().map(|(_, addr)| *addr).collect::<Vec<_>>())
            .filter_map(|addr| self.sysfs.vf(&addr).ok())
            .filter(|vf| pool.selectors.matches(vf))
            .collect();
        out.sort_by_key(|v| v.addr);
        out
    }

    /// How many of the pool's VFs are free, owned by a live attachment, or held by a stale
    /// record (its netns gone: the next claim reclaims it). Read without locks, for metrics.
    pub fn pool_usage(&self, pool: &PoolSpec) -> PoolUsage {
        let records = self.state.records();
        let mut usage = PoolUsage::default();
        for vf in self.pool_members(pool) {
            match records.iter().find(|r| r.pci == vf.addr) {
                None => usage.free += 1,
                // A claim's VF is in use even while its pod's attachment is stale.
                Some(r) if r.claim.is_none() && r.stale_reason().is_some() => usage.stale += 1,
                Some(_) => usage.used += 1,
            }
        }
        usage
    }

    fn verdict(&self, pci: &PciAddress, owner: &Owner) -> Result<Verdict> {
        let Some(r) = self.state.read_record(pci)? else {
            return Ok(Verdict::Free);
        };
        let claim_allows = match &r.claim {
            None => true,
            Some(c) => owner
                .pod_uid
                .as_ref()
                .is_some_and(|uid| c.pods.contains(uid)),
        };
        Ok(if !claim_allows {
            Verdict::Taken(r)
        } else if r.is_owned_by(&owner.container_id, &owner.ifname) || !r.is_attached() {
            Verdict::Mine(r.claim)
        } else {
            match r.stale_reason() {
                Some(why) => Verdict::Stale(r, why),
                None => Verdict::Taken(r),
            }
        })
    }

    fn record_for(
        &self,
        lock: &VfLock,
        owner: &Owner,
        pool: Option<&str>,
        claim: Option<ClaimHold>,
    ) -> Result<AllocationRecord> {
        let mut record =
            AllocationRecord::new(lock.pci(), &owner.container_id, &owner.ifname, &owner.netns);
        record.pool = pool.map(str::to_owned);
        record.pod = owner.pod.clone();
        record.claim = claim;
        self.state.write_record(lock, &record)?;
        Ok(record)
    }

    /// Holds `vf` for DRA claim `hold` (the kubelet's prepare). Preparing the same claim again
    /// is a no-op that refreshes its pods; a VF another claim or an attachment holds is
    /// refused naming its holder ([`SriovError::InUse`]).
    pub fn prepare(&self, vf: &VfDevice, hold: ClaimHold) -> Result<AllocationRecord> {
        let lock = self.state.lock_vf(&vf.addr, self.lock_timeout)?;
        let record = match self.state.read_record(&vf.addr)? {
            None => AllocationRecord::for_claim(vf.addr, hold),
            Some(mut r) if r.claim.as_ref().is_some_and(|c| c.uid == hold.uid) => {
                r.claim = Some(hold);
                r
            }
            Some(r) if r.claim.is_none() && r.stale_reason().is_some() => {
                AllocationRecord::for_claim(vf.addr, hold)
            }
            Some(r) => {
                return Err(SriovError::InUse {
                    device_id: vf.addr.to_string(),
                    what: held_by(&r),
                    owner: holder(&r),
                });
            }
        };
        self.state.write_record(&lock, &record)?;
        Ok(record)
    }

    /// Ends claim `uid`'s hold on VF `pci` (the kubelet's unprepare). An attachment still
    /// there keeps the VF until its DEL. Returns whether the claim held it; unpreparing twice,
    /// or a VF the claim never held, changes nothing.
    pub fn unprepare(&self, pci: &PciAddress, uid: &str) -> Result<bool> {
        let lock = self.state.lock_vf(pci, self.lock_timeout)?;
        match self.state.read_record(pci)? {
            Some(mut r) if r.claim.as_ref().is_some_and(|c| c.uid == uid) => {
                if r.is_attached() {
                    r.claim = None;
                    self.state.write_record(&lock, &r)?;
                } else {
                    self.state.remove_record(&lock)?;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Claims the given VF (a deviceID from the device plugin or a pod's annotation), waiting
    /// for its lock. A VF that a live attachment of another container owns is refused before
    /// anything is written ([`SriovError::InUse`], code 11: the other pod's DEL may simply be
    /// late); so is one whose record cannot be trusted or read.
    pub fn claim_device(&self, vf: VfDevice, owner: &Owner, pool: Option<&str>) -> Result<Claim> {
        let lock = self.state.lock_vf(&vf.addr, self.lock_timeout)?;
        let (reclaimed, claim) = match self.verdict(&vf.addr, owner)? {
            Verdict::Free => (None, None),
            Verdict::Mine(claim) => (None, claim),
            Verdict::Stale(r, why) => {
                let claim = r.claim.clone();
                (Some((r, why)), claim)
            }
            Verdict::Taken(r) => {
                return Err(SriovError::InUse {
                    device_id: vf.addr.to_string(),
                    what: held_by(&r),
                    owner: holder(&r),
                });
            }
        };
        let record = self.record_for(&lock, owner, pool, claim)?;
        Ok(Claim {
            vf,
            lock,
            record,
            reclaimed,
        })
    }

    /// Claims a free VF of the pool. An empty or fully allocated pool is code 11 naming the
    /// pool; VFs that other calls hold locked right now are retried for a short while.
    pub fn claim_from_pool(&self, pool: &PoolSpec, owner: &Owner) -> Result<Claim> {
        self.claim_from_pool_where(pool, owner, |_| true)
    }

    /// Like [`VfAllocator::claim_from_pool`], skipping free VFs for which `usable` says no
    /// (e.g. a VF netdev that something outside multinet took from the host).
    pub fn claim_from_pool_where(
        &self,
        pool: &PoolSpec,
        owner: &Owner,
        mut usable: impl FnMut(&VfDevice) -> bool,
    ) -> Result<Claim> {
        let members = self.topology.order(self.pool_members(pool));
        if members.is_empty() {
            return Err(SriovError::PoolExhausted {
                pool: pool.name.clone(),
                msg: "no VF on this node matches its selectors".to_owned(),
            });
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let mut busy = 0;
            let mut taken = 0;
            let mut unusable = 0;
            for vf in &members {
                let Some(lock) = self.state.try_lock_vf(&vf.addr)? else {
                    busy += 1;
                    continue;
                };
                // A record that cannot be trusted or read counts as taken: its owner is unknown.
                // A VF a claim holds is that claim's: a pool never hands it out.
                let reclaimed = match self.verdict(&vf.addr, owner) {
                    Ok(Verdict::Free | Verdict::Mine(None)) => None,
                    Ok(Verdict::Stale(r, why)) if r.claim.is_none() => Some((r, why)),
                    Ok(Verdict::Mine(Some(_)) | Verdict::Stale(..) | Verdict::Taken(_))
                    | Err(_) => {
                        taken += 1;
                        continue;
                    }
                };
                if !usable(vf) {
                    unusable += 1;
                    continue;
                }
                let record = self.record_for(&lock, owner, Some(&pool.name), None)?;
                return Ok(Claim {
                    vf: vf.clone(),
                    lock,
                    record,
                    reclaimed,
                });
            }
            if busy == 0 || start.elapsed() >= POOL_BUSY_BUDGET {
                return Err(SriovError::PoolExhausted {
                    pool: pool.name.clone(),
                    msg: format!(
                        "{} VFs: {taken} allocated, {busy} being attached or released, \
                         {unusable} not usable (netdev not in the host)",
                        members.len()
                    ),
                });
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Drops `owner`'s attachment from the locked VF's record (a claim holding the VF keeps
    /// it); a record of another owner is left alone. Returns whether an attachment was dropped.
    pub fn release(&self, lock: &VfLock, owner: &Owner) -> Result<bool> {
        match self.state.read_record(&lock.pci())? {
            Some(r) if r.is_owned_by(&owner.container_id, &owner.ifname) => {
                self.state.drop_attachment(lock, &r)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
