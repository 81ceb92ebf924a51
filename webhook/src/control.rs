//! The control ConfigMap: switches an admin flips at run time without restarting the webhook,
//! in the format network-resources-injector reads (key `config.json`), so an existing
//! `nri-control-switches` ConfigMap works once renamed or pointed at:
//!
//! ```json
//! {"features": {"enableHugePageDownApi": true, "enableHonorExistingResources": false},
//!  "user-defined-injections": {
//!    "sriov-pod": {"op": "add", "path": "/metadata/annotations",
//!                  "value": {"k8s.v1.cni.cncf.io/networks": "sriov-a"}}}}
//! ```
//!
//! A feature the map does not name keeps its flag's value. A user-defined injection adds its
//! annotations to pods whose label `<key>` is `"true"`; only `add` on `/metadata/annotations`
//! exists, and a pod's own annotation always wins. The ConfigMap lives in the webhook's own
//! namespace: only whoever administers the webhook writes it.
//!
//! [`poll`] reads it every interval; what a read gives replaces what the last one gave. A map
//! that does not parse, or a read that fails, keeps the last good switches and is logged.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

/// The key of the ConfigMap holding the JSON document.
pub const CONFIG_KEY: &str = "config.json";
/// The ConfigMap's name unless `--control-configmap` says otherwise.
pub const DEFAULT_CONFIGMAP: &str = "multinet-webhook-control";

/// What the control ConfigMap says; `None` features leave the flags' values in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    pub hugepages_downward_api: Option<bool>,
    pub honor_resources: Option<bool>,
    /// Pod label key → annotations added to pods carrying that label as `"true"`.
    pub user_injections: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    features: BTreeMap<String, Value>,
    #[serde(default, rename = "user-defined-injections")]
    user_defined_injections: BTreeMap<String, Injection>,
}

#[derive(Deserialize)]
struct Injection {
    op: String,
    path: String,
    value: BTreeMap<String, Value>,
}

const HUGEPAGES_FEATURE: &str = "enableHugePageDownApi";
const HONOR_FEATURE: &str = "enableHonorExistingResources";

impl Switches {
    /// Parses the `config.json` document. Every problem is refused with the place it is at, so
    /// a typo never silently turns a feature off.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Document = serde_json::from_str(text).map_err(|e| {
            format!(
                "{CONFIG_KEY} is not the expected JSON (line {} column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut switches = Switches::default();
        for (name, value) in doc.features {
            let Some(on) = value.as_bool() else {
                return Err(format!("features.{name} must be true or false"));
            };
            match name.as_str() {
                HUGEPAGES_FEATURE => switches.hugepages_downward_api = Some(on),
                HONOR_FEATURE => switches.honor_resources = Some(on),
                _ => {
                    return Err(format!(
                        "features.{name} is not a feature (known: {HUGEPAGES_FEATURE}, \
                         {HONOR_FEATURE})"
                    ));
                }
            }
        }
        for (label, injection) in doc.user_defined_injections {
            let at = format!("user-defined-injections.{label}");
            if injection.op != "add" || injection.path != "/metadata/annotations" {
                return Err(format!(
                    "{at}: only {{\"op\": \"add\", \"path\": \"/metadata/annotations\"}} is \
                     supported"
                ));
            }
            let mut annotations = BTreeMap::new();
            for (key, value) in injection.value {
                let Value::String(value) = value else {
                    return Err(format!("{at}.value.{key} must be a string"));
                };
                annotations.insert(key, value);
            }
            switches.user_injections.insert(label, annotations);
        }
        Ok(switches)
    }

    /// From a ConfigMap: its `config.json`, or no switches when the key is absent.
    pub fn from_config_map(map: &ConfigMap) -> Result<Self, String> {
        match map.data.as_ref().and_then(|d| d.get(CONFIG_KEY)) {
            Some(text) => Self::parse(text),
            None => Ok(Self::default()),
        }
    }
}

/// Where the control ConfigMap is and how often it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMap {
    pub namespace: String,
    pub name: String,
    pub interval: Duration,
}

/// Reads the ConfigMap now and every interval until `stop` turns true, publishing each good
/// read on `out`. A missing ConfigMap means no switches: the flags rule.
pub async fn poll(
    client: Client,
    map: ControlMap,
    out: watch::Sender<Switches>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &map.namespace);
    let shown = format!("ConfigMap {}/{}", map.namespace, map.name);
    loop {
        let read = match tokio::time::timeout(map.interval, api.get_opt(&map.name)).await {
            Ok(Ok(Some(found))) => Switches::from_config_map(&found),
            Ok(Ok(None)) => Ok(Switches::default()),
            Ok(Err(e)) => Err(format!("cannot be read: {e}")),
            Err(_) => Err("cannot be read: no answer in time".to_owned()),
        };
        match read {
            Ok(switches) => {
                out.send_if_modified(|current| {
                    let changed = *current != switches;
                    if changed {
                        tracing::info!(control = %shown, ?switches, "control switches changed");
                        *current = switches;
                    }
                    changed
                });
            }
            Err(why) => tracing::warn!(control = %shown, "{why}; the last good switches stay"),
        }
        tokio::select! {
            _ = tokio::time::sleep(map.interval) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_injector_format_is_read() {
        let s = Switches::parse(
            r#"{"features": {"enableHugePageDownApi": true, "enableHonorExistingResources": false},
                "user-defined-injections": {"sriov-pod": {"op": "add", "path": "/metadata/annotations",
                    "value": {"k8s.v1.cni.cncf.io/networks": "sriov-a"}}}}"#,
        )
        .unwrap();
        assert_eq!(s.hugepages_downward_api, Some(true));
        assert_eq!(s.honor_resources, Some(false));
        assert_eq!(
            s.user_injections["sriov-pod"]["k8s.v1.cni.cncf.io/networks"],
            "sriov-a"
        );
        // Nothing named: the flags rule.
        assert_eq!(Switches::parse("{}").unwrap(), Switches::default());
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        for (text, want) in [
            (
                r#"{"features": {"enableHugePageDownAPI": true}}"#,
                "features.enableHugePageDownAPI is not a feature",
            ),
            (
                r#"{"features": {"enableHugePageDownApi": "yes"}}"#,
                "must be true or false",
            ),
            (
                r#"{"user-defined-injections": {"l": {"op": "replace", "path": "/metadata/annotations", "value": {}}}}"#,
                "user-defined-injections.l: only",
            ),
            (
                r#"{"user-defined-injections": {"l": {"op": "add", "path": "/spec/nodeName", "value": {}}}}"#,
                "user-defined-injections.l: only",
            ),
            (
                r#"{"user-defined-injections": {"l": {"op": "add", "path": "/metadata/annotations", "value": {"a": 1}}}}"#,
                "user-defined-injections.l.value.a must be a string",
            ),
            ("{not json", "line 1 column 2"),
        ] {
            let err = Switches::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
