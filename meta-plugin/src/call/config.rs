//! The multinet network configuration read from stdin: Multus's keys, so an existing Multus config
//! works unchanged, plus `localDir` for nodes without a cluster.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::MetaError;
use multinet_cni::DelegateConf;

/// Keys multinet understands. Anything else is logged as a warning and ignored, never a failure.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "cniVersion",
    "cniVersions",
    "type",
    "clusterNetwork",
    "defaultNetworks",
    "delegates",
    "multusNamespace",
    "systemNamespaces",
    "namespaceIsolation",
    "globalNamespaces",
    "readinessindicatorfile",
    "confDir",
    "cniDir",
    "binDir",
    "kubeconfig",
    "logFile",
    "logLevel",
    "logToStderr",
    "logOptions",
    "capabilities",
    "runtimeConfig",
    "retryDeleteOnError",
    "auxiliaryCNIChainName",
    "prevResult",
    "args",
    "localDir",
    "apiTimeoutSeconds",
    "deviceInfoDir",
    "devicePluginInfoDir",
    "parallelNetworks",
    "daemonSocket",
    "maxNetworksPerPod",
    "maxDelegateConfigBytes",
    "strictCapabilities",
    // The runtime's GC argument (CNI 1.1), read by GC itself.
    "cni.dev/valid-attachments",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultinetConf {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cni_version: String,
    /// A NAD in `multusNamespace`, a network name in `confDir`, a directory or a file path.
    #[serde(default)]
    pub cluster_network: Option<String>,
    #[serde(default)]
    pub default_networks: Vec<String>,
    /// Inline CNI configs; element 0 is the cluster network when `clusterNetwork` is absent.
    #[serde(default)]
    pub delegates: Vec<DelegateConf>,
    #[serde(default = "default_multinet_namespace")]
    pub multus_namespace: String,
    #[serde(default = "default_system_namespaces")]
    pub system_namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_isolation: bool,
    /// A comma-separated string, as Multus spells it.
    #[serde(default = "default_global_namespaces")]
    pub global_namespaces: String,
    #[serde(default, rename = "readinessindicatorfile")]
    pub readiness_indicator_file: Option<PathBuf>,
    #[serde(default = "default_conf_dir")]
    pub conf_dir: PathBuf,
    #[serde(default = "default_cni_dir")]
    pub cni_dir: PathBuf,
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// A folder holding `pods/` and `nads/` YAML, used when there is no Kubernetes API.
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    #[serde(default)]
    pub log_level: Option<String>,
    /// Multus's key: log to stderr too (beside `logFile`, or alone). Multus's default is true.
    #[serde(default)]
    pub log_to_stderr: Option<bool>,
    /// Rotation of `logFile`, with Multus's (lumberjack's) keys.
    #[serde(default)]
    pub log_options: Option<LogOptions>,
    /// Multus's auxiliary chain: plugins from `<folder of clusterNetwork>/<name>/` run for
    /// every pod after its networks. Not run by multinet; a call that sees it says so in the log.
    #[serde(default, rename = "auxiliaryCNIChainName")]
    pub auxiliary_cni_chain_name: Option<String>,
    /// A pod's request (mac, ips, bandwidth, portMappings, infinibandGUID) that no plugin of
    /// the network declares the capability for fails the ADD (code 7) instead of being ignored
    /// with a warning event, which is what Multus does and multinet's default.
    #[serde(default)]
    pub strict_capabilities: bool,
    #[serde(default)]
    pub capabilities: Map<String, Value>,
    #[serde(default)]
    pub runtime_config: Map<String, Value>,
    #[serde(default)]
    pub retry_delete_on_error: bool,
    /// Total time budget for Kubernetes API calls of one CNI request.
    #[serde(default = "default_api_timeout")]
    pub api_timeout_seconds: u64,
    /// Where the per-attachment device-info files (runtimeConfig `CNIDeviceInfoFile`) go.
    #[serde(default = "default_device_info_dir")]
    pub device_info_dir: PathBuf,
    /// Where device plugins leave `<resource>-<deviceID>-device.json` for the CNI to copy.
    #[serde(default = "default_device_plugin_info_dir")]
    pub device_plugin_info_dir: PathBuf,
    /// Opt-in: secondary networks whose delegates are independent of one another are attached
    /// (and deleted) at the same time. Off by default: the multi-net spec (section 7.3) asks for
    /// one attachment operation at a time.
    #[serde(default)]
    pub parallel_networks: bool,
    /// Thick mode: the node daemon's socket. The binary hands each call to the daemon (warm API
    /// connection) and runs it itself only when nothing listens there.
    #[serde(default)]
    pub daemon_socket: Option<PathBuf>,
    /// Most networks one pod may have, cluster network included: a pod annotation is someone
    /// else's input, and each network costs the node a delegate run and state.
    #[serde(default = "default_max_networks_per_pod")]
    pub max_networks_per_pod: usize,
    /// Largest delegate config (a NAD's spec.config, or a config file) multinet takes.
    #[serde(default = "default_max_delegate_config_bytes")]
    pub max_delegate_config_bytes: usize,
}

/// `logOptions`: when and how `logFile` is rotated, as lumberjack (which Multus uses) does.
/// Zero or absent means "no limit" for each number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// Megabytes a log file may reach before it is rotated; lumberjack's default is 100.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// Days a rotated file is kept.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Rotated files kept.
    #[serde(default)]
    pub max_backups: Option<u64>,
    /// Rotated files are gzipped.
    #[serde(default)]
    pub compress: bool,
}

/// The default of `maxNetworksPerPod`.
pub const DEFAULT_MAX_NETWORKS_PER_POD: usize = 32;
/// The default of `maxDelegateConfigBytes`: 256 KiB.
pub const DEFAULT_MAX_DELEGATE_CONFIG_BYTES: usize = 256 << 10;

fn default_max_networks_per_pod() -> usize {
    DEFAULT_MAX_NETWORKS_PER_POD
}
fn default_max_delegate_config_bytes() -> usize {
    DEFAULT_MAX_DELEGATE_CONFIG_BYTES
}

fn default_multinet_namespace() -> String {
    "kube-system".into()
}
fn default_system_namespaces() -> Vec<String> {
    vec!["kube-system".into()]
}
fn default_global_namespaces() -> String {
    "default".into()
}
fn default_conf_dir() -> PathBuf {
    "/etc/cni/multus/net.d".into()
}
/// `cniDir` when the config gives none: where a node's attachment records are.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multinet";

fn default_cni_dir() -> PathBuf {
    DEFAULT_CNI_DIR.into()
}
fn default_bin_dir() -> PathBuf {
    "/opt/cni/bin".into()
}
fn default_api_timeout() -> u64 {
    30
}
/// Where Multus puts the per-attachment device-info files.
pub const DEFAULT_DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";
/// Where device plugins write theirs.
pub const DEFAULT_DEVICE_PLUGIN_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

fn default_device_info_dir() -> PathBuf {
    DEFAULT_DEVICE_INFO_DIR.into()
}
fn default_device_plugin_info_dir() -> PathBuf {
    DEFAULT_DEVICE_PLUGIN_INFO_DIR.into()
}

impl MultinetConf {
    /// Parses the config; returns it with the keys it did not know, for the caller to log.
    pub fn parse(bytes: &[u8]) -> Result<(MultinetConf, Vec<String>), MetaError> {
        let raw: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| MetaError::Decode(format!("multinet config: {e}")))?;
        let unknown = raw
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        let raw = Value::Object(raw);
        let conf = MultinetConf::deserialize(&raw).map_err(|e| {
            // serde does not say which key is wrong; every field has a default, so the first
            // key that fails on its own is the one.
            let bad_key = raw.as_object().into_iter().flatten().find(|(k, v)| {
                let alone = Value::Object(Map::from_iter([((*k).clone(), (*v).clone())]));
                MultinetConf::deserialize(&alone).is_err()
            });
            match bad_key {
                Some((k, _)) => MetaError::InvalidConfig(format!("multinet config: {k:?}: {e}")),
                None => MetaError::InvalidConfig(format!("multinet config: {e}")),
            }
        })?;
        if conf.cluster_network.is_none() && conf.delegates.is_empty() {
            return Err(MetaError::InvalidConfig(
                "multinet config: one of \"clusterNetwork\" or \"delegates\" is required".into(),
            ));
        }
        Ok((conf, unknown))
    }

    /// Settings present in the config that this call will not act on, as Multus does not
    /// either (it says nothing), each as a sentence for the log.
    pub fn ignored_settings(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.cluster_network.is_some() && !self.delegates.is_empty() {
            notes.push(
                "\"delegates\" is not used: \"clusterNetwork\" is set and wins, as in Multus"
                    .to_string(),
            );
        }
        if self.cluster_network.is_none() && !self.default_networks.is_empty() {
            notes.push(
                "\"defaultNetworks\" is not used: it applies only with \"clusterNetwork\", as in \
                 Multus (with \"delegates\", every entry after the first is a network of every pod)"
                    .to_string(),
            );
        }
        notes
    }

    /// Settings Multus acts on that multinet does not: logged as errors, so they show at the
    /// default log level.
    pub fn unsupported_settings(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(chain) = &self.auxiliary_cni_chain_name {
            notes.push(format!(
                "\"auxiliaryCNIChainName\" ({chain:?}) is not supported: the plugins in the \
                 {chain:?} folder beside the cluster network's config are NOT run; add them to the \
                 cluster network's conflist instead"
            ));
        }
        notes
    }

    pub fn global_namespace_list(&self) -> Vec<&str> {
        self.global_namespaces
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn is_system_namespace(&self, ns: &str) -> bool {
        self.system_namespaces.iter().any(|s| s == ns)
    }
}

/// The plugin config multinet receives from a config file the runtime reads (`conf`): a single
/// conf as it is, or the first plugin of a conflist with the list's `name` and `cniVersion`, as
/// libcni builds it. `None` when the file does not run multinet first.
pub fn multinet_stdin(conf: &DelegateConf) -> Option<Vec<u8>> {
    let value = conf.as_value();
    let plugin = match value.get("plugins") {
        Some(Value::Array(list)) => {
            let mut first = list.first()?.clone();
            let obj = first.as_object_mut()?;
            for key in ["name", "cniVersion"] {
                if let Some(v) = value.get(key) {
                    obj.insert(key.to_string(), v.clone());
                }
            }
            first
        }
        _ => value.clone(),
    };
    let is_multinet = plugin.get("type").and_then(Value::as_str) == Some("multinet");
    is_multinet.then(|| plugin.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_config_parses_with_defaults_and_reports_unknown_keys() {
        let (conf, unknown) = MultinetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",
                "clusterNetwork":"cbr0","globalNamespaces":"default, shared","frobnicate":1}"#,
        )
        .unwrap();
        assert_eq!(conf.cluster_network.as_deref(), Some("cbr0"));
        assert_eq!(conf.multus_namespace, "kube-system");
        assert_eq!(conf.cni_dir, PathBuf::from("/var/lib/cni/multinet"));
        assert_eq!(
            conf.device_info_dir,
            PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/cni")
        );
        assert_eq!(
            conf.device_plugin_info_dir,
            PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/dp")
        );
        assert_eq!(conf.global_namespace_list(), vec!["default", "shared"]);
        assert!(
            !conf.parallel_networks,
            "one attachment at a time (multi-net spec 7.3)"
        );
        assert!(conf.is_system_namespace("kube-system"));
        assert_eq!(unknown, vec!["frobnicate".to_string()]);
    }

    #[test]
    fn config_without_cluster_network_or_delegates_is_refused() {
        let err = MultinetConf::parse(br#"{"cniVersion":"1.0.0","name":"x","type":"multus"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("clusterNetwork"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let err = MultinetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"x","clusterNetwork":"c","namespaceIsolation":"yes"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"namespaceIsolation\""), "{err}");
    }

    #[test]
    fn bad_json_is_a_decode_error() {
        assert!(matches!(
            MultinetConf::parse(b"{nope"),
            Err(MetaError::Decode(_))
        ));
    }
}
