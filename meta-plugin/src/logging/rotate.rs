//! A log file that rotates as lumberjack (Multus's logger) rotates it: past `maxSize` megabytes
//! the file is renamed `<name>-<UTC time>.<ext>`, a new one is started, and rotated files are
//! gzipped (`compress`), and removed past `maxBackups` or `maxAge` days. Several CNI processes
//! may append to the same file at once: the size is read from the path before a rotation, so a
//! process whose file was already rotated by another one only reopens the path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::call::config::LogOptions;

/// lumberjack's default when `maxSize` is absent or 0.
const DEFAULT_MAX_MEGABYTES: u64 = 100;

/// When to rotate and what to keep, from `logOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_age: Option<Duration>,
    pub max_backups: Option<usize>,
    pub compress: bool,
}

impl Rotation {
    pub fn from_options(options: Option<&LogOptions>) -> Rotation {
        let options = options.cloned().unwrap_or_default();
        let megabytes = options
            .max_size
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_MEGABYTES);
        Rotation {
            max_bytes: megabytes.saturating_mul(1 << 20),
            max_age: options
                .max_age
                .filter(|d| *d > 0)
                .map(|d| Duration::from_secs(d.saturating_mul(86_400))),
            max_backups: options
                .max_backups
                .filter(|n| *n > 0)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            compress: options.compress,
        }
    }
}

pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    /// Bytes in the file as this process last knew it.
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingFile {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            rotation,
            file,
            size,
        })
    }

    /// `<stem>-<time>.<ext>` beside the log, as lumberjack names a backup.
    fn backup_name(&self, now: k8s_openapi::jiff::Timestamp) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = self
            .path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let time = format!(
            "{}.{:03}",
            now.strftime("%Y-%m-%dT%H-%M-%S"),
            now.subsec_millisecond()
        );
        self.path.with_file_name(format!("{stem}-{time}{ext}"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        // Another process may have rotated the path already (the path is then another file than
        // ours): the new file is reopened, not rotated again.
        let ours = self.file.metadata()?;
        let same_file =
            fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == (ours.dev(), ours.ino()));
        if same_file {
            let backup = self.backup_name(k8s_openapi::jiff::Timestamp::now());
            if !backup.exists() {
                fs::rename(&self.path, &backup)?;
            }
        }
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        self.clean_backups();
        Ok(())
    }

    /// Rotated files of this log, newest first.
    fn backups(&self) -> Vec<(PathBuf, SystemTime)> {
        let (Some(dir), Some(stem)) = (self.path.parent(), self.path.file_stem()) else {
            return Vec::new();
        };
        let prefix = format!("{}-", stem.to_string_lossy());
        let mut found: Vec<(PathBuf, SystemTime)> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found
    }

    fn clean_backups(&self) {
        let now = SystemTime::now();
        for (i, (path, modified)) in self.backups().into_iter().enumerate() {
            let too_many = self.rotation.max_backups.is_some_and(|n| i >= n);
            let too_old = self
                .rotation
                .max_age
                .is_some_and(|age| now.duration_since(modified).unwrap_or_default() > age);
            if too_many || too_old {
                let _ = fs::remove_file(&path);
            } else if self.rotation.compress
                && path.extension().is_none_or(|e| e != "gz")
                && let Err(e) = gzip(&path)
            {
                // The log is where this would go; stderr is all that is left.
                eprintln!("multinet: compressing {}: {e}", path.display());
            }
        }
    }
}

/// Replaces `path` by `path.gz`.
fn gzip(path: &Path) -> io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    let target = PathBuf::from(name);
    let mut input = File::open(path)?;
    let output = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&target)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    fs::remove_file(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn options_follow_lumberjack_defaults() {
        let r = Rotation::from_options(None);
        assert_eq!(r.max_bytes, 100 << 20);
        assert_eq!((r.max_age, r.max_backups, r.compress), (None, None, false));
        let r = Rotation::from_options(Some(&LogOptions {
            max_size: Some(1),
            max_age: Some(2),
            max_backups: Some(3),
            compress: true,
        }));
        assert_eq!(r.max_bytes, 1 << 20);
        assert_eq!(r.max_age, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(r.max_backups, Some(3));
    }

    #[test]
    fn a_full_file_is_rotated_compressed_and_old_backups_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("multinet.log");
        let rotation = Rotation {
            max_bytes: 100,
            max_age: None,
            max_backups: Some(2),
            compress: true,
        };
        let mut f = RotatingFile::open(&log, rotation).unwrap();
        for i in 0..5 {
            f.write_all(format!("{i}").repeat(60).as_bytes()).unwrap();
            // Backups are named to the millisecond.
            std::thread::sleep(Duration::from_millis(5));
        }
        let names = names(dir.path());
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names.last().unwrap(), "multinet.log");
        for backup in &names[..2] {
            assert!(
                backup.starts_with("multinet-") && backup.ends_with(".log.gz"),
                "{backup}"
            );
        }
        // The newest backup holds the line before the current one, gzipped.
        let mut text = String::new();
        io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(File::open(dir.path().join(&names[1])).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "3".repeat(60));
        assert_eq!(fs::read_to_string(&log).unwrap(), "4".repeat(60));
    }

    #[test]
    fn a_file_another_process_rotated_is_reopened_not_rotated_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("m.log");
        let rotation = Rotation {
            max_bytes: 100,
            max_age: None,
            max_backups: None,
            compress: false,
        };
        let mut a = RotatingFile::open(&log, rotation.clone()).unwrap();
        let mut b = RotatingFile::open(&log, rotation).unwrap();
        a.write_all(&[b'a'; 80]).unwrap();
        b.size = 80;
        a.write_all(&[b'a'; 80]).unwrap(); // rotates
        b.write_all(&[b'b'; 30]).unwrap(); // its view is full, the path's is not
        assert_eq!(names(dir.path()).len(), 2, "{:?}", names(dir.path()));
        assert_eq!(fs::read(&log).unwrap().len(), 80 + 30);
    }
}
