//! The delegate's log: `logLevel` and `logFile` as the reference reads them, one line per
//! event, to the file or to stderr (never stdout, which carries the CNI result).
//!
//! `logFile` is written by a NAD author, so it is only ever opened beneath /var/log/
//! (config.rs refuses any other path): through openat2 with RESOLVE_BENEATH and
//! RESOLVE_NO_SYMLINKS from /var/log, so no symlink, in any component, leads out of it;
//! append-only, created 0600, never a FIFO or device.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{LogConf, LogLevel};

/// Where log lines go.
pub struct Logger {
    level: LogLevel,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish()
    }
}

impl Logger {
    /// Opens `conf.file` for appending (stderr when unset or when it cannot be opened), and
    /// reports a problem with the log keys there.
    pub fn new(conf: &LogConf) -> Logger {
        let mut open_error = None;
        let sink: Box<dyn Write + Send> = match &conf.file {
            Some(path) => match open_log_file(Path::new(LOG_DIR), path) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    open_error = Some(format!("cannot open logFile {}: {e}", path.display()));
                    Box::new(std::io::stderr())
                }
            },
            None => Box::new(std::io::stderr()),
        };
        let log = Logger {
            level: conf.level,
            sink: Mutex::new(sink),
        };
        if let Some(w) = open_error.as_ref().or(conf.warning.as_ref()) {
            log.warn(w);
        }
        log
    }

    /// A logger to stderr (library callers with no config).
    pub fn stderr(level: LogLevel) -> Logger {
        Logger {
            level,
            sink: Mutex::new(Box::new(std::io::stderr())),
        }
    }

    /// A logger that drops everything (for tools and tests).
    pub fn discard() -> Logger {
        Logger {
            level: LogLevel::Panic,
            sink: Mutex::new(Box::new(std::io::sink())),
        }
    }

    fn write(&self, level: LogLevel, tag: &str, msg: &dyn Display) {
        if level > self.level {
            return;
        }
        let line = format!("{} {tag} sriov: {msg}\n", utc_now());
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // A log that cannot be written must not fail the CNI call.
        let _ = sink.write_all(line.as_bytes());
    }

    pub fn error(&self, msg: impl Display) {
        self.write(LogLevel::Error, "error", &msg);
    }

    pub fn warn(&self, msg: impl Display) {
        self.write(LogLevel::Warning, "warning", &msg);
    }

    pub fn info(&self, msg: impl Display) {
        self.write(LogLevel::Info, "info", &msg);
    }

    pub fn debug(&self, msg: impl Display) {
        self.write(LogLevel::Debug, "debug", &msg);
    }
}

/// The only directory a log file is opened in (the NAD rule's).
pub const LOG_DIR: &str = multinet_cni::trust::LOG_DIR;
/// Mode of a log file the delegate creates.
pub const LOG_FILE_MODE: u32 = 0o600;

/// Opens `path`, which must lie beneath `root`, for appending: no component may be a symlink
/// and resolution may not leave `root`; created with mode 0600; a FIFO or device is refused.
pub fn open_log_file(root: &Path, path: &Path) -> io::Result<File> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    use nix::sys::stat::Mode;
    let beneath = path
        .strip_prefix(root)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("not a file under {}", root.display()),
            )
        })?;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    let how = OpenHow::new()
        .flags(
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                // A FIFO without a reader fails at once instead of blocking the call.
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY,
        )
        .mode(Mode::from_bits_truncate(LOG_FILE_MODE))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let file = File::from(openat2(&dir, beneath, how).map_err(io::Error::from)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// "2025-01-31T12:34:56.789Z" without a date crate.
fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    /// A unique name for a test's file in /var/log (removed by the test).
    fn var_log_name(tag: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Path::new(LOG_DIR).join(format!(
            "multinet-sriov-test-{tag}-{}-{n}",
            std::process::id()
        ))
    }

    #[test]
    fn writes_to_the_log_file_at_its_level_with_mode_0600() {
        multinet_testbed::require_root!();
        let file = var_log_name("level");
        // SAFETY: umask only changes this process's creation mask.
        let old = unsafe { libc::umask(0) };
        let log = Logger::new(&LogConf {
            level: LogLevel::Info,
            file: Some(file.clone()),
            warning: None,
        });
        unsafe { libc::umask(old) };
        log.info("moved VF");
        log.debug("hidden");
        let text = std::fs::read_to_string(&file).unwrap();
        let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&file).unwrap());
        std::fs::remove_file(&file).unwrap();
        assert!(text.contains("info sriov: moved VF"), "{text}");
        assert!(!text.contains("hidden"));
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn symlinks_never_lead_a_log_out_of_var_log() {
        multinet_testbed::require_root!();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target");
        std::fs::write(&target, b"").unwrap();
        // A symlink as the file, and as a directory on the way.
        let link = var_log_name("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dir_link = var_log_name("dirlink");
        std::os::unix::fs::symlink(outside.path(), &dir_link).unwrap();
        let through_dir = dir_link.join("target");
        let results: Vec<_> = [&link, &through_dir, &Path::new("/etc/x.log").to_path_buf()]
            .iter()
            .map(|p| open_log_file(Path::new(LOG_DIR), p))
            .collect();
        // The logger falls back to stderr and writes nothing outside.
        let log = Logger::new(&LogConf {
            level: LogLevel::Debug,
            file: Some(link.clone()),
            warning: None,
        });
        log.error("must not reach the target");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&dir_link).unwrap();
        for r in results {
            assert!(r.is_err());
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        multinet_testbed::require_root!();
        let fifo = var_log_name("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let r = open_log_file(Path::new(LOG_DIR), &fifo);
        std::fs::remove_file(&fifo).unwrap();
        assert!(r.is_err());
    }
}
