//! On-disk state under one directory (default `/var/lib/cni/multinet-sriov`, env
//! `MULTINET_SRIOV_STATE_DIR`):
//!
//! ```text
//! <dir>/pci/vf_lock/<pci>.lock     flock(LOCK_EX) serialising every ADD/DEL of one VF
//! <dir>/pci/<pci>                  allocation record: who owns the VF (JSON)
//! <dir>/attach/<cid>:<ifname>.json what ADD changed, so DEL can restore it (JSON)
//! ```
//!
//! Every file is written atomically through `multinet_cni::files` (unique temp file, fsync,
//! rename) with mode 0600 in 0700 directories, whatever the umask. A file or directory another
//! uid could have written (other owner, group- or world-writable, a symlink) is refused, never
//! trusted. `:` separates the container ID from the interface name because neither may contain
//! it; a name past NAME_MAX is hashed. Records are written and removed only while the VF's lock
//! is held (the API demands a [`VfLock`]), so a VF never has two owners; and since an ADD holds
//! that lock from its claim until its attachment state is on disk, a record without attachment
//! state seen under the lock is the leftover of an ADD that died (see
//! [`StateDir::is_orphan`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use multinet_cni::files::{self, PRIVATE_DIR, PRIVATE_FILE, WriteOptions};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{MacAddr, VfSettings};
use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use crate::vf::PfVfState;

/// Overrides the state directory.
pub const STATE_DIR_ENV: &str = "MULTINET_SRIOV_STATE_DIR";
/// Where the state lives on a node.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/multinet-sriov";
/// How long ADD/DEL wait for a VF that another call is working on.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest state file read; ours are a few KiB.
const MAX_STATE_FILE: u64 = 1 << 20;
/// A temp file this old is stale even if a process with its writer's pid is alive (pids wrap).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);
/// Suffix of a corrupt or untrusted attachment state moved aside by DEL (kept for inspection;
/// not `.json`, so nothing reads it again).
pub const SET_ASIDE_SUFFIX: &str = ".set-aside";

/// Removes `path`; a file that is gone already is fine.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads a state file we wrote: a symlink, a file of another uid or one others may write is
/// refused (its content could come from someone who is not root), as is one that is not JSON.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = files::read_trusted(path, MAX_STATE_FILE)
        .map_err(|e| SriovError::io(format!("refusing state file {}", path.display()), e))?;
    match bytes {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SriovError::Decode(format!("state file {}: {e}", path.display()))),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| SriovError::Internal(format!("encoding {}: {e}", path.display())))?;
    files::write_atomic(path, &bytes, WriteOptions::PRIVATE_DURABLE)
        .map_err(|e| SriovError::io(format!("writing {}", path.display()), e))
}

/// Identity of a live network namespace: (device, inode) of its nsfs file; None when the
/// path is gone or is no longer a namespace (a stale bind-mount target).
pub fn netns_identity(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statfs::statfs(path).ok()?;
    if st.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return None;
    }
    let md = fs::metadata(path).ok()?;
    Some((md.dev(), md.ino()))
}

/// The exclusive lock of one VF; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct VfLock {
    pci: PciAddress,
    _file: Flock<File>,
}

impl VfLock {
    pub fn pci(&self) -> PciAddress {
        self.pci
    }
}

/// A ResourceClaim (DRA) that a VF is prepared for: from the kubelet's prepare to its unprepare
/// the VF is the claim's, and only a pod the claim is reserved for may attach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimHold {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// UIDs of the pods the claim is reserved for (`status.reservedFor`) when it was prepared.
    #[serde(default)]
    pub pods: Vec<String>,
}

impl ClaimHold {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Who holds a VF: an attachment (container, ifname, netns), a DRA claim, or a claim and the
/// attachment of one of its pods. A claim-only record has empty attachment fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub pci: PciAddress,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// (dev, inode) of the netns when allocated, to tell a reused path from the pod's netns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<(u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// `namespace/name` of the owning pod; absent in records of earlier versions and when the
    /// runtime named no pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The DRA claim holding the VF, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimHold>,
    pub pid: u32,
    pub created_unix: u64,
}

impl AllocationRecord {
    /// A record for `pci` owned by (container, ifname) in `netns`.
    pub fn new(pci: PciAddress, container_id: &str, ifname: &str, netns: &str) -> Self {
        AllocationRecord {
            pci,
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
            netns: netns.to_owned(),
            netns_id: netns_identity(Path::new(netns)),
            pool: None,
            pod: None,
            claim: None,
            pid: std::process::id(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// A record of the VF held by `claim` alone, not attached.
    pub fn for_claim(pci: PciAddress, claim: ClaimHold) -> Self {
        AllocationRecord {
            claim: Some(claim),
            ..AllocationRecord::new(pci, "", "", "")
        }
    }

    pub fn is_owned_by(&self, container_id: &str, ifname: &str) -> bool {
        self.is_attached() && self.container_id == container_id && self.ifname == ifname
    }

    /// Whether an attachment holds the VF (a claim-only record has none).
    pub fn is_attached(&self) -> bool {
        !self.container_id.is_empty()
    }

    /// This record without its attachment: what is left when the attachment goes. None when
    /// nothing is left (no claim holds the VF).
    pub fn without_attachment(&self) -> Option<AllocationRecord> {
        let claim = self.claim.clone()?;
        Some(AllocationRecord {
            pid: self.pid,
            created_unix: self.created_unix,
            pool: self.pool.clone(),
            ..AllocationRecord::for_claim(self.pci, claim)
        })
    }

    /// Why the record's attachment is stale (its netns is gone or is another one), or None if
    /// it is live or there is no attachment (a claim holds the VF until it is unprepared).
    pub fn stale_reason(&self) -> Option<String> {
        if !self.is_attached() {
            return None;
        }
        match netns_identity(Path::new(&self.netns)) {
            None => Some(format!("netns {} no longer exists", self.netns)),
            Some(id) if self.netns_id.is_some_and(|rec| rec != id) => {
                Some(format!("netns {} is now another namespace", self.netns))
            }
            Some(_) => None,
        }
    }
}

/// How a VF is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum VfMode {
    /// A kernel netdev, moved into the pod.
    Kernel,
    /// Bound to a user-space driver: programmed on the PF, nothing moved.
    Dpdk { driver: String },
}

/// What the VF looked like before ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OriginalVfState {
    /// The VF netdev's name in the host.
    pub host_ifname: Option<String>,
    pub ifindex: Option<u32>,
    pub effective_mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// The PF's view of the VF; None when the PF reports no VF info.
    pub pf_side: Option<PfVfState>,
}

/// Everything an attachment changed, written before the first change so DEL can undo a
/// half-done ADD too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentState {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub vf: PciAddress,
    pub pf: PciAddress,
    /// The PF netdev at ADD time (DEL re-reads sysfs in case it was renamed).
    pub pf_netdev: String,
    pub vf_index: u32,
    #[serde(flatten)]
    pub mode: VfMode,
    pub original: OriginalVfState,
    /// The PF-side settings ADD asked for; DEL restores exactly these.
    pub applied: VfSettings,
    /// The MAC the VF netdev got in the pod, which CHECK verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<PathBuf>,
    /// False until ADD finished; a DEL of an unfinished ADD is a rollback.
    #[serde(default)]
    pub complete: bool,
}

/// The state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl Default for StateDir {
    fn default() -> Self {
        StateDir::new(DEFAULT_STATE_DIR)
    }
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `$MULTINET_SRIOV_STATE_DIR`, else the default.
    pub fn from_env() -> Self {
        match std::env::var_os(STATE_DIR_ENV) {
            Some(d) if !d.is_empty() => StateDir::new(d),
            _ => StateDir::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn records_dir(&self) -> PathBuf {
        self.root.join("pci")
    }

    fn attachments_dir(&self) -> PathBuf {
        self.root.join("attach")
    }

    pub fn lock_dir(&self) -> PathBuf {
        self.root.join("pci/vf_lock")
    }

    pub fn record_path(&self, pci: &PciAddress) -> PathBuf {
        self.records_dir().join(pci.to_string())
    }

    pub fn attachment_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        // ".json" and the set-aside suffix must still fit.
        let name = files::name_for(
            &format!("{container_id}:{ifname}"),
            ".json".len() + SET_ASIDE_SUFFIX.len() + "-99".len(),
        );
        self.attachments_dir().join(format!("{name}.json"))
    }

    /// Creates the state directories (0700 whatever the umask), or checks that existing ones
    /// are root's alone: a directory another uid may write could hold planted records.
    pub fn prepare(&self) -> Result<()> {
        for dir in [
            self.root.clone(),
            self.records_dir(),
            self.lock_dir(),
            self.attachments_dir(),
        ] {
            files::ensure_dir(&dir, PRIVATE_DIR)
                .map_err(|e| SriovError::io(format!("state directory {}", dir.display()), e))?;
        }
        Ok(())
    }

    /// Removes temp files that writers which died mid-write left in the state directories.
    /// Returns how many went.
    pub fn remove_stale_temps(&self) -> usize {
        [self.records_dir(), self.attachments_dir()]
            .iter()
            .map(|d| files::remove_stale_temps(d, STALE_TEMP_AGE))
            .sum()
    }

    fn open_lock_file(&self, pci: &PciAddress) -> Result<File> {
        self.prepare()?;
        let path = self.lock_dir().join(format!("{pci}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| SriovError::io(format!("opening {}", path.display()), e))?;
        // A lock file others may open could be flock()ed by them to block the VF.
        let meta = file
            .metadata()
            .map_err(|e| SriovError::io(format!("reading {}", path.display()), e))?;
        files::check_trusted(&path, &meta)
            .map_err(|e| SriovError::io(format!("refusing lock {}", path.display()), e.into()))?;
        Ok(file)
    }

    /// Takes the VF's lock if it is free right now.
    pub fn try_lock_vf(&self, pci: &PciAddress) -> Result<Option<VfLock>> {
        let file = self.open_lock_file(pci)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => Ok(Some(VfLock {
                pci: *pci,
                _file: f,
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(SriovError::io(
                format!("locking VF {pci}"),
                io::Error::from(e),
            )),
        }
    }

    /// Takes the VF's lock, waiting up to `timeout` for another call to finish with it.
    pub fn lock_vf(&self, pci: &PciAddress, timeout: Duration) -> Result<VfLock> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(lock) = self.try_lock_vf(pci)? {
                return Ok(lock);
            }
            if start.elapsed() >= timeout {
                return Err(SriovError::Busy {
                    pci: pci.to_string(),
                    msg: format!(
                        "another ADD or DEL held its lock for more than {:?}",
                        timeout
                    ),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    pub fn read_record(&self, pci: &PciAddress) -> Result<Option<AllocationRecord>> {
        read_json(&self.record_path(pci))
    }

    /// Writes the VF's record; the lock proves no one else is deciding about this VF.
    pub fn write_record(&self, lock: &VfLock, record: &AllocationRecord) -> Result<()> {
        if lock.pci != record.pci {
            return Err(SriovError::Internal(format!(
                "record for {} written under the lock of {}",
                record.pci, lock.pci
            )));
        }
        self.prepare()?;
        write_json(&self.record_path(&record.pci), record)
    }

    pub fn remove_record(&self, lock: &VfLock) -> Result<()> {
        let path = self.record_path(&lock.pci);
        remove_if_present(&path)
            .map_err(|e| SriovError::io(format!("removing {}", path.display()), e))
    }

    /// The PCI addresses that have an allocation record file, trusted or not.
    pub fn recorded_vfs(&self) -> Vec<PciAddress> {
        let Ok(rd) = fs::read_dir(self.records_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<PciAddress> = rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort();
        out
    }

    /// Every allocation record (for listing); unreadable and untrusted ones are skipped.
    pub fn records(&self) -> Vec<AllocationRecord> {
        self.recorded_vfs()
            .iter()
            .filter_map(|pci| self.read_record(pci).ok().flatten())
            .collect()
    }

    /// True when the locked VF's record has no attachment state: the ADD that wrote it died
    /// before saving what it changed (it held this lock from claim to save), so the VF was not
    /// touched and the record can go.
    pub fn is_orphan(&self, lock: &VfLock, record: &AllocationRecord) -> bool {
        record.pci == lock.pci
            && record.is_attached()
            && fs::symlink_metadata(self.attachment_path(&record.container_id, &record.ifname))
                .is_err()
    }

    /// Drops the attachment from the locked VF's record: the record goes, or, when a claim
    /// holds the VF, stays with the claim alone.
    pub fn drop_attachment(&self, lock: &VfLock, record: &AllocationRecord) -> Result<()> {
        match record.without_attachment() {
            Some(claim_only) => self.write_record(lock, &claim_only),
            None => self.remove_record(lock),
        }
    }

    pub fn read_attachment(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<AttachmentState>> {
        let path = self.attachment_path(container_id, ifname);
        let state: Option<AttachmentState> = read_json(&path)?;
        match state {
            // A file whose content names another attachment is not this one's.
            Some(s) if s.container_id != container_id || s.ifname != ifname => {
                Err(SriovError::Decode(format!(
                    "state file {} holds attachment {}/{}",
                    path.display(),
                    s.container_id,
                    s.ifname
                )))
            }
            other => Ok(other),
        }
    }

    pub fn write_attachment(&self, state: &AttachmentState) -> Result<()> {
        self.prepare()?;
        write_json(
            &self.attachment_path(&state.container_id, &state.ifname),
            state,
        )
    }

    pub fn remove_attachment(&self, container_id: &str, ifname: &str) -> Result<()> {
        let path = self.attachment_path(container_id, ifname);
        remove_if_present(&path)
            .map_err(|e| SriovError::io(format!("removing {}", path.display()), e))
    }

    /// Moves an attachment state that cannot be trusted or read out of the way (renamed with
    /// [`SET_ASIDE_SUFFIX`], kept for inspection) so that it blocks nothing. Returns the new
    /// path.
    pub fn set_aside_attachment(&self, container_id: &str, ifname: &str) -> Result<PathBuf> {
        let path = self.attachment_path(container_id, ifname);
        set_aside(&path)
    }

    /// Every attachment state (for GC); unreadable and untrusted ones are skipped.
    pub fn attachments(&self) -> Vec<AttachmentState> {
        self.attachment_files()
            .iter()
            .filter_map(|path| read_json(path).ok().flatten())
            .collect()
    }

    /// Reads one attachment state file (from [`StateDir::attachment_files`]), refusing it like
    /// every state file when it cannot be trusted.
    pub fn read_attachment_file(&self, path: &Path) -> Result<Option<AttachmentState>> {
        read_json(path)
    }

    /// The attachment state files (`*.json`), trusted or not.
    pub fn attachment_files(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(self.attachments_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = rd
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name();
                let name = name.to_str()?;
                (name.ends_with(".json") && !files::is_temp_name(name)).then(|| e.path())
            })
            .collect();
        out.sort();
        out
    }
}

/// Renames `path` to `<path>.set-aside[-n]` (never over an earlier one).
pub fn set_aside(path: &Path) -> Result<PathBuf> {
    let base = format!("{}{SET_ASIDE_SUFFIX}", path.display());
    for n in 0..100u32 {
        let target = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}-{n}"))
        };
        if fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        return fs::rename(path, &target)
            .map(|()| target)
            .map_err(|e| SriovError::io(format!("setting aside {}", path.display()), e));
    }
    Err(SriovError::Internal(format!(
        "{} has been set aside 100 times",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn files_and_dirs_get_private_modes_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        // SAFETY: umask only changes this process's creation mask.
        let old = unsafe { libc::umask(0) };
        let a = pci("0000:af:06.0");
        let lock = state.try_lock_vf(&a).unwrap().unwrap();
        let rec = AllocationRecord::new(a, "c1", "net1", "/nonexistent/netns");
        state.write_record(&lock, &rec).unwrap();
        state.write_record(&lock, &rec).unwrap();
        unsafe { libc::umask(old) };
        for dir in ["", "pci", "pci/vf_lock", "attach"] {
            let mode = fs::metadata(state.root().join(dir)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{dir}");
        }
        for file in [
            state.record_path(&a),
            state.lock_dir().join(format!("{a}.lock")),
        ] {
            let mode = fs::metadata(&file).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        let names: Vec<_> = fs::read_dir(state.root().join("pci"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "record and lock dir only: {names:?}");
    }

    #[test]
    fn long_attachment_names_fit_and_stay_distinct() {
        let state = StateDir::new("/s");
        let long = "c".repeat(300);
        let p = state.attachment_path(&long, "net1");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.len() + SET_ASIDE_SUFFIX.len() + 3 <= files::NAME_MAX);
        assert_ne!(p, state.attachment_path(&long, "net2"));
        assert_eq!(
            state.attachment_path("c1", "net1"),
            Path::new("/s/attach/c1:net1.json")
        );
    }

    #[test]
    fn a_locked_vf_cannot_be_locked_again_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        // Never the temp dir itself: another test may have made it under umask 000.
        let state = StateDir::new(tmp.path().join("state"));
        let a = pci("0000:af:06.0");
        let lock = state.try_lock_vf(&a).unwrap().unwrap();
        assert!(state.try_lock_vf(&a).unwrap().is_none());
        assert!(state.try_lock_vf(&pci("0000:af:06.1")).unwrap().is_some());
        let err = state.lock_vf(&a, Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.code().code(), 11, "{err}");
        drop(lock);
        assert!(state.lock_vf(&a, Duration::from_millis(30)).is_ok());
    }

    #[test]
    fn records_need_the_matching_lock() {
        let tmp = tempfile::tempdir().unwrap();
        // Never the temp dir itself: another test may have made it under umask 000.
        let state = StateDir::new(tmp.path().join("state"));
        let a = pci("0000:af:06.0");
        let lock_b = state.try_lock_vf(&pci("0000:af:06.1")).unwrap().unwrap();
        let rec = AllocationRecord::new(a, "c1", "net1", "/nonexistent/netns");
        assert!(state.write_record(&lock_b, &rec).is_err());
        let lock_a = state.try_lock_vf(&a).unwrap().unwrap();
        state.write_record(&lock_a, &rec).unwrap();
        assert_eq!(state.read_record(&a).unwrap(), Some(rec.clone()));
        assert_eq!(state.records(), vec![rec.clone()]);
        assert!(rec.stale_reason().unwrap().contains("no longer exists"));
        state.remove_record(&lock_a).unwrap();
        state.remove_record(&lock_a).unwrap();
        assert_eq!(state.read_record(&a).unwrap(), None);
    }

    #[test]
    fn own_netns_is_live() {
        let rec = AllocationRecord::new(pci("0000:af:06.0"), "c", "i", "/proc/self/ns/net");
        assert!(rec.netns_id.is_some());
        assert_eq!(rec.stale_reason(), None);
    }
}
