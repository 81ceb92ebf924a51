//! The daemon's unix sockets (its own, and the DRA driver's): reachable by root only from
//! their first moment, stale ones of dead daemons replaced, removed only while still ours.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use multinet_cni::files::{PRIVATE_DIR, PRIVATE_FILE, ensure_dir, temp_path};
use tokio::net::UnixListener;

/// A listening socket and the path it was moved to (the listener's own address is the private
/// path it was bound at).
pub struct Bound {
    pub(crate) listener: UnixListener,
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

/// Binds the socket so that no other uid can connect to it at any moment: its directory is ours
/// and not writable by others (made 0700 when missing), the socket is bound inside a fresh 0700
/// directory of its own, made 0600 there and only then renamed into place. The umask does not
/// matter, and there is no bind-then-chmod window. A stale socket left by a daemon that died is
/// replaced; a socket another daemon answers on, or any other file at that path, is an error.
pub fn bind(socket: &Path) -> io::Result<Bound> {
    let name = socket.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the socket path names no file")
    })?;
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_dir(dir, PRIVATE_DIR)?;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another multinet daemon listens there",
                ));
            }
            // Replaced by the rename below.
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not replacing it",
            ));
        }
        Err(_) => {}
    }
    remove_stale_bind_dirs(dir, &name.to_string_lossy());
    let private = temp_path(socket);
    // Not recursive: a directory that already exists (someone else's) is an error, not reused.
    std::fs::DirBuilder::new()
        .mode(PRIVATE_DIR)
        .create(&private)?;
    let inner = private.join("s");
    let bound = UnixListener::bind(&inner).and_then(|listener| {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(PRIVATE_FILE))?;
        std::fs::rename(&inner, socket)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&private);
    let listener = bound
        .map_err(|e| io::Error::new(e.kind(), format!("binding via {}: {e}", private.display())))?;
    Ok(Bound {
        listener,
        path: socket.to_path_buf(),
        identity: file_identity(socket),
    })
}

/// Removes the private bind directories (`.<name>.tmp-<pid>-<n>`) of daemons that died while
/// binding `name` in `dir`.
fn remove_stale_bind_dirs(dir: &Path, name: &str) {
    let prefix = format!(".{name}{}", multinet_cni::files::TEMP_MARKER);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|tail| tail.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Which file a path is, to tell our socket from one a newer daemon bound at the same path.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl Bound {
    /// The listener, and the socket file to remove once it is closed.
    pub(crate) fn into_parts(self) -> (UnixListener, SocketFile) {
        let file = SocketFile {
            path: self.path,
            identity: self.identity,
        };
        (self.listener, file)
    }
}

/// A socket file [`bind`] made.
pub(crate) struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    /// Removes the file, unless it is no longer ours (a daemon started meanwhile replaced it).
    pub(crate) fn remove(self) {
        if self.identity.is_some() && file_identity(&self.path) == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Stops listening and removes the socket file, unless it is no longer ours (a daemon started
/// meanwhile replaced it). Calls made from now on run in the binary.
pub(crate) fn stop_listening(bound: Bound) {
    let (listener, file) = bound.into_parts();
    drop(listener);
    file.remove();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn stopping_removes_only_our_own_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/multinet.sock");
        let first = bind(&path).unwrap();
        assert_eq!(first.identity, file_identity(&path));
        stop_listening(first);
        assert!(!path.exists(), "our socket goes with us");

        // A daemon started while this one was stopping replaced the socket file (as `bind` does
        // with one nobody answers on): this one must leave the newer one's socket alone.
        let old = bind(&path).unwrap();
        let old_identity = old.identity;
        std::fs::remove_file(&path).unwrap();
        let newer = bind(&path).unwrap();
        assert_ne!(
            file_identity(&path),
            old_identity,
            "a stale socket is replaced"
        );
        stop_listening(old);
        assert!(path.exists(), "the newer daemon's socket was removed");
        std::os::unix::net::UnixStream::connect(&path).expect("the newer daemon still answers");
        drop(newer);
    }

    /// The socket is 0600 in a 0700 directory made for it, bound in a private directory that
    /// is gone afterwards; a directory others may write is refused, a stale socket replaced.
    #[tokio::test]
    async fn the_socket_is_private_from_its_first_moment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/multinet.sock");
        let bound = bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let run = std::fs::metadata(dir.path().join("run")).unwrap();
        assert_eq!(run.mode() & 0o777, 0o700);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("run"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["multinet.sock"], "the bind directory is removed");
        std::os::unix::net::UnixStream::connect(&path).expect("the renamed socket answers");
        drop(bound);

        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let Err(e) = bind(&shared.join("multinet.sock")) else {
            panic!("a world-writable directory must be refused");
        };
        assert!(e.to_string().contains("writable by other users"), "{e}");
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn bind_directories_of_dead_daemons_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multinet.sock");
        // No process has pid 0 in /proc; a live pid (ours) is left alone, as is another name's.
        let dead = dir.path().join(".multinet.sock.tmp-0-7");
        let live = dir
            .path()
            .join(format!(".multinet.sock.tmp-{}-99", std::process::id()));
        let other = dir.path().join(".other.sock.tmp-0-1");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(dead.join("s"), "").unwrap();
        let _bound = bind(&path).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }
}
