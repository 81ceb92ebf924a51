//! The kubelet's prepare and unprepare, version-neutral: each claim is read from the API and its
//! VFs held for it in the SR-IOV allocator, whose records on disk are the one owner record (so a
//! prepared claim survives a restart of the daemon). Calls run one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::resource::v1::ResourceClaim;
use kube::Api;
use multinet_sriov::state::ClaimHold;
use multinet_sriov::{SriovError, StateDir, Sysfs, VfAllocator};

use crate::claims::{ClaimRef, Wanted, reserved_pods, wanted_devices};

/// How long one claim's GET may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// A prepared device, as the kubelet is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDevice {
    pub request_names: Vec<String>,
    pub pool: String,
    pub device: String,
}

/// Each claim's outcome, keyed by claim uid; an error is the claim's, not the call's.
pub type PrepareAnswer = BTreeMap<String, Result<Vec<PreparedDevice>, String>>;
pub type UnprepareAnswer = BTreeMap<String, Result<(), String>>;

/// The node side of one DRA driver.
pub struct Driver {
    /// The driver name.
    pub name: String,
    /// This node's name: the pool of its devices.
    pub node: String,
    pub sysfs: Sysfs,
    pub state: StateDir,
    client: kube::Client,
    serial: tokio::sync::Mutex<()>,
}

impl Driver {
    pub fn new(
        name: String,
        node: String,
        sysfs: Sysfs,
        state: StateDir,
        client: kube::Client,
    ) -> Self {
        Driver {
            name,
            node,
            sysfs,
            state,
            client,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// NodePrepareResources: every claim gets an entry.
    pub async fn prepare(&self, claims: Vec<ClaimRef>) -> PrepareAnswer {
        let _serial = self.serial.lock().await;
        let mut out = PrepareAnswer::new();
        for claim in claims {
            let outcome = self.prepare_claim(&claim).await;
            match &outcome {
                Ok(devices) => tracing::info!(
                    claim = %claim.key(), uid = %claim.uid, devices = devices.len(),
                    "DRA claim prepared"
                ),
                Err(e) => tracing::warn!(claim = %claim.key(), uid = %claim.uid, error = %e,
                    "DRA claim not prepared"),
            }
            out.insert(claim.uid, outcome);
        }
        out
    }

    /// NodeUnprepareResources: every claim gets an entry; a claim holding nothing succeeds.
    pub async fn unprepare(&self, claims: Vec<ClaimRef>) -> UnprepareAnswer {
        let _serial = self.serial.lock().await;
        let mut out = UnprepareAnswer::new();
        for claim in claims {
            let (sysfs, state, uid) = (self.sysfs.clone(), self.state.clone(), claim.uid.clone());
            let outcome =
                tokio::task::spawn_blocking(move || unprepare_claim(&sysfs, &state, &uid))
                    .await
                    .unwrap_or_else(|e| Err(format!("unprepare stopped: {e}")));
            match &outcome {
                Ok(()) => {
                    tracing::info!(claim = %claim.key(), uid = %claim.uid, "DRA claim unprepared")
                }
                Err(e) => tracing::warn!(claim = %claim.key(), uid = %claim.uid, error = %e,
                    "DRA claim not unprepared"),
            }
            out.insert(claim.uid, outcome);
        }
        out
    }

    async fn prepare_claim(&self, asked: &ClaimRef) -> Result<Vec<PreparedDevice>, String> {
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), &asked.namespace);
        let claim = match tokio::time::timeout(API_TIMEOUT, api.get_opt(&asked.name)).await {
            Err(_) => return Err(format!("reading ResourceClaim {}: timed out", asked.key())),
            Ok(Err(e)) => return Err(format!("reading ResourceClaim {}: {e}", asked.key())),
            Ok(Ok(None)) => return Err(format!("ResourceClaim {} does not exist", asked.key())),
            Ok(Ok(Some(claim))) => claim,
        };
        let wanted = wanted_devices(&claim, asked, &self.name, &self.node)?;
        let hold = ClaimHold {
            uid: asked.uid.clone(),
            namespace: asked.namespace.clone(),
            name: asked.name.clone(),
            pods: reserved_pods(&claim),
        };
        let (sysfs, state) = (self.sysfs.clone(), self.state.clone());
        let held = wanted.clone();
        tokio::task::spawn_blocking(move || hold_all(&sysfs, &state, &held, hold))
            .await
            .unwrap_or_else(|e| Err(format!("prepare stopped: {e}")))?;
        Ok(wanted
            .into_iter()
            .map(|w| PreparedDevice {
                request_names: vec![w.request],
                pool: self.node.clone(),
                device: w.device,
            })
            .collect())
    }
}

/// Holds every wanted VF for the claim, or none that it did not hold before.
fn hold_all(
    sysfs: &Sysfs,
    state: &StateDir,
    wanted: &[Wanted],
    hold: ClaimHold,
) -> Result<(), String> {
    let vfs = wanted
        .iter()
        .map(|w| {
            sysfs
                .vf(&w.pci)
                .map_err(|e| format!("device {}: not a VF of this node: {e}", w.device))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let alloc = VfAllocator::new(sysfs, state);
    let mut newly_held = Vec::new();
    for (vf, w) in vfs.iter().zip(wanted) {
        let before = state
            .read_record(&vf.addr)
            .map_err(|e| format!("device {}: {e}", w.device))?;
        let had_it = before
            .and_then(|r| r.claim)
            .is_some_and(|c| c.uid == hold.uid);
        match alloc.prepare(vf, hold.clone()) {
            Ok(_) => {
                if !had_it {
                    newly_held.push(vf.addr);
                }
            }
            Err(e) => {
                for pci in &newly_held {
                    if let Err(undo) = alloc.unprepare(pci, &hold.uid) {
                        tracing::warn!(%pci, error = %undo, "undoing a partial prepare");
                    }
                }
                return Err(match e {
                    SriovError::InUse { owner, .. } => {
                        // The holder goes to the node's log only: the claim's owner may not
                        // see who else uses the node's VFs.
                        tracing::warn!(device = %w.device, holder = %owner, claim = %hold.key(),
                            "DRA device in use");
                        format!(
                            "device {}: the VF is in use by another claim or pod",
                            w.device
                        )
                    }
                    other => format!("device {}: {other}", w.device),
                });
            }
        }
    }
    Ok(())
}

/// Ends the claim's hold on every VF whose record names it.
fn unprepare_claim(sysfs: &Sysfs, state: &StateDir, uid: &str) -> Result<(), String> {
    let alloc = VfAllocator::new(sysfs, state);
    let mut errors = Vec::new();
    for record in state.records() {
        if record.claim.as_ref().is_some_and(|c| c.uid == uid)
            && let Err(e) = alloc.unprepare(&record.pci, uid)
        {
            errors.push(format!("{}: {e}", record.pci));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
