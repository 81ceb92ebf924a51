//! The multinet meta-plugin: the verbs the runtime calls, following the flow
//! request → pod and NADs → plan → record → delegates (rolling back on failure) → aggregate →
//! network-status → primary result. DEL, CHECK and GC work from the attachment record alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multinet_cni::files::LockFile;
use multinet_cni::{CniError, Command, DelegateConf, GcRequest, NetworkResult, Plugin, Request};
use serde_json::{Map, Value};

use crate::call::attachment::{Attachment, AttachmentState};
use crate::call::config::MultinetConf;
use crate::call::delegate::{self, CallContext};
use crate::call::plan::{self, PlanInput};
use crate::call::podnet;
use crate::call::resolve;
use crate::call::source::cache::WatchCache;
use crate::call::source::kube::{ClientReuse, KubeSource};
use crate::call::source::{AnySource, ClusterSource, PodInfo, local::LocalSource};
use crate::call::status;
use crate::call::store::{AttachmentRecord, AttachmentStore, PodRef};
use crate::call::waves;
use crate::error::MetaError;
use crate::metrics::Metrics;

/// How long a call waits for another call on the same container (or the plugins of a killed
/// one) to end. Plugins of a killed call die with it (their death signal) within milliseconds;
/// this bounds a plugin's own children, which finish on their own.
const CONTAINER_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long ADD waits for the readiness indicator file, as Multus does.
const READINESS_WAIT: Duration = Duration::from_secs(45);

/// A wave of delegates in which some ADDs failed: the wave's range of attachments and the
/// failures, by attachment index.
struct FailedWave {
    wave: std::ops::Range<usize>,
    failed: Vec<(usize, CniError)>,
}

pub struct MetaPlugin {
    self_exe: Option<PathBuf>,
    /// Why the call runs here although its config names a daemon: logged once the call's log
    /// is open.
    no_daemon: Option<String>,
    clients: ClientReuse,
    metrics: Metrics,
    /// The daemon's watch caches (none in the binary).
    cache: Option<Arc<WatchCache>>,
}

impl MetaPlugin {
    pub fn new() -> Self {
        MetaPlugin {
            self_exe: delegate::self_exe(),
            no_daemon: None,
            clients: ClientReuse::PerCall,
            metrics: Metrics::off(),
            cache: None,
        }
    }

    /// Pods and NADs are read from the daemon's watch caches when they reflect the call's API.
    pub fn with_cache(mut self, cache: Option<Arc<WatchCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// The call runs in the binary because the daemon its config names did not take it.
    pub fn with_no_daemon_note(mut self, note: String) -> Self {
        self.no_daemon = Some(note);
        self
    }

    /// Where the call records its delegates' and API requests' figures (the daemon's metrics).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How the call's API clients are kept (the daemon keeps them per call thread).
    pub fn with_client_reuse(mut self, clients: ClientReuse) -> Self {
        self.clients = clients;
        self
    }
}

impl Default for MetaPlugin {
    fn default() -> Self {
        Self::new()
    }
}

/// Multus's rule: `binDir` is searched before CNI_PATH, even when CNI_PATH names it too.
fn with_bin_dir(req: &Request, conf: &MultinetConf) -> Request {
    let mut req = req.clone();
    req.env.path = search_path(&conf.bin_dir, &req.env.path);
    req
}

/// `bin_dir`, then CNI_PATH's folders in their order, each folder once (its first place).
fn search_path(bin_dir: &std::path::Path, cni_path: &[PathBuf]) -> Vec<PathBuf> {
    let mut path: Vec<PathBuf> = vec![bin_dir.to_path_buf()];
    for dir in cni_path {
        if !path.contains(dir) {
            path.push(dir.clone());
        }
    }
    path
}

fn load_conf(req: &Request, no_daemon: Option<&str>) -> Result<MultinetConf, MetaError> {
    refuse_nested_call(req)?;
    let (conf, unknown) = MultinetConf::parse(&req.stdin)?;
    crate::logging::init_from_conf(&conf);
    if let Some(note) = no_daemon {
        tracing::warn!("{note}");
    }
    if !unknown.is_empty() {
        tracing::warn!(keys = ?unknown, "ignoring unknown multinet config keys");
    }
    for note in conf.ignored_settings() {
        tracing::warn!("{note}");
    }
    for note in conf.unsupported_settings() {
        tracing::error!("{note}");
    }
    Ok(conf)
}

/// multinet started by a plugin multinet exec'd: some route (a NAD's type, a link in binDir)
/// leads back to multinet. It fails at once instead of recursing as root.
fn refuse_nested_call(req: &Request) -> Result<(), MetaError> {
    if let Some((_, pid)) = req
        .extra_env
        .iter()
        .find(|(k, _)| k == delegate::DELEGATE_MARKER)
    {
        return Err(MetaError::InvalidConfig(format!(
            "multinet was started as a delegate of multinet (process {pid}; {} is set): a \
             meta-plugin is never a delegate",
            delegate::DELEGATE_MARKER
        )));
    }
    Ok(())
}

fn pod_ref(req: &Request) -> Result<Option<PodRef>, MetaError> {
    let arg = |key| req.env.arg(key).filter(|v| !v.is_empty());
    let (namespace, name) = match (arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")) {
        (Some(namespace), Some(name)) => (namespace.to_string(), name.to_string()),
        (None, None) => return Ok(None),
        // Half a pod reference would silently drop the pod's networks.
        (ns, _) => {
            let (has, lacks) = match ns {
                Some(_) => ("K8S_POD_NAMESPACE", "K8S_POD_NAME"),
                None => ("K8S_POD_NAME", "K8S_POD_NAMESPACE"),
            };
            return Err(MetaError::Env(format!(
                "CNI_ARGS: has {has} but no {lacks}"
            )));
        }
    };
    Ok(Some(PodRef {
        namespace,
        name,
        uid: arg("K8S_POD_UID").map(str::to_string),
    }))
}

/// Where the call reads pods and NADs: the kubeconfig's API, the local folder, the in-cluster
/// service account, or nowhere.
pub(crate) async fn cluster_source(
    conf: &MultinetConf,
    clients: ClientReuse,
    metrics: &Metrics,
    cache: Option<&Arc<WatchCache>>,
) -> Result<Option<AnySource>, MetaError> {
    let budget = Duration::from_secs(conf.api_timeout_seconds);
    if let Some(path) = &conf.kubeconfig {
        return Ok(Some(AnySource::Kube(
            KubeSource::connect(Some(path), budget, clients, metrics)
                .await?
                .with_cache(cache, Some(path)),
        )));
    }
    if let Some(dir) = &conf.local_dir {
        return Ok(Some(AnySource::Local(LocalSource::new(dir))));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Ok(Some(AnySource::Kube(
            KubeSource::connect(None, budget, clients, metrics)
                .await?
                .with_cache(cache, None),
        )));
    }
    Ok(None)
}

/// An SR-IOV network that picks from a pool is told where the pod's other devices sit.
pub(crate) async fn hint_topology(
    planned: &mut [Attachment],
    source: Option<&impl ClusterSource>,
    pod: &PodInfo,
) {
    if !planned.iter().any(|p| p.conf.picks_from_pool()) {
        return;
    }
    let topology = crate::call::devices::pod_topology(
        &crate::call::devices::DeviceSources::from_env(),
        source,
        pod,
    )
    .await;
    if !topology.is_empty() {
        tracing::debug!(?topology, "topology hint for SR-IOV pools");
        let hint = topology.hint();
        for p in planned.iter_mut().filter(|p| p.conf.picks_from_pool()) {
            p.conf.inject_topology_hint(&hint);
        }
    }
}

/// KEP-4817: each claim device a network took gets that network's data in the claim's status.
/// Informative, like the events: a failure is logged.
pub(crate) async fn write_claims_network_data(
    source: &impl ClusterSource,
    namespace: &str,
    attachments: &[Attachment],
    origins: &BTreeMap<String, crate::call::source::dra::ClaimDevice>,
) {
    for (claim, entries) in status::claim_network_data(attachments, origins) {
        if let Err(e) = source
            .write_claim_network_data(namespace, &claim, &entries)
            .await
        {
            tracing::warn!(error = %e, claim, "network data not written to the claim");
        }
    }
}

async fn wait_for_readiness(conf: &MultinetConf, wait: Duration) -> Result<(), MetaError> {
    let Some(file) = &conf.readiness_indicator_file else {
        return Ok(());
    };
    let deadline = Instant::now() + wait;
    loop {
        if file.exists() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(MetaError::NotReady(format!(
                "readiness indicator file {} does not exist",
                file.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl MetaPlugin {
    /// The call's multinet config; its record store is scraped from now on.
    fn load_conf(&self, req: &Request) -> Result<MultinetConf, MetaError> {
        let conf = load_conf(req, self.no_daemon.as_deref())?;
        self.metrics.saw_store(&conf.cni_dir);
        Ok(conf)
    }

    fn ctx<'a>(&'a self, req: &'a Request, lock: Option<&LockFile>) -> CallContext<'a> {
        self.call_context(&req.env, &req.extra_env, lock)
    }

    /// What the delegates of a call run with.
    pub(crate) fn call_context<'a>(
        &'a self,
        env: &'a multinet_cni::CniEnv,
        extra_env: &'a [(String, String)],
        lock: Option<&LockFile>,
    ) -> CallContext<'a> {
        CallContext {
            env,
            extra_env,
            self_exe: self.self_exe.as_deref(),
            container_lock: lock.map(LockFile::fd),
            metrics: &self.metrics,
        }
    }

    /// Where this call reads pods and NADs (see [`cluster_source`]).
    pub(crate) async fn source(&self, conf: &MultinetConf) -> Result<Option<AnySource>, MetaError> {
        cluster_source(conf, self.clients, &self.metrics, self.cache.as_ref()).await
    }

    async fn do_add(&self, req: &Request) -> Result<NetworkResult, MetaError> {
        let conf = self.load_conf(req)?;
        let req = &with_bin_dir(req, &conf);
        if let Some(netns) = &req.env.netns {
            podnet::refuse_host_netns(netns)?;
        }
        let store = AttachmentStore::new(&conf.cni_dir);
        let lock = store
            .lock(&req.env.container_id, CONTAINER_LOCK_WAIT)
            .await?
            .ok_or_else(|| {
                MetaError::Busy(format!(
                    "CNI_CONTAINERID {:?}: another call for this container is still running",
                    req.env.container_id
                ))
            })?;
        // Checked before any wait or API call; `create` below makes it race-free.
        if store.path_for(&req.env.container_id).exists() {
            return Err(MetaError::Env(format!(
                "CNI_CONTAINERID {:?} already has attachments: ADD twice without DEL is an \
                 error; nothing was changed",
                req.env.container_id
            )));
        }
        wait_for_readiness(&conf, READINESS_WAIT).await?;
        let pod_ref = pod_ref(req)?;
        tracing::debug!("ADD started");
        let load_pod = async {
            let source =
                cluster_source(&conf, self.clients, &self.metrics, self.cache.as_ref()).await?;
            let pod = match (&pod_ref, &source) {
                (Some(r), Some(source)) => {
                    let pod = source.pod(&r.namespace, &r.name, r.uid.as_deref()).await?;
                    let pod = pod.ok_or_else(|| MetaError::Pod {
                        pod: format!("{}/{}", r.namespace, r.name),
                        msg: "not found".into(),
                    })?;
                    check_uid(&pod, r)?;
                    Some(claims_checked(pod, r))
                }
                _ => None,
            };
            Ok::<_, MetaError>((source, pod))
        };
        let pod_links = async {
            match &req.env.netns {
                Some(netns) => podnet::link_names(netns).await,
                None => Ok(None),
            }
        };
        // Every network is loaded at once: one API round trip of latency, not one per network.
        let load_networks = async {
            let (source, pod) = load_pod.await?;
            tracing::debug!("pod loaded");
            let requested = plan::requested_networks(&conf, pod.as_ref())?;
            let (cluster, defaults, selected) =
                resolve::load_requested(&requested, &conf, source.as_ref()).await?;
            Ok::<_, MetaError>((source, pod, cluster, defaults, selected))
        };
        // The pod's existing interface names are read while the API answers.
        let ((source, pod, cluster, defaults, selected), pod_links) =
            futures::try_join!(load_networks, pod_links)?;
        tracing::debug!("networks loaded");
        let devices = crate::call::devices::device_ids_for(
            source.as_ref(),
            pod.as_ref(),
            &cluster,
            &defaults,
            &selected,
        )
        .await?;
        let plan::Plan {
            attachments: mut planned,
            not_applied,
        } = plan::plan_attachments(PlanInput {
            conf: &conf,
            container_id: &req.env.container_id,
            ifname: &req.env.ifname,
            cluster,
            defaults,
            selected,
            device_ids: devices.ids,
        })?;
        for n in &not_applied {
            tracing::warn!("{n}");
        }
        if let Some(pod) = &pod {
            hint_topology(&mut planned, source.as_ref(), pod).await;
        }
        if let (Some(netns), Some(existing)) = (&req.env.netns, &pod_links) {
            podnet::check_ifnames_free(netns, existing, planned.iter().map(|p| p.ifname.as_str()))?;
        }

        tracing::debug!("interface names checked");
        // Every plugin of every network is found and allowed before anything is created.
        let ctx = self.ctx(req, Some(&lock));
        for p in &planned {
            delegate::preflight(&p.conf, &ctx).map_err(|e| MetaError::Delegate {
                network: p.network.clone(),
                delegate: delegate_type(&p.conf),
                ifname: p.ifname.clone(),
                source: Box::new(e),
            })?;
        }
        // Record the whole plan before any delegate runs: a crash from here on leaves a record
        // that the next DEL or GC cleans (the device-info files included, even when the delegate
        // does not remove them).
        let mut record = AttachmentRecord::new(
            &req.env.container_id,
            req.env.netns.as_ref().map(|p| p.display().to_string()),
            req.version.as_str(),
        );
        record.pod = pod_ref.clone();
        record.cni_args = req.env.args.clone();
        record.cni_path = req.env.path.clone();
        record.attachments = planned;
        store.create(&record)?;
        tracing::debug!("plan recorded");
        failpoint("after-record");
        crate::call::devinfo::copy_from_device_plugin(
            record.attachments.iter().map(|a| &a.device_info_file),
        );

        let confs: Vec<&DelegateConf> = record.attachments.iter().map(|p| &p.conf).collect();
        for wave in waves::waves(&confs, conf.parallel_networks) {
            let outcomes = delegate::at_once(&record.attachments[wave.clone()], async |p| {
                delegate::add(&p.conf, &p.ifname, &ctx).await
            })
            .await;
            let mut failed = Vec::new();
            for (i, outcome) in wave.clone().zip(outcomes) {
                match outcome.and_then(|r| Ok((r.to_value(r.cni_version)?, r))) {
                    Ok((value, result)) => record.attachments[i].mark_added(value, result),
                    Err(e) => failed.push((i, e)),
                }
            }
            if failed.is_empty() {
                for i in wave.clone() {
                    store.journal_added(&record, i)?;
                }
                for i in wave {
                    tracing::debug!(network = %record.attachments[i].network, "attachment added");
                    failpoint(&format!("after-delegate-{}", i + 1));
                }
                continue;
            }
            return Err(self
                .undo_add(
                    req,
                    &conf,
                    &store,
                    &mut record,
                    FailedWave { wave, failed },
                    &lock,
                )
                .await);
        }

        if let Some(netns) = &req.env.netns {
            for a in &record.attachments {
                if let (false, Some(result)) = (a.default_route.is_empty(), &a.added) {
                    podnet::make_only_default(netns, &a.ifname, &a.default_route, result).await?;
                }
            }
        }

        // The record in one piece again (the journal folded in): O(networks), once per ADD.
        store.save_quick(&record)?;
        failpoint("before-status");
        if let (Some(r), Some(source)) = (&pod_ref, &source) {
            tracing::debug!("writing network-status");
            let device_infos = crate::call::devinfo::read_for_status(
                record.attachments.iter().map(|a| &a.device_info_file),
            );
            let status_json = status::network_status(&record.attachments, &device_infos);
            // The events go out beside the status write: one round trip for both.
            let events = async {
                let Some(pod) = &pod else { return };
                let mut events = status::added_interface_events(&record.attachments);
                events.extend(status::not_applied_events(&not_applied));
                if let Err(e) = source.record_events(pod, &events).await {
                    tracing::warn!(error = %e, "AddedInterface events not recorded");
                }
            };
            // KEP-4817: each claim device a network took gets that network's data in the
            // claim's status. Informative, like the events.
            let claims = write_claims_network_data(
                source,
                &r.namespace,
                &record.attachments,
                &devices.origins,
            );
            let (written, (), ()) = futures::join!(
                source.write_network_status(&r.namespace, &r.name, &status_json),
                events,
                claims
            );
            written?;
        }
        tracing::debug!("ADD done");
        record
            .attachments
            .into_iter()
            .next()
            .and_then(|a| a.added)
            .ok_or_else(|| MetaError::Internal("no cluster network result".into()))?
            .convert_to(req.version)
            .map_err(MetaError::from)
    }

    /// Undoes an ADD whose wave `wave` had the delegate failures `failed`: each failed delegate gets
    /// its DEL too (spec); a plugin that reported its own ADD failure has cleaned up after itself,
    /// so an error from that DEL is logged, not kept for retry. Then every network added so far is
    /// deleted, in reverse; failures there stay recorded. Networks after the wave never ran.
    async fn undo_add(
        &self,
        req: &Request,
        conf: &MultinetConf,
        store: &AttachmentStore,
        record: &mut AttachmentRecord,
        FailedWave { wave, failed }: FailedWave,
        lock: &LockFile,
    ) -> MetaError {
        let ctx = self.ctx(req, Some(lock));
        let mut errors = Vec::new();
        for (i, e) in failed.into_iter().rev() {
            let entry = record.attachments.remove(i);
            errors.push(MetaError::Delegate {
                network: entry.network.clone(),
                delegate: delegate_type(&entry.conf),
                ifname: entry.ifname.clone(),
                source: Box::new(e),
            });
            if let Err(e) = delegate::del(&entry.conf, &entry.ifname, None, &ctx).await {
                tracing::warn!(network = %entry.network, error = %e, "DEL after failed ADD");
            }
            // A delegate killed mid-ADD (its IPAM, say) may have left a reservation it never
            // reported, or an empty one.
            crate::call::orphans::release_host_local(&entry.conf, &record.container_id);
            crate::call::devinfo::remove(entry.device_info_path());
        }
        errors.reverse();
        let added = wave.end - errors.len();
        // Networks after the wave never ran: only the device-info files copied for them remain.
        for never_ran in record.attachments.drain(added..) {
            crate::call::devinfo::remove(never_ran.device_info_path());
        }
        if let Err(r) = self
            .delete_attachments(req, conf, store, record, added, Some(lock))
            .await
        {
            errors.push(r);
        }
        match errors.len() {
            1 => errors.remove(0),
            _ => MetaError::Many(errors),
        }
    }

    /// Runs DEL for `record.attachments[..upto]` in reverse order (the networks of one wave at the
    /// same time), trying every one. Entries that were removed leave the record; entries that
    /// failed stay, marked, for the next DEL. The record file is removed once it is empty.
    async fn delete_attachments(
        &self,
        req: &Request,
        conf: &MultinetConf,
        store: &AttachmentStore,
        record: &mut AttachmentRecord,
        upto: usize,
        lock: Option<&LockFile>,
    ) -> Result<(), MetaError> {
        let ctx = self.ctx(req, lock);
        let upto = upto.min(record.attachments.len());
        let confs: Vec<&DelegateConf> =
            record.attachments[..upto].iter().map(|a| &a.conf).collect();
        let mut outcomes: Vec<Option<Result<(), CniError>>> = vec![None; upto];
        for wave in waves::waves(&confs, conf.parallel_networks)
            .into_iter()
            .rev()
        {
            let done = delegate::at_once(&record.attachments[wave.clone()], async |entry| {
                let prev = entry
                    .result
                    .as_ref()
                    .and_then(|v| NetworkResult::from_value(v, req.version).ok());
                delegate::del(&entry.conf, &entry.ifname, prev.as_ref(), &ctx).await
            })
            .await;
            for (i, outcome) in wave.zip(done) {
                outcomes[i] = Some(outcome);
            }
        }
        let mut errors = Vec::new();
        let mut keep = vec![true; record.attachments.len()];
        for (i, outcome) in outcomes.into_iter().enumerate().rev() {
            let entry = &mut record.attachments[i];
            match outcome {
                Some(Ok(())) => {
                    crate::call::devinfo::remove(entry.device_info_path());
                    crate::call::orphans::release_host_local(&entry.conf, &record.container_id);
                    keep[i] = false;
                }
                Some(Err(e)) => {
                    entry.state = AttachmentState::DeleteFailed;
                    errors.push(MetaError::Delegate {
                        network: entry.network.clone(),
                        delegate: delegate_type(&entry.conf),
                        ifname: entry.ifname.clone(),
                        source: Box::new(e),
                    });
                }
                None => {}
            }
        }
        let mut it = keep.iter();
        record.attachments.retain(|_| *it.next().unwrap_or(&true));
        if record.attachments.is_empty() {
            store.remove(&record.container_id)?;
        } else {
            store.save(record)?;
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(MetaError::Many(errors)),
        }
    }

    async fn do_del(&self, req: &Request) -> Result<(), MetaError> {
        let conf = self.load_conf(req)?;
        let req = &with_bin_dir(req, &conf);
        let store = AttachmentStore::new(&conf.cni_dir);
        tracing::debug!("DEL started");
        // DEL must end, so a lock still held after the wait (a plugin of a killed call that
        // hangs) is waited for no longer: the delegates' DELs tolerate what they find.
        let lock = store
            .lock(&req.env.container_id, CONTAINER_LOCK_WAIT)
            .await?;
        if lock.is_none() {
            tracing::warn!("another call for this container still runs; DEL goes on");
        }
        // A writer of this store killed mid-write (an ADD, a DEL) left a temp file.
        store.remove_dead_writers_temps();
        let mut record = match store.load(&req.env.container_id) {
            Ok(Some(record)) => record,
            // The record is written before any delegate runs: no record, nothing to undo.
            Ok(None) => return Ok(()),
            Err(e @ MetaError::CorruptRecord { .. }) => {
                return self.del_without_record(req, &conf, &store, e).await;
            }
            Err(e) => return Err(e),
        };
        // DEL may come without CNI_NETNS (the netns is gone); delegates then clean what they can.
        let mut req = req.clone();
        if !record.cni_args.is_empty() && req.env.args.is_empty() {
            req.env.args = record.cni_args.clone();
        }
        // The pod's virtual links go first, in one kernel operation (one RCU grace period for
        // all of them); the delegates then release addresses and other state and find their link
        // gone, which DEL tolerates. Running both at once was measured slower: the delegates'
        // own deletions then queue behind the batch.
        if let Some(netns) = &req.env.netns {
            // Only links whose recorded MAC still matches: a link of the same name that multinet
            // did not make (or a later one) is left to the delegate, which checks its own way.
            let owned: Vec<podnet::OwnedLink> = record
                .attachments
                .iter()
                .filter(|a| podnet::delegate_creates_its_link(&a.conf))
                .filter_map(|a| {
                    Some(podnet::OwnedLink {
                        ifname: &a.ifname,
                        mac: recorded_mac(a)?,
                    })
                })
                .collect();
            match podnet::delete_links_together(netns, &record.container_id, &owned).await {
                Ok(n) => tracing::debug!(links = n, "pod links deleted together"),
                // The delegates delete their links one by one instead.
                Err(e) => tracing::warn!(error = %e, "deleting the pod's links together failed"),
            }
        }
        let n = record.attachments.len();
        let result = self
            .delete_attachments(&req, &conf, &store, &mut record, n, lock.as_ref())
            .await;
        tracing::debug!("DEL done");
        result
    }

    /// DEL when the container's record cannot be used (torn, not ours, written by another uid):
    /// its delegates are never run from it. The record is set aside for inspection, what can be
    /// found by container ID alone is cleaned (see [`crate::call::orphans`]), the pod gets an event,
    /// and DEL succeeds, so the sandbox is never stuck.
    async fn del_without_record(
        &self,
        req: &Request,
        conf: &MultinetConf,
        store: &AttachmentStore,
        why: MetaError,
    ) -> Result<(), MetaError> {
        let id = &req.env.container_id;
        let kept = store.set_aside(id)?;
        let cleaned = crate::call::orphans::clean(conf, store, id, req.env.netns.as_deref()).await;
        tracing::error!(error = %why, kept = %kept.display(), ?cleaned,
            "attachment record unusable: set aside, cleaned by container ID");
        if let Ok(Some(r)) = pod_ref(req)
            && let Ok(Some(source)) =
                cluster_source(conf, self.clients, &self.metrics, self.cache.as_ref()).await
        {
            let pod = PodInfo {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                ..Default::default()
            };
            let event = crate::call::source::PodEvent {
                reason: "AttachmentRecordSetAside",
                message: format!(
                    "multinet could not use the attachment record of container {id} ({why}); it \
                     was kept as {} and {cleaned}",
                    kept.display()
                ),
                kind: crate::call::source::EventKind::Warning,
            };
            if let Err(e) = source.record_events(&pod, &[event]).await {
                tracing::warn!(error = %e, "event about the set-aside record not recorded");
            }
        }
        Ok(())
    }

    async fn do_check(&self, req: &Request) -> Result<(), MetaError> {
        let conf = self.load_conf(req)?;
        let req = &with_bin_dir(req, &conf);
        let store = AttachmentStore::new(&conf.cni_dir);
        let record = store
            .load(&req.env.container_id)?
            .ok_or_else(|| MetaError::Pod {
                pod: req.env.container_id.clone(),
                msg: "no attachment record for this container".into(),
            })?;
        let ctx = self.ctx(req, None);
        for entry in &record.attachments {
            if entry.state != AttachmentState::Added {
                return Err(MetaError::network(
                    &entry.network,
                    format!("interface {} was never added", entry.ifname),
                ));
            }
            let prev = match &entry.result {
                Some(v) => {
                    Some(NetworkResult::from_value(v, req.version).map_err(MetaError::from)?)
                }
                None => None,
            };
            delegate::check(&entry.conf, &entry.ifname, prev.as_ref(), &ctx)
                .await
                .map_err(|e| MetaError::Delegate {
                    network: entry.network.clone(),
                    delegate: delegate_type(&entry.conf),
                    ifname: entry.ifname.clone(),
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    async fn do_gc(&self, req: &Request, gc: &GcRequest) -> Result<(), MetaError> {
        let conf = self.load_conf(req)?;
        let req = &with_bin_dir(req, &conf);
        let store = AttachmentStore::new(&conf.cni_dir);
        let valid: std::collections::BTreeSet<&str> = gc
            .valid_attachments
            .iter()
            .map(|a| a.container_id.as_str())
            .collect();
        // GC goes on to every delegate config of every recorded attachment (those of the
        // containers collected below included: their networks may hold more leftovers), to the
        // cluster network, which owns attachments we never recorded, and to the extra inline
        // delegates: each learns which attachments are valid and releases the rest (IPs, VFs)
        // that no record names. Gathered before any record goes.
        let mut targets: Vec<(String, DelegateConf)> = Vec::new();
        let mut add_target = |network: String, conf: DelegateConf| {
            if !targets.iter().any(|(_, c)| *c == conf) {
                targets.push((network, conf));
            }
        };
        for id in store.container_ids()? {
            if let Ok(Some(record)) = store.load(&id) {
                for a in record.attachments {
                    add_target(a.network, a.conf);
                }
            }
        }
        let requested = plan::requested_networks(&conf, None)?;
        for r in std::iter::once(&requested.cluster).chain(&requested.defaults) {
            if let Ok(net) = resolve::load::<AnySource>(r, &conf, None).await {
                add_target(net.key, net.conf);
            }
        }
        let mut errors = Vec::new();
        for id in store.container_ids()? {
            if valid.contains(id.as_str()) {
                continue;
            }
            // A container whose call still runs is not garbage, whatever the list says.
            let lock = match store.lock(&id, Duration::ZERO).await {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let mut record = match store.load(&id) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e @ MetaError::CorruptRecord { .. }) => {
                    // Never run; set aside and cleaned by container ID, as DEL does.
                    let mut del_req = req.clone();
                    del_req.env.container_id = id.clone();
                    del_req.env.netns = None;
                    if let Err(e) = self.del_without_record(&del_req, &conf, &store, e).await {
                        errors.push(e);
                    }
                    continue;
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let mut del_req = req.clone();
            del_req.env.command = Command::Del;
            del_req.env.container_id = id.clone();
            del_req.env.netns = gc_netns(record.netns.as_deref());
            del_req.env.args = record.cni_args.clone();
            let n = record.attachments.len();
            if let Err(e) = self
                .delete_attachments(&del_req, &conf, &store, &mut record, n, Some(&lock))
                .await
            {
                errors.push(e);
            }
        }
        // Writers that died mid-write leave temp files nothing else would remove.
        store.remove_stale_temps();
        store.remove_stale_locks();
        multinet_cni::files::remove_stale_temps(&conf.device_info_dir, Duration::from_secs(60));
        let mut extra = Map::new();
        extra.insert(
            "cni.dev/valid-attachments".into(),
            serde_json::to_value(&gc.valid_attachments)
                .map_err(|e| MetaError::Internal(e.to_string()))?,
        );
        for (network, target) in &targets {
            if let Err(e) =
                delegate::status_or_gc(target, Command::Gc, &extra, &self.ctx(req, None)).await
            {
                errors.push(MetaError::Delegate {
                    network: network.clone(),
                    delegate: delegate_type(target),
                    ifname: String::new(),
                    source: Box::new(e),
                });
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(MetaError::Many(errors)),
        }
    }

    async fn do_status(&self, req: &Request) -> Result<(), MetaError> {
        let conf = self.load_conf(req)?;
        let req = &with_bin_dir(req, &conf);
        wait_for_readiness(&conf, Duration::ZERO).await?;
        let requested = plan::requested_networks(&conf, None)?;
        let source = cluster_source(&conf, self.clients, &self.metrics, self.cache.as_ref())
            .await
            .ok()
            .flatten();
        let cluster = resolve::load(&requested.cluster, &conf, source.as_ref()).await?;
        delegate::status_or_gc(
            &cluster.conf,
            Command::Status,
            &Map::new(),
            &self.ctx(req, None),
        )
        .await
        .map_err(|e| MetaError::Delegate {
            network: cluster.key.clone(),
            delegate: delegate_type(&cluster.conf),
            ifname: String::new(),
            source: Box::new(e),
        })
    }
}

/// Test hook for crash tests; does nothing unless `MULTINET_FAILPOINT` is set. When it names
/// this point, the process writes its pid to `MULTINET_FAILPOINT_MARKER` (if set) and stops here
/// for good, so a test can SIGKILL it at a known step of ADD.
pub(crate) fn failpoint(name: &str) {
    if std::env::var_os("MULTINET_FAILPOINT").is_none_or(|v| v != name) {
        return;
    }
    if let Some(marker) = std::env::var_os("MULTINET_FAILPOINT_MARKER") {
        let _ = std::fs::write(marker, std::process::id().to_string());
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The recorded netns of a container being collected, when it still exists: its links are then
/// deleted and a VF comes back under its own name. A `/proc/<pid>/...` path is never reused for
/// this: the pid may belong to another process by now.
fn gc_netns(recorded: Option<&str>) -> Option<PathBuf> {
    let path = PathBuf::from(recorded?);
    if path.starts_with("/proc") || !path.exists() {
        return None;
    }
    Some(path)
}

/// The MAC the delegate reported for the attachment's interface in the pod (its result's
/// interface of that name with a sandbox).
pub(crate) fn recorded_mac(entry: &Attachment) -> Option<String> {
    entry
        .result
        .as_ref()?
        .get("interfaces")?
        .as_array()?
        .iter()
        .find(|i| {
            i.get("name").and_then(Value::as_str) == Some(entry.ifname.as_str())
                && i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        })?
        .get("mac")?
        .as_str()
        .map(str::to_string)
}

fn check_uid(pod: &PodInfo, r: &PodRef) -> Result<(), MetaError> {
    if let (Some(want), Some(have)) = (&r.uid, &pod.uid)
        && want != have
        && !pod.is_static()
    {
        return Err(MetaError::Pod {
            pod: pod.key(),
            msg: format!(
                "K8S_POD_UID {want} does not match the pod's UID {have}: the pod was replaced"
            ),
        });
    }
    Ok(())
}

/// The pod with its ResourceClaims only when the runtime's K8S_POD_UID is the pod's: the
/// static-pod leniency of [`check_uid`] does not extend to DRA devices (mirror pods cannot use
/// claims, and the pod object of another incarnation must not hand out its devices).
fn claims_checked(mut pod: PodInfo, r: &PodRef) -> PodInfo {
    if !pod.claims.is_empty() && (r.uid.is_none() || r.uid != pod.uid) {
        tracing::warn!(pod = %pod.key(), "K8S_POD_UID is not the pod's UID: its ResourceClaims are not read");
        pod.claims = Default::default();
    }
    pod
}

/// The plugin type(s) of a delegate config, for error messages.
pub(crate) fn delegate_type(conf: &DelegateConf) -> String {
    conf.types().join("+")
}

impl Plugin for MetaPlugin {
    fn name(&self) -> &'static str {
        "multinet"
    }

    async fn add(&self, req: &Request) -> multinet_cni::Result<NetworkResult> {
        self.do_add(req).await.map_err(CniError::from)
    }

    async fn del(&self, req: &Request) -> multinet_cni::Result<()> {
        self.do_del(req).await.map_err(CniError::from)
    }

    async fn check(&self, req: &Request) -> multinet_cni::Result<()> {
        self.do_check(req).await.map_err(CniError::from)
    }

    async fn status(&self, req: &Request) -> multinet_cni::Result<()> {
        self.do_status(req).await.map_err(CniError::from)
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> multinet_cni::Result<()> {
        self.do_gc(req, gc).await.map_err(CniError::from)
    }
}

/// Device IDs per resource name, used by the plan.
pub type DeviceIds = BTreeMap<String, Vec<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_comes_first_and_every_folder_once() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            search_path(
                &p("/opt/cni/bin"),
                &[
                    p("/usr/lib/cni"),
                    p("/opt/cni/bin/"),
                    p("/usr/lib/cni"),
                    p("/x")
                ]
            ),
            vec![p("/opt/cni/bin"), p("/usr/lib/cni"), p("/x")]
        );
        assert_eq!(search_path(&p("/b"), &[]), vec![p("/b")]);
    }
}
