//! Node files that every multinet binary writes (attachment records, host-local reservations,
//! VF allocations, device-info files) and the rules they share, whatever the process umask:
//! - new files and directories get an explicit mode at creation (no create-then-chmod window);
//! - a write is atomic (unique temp file, rename) and, when asked, durable (fsync of file and dir);
//! - a file or directory that another uid could have written (wrong owner, group- or
//!   world-writable) is refused, never trusted: see [`check_trusted`];
//! - names built from a container ID stay within NAME_MAX: see [`name_for`].

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of multinet's private files (records, allocations, locks).
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of multinet's private directories.
pub const PRIVATE_DIR: u32 = 0o700;
/// Longest file name the kernel takes (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Prefix of every temp file multinet writes: `.<name>.tmp-<pid>-<n>`. GC and DEL recognise them.
pub const TEMP_MARKER: &str = ".tmp-";

/// Why a node file is not trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Untrusted {
    #[error("{path} is owned by uid {owner}, not by uid {expected}")]
    Owner {
        path: String,
        owner: u32,
        expected: u32,
    },
    #[error("{path} is writable by other users (mode {mode:o})")]
    Writable { path: String, mode: u32 },
    #[error("{path} is not a regular file")]
    NotRegular { path: String },
}

impl From<Untrusted> for io::Error {
    fn from(e: Untrusted) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
    }
}

/// The uid files must belong to: the effective uid of this process.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a file or directory that a uid other than ours owns, or that group or others may
/// write: its content could have been put there by someone who is not the node admin.
pub fn check_trusted(path: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    let shown = path.display().to_string();
    if meta.uid() != own_uid() {
        return Err(Untrusted::Owner {
            path: shown,
            owner: meta.uid(),
            expected: own_uid(),
        });
    }
    // A sticky, world-writable directory such as /tmp is still safe to keep our own files in,
    // but multinet never uses one as its own directory: refuse it too.
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable { path: shown, mode });
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with `mode`, or checks that an existing one is ours and
/// not writable by others. Parents made here get the same mode.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(check_trusted(dir, &meta)?),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The mode is given at mkdir: the umask can only take bits away from it.
            match DirBuilder::new().recursive(true).mode(mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let meta = fs::symlink_metadata(dir)?;
            check_trusted(dir, &meta)?;
            if meta.mode() & 0o777 != mode {
                fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temp file a write of `path` goes through: unique per process and per write, so two writers
/// (threads of the daemon, or processes) never share one.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{TEMP_MARKER}{}-{n}", std::process::id());
    // Keep the temp name within NAME_MAX even when the final name is near it.
    let room = NAME_MAX.saturating_sub(suffix.len() + 1);
    let stem: String = if name.len() > room {
        name.char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= room)
            .map(|(_, c)| c)
            .collect()
    } else {
        name
    };
    path.with_file_name(format!(".{stem}{suffix}"))
}

/// True for a temp file name multinet writes (see [`temp_path`]).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARKER)
}

/// How [`write_atomic`] writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// The file's mode, set at creation.
    pub mode: u32,
    /// fsync the file and its directory: the write survives a power cut.
    pub durable: bool,
}

impl WriteOptions {
    pub const PRIVATE_DURABLE: WriteOptions = WriteOptions {
        mode: PRIVATE_FILE,
        durable: true,
    };
    pub const PRIVATE_QUICK: WriteOptions = WriteOptions {
        mode: PRIVATE_FILE,
        durable: false,
    };
}

/// Writes `bytes` to `path` atomically: a new temp file (O_EXCL, mode set at creation), then a
/// rename over `path`. A crash leaves the old file or the new one, and at worst a temp file that
/// [`remove_stale_temps`] recognises. The temp file is removed when the write fails.
pub fn write_atomic(path: &Path, bytes: &[u8], opts: WriteOptions) -> io::Result<()> {
    let tmp = temp_path(path);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            // A temp name someone planted as a symlink is never followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask may have narrowed the mode given at creation.
        f.set_permissions(fs::Permissions::from_mode(opts.mode))?;
        f.write_all(bytes)?;
        if opts.durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if opts.durable
            && let Some(dir) = path.parent()
        {
            sync_dir(dir)?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Flushes a directory's entries (a rename, link or removal in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path` with `bytes` in one step as readers see it, only if it does not exist yet: the
/// bytes go to a temp file (mode set at creation, synced), which is then hard-linked to `path`.
/// The link fails when `path` exists (the exclusivity of O_EXCL), so a reader never sees an
/// empty or partial file and a second writer never replaces the first. Returns false when `path`
/// exists; the temp name is removed in every case. `durable` also syncs the directory.
pub fn create_exclusive(path: &Path, bytes: &[u8], opts: WriteOptions) -> io::Result<bool> {
    let tmp = temp_path(path);
    let create = || -> io::Result<bool> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        if opts.durable
            && let Some(dir) = path.parent()
        {
            sync_dir(dir)?;
        }
        Ok(true)
    };
    let created = create();
    let _ = fs::remove_file(&tmp);
    created
}

/// Reads a file multinet wrote, refusing one that is not a regular file we own and alone may
/// write, or that is larger than `max_len`. `Ok(None)` when it does not exist.
pub fn read_trusted(path: &Path, max_len: u64) -> io::Result<Option<Vec<u8>>> {
    let f = match OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted under the name would otherwise block the open until
        // someone writes to it; it is refused below as not a regular file.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Untrusted::NotRegular {
            path: path.display().to_string(),
        }
        .into());
    }
    check_trusted(path, &meta)?;
    if meta.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, more than the {max_len} allowed",
                path.display(),
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_len + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Removes multinet's temp files in `dir` left by a writer that died mid-write; a temp file of a
/// live process younger than `min_age` is left alone (its writer may still rename it). Returns
/// how many went.
pub fn remove_stale_temps(dir: &Path, min_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(is_temp_name))
        .filter(|e| {
            let writer_alive = e
                .file_name()
                .to_str()
                .and_then(temp_writer_pid)
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min_age);
            !writer_alive || old
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Removes the temp files writers of `path` left behind (see [`temp_path`]), live writer or
/// not: for a caller that holds whatever serializes the writers of `path` (the container's lock
/// for an attachment's files), so none is mid-write. Returns how many went.
pub fn remove_temps_of(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let Some(temp) = e.file_name().to_str().map(str::to_owned) else {
                return false;
            };
            let Some((stem, _)) = temp
                .strip_prefix('.')
                .and_then(|t| t.rsplit_once(TEMP_MARKER))
            else {
                return false;
            };
            // A stem shorter than the name only when temp_path cut it to fit NAME_MAX.
            stem == name || (temp.len() + 1 >= NAME_MAX && name.starts_with(stem))
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// The pid in a temp name `.<name>.tmp-<pid>-<n>`.
fn temp_writer_pid(name: &str) -> Option<u32> {
    let (_, tail) = name.rsplit_once(TEMP_MARKER)?;
    tail.split('-').next()?.parse().ok()
}

/// A file name made of `parts` joined as given, or, when that would pass NAME_MAX less `reserve`
/// bytes (room for a suffix the caller adds), the start of it and a hash of the whole: the same
/// parts always give the same name, and different parts give different names.
pub fn name_for(joined: &str, reserve: usize) -> String {
    let limit = NAME_MAX.saturating_sub(reserve);
    if joined.len() <= limit {
        return joined.to_string();
    }
    let hash = format!("{:016x}{:016x}", fnv1a(joined, 0), fnv1a(joined, 1));
    let keep = limit.saturating_sub(hash.len() + 1);
    let head: String = joined
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= keep)
        .map(|(_, c)| c)
        .collect();
    format!("{head}-{hash}")
}

/// An exclusive lock held on a file of its own, which the holder removes when it lets go.
///
/// The lock is a flock on the open file, so it lasts as long as any process holds that open
/// file: a plugin given the descriptor (see `exec::ExecRequest::keep_fd`) keeps the lock while
/// it runs, even after the process that took it was killed. The next caller therefore waits
/// until every plugin of a killed call is gone instead of racing with it.
#[derive(Debug)]
pub struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock at `path` (created 0600) if nobody holds it; `Ok(None)` while somebody
    /// does. A file removed by its previous holder between our open and our flock is not the
    /// lock any more: then the current file is tried again.
    pub fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(PRIVATE_FILE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)?;
            let meta = file.metadata()?;
            check_trusted(path, &meta)?;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    return Ok(None);
                }
                return Err(err);
            }
            match fs::symlink_metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                    return Ok(Some(LockFile {
                        file,
                        path: path.to_path_buf(),
                    }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The descriptor that holds the lock, for a child process to inherit.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for LockFile {
    /// Removed while still held, so a waiter that opened it retries on a fresh file.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// 64-bit FNV-1a with a seed byte: two seeds give a 128-bit name hash. Names come from the
/// runtime (container IDs) and are checked against the record they lead to, so the hash needs to
/// spread, not to resist an attacker.
fn fnv1a(s: &str, seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(seed);
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_get_their_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.json");
        // SAFETY: umask only changes this process's creation mask; the test restores it.
        let old = unsafe { libc::umask(0) };
        write_atomic(&path, b"{}", WriteOptions::PRIVATE_QUICK).unwrap();
        ensure_dir(&dir.path().join("a/b"), PRIVATE_DIR).unwrap();
        unsafe { libc::umask(old) };
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(dir.path().join("a/b")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(read_trusted(&path, 10).unwrap().unwrap(), b"{}");
        // No temp file is left.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn loose_files_and_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.json");
        fs::write(&path, b"{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = read_trusted(&path, 10).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
        let loose = dir.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_dir(&loose, PRIVATE_DIR).is_err());
        // A symlink is never followed.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(read_trusted(&link, 1 << 20).is_err());
        assert!(
            read_trusted(&dir.path().join("none"), 10)
                .unwrap()
                .is_none()
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_trusted(&path, 1).is_err(), "too large");
        // A FIFO is refused at once, not waited on.
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_trusted(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn long_names_are_hashed_within_name_max() {
        let short = "abc";
        assert_eq!(name_for(short, 5), "abc");
        let long = "x".repeat(1000);
        let a = name_for(&long, 5);
        assert!(a.len() <= NAME_MAX - 5, "{}", a.len());
        assert_eq!(a, name_for(&long, 5), "stable");
        let mut other = long.clone();
        other.push('y');
        assert_ne!(a, name_for(&other, 5));
        let tmp = temp_path(&Path::new("/d").join(&a));
        assert!(tmp.file_name().unwrap().len() <= NAME_MAX);
        assert!(is_temp_name(tmp.file_name().unwrap().to_str().unwrap()));
    }

    #[test]
    fn stale_temps_of_dead_writers_go() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".rec.json.tmp-999999999-0");
        fs::write(&dead, b"x").unwrap();
        let live = temp_path(&dir.path().join("rec.json"));
        fs::write(&live, b"x").unwrap();
        fs::write(dir.path().join("rec.json"), b"x").unwrap();
        assert_eq!(
            remove_stale_temps(dir.path(), std::time::Duration::from_secs(60)),
            1
        );
        assert!(!dead.exists() && live.exists());
    }

    #[test]
    fn a_lock_is_exclusive_and_gone_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1.lock");
        let held = LockFile::try_acquire(&path).unwrap().expect("free");
        assert!(LockFile::try_acquire(&path).unwrap().is_none(), "held");
        // A child that inherited the descriptor keeps the lock after the holder let go of its
        // own copy (here: a dup of the descriptor stands for the child's).
        // SAFETY: dup of a descriptor we own; the copy is closed below.
        let child_copy = unsafe { libc::dup(held.fd()) };
        assert!(child_copy >= 0);
        let file = std::mem::ManuallyDrop::new(held);
        // SAFETY: closes the holder's own descriptor without running Drop (no removal), as a
        // killed process would.
        unsafe { libc::close(file.fd()) };
        assert!(
            LockFile::try_acquire(&path).unwrap().is_none(),
            "the copy holds it"
        );
        unsafe { libc::close(child_copy) };
        let again = LockFile::try_acquire(&path)
            .unwrap()
            .expect("free after the copy closed");
        drop(again);
        assert!(!path.exists(), "removed on release");
        // A lock file another user could have written is refused.
        fs::write(&path, b"").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(LockFile::try_acquire(&path).is_err());
    }

    #[test]
    fn the_temps_of_one_file_go_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vfnet-c1_net3");
        // Temps of this file by a live writer (this process) and a dead one; a temp of a file
        // whose name extends this one's; the file itself; another file.
        let mine = temp_path(&file);
        let dead = dir.path().join(".vfnet-c1_net3.tmp-999999-4");
        let other = temp_path(&dir.path().join("vfnet-c1_net31"));
        for p in [&mine, &dead, &other, &file, &dir.path().join("keep")] {
            fs::write(p, b"{").unwrap();
        }
        assert_eq!(remove_temps_of(&file), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let other_name = other.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(left, [other_name.as_str(), "keep", "vfnet-c1_net3"]);
        // A name long enough that temp_path cut it: its temps are still found.
        let long = dir.path().join("n".repeat(250));
        let cut = temp_path(&long);
        fs::write(&cut, b"{").unwrap();
        assert_eq!(remove_temps_of(&long), 1);
        assert!(!cut.exists());
    }
}
