//! `multinet install`: puts multinet on a node and points the runtime at it. It copies the binary
//! into the CNI bin dir (optionally with the multi-call links of our own delegates), waits for the
//! cluster network's config (the multi-net spec forbids writing ours before the default network is
//! ready), writes `00-multinet.conf[list]` wrapping it and a kubeconfig from the pod's service
//! account, and with `--watch` keeps both current.
//!
//! Every file is replaced atomically (temp file in the same directory, fsync, rename), so neither a
//! running CNI call nor the runtime ever reads half a file, and a file whose bytes would not change
//! is not touched. The config is never removed on shutdown: removing it while the cluster network
//! is still configured makes the runtime fall back to the cluster network alone, silently giving
//! pods no secondary networks. It is removed only when the cluster network's own config is gone.
//!
//! `args` reads the command line; `plan` decides, purely and unit-tested, which file is the
//! cluster network, what we write and what a link needs; this module's I/O only carries it out.

mod args;
mod plan;

use args::bad_input;
pub use args::{
    ConfigOptions, DEFAULT_BIN_DIR, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_DIR, DEFAULT_KUBECONFIG,
    DEFAULT_NAME, DEFAULT_POLL_MILLIS, DEFAULT_SERVICE_ACCOUNT_DIR, DEFAULT_WAIT_SECONDS,
    InstallArgs, flag_names, help_text,
};
pub use plan::{
    CONF_FILE, CONFLIST_FILE, ClusterNetwork, ExistingPlugin, GeneratedConfig, LinkAction,
    WatchAction, candidate_files, cluster_network_from, kubeconfig_yaml, parse_conf_file,
    plan_config, plan_link, server_url, wants_conflist, watch_action,
};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use multinet_cni::DelegateConf;
use nix::sys::signal::{SigSet, Signal};

use multinet_cni::files;

use crate::error::MetaError;

/// The binary's name in the bin dir.
pub const BINARY_NAME: &str = "multinet";
/// Delegates multinet implements; `--own-delegates` links these names to the binary.
pub const OWN_DELEGATE_LINKS: &[&str] = &["macvlan", "ipvlan", "sriov", "host-local", "static"];

/// Exit codes of `multinet install`.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_NOT_READY: i32 = 3;

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> MetaError {
    MetaError::io(what, e)
}

fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    files::sync_dir(dir).map_err(|e| io_err(dir.display(), e))
}

fn same_content(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.len() == bytes.len() as u64
        && meta.permissions().mode() & 0o7777 == mode
        && fs::read(path).is_ok_and(|current| current == bytes)
}

/// Replaces `path` with `bytes` durably (see `files::write_atomic`). Returns false, touching
/// nothing, when the file already holds exactly these bytes with this mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, MetaError> {
    if same_content(path, bytes, mode) {
        return Ok(false);
    }
    files::write_atomic(
        path,
        bytes,
        files::WriteOptions {
            mode,
            durable: true,
        },
    )
    .map_err(|e| io_err(path.display(), e))?;
    Ok(true)
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("multinet install: {msg}");
}

fn require_dir(flag: &str, dir: &Path) -> Result<(), MetaError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(bad_input(format!(
            "{flag} {}: no such directory",
            dir.display()
        )))
    }
}

fn existing_plugin(bin_dir: &Path, name: &str) -> ExistingPlugin {
    let path = bin_dir.join(name);
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return ExistingPlugin::Missing;
    };
    if meta.file_type().is_symlink() {
        let ours = bin_dir.join(BINARY_NAME);
        let points_to_us = fs::read_link(&path)
            .is_ok_and(|t| t == Path::new(BINARY_NAME) || t == ours)
            || matches!((fs::canonicalize(&path), fs::canonicalize(&ours)), (Ok(a), Ok(b)) if a == b);
        if points_to_us {
            return ExistingPlugin::OurLink;
        }
    }
    ExistingPlugin::Other
}

/// Decides every link first, so a refusal changes nothing on the node.
fn plan_links(args: &InstallArgs) -> Result<Vec<(&'static str, LinkAction)>, MetaError> {
    if !args.own_delegates {
        return Ok(Vec::new());
    }
    let plan: Vec<(&'static str, LinkAction)> = OWN_DELEGATE_LINKS
        .iter()
        .map(|name| {
            (
                *name,
                plan_link(existing_plugin(&args.bin_dir, name), args.force),
            )
        })
        .collect();
    let refused: Vec<String> = plan
        .iter()
        .filter(|(_, a)| *a == LinkAction::Refuse)
        .map(|(n, _)| args.bin_dir.join(n).display().to_string())
        .collect();
    if !refused.is_empty() {
        return Err(bad_input(format!(
            "--own-delegates: {} already exist and are not multinet; pass --force to replace them, \
             or leave out --own-delegates (multinet then runs those plugins by exec)",
            refused.join(", ")
        )));
    }
    Ok(plan)
}

fn make_link(bin_dir: &Path, name: &str) -> Result<(), MetaError> {
    let path = bin_dir.join(name);
    let temp = files::temp_path(&path);
    std::os::unix::fs::symlink(BINARY_NAME, &temp)
        .and_then(|()| fs::rename(&temp, &path))
        .map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_err(path.display(), e)
        })
}

/// Copies the binary into the bin dir; returns whether it changed.
fn install_binary(args: &InstallArgs) -> Result<bool, MetaError> {
    let source = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| io_err("this executable", e))?,
    };
    let bytes = fs::read(&source).map_err(|e| {
        let what = if args.binary.is_some() {
            format!("--binary {}", source.display())
        } else {
            source.display().to_string()
        };
        io_err(what, e)
    })?;
    write_atomic(&args.bin_dir.join(BINARY_NAME), &bytes, 0o755)
}

fn install_links(args: &InstallArgs, plan: &[(&'static str, LinkAction)]) -> Result<(), MetaError> {
    for (name, action) in plan {
        match action {
            LinkAction::Create | LinkAction::Replace => {
                make_link(&args.bin_dir, name)?;
                log(format!(
                    "linked {} -> {BINARY_NAME}",
                    args.bin_dir.join(name).display()
                ));
            }
            LinkAction::Keep | LinkAction::Refuse => {}
        }
    }
    if plan
        .iter()
        .any(|(_, a)| matches!(a, LinkAction::Create | LinkAction::Replace))
    {
        sync_dir(&args.bin_dir)?;
    }
    Ok(())
}

/// Writes the kubeconfig from the service account; returns whether it changed.
fn write_kubeconfig(args: &InstallArgs, path: &Path) -> Result<bool, MetaError> {
    let env = |name: &str| {
        std::env::var(name).map_err(|_| {
            bad_input(format!(
                "{name} is not set: the kubeconfig is made from the pod's service account \
                 (run in the DaemonSet), or pass --local-dir to use a local folder instead"
            ))
        })
    };
    let host = env("KUBERNETES_SERVICE_HOST")?;
    let port = env("KUBERNETES_SERVICE_PORT")?;
    let read = |file: &str| {
        let p = args.service_account_dir.join(file);
        fs::read(&p).map_err(|e| {
            bad_input(format!(
                "service account {} (--service-account-dir): {e}",
                p.display()
            ))
        })
    };
    let token = read("token")?;
    let ca = read("ca.crt")?;
    let token = String::from_utf8_lossy(&token);
    let text = kubeconfig_yaml(&server_url(&host, &port), &ca, &token);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io_err(dir.display(), e))?;
    }
    write_atomic(path, text.as_bytes(), 0o600)
}

/// The cluster network now: `Ok(None)` when there is none, an error when its file is unusable.
fn find_cluster_network(args: &InstallArgs) -> Result<Option<ClusterNetwork>, MetaError> {
    let read = |path: &Path| -> Result<Option<DelegateConf>, MetaError> {
        match fs::read(path) {
            Ok(bytes) => parse_conf_file(path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path.display(), e)),
        }
    };
    if let Some(path) = &args.cluster_network {
        return match read(path)? {
            Some(conf) => cluster_network_from(path, &conf).map(Some),
            None => Ok(None),
        };
    }
    let entries = fs::read_dir(&args.cni_conf_dir)
        .map_err(|e| io_err(format!("--cni-conf-dir {}", args.cni_conf_dir.display()), e))?;
    let names = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok());
    for name in candidate_files(names) {
        let path = args.cni_conf_dir.join(&name);
        let Some(conf) = read(&path)? else {
            continue;
        };
        // Ours, or Multus's left behind: never the cluster network (the rule the plugin uses).
        if multinet_cni::trust::runs_a_meta_plugin(&conf) {
            continue;
        }
        return cluster_network_from(&path, &conf).map(Some);
    }
    Ok(None)
}

fn readiness(args: &InstallArgs) -> Option<bool> {
    args.options
        .readiness_indicator_file
        .as_deref()
        .map(Path::exists)
}

/// Writes our config and removes its other spelling; returns whether anything changed.
fn write_config(dir: &Path, config: &GeneratedConfig) -> Result<bool, MetaError> {
    let changed = write_atomic(&dir.join(config.file_name), &config.bytes, 0o644)?;
    let stale = dir.join(config.stale_file_name());
    let removed = remove_if_present(&stale)?;
    if removed {
        sync_dir(dir)?;
    }
    Ok(changed || removed)
}

fn remove_if_present(path: &Path) -> Result<bool, MetaError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path.display(), e)),
    }
}

fn remove_config(dir: &Path) -> Result<bool, MetaError> {
    let a = remove_if_present(&dir.join(CONF_FILE))?;
    let b = remove_if_present(&dir.join(CONFLIST_FILE))?;
    if a || b {
        sync_dir(dir)?;
    }
    Ok(a || b)
}

/// Waits until the cluster network's config is usable and the readiness file (if any) exists.
fn wait_ready(args: &InstallArgs) -> Result<ClusterNetwork, MetaError> {
    let deadline = Instant::now() + args.wait;
    loop {
        let found = find_cluster_network(args);
        let ready = readiness(args) != Some(false);
        if let Ok(Some(cluster)) = &found
            && ready
        {
            return Ok(cluster.clone());
        }
        if Instant::now() >= deadline {
            let waited = args.wait.as_secs();
            return Err(match found {
                Err(e) => e,
                Ok(None) => MetaError::NotReady(match &args.cluster_network {
                    Some(p) => format!(
                        "no cluster network: --cluster-network {} did not appear within {waited} s (--wait-seconds)",
                        p.display()
                    ),
                    None => format!(
                        "no cluster network: no .conf or .conflist in --cni-conf-dir {} within {waited} s (--wait-seconds)",
                        args.cni_conf_dir.display()
                    ),
                }),
                Ok(Some(_)) => MetaError::NotReady(format!(
                    "--readiness-indicator-file {} did not appear within {waited} s (--wait-seconds)",
                    args.options
                        .readiness_indicator_file
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                )),
            });
        }
        std::thread::sleep(
            args.poll
                .min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// The files that do not depend on the cluster network: binary, links, kubeconfig.
fn install_node_files(args: &InstallArgs) -> Result<(), MetaError> {
    require_dir("--bin-dir", &args.bin_dir)?;
    require_dir("--cni-conf-dir", &args.cni_conf_dir)?;
    if let Some(dir) = &args.options.local_dir {
        require_dir("--local-dir", dir)?;
    }
    let links = plan_links(args)?;
    if !args.skip_binary_copy && install_binary(args)? {
        log(format!(
            "installed {}",
            args.bin_dir.join(BINARY_NAME).display()
        ));
    }
    install_links(args, &links)?;
    if let Some(path) = &args.options.kubeconfig
        && write_kubeconfig(args, path)?
    {
        log(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// One look at the node in `--watch`; failures are logged and the next look tries again.
fn watch_tick(args: &InstallArgs) {
    if let Some(path) = &args.options.kubeconfig {
        match write_kubeconfig(args, path) {
            Ok(true) => log(format!("rewrote {} (token or CA changed)", path.display())),
            Ok(false) => {}
            Err(e) => log(format!("kubeconfig not refreshed: {e}")),
        }
    }
    let cluster = match find_cluster_network(args) {
        Ok(c) => c,
        Err(e) => {
            log(format!("config kept as it is: {e}"));
            return;
        }
    };
    let result = match watch_action(cluster.as_ref(), readiness(args), &args.options) {
        WatchAction::Write(config) => write_config(&args.cni_conf_dir, &config).map(|changed| {
            if changed {
                log(format!(
                    "wrote {}",
                    args.cni_conf_dir.join(config.file_name).display()
                ));
            }
        }),
        WatchAction::Remove => remove_config(&args.cni_conf_dir).map(|removed| {
            if removed {
                log("the cluster network's config is gone: removed ours");
            }
        }),
        WatchAction::Keep => Ok(()),
    };
    if let Err(e) = result {
        log(e);
    }
}

/// Set once SIGTERM or SIGINT arrived.
static STOP: AtomicBool = AtomicBool::new(false);

/// SIGTERM/SIGINT end `--watch` between two looks, never in the middle of a write. Handled on
/// purpose (as PID 1 of a container an unhandled SIGTERM is ignored) and on a thread of its own
/// with `sigwait`, so no async-signal handler is needed.
fn stop_on_signals() -> Result<(), MetaError> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()
        .map_err(|e| MetaError::Internal(format!("blocking SIGTERM: {e}")))?;
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            log(format!("{signal}: stopping; the config stays in place"));
            STOP.store(true, Ordering::SeqCst);
        }
    });
    Ok(())
}

/// Sleeps `total`, waking early when a stop signal arrives.
fn pause(total: Duration) {
    let deadline = Instant::now() + total;
    while !STOP.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Runs `multinet install` with parsed arguments. With `--watch` it returns when SIGTERM or
/// SIGINT arrives, leaving the config in place: removing it while the cluster network is still
/// configured would make the runtime give new pods the cluster network alone.
pub fn run(args: &InstallArgs) -> Result<(), MetaError> {
    if args.watch {
        stop_on_signals()?;
    }
    install_node_files(args)?;
    if args.watch {
        while !STOP.load(Ordering::SeqCst) {
            watch_tick(args);
            pause(args.poll);
        }
        return Ok(());
    }
    let cluster = wait_ready(args)?;
    let config = plan_config(&cluster, &args.options);
    let path = args.cni_conf_dir.join(config.file_name);
    if write_config(&args.cni_conf_dir, &config)? {
        log(format!(
            "wrote {} for cluster network {}",
            path.display(),
            cluster.path.display()
        ));
    } else {
        log(format!("{} is up to date", path.display()));
    }
    Ok(())
}

pub fn exit_code(e: &MetaError) -> i32 {
    match e {
        MetaError::InvalidConfig(_) | MetaError::Decode(_) | MetaError::Env(_) => EXIT_BAD_INPUT,
        MetaError::NotReady(_) => EXIT_NOT_READY,
        _ => EXIT_FAILED,
    }
}

/// `multinet install ARGS`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", help_text());
        return 0;
    }
    match InstallArgs::parse(args).and_then(|a| run(&a)) {
        Ok(()) => 0,
        Err(e) => {
            log(format!("error: {e}"));
            exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_skips_identical_bytes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.conf");
        assert!(write_atomic(&path, b"one", 0o600).unwrap());
        let first = fs::metadata(&path).unwrap();
        assert_eq!(first.mode() & 0o777, 0o600);
        assert!(!write_atomic(&path, b"one", 0o600).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().ino(), first.ino(), "untouched");
        assert!(write_atomic(&path, b"two", 0o600).unwrap());
        let second = fs::metadata(&path).unwrap();
        assert_ne!(second.ino(), first.ino(), "a new file renamed into place");
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // A mode change alone is a rewrite too.
        assert!(write_atomic(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("f.conf")],
            "no temp file left"
        );
    }
}
