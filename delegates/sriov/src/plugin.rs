//! The `"type": "sriov"` CNI plugin: ADD, DEL, CHECK, GC over the allocator, the VF settings
//! and the netdev moves.
//!
//! ADD: validate the config (nothing touched yet) → resolve the VF (deviceID or pool) →
//! claim it (lock + allocation record) → save its original state (written to disk before
//! the first change) → program the PF-side settings → move the netdev into the pod under
//! CNI_IFNAME, set its MAC, up → IPAM → device-info file → mark the state complete. Any
//! failure undoes every step done, in reverse, and releases the VF.
//!
//! DEL: release IPAM → read the saved state (none: done) → lock the VF → if the allocation
//! record is still ours: restore the PF-side settings, bring the netdev back to the host
//! under its original name with its MAC and MTU (from the pod, or from the host when the
//! kernel already returned it, or nowhere when it vanished) → drop record, device info and
//! state. A VF that another pod owns by now is left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use multinet_cni::files;
use multinet_cni::{
    CniError, GcRequest, Interface, NetworkResult, Plugin, Request, Result as CniResult,
};
use multinet_netlink::{KernelError, Link, Netns, Socket};

use crate::allocator::{Claim, Owner, VfAllocator};
use crate::attach::{self, Returned};
use crate::config::{DelConf, MacAddr, SriovConf};
use crate::devinfo;
use crate::error::{Result, SriovError};
use crate::ipam;
use crate::log::Logger;
use crate::state::{
    AllocationRecord, AttachmentState, DEFAULT_LOCK_TIMEOUT, OriginalVfState, StateDir, VfMode,
};
use crate::sysfs::Sysfs;
use crate::vf;

/// Where the plugin finds sysfs, keeps its state and writes device-info files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub sysfs: Sysfs,
    pub state: StateDir,
    pub devinfo_dir: PathBuf,
    pub lock_timeout: Duration,
}

impl Paths {
    /// From `MULTINET_SYSFS_ROOT`, `MULTINET_SRIOV_STATE_DIR`, `MULTINET_DEVINFO_DIR`, else the
    /// node defaults.
    pub fn from_env() -> Paths {
        Paths {
            sysfs: Sysfs::from_env(),
            state: StateDir::from_env(),
            devinfo_dir: devinfo::devinfo_dir_from_env(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Removes temp files that writers which died mid-write left in the state directory and
    /// the device-info directory.
    pub fn remove_stale_temps(&self) -> usize {
        self.state.remove_stale_temps()
            + files::remove_stale_temps(&self.devinfo_dir, crate::state::STALE_TEMP_AGE)
    }
}

/// The SR-IOV delegate. `SriovPlugin::default()` reads its paths from the environment at each
/// call; [`SriovPlugin::with_paths`] fixes them (tests, the meta-plugin).
#[derive(Debug, Clone, Default)]
pub struct SriovPlugin {
    paths: Option<Paths>,
}

impl SriovPlugin {
    pub fn new() -> Self {
        SriovPlugin::default()
    }

    pub fn with_paths(paths: Paths) -> Self {
        SriovPlugin { paths: Some(paths) }
    }

    fn paths(&self) -> Paths {
        self.paths.clone().unwrap_or_else(Paths::from_env)
    }
}

fn netns_err(path: &Path, e: impl std::fmt::Display) -> SriovError {
    SriovError::Netns {
        path: path.to_owned(),
        msg: e.to_string(),
    }
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(KernelError) -> SriovError {
    let what = what.into();
    // As the OS words it ("File exists (os error 17)"), as before the shared socket.
    move |e| SriovError::Netlink {
        what,
        msg: std::io::Error::from(e).to_string(),
    }
}

/// `namespace/name` of the pod the runtime names in CNI_ARGS, if it names one.
fn pod_of(env: &multinet_cni::CniEnv) -> Option<String> {
    let arg = |k| env.arg(k).filter(|v| !v.is_empty());
    Some(format!(
        "{}/{}",
        arg("K8S_POD_NAMESPACE")?,
        arg("K8S_POD_NAME")?
    ))
}

/// The steps of an ADD that succeeded so far, undone in reverse on failure.
#[derive(Default)]
struct Done {
    pf_programmed: bool,
    moved: Option<Link>,
    ipam: bool,
    devinfo: Option<PathBuf>,
}

struct AddCtx<'a> {
    req: &'a Request,
    paths: &'a Paths,
    conf: &'a SriovConf,
    log: &'a Logger,
    host: Netns,
    pod: Netns,
    host_nl: Socket,
}

impl SriovPlugin {
    async fn add_inner(&self, req: &Request) -> Result<NetworkResult> {
        let conf = SriovConf::from_request(&req.config, &req.env)?;
        let log = Logger::new(&conf.log);
        let paths = self.paths();
        if let Some(f) = &conf.device_info_file {
            devinfo::check_device_info_file(f, &paths.devinfo_dir)?;
        }
        let netns_path = req
            .env
            .netns
            .clone()
            .ok_or_else(|| SriovError::Internal("ADD without CNI_NETNS".to_owned()))?;
        let pod = Netns::open(&netns_path).map_err(|e| netns_err(&netns_path, e))?;
        let host = Netns::current().map_err(|e| netns_err(Path::new("current"), e))?;
        let (cid, ifname) = (&req.env.container_id, &req.env.ifname);
        if let Some(existing) = paths.state.read_attachment(cid, ifname)? {
            return Err(SriovError::Duplicate(format!(
                "container {cid} already has {ifname} attached (VF {}); DEL it first",
                existing.vf
            )));
        }
        let owner = Owner {
            container_id: cid.clone(),
            ifname: ifname.clone(),
            netns: netns_path.to_string_lossy().into_owned(),
            pod: pod_of(&req.env),
            pod_uid: req
                .env
                .arg("K8S_POD_UID")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        };
        let allocator =
            VfAllocator::new(&paths.sysfs, &paths.state).with_lock_timeout(paths.lock_timeout);
        let claim = match (&conf.device_id, &conf.pool) {
            (Some(id), pool) => {
                let vf = paths.sysfs.vf(id)?;
                if let Some(pool) = pool
                    && !pool.selectors.matches(&vf)
                {
                    return Err(SriovError::config(
                        "deviceID",
                        format!("VF {id} is not in pool {:?}", pool.name),
                    ));
                }
                precheck(&vf, &conf)?;
                allocator
                    .claim_device(vf, &owner, pool.as_ref().map(|p| p.name.as_str()))
                    .inspect_err(|e| {
                        if let SriovError::InUse {
                            device_id, owner, ..
                        } = e
                        {
                            log.warn(format_args!(
                                "ADD {cid}/{ifname}: VF {device_id} refused: owned by {owner}"
                            ));
                        }
                    })?
            }
            (None, Some(pool)) => {
                // A free VF whose netdev is not in the host is in use outside multinet.
                let nl = Socket::here().map_err(nl_err("opening a netlink socket"))?;
                let claim = allocator
                    .clone()
                    .preferring(conf.topology.clone())
                    .claim_from_pool_where(pool, &owner, |vf| match &vf.netdev {
                        Some(name) => nl.link_named(name).is_ok_and(|l| l.is_some()),
                        None => vf.is_dpdk(),
                    })?;
                if !conf.topology.is_empty() {
                    log.info(format_args!(
                        "ADD {cid}/{ifname}: VF {} of pool {:?} chosen: {}",
                        claim.vf.addr,
                        pool.name,
                        conf.topology.explain(&claim.vf)
                    ));
                }
                claim
            }
            (None, None) => {
                return Err(SriovError::config("deviceID", "VF PCI address is required"));
            }
        };
        if let Some((old, why)) = &claim.reclaimed {
            log.warn(format_args!(
                "VF {}: reclaimed from container {} ({why})",
                claim.vf.addr, old.container_id
            ));
        }
        log.info(format_args!(
            "ADD {cid}/{ifname}: VF {} ({}), PF {} VF {}",
            claim.vf.addr,
            claim.vf.ids.describe(),
            claim.vf.pf_netdev.as_deref().unwrap_or("?"),
            claim.vf.index
        ));
        let host_nl = Socket::here().map_err(nl_err("opening a netlink socket"))?;
        let mut ctx = AddCtx {
            req,
            paths: &paths,
            conf: &conf,
            log: &log,
            host,
            pod,
            host_nl,
        };
        match ctx.attach(&claim).await {
            Ok(result) => Ok(result),
            Err(e) => {
                log.error(format_args!("ADD {cid}/{ifname} failed: {e}"));
                Err(e)
            }
        }
        // The claim (and its lock) is dropped here, after the state is final.
    }

    async fn del_inner(&self, req: &Request) -> Result<()> {
        let conf = DelConf::from_request(&req.config);
        let log = Logger::new(&conf.log);
        let paths = self.paths();
        let (cid, ifname) = (&req.env.container_id, &req.env.ifname);
        // IPAM first, as the reference does: addresses are released even if the VF cannot be.
        if let Some(ipam_conf) = &conf.ipam {
            ipam::del(ipam_conf, req).await?;
        }
        paths.remove_stale_temps();
        match paths.state.read_attachment(cid, ifname) {
            Ok(Some(state)) => {
                release_attachment(&paths, &state, req.env.netns.as_deref(), &log)?;
            }
            Ok(None) => log.debug(format_args!("DEL {cid}/{ifname}: nothing attached")),
            // Unreadable or not trusted: never acted on, moved aside so it blocks nothing.
            Err(e) => set_aside_broken_state(&paths.state, cid, ifname, &e, &log)?,
        }
        // An ADD that died between claim and save left a record and changed nothing.
        release_orphans(&paths, |r| r.is_owned_by(cid, ifname), &log);
        Ok(())
    }

    async fn check_inner(&self, req: &Request) -> Result<()> {
        let conf = SriovConf::from_request(&req.config, &req.env)?;
        let paths = self.paths();
        let (cid, ifname) = (&req.env.container_id, &req.env.ifname);
        let state = paths
            .state
            .read_attachment(cid, ifname)?
            .filter(|s| s.complete)
            .ok_or_else(|| SriovError::Check(format!("no SR-IOV attachment {cid}/{ifname}")))?;
        match paths.state.read_record(&state.vf)? {
            Some(r) if r.is_owned_by(cid, ifname) => {}
            other => {
                return Err(SriovError::Check(format!(
                    "VF {} is not allocated to {cid}/{ifname} (record: {})",
                    state.vf,
                    other.map_or("none".to_owned(), |r| format!(
                        "{}/{}",
                        r.container_id, r.ifname
                    ))
                )));
            }
        }
        if state.mode == VfMode::Kernel {
            let netns = req
                .env
                .netns
                .clone()
                .ok_or_else(|| SriovError::Internal("CHECK without CNI_NETNS".to_owned()))?;
            let pod = Netns::open(&netns).map_err(|e| netns_err(&netns, e))?;
            let pod_nl = attach::netlink_in(&pod)?;
            let link = pod_nl
                .link_named(ifname)
                .map_err(nl_err(format!("reading {ifname}")))?
                .ok_or_else(|| {
                    SriovError::Check(format!("{ifname} is not in {}", netns.display()))
                })?;
            if let Some(mac) = state.result_mac
                && link.mac() != Some(mac)
            {
                return Err(SriovError::Check(format!(
                    "{ifname} has MAC {}, expected {mac}",
                    link.mac().map_or("none".to_owned(), |m| m.to_string())
                )));
            }
        }
        if let Some(ipam_conf) = &conf.ipam {
            ipam::check(ipam_conf, req).await?;
        }
        Ok(())
    }

    /// Undoes every attachment of this network whose (container, ifname) is not in `gc`, and
    /// drops every record an interrupted ADD left (any network) whose owner is not in it.
    async fn gc_inner(&self, req: &Request, gc: &GcRequest) -> Result<()> {
        let conf = DelConf::from_request(&req.config);
        let log = Logger::new(&conf.log);
        let paths = self.paths();
        paths.remove_stale_temps();
        let mut first_err = None;
        for state in paths.state.attachments() {
            if state.network != conf.name || gc.is_valid(&state.container_id, &state.ifname) {
                continue;
            }
            log.info(format_args!(
                "GC: releasing {}/{} (VF {})",
                state.container_id, state.ifname, state.vf
            ));
            if let Err(e) = release_attachment(&paths, &state, Some(Path::new(&state.netns)), &log)
            {
                log.error(format_args!(
                    "GC of {}/{}: {e}",
                    state.container_id, state.ifname
                ));
                first_err.get_or_insert(e);
            }
        }
        release_orphans(&paths, |r| !gc.is_valid(&r.container_id, &r.ifname), &log);
        first_err.map_or(Ok(()), Err)
    }
}

/// Undoes one attachment under its VF's lock: restores the VF (PF-side settings, netdev back
/// to the host from `netns`) when its record is still this attachment's, drops the record,
/// the device-info file and the state. A VF another container owns by now is left alone.
/// Returns whether a record was released.
fn release_attachment(
    paths: &Paths,
    state: &AttachmentState,
    netns: Option<&Path>,
    log: &Logger,
) -> Result<bool> {
    let (cid, ifname) = (&state.container_id, &state.ifname);
    let lock = paths.state.lock_vf(&state.vf, paths.lock_timeout)?;
    // An ADD of this attachment may have held the lock: read what it left.
    let Some(state) = paths.state.read_attachment(cid, ifname)? else {
        return Ok(false);
    };
    let owner = Owner {
        container_id: cid.clone(),
        ifname: ifname.clone(),
        netns: state.netns.clone(),
        pod: None,
        pod_uid: None,
    };
    let mut released = false;
    match paths.state.read_record(&state.vf) {
        Ok(Some(other)) if !other.is_owned_by(cid, ifname) => log.warn(format_args!(
            "{cid}/{ifname}: VF {} now belongs to container {}; leaving it alone",
            state.vf, other.container_id
        )),
        Ok(_) => {
            restore_vf(paths, &state, netns, log)?;
            released = VfAllocator::new(&paths.sysfs, &paths.state).release(&lock, &owner)?;
        }
        // Whose the VF is cannot be known: it is left as it is, and so is its record.
        Err(e) => log.error(format_args!(
            "{cid}/{ifname}: VF {} left alone, its record is refused: {e}",
            state.vf
        )),
    }
    if let Some(f) = &state.device_info_file {
        devinfo::remove_device_info(f)?;
    }
    paths.state.remove_attachment(cid, ifname)?;
    log.info(format_args!(
        "{cid}/{ifname}: VF {} {}",
        state.vf,
        if released { "released" } else { "detached" }
    ));
    Ok(released)
}

/// Drops, under each VF's lock, the records that `owned` selects and that have no attachment
/// state: an ADD died between claiming the VF and saving what it would change, so the VF was
/// not touched. Records that cannot be read are left alone. Returns how many went.
fn release_orphans(
    paths: &Paths,
    owned: impl Fn(&AllocationRecord) -> bool,
    log: &Logger,
) -> usize {
    let mut released = 0;
    for pci in paths.state.recorded_vfs() {
        let Ok(Some(record)) = paths.state.read_record(&pci) else {
            continue;
        };
        if !owned(&record) {
            continue;
        }
        let result = paths
            .state
            .lock_vf(&pci, paths.lock_timeout)
            .and_then(|lock| match paths.state.read_record(&pci)? {
                Some(r) if owned(&r) && paths.state.is_orphan(&lock, &r) => {
                    paths.state.drop_attachment(&lock, &r).map(|()| Some(r))
                }
                _ => Ok(None),
            });
        match result {
            Ok(Some(r)) => {
                released += 1;
                log.warn(format_args!(
                    "VF {pci}: released the record of {}/{}, whose ADD was interrupted",
                    r.container_id, r.ifname
                ));
            }
            Ok(None) => {}
            Err(e) => log.error(format_args!("VF {pci}: {e}")),
        }
    }
    released
}

/// Moves aside the attachment state of (cid, ifname) that `why` says cannot be used.
fn set_aside_broken_state(
    state: &StateDir,
    cid: &str,
    ifname: &str,
    why: &SriovError,
    log: &Logger,
) -> Result<()> {
    let aside = state.set_aside_attachment(cid, ifname)?;
    log.error(format_args!(
        "{cid}/{ifname}: attachment state not used ({why}); moved to {}",
        aside.display()
    ));
    Ok(())
}

/// Releases every VF that `container_id` holds, for a caller that knows only the container
/// (the meta-plugin when its own record is lost or corrupt): each attachment state of the
/// container is undone as DEL does (the netdev comes back from the netns the state names),
/// records whose ADD was interrupted are dropped, and state files of the container that cannot
/// be trusted or read are moved aside (VFs they name keep their record: whose they are cannot
/// be known). Runs in the host network namespace; problems go to stderr. Returns how many VF
/// records were released.
pub fn release_container(state: &StateDir, sysfs: &Sysfs, container_id: &str) -> usize {
    let paths = Paths {
        sysfs: sysfs.clone(),
        state: state.clone(),
        devinfo_dir: devinfo::devinfo_dir_from_env(),
        lock_timeout: DEFAULT_LOCK_TIMEOUT,
    };
    let log = Logger::stderr(crate::config::LogLevel::Warning);
    paths.remove_stale_temps();
    let prefix = format!("{container_id}:");
    let mut released = 0;
    for file in state.attachment_files() {
        match state.read_attachment_file(&file) {
            Ok(Some(s)) if s.container_id == container_id => {
                match release_attachment(&paths, &s, Some(Path::new(&s.netns)), &log) {
                    Ok(true) => released += 1,
                    Ok(false) => {}
                    Err(e) => log.error(format_args!("{container_id}/{}: {e}", s.ifname)),
                }
            }
            Ok(_) => {}
            Err(e) => {
                let ours = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix));
                if ours {
                    match crate::state::set_aside(&file) {
                        Ok(aside) => log.error(format_args!(
                            "{container_id}: state not used ({e}); moved to {}",
                            aside.display()
                        )),
                        Err(e2) => log.error(format_args!("{container_id}: {e}; {e2}")),
                    }
                }
            }
        }
    }
    released + release_orphans(&paths, |r| r.container_id == container_id, &log)
}

/// Read-only checks of a given VF before anything is claimed, so a VF that cannot work
/// leaves no trace.
fn precheck(vf: &crate::sysfs::VfDevice, conf: &SriovConf) -> Result<()> {
    if vf.netdev.is_none() && !vf.is_dpdk() {
        return Err(SriovError::config(
            "deviceID",
            format!(
                "VF {} has no netdev and its driver {} is not a user-space driver ({})",
                vf.addr,
                vf.driver.as_deref().unwrap_or("(none)"),
                crate::sysfs::DPDK_DRIVERS.join(", ")
            ),
        ));
    }
    if vf.pf_netdev.is_none() && !conf.settings.pf_only_keys().is_empty() {
        return Err(SriovError::config(
            conf.settings.pf_only_keys()[0],
            format!(
                "the PF {} of VF {} has no netdev to program it through",
                vf.pf, vf.addr
            ),
        ));
    }
    Ok(())
}

impl AddCtx<'_> {
    async fn attach(&mut self, claim: &Claim) -> Result<NetworkResult> {
        let mut done = Done::default();
        let (state, result) = match self.attach_steps(claim, &mut done).await {
            Ok(x) => x,
            Err(e) => {
                self.rollback(claim, &done).await;
                return Err(e);
            }
        };
        if let Err(e) = self.paths.state.write_attachment(&state) {
            self.rollback(claim, &done).await;
            return Err(e);
        }
        Ok(result)
    }

    async fn attach_steps(
        &mut self,
        claim: &Claim,
        done: &mut Done,
    ) -> Result<(AttachmentState, NetworkResult)> {
        let vf = &claim.vf;
        let env = &self.req.env;
        let mode = match &vf.netdev {
            Some(_) => VfMode::Kernel,
            None if vf.is_dpdk() => VfMode::Dpdk {
                driver: vf.driver.clone().unwrap_or_default(),
            },
            None => {
                precheck(vf, self.conf)?;
                return Err(SriovError::Internal(
                    "precheck passed a VF without netdev".into(),
                ));
            }
        };
        let pf_name = vf.pf_netdev.clone().unwrap_or_default();
        // The PF may be missing (a VF whose PF has no netdev): then nothing is programmed.
        let pf_link = if pf_name.is_empty() {
            None
        } else {
            self.host_nl
                .link_with_vfs(&pf_name)
                .map_err(nl_err(format!("reading PF {pf_name}")))?
        };
        let pf_side = pf_link
            .as_ref()
            .and_then(|(_, vfs)| vfs.as_ref())
            .and_then(|vfs| vfs.iter().find(|s| s.vf == vf.index).copied());
        let pf_link = pf_link.map(|(link, _)| link);
        if pf_side.is_none()
            && let Some(key) = self.conf.settings.pf_only_keys().first()
        {
            return Err(SriovError::config(
                *key,
                format!(
                    "PF {} reports no VF {} over netlink, so VF settings cannot be programmed",
                    if pf_name.is_empty() {
                        "(none)"
                    } else {
                        &pf_name
                    },
                    vf.index
                ),
            ));
        }
        let vf_link = match (&mode, &vf.netdev) {
            (VfMode::Kernel, Some(name)) => Some(
                self.host_nl
                    .link_named(name)
                    .map_err(nl_err(format!("reading VF netdev {name}")))?
                    .ok_or_else(|| {
                        SriovError::config(
                            "deviceID",
                            format!(
                                "VF {}'s netdev {name} (from sysfs) is not in this host netns",
                                vf.addr
                            ),
                        )
                    })?,
            ),
            _ => None,
        };
        let original = OriginalVfState {
            host_ifname: vf_link.as_ref().map(|l| l.name.clone()),
            ifindex: vf_link.as_ref().map(|l| l.index),
            effective_mac: vf_link.as_ref().and_then(Link::mac),
            mtu: vf_link.as_ref().map(|l| l.mtu),
            pf_side,
        };
        let mut applied = self.conf.settings;
        if pf_side.is_none() {
            applied.mac = None;
        }
        let device_info_file = self.conf.device_info_file.clone().unwrap_or_else(|| {
            devinfo::default_device_info_path(
                &self.paths.devinfo_dir,
                &self.conf.name,
                &env.container_id,
                &env.ifname,
            )
        });
        let mut state = AttachmentState {
            network: self.conf.name.clone(),
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            netns: self.pod.path().to_string_lossy().into_owned(),
            vf: vf.addr,
            pf: vf.pf,
            pf_netdev: pf_name.clone(),
            vf_index: vf.index,
            mode: mode.clone(),
            original: original.clone(),
            applied,
            result_mac: None,
            device_info_file: Some(device_info_file.clone()),
            complete: false,
        };
        // On disk before the first change: a crash from here on is cleaned by DEL.
        self.paths.state.write_attachment(&state)?;

        if let (Some(pf), Some(orig)) = (&pf_link, &pf_side) {
            vf::apply(&mut self.host_nl, pf.index, &pf_name, &applied, orig)?;
            done.pf_programmed = true;
        }

        let mut mtu = None;
        let mut netdev_mac = None;
        let mut pod_nl = None;
        if let Some(link) = &vf_link {
            let mut nl = attach::netlink_in(&self.pod)?;
            let in_pod = attach::move_into_pod(
                &mut attach::Namespaces {
                    host: &self.host,
                    host_nl: &mut self.host_nl,
                    pod: &self.pod,
                    pod_nl: &mut nl,
                },
                link,
                &env.ifname,
                self.conf.settings.mac,
                &original,
            )?;
            mtu = Some(in_pod.mtu);
            netdev_mac = in_pod.mac();
            done.moved = Some(in_pod);
            pod_nl = Some(nl);
        }

        let mut result = NetworkResult {
            cni_version: self.req.version,
            ..Default::default()
        };
        if let Some(ipam_conf) = &self.conf.ipam {
            let ipam_result = ipam::add(ipam_conf, self.req).await?;
            done.ipam = true;
            if ipam_result.ips.is_empty() {
                return Err(SriovError::Ipam(CniError::internal(
                    "IPAM plugin returned no IP addresses",
                )));
            }
            if let (Some(nl), Some(link)) = (pod_nl.as_ref(), &done.moved) {
                attach::configure_ips(nl, &env.ifname, link.index, &ipam_result).await?;
            }
            result.ips = ipam_result.ips;
            for ip in &mut result.ips {
                ip.interface = Some(0);
            }
            result.routes = ipam_result.routes;
            result.dns = ipam_result.dns;
        }

        devinfo::write_device_info(&device_info_file, &devinfo::device_info(&vf.addr, &vf.pf))?;
        done.devinfo = Some(device_info_file);

        let admin_mac = pf_side.map(|_| applied.mac.or(original.pf_side.map(|p| p.admin_mac)));
        let result_mac: Option<MacAddr> = self
            .conf
            .settings
            .mac
            .or(netdev_mac)
            .or(admin_mac.flatten().filter(|m| !m.is_zero()));
        result.interfaces.push(Interface {
            name: env.ifname.clone(),
            mac: result_mac.map(|m| m.to_string()),
            mtu,
            sandbox: Some(self.pod.path().to_string_lossy().into_owned()),
            socket_path: None,
            pci_id: Some(vf.addr.to_string()),
        });
        state.result_mac = netdev_mac;
        state.complete = true;
        self.log.info(format_args!(
            "ADD {}/{}: VF {} attached ({})",
            env.container_id,
            env.ifname,
            vf.addr,
            match &mode {
                VfMode::Kernel =>
                    format!("netdev {}", original.host_ifname.as_deref().unwrap_or("?")),
                VfMode::Dpdk { driver } => format!("user-space driver {driver}"),
            }
        ));
        Ok((state, result))
    }

    /// Undoes the steps in `done`, newest first, and releases the VF; logs what fails.
    async fn rollback(&mut self, claim: &Claim, done: &Done) {
        let env = &self.req.env;
        let log = self.log;
        let Ok(Some(state)) = self
            .paths
            .state
            .read_attachment(&env.container_id, &env.ifname)
        else {
            let owner = Owner {
                container_id: env.container_id.clone(),
                ifname: env.ifname.clone(),
                netns: String::new(),
                pod: None,
                pod_uid: None,
            };
            let _ =
                VfAllocator::new(&self.paths.sysfs, &self.paths.state).release(&claim.lock, &owner);
            return;
        };
        let mut clean = true;
        if let Some(f) = &done.devinfo {
            let _ = devinfo::remove_device_info(f);
        }
        if done.ipam
            && let Some(ipam_conf) = &self.conf.ipam
            && let Err(e) = ipam::del(ipam_conf, self.req).await
        {
            log.error(format_args!("rollback: IPAM DEL failed: {e}"));
            clean = false;
        }
        if let Some(link) = &done.moved {
            let back = attach::netlink_in(&self.pod).and_then(|pod_nl| {
                attach::return_to_host(&pod_nl, &self.host_nl, &self.host, link, &state.original)
            });
            if let Err(e) = back {
                log.error(format_args!(
                    "rollback: returning the VF netdev failed: {e}"
                ));
                clean = false;
            }
        }
        if done.pf_programmed
            && let Some(orig) = &state.original.pf_side
        {
            let pf = self.host_nl.link_named(&state.pf_netdev);
            let restored = match pf {
                Ok(Some(pf)) => vf::restore(
                    &mut self.host_nl,
                    pf.index,
                    &state.pf_netdev,
                    &state.applied,
                    orig,
                ),
                Ok(None) => Ok(()),
                Err(e) => Err(nl_err("reading the PF")(e)),
            };
            if let Err(e) = restored {
                log.error(format_args!("rollback: restoring VF settings failed: {e}"));
                clean = false;
            }
        }
        if clean {
            let owner = Owner {
                container_id: env.container_id.clone(),
                ifname: env.ifname.clone(),
                netns: state.netns.clone(),
                pod: None,
                pod_uid: None,
            };
            let _ =
                VfAllocator::new(&self.paths.sysfs, &self.paths.state).release(&claim.lock, &owner);
            let _ = self
                .paths
                .state
                .remove_attachment(&env.container_id, &env.ifname);
        } else {
            log.error("rollback incomplete: the saved state is kept for DEL to finish");
        }
    }
}

/// Restores the VF of `state`: PF-side settings, then the netdev (from the pod netns if it is
/// still there, else from the host, else nowhere).
fn restore_vf(
    paths: &Paths,
    state: &AttachmentState,
    netns: Option<&Path>,
    log: &Logger,
) -> Result<()> {
    let mut host_nl = Socket::here().map_err(nl_err("opening a netlink socket"))?;
    // The PF's current name, in case it was renamed since ADD.
    let pf_name = paths
        .sysfs
        .pf(&state.pf)
        .and_then(|pf| pf.netdev().map(str::to_owned))
        .unwrap_or_else(|| state.pf_netdev.clone());
    if let Some(orig) = &state.original.pf_side {
        match host_nl
            .link_named(&pf_name)
            .map_err(nl_err(format!("reading PF {pf_name}")))?
        {
            Some(pf) => vf::restore(&mut host_nl, pf.index, &pf_name, &state.applied, orig)?,
            None => log.warn(format_args!(
                "PF {pf_name} is gone: VF {} settings cannot be restored",
                state.vf
            )),
        }
    }
    if state.mode != VfMode::Kernel {
        return Ok(());
    }
    let host = Netns::current().map_err(|e| netns_err(Path::new("current"), e))?;
    let pod = netns
        .filter(|p| !p.as_os_str().is_empty())
        .and_then(|p| Netns::open(p).ok());
    if let Some(pod) = &pod {
        let pod_nl = attach::netlink_in(pod)?;
        if let Some(link) = pod_nl
            .link_named(&state.ifname)
            .map_err(nl_err(format!("reading {}", state.ifname)))?
        {
            let back = attach::return_to_host(&pod_nl, &host_nl, &host, &link, &state.original)?;
            log_returned(log, state, &back);
            return Ok(());
        }
    }
    // The netns is gone (or the netdev left it): the kernel returns a physical netdev to the
    // host, under its pod name or devN. sysfs names it; the original name is the fallback.
    let mut candidates: Vec<String> = paths
        .sysfs
        .function(&state.vf)
        .map(|f| f.netdevs)
        .unwrap_or_default();
    candidates.extend(state.original.host_ifname.clone());
    for name in candidates {
        if let Some(link) = host_nl
            .link_named(&name)
            .map_err(nl_err(format!("reading {name}")))?
        {
            let back = attach::release_in_host(&host_nl, &link, &state.original)?;
            log_returned(log, state, &back);
            return Ok(());
        }
    }
    log.warn(format_args!(
        "VF {} netdev not found in the pod or the host: only its PF-side settings were restored",
        state.vf
    ));
    Ok(())
}

fn log_returned(log: &Logger, state: &AttachmentState, back: &Returned) {
    match back {
        Returned::AsOriginal(name) => {
            log.info(format_args!(
                "VF {} netdev back in the host as {name}",
                state.vf
            ));
        }
        Returned::Renamed(name) => log.warn(format_args!(
            "VF {} netdev back in the host as {name}: its name {} is taken",
            state.vf,
            state.original.host_ifname.as_deref().unwrap_or("?")
        )),
    }
}

impl Plugin for SriovPlugin {
    fn name(&self) -> &'static str {
        "sriov"
    }

    async fn add(&self, req: &Request) -> CniResult<NetworkResult> {
        self.add_inner(req).await.map_err(CniError::from)
    }

    async fn del(&self, req: &Request) -> CniResult<()> {
        self.del_inner(req).await.map_err(CniError::from)
    }

    async fn check(&self, req: &Request) -> CniResult<()> {
        self.check_inner(req).await.map_err(CniError::from)
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> CniResult<()> {
        self.gc_inner(req, gc).await.map_err(CniError::from)
    }
}
