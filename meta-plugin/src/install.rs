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
//! Planning (which file is the cluster network, what we write, what a link needs) is pure and
//! unit-tested; the I/O functions below it only carry the plan out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use serde_json::{Map, Value, json};

use crate::error::MetaError;

/// Our config as a single conf (cluster network below CNI 1.0.0).
pub const CONF_FILE: &str = "00-multinet.conf";
/// Our config as a conflist (cluster network at CNI 1.0.0 or later).
pub const CONFLIST_FILE: &str = "00-multinet.conflist";
/// The binary's name in the bin dir.
pub const BINARY_NAME: &str = "multinet";
/// Delegates multinet implements; `--own-delegates` links these names to the binary.
pub const OWN_DELEGATE_LINKS: &[&str] = &["macvlan", "ipvlan", "sriov", "host-local", "static"];
/// Meta plugins are never taken for the cluster network (a leftover Multus config included).
const META_PLUGIN_TYPES: &[&str] = &["multinet", "multus", "multus-shim"];

pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_KUBECONFIG: &str = "/etc/cni/net.d/multinet.d/multinet.kubeconfig";
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multinet";
pub const DEFAULT_NAME: &str = "multinet-cni-network";
pub const DEFAULT_WAIT_SECONDS: u64 = 120;
pub const DEFAULT_POLL_MILLIS: u64 = 1000;

/// Exit codes of `multinet install`.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_NOT_READY: i32 = 3;

/// One command-line flag: `value` names its argument, `None` for a switch.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn flag(name: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
    Flag { name, value, help }
}

/// Every flag `multinet install` accepts; the parser and `--help` both read this table.
pub const FLAGS: &[Flag] = &[
    flag(
        "--bin-dir",
        Some("DIR"),
        "CNI bin dir the binary is copied into (default /opt/cni/bin); written as binDir",
    ),
    flag(
        "--cni-conf-dir",
        Some("DIR"),
        "runtime's CNI config dir (default /etc/cni/net.d)",
    ),
    flag(
        "--cluster-network",
        Some("FILE"),
        "the cluster network's config file (default: the alphabetically first .conf/.conflist in --cni-conf-dir that is not a meta plugin's)",
    ),
    flag(
        "--wait-seconds",
        Some("N"),
        "how long to wait for the cluster network (and readiness file) before failing (default 120)",
    ),
    flag(
        "--poll-millis",
        Some("N"),
        "how often to look while waiting or watching (default 1000)",
    ),
    flag(
        "--readiness-indicator-file",
        Some("FILE"),
        "wait for this file before writing the config; written as readinessindicatorfile",
    ),
    flag(
        "--own-delegates",
        None,
        "link macvlan, ipvlan, sriov, host-local and static in --bin-dir to multinet",
    ),
    flag(
        "--force",
        None,
        "with --own-delegates: replace existing plugin files of those names",
    ),
    flag(
        "--skip-binary-copy",
        None,
        "do not copy the binary (config and kubeconfig only)",
    ),
    flag(
        "--binary",
        Some("FILE"),
        "the binary to install (default: this executable)",
    ),
    flag(
        "--watch",
        None,
        "keep running: regenerate the config when the cluster network's file changes, appears or goes away; refresh the kubeconfig when the token rotates",
    ),
    flag(
        "--name",
        Some("NAME"),
        "network name (default multinet-cni-network)",
    ),
    flag(
        "--kubeconfig",
        Some("FILE"),
        "where the kubeconfig is written (default /etc/cni/net.d/multinet.d/multinet.kubeconfig)",
    ),
    flag(
        "--service-account-dir",
        Some("DIR"),
        "the pod's service account (token, ca.crt) (default /var/run/secrets/kubernetes.io/serviceaccount)",
    ),
    flag(
        "--local-dir",
        Some("DIR"),
        "use a local folder of pods/ and nads/ instead of the API (no kubeconfig is written); written as localDir",
    ),
    flag(
        "--cni-dir",
        Some("DIR"),
        "attachment store (default /var/lib/cni/multinet); written as cniDir",
    ),
    flag(
        "--nad-conf-dir",
        Some("DIR"),
        "where a NAD with an empty spec finds its config; written as confDir",
    ),
    flag(
        "--multus-namespace",
        Some("NS"),
        "written as multusNamespace",
    ),
    flag(
        "--namespace-isolation",
        None,
        "written as namespaceIsolation (also --namespace-isolation=true|false)",
    ),
    flag(
        "--global-namespaces",
        Some("LIST"),
        "comma-separated; written as globalNamespaces",
    ),
    flag(
        "--log-level",
        Some("LEVEL"),
        "debug, verbose, info, warn, error or panic; written as logLevel",
    ),
    flag("--log-file", Some("FILE"), "written as logFile"),
];

/// The keys of the generated config that come from flags, besides the cluster network's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigOptions {
    pub name: String,
    pub kubeconfig: Option<PathBuf>,
    pub local_dir: Option<PathBuf>,
    pub cni_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub nad_conf_dir: Option<PathBuf>,
    pub multus_namespace: Option<String>,
    pub namespace_isolation: Option<bool>,
    pub global_namespaces: Option<String>,
    pub readiness_indicator_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_file: Option<PathBuf>,
}

/// Parsed `multinet install` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallArgs {
    pub bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cluster_network: Option<PathBuf>,
    pub wait: Duration,
    pub poll: Duration,
    pub own_delegates: bool,
    pub force: bool,
    pub skip_binary_copy: bool,
    pub binary: Option<PathBuf>,
    pub watch: bool,
    pub service_account_dir: PathBuf,
    pub options: ConfigOptions,
}

fn bad_input(msg: impl Into<String>) -> MetaError {
    MetaError::InvalidConfig(msg.into())
}

fn parse_bool(flag: &str, value: &str) -> Result<bool, MetaError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad_input(format!("{flag}: {value:?} is not true or false"))),
    }
}

fn parse_number(flag: &str, value: &str) -> Result<u64, MetaError> {
    value
        .parse()
        .map_err(|_| bad_input(format!("{flag}: {value:?} is not a whole number")))
}

const LOG_LEVELS: &[&str] = &["debug", "verbose", "info", "warn", "error", "panic"];

impl InstallArgs {
    /// Parses the arguments after `install`. Accepts `--flag value` and `--flag=value`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<InstallArgs, MetaError> {
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut iter = args.iter().map(AsRef::as_ref);
        while let Some(arg) = iter.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let spec = FLAGS.iter().find(|f| f.name == name).ok_or_else(|| {
                bad_input(format!(
                    "unknown argument {arg:?} (see multinet install --help)"
                ))
            })?;
            let value = match (spec.value, inline) {
                (_, Some(v)) => v.to_string(),
                (Some(what), None) => iter
                    .next()
                    .ok_or_else(|| bad_input(format!("{name} needs a value ({what})")))?
                    .to_string(),
                (None, None) => "true".to_string(),
            };
            if spec.value.is_none() {
                parse_bool(name, &value)?;
            }
            if spec.value.is_some() && value.is_empty() {
                return Err(bad_input(format!("{name} needs a non-empty value")));
            }
            values.insert(spec.name, value);
        }
        let path = |name: &str| values.get(name).map(PathBuf::from);
        let switch = |name: &str| {
            values
                .get(name)
                .is_some_and(|v| parse_bool(name, v).unwrap_or(false))
        };
        let absolute = |name: &str, default: &str| -> Result<PathBuf, MetaError> {
            let p = path(name).unwrap_or_else(|| PathBuf::from(default));
            std::path::absolute(&p).map_err(|e| bad_input(format!("{name}: {}: {e}", p.display())))
        };
        let bin_dir = absolute("--bin-dir", DEFAULT_BIN_DIR)?;
        let cni_conf_dir = absolute("--cni-conf-dir", DEFAULT_CNI_CONF_DIR)?;
        let cluster_network = path("--cluster-network").map(|p| cni_conf_dir.join(p));
        let wait = Duration::from_secs(match values.get("--wait-seconds") {
            Some(v) => parse_number("--wait-seconds", v)?,
            None => DEFAULT_WAIT_SECONDS,
        });
        let poll_millis = match values.get("--poll-millis") {
            Some(v) => parse_number("--poll-millis", v)?,
            None => DEFAULT_POLL_MILLIS,
        };
        if poll_millis == 0 {
            return Err(bad_input("--poll-millis: must be at least 1"));
        }
        if let Some(level) = values.get("--log-level")
            && !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str())
        {
            return Err(bad_input(format!(
                "--log-level: {level:?} is not one of {}",
                LOG_LEVELS.join(", ")
            )));
        }
        let local_dir = match path("--local-dir") {
            Some(_) => Some(absolute("--local-dir", "")?),
            None => None,
        };
        let kubeconfig = absolute("--kubeconfig", DEFAULT_KUBECONFIG)?;
        let options = ConfigOptions {
            name: values
                .get("--name")
                .cloned()
                .unwrap_or_else(|| DEFAULT_NAME.to_string()),
            // A local folder replaces the API: the plugin prefers a kubeconfig when it has one.
            kubeconfig: local_dir.is_none().then_some(kubeconfig),
            local_dir,
            cni_dir: absolute("--cni-dir", DEFAULT_CNI_DIR)?,
            bin_dir: bin_dir.clone(),
            nad_conf_dir: path("--nad-conf-dir"),
            multus_namespace: values.get("--multus-namespace").cloned(),
            namespace_isolation: values
                .get("--namespace-isolation")
                .map(|v| parse_bool("--namespace-isolation", v))
                .transpose()?,
            global_namespaces: values.get("--global-namespaces").cloned(),
            readiness_indicator_file: path("--readiness-indicator-file"),
            log_level: values.get("--log-level").cloned(),
            log_file: path("--log-file"),
        };
        Ok(InstallArgs {
            bin_dir,
            cni_conf_dir,
            cluster_network,
            wait,
            poll: Duration::from_millis(poll_millis),
            own_delegates: switch("--own-delegates"),
            force: switch("--force"),
            skip_binary_copy: switch("--skip-binary-copy"),
            binary: path("--binary"),
            watch: switch("--watch"),
            service_account_dir: absolute("--service-account-dir", DEFAULT_SERVICE_ACCOUNT_DIR)?,
            options,
        })
    }
}

/// `multinet install --help`.
pub fn help_text() -> String {
    let mut text = String::from(
        "multinet install: install multinet on this node and write its CNI config\n\n\
         Copies the binary into --bin-dir, waits for the cluster network's config in\n\
         --cni-conf-dir (and --readiness-indicator-file), then writes 00-multinet.conflist\n\
         (00-multinet.conf below CNI 1.0.0) and a kubeconfig from the pod's service account.\n\
         Files are replaced atomically and only when their bytes change. The config is never\n\
         removed on exit; --watch removes it only when the cluster network's config is gone.\n\n\
         Exit codes: 0 done, 1 I/O failure, 2 bad input, 3 cluster network not ready in time.\n\n\
         Flags:\n",
    );
    for f in FLAGS {
        let head = match f.value {
            Some(v) => format!("{} {v}", f.name),
            None => f.name.to_string(),
        };
        text.push_str(&format!("  {head:<32} {}\n", f.help));
    }
    text
}

// ---- Pure planning ----

/// Config files the runtime would consider, in its order: `.conf`/`.conflist`, not hidden, not ours.
pub fn candidate_files<I: IntoIterator<Item = String>>(names: I) -> Vec<String> {
    let mut files: Vec<String> = names
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .filter(|n| n.ends_with(".conf") || n.ends_with(".conflist"))
        .filter(|n| n != CONF_FILE && n != CONFLIST_FILE)
        .collect();
    files.sort();
    files
}

/// Whether a config (conf or conflist) is a meta plugin's: ours, or Multus's left behind.
pub fn is_meta_plugin(conf: &Value) -> bool {
    let is_meta = |p: &Value| {
        p.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| META_PLUGIN_TYPES.contains(&t))
    };
    match conf.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins.first().is_some_and(is_meta),
        None => is_meta(conf),
    }
}

/// What the generated config takes from the cluster network.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNetwork {
    pub path: PathBuf,
    pub cni_version: String,
    /// Capabilities declared `true` by any of its plugins.
    pub capabilities: BTreeMap<String, bool>,
}

/// Parses a config file's bytes; the error names the file.
pub fn parse_conf_file(path: &Path, bytes: &[u8]) -> Result<Value, MetaError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        bad_input(format!(
            "cluster network config {}: not valid JSON: {e}",
            path.display()
        ))
    })?;
    if !value.is_object() {
        return Err(bad_input(format!(
            "cluster network config {}: not a JSON object",
            path.display()
        )));
    }
    Ok(value)
}

/// The cluster network's cniVersion and capabilities.
pub fn cluster_network_from(path: &Path, conf: &Value) -> Result<ClusterNetwork, MetaError> {
    let what = || format!("cluster network config {}", path.display());
    let cni_version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_input(format!("{}: has no \"cniVersion\"", what())))?
        .to_string();
    let plugins: Vec<&Value> = match conf.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(_) => {
            return Err(bad_input(format!(
                "{}: \"plugins\" is not a non-empty list",
                what()
            )));
        }
        None if conf.get("type").and_then(Value::as_str).is_some() => vec![conf],
        None => {
            return Err(bad_input(format!(
                "{}: has neither \"type\" nor \"plugins\"",
                what()
            )));
        }
    };
    let mut capabilities = BTreeMap::new();
    for plugin in plugins {
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            for (name, on) in caps {
                if on.as_bool() == Some(true) {
                    capabilities.insert(name.clone(), true);
                }
            }
        }
    }
    Ok(ClusterNetwork {
        path: path.to_path_buf(),
        cni_version,
        capabilities,
    })
}

/// CNI 1.0.0 dropped single-plugin configs from the spec: from then on ours is a conflist.
pub fn wants_conflist(cni_version: &str) -> bool {
    cni_version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse::<u64>().ok())
        .is_some_and(|major| major >= 1)
}

/// A file to write into the CNI config dir.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedConfig {
    pub file_name: &'static str,
    pub bytes: Vec<u8>,
}

impl GeneratedConfig {
    /// The other spelling of our config, which must not stay beside this one.
    pub fn stale_file_name(&self) -> &'static str {
        if self.file_name == CONF_FILE {
            CONFLIST_FILE
        } else {
            CONF_FILE
        }
    }
}

fn path_value(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// Our config wrapping `cluster`, in a fixed key order so equal inputs give equal bytes.
pub fn plan_config(cluster: &ClusterNetwork, opts: &ConfigOptions) -> GeneratedConfig {
    let mut plugin = Map::new();
    plugin.insert("type".into(), json!("multinet"));
    if !cluster.capabilities.is_empty() {
        plugin.insert("capabilities".into(), json!(cluster.capabilities));
    }
    plugin.insert("clusterNetwork".into(), path_value(&cluster.path));
    if let Some(k) = &opts.kubeconfig {
        plugin.insert("kubeconfig".into(), path_value(k));
    }
    if let Some(d) = &opts.local_dir {
        plugin.insert("localDir".into(), path_value(d));
    }
    plugin.insert("cniDir".into(), path_value(&opts.cni_dir));
    plugin.insert("binDir".into(), path_value(&opts.bin_dir));
    if let Some(d) = &opts.nad_conf_dir {
        plugin.insert("confDir".into(), path_value(d));
    }
    if let Some(ns) = &opts.multus_namespace {
        plugin.insert("multusNamespace".into(), json!(ns));
    }
    if let Some(on) = opts.namespace_isolation {
        plugin.insert("namespaceIsolation".into(), json!(on));
    }
    if let Some(g) = &opts.global_namespaces {
        plugin.insert("globalNamespaces".into(), json!(g));
    }
    if let Some(f) = &opts.readiness_indicator_file {
        plugin.insert("readinessindicatorfile".into(), path_value(f));
    }
    if let Some(l) = &opts.log_level {
        plugin.insert("logLevel".into(), json!(l));
    }
    if let Some(f) = &opts.log_file {
        plugin.insert("logFile".into(), path_value(f));
    }
    let (file_name, doc) = if wants_conflist(&cluster.cni_version) {
        let doc = json!({
            "cniVersion": cluster.cni_version,
            "name": opts.name,
            "plugins": [Value::Object(plugin)],
        });
        (CONFLIST_FILE, doc)
    } else {
        let mut doc = Map::new();
        doc.insert("cniVersion".into(), json!(cluster.cni_version));
        doc.insert("name".into(), json!(opts.name));
        doc.extend(plugin);
        (CONF_FILE, Value::Object(doc))
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    GeneratedConfig { file_name, bytes }
}

/// What is at a delegate's name in the bin dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingPlugin {
    Missing,
    /// Already a link to our binary.
    OurLink,
    /// Some other plugin file.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    Create,
    Keep,
    Replace,
    /// Another plugin is there and `--force` was not given.
    Refuse,
}

pub fn plan_link(existing: ExistingPlugin, force: bool) -> LinkAction {
    match (existing, force) {
        (ExistingPlugin::Missing, _) => LinkAction::Create,
        (ExistingPlugin::OurLink, _) => LinkAction::Keep,
        (ExistingPlugin::Other, true) => LinkAction::Replace,
        (ExistingPlugin::Other, false) => LinkAction::Refuse,
    }
}

/// What `--watch` does after one look at the node.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchAction {
    Write(GeneratedConfig),
    Remove,
    Keep,
}

/// `readiness`: `None` when no readiness file is configured, else whether it exists.
pub fn watch_action(
    cluster: Option<&ClusterNetwork>,
    readiness: Option<bool>,
    opts: &ConfigOptions,
) -> WatchAction {
    match (cluster, readiness) {
        (Some(c), None | Some(true)) => WatchAction::Write(plan_config(c, opts)),
        // Not ready yet: never write before the cluster network is (multi-net spec), but a
        // config already there stays; ADD waits for the readiness file itself.
        (Some(_), Some(false)) => WatchAction::Keep,
        // The cluster network is gone: our config would only fail every ADD.
        (None, None | Some(false)) => WatchAction::Remove,
        (None, Some(true)) => WatchAction::Keep,
    }
}

/// `https://host:port`, an IPv6 host in brackets.
pub fn server_url(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// A kubeconfig with the service account's CA and token embedded: the file lives on the host,
/// where the pod's token path does not exist. `--watch` rewrites it when the token rotates.
pub fn kubeconfig_yaml(server: &str, ca_pem: &[u8], token: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": server,
            "certificate-authority-data": BASE64.encode(ca_pem),
        }}],
        "users": [{"name": "multinet", "user": {"token": token.trim()}}],
        "contexts": [{"name": "multinet", "context": {"cluster": "local", "user": "multinet"}}],
        "current-context": "multinet",
    });
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!(
        "# Written by multinet install from its service account; rewritten when the token rotates.\n{body}"
    )
}

// ---- I/O ----

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> MetaError {
    MetaError::Io(format!("{what}: {e}"))
}

fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir.display(), e))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
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

/// Replaces `path` with `bytes` (temp file in the same directory, fsync, rename, fsync of the
/// directory). Returns false, touching nothing, when the file already holds exactly these bytes.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, MetaError> {
    if same_content(path, bytes, mode) {
        return Ok(false);
    }
    let temp = temp_path(path);
    let _ = fs::remove_file(&temp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            // The umask may have narrowed the mode given at creation.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_err(path.display(), e));
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
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
    let temp = temp_path(&path);
    let _ = fs::remove_file(&temp);
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
    let read = |path: &Path| -> Result<Option<Value>, MetaError> {
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
        if is_meta_plugin(&conf) {
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

    fn args(list: &[&str]) -> InstallArgs {
        InstallArgs::parse(list).unwrap()
    }

    fn cluster(version: &str, caps: &[&str]) -> ClusterNetwork {
        ClusterNetwork {
            path: "/etc/cni/net.d/10-flannel.conflist".into(),
            cni_version: version.into(),
            capabilities: caps.iter().map(|c| (c.to_string(), true)).collect(),
        }
    }

    fn generated_json(config: &GeneratedConfig) -> Value {
        serde_json::from_slice(&config.bytes).unwrap()
    }

    #[test]
    fn cluster_network_is_the_first_conf_or_conflist_that_is_not_ours() {
        let names = [
            "99-loopback.conf",
            "10-flannel.conflist",
            "00-multinet.conflist",
            "00-multinet.conf",
            ".10-calico.conflist.123.tmp",
            ".05-hidden.conf",
            "05-calico.conflist.bak",
            "multinet.d",
            "20-bridge.json",
            "07-cilium.conf",
        ]
        .map(String::from);
        assert_eq!(
            candidate_files(names),
            vec!["07-cilium.conf", "10-flannel.conflist", "99-loopback.conf"]
        );
    }

    #[test]
    fn meta_plugin_configs_are_recognised_in_both_forms() {
        assert!(is_meta_plugin(&json!({"type": "multus"})));
        assert!(is_meta_plugin(
            &json!({"plugins": [{"type": "multus-shim"}, {"type": "portmap"}]})
        ));
        assert!(is_meta_plugin(&json!({"plugins": [{"type": "multinet"}]})));
        assert!(!is_meta_plugin(&json!({"plugins": [{"type": "flannel"}]})));
        assert!(!is_meta_plugin(&json!({"type": "bridge"})));
    }

    #[test]
    fn capabilities_of_every_plugin_are_merged_and_false_ones_dropped() {
        let conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
            {"type": "calico", "capabilities": {"ips": true}},
            {"type": "portmap", "capabilities": {"portMappings": true, "ips": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": false}},
        ]});
        let c = cluster_network_from(Path::new("/x/10-calico.conflist"), &conf).unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(
            c.capabilities.keys().collect::<Vec<_>>(),
            vec!["ips", "portMappings"]
        );
        let single =
            json!({"cniVersion": "0.3.1", "type": "bridge", "capabilities": {"mac": true}});
        let c = cluster_network_from(Path::new("/x/10-bridge.conf"), &single).unwrap();
        assert_eq!(c.capabilities.keys().collect::<Vec<_>>(), vec!["mac"]);
    }

    #[test]
    fn unusable_cluster_configs_are_errors_naming_the_file() {
        let p = Path::new("/x/10-bad.conf");
        let err = parse_conf_file(p, b"{\"cniVersion\":").unwrap_err();
        assert!(err.to_string().contains("/x/10-bad.conf"), "{err}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = parse_conf_file(p, b"[1]").unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let err = cluster_network_from(p, &json!({"type": "bridge"})).unwrap_err();
        assert!(err.to_string().contains("\"cniVersion\""), "{err}");
        let err =
            cluster_network_from(p, &json!({"cniVersion": "1.0.0", "plugins": []})).unwrap_err();
        assert!(err.to_string().contains("\"plugins\""), "{err}");
        let err = cluster_network_from(p, &json!({"cniVersion": "1.0.0"})).unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
        assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
    }

    #[test]
    fn conflist_from_cni_1_0_0_on_conf_before() {
        for (version, conflist) in [
            ("0.3.1", false),
            ("0.4.0", false),
            ("1.0.0", true),
            ("1.1.0", true),
            ("2.0.0", true),
            ("", false),
            ("x", false),
        ] {
            assert_eq!(wants_conflist(version), conflist, "{version}");
        }
    }

    #[test]
    fn conflist_wraps_one_multinet_plugin_with_the_cluster_networks_version_and_capabilities() {
        let a = args(&["--kubeconfig", "/k/kc"]);
        let config = plan_config(&cluster("1.1.0", &["portMappings"]), &a.options);
        assert_eq!(config.file_name, CONFLIST_FILE);
        assert_eq!(config.stale_file_name(), CONF_FILE);
        assert_eq!(
            generated_json(&config),
            json!({"cniVersion": "1.1.0", "name": "multinet-cni-network", "plugins": [{
                "type": "multinet",
                "capabilities": {"portMappings": true},
                "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
                "kubeconfig": "/k/kc",
                "cniDir": "/var/lib/cni/multinet",
                "binDir": "/opt/cni/bin",
            }]})
        );
        assert!(config.bytes.ends_with(b"}\n"));
    }

    #[test]
    fn conf_below_1_0_0_carries_every_option_flag_under_its_config_key() {
        let a = args(&[
            "--name=net",
            "--bin-dir",
            "/b",
            "--cni-dir",
            "/c",
            "--nad-conf-dir",
            "/etc/cni/multus/net.d",
            "--multus-namespace",
            "multinet",
            "--namespace-isolation",
            "--global-namespaces",
            "default,shared",
            "--readiness-indicator-file",
            "/run/flannel/subnet.env",
            "--log-level",
            "debug",
            "--log-file",
            "/var/log/multinet.log",
        ]);
        let config = plan_config(&cluster("0.4.0", &[]), &a.options);
        assert_eq!(config.file_name, CONF_FILE);
        let doc = generated_json(&config);
        assert_eq!(
            doc,
            json!({
                "cniVersion": "0.4.0", "name": "net", "type": "multinet",
                "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
                "kubeconfig": DEFAULT_KUBECONFIG,
                "cniDir": "/c", "binDir": "/b",
                "confDir": "/etc/cni/multus/net.d",
                "multusNamespace": "multinet",
                "namespaceIsolation": true,
                "globalNamespaces": "default,shared",
                "readinessindicatorfile": "/run/flannel/subnet.env",
                "logLevel": "debug",
                "logFile": "/var/log/multinet.log",
            })
        );
        // The plugin reads every key it was given.
        let (conf, unknown) = crate::config::MultinetConf::parse(&config.bytes).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(conf.namespace_isolation);
        assert_eq!(conf.global_namespace_list(), vec!["default", "shared"]);
        assert_eq!(conf.multus_namespace, "multinet");
        assert_eq!(conf.conf_dir, PathBuf::from("/etc/cni/multus/net.d"));
        assert_eq!(
            conf.readiness_indicator_file,
            Some(PathBuf::from("/run/flannel/subnet.env"))
        );
    }

    #[test]
    fn local_dir_replaces_the_kubeconfig() {
        let a = args(&["--local-dir", "/l", "--namespace-isolation=false"]);
        let doc = generated_json(&plan_config(&cluster("0.3.1", &[]), &a.options));
        assert_eq!(doc["localDir"], "/l");
        assert!(doc.get("kubeconfig").is_none(), "{doc}");
        assert_eq!(doc["namespaceIsolation"], false);
    }

    #[test]
    fn equal_inputs_give_equal_bytes() {
        let a = args(&[]);
        let c = cluster("1.0.0", &["portMappings", "bandwidth", "ips"]);
        assert_eq!(plan_config(&c, &a.options), plan_config(&c, &a.options));
        let other = cluster("1.0.0", &["portMappings"]);
        assert_ne!(
            plan_config(&c, &a.options).bytes,
            plan_config(&other, &a.options).bytes
        );
    }

    #[test]
    fn defaults_and_both_flag_spellings() {
        let a = args(&[]);
        assert_eq!(a.bin_dir, PathBuf::from(DEFAULT_BIN_DIR));
        assert_eq!(a.cni_conf_dir, PathBuf::from(DEFAULT_CNI_CONF_DIR));
        assert_eq!(a.wait, Duration::from_secs(DEFAULT_WAIT_SECONDS));
        assert!(!a.watch && !a.own_delegates && !a.force && !a.skip_binary_copy);
        assert_eq!(
            a.options.kubeconfig,
            Some(PathBuf::from(DEFAULT_KUBECONFIG))
        );
        assert_eq!(a.options.namespace_isolation, None);

        let a = args(&[
            "--watch",
            "--own-delegates",
            "--force=true",
            "--wait-seconds=7",
            "--poll-millis",
            "20",
            "--cluster-network",
            "10-flannel.conflist",
            "--cni-conf-dir=/etc/cni/net.d",
        ]);
        assert!(a.watch && a.own_delegates && a.force);
        assert_eq!(a.wait, Duration::from_secs(7));
        assert_eq!(a.poll, Duration::from_millis(20));
        // A bare file name is in the config dir.
        assert_eq!(
            a.cluster_network,
            Some(PathBuf::from("/etc/cni/net.d/10-flannel.conflist"))
        );
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        for (list, needle) in [
            (&["--frobnicate"][..], "--frobnicate"),
            (&["--bin-dir"][..], "--bin-dir needs a value"),
            (&["--wait-seconds", "soon"][..], "--wait-seconds"),
            (&["--poll-millis=0"][..], "--poll-millis"),
            (&["--watch=maybe"][..], "--watch"),
            (&["--log-level", "loud"][..], "--log-level"),
            (&["--name="][..], "--name"),
        ] {
            let err = InstallArgs::parse(list).unwrap_err();
            assert!(err.to_string().contains(needle), "{list:?}: {err}");
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let help = help_text();
        for f in FLAGS {
            assert!(help.contains(f.name), "{}", f.name);
        }
    }

    #[test]
    fn links_are_created_kept_or_refused_unless_forced() {
        use ExistingPlugin::*;
        assert_eq!(plan_link(Missing, false), LinkAction::Create);
        assert_eq!(plan_link(OurLink, false), LinkAction::Keep);
        assert_eq!(plan_link(OurLink, true), LinkAction::Keep);
        assert_eq!(plan_link(Other, false), LinkAction::Refuse);
        assert_eq!(plan_link(Other, true), LinkAction::Replace);
    }

    #[test]
    fn watch_writes_only_when_ready_and_removes_only_when_the_cluster_network_is_gone() {
        let opts = args(&[]).options;
        let c = cluster("1.0.0", &[]);
        assert_eq!(
            watch_action(Some(&c), None, &opts),
            WatchAction::Write(plan_config(&c, &opts))
        );
        assert!(matches!(
            watch_action(Some(&c), Some(true), &opts),
            WatchAction::Write(_)
        ));
        assert_eq!(
            watch_action(Some(&c), Some(false), &opts),
            WatchAction::Keep
        );
        assert_eq!(watch_action(None, None, &opts), WatchAction::Remove);
        assert_eq!(watch_action(None, Some(false), &opts), WatchAction::Remove);
        assert_eq!(watch_action(None, Some(true), &opts), WatchAction::Keep);
    }

    #[test]
    fn server_url_brackets_ipv6() {
        assert_eq!(server_url("10.96.0.1", "443"), "https://10.96.0.1:443");
        assert_eq!(server_url("fd00::1", "443"), "https://[fd00::1]:443");
    }

    #[test]
    fn kubeconfig_is_read_by_the_kubernetes_client() {
        let text = kubeconfig_yaml("https://10.96.0.1:443", b"PEM", "tok\n");
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("multinet"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(BASE64.encode(b"PEM").as_str())
        );
        assert!(kc.auth_infos[0].auth_info.as_ref().unwrap().token.is_some());
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["users"][0]["user"]["token"], "tok", "trimmed");
    }

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
