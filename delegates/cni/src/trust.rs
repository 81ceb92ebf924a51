//! What a NAD author may put in a delegate config: the one rule that the plugin (before it runs
//! anything) and the webhook (before the NAD is stored) both apply. A NAD author chooses delegate
//! types installed on the node and their options; never a meta-plugin as a delegate (multinet
//! would run itself, or Multus, as root with a config the NAD author wrote), and never the node
//! paths multinet itself uses.

use serde_json::Value;

use crate::delegate::{DEVICE_INFO_FILE_CAPABILITY, DelegateConf, PluginConf};

/// Plugin types that are meta-plugins: never a delegate of multinet.
pub const META_PLUGIN_TYPES: &[&str] = &["multinet", "multus", "multus-shim"];

/// Keys of multinet's own config that name node paths or other networks. In a NAD they could
/// only steer a meta-plugin, which is never a delegate: their presence is refused outright.
pub const NODE_PATH_KEYS: &[&str] = &[
    "binDir",
    "cniDir",
    "confDir",
    "kubeconfig",
    "localDir",
    "daemonSocket",
    "clusterNetwork",
    "delegates",
    "readinessindicatorfile",
    "deviceInfoDir",
    "devicePluginInfoDir",
];

/// The key naming the device (VF PCI address) an attachment uses.
pub const DEVICE_ID_KEY: &str = "deviceID";

/// `logFile` is also an option of delegates (SR-IOV CNI): a NAD may name one only in this folder.
pub const LOG_DIR: &str = "/var/log/";

/// A delegate config that breaks the rule; the message names the key or type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {msg}")]
pub struct TrustViolation {
    /// Where in the config: `type`, `plugins[1].type`, `binDir`, ...
    pub at: String,
    pub msg: String,
}

/// True when `plugin_type` is a meta-plugin's.
pub fn is_meta_plugin_type(plugin_type: &str) -> bool {
    META_PLUGIN_TYPES.contains(&plugin_type)
}

/// True when a conf or conflist runs a meta-plugin (any of its plugins, or their IPAM): such a
/// file in a directory of configs is the meta-plugin's own config, never the cluster network.
pub fn runs_a_meta_plugin(config: &DelegateConf) -> bool {
    config
        .plugins()
        .any(|(_, p)| plugin_types(p).any(|(_, t)| is_meta_plugin_type(t)))
}

/// The types a plugin runs: its own and its IPAM's, with their location.
pub fn plugin_types(plugin: PluginConf<'_>) -> impl Iterator<Item = (&'static str, &str)> {
    let own = plugin.plugin_type().map(|t| ("type", t));
    let ipam = plugin.ipam_type().map(|t| ("ipam.type", t));
    own.into_iter().chain(ipam)
}

/// The value of `key` in `obj`, matched as delegates read keys: without regard to case.
fn get_any_case<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Option<(&'a str, &'a Value)> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, v)| (k.as_str(), v))
}

/// The plugins of a conf (itself) or conflist (`plugins`), with their location.
fn plugins(config: &DelegateConf) -> impl Iterator<Item = (String, PluginConf<'_>)> {
    config.plugins().map(|(i, p)| match i {
        Some(i) => (format!("plugins[{i}]."), p),
        None => (String::new(), p),
    })
}

/// Checks a delegate config that a NAD author wrote (a conf or a conflist).
pub fn check_delegate_config(config: &DelegateConf) -> Result<(), TrustViolation> {
    let refuse = |at: String, msg: String| Err(TrustViolation { at, msg });
    for (at, plugin) in plugins(config) {
        if let Some((key, t)) = plugin_types(plugin).find(|(_, t)| is_meta_plugin_type(t)) {
            return refuse(
                format!("{at}{key}"),
                format!("{t:?} is a meta-plugin and cannot be a delegate of multinet"),
            );
        }
        let Some(obj) = plugin.as_value().as_object() else {
            continue;
        };
        // The device is the kubelet's to give (multinet injects it from the pod's devices): a
        // NAD naming one would take a VF outside device accounting.
        if let Some((key, _)) = get_any_case(obj, DEVICE_ID_KEY) {
            return refuse(
                format!("{at}{key}"),
                "is set by multinet from the devices the kubelet gave the pod, never by a \
                 NetworkAttachmentDefinition"
                    .into(),
            );
        }
        if let Some(key) = NODE_PATH_KEYS.iter().find(|k| obj.contains_key(**k)) {
            return refuse(
                format!("{at}{key}"),
                "names a node path or network of multinet's own config, which a \
                 NetworkAttachmentDefinition may not set"
                    .into(),
            );
        }
        // runtimeConfig is the runtime's (multinet's) to fill; a path in it would have a
        // delegate write, and later delete, a node file of the NAD author's choosing.
        if let Some((rc_key, key)) = get_any_case(obj, "runtimeConfig").and_then(|(rc_key, rc)| {
            let (key, _) = get_any_case(rc.as_object()?, DEVICE_INFO_FILE_CAPABILITY)?;
            Some((rc_key, key))
        }) {
            return refuse(
                format!("{at}{rc_key}.{key}"),
                "is set by multinet, never by a NetworkAttachmentDefinition".into(),
            );
        }
        if let Some((_, log)) = get_any_case(obj, "logFile")
            && !is_allowed_log_file(log)
        {
            return refuse(
                format!("{at}logFile"),
                format!("must be a file under {LOG_DIR} (no \"..\")"),
            );
        }
    }
    Ok(())
}

fn is_allowed_log_file(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) if s.is_empty() => true,
        Value::String(s) => {
            s.starts_with(LOG_DIR)
                && s.len() > LOG_DIR.len()
                && !s.split('/').any(|part| part == ".." || part == ".")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_delegate_config(config: &Value) -> Result<(), TrustViolation> {
        super::check_delegate_config(&DelegateConf::new(config.clone()))
    }

    fn runs_a_meta_plugin(config: &Value) -> bool {
        super::runs_a_meta_plugin(&DelegateConf::new(config.clone()))
    }

    #[test]
    fn meta_plugins_are_refused_anywhere_in_the_config() {
        for (config, at) in [
            (json!({"type":"multinet"}), "type"),
            (json!({"type":"multus-shim"}), "type"),
            (
                json!({"plugins":[{"type":"macvlan"},{"type":"multus"}]}),
                "plugins[1].type",
            ),
        ] {
            let err = check_delegate_config(&config).unwrap_err();
            assert_eq!(err.at, at, "{err}");
            assert!(err.to_string().contains("meta-plugin"), "{err}");
            assert!(runs_a_meta_plugin(&config));
        }
        assert!(!runs_a_meta_plugin(&json!({"type":"macvlan"})));
    }

    #[test]
    fn node_paths_are_refused_and_log_files_stay_in_var_log() {
        let err = check_delegate_config(&json!({"type":"macvlan","binDir":"/tmp"})).unwrap_err();
        assert_eq!(err.at, "binDir");
        let err = check_delegate_config(&json!({"plugins":[{"type":"x","kubeconfig":"/k"}]}))
            .unwrap_err();
        assert_eq!(err.at, "plugins[0].kubeconfig");
        for bad in ["/etc/shadow", "/var/log/../../etc/shadow", "/var/log/"] {
            let err = check_delegate_config(&json!({"type":"sriov","logFile":bad})).unwrap_err();
            assert_eq!(err.at, "logFile", "{bad}");
        }
        assert!(check_delegate_config(&json!({"type":"sriov","logFile":7})).is_err());
        check_delegate_config(&json!({"type":"sriov","logFile":"/var/log/sriov.log"})).unwrap();
        check_delegate_config(&json!({"type":"macvlan","master":"eth1"})).unwrap();
        let err = check_delegate_config(
            &json!({"type":"sriov","runtimeConfig":{"CNIDeviceInfoFile":"/etc/passwd"}}),
        )
        .unwrap_err();
        assert_eq!(err.at, "runtimeConfig.CNIDeviceInfoFile");
        let err = check_delegate_config(
            &json!({"type":"sriov","runtimeconfig":{"cnideviceinfofile":"/x"}}),
        )
        .unwrap_err();
        assert_eq!(err.at, "runtimeconfig.cnideviceinfofile");
        for key in ["deviceID", "DeviceId"] {
            let err =
                check_delegate_config(&json!({"type":"sriov",key:"0000:af:06.3"})).unwrap_err();
            assert_eq!(err.at, key);
        }
        let err = check_delegate_config(&json!({"plugins":[{"type":"macvlan",
            "ipam":{"type":"multinet"}}]}))
        .unwrap_err();
        assert_eq!(err.at, "plugins[0].ipam.type");
        let err = check_delegate_config(&json!({"type":"sriov","LOGFILE":"/etc/x"})).unwrap_err();
        assert_eq!(err.at, "logFile");
    }
}
