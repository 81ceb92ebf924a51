//! Structured logs to a file and/or stderr, never stdout (stdout carries only the CNI answer).
//! The level and destinations come from the config as Multus reads them (`logLevel`, `logFile`,
//! `logToStderr`, default true, and `logOptions` for the file's rotation), or from MULTINET_LOG
//! before a config is read.

mod rotate;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::call::config::MultinetConf;
pub use rotate::Rotation;

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Maps Multus's level names onto tracing's. "debug" is multinet's own steps (the libraries it
/// uses stay at warn, so a debug log reads as the call's story); "verbose" and "trace" add the
/// libraries' debug lines (HTTP requests, TLS, connection pooling).
fn level_filter(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        // Targets match by prefix: "multinet" covers multinet_cni, multinet_ipam and the rest.
        "debug" => "warn,multinet=debug",
        "verbose" | "trace" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "panic" => "error",
        _ => "warn",
    }
}

/// Where log lines go: the (rotating) log file and/or stderr, each line whole to each.
#[derive(Clone)]
struct Sink {
    file: Option<Arc<Mutex<rotate::RotatingFile>>>,
    stderr: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stderr {
            let _ = std::io::stderr().write_all(buf);
        }
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install(level: &str, file: Option<(&Path, Rotation)>, stderr: bool) {
    INSTALLED.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(level_filter(level));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false);
        let file =
            file.and_then(
                |(path, rotation)| match rotate::RotatingFile::open(path, rotation) {
                    Ok(f) => Some(Arc::new(Mutex::new(f))),
                    Err(e) => {
                        eprintln!("multinet: log file {}: {e}", path.display());
                        None
                    }
                },
            );
        // A log file that cannot be opened leaves stderr, never no log at all.
        let stderr = stderr || file.is_none();
        let sink = Sink { file, stderr };
        let _ = builder.with_writer(move || sink.clone()).try_init();
    });
}

/// Before the config is known: MULTINET_LOG, if set, to stderr.
pub fn init_from_env() {
    if let Ok(level) = std::env::var("MULTINET_LOG") {
        install(&level, None, true);
    }
}

/// A thin-mode call's logs, as Multus sets them up from the same keys: to `logFile` (rotated by
/// `logOptions`) and, unless `logToStderr` is false, to stderr too.
pub fn init_from_conf(conf: &MultinetConf) {
    let level = conf.log_level.as_deref().unwrap_or("error");
    let rotation = Rotation::from_options(conf.log_options.as_ref());
    install(
        level,
        conf.log_file.as_deref().map(|f| (f, rotation)),
        conf.log_to_stderr.unwrap_or(true),
    );
}

/// A long-running process's logs (the node daemon): `level` to `file`, or stderr. Calls made
/// later in the same process keep these logs; their config's `logFile` and `logLevel` then apply
/// only to thin-mode calls.
pub fn init(level: &str, file: Option<&std::path::Path>) {
    install(
        level,
        file.map(|f| (f, Rotation::from_options(None))),
        file.is_none(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines one event of each kind leaves under `level`.
    fn logged(level: &str) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level_filter(level)))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "multinet::meta", "own step");
            tracing::debug!(target: "multinet_ipam::store", "delegate step");
            tracing::debug!(target: "hyper_util::client", "library detail");
            tracing::warn!(target: "hyper_util::client", "library warning");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn debug_is_multinets_own_story_and_verbose_adds_the_libraries() {
        let debug = logged("debug");
        assert!(
            debug.contains("own step") && debug.contains("delegate step"),
            "{debug}"
        );
        assert!(debug.contains("library warning"), "{debug}");
        assert!(!debug.contains("library detail"), "{debug}");
        let verbose = logged("verbose");
        assert!(
            verbose.contains("library detail") && verbose.contains("own step"),
            "{verbose}"
        );
        let error = logged("error");
        assert!(error.is_empty(), "{error}");
    }
}
