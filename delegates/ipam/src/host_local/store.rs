//! The on-disk store, byte-compatible with the reference host-local:
//! `<dataDir>/<net>/<ip>` holds "containerID\r\nifname" and is created with O_EXCL;
//! `<dataDir>/<net>/last_reserved_ip.<rangeSetIndex>` holds the last address handed out;
//! `<dataDir>/<net>/lock` is flock()ed while the store is used. A [`Store`] holds that lock for
//! its whole life, so one ADD is atomic against every other user of the directory, ours or the
//! reference's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{IpamError, IpamResult};

const LAST_IP_PREFIX: &str = "last_reserved_ip.";
const LINE_BREAK: &str = "\r\n";
const LOCK_FILE: &str = "lock";

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

    /// Creates the directory if needed and takes the lock (waiting for it).
    pub fn open(data_dir: &Path, network: &str) -> IpamResult<Store> {
        let dir = Store::network_dir(data_dir, network);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Store::lock(dir)
    }

    /// Takes the lock of an existing store; None when the directory does not exist (nothing was
    /// ever allocated there, so DEL, CHECK and GC have nothing to do and create nothing).
    pub fn open_existing(data_dir: &Path, network: &str) -> IpamResult<Option<Store>> {
        let dir = Store::network_dir(data_dir, network);
        if !dir.is_dir() {
            return Ok(None);
        }
        Store::lock(dir).map(Some)
    }

    fn lock(dir: PathBuf) -> IpamResult<Store> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io(format!("opening lock {}", path.display())))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            IpamError::io(
                format!("locking {}", path.display()),
                std::io::Error::from(errno),
            )
        })?;
        Ok(Store { dir, _lock: lock })
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
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(IpamError::io(format!("creating {}", path.display()), e)),
        };
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        if let Err(e) = file
            .write_all(content.as_bytes())
            .and_then(|()| file.sync_all())
        {
            let _ = std::fs::remove_file(&path);
            return Err(IpamError::io(format!("writing {}", path.display()), e));
        }
        self.write_last_reserved(ip, range_set)?;
        Ok(true)
    }

    fn write_last_reserved(&self, ip: IpAddr, range_set: usize) -> IpamResult<()> {
        let path = self.dir.join(format!("{LAST_IP_PREFIX}{range_set}"));
        let tmp = self.dir.join(format!(".{LAST_IP_PREFIX}{range_set}.tmp"));
        std::fs::write(&tmp, ip.to_string())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io(format!("writing {}", path.display())))
    }

    pub fn last_reserved_ip(&self, range_set: usize) -> Option<IpAddr> {
        std::fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{range_set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every address file of the network.
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
            // A file that vanished or cannot be read is not ours to judge.
            let Ok(content) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let content = content.trim();
            let (container_id, ifname) = match content.split_once(LINE_BREAK) {
                Some((id, ifname)) => (id.trim().to_string(), Some(ifname.trim().to_string())),
                None => (content.to_string(), None),
            };
            out.push(Allocation {
                ip,
                container_id,
                ifname,
            });
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
        let mut errors = Vec::new();
        for ip in &chosen {
            if let Err(e) = self.release(*ip) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(chosen)
        } else {
            Err(IpamError::io(
                "releasing addresses",
                std::io::Error::other(errors.join("; ")),
            ))
        }
    }
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
