//! The delegate's log: `logLevel` and `logFile` as the reference reads them, one line per
//! event, to the file or to stderr (never stdout, which carries the CNI result).

use std::fmt::Display;
use std::fs::OpenOptions;
use std::io::Write;
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
            Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
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

    #[test]
    fn writes_to_the_log_file_at_its_level() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sriov.log");
        let log = Logger::new(&LogConf {
            level: LogLevel::Info,
            file: Some(file.clone()),
            warning: None,
        });
        log.info("moved VF");
        log.debug("hidden");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("info sriov: moved VF"), "{text}");
        assert!(!text.contains("hidden"));
    }
}
