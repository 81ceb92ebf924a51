//! The on-disk store, byte-compatible with the reference host-local:
//! `<dataDir>/<net>/<ip>` holds "containerID\r\nifname" and never exists with other content;
//! `<dataDir>/<net>/last_reserved_ip.<rangeSetIndex>` holds the last address handed out;
//! `<dataDir>/<net>/lock` is flock()ed while the store is used. A [`Store`] holds that lock for
//! its whole life, so one ADD is atomic against every other user of the directory, ours or the
//! reference's.
//!
//! Modes are explicit whatever the umask: directories and address files as the reference
//! writes them (0755, 0644: tools read them), the lock 0600 (anyone who can open it can flock it
//! and stall every ADD of the network). A directory or file that another uid could have written
//! (other owner, group- or world-writable, a symlink) is refused or ignored, never trusted.
//!
//! Every writer (this one and the reference) holds the lock while it writes, so under the lock
//! an empty address file or a temp file is the leftover of a writer that died: [`Store`] removes
//! them when it takes the lock. This store never leaves an empty file itself: an address file
//! is written in full under a temp name and then linked into place, which fails if the address
//! is taken.

use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use multinet_cni::files::{self, WriteOptions};
use nix::fcntl::{Flock, FlockArg};

use crate::error::{IpamError, IpamResult};

const LAST_IP_PREFIX: &str = "last_reserved_ip.";
const LINE_BREAK: &str = "\r\n";
pub const LOCK_FILE: &str = "lock";
/// Mode of the data and network directories (the reference's).
pub const DIR_MODE: u32 = 0o755;
/// Mode of address and last-reserved files (the reference's).
pub const FILE_MODE: u32 = 0o644;
/// Mode of the lock file.
pub const LOCK_MODE: u32 = files::PRIVATE_FILE;
/// The largest address file read: a container ID and an interface name.
const MAX_RECORD: u64 = 64 * 1024;

/// One address file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub container_id: String,
    /// None for files written by old versions, which hold only the container ID.
    pub ifname: Option<String>,
}

impl Allocation {
    fn matches(&self, id: &str, ifname: &str) -> bool {
        self.container_id == id.trim() && self.ifname.as_deref().is_none_or(|i| i == ifname)
    }

    /// Parses an address file's content; None for an empty one (an interrupted write).
    fn parse(ip: IpAddr, content: &str) -> Option<Allocation> {
        let content = content.trim();
        if content.is_empty() {
            return None;
        }
        let (container_id, ifname) = match content.split_once(LINE_BREAK) {
            Some((id, ifname)) => (id.trim().to_string(), Some(ifname.trim().to_string())),
            None => (content.to_string(), None),
        };
        Some(Allocation {
            ip,
            container_id,
            ifname,
        })
    }
}

/// The store of one network, locked.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> IpamError {
    move |e| IpamError::io(what, e)
}

impl Store {
    /// The network's directory.
    pub fn network_dir(data_dir: &Path, network: &str) -> PathBuf {
        data_dir.join(network)
    }

    /// Creates the directories if needed (mode 0755, checked when they exist) and takes the
    /// lock (waiting for it).
    pub fn open(data_dir: &Path, network: &str) -> IpamResult<Store> {
        let dir = Store::network_dir(data_dir, network);
        for d in [data_dir, dir.as_path()] {
            files::ensure_dir(d, DIR_MODE)
                .map_err(io(format!("host-local store {}", d.display())))?;
        }
        Store::lock(dir)
    }

    /// Takes the lock of an existing store; None when the directory does not exist (nothing was
    /// ever allocated there, so DEL, CHECK and GC have nothing to do and create nothing).
    pub fn open_existing(data_dir: &Path, network: &str) -> IpamResult<Option<Store>> {
        let dir = Store::network_dir(data_dir, network);
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IpamError::io(format!("reading {}", dir.display()), e)),
        };
        if !meta.is_dir() {
            return Err(IpamError::io(
                format!("host-local store {}", dir.display()),
                std::io::Error::other("not a directory (a symlink is not followed)"),
            ));
        }
        files::check_trusted(&dir, &meta)
            .map_err(|e| IpamError::io(format!("host-local store {}", dir.display()), e.into()))?;
        Store::lock(dir).map(Some)
    }

    fn lock(dir: PathBuf) -> IpamResult<Store> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .mode(LOCK_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io(format!("opening lock {}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(io(format!("reading lock {}", path.display())))?;
        files::check_trusted(&path, &meta)
            .map_err(|e| IpamError::io(format!("refusing lock {}", path.display()), e.into()))?;
        // A lock an older version (or another tool) left readable by others is made private:
        // whoever can open it can flock it. Root opens it whatever its mode.
        if meta.mode() & 0o077 != 0 {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(LOCK_MODE))
                .map_err(io(format!("restricting lock {}", path.display())))?;
        }
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            IpamError::io(
                format!("locking {}", path.display()),
                std::io::Error::from(errno),
            )
        })?;
        let store = Store { dir, _lock: lock };
        store.sweep();
        Ok(store)
    }

    /// Removes what writers that died left (we hold the lock, so no writer is at work): temp
    /// files, and empty address files (created, never written).
    fn sweep(&self) {
        // Only temps whose writer is dead: a dataDir shared with another writer's folder must not
        // lose a live writer's file.
        files::remove_stale_temps(&self.dir, std::time::Duration::MAX);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // The fixed temp name older versions of this store used.
            let old_temp =
                name.starts_with(&format!(".{LAST_IP_PREFIX}")) && name.ends_with(".tmp");
            let empty_record = name.parse::<IpAddr>().is_ok()
                && entry
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.len() == 0 && m.uid() == files::own_uid());
            if old_temp || empty_record {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Claims `ip` for (id, ifname); false when it is already taken.
    pub fn reserve(
        &self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        range_set: usize,
    ) -> IpamResult<bool> {
        let path = self.ip_path(ip);
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        if !create_exclusive(&path, content.as_bytes())
            .map_err(io(format!("creating {}", path.display())))?
        {
            return Ok(false);
        }
        self.write_last_reserved(ip, range_set)?;
        Ok(true)
    }

    fn write_last_reserved(&self, ip: IpAddr, range_set: usize) -> IpamResult<()> {
        let path = self.dir.join(format!("{LAST_IP_PREFIX}{range_set}"));
        let opts = WriteOptions {
            mode: FILE_MODE,
            durable: false,
        };
        files::write_atomic(&path, ip.to_string().as_bytes(), opts)
            .map_err(io(format!("writing {}", path.display())))
    }

    pub fn last_reserved_ip(&self, range_set: usize) -> Option<IpAddr> {
        let path = self.dir.join(format!("{LAST_IP_PREFIX}{range_set}"));
        let bytes = files::read_trusted(&path, MAX_RECORD).ok()??;
        String::from_utf8(bytes).ok()?.trim().parse().ok()
    }

    /// Every address file of the network. One that is not trusted (a symlink, another uid's,
    /// writable by others) is nobody's allocation: it is skipped (its address stays taken).
    pub fn allocations(&self) -> IpamResult<Vec<Allocation>> {
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&self.dir).map_err(io(format!("reading {}", self.dir.display())))?;
        for entry in entries.flatten() {
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<IpAddr>().ok())
            else {
                continue;
            };
            // A file that vanished or cannot be read or trusted is not ours to judge.
            let Ok(Some(bytes)) = files::read_trusted(&entry.path(), MAX_RECORD) else {
                continue;
            };
            if let Some(a) = Allocation::parse(ip, &String::from_utf8_lossy(&bytes)) {
                out.push(a);
            }
        }
        out.sort_by_key(|a| a.ip);
        Ok(out)
    }

    /// Addresses held by (id, ifname), old-format files included.
    pub fn get_by_id(&self, id: &str, ifname: &str) -> IpamResult<Vec<IpAddr>> {
        Ok(self
            .allocations()?
            .into_iter()
            .filter(|a| a.matches(id, ifname))
            .map(|a| a.ip)
            .collect())
    }

    pub fn release(&self, ip: IpAddr) -> IpamResult<()> {
        let path = self.ip_path(ip);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IpamError::io(format!("removing {}", path.display()), e)),
        }
    }

    /// Releases everything (id, ifname) holds; exact matches first, old-format files (ID only)
    /// when there is no exact match, as the reference does. Returns the released addresses.
    pub fn release_by_id(&self, id: &str, ifname: &str) -> IpamResult<Vec<IpAddr>> {
        let all = self.allocations()?;
        let exact: Vec<IpAddr> = all
            .iter()
            .filter(|a| a.container_id == id.trim() && a.ifname.as_deref() == Some(ifname))
            .map(|a| a.ip)
            .collect();
        let chosen = if exact.is_empty() {
            all.iter()
                .filter(|a| a.container_id == id.trim() && a.ifname.is_none())
                .map(|a| a.ip)
                .collect()
        } else {
            exact
        };
        self.release_all(&chosen)?;
        Ok(chosen)
    }

    /// Releases every address of container `id`, whatever the interface. Returns them.
    pub fn release_container(&self, id: &str) -> IpamResult<Vec<IpAddr>> {
        let chosen: Vec<IpAddr> = self
            .allocations()?
            .into_iter()
            .filter(|a| a.container_id == id.trim())
            .map(|a| a.ip)
            .collect();
        self.release_all(&chosen)?;
        Ok(chosen)
    }

    fn release_all(&self, ips: &[IpAddr]) -> IpamResult<()> {
        let errors: Vec<String> = ips
            .iter()
            .filter_map(|ip| self.release(*ip).err())
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(IpamError::io(
                "releasing addresses",
                std::io::Error::other(errors.join("; ")),
            ))
        }
    }
}

/// Creates an address file in one step as readers see it, failing over an existing one
/// (`files::create_exclusive`). Returns false when `path` exists.
fn create_exclusive(path: &Path, content: &[u8]) -> std::io::Result<bool> {
    files::create_exclusive(
        path,
        content,
        files::WriteOptions {
            mode: FILE_MODE,
            durable: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn layout_matches_reference() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        assert!(s.reserve("ctr", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert!(!s.reserve("other", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert!(s.reserve("ctr", "eth0", ip("2001:db8::2"), 1).unwrap());
        let dir = d.path().join("net");
        assert_eq!(std::fs::read(dir.join("10.0.0.2")).unwrap(), b"ctr\r\neth0");
        assert_eq!(
            std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
            "10.0.0.2"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(),
            "2001:db8::2"
        );
        assert!(dir.join("lock").exists());
        assert_eq!(s.last_reserved_ip(1), Some(ip("2001:db8::2")));
        assert_eq!(s.get_by_id("ctr", "eth0").unwrap().len(), 2);
        assert!(s.get_by_id("ctr", "eth1").unwrap().is_empty());
        assert_eq!(s.release_by_id("ctr", "eth0").unwrap().len(), 2);
        assert!(s.allocations().unwrap().is_empty());
        assert!(s.release_by_id("ctr", "eth0").unwrap().is_empty());
    }

    #[test]
    fn old_format_files_match_by_id() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        std::fs::write(d.path().join("net/10.0.0.9"), "old-ctr\n").unwrap();
        assert_eq!(
            s.get_by_id("old-ctr", "anything").unwrap(),
            vec![ip("10.0.0.9")]
        );
        assert_eq!(
            s.release_by_id("old-ctr", "eth0").unwrap(),
            vec![ip("10.0.0.9")]
        );
    }

    #[test]
    fn open_existing_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert!(Store::open_existing(d.path(), "net").unwrap().is_none());
        assert!(!d.path().join("net").exists());
    }

    #[test]
    fn a_lock_others_could_open_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join("net/lock");
        std::fs::create_dir(d.path().join("net")).unwrap();
        std::fs::write(&lock, b"").unwrap();
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(d.path(), "net").unwrap());
        let mode = std::fs::metadata(&lock).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn lock_excludes_a_second_holder() {
        let d = tempfile::tempdir().unwrap();
        let first = Store::open(d.path(), "net").unwrap();
        let path = d.path().join("net/lock");
        let f = File::open(&path).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
        drop(first);
        let f = File::open(&path).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
