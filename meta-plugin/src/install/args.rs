//! The command line of `multinet install`: one table of flags that both the parser and `--help`
//! read, parsed into [`InstallArgs`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    DEFAULT_BIN_DIR, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_DIR, DEFAULT_KUBECONFIG, DEFAULT_NAME,
    DEFAULT_POLL_MILLIS, DEFAULT_SERVICE_ACCOUNT_DIR, DEFAULT_WAIT_SECONDS,
};
use crate::error::MetaError;

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
    flag(
        "--daemon-socket",
        Some("PATH"),
        "thick mode: the socket of `multinet daemon` on this node; written as daemonSocket",
    ),
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
            daemon_socket: path("--daemon-socket"),
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
        for f in FLAGS {
            assert!(help.contains(f.name), "{}", f.name);
        }
    }
}
