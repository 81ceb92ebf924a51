//! What a NAD author may put in a delegate config: the one rule that the plugin (before it runs
//! anything) and the webhook (before the NAD is stored) both apply. A NAD author chooses delegate
//! types installed on the node and their options; never a meta-plugin as a delegate (multinet
//! would run itself, or Multus, as root with a config the NAD author wrote), and never the node
//! paths multinet itself uses.

use serde_json::Value;

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

/// The runtimeConfig key naming the file a delegate writes its device info to.
pub const DEVICE_INFO_FILE_KEY: &str = "CNIDeviceInfoFile";

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

/// True when a conf or conflist runs a meta-plugin (any of its plugins): such a file in a
/// directory of configs is the meta-plugin's own config, never the cluster network.
pub fn runs_a_meta_plugin(config: &Value) -> bool {
    plugins(config).any(|(_, p)| {
        p.get("type")
            .and_then(Value::as_str)
            .is_some_and(is_meta_plugin_type)
    })
}

/// The plugin objects of a conf (itself) or conflist (`plugins`), with their location.
fn plugins(config: &Value) -> impl Iterator<Item = (String, &Value)> {
    let list = config.get("plugins").and_then(Value::as_array);
    let single = list.is_none().then_some(("".to_string(), config));
    single.into_iter().chain(
        list.into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| (format!("plugins[{i}]."), p)),
    )
}

/// Checks a delegate config that a NAD author wrote (a conf or a conflist).
pub fn check_delegate_config(config: &Value) -> Result<(), TrustViolation> {
    let refuse = |at: String, msg: String| Err(TrustViolation { at, msg });
    for (at, plugin) in plugins(config) {
        if let Some(t) = plugin.get("type").and_then(Value::as_str)
            && is_meta_plugin_type(t)
        {
            return refuse(
                format!("{at}type"),
                format!("{t:?} is a meta-plugin and cannot be a delegate of multinet"),
            );
        }
        let Some(obj) = plugin.as_object() else {
            continue;
        };
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
        if obj
            .get("runtimeConfig")
            .and_then(Value::as_object)
            .is_some_and(|rc| rc.contains_key(DEVICE_INFO_FILE_KEY))
        {
            return refuse(
                format!("{at}runtimeConfig.{DEVICE_INFO_FILE_KEY}"),
                "is set by multinet, never by a NetworkAttachmentDefinition".into(),
            );
        }
        if let Some(log) = obj.get("logFile")
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
    }
}
