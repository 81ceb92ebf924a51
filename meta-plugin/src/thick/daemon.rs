//! `multinet daemon`: the node daemon of thick mode. It listens on a unix socket no other uid can
//! reach (0600 from its first moment, and every caller's uid checked), and runs each call it is
//! handed exactly as the binary would run it, on a thread of its own, while API clients and their
//! connections stay open between calls. ADDs and DELs run on separate lanes of threads, so a DEL
//! never waits behind ADDs.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use multinet_cni::{CniError, CniVersion, ErrorCode, error_bytes, error_version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;

use super::hotplug::HotPlugQueue;
use super::socket::stop_listening;
pub use super::socket::{Bound, bind};
use super::wire;
use crate::call::source::cache::WatchCache;
use crate::call::source::kube::ClientReuse;
use crate::call::verbs::MetaPlugin;
use crate::metrics::{Metrics, answer_code};

/// Where the daemon listens unless told otherwise; `daemonSocket` in the config names the same.
pub const DEFAULT_SOCKET: &str = "/run/multinet/multinet.sock";
/// How long SIGTERM waits for calls in flight before the daemon exits anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The watch client's budget: a watch request lasts up to its timeout (`thick::watch`).
const WATCH_CLIENT_BUDGET: Duration = Duration::from_secs(330);
/// How long a caller has to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `multinet daemon`: runs the CNI calls of every multinet config that names this socket as
/// daemonSocket.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(name = "multinet daemon")]
pub struct DaemonArgs {
    /// Unix socket to listen on (its directory is created 0700 if missing).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// error, warn, info, debug or verbose.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log here instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Exit 0 if the daemon at --socket answers a VERSION call, else 1 (a liveness probe).
    #[arg(long)]
    pub probe: bool,
    /// A uid besides root whose processes may hand calls to the daemon (repeatable). The socket
    /// stays 0600 root: such a uid needs a way to the socket the admin gives it as well.
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uids: Vec<u32>,
    /// Most ADD and CHECK calls running at once (each may wait up to 45 s for the readiness
    /// file or on a slow API).
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.add_threads,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub add_threads: u16,
    /// Most DEL, GC and STATUS calls running at once: a lane of their own, never taken by ADDs.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.del_threads,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub del_threads: u16,
    /// Most calls of one lane waiting for a thread; a call past that is answered "try again"
    /// (11) at once.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.max_waiting)]
    pub max_waiting: u16,
    /// Longest a call waits for a thread; one that waited longer is answered "try again" (11)
    /// without running.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::DEFAULT.max_wait.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_wait_seconds: u64,
    /// Serve Prometheus metrics over plain HTTP at ADDRESS/metrics (e.g. 127.0.0.1:9091). Off
    /// unless given; only metrics are served there, never calls.
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// An SR-IOV node policy (YAML or JSON) to apply at start, whenever the file changes (its
    /// modification time is looked at every few seconds) and again a minute after a run that
    /// left something undone; results go to the log.
    #[arg(long, value_name = "FILE")]
    pub sriov_policy: Option<PathBuf>,
    /// This node's name: the daemon watches the pods bound to it (and names its DRA pool
    /// after it).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The kubeconfig of the daemon's own API client (watch caches, DRA driver); the in-cluster
    /// service account when not given. Calls whose config names this same file (or, without
    /// it, no kubeconfig) are answered from the watch caches.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Keep no watch caches: every call reads its pod and NADs from the API, as the binary does.
    #[arg(long)]
    pub no_watch_cache: bool,
    /// Attach and detach networks when the networks annotation of a running pod of this node
    /// changes, with the node's multinet config in FILE (the one the runtime reads). Needs the
    /// watch caches and --node-name. Off unless given.
    #[arg(long, value_name = "FILE")]
    pub hot_plug: Option<PathBuf>,
    #[command(flatten)]
    pub dra: super::dra::DraArgs,
}

impl DaemonArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            add_threads: self.add_threads,
            del_threads: self.del_threads,
            max_waiting: self.max_waiting,
            max_wait: Duration::from_secs(self.max_wait_seconds),
        }
    }

    /// Whether the daemon keeps watch caches: unless told not to, when it has an API to watch
    /// (a kubeconfig, or the in-cluster service account).
    pub fn watch_cache(&self) -> bool {
        !self.no_watch_cache
            && (self.kubeconfig.is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some())
    }
}

/// Parses the flags after `multinet daemon` (`--flag value` and `--flag=value` both work).
pub fn parse_args(args: &[String]) -> Result<DaemonArgs, clap::Error> {
    DaemonArgs::try_parse_from(
        std::iter::once("multinet daemon").chain(args.iter().map(String::as_str)),
    )
}

/// `multinet daemon ...`: returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            // --help prints to stdout and exits 0; a bad flag prints the usage and exits 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    if args.probe {
        return probe(&args.socket);
    }
    limit_malloc_arenas();
    crate::logging::init(&args.log_level, args.log_file.as_deref());
    if let Some(policy) = &args.sriov_policy {
        // Sysfs writes block: a thread of its own, beside the calls.
        let (sysfs, state) = (
            multinet_sriov::Sysfs::from_env(),
            multinet_sriov::StateDir::from_env(),
        );
        if let Err(e) = crate::provision::watch(policy.clone(), sysfs, state) {
            eprintln!("multinet daemon: starting the SR-IOV policy thread: {e}");
            return 1;
        }
    }
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
    let peers = Peers::new(args.allow_uids.iter().copied());
    let limits = args.limits();
    let metrics = match args.metrics_address {
        Some(_) => Metrics::on(),
        None => Metrics::off(),
    };
    let outcome = runtime.block_on(async {
        if let Some(addr) = args.metrics_address {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("metrics address {addr}: {e}")))?;
            tracing::info!(%addr, "serving metrics at {}", crate::metrics::METRICS_PATH);
            tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
        }
        let dra = super::dra::start(
            &args.dra,
            args.node_name.as_deref(),
            args.kubeconfig.as_deref(),
        )
        .await?;
        let (cache, hot_plug) = match args.watch_cache() {
            true => {
                let (cache, hot_plug) = start_watches(&args, &metrics).await?;
                (Some(cache), hot_plug)
            }
            false if args.hot_plug.is_some() => {
                return Err(io::Error::other(
                    "--hot-plug needs the watch caches (a kubeconfig or the in-cluster service \
                     account, and no --no-watch-cache)",
                ));
            }
            false => (None, None),
        };
        let bound = bind(&args.socket)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let shared = Shared {
            metrics,
            cache,
            hot_plug,
        };
        serve(bound, peers, limits, shared, stop).await;
        if let Some(dra) = dra {
            dra.stop();
        }
        io::Result::Ok(())
    });
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("multinet daemon: {}: {e}", args.socket.display());
            1
        }
    }
}

/// glibc gives each busy thread an arena of its own (up to 8 per core) and keeps them after the
/// burst that made them: with 24 call threads, a burst of 110 ADDs left the daemon at 31.7 MiB
/// resident (burst-bench). Two arenas are plenty for calls that spend their time waiting on
/// plugins and the API.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator tunable; it is called before the daemon starts any
    // thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// `--probe`: a VERSION call through the socket, as the binary would hand it over. Exit 0 when the
/// daemon answers it, 1 (with the reason on stderr) when it does not.
pub fn probe(socket: &Path) -> i32 {
    match answers(socket) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("multinet daemon at {}: {why}", socket.display());
            1
        }
    }
}

/// Whether a daemon answers a VERSION call on `socket` as the binary would hand it over; the
/// error says what happened instead.
pub fn answers(socket: &Path) -> Result<(), String> {
    let vars = [("CNI_COMMAND".to_string(), "VERSION".to_string())];
    match super::shim::hand_over(socket, &vars, b"{}") {
        super::shim::Handover::Answered { code: 0, stdout }
            if serde_json::from_slice::<serde_json::Value>(&stdout)
                .is_ok_and(|v| v.get("supportedVersions").is_some()) =>
        {
            Ok(())
        }
        super::shim::Handover::Answered { code, stdout } => Err(format!(
            "answered {code}: {}",
            String::from_utf8_lossy(&stdout).trim()
        )),
        super::shim::Handover::NoDaemon(e) => Err(e.to_string()),
    }
}

/// Who may hand calls to the daemon: root, and the uids the admin names with `--allow-uid`.
/// Checked on every connection (SO_PEERCRED) before anything of the request is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    allowed: BTreeSet<u32>,
}

impl Peers {
    pub fn new(allow_uids: impl IntoIterator<Item = u32>) -> Peers {
        Peers {
            allowed: allow_uids.into_iter().collect(),
        }
    }

    /// Whether a caller running as `uid` (`None`: its credentials could not be read) may make
    /// calls. The refusal is code 4: the spec has no "not permitted" code, and what is wrong is
    /// the caller's execution environment (the uid it runs as), not its config; retrying (11)
    /// would not help.
    pub fn check(&self, uid: Option<u32>) -> Result<(), CniError> {
        match uid {
            Some(0) => Ok(()),
            Some(uid) if self.allowed.contains(&uid) => Ok(()),
            Some(uid) => Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                format!(
                    "multinet daemon: uid {uid} is not allowed to make calls (only root and the \
                     uids given with --allow-uid are)"
                ),
            )),
            None => Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                "multinet daemon: the caller's credentials could not be read; call refused",
            )),
        }
    }
}

/// Starts the watches that keep the caches current, on the daemon's runtime.
async fn start_watches(
    args: &DaemonArgs,
    metrics: &Metrics,
) -> io::Result<(Arc<WatchCache>, Option<HotPlugQueue>)> {
    let kubeconfig = args.kubeconfig.as_deref();
    if args.hot_plug.is_some() && args.node_name.is_none() {
        return Err(io::Error::other(
            "--hot-plug needs --node-name (or NODE_NAME)",
        ));
    }
    let client = crate::call::source::kube::build_client(kubeconfig, WATCH_CLIENT_BUDGET)
        .await
        .map_err(|e| io::Error::other(format!("the watch caches' API client: {e}")))?;
    let cache = Arc::new(WatchCache::new(kubeconfig));
    tracing::info!(
        node = args.node_name,
        "keeping watch caches of pods and NADs"
    );
    let hot_plug = match &args.hot_plug {
        Some(config) => {
            tracing::info!(config = %config.display(), "hot-plug is on");
            Some(super::hotplug::start(
                config.clone(),
                cache.clone(),
                metrics.clone(),
            )?)
        }
        None => None,
    };
    let queue = hot_plug.clone();
    tokio::spawn(super::watch::keep_current(
        client,
        cache.clone(),
        args.node_name.clone(),
        move |change| {
            if let Some(queue) = &queue {
                queue.pod_changed(change);
            }
        },
    ));
    Ok((cache, hot_plug))
}

/// What every call of the daemon shares.
#[derive(Clone, Default)]
pub struct Shared {
    pub metrics: Metrics,
    pub cache: Option<Arc<WatchCache>>,
    /// Hot-plug's queue: a pod whose ADD succeeded is looked at once more, so a change of its
    /// annotation made while the ADD ran is not missed.
    pub hot_plug: Option<HotPlugQueue>,
}

/// Serves calls until `stop` completes; then removes its socket (calls from then on run in the
/// binary) and waits (up to [`DRAIN_TIMEOUT`]) for the calls in flight: a call cut off halfway
/// would leave the runtime without an answer.
pub async fn serve(
    bound: Bound,
    peers: Peers,
    limits: Limits,
    shared: Shared,
    stop: impl std::future::Future<Output = ()>,
) {
    let threads = Arc::new(CallThreads::new(limits, shared));
    let peers = Arc::new(peers);
    tracing::info!(
        add_threads = limits.add_threads,
        del_threads = limits.del_threads,
        allowed_uids = ?peers.allowed,
        "multinet daemon listening"
    );
    let in_flight = Arc::new((AtomicUsize::new(0), Notify::new()));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (in_flight, threads, peers) =
                        (in_flight.clone(), threads.clone(), peers.clone());
                    in_flight.0.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        answer(stream, &peers, &threads).await;
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
    stop_listening(bound);
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

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error("no whole request within {REQUEST_READ_TIMEOUT:?}")]
    Timeout,
}

/// Reads one request piece by piece with the checks of [`wire::decode_request`], never holding
/// more than a valid request's bytes. A stdin over the CNI limit is read to its end (and
/// dropped), so that the caller, still writing it, gets the answer rather than a reset.
async fn read_call(stream: &mut UnixStream) -> Result<wire::Call, RequestError> {
    let mut head = Vec::with_capacity(wire::HEADER_LEN);
    (&mut *stream)
        .take(wire::HEADER_LEN as u64)
        .read_to_end(&mut head)
        .await?;
    let env_len = wire::decode_header(&head)?;
    let mut env = Vec::new();
    (&mut *stream)
        .take(env_len as u64)
        .read_to_end(&mut env)
        .await?;
    if env.len() < env_len {
        return Err(wire::WireError::Truncated.into());
    }
    let vars = wire::decode_env(&env)?;
    let mut stdin = Vec::new();
    (&mut *stream)
        .take(multinet_cni::MAX_STDIN_BYTES as u64 + 1)
        .read_to_end(&mut stdin)
        .await?;
    if stdin.len() > multinet_cni::MAX_STDIN_BYTES {
        tokio::io::copy(stream, &mut tokio::io::sink()).await?;
        return Err(wire::WireError::StdinTooLarge.into());
    }
    Ok(wire::Call { vars, stdin })
}

/// Reads what the caller sends to its end and drops it: a refused caller still gets its answer
/// (closing with its request unread would reset the connection), and nothing of it is looked at.
async fn discard_request(stream: &mut UnixStream) {
    let mut sink = tokio::io::sink();
    let drained = tokio::io::copy(stream, &mut sink);
    let _ = tokio::time::timeout(REQUEST_READ_TIMEOUT, drained).await;
}

/// The answer of a call refused before it ran: exit code and error JSON.
fn refusal(err: &CniError, version: CniVersion) -> (i32, Vec<u8>) {
    (multinet_cni::FAILURE_EXIT_CODE, error_bytes(err, version))
}

/// Thin mode's answer to a stdin over the CNI limit, byte for byte: the binary reads no further
/// than the limit either, so it has no cniVersion to answer in.
fn stdin_too_large() -> (i32, Vec<u8>) {
    let err = match multinet_cni::check_stdin_size(multinet_cni::MAX_STDIN_BYTES + 1) {
        Err(err) => err,
        // Unreachable: any length over the limit is refused.
        Ok(()) => CniError::invalid_config("stdin: over the limit for a CNI config"),
    };
    refusal(&err, CniVersion::LATEST)
}

/// Checks the caller, reads one call, runs it, writes the answer.
async fn answer(mut stream: UnixStream, peers: &Peers, threads: &CallThreads) {
    let cred = stream.peer_cred().ok();
    let (code, stdout) = match peers.check(cred.map(|c| c.uid())) {
        Err(err) => {
            tracing::warn!(
                uid = cred.map(|c| c.uid()),
                pid = cred.and_then(|c| c.pid()),
                "refused a call: the caller's uid is not allowed"
            );
            discard_request(&mut stream).await;
            refusal(&err, CniVersion::LATEST)
        }
        Ok(()) => {
            // The binary writes its whole request at once; a peer that holds its side open
            // would otherwise hold a task, and shutdown, for good.
            let read = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_call(&mut stream))
                .await
                .unwrap_or(Err(RequestError::Timeout));
            match read {
                // VERSION needs no state and no thread: answered here, so a liveness probe is
                // answered even while every call thread is busy.
                Ok(call) if command_of(&call) == "VERSION" => {
                    let (out, code) = futures::executor::block_on(multinet_cni::dispatch(
                        &MetaPlugin::new(),
                        call.vars,
                        &call.stdin,
                    ));
                    (code, out)
                }
                Ok(call) => threads.run(call).await,
                // Byte for byte thin mode's answer: it reads no further than the limit either,
                // so it has no cniVersion to answer in.
                Err(RequestError::Wire(wire::WireError::StdinTooLarge)) => stdin_too_large(),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable call");
                    let err = CniError::internal(format!("multinet daemon: {e}"));
                    refusal(&err, error_version(b""))
                }
            }
        }
    };
    let frame = wire::encode_response(code, &stdout);
    if let Err(e) = stream.write_all(&frame).await {
        tracing::warn!(error = %e, "the caller left before its answer");
    }
    let _ = stream.shutdown().await;
}

/// The pod a call is for, from its CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME).
fn pod_of(call: &wire::Call) -> Option<(String, String)> {
    let args = multinet_cni::env::parse_cni_args(var_of(call, "CNI_ARGS")).ok()?;
    let arg = |key: &str| {
        args.iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Some((arg("K8S_POD_NAMESPACE")?, arg("K8S_POD_NAME")?))
}

/// The call's CNI_COMMAND ("" when it has none).
fn command_of(call: &wire::Call) -> &str {
    var_of(call, "CNI_COMMAND")
}

fn var_of<'a>(call: &'a wire::Call, name: &str) -> &'a str {
    call.vars
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// How many calls run and wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub add_threads: u16,
    pub del_threads: u16,
    /// Calls of one lane waiting for a thread.
    pub max_waiting: u16,
    /// Longest wait for a thread.
    pub max_wait: Duration,
}

impl Limits {
    /// 32 threads in all as before, 8 of them kept for DEL, GC and STATUS; a queue that holds a
    /// burst of pods scheduled at once, and a wait shorter than a runtime's own call timeout so
    /// the "try again" reaches it.
    pub const DEFAULT: Limits = Limits {
        add_threads: 24,
        del_threads: 8,
        max_waiting: 256,
        max_wait: Duration::from_secs(60),
    };
}

/// The threads a call runs on. ADD and CHECK may wait long (ADD up to 45 s for the readiness
/// file; both on a slow API), so they get a lane of their own: DEL, GC and STATUS never queue
/// behind them. DEL and GC free what pods held; STATUS tells the runtime whether ADDs can be
/// served; none waits for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Add,
    Del,
}

impl Lane {
    fn of(command: &str) -> Lane {
        match command {
            "ADD" | "CHECK" => Lane::Add,
            // DEL, GC, STATUS, and anything else (refused at once by the call itself).
            _ => Lane::Del,
        }
    }
}

/// Why a call was not given a thread: answered "try again" (11), nothing ran.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum Busy {
    #[error(
        "{waiting} calls already wait for a thread of the {lane} lane (the limit is --max-waiting)"
    )]
    QueueFull { lane: &'static str, waiting: usize },
    #[error("waited {waited:?} for a thread of the {lane} lane (the limit is --max-wait-seconds)")]
    WaitedTooLong {
        lane: &'static str,
        waited: Duration,
    },
}

/// A call, when it was queued, and where its exit code and stdout go.
struct Job {
    call: wire::Call,
    queued: Instant,
    answer: tokio::sync::oneshot::Sender<(i32, Vec<u8>)>,
}

/// The two lanes of call threads.
struct CallThreads {
    add: CallLane,
    del: CallLane,
    metrics: Metrics,
    hot_plug: Option<HotPlugQueue>,
}

impl CallThreads {
    fn new(limits: Limits, shared: Shared) -> Self {
        CallThreads {
            add: CallLane::new("add", usize::from(limits.add_threads), limits, &shared),
            del: CallLane::new("del", usize::from(limits.del_threads), limits, &shared),
            metrics: shared.metrics,
            hot_plug: shared.hot_plug,
        }
    }

    /// Runs one CNI call as the binary would, on its lane; returns the exit code and stdout.
    async fn run(&self, call: wire::Call) -> (i32, Vec<u8>) {
        let command = command_of(&call).to_string();
        let container = var_of(&call, "CNI_CONTAINERID").to_string();
        let pod = pod_of(&call);
        let version = error_version(&call.stdin);
        let started = Instant::now();
        // Refusals (a full queue, a long wait) are answers too: counted with their code.
        let timer = self.metrics.call(&command);
        let lane = match Lane::of(&command) {
            Lane::Add => &self.add,
            Lane::Del => &self.del,
        };
        let outcome = match lane.submit(call) {
            Ok(rx) => rx.await.map_err(|_| {
                CniError::internal("multinet daemon: the call's thread failed".to_string())
            }),
            Err(e) => Err(e),
        };
        let (code, stdout) = outcome.unwrap_or_else(|err| refusal(&err, version));
        timer.finish(answer_code(code, &stdout));
        if let (Some(queue), Some((namespace, name)), "ADD", 0) =
            (&self.hot_plug, &pod, command.as_str(), code)
        {
            queue.push_pod(namespace, name);
        }
        tracing::info!(
            command,
            container,
            code,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "call done"
        );
        (code, stdout)
    }
}

/// The threads of one lane. A call's futures stay on one thread, as in the binary; each thread
/// keeps its current-thread runtime, and with it its API client and open connections, from one
/// call to the next, so a call meets a warm connection without crossing threads for each
/// request. A thread is added when every one is busy, up to the lane's limit; past that calls
/// wait in a bounded queue for a bounded time.
struct CallLane {
    name: &'static str,
    max_threads: usize,
    limits: Limits,
    queue: std::sync::mpsc::Sender<Job>,
    jobs: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    started: AtomicUsize,
    /// Calls submitted and not yet answered: those past `started` wait for a thread.
    pending: Arc<AtomicUsize>,
    shared: Shared,
}

impl CallLane {
    fn new(name: &'static str, max_threads: usize, limits: Limits, shared: &Shared) -> Self {
        let (queue, jobs) = std::sync::mpsc::channel();
        CallLane {
            name,
            max_threads,
            limits,
            queue,
            jobs: Arc::new(std::sync::Mutex::new(jobs)),
            started: AtomicUsize::new(0),
            pending: Arc::new(AtomicUsize::new(0)),
            shared: shared.clone(),
        }
    }

    /// Queues `call` for a thread of this lane; the receiver gets its answer.
    fn submit(
        &self,
        call: wire::Call,
    ) -> Result<tokio::sync::oneshot::Receiver<(i32, Vec<u8>)>, CniError> {
        let ahead = self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.find_thread(ahead, &call) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            call,
            queued: Instant::now(),
            answer: tx,
        };
        self.queue.send(job).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            CniError::internal("multinet daemon: the call threads are gone".to_string())
        })?;
        Ok(rx)
    }

    /// Makes sure a thread will take the call that has `ahead` calls before it: a free one, a
    /// new one (up to the lane's limit), or a place in the queue (up to `max_waiting`).
    fn find_thread(&self, ahead: usize, call: &wire::Call) -> Result<(), CniError> {
        // One atomic step decides both "a thread is free" and "a new one may start", so calls
        // arriving together never start more than the lane's limit.
        let counted = self
            .started
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |started| {
                (ahead >= started && started < self.max_threads).then_some(started + 1)
            });
        let started = match counted {
            Ok(n) => return self.start_thread(n),
            Err(started) if ahead < started => return Ok(()),
            Err(started) => started,
        };
        let waiting = ahead - started;
        if waiting >= usize::from(self.limits.max_waiting) {
            let busy = Busy::QueueFull {
                lane: self.name,
                waiting,
            };
            tracing::warn!(lane = self.name, waiting, "call refused: {busy}");
            return Err(CniError::try_again(format!(
                "multinet daemon: {busy}; try again"
            )));
        }
        tracing::debug!(
            lane = self.name,
            waiting,
            command = command_of(call),
            container = var_of(call, "CNI_CONTAINERID"),
            "call waits for a thread"
        );
        Ok(())
    }

    /// Starts thread number `n`, already counted in `started`.
    fn start_thread(&self, n: usize) -> Result<(), CniError> {
        let worker = Worker {
            lane: self.name,
            jobs: self.jobs.clone(),
            pending: self.pending.clone(),
            max_wait: self.limits.max_wait,
            shared: self.shared.clone(),
        };
        std::thread::Builder::new()
            .name(format!("multinet-{}-{n}", self.name))
            .spawn(move || worker.run())
            .map(|_| ())
            .map_err(|e| {
                // Not counted: a thread that never started must not use up the limit.
                self.started.fetch_sub(1, Ordering::SeqCst);
                CniError::internal(format!("multinet daemon: starting a call thread: {e}"))
            })
    }
}

/// One call thread: runs the jobs it takes, one at a time, on a runtime it keeps.
struct Worker {
    lane: &'static str,
    jobs: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    pending: Arc<AtomicUsize>,
    max_wait: Duration,
    shared: Shared,
}

impl Worker {
    fn run(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        loop {
            // The lock is held only while waiting for the next job; a poisoned lock means
            // another call thread panicked while waiting, which leaves the queue itself intact.
            let job = {
                let jobs = self
                    .jobs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                jobs.recv()
            };
            let Ok(Job {
                call,
                queued,
                answer,
            }) = job
            else {
                return;
            };
            let waited = queued.elapsed();
            let outcome = if waited > self.max_wait {
                let busy = Busy::WaitedTooLong {
                    lane: self.lane,
                    waited,
                };
                tracing::warn!(lane = self.lane, "call not run: {busy}");
                let err = CniError::try_again(format!("multinet daemon: {busy}; try again"));
                refusal(&err, error_version(&call.stdin))
            } else {
                match &runtime {
                    Ok(rt) => {
                        tracing::debug!(
                            lane = self.lane,
                            command = command_of(&call),
                            container = var_of(&call, "CNI_CONTAINERID"),
                            "call runs"
                        );
                        // Each call thread keeps one runtime for good, so its API client too.
                        let plugin = MetaPlugin::new()
                            .with_client_reuse(ClientReuse::PerThread)
                            .with_metrics(self.shared.metrics.clone())
                            .with_cache(self.shared.cache.clone());
                        let (out, code) =
                            rt.block_on(multinet_cni::dispatch(&plugin, call.vars, &call.stdin));
                        (code, out)
                    }
                    Err(e) => {
                        let err = CniError::internal(format!("starting runtime: {e}"));
                        refusal(&err, error_version(&call.stdin))
                    }
                }
            };
            // Counted free before the answer goes, so the caller's next call finds this thread.
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let _ = answer.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
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
                allow_uids: vec![],
                add_threads: 24,
                del_threads: 8,
                max_waiting: 256,
                max_wait_seconds: 60,
                metrics_address: None,
                sriov_policy: None,
                node_name: None,
                kubeconfig: None,
                no_watch_cache: false,
                hot_plug: None,
                dra: super::super::dra::DraArgs {
                    kubelet_registry_dir: "/var/lib/kubelet/plugins_registry".into(),
                    kubelet_plugins_dir: "/var/lib/kubelet/plugins".into(),
                    ..Default::default()
                },
            }
        );
        assert_eq!(parse_args(&[]).unwrap().limits(), Limits::DEFAULT);
        let a = parse_args(&args(&[
            "--socket",
            "/tmp/s",
            "--log-level=debug",
            "--log-file",
            "/tmp/l",
            "--allow-uid=1000",
            "--allow-uid",
            "65534",
            "--add-threads=2",
        ]))
        .unwrap();
        assert_eq!(a.socket, PathBuf::from("/tmp/s"));
        assert_eq!(a.log_level, "debug");
        assert_eq!(a.log_file, Some(PathBuf::from("/tmp/l")));
        assert_eq!(a.allow_uids, [1000, 65534]);
        assert_eq!(a.limits().add_threads, 2);
        assert!(parse_args(&args(&["--probe"])).unwrap().probe);
        assert_eq!(
            parse_args(&args(&["--sriov-policy", "/etc/multinet/sriov.yaml"]))
                .unwrap()
                .sriov_policy,
            Some(PathBuf::from("/etc/multinet/sriov.yaml"))
        );
        let err = |a: &[&str]| parse_args(&args(a)).unwrap_err().to_string();
        assert!(err(&["--probe=yes"]).contains("--probe"));
        assert!(err(&["--socket"]).contains("--socket"));
        assert!(err(&["--bogus"]).contains("--bogus"));
        assert!(err(&["--allow-uid=root"]).contains("--allow-uid"));
        assert!(err(&["--add-threads=0"]).contains("--add-threads"));
        assert!(err(&["--max-wait-seconds=0"]).contains("--max-wait-seconds"));
        assert_eq!(
            parse_args(&args(&["--help"])).unwrap_err().exit_code(),
            0,
            "--help is no error"
        );
        assert_eq!(parse_args(&args(&["--bogus"])).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn only_root_and_allowed_uids_may_call() {
        let peers = Peers::new([1000]);
        assert_eq!(peers.check(Some(0)), Ok(()));
        assert_eq!(peers.check(Some(1000)), Ok(()));
        for refused in [Some(65534), Some(1001), None] {
            let err = peers.check(refused).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidEnvironment);
            if let Some(uid) = refused {
                assert!(
                    err.msg.contains(&format!("uid {uid} is not allowed")),
                    "{err}"
                );
            }
        }
        assert!(
            Peers::default().check(Some(1000)).is_err(),
            "root only by default"
        );
    }

    #[test]
    fn del_gc_and_status_never_share_the_add_lane() {
        assert_eq!(Lane::of("ADD"), Lane::Add);
        assert_eq!(Lane::of("CHECK"), Lane::Add);
        for other in ["DEL", "GC", "STATUS", "", "add"] {
            assert_eq!(Lane::of(other), Lane::Del, "{other}");
        }
    }

    /// `frame` written by a peer that then closes its side, read by [`read_call`]; the peer's
    /// write must complete (the daemon reads what it is sent, even past a limit).
    async fn read_from_peer(frame: Vec<u8>) -> Result<wire::Call, RequestError> {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let peer = tokio::spawn(async move {
            theirs.write_all(&frame).await.unwrap();
            theirs.shutdown().await.unwrap();
        });
        let read = read_call(&mut ours).await;
        peer.await.unwrap();
        read
    }

    #[tokio::test]
    async fn requests_are_read_piece_by_piece_with_the_wire_checks() {
        let vars = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        let limit = multinet_cni::MAX_STDIN_BYTES;
        let call = read_from_peer(wire::encode_request(&vars, &vec![b' '; limit]))
            .await
            .unwrap();
        assert_eq!((call.vars, call.stdin.len()), (vars.clone(), limit));

        let over = wire::encode_request(&vars, &vec![b' '; limit + (3 << 20)]);
        assert!(matches!(
            read_from_peer(over).await,
            Err(RequestError::Wire(wire::WireError::StdinTooLarge))
        ));
        let mut short_env = b"MNT1\0\0\0\x64[[".to_vec();
        short_env.extend_from_slice(b"\"A\"");
        assert!(matches!(
            read_from_peer(short_env).await,
            Err(RequestError::Wire(wire::WireError::Truncated))
        ));
        let mut huge_env = b"MNT1".to_vec();
        huge_env.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            read_from_peer(huge_env).await,
            Err(RequestError::Wire(wire::WireError::EnvTooLarge(_)))
        ));
        assert!(matches!(
            read_from_peer(b"GET / HTTP/1.1".to_vec()).await,
            Err(RequestError::Wire(wire::WireError::Magic))
        ));
    }

    /// A stdin over the limit through the daemon is answered exactly as thin mode answers it.
    #[test]
    fn an_oversized_stdin_gets_thin_modes_answer() {
        let thin = multinet_cni::read_stdin(&vec![b' '; multinet_cni::MAX_STDIN_BYTES + 1][..])
            .unwrap_err();
        let (code, stdout) = stdin_too_large();
        assert_eq!(code, multinet_cni::FAILURE_EXIT_CODE);
        assert_eq!(stdout, error_bytes(&thin, CniVersion::LATEST));
        let err: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        assert_eq!(err["code"], 7);
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .contains(&multinet_cni::MAX_STDIN_BYTES.to_string()),
            "{err}"
        );
    }
}
