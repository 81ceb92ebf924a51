//! `multinet daemon`: the node daemon of thick mode. It listens on a unix socket (0600, root
//! only) and runs each call it is handed exactly as the binary would run it, on a thread of its
//! own, while API clients and their connections stay open between calls.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use multinet_cni::{CniError, error_bytes, error_version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use super::wire;
use crate::meta::MetaPlugin;

/// Where the daemon listens unless told otherwise; `daemonSocket` in the config names the same.
pub const DEFAULT_SOCKET: &str = "/run/multinet/multinet.sock";
/// How long SIGTERM waits for calls in flight before the daemon exits anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a caller has to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: multinet daemon [--socket PATH] [--log-level LEVEL] [--log-file FILE]
       multinet daemon --probe [--socket PATH]

Runs the CNI calls of every multinet config that names this socket as daemonSocket.
  --socket PATH      unix socket to listen on (default /run/multinet/multinet.sock)
  --log-level LEVEL  error, warn, info (default), debug or verbose
  --log-file FILE    log here instead of stderr
  --probe            exit 0 if the daemon at --socket answers a VERSION call, else 1
                     (a liveness probe)";

#[derive(Debug, PartialEq, Eq)]
pub struct DaemonArgs {
    pub socket: PathBuf,
    pub log_level: String,
    pub log_file: Option<PathBuf>,
    /// Ask the daemon at `socket` instead of being one.
    pub probe: bool,
}

/// Parses the flags after `multinet daemon`; `Err` carries the message to print.
pub fn parse_args(args: &[String]) -> Result<DaemonArgs, String> {
    let mut parsed = DaemonArgs {
        socket: DEFAULT_SOCKET.into(),
        log_level: "info".into(),
        log_file: None,
        probe: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // `--flag value` and `--flag=value` both work, as for `multinet install`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag {
            "--socket" => parsed.socket = value()?.into(),
            "--log-level" => parsed.log_level = value()?,
            "--log-file" => parsed.log_file = Some(value()?.into()),
            "--probe" if inline.is_none() => parsed.probe = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other:?}\n\n{USAGE}")),
        }
    }
    Ok(parsed)
}

/// `multinet daemon ...`: returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return if args.iter().any(|a| a == "--help" || a == "-h") {
                0
            } else {
                2
            };
        }
    };
    if args.probe {
        return probe(&args.socket);
    }
    crate::logging::init(&args.log_level, args.log_file.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("multinet daemon: starting the runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(async {
        let listener = bind(&args.socket)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        serve(listener, stop).await;
        std::io::Result::Ok(())
    });
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("multinet daemon: {}: {e}", args.socket.display());
            1
        }
    }
}

/// `--probe`: a VERSION call through the socket, as the binary would hand it over. Exit 0 when the
/// daemon answers it, 1 (with the reason on stderr) when it does not.
pub fn probe(socket: &Path) -> i32 {
    let vars = [("CNI_COMMAND".to_string(), "VERSION".to_string())];
    match super::shim::hand_over(socket, &vars, b"{}") {
        super::shim::Handover::Answered { code: 0, stdout }
            if serde_json::from_slice::<serde_json::Value>(&stdout)
                .is_ok_and(|v| v.get("supportedVersions").is_some()) =>
        {
            0
        }
        super::shim::Handover::Answered { code, stdout } => {
            eprintln!(
                "multinet daemon at {}: answered {code}: {}",
                socket.display(),
                String::from_utf8_lossy(&stdout).trim()
            );
            1
        }
        super::shim::Handover::NoDaemon(e) => {
            eprintln!("multinet daemon at {}: {e}", socket.display());
            1
        }
    }
}

/// Binds the socket, root-only. A stale socket left by a daemon that died is replaced; a socket
/// another daemon answers on, or any other file at that path, is an error.
pub fn bind(socket: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another multinet daemon listens there",
                ));
            }
            std::fs::remove_file(socket)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not replacing it",
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Which file a path is, to tell our socket from one a newer daemon bound at the same path.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Stops listening and removes the socket file, unless it is no longer ours (a daemon started
/// meanwhile replaced it). Calls made from now on run in the binary.
fn stop_listening(listener: UnixListener, ours: Option<(u64, u64)>) {
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    drop(listener);
    if let Some(path) = path
        && ours.is_some()
        && file_identity(&path) == ours
    {
        let _ = std::fs::remove_file(&path);
    }
}

/// Serves calls until `stop` completes; then removes its socket (calls from then on run in the
/// binary) and waits (up to [`DRAIN_TIMEOUT`]) for the calls in flight: a call cut off halfway
/// would leave the runtime without an answer.
pub async fn serve(listener: UnixListener, stop: impl std::future::Future<Output = ()>) {
    crate::source::kube::keep_clients_per_thread();
    let ours = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().and_then(file_identity));
    let threads = Arc::new(CallThreads::new());
    tracing::info!("multinet daemon listening");
    let in_flight = Arc::new((AtomicUsize::new(0), Notify::new()));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (in_flight, threads) = (in_flight.clone(), threads.clone());
                    in_flight.0.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        answer(stream, &threads).await;
                        if in_flight.0.fetch_sub(1, Ordering::SeqCst) == 1 {
                            in_flight.1.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    stop_listening(listener, ours);
    tracing::info!(
        calls = in_flight.0.load(Ordering::SeqCst),
        "stopping: no new calls; waiting for the calls in flight"
    );
    let drained = async {
        loop {
            let notified = in_flight.1.notified();
            if in_flight.0.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("calls still in flight after {DRAIN_TIMEOUT:?}; exiting");
    }
}

/// Reads one call, runs it, writes the answer.
async fn answer(mut stream: UnixStream, threads: &CallThreads) {
    let mut frame = Vec::new();
    let mut limited = (&mut stream).take(wire::MAX_REQUEST as u64 + 1);
    let read = limited.read_to_end(&mut frame);
    // The binary writes its whole request at once; a peer that holds its side open would
    // otherwise hold a task, and shutdown, for good.
    let read = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read).await {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no whole request within {REQUEST_READ_TIMEOUT:?}")),
    };
    let (code, stdout) =
        match read.and_then(|_| wire::decode_request(&frame).map_err(|e| e.to_string())) {
            // VERSION needs no state and no thread: answered here, so a liveness probe is answered
            // even while every call thread is busy.
            Ok(call)
                if call
                    .vars
                    .iter()
                    .any(|(k, v)| k == "CNI_COMMAND" && v == "VERSION") =>
            {
                let (out, code) = futures::executor::block_on(multinet_cni::dispatch(
                    &MetaPlugin::new(),
                    call.vars,
                    &call.stdin,
                ));
                (code, out)
            }
            Ok(call) => threads.run(call).await,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable call");
                let err = CniError::internal(format!("multinet daemon: {e}"));
                (
                    multinet_cni::FAILURE_EXIT_CODE,
                    error_bytes(&err, error_version(b"")),
                )
            }
        };
    let frame = wire::encode_response(code, &stdout);
    if let Err(e) = stream.write_all(&frame).await {
        tracing::warn!(error = %e, "the caller left before its answer");
    }
    let _ = stream.shutdown().await;
}

/// Most call threads at once; more calls at the same moment wait for a free one.
const MAX_CALL_THREADS: usize = 32;

/// A call, and where its exit code and stdout go.
struct Job {
    call: wire::Call,
    answer: tokio::sync::oneshot::Sender<(i32, Vec<u8>)>,
}

/// The threads calls run on. A call's futures stay on one thread, as in the binary; each thread
/// keeps its current-thread runtime, and with it its API client and open connections, from one
/// call to the next, so a call meets a warm connection without crossing threads for each
/// request. A thread is added when every one is busy.
struct CallThreads {
    queue: std::sync::mpsc::Sender<Job>,
    jobs: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    /// Threads waiting for a job and not yet promised one.
    idle: Arc<AtomicUsize>,
    started: AtomicUsize,
}

impl CallThreads {
    fn new() -> Self {
        let (queue, jobs) = std::sync::mpsc::channel();
        CallThreads {
            queue,
            jobs: Arc::new(std::sync::Mutex::new(jobs)),
            idle: Arc::new(AtomicUsize::new(0)),
            started: AtomicUsize::new(0),
        }
    }

    /// Runs one CNI call as the binary would; returns the exit code and stdout.
    async fn run(&self, call: wire::Call) -> (i32, Vec<u8>) {
        let var = |name: &str| {
            call.vars
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (command, container) = (var("CNI_COMMAND"), var("CNI_CONTAINERID"));
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.promise_thread().and_then(|()| {
            self.queue
                .send(Job { call, answer: tx })
                .map_err(|_| "the call threads are gone".to_string())
        });
        let outcome = match queued {
            Ok(()) => rx.await.map_err(|_| "the call's thread failed".to_string()),
            Err(e) => Err(e),
        };
        let (code, stdout) = outcome.unwrap_or_else(|e| {
            let err = CniError::internal(format!("multinet daemon: {e}"));
            (
                multinet_cni::FAILURE_EXIT_CODE,
                error_bytes(&err, error_version(b"")),
            )
        });
        tracing::info!(
            command,
            container,
            code,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "call done"
        );
        (code, stdout)
    }

    /// Takes an idle thread for the next job, or starts one (up to [`MAX_CALL_THREADS`]; past
    /// that the job waits for the first thread to come free).
    fn promise_thread(&self) -> Result<(), String> {
        let idle = &self.idle;
        if idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
            || self.started.load(Ordering::SeqCst) >= MAX_CALL_THREADS
        {
            return Ok(());
        }
        let (jobs, idle) = (self.jobs.clone(), self.idle.clone());
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name(format!("multinet-call-{n}"))
            .spawn(move || call_thread(&jobs, &idle))
            .map(|_| ())
            .map_err(|e| {
                // Not counted: a thread that never started must not use up the limit.
                self.started.fetch_sub(1, Ordering::SeqCst);
                format!("starting a call thread: {e}")
            })
    }
}

/// One call thread: runs the jobs it takes, one at a time, on a runtime it keeps.
fn call_thread(jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Job>>, idle: &AtomicUsize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let mut first = true;
    loop {
        if !first {
            idle.fetch_add(1, Ordering::SeqCst);
        }
        first = false;
        // The lock is held only while waiting for the next job; a poisoned lock means another
        // call thread panicked while waiting, which leaves the queue itself intact.
        let job = {
            let jobs = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            jobs.recv()
        };
        let Ok(Job { call, answer }) = job else {
            return;
        };
        let outcome = match &runtime {
            Ok(rt) => {
                let plugin = MetaPlugin::new();
                let (out, code) =
                    rt.block_on(multinet_cni::dispatch(&plugin, call.vars, &call.stdin));
                (code, out)
            }
            Err(e) => {
                let err = CniError::internal(format!("starting runtime: {e}"));
                (
                    multinet_cni::FAILURE_EXIT_CODE,
                    error_bytes(&err, error_version(&call.stdin)),
                )
            }
        };
        let _ = answer.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn stopping_removes_only_our_own_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/multinet.sock");
        let first = bind(&path).unwrap();
        let ours = file_identity(&path);
        stop_listening(first, ours);
        assert!(!path.exists(), "our socket goes with us");

        // A daemon started while this one was stopping replaced the socket file (as `bind` does
        // with one nobody answers on): this one must leave the newer one's socket alone.
        let old = bind(&path).unwrap();
        let old_identity = file_identity(&path);
        std::fs::remove_file(&path).unwrap();
        let newer = bind(&path).unwrap();
        assert_ne!(
            file_identity(&path),
            old_identity,
            "a stale socket is replaced"
        );
        stop_listening(old, old_identity);
        assert!(path.exists(), "the newer daemon's socket was removed");
        std::os::unix::net::UnixStream::connect(&path).expect("the newer daemon still answers");
        drop(newer);
    }

    #[test]
    fn flags_parse_with_defaults() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            DaemonArgs {
                socket: DEFAULT_SOCKET.into(),
                log_level: "info".into(),
                log_file: None,
                probe: false,
            }
        );
        let a = parse_args(&args(&[
            "--socket",
            "/tmp/s",
            "--log-level",
            "debug",
            "--log-file",
            "/tmp/l",
        ]))
        .unwrap();
        assert_eq!(a.socket, PathBuf::from("/tmp/s"));
        assert_eq!(a.log_level, "debug");
        assert_eq!(a.log_file, Some(PathBuf::from("/tmp/l")));
        assert!(parse_args(&args(&["--probe"])).unwrap().probe);
        assert!(parse_args(&args(&["--probe=yes"])).is_err());
        assert!(
            parse_args(&args(&["--socket"]))
                .unwrap_err()
                .contains("--socket needs a value")
        );
        assert!(
            parse_args(&args(&["--bogus"]))
                .unwrap_err()
                .contains("unknown flag \"--bogus\"")
        );
    }
}
