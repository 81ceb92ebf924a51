//! Opening network namespaces by path and running code inside one.
//!
//! Code never switches the namespace of a thread it does not own: [`run_in_netns`] runs the
//! closure on a fresh thread that enters the namespace and ends with the closure, so the
//! namespace cannot leak to other work, whatever the closure does (early return, panic).

use std::any::Any;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::statfs::{FsType, NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};

use crate::error::{Error, Missing, Result};

/// The calling thread's own network namespace (not the process leader's).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)` from linux/nsfs.h: asks an nsfs file for its type.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace. The open file keeps the namespace alive, so operations given a
/// `Netns` cannot race with its deletion.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

/// What a path turned out to be, from its filesystem and file type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathKind {
    Namespace,
    /// An empty regular file on another filesystem: a namespace mount point left after the
    /// namespace was unmounted.
    Gone,
    Other,
}

pub(crate) fn classify(fs: FsType, is_file: bool, len: u64) -> PathKind {
    if fs == NSFS_MAGIC || fs == PROC_SUPER_MAGIC {
        PathKind::Namespace
    } else if is_file && len == 0 {
        PathKind::Gone
    } else {
        PathKind::Other
    }
}

impl Netns {
    /// Opens the network namespace at `path` (e.g. CNI_NETNS or `/proc/<pid>/ns/net`).
    ///
    /// Like Go's `ns.GetNS` it checks the filesystem magic (nsfs or procfs); it also asks the
    /// file for its namespace type, so a mount or pid namespace or a plain /proc file is
    /// refused. A missing
    /// path gives [`Error::NotFound`] (`Missing::Netns`), an unmounted leftover file gives
    /// [`Error::NetnsGone`]: both are "nothing to clean" for DEL.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Err(Error::NotFound(Missing::Netns(path.to_owned())));
            }
            Err(e) => return Err(Error::io(format!("open netns {}", path.display()), e)),
        };
        let fs = fstatfs(&file)
            .map_err(|e| Error::io(format!("statfs {}", path.display()), e.into()))?
            .filesystem_type();
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        match classify(fs, meta.is_file(), meta.len()) {
            PathKind::Namespace => {}
            PathKind::Gone => {
                return Err(Error::NetnsGone {
                    path: path.to_owned(),
                });
            }
            PathKind::Other => {
                return Err(Error::NotANetns {
                    path: path.to_owned(),
                });
            }
        }
        if !is_net_namespace(&file, fs == NSFS_MAGIC) {
            return Err(Error::NotANetns {
                path: path.to_owned(),
            });
        }
        Ok(Netns {
            fd: file.into(),
            path: path.to_owned(),
        })
    }

    /// The calling thread's current network namespace.
    pub fn current() -> Result<Self> {
        Self::open(THREAD_NETNS)
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's inode number: two handles refer to the same namespace when their
    /// inodes (and devices) are equal.
    pub fn inode(&self) -> Result<u64> {
        Ok(self.id()?.1)
    }

    fn id(&self) -> Result<(u64, u64)> {
        let meta = nix::sys::stat::fstat(&self.fd)
            .map_err(|e| Error::io(format!("stat netns {}", self.path.display()), e.into()))?;
        Ok((meta.st_dev, meta.st_ino))
    }

    /// True when the calling thread is inside this namespace.
    pub fn is_current(&self) -> Result<bool> {
        let meta = std::fs::metadata(THREAD_NETNS)
            .map_err(|e| Error::io(format!("stat {THREAD_NETNS}"), e))?;
        Ok(self.id()? == (meta.dev(), meta.ino()))
    }

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::io(format!("dup netns {}", self.path.display()), e))?;
        Ok(Netns {
            fd,
            path: self.path.clone(),
        })
    }

    /// Runs `f` inside this namespace; see [`run_in_netns`].
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        run_in_netns(self, f)
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Asks a namespace file whether it is a network namespace. Kernels 3.19 to 4.10 have nsfs
/// without `NS_GET_NSTYPE` (ENOTTY): there the nsfs magic alone decides. A procfs file must
/// answer, so ordinary /proc files such as /proc/self/status are refused (Go accepts them).
fn is_net_namespace(file: &File, nsfs: bool) -> bool {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which `file` keeps open.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if ret < 0 {
        return nsfs && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOTTY);
    }
    ret == libc::CLONE_NEWNET
}

/// Runs `f` inside the namespace `ns` and returns its result.
///
/// `f` runs on a new OS thread that enters `ns` with setns(2) and ends when `f` returns, so
/// the caller's thread never changes namespace and no other work ever runs in `ns` by
/// accident. A panic in `f` comes back as [`Error::Panicked`]. The caller blocks until `f`
/// is done; `f` may borrow from the caller.
///
/// Sockets created inside `f` stay bound to `ns` after the thread ends, and files under
/// `/proc/sys/net` opened inside `f` refer to `ns`.
pub fn run_in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> Result<T> {
    let netns = ns.path.display().to_string();
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("multinet-netns".into())
            .spawn_scoped(scope, || -> Result<T> {
                nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io(format!("setns into {netns}"), e.into()))?;
                Ok(f())
            })
            .map_err(|e| Error::io("spawn a thread for the netns", e))?;
        worker.join().unwrap_or_else(|payload| {
            Err(Error::Panicked {
                netns: netns.clone(),
                message: panic_message(payload.as_ref()),
            })
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::statfs::TMPFS_MAGIC;

    #[test]
    fn classifies_paths_like_go_getns() {
        assert_eq!(classify(NSFS_MAGIC, true, 0), PathKind::Namespace);
        assert_eq!(classify(PROC_SUPER_MAGIC, false, 0), PathKind::Namespace);
        assert_eq!(classify(TMPFS_MAGIC, true, 0), PathKind::Gone);
        assert_eq!(classify(TMPFS_MAGIC, true, 12), PathKind::Other);
        assert_eq!(classify(TMPFS_MAGIC, false, 0), PathKind::Other);
    }

    #[test]
    fn panic_messages_are_kept() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42u8), "non-string panic payload");
    }

    #[test]
    fn missing_path_is_not_found() {
        let e = Netns::open("/nonexistent/netns/x").unwrap_err();
        assert!(matches!(e, Error::NotFound(Missing::Netns(_))), "{e}");
        assert!(e.is_not_found());
    }

    #[test]
    fn ordinary_paths_are_refused() {
        let dir = std::env::temp_dir();
        let e = Netns::open(&dir).unwrap_err();
        assert!(matches!(e, Error::NotANetns { .. }), "{e}");
    }
}
