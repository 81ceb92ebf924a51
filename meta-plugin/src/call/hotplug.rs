//! Hot-plug: a running pod's attachments brought in line with its networks annotation. Networks
//! added to the annotation are attached in the pod's netns and networks removed from it are
//! detached, with the planning, isolation, device accounting, records and network-status of ADD
//! and DEL. The daemon calls it (`multinet daemon --hot-plug`) whenever the pod watch sees a
//! pod change, and for every pod after its first list.
//!
//! It reconciles rather than replays a diff: what is wanted (the annotation now) is compared
//! with what the record holds, so a change missed while the daemon was down is caught up, and
//! calling it twice changes nothing the second time.
//!
//! A change that cannot be planned (an unknown NAD, a bad annotation, an interface name taken)
//! is refused before anything is touched. Additions run before removals, so an addition that
//! fails is rolled back and leaves the pod exactly as it was; only when an added network asks
//! for the interface name of a removed one does that removal go first.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use multinet_cni::{CniEnv, CniError, Command, NetworkResult};

use crate::call::attachment::{Attachment, AttachmentState};
use crate::call::config::MultinetConf;
use crate::call::delegate::{self, CallContext};
use crate::call::plan::{self, PlanInput};
use crate::call::podnet;
use crate::call::resolve;
use crate::call::source::{ClusterSource, EventKind, PodEvent, PodInfo};
use crate::call::status;
use crate::call::store::{AttachmentRecord, AttachmentStore};
use crate::call::verbs::MetaPlugin;
use crate::error::MetaError;

/// How long hot-plug waits for a call on the same container (an ADD still running) to end.
const CONTAINER_WAIT: Duration = Duration::from_secs(60);

/// What hot-plug did to one container, in the words of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub container_id: String,
    /// "net2 from team/data" for each network attached.
    pub added: Vec<String>,
    /// The same for each network detached.
    pub removed: Vec<String>,
}

/// Which recorded attachments stay and which planned ones are new.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reconciled {
    /// Indexes into the record of the attachments to detach.
    removed: Vec<usize>,
    /// Indexes into the plan of the attachments to attach, with the interface each gets.
    added: Vec<(usize, String)>,
    /// Removals that must run before the additions: their interface name is asked for again.
    removed_first: Vec<usize>,
}

/// Matches the record's annotation attachments (from `first` on) with the wanted ones
/// (`wanted[i]`, the pod naming its interface when `named[i]`). A recorded attachment of the
/// same network stays, on the interface it has, unless the pod names another interface for it;
/// a new unnamed network gets the first `netN` no attachment of the pod uses.
fn reconcile(
    recorded: &[Attachment],
    first: usize,
    wanted: &[Attachment],
    named: &[bool],
) -> Result<Reconciled, String> {
    let mut kept = vec![false; recorded.len()];
    let mut new = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let named = named.get(i).copied().unwrap_or(false);
        let found = (first..recorded.len()).find(|&r| {
            !kept[r]
                && recorded[r].network == w.network
                && (!named || recorded[r].ifname == w.ifname)
        });
        match found {
            Some(r) => kept[r] = true,
            None => new.push((i, named)),
        }
    }
    let removed: Vec<usize> = (first..recorded.len()).filter(|&r| !kept[r]).collect();
    let kept_names: BTreeSet<&str> = (0..recorded.len())
        .filter(|&r| r < first || kept[r])
        .map(|r| recorded[r].ifname.as_str())
        .collect();
    let mut taken: BTreeSet<String> = recorded.iter().map(|a| a.ifname.clone()).collect();
    let mut added = Vec::new();
    let mut removed_first = Vec::new();
    for &(i, _) in new.iter().filter(|(_, named)| *named) {
        let name = &wanted[i].ifname;
        if kept_names.contains(name.as_str()) || added.iter().any(|(_, n)| n == name) {
            return Err(format!(
                "networks[{i}].interface {name:?}: the pod already has an interface of that name"
            ));
        }
        removed_first.extend(removed.iter().filter(|&&r| &recorded[r].ifname == name));
        added.push((i, name.clone()));
        taken.insert(name.clone());
    }
    for &(i, _) in new.iter().filter(|(_, named)| !*named) {
        let name = (1..)
            .map(|n| format!("net{n}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_default();
        taken.insert(name.clone());
        added.push((i, name));
    }
    added.sort();
    Ok(Reconciled {
        removed,
        added,
        removed_first,
    })
}

/// "net2 from team/data".
fn described(a: &Attachment) -> String {
    format!("{} from {}", a.ifname, a.network)
}

impl MetaPlugin {
    /// Brings every sandbox of `pod` that has a record in line with the pod's annotation, with
    /// the node's multinet config `conf_bytes`. Returns what changed; a refused or failed
    /// change has been told to the pod as an event, and the first error is returned after
    /// every sandbox was tried.
    pub async fn hot_plug(
        &self,
        conf_bytes: &[u8],
        pod: &PodInfo,
    ) -> Result<Vec<Changed>, MetaError> {
        let (conf, _) = MultinetConf::parse(conf_bytes)?;
        let store = AttachmentStore::new(&conf.cni_dir);
        let source = self.source(&conf).await?;
        let mut changed = Vec::new();
        let mut first_error = None;
        for container in store.container_ids()? {
            // A first look without the lock picks this pod's sandboxes; each is read again
            // under its lock before anything changes.
            let Ok(Some(record)) = store.load(&container) else {
                continue;
            };
            if !is_of(&record, pod) {
                continue;
            }
            let outcome = self
                .hot_plug_container(&conf, &store, &container, pod, source.as_ref())
                .await;
            let events = match &outcome {
                Ok(None) => continue,
                Ok(Some((c, attached))) => {
                    let mut events = status::added_interface_events(attached);
                    events.extend(c.removed.iter().map(|r| PodEvent {
                        reason: "RemovedInterface",
                        message: format!("Remove {r}"),
                        kind: EventKind::Normal,
                    }));
                    events
                }
                Err(e) => vec![PodEvent {
                    reason: "HotPlugFailed",
                    message: format!("networks annotation change not applied: {e}"),
                    kind: EventKind::Warning,
                }],
            };
            if let Some(source) = &source
                && let Err(e) = source.record_events(pod, &events).await
            {
                tracing::warn!(error = %e, pod = pod.key(), "hot-plug events not recorded");
            }
            match outcome {
                Ok(Some((c, _))) => changed.push(c),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(changed), Err)
    }

    /// One sandbox: plans the wanted networks, attaches the new, detaches the gone, and writes
    /// the record and the network-status. `None` when nothing had to change.
    async fn hot_plug_container<S: ClusterSource>(
        &self,
        conf: &MultinetConf,
        store: &AttachmentStore,
        container: &str,
        pod: &PodInfo,
        source: Option<&S>,
    ) -> Result<Option<(Changed, Vec<Attachment>)>, MetaError> {
        let lock = store
            .lock(container, CONTAINER_WAIT)
            .await?
            .ok_or_else(|| MetaError::Busy(format!("container {container}: a call still runs")))?;
        let Some(mut record) = store.load(container)? else {
            return Ok(None);
        };
        // Only an attachment of this very pod whose cluster network is up is changed: one that
        // an ADD left half-done is its own to finish.
        if !is_of(&record, pod)
            || record
                .attachments
                .first()
                .is_none_or(|a| a.state != AttachmentState::Added)
        {
            return Ok(None);
        }
        // A netns by /proc path may belong to another process by now (pid reuse).
        let Some(netns) = record
            .netns
            .as_ref()
            .map(PathBuf::from)
            .filter(|p| !p.starts_with("/proc") && p.exists())
        else {
            return Ok(None);
        };
        podnet::refuse_host_netns(&netns)?;
        let version = multinet_cni::CniVersion::from_config_str(&record.cni_version)?;
        let env = CniEnv {
            command: Command::Add,
            container_id: container.to_owned(),
            netns: Some(netns.clone()),
            ifname: String::new(),
            args: record.cni_args.clone(),
            path: match record.cni_path.is_empty() {
                true => vec![conf.bin_dir.clone()],
                false => record.cni_path.clone(),
            },
        };
        let ctx = self.call_context(&env, &[], Some(&lock));
        // A change cut off before (the daemon killed halfway) left entries planned but not
        // added, or not deleted: they are undone first, and the change is planned afresh.
        let unfinished: Vec<String> = record
            .attachments
            .iter()
            .filter(|a| a.state != AttachmentState::Added)
            .map(described)
            .collect();
        for key in &unfinished {
            tracing::info!(container, attachment = key, "undoing an unfinished change");
            detach_recorded(&mut record, key, version, &ctx, store).await?;
        }
        for a in &mut record.attachments {
            a.added = a
                .result
                .as_ref()
                .and_then(|v| NetworkResult::from_value(v, version).ok());
        }
        let requested = plan::requested_networks(conf, Some(pod))?;
        let (cluster, defaults, selected) =
            resolve::load_requested(&requested, conf, source).await?;
        let devices =
            crate::call::devices::device_ids_for(source, Some(pod), &cluster, &defaults, &selected)
                .await?;
        let first = 1 + defaults.len();
        let wanted = plan::plan_attachments(PlanInput {
            conf,
            container_id: container,
            ifname: &record.attachments[0].ifname,
            cluster,
            defaults,
            selected,
            device_ids: devices.ids,
        })?
        .attachments;
        let bad = |msg: String| MetaError::BadAnnotation {
            pod: pod.key(),
            msg,
        };
        // Hot-plug changes the annotation's networks only: the cluster network and the
        // defaults must be those the pod got at its ADD.
        let networks = |list: &[Attachment]| -> Vec<String> {
            list.iter().map(|a| a.network.clone()).collect()
        };
        if record.attachments.len() < first
            || networks(&record.attachments[..first]) != networks(&wanted[..first])
        {
            return Err(bad(
                "the node's cluster or default networks changed since the pod started; only \
                 the networks of its annotation can change while it runs"
                    .into(),
            ));
        }
        let named: Vec<bool> = requested
            .selections
            .iter()
            .map(|s| s.interface.is_some())
            .collect();
        let plan = reconcile(&record.attachments, first, &wanted[first..], &named).map_err(bad)?;
        if plan.added.is_empty() && plan.removed.is_empty() {
            return Ok(None);
        }
        let mut attaching: Vec<Attachment> = plan
            .added
            .iter()
            .map(|(i, ifname)| {
                let mut a = wanted[first + i].clone();
                a.ifname = ifname.clone();
                a
            })
            .collect();
        // A device a kept network holds is never given to another.
        let held: Vec<(String, &str)> = (0..record.attachments.len())
            .filter(|r| !plan.removed.contains(r))
            .flat_map(|r| {
                let a = &record.attachments[r];
                recorded_devices(a)
                    .into_iter()
                    .map(move |d| (d, a.network.as_str()))
            })
            .collect();
        for a in &attaching {
            if let Some(id) = &a.device_id
                && let Some((_, holder)) = held.iter().find(|(d, _)| d == id)
            {
                return Err(MetaError::network(
                    &a.network,
                    format!(
                        "device {id} is held by the pod's network {holder}; no other device is free"
                    ),
                ));
            }
        }
        // Interface names must be free in the netns itself, not only in the record: a link
        // multinet did not create is never taken over.
        if let Some(existing) = podnet::link_names(&netns).await? {
            let freed: BTreeSet<&str> = plan
                .removed_first
                .iter()
                .map(|&r| record.attachments[r].ifname.as_str())
                .collect();
            let existing: BTreeSet<String> = existing
                .into_iter()
                .filter(|n| !freed.contains(n.as_str()))
                .collect();
            podnet::check_ifnames_free(
                &netns,
                &existing,
                attaching.iter().map(|a| a.ifname.as_str()),
            )?;
        }
        crate::call::verbs::hint_topology(&mut attaching, source, pod).await;
        for a in &attaching {
            delegate::preflight(&a.conf, &ctx).map_err(|e| delegate_error(a, e))?;
        }
        let mut changed = Changed {
            container_id: container.to_owned(),
            ..Changed::default()
        };
        let outcome = self
            .apply(
                store,
                &mut record,
                &plan,
                attaching,
                version,
                &ctx,
                &mut changed,
            )
            .await;
        // The status shows what the pod has now, whatever part of the change went through.
        if let Some(source) = source
            && (!changed.added.is_empty() || !changed.removed.is_empty())
        {
            let infos = crate::call::devinfo::read_for_status(
                record.attachments.iter().map(|a| &a.device_info_file),
            );
            let status_json = status::network_status(&record.attachments, &infos);
            crate::call::verbs::write_claims_network_data(
                source,
                &pod.namespace,
                &record.attachments,
                &devices.origins,
            )
            .await;
            source
                .write_network_status(&pod.namespace, &pod.name, &status_json)
                .await?;
        }
        outcome.map(|attached| Some((changed, attached)))
    }

    /// Runs the change on the record: removals that free a name first, then the additions
    /// (recorded as planned before they run; rolled back on failure), then the other removals.
    /// Returns the attachments added.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        store: &AttachmentStore,
        record: &mut AttachmentRecord,
        plan: &Reconciled,
        mut attaching: Vec<Attachment>,
        version: multinet_cni::CniVersion,
        ctx: &CallContext<'_>,
        changed: &mut Changed,
    ) -> Result<Vec<Attachment>, MetaError> {
        // Each removal by its description (an interface name is the pod's only once), taken
        // before the record changes.
        let describe = |rs: &[usize]| -> Vec<String> {
            rs.iter()
                .map(|&r| described(&record.attachments[r]))
                .collect()
        };
        let (removed_first, removed) = (describe(&plan.removed_first), describe(&plan.removed));
        for key in &removed_first {
            detach_recorded(record, key, version, ctx, store).await?;
            changed.removed.push(key.clone());
        }
        let base = record.attachments.len();
        record.attachments.extend(attaching.iter().cloned());
        save_if_recorded(store, record)?;
        crate::call::devinfo::copy_from_device_plugin(
            attaching.iter().map(|a| &a.device_info_file),
        );
        for (k, a) in attaching.iter_mut().enumerate() {
            let added = delegate::add(&a.conf, &a.ifname, ctx).await;
            crate::call::verbs::failpoint("hot-plug-after-delegate");
            let added = added.and_then(|r| Ok((r.to_value(version)?, r)));
            match added {
                Ok((value, result)) => {
                    a.mark_added(value.clone(), result.clone());
                    record.attachments[base + k].mark_added(value, result);
                    if let Err(e) = save_if_recorded(store, record) {
                        self.roll_back(store, record, base, k + 1, version, ctx)
                            .await;
                        return Err(e);
                    }
                }
                Err(e) => {
                    let err = delegate_error(a, e);
                    // The failed one gets its DEL too (spec); those after it never ran.
                    self.roll_back(store, record, base, k + 1, version, ctx)
                        .await;
                    return Err(err);
                }
            }
        }
        changed.added = attaching.iter().map(described).collect();
        for key in removed.iter().filter(|k| !removed_first.contains(k)) {
            detach_recorded(record, key, version, ctx, store).await?;
            changed.removed.push(key.clone());
        }
        Ok(attaching)
    }

    /// Detaches the additions `record.attachments[base..base + ran]` (in reverse) and drops the
    /// ones after them that never ran; one whose DEL fails stays recorded for the pod's DEL.
    async fn roll_back(
        &self,
        store: &AttachmentStore,
        record: &mut AttachmentRecord,
        base: usize,
        ran: usize,
        version: multinet_cni::CniVersion,
        ctx: &CallContext<'_>,
    ) {
        for never_ran in record.attachments.drain(base + ran..) {
            crate::call::devinfo::remove(never_ran.device_info_path());
        }
        for i in (base..record.attachments.len()).rev() {
            let entry = record.attachments[i].clone();
            let others = &record.attachments[..i];
            match detach(&entry, others, version, ctx).await {
                Ok(()) => {
                    record.attachments.remove(i);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rolling back a hot-plug addition");
                    record.attachments[i].state = AttachmentState::DeleteFailed;
                }
            }
        }
        if let Err(e) = save_if_recorded(store, record) {
            tracing::warn!(error = %e, "recording a hot-plug rollback");
        }
    }
}

/// Whether `record` is of `pod`: same namespace, name and UID (a record without a UID, or a
/// pod without one, is never taken for a pod of the same name).
fn is_of(record: &AttachmentRecord, pod: &PodInfo) -> bool {
    record.pod.as_ref().is_some_and(|r| {
        r.namespace == pod.namespace && r.name == pod.name && r.uid.is_some() && r.uid == pod.uid
    })
}

/// The device IDs an attachment's delegates were given.
fn recorded_devices(a: &Attachment) -> Vec<String> {
    a.conf
        .plugins()
        .filter_map(|(_, p)| p.get("deviceID").and_then(serde_json::Value::as_str))
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Saves the record, unless it is gone: a DEL that gave up waiting for the container's lock
/// took the sandbox down meanwhile, and a record written back now would outlive it.
fn save_if_recorded(store: &AttachmentStore, record: &AttachmentRecord) -> Result<(), MetaError> {
    if !store.path_for(&record.container_id).exists() {
        return Err(MetaError::Busy(format!(
            "container {}: deleted while its networks were changed",
            record.container_id
        )));
    }
    store.save(record)
}

/// Detaches the recorded attachment described by `key` and takes it out of the record; one that
/// fails stays, marked, for the pod's DEL.
async fn detach_recorded(
    record: &mut AttachmentRecord,
    key: &str,
    version: multinet_cni::CniVersion,
    ctx: &CallContext<'_>,
    store: &AttachmentStore,
) -> Result<(), MetaError> {
    let Some(at) = record.attachments.iter().position(|a| described(a) == key) else {
        return Ok(());
    };
    let entry = record.attachments[at].clone();
    let others: Vec<Attachment> = record
        .attachments
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, a)| a.clone())
        .collect();
    match detach(&entry, &others, version, ctx).await {
        Ok(()) => {
            record.attachments.remove(at);
            save_if_recorded(store, record)
        }
        Err(e) => {
            record.attachments[at].state = AttachmentState::DeleteFailed;
            save_if_recorded(store, record)?;
            Err(e)
        }
    }
}

/// DEL of one attachment, releasing what the delegate may leave (device-info; host-local
/// reservations of the container, unless `others` of the pod use the same network, whose
/// addresses a sweep by container would free too).
async fn detach(
    entry: &Attachment,
    others: &[Attachment],
    version: multinet_cni::CniVersion,
    ctx: &CallContext<'_>,
) -> Result<(), MetaError> {
    let prev = entry
        .result
        .as_ref()
        .and_then(|v| NetworkResult::from_value(v, version).ok());
    delegate::del(&entry.conf, &entry.ifname, prev.as_ref(), ctx)
        .await
        .map_err(|e| delegate_error(entry, e))?;
    crate::call::devinfo::remove(entry.device_info_path());
    let name = entry.conf.name();
    if !others.iter().any(|o| o.conf.name() == name) {
        crate::call::orphans::release_host_local(&entry.conf, &ctx.env.container_id);
    }
    Ok(())
}

fn delegate_error(a: &Attachment, e: CniError) -> MetaError {
    MetaError::Delegate {
        network: a.network.clone(),
        delegate: crate::call::verbs::delegate_type(&a.conf),
        ifname: a.ifname.clone(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn at(network: &str, ifname: &str) -> Attachment {
        Attachment::planned(network, ifname, json!({"type": "macvlan"}))
    }

    /// The record of a pod with `a` on net1 and `b` on net2 after the cluster network.
    fn recorded() -> Vec<Attachment> {
        vec![at("cluster", "eth0"), at("t/a", "net1"), at("t/b", "net2")]
    }

    #[test]
    fn the_same_networks_change_nothing() {
        let wanted = [at("t/a", "net1"), at("t/b", "net2")];
        let r = reconcile(&recorded(), 1, &wanted, &[false, false]).unwrap();
        assert_eq!((r.removed, r.added), (vec![], vec![]));
    }

    #[test]
    fn an_added_network_gets_a_free_name_and_kept_ones_keep_theirs() {
        // "b,c": b is planned as net1 but keeps net2; c, planned as net2, takes net3 (a still
        // holds net1 while c is added: additions run before removals).
        let wanted = [at("t/b", "net1"), at("t/c", "net2")];
        let r = reconcile(&recorded(), 1, &wanted, &[false, false]).unwrap();
        assert_eq!(r.removed, [1]);
        assert_eq!(r.added, [(1, "net3".to_string())]);
        assert!(r.removed_first.is_empty());
    }

    #[test]
    fn a_named_interface_of_a_removed_network_is_freed_first() {
        // a on net1 replaced by c named net1.
        let wanted = [at("t/c", "net1"), at("t/b", "net2")];
        let r = reconcile(&recorded(), 1, &wanted, &[true, false]).unwrap();
        assert_eq!(r.removed, [1]);
        assert_eq!(r.removed_first, [1]);
        assert_eq!(r.added, [(0, "net1".to_string())]);
    }

    #[test]
    fn a_named_interface_a_kept_network_holds_is_refused() {
        let wanted = [at("t/a", "net1"), at("t/b", "net2"), at("t/c", "net2")];
        let err = reconcile(&recorded(), 1, &wanted, &[false, false, true]).unwrap_err();
        assert!(
            err.contains("networks[2].interface") && err.contains("net2"),
            "{err}"
        );
        // The cluster network's interface is never given away either.
        let wanted = [at("t/a", "net1"), at("t/b", "net2"), at("t/c", "eth0")];
        assert!(reconcile(&recorded(), 1, &wanted, &[false, false, true]).is_err());
    }

    #[test]
    fn a_network_asked_for_on_another_interface_is_moved() {
        // b named net5 now: the recorded b (net2) goes, a b on net5 comes.
        let wanted = [at("t/a", "net1"), at("t/b", "net5")];
        let r = reconcile(&recorded(), 1, &wanted, &[false, true]).unwrap();
        assert_eq!(r.removed, [2]);
        assert_eq!(r.added, [(1, "net5".to_string())]);
    }

    #[test]
    fn everything_removed() {
        let r = reconcile(&recorded(), 1, &[], &[]).unwrap();
        assert_eq!(r.removed, [1, 2]);
        assert!(r.added.is_empty());
    }
}
