//! Pure planning for `multinet install`: which file is the cluster network, the config we write
//! around it, what a delegate link needs and what `--watch` does. No I/O: unit-tested alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use multinet_cni::{DelegateConf, PluginList};
use serde_json::{Map, Value, json};

use super::args::ConfigOptions;
use super::args::bad_input;
use crate::error::MetaError;

/// Our config as a single conf (cluster network below CNI 1.0.0).
pub const CONF_FILE: &str = "00-multinet.conf";
/// Our config as a conflist (cluster network at CNI 1.0.0 or later).
pub const CONFLIST_FILE: &str = "00-multinet.conflist";

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

/// What the generated config takes from the cluster network.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNetwork {
    pub path: PathBuf,
    pub cni_version: String,
    /// Capabilities declared `true` by any of its plugins.
    pub capabilities: BTreeMap<String, bool>,
}

/// Parses a config file's bytes; the error names the file.
pub fn parse_conf_file(path: &Path, bytes: &[u8]) -> Result<DelegateConf, MetaError> {
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
    Ok(DelegateConf::new(value))
}

/// The cluster network's cniVersion and capabilities.
pub fn cluster_network_from(path: &Path, conf: &DelegateConf) -> Result<ClusterNetwork, MetaError> {
    let what = || format!("cluster network config {}", path.display());
    let cni_version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_input(format!("{}: has no \"cniVersion\"", what())))?
        .to_string();
    match conf.shape() {
        PluginList::List(list) if !list.is_empty() => {}
        PluginList::List(_) | PluginList::NotAList => {
            return Err(bad_input(format!(
                "{}: \"plugins\" is not a non-empty list",
                what()
            )));
        }
        PluginList::Single if conf.get("type").and_then(Value::as_str).is_some() => {}
        PluginList::Single => {
            return Err(bad_input(format!(
                "{}: has neither \"type\" nor \"plugins\"",
                what()
            )));
        }
    }
    let mut capabilities = BTreeMap::new();
    for (_, plugin) in conf.plugins() {
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
    if let Some(s) = &opts.daemon_socket {
        plugin.insert("daemonSocket".into(), path_value(s));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{DEFAULT_KUBECONFIG, EXIT_BAD_INPUT, InstallArgs, exit_code};

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
        // The rule the plugin skips them by when it looks for the cluster network, too.
        let is_meta_plugin = |v: Value| {
            let path = Path::new("/etc/cni/net.d/x.conflist");
            let conf = parse_conf_file(path, v.to_string().as_bytes()).unwrap();
            multinet_cni::trust::runs_a_meta_plugin(&conf)
        };
        assert!(is_meta_plugin(json!({"type": "multus"})));
        assert!(is_meta_plugin(
            json!({"plugins": [{"type": "multus-shim"}, {"type": "portmap"}]})
        ));
        assert!(is_meta_plugin(json!({"plugins": [{"type": "multinet"}]})));
        assert!(is_meta_plugin(
            json!({"plugins": [{"type": "bridge", "ipam": {"type": "multinet"}}]})
        ));
        assert!(!is_meta_plugin(json!({"plugins": [{"type": "flannel"}]})));
        assert!(!is_meta_plugin(json!({"type": "bridge"})));
    }

    #[test]
    fn capabilities_of_every_plugin_are_merged_and_false_ones_dropped() {
        let conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
            {"type": "calico", "capabilities": {"ips": true}},
            {"type": "portmap", "capabilities": {"portMappings": true, "ips": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": false}},
        ]});
        let c = cluster_network_from(Path::new("/x/10-calico.conflist"), &DelegateConf::new(conf))
            .unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(
            c.capabilities.keys().collect::<Vec<_>>(),
            vec!["ips", "portMappings"]
        );
        let single =
            json!({"cniVersion": "0.3.1", "type": "bridge", "capabilities": {"mac": true}});
        let c = cluster_network_from(Path::new("/x/10-bridge.conf"), &DelegateConf::new(single))
            .unwrap();
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
        let err =
            cluster_network_from(p, &DelegateConf::new(json!({"type": "bridge"}))).unwrap_err();
        assert!(err.to_string().contains("\"cniVersion\""), "{err}");
        let err = cluster_network_from(
            p,
            &DelegateConf::new(json!({"cniVersion": "1.0.0", "plugins": []})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"plugins\""), "{err}");
        let err = cluster_network_from(p, &DelegateConf::new(json!({"cniVersion": "1.0.0"})))
            .unwrap_err();
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
            "--daemon-socket",
            "/run/multinet/multinet.sock",
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
                "daemonSocket": "/run/multinet/multinet.sock",
            })
        );
        // The plugin reads every key it was given.
        let (conf, unknown) = crate::call::config::MultinetConf::parse(&config.bytes).unwrap();
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
}
