//! The command line of `multinet install`, declared once with clap (parser and `--help`), and
//! turned into [`InstallArgs`].

use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, CommandFactory, Parser};

use crate::error::MetaError;

pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_KUBECONFIG: &str = "/etc/cni/net.d/multinet.d/multinet.kubeconfig";
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multinet";
pub const DEFAULT_NAME: &str = "multinet-cni-network";
pub const DEFAULT_WAIT_SECONDS: u64 = 120;
pub const DEFAULT_POLL_MILLIS: u64 = 1000;

const LOG_LEVELS: &[&str] = &["debug", "verbose", "info", "warn", "error", "panic"];

/// A switch that also takes `=true|false` (and 1/0, yes/no).
fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("needs a non-empty value".into())
    } else {
        Ok(value.to_string())
    }
}

fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    non_empty(value).map(PathBuf::from)
}

fn whole_number(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

fn positive_number(value: &str) -> Result<u64, String> {
    match whole_number(value)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn log_level(value: &str) -> Result<String, String> {
    if LOG_LEVELS.contains(&value.to_ascii_lowercase().as_str()) {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not one of {}", LOG_LEVELS.join(", ")))
    }
}

/// install multinet on this node and write its CNI config
///
/// Copies the binary into --bin-dir, waits for the cluster network's config in --cni-conf-dir
/// (and --readiness-indicator-file), then writes 00-multinet.conflist (00-multinet.conf below
/// CNI 1.0.0) and a kubeconfig from the pod's service account. Files are replaced atomically and
/// only when their bytes change. The config is never removed on exit; --watch removes it only
/// when the cluster network's config is gone.
#[derive(Debug, Parser)]
#[command(
    name = "multinet install",
    // As before clap: a flag given twice takes its last value.
    args_override_self = true,
    after_help = "Exit codes: 0 done, 1 I/O failure, 2 bad input, 3 cluster network not ready in time."
)]
struct Flags {
    /// CNI bin dir the binary is copied into; written as binDir
    #[arg(long, value_name = "DIR", value_parser = non_empty_path, default_value = DEFAULT_BIN_DIR)]
    bin_dir: PathBuf,
    /// runtime's CNI config dir
    #[arg(long, value_name = "DIR", value_parser = non_empty_path, default_value = DEFAULT_CNI_CONF_DIR)]
    cni_conf_dir: PathBuf,
    /// the cluster network's config file (default: the alphabetically first .conf/.conflist in
    /// --cni-conf-dir that is not a meta plugin's)
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    cluster_network: Option<PathBuf>,
    /// how long to wait for the cluster network (and readiness file) before failing
    #[arg(long, value_name = "N", value_parser = whole_number, default_value_t = DEFAULT_WAIT_SECONDS)]
    wait_seconds: u64,
    /// how often to look while waiting or watching
    #[arg(long, value_name = "N", value_parser = positive_number, default_value_t = DEFAULT_POLL_MILLIS)]
    poll_millis: u64,
    /// wait for this file before writing the config; written as readinessindicatorfile
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    readiness_indicator_file: Option<PathBuf>,
    /// link macvlan, ipvlan, sriov, host-local and static in --bin-dir to multinet
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    own_delegates: bool,
    /// with --own-delegates: replace existing plugin files of those names
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    force: bool,
    /// do not copy the binary (config and kubeconfig only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    skip_binary_copy: bool,
    /// the binary to install (default: this executable)
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    binary: Option<PathBuf>,
    /// keep running: regenerate the config when the cluster network's file changes, appears or
    /// goes away; refresh the kubeconfig when the token rotates
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set, default_value = "false")]
    watch: bool,
    /// network name
    #[arg(long, value_name = "NAME", value_parser = non_empty, default_value = DEFAULT_NAME)]
    name: String,
    /// where the kubeconfig is written
    #[arg(long, value_name = "FILE", value_parser = non_empty_path, default_value = DEFAULT_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// the pod's service account (token, ca.crt)
    #[arg(long, value_name = "DIR", value_parser = non_empty_path, default_value = DEFAULT_SERVICE_ACCOUNT_DIR)]
    service_account_dir: PathBuf,
    /// use a local folder of pods/ and nads/ instead of the API (no kubeconfig is written);
    /// written as localDir
    #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
    local_dir: Option<PathBuf>,
    /// attachment store; written as cniDir
    #[arg(long, value_name = "DIR", value_parser = non_empty_path, default_value = DEFAULT_CNI_DIR)]
    cni_dir: PathBuf,
    /// where a NAD with an empty spec finds its config; written as confDir
    #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
    nad_conf_dir: Option<PathBuf>,
    /// written as multusNamespace
    #[arg(long, value_name = "NS", value_parser = non_empty)]
    multus_namespace: Option<String>,
    /// written as namespaceIsolation (also --namespace-isolation=true|false)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_bool)]
    namespace_isolation: Option<bool>,
    /// comma-separated; written as globalNamespaces
    #[arg(long, value_name = "LIST", value_parser = non_empty)]
    global_namespaces: Option<String>,
    /// debug, verbose, info, warn, error or panic; written as logLevel
    #[arg(long, value_name = "LEVEL", value_parser = log_level)]
    log_level: Option<String>,
    /// written as logFile
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    log_file: Option<PathBuf>,
    /// thick mode: the socket of `multinet daemon` on this node; written as daemonSocket
    #[arg(long, value_name = "PATH", value_parser = non_empty_path)]
    daemon_socket: Option<PathBuf>,
}

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
    pub daemon_socket: Option<PathBuf>,
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

pub(super) fn bad_input(msg: impl Into<String>) -> MetaError {
    MetaError::InvalidConfig(msg.into())
}

/// A parse error as one line that names the flag (clap's own text otherwise has a usage block).
fn flag_error(e: &clap::Error) -> MetaError {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => a.clone(),
        _ => String::new(),
    };
    // "--bin-dir <DIR>" or "--watch[=<WATCH>]"
    let end = arg.find([' ', '[']).unwrap_or(arg.len());
    let (flag, what) = (&arg[..end], arg[end..].trim());
    let msg = match e.kind() {
        ErrorKind::UnknownArgument => {
            format!("unknown argument {arg:?} (see multinet install --help)")
        }
        ErrorKind::InvalidValue if what.is_empty() || what.starts_with('[') => {
            format!("{flag}: needs no value")
        }
        ErrorKind::InvalidValue => {
            format!("{flag} needs a value ({})", what.trim_matches(['<', '>']))
        }
        ErrorKind::ValueValidation => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let why = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("{value:?} is not valid"));
            format!("{flag}: {why}")
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
    };
    bad_input(msg)
}

/// The name of every flag, as `--help` shows it.
pub fn flag_names() -> Vec<String> {
    Flags::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .filter(|l| l != "--help")
        .collect()
}

/// `multinet install --help`.
pub fn help_text() -> String {
    Flags::command().render_long_help().to_string()
}

impl InstallArgs {
    /// Parses the arguments after `install`. Accepts `--flag value` and `--flag=value`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<InstallArgs, MetaError> {
        let flags = Flags::try_parse_from(
            std::iter::once("multinet install").chain(args.iter().map(AsRef::as_ref)),
        )
        .map_err(|e| flag_error(&e))?;
        let absolute = |name: &str, p: PathBuf| -> Result<PathBuf, MetaError> {
            std::path::absolute(&p).map_err(|e| bad_input(format!("{name}: {}: {e}", p.display())))
        };
        let bin_dir = absolute("--bin-dir", flags.bin_dir)?;
        let cni_conf_dir = absolute("--cni-conf-dir", flags.cni_conf_dir)?;
        // A bare file name is in the config dir.
        let cluster_network = flags.cluster_network.map(|p| cni_conf_dir.join(p));
        let local_dir = flags
            .local_dir
            .map(|p| absolute("--local-dir", p))
            .transpose()?;
        let kubeconfig = absolute("--kubeconfig", flags.kubeconfig)?;
        let options = ConfigOptions {
            name: flags.name,
            // A local folder replaces the API: the plugin prefers a kubeconfig when it has one.
            kubeconfig: local_dir.is_none().then_some(kubeconfig),
            local_dir,
            cni_dir: absolute("--cni-dir", flags.cni_dir)?,
            bin_dir: bin_dir.clone(),
            nad_conf_dir: flags.nad_conf_dir,
            multus_namespace: flags.multus_namespace,
            namespace_isolation: flags.namespace_isolation,
            global_namespaces: flags.global_namespaces,
            readiness_indicator_file: flags.readiness_indicator_file,
            log_level: flags.log_level,
            log_file: flags.log_file,
            daemon_socket: flags.daemon_socket,
        };
        Ok(InstallArgs {
            bin_dir,
            cni_conf_dir,
            cluster_network,
            wait: Duration::from_secs(flags.wait_seconds),
            poll: Duration::from_millis(flags.poll_millis),
            own_delegates: flags.own_delegates,
            force: flags.force,
            skip_binary_copy: flags.skip_binary_copy,
            binary: flags.binary,
            watch: flags.watch,
            service_account_dir: absolute("--service-account-dir", flags.service_account_dir)?,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{EXIT_BAD_INPUT, exit_code};

    fn args(list: &[&str]) -> InstallArgs {
        InstallArgs::parse(list).unwrap()
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
        for name in flag_names() {
            assert!(help.contains(&name), "{name}");
        }
        assert!(flag_names().len() >= 23, "{:?}", flag_names());
    }
}
