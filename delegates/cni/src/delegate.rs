//! A delegate config (a conf or a conflist) as multinet reads it where it comes in (a NAD's
//! `spec.config`, a file, an inline delegate, a record read back), what every later step reads
//! of it, and what multinet adds to it before running it, as a runtime does: runtimeConfig
//! filtered by each plugin's declared capabilities, `args.cni`, a device ID, a device-info file
//! path, a missing name.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{PluginList, plugins, plugins_mut};

/// The capability (and runtimeConfig key) naming the file a plugin writes its device info to.
pub const DEVICE_INFO_FILE_CAPABILITY: &str = "CNIDeviceInfoFile";

/// A delegate config. The JSON is kept verbatim, key order and unknown keys included (so a
/// delegate gets byte for byte what it was given, apart from multinet's documented injections),
/// which [`crate::NetConf`] and [`crate::NetConfList`] would not do: they write their own keys
/// first. The checks a config passes depend on who wrote it and stay with the reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DelegateConf(Value);

/// One plugin of a delegate config (the config itself when it is a single conf), read-only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginConf<'a>(&'a Value);

impl<'a> PluginConf<'a> {
    /// A plugin object given on its own (one step of a conflist being run).
    pub fn new(plugin: &'a Value) -> Self {
        PluginConf(plugin)
    }

    /// The value of a key, when the plugin is an object that has it.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    /// The string value of a key.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Whether a key is `true` (a missing or non-boolean key is not).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool) == Some(true)
    }

    /// Its `type`.
    pub fn plugin_type(&self) -> Option<&'a str> {
        self.str("type")
    }

    /// Its `ipam` object's `type`.
    pub fn ipam_type(&self) -> Option<&'a str> {
        self.get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
    }

    /// Whether it declares `capability` (`"capabilities": {capability: true}`).
    pub fn declares(&self, capability: &str) -> bool {
        self.get("capabilities")
            .and_then(|c| c.get(capability))
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// The plugin as JSON.
    pub fn as_value(&self) -> &'a Value {
        self.0
    }
}

impl DelegateConf {
    /// The config as read.
    pub fn new(value: Value) -> Self {
        DelegateConf(value)
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }

    /// How it holds its plugins.
    pub fn shape(&self) -> PluginList<'_> {
        PluginList::of_value(&self.0)
    }

    /// Its plugins with their index in `plugins` (None: a single conf, its own plugin): see
    /// [`plugins`].
    pub fn plugins(&self) -> impl Iterator<Item = (Option<usize>, PluginConf<'_>)> {
        plugins(&self.0).map(|(i, p)| (i, PluginConf(p)))
    }

    /// Its one plugin: a single conf, or a list of exactly one.
    pub fn only_plugin(&self) -> Option<PluginConf<'_>> {
        match self.shape() {
            PluginList::Single => Some(PluginConf(&self.0)),
            PluginList::List([only]) => Some(PluginConf(only)),
            PluginList::List(_) | PluginList::NotAList => None,
        }
    }

    /// The plugin that makes the interface: a single conf, or the first of a list.
    pub fn first_plugin(&self) -> PluginConf<'_> {
        match self.shape() {
            PluginList::List([first, ..]) => PluginConf(first),
            PluginList::List([]) | PluginList::Single | PluginList::NotAList => PluginConf(&self.0),
        }
    }

    /// The main types of its plugins, in order ("macvlan", or "sriov" and "tuning").
    pub fn types(&self) -> Vec<&str> {
        self.plugins()
            .filter_map(|(_, p)| p.plugin_type())
            .collect()
    }

    /// The value of a top-level key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Whether a top-level key is `true` (`disableCheck`, `disableGC`).
    pub fn flag(&self, key: &str) -> bool {
        PluginConf(&self.0).flag(key)
    }

    /// Its CNI network name, when it has a non-empty one.
    pub fn name(&self) -> Option<&str> {
        self.0
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    }

    /// Fills a missing `name` (the multi-net spec's MUST) and returns the network name.
    pub fn ensure_name(&mut self, fallback: &str) -> String {
        if let Some(name) = self.name() {
            return name.to_owned();
        }
        if let Value::Object(obj) = &mut self.0 {
            obj.insert("name".into(), Value::String(fallback.into()));
        }
        fallback.to_owned()
    }

    /// True when at least one of its plugins declares `capability`.
    pub fn declares_capability(&self, capability: &str) -> bool {
        self.plugins().any(|(_, p)| p.declares(capability))
    }

    /// Gives each plugin the runtimeConfig keys it declares a capability for. Returns the keys
    /// that no plugin declared: the multi-net spec says such a request must fail the attachment.
    pub fn inject_runtime_config(&mut self, available: &Map<String, Value>) -> Vec<String> {
        let mut used = vec![false; available.len()];
        for plugin in plugins_mut(&mut self.0) {
            let mut rc = Map::new();
            for (i, (key, value)) in available.iter().enumerate() {
                if declares(plugin, key) {
                    rc.insert(key.clone(), value.clone());
                    used[i] = true;
                }
            }
            if rc.is_empty() {
                continue;
            }
            let slot = plugin
                .entry("runtimeConfig")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(existing) = slot {
                existing.extend(rc);
            } else {
                *slot = Value::Object(rc);
            }
        }
        available
            .keys()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Merges the selection's `cni-args` into `args.cni` of every plugin; the selection wins
    /// over args the NAD already had.
    pub fn inject_cni_args(&mut self, cni_args: &Map<String, Value>) {
        if cni_args.is_empty() {
            return;
        }
        for plugin in plugins_mut(&mut self.0) {
            let args = object_at(plugin, "args");
            let cni = object_at(args, "cni");
            cni.extend(cni_args.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    /// Puts a device (a VF's PCI address) where SR-IOV-style plugins read it: top-level
    /// `deviceID` and `pciBusID` of every plugin, as Multus does.
    pub fn inject_device_id(&mut self, device_id: &str) {
        for plugin in plugins_mut(&mut self.0) {
            plugin.insert("deviceID".into(), Value::String(device_id.into()));
            plugin.insert("pciBusID".into(), Value::String(device_id.into()));
        }
    }

    /// Whether a plugin of this config is multinet's SR-IOV delegate picking a VF from a pool
    /// itself (no `deviceID`): the one that can use a topology hint.
    pub fn picks_from_pool(&self) -> bool {
        self.plugins().any(|(_, p)| {
            p.get("type").and_then(Value::as_str) == Some("sriov")
                && p.get("pool").is_some_and(|v| !v.is_null())
                && p.get("deviceID")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
        })
    }

    /// Gives the SR-IOV plugins that pick from a pool `hint` as `topologyHint`: where the pod's
    /// other devices sit (a preference, never a limit).
    pub fn inject_topology_hint(&mut self, hint: &Value) {
        for plugin in plugins_mut(&mut self.0) {
            if plugin.get("type").and_then(Value::as_str) == Some("sriov")
                && plugin.get("pool").is_some_and(|v| !v.is_null())
            {
                plugin.insert("topologyHint".into(), hint.clone());
            }
        }
    }

    /// Gives `path` as runtimeConfig `CNIDeviceInfoFile` to the plugins that declare that
    /// capability (replacing any path already there, as Multus does). Returns whether any
    /// plugin got it.
    pub fn inject_device_info_file(&mut self, path: &Path) -> bool {
        let rc = Map::from_iter([(
            DEVICE_INFO_FILE_CAPABILITY.to_owned(),
            Value::String(path.to_string_lossy().into_owned()),
        )]);
        self.inject_runtime_config(&rc).is_empty()
    }
}

fn declares(plugin: &Map<String, Value>, capability: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(capability))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The object under `key` in `obj`, made (or made an object) when it is not one.
fn object_at<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("made an object just above"),
    }
}

impl std::ops::Index<&str> for DelegateConf {
    type Output = Value;

    /// The value of a top-level key, `null` when there is none (as for a [`Value`]).
    fn index(&self, key: &str) -> &Value {
        &self.0[key]
    }
}

impl PartialEq<Value> for DelegateConf {
    fn eq(&self, other: &Value) -> bool {
        self.0 == *other
    }
}

impl From<Value> for DelegateConf {
    fn from(value: Value) -> Self {
        DelegateConf(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_delegate_conf_is_kept_verbatim() {
        let text = r#"{"type":"macvlan","x-custom":{"b":1,"a":2},"cniVersion":"1.0.0","name":"n","master":"eth1"}"#;
        let conf: DelegateConf = serde_json::from_str(text).unwrap();
        // Key order and unknown keys as given: NetConf would write its own keys first.
        assert_eq!(serde_json::to_string(&conf).unwrap(), text);
        assert_eq!(conf.name(), Some("n"));
        assert_eq!(conf["master"], "eth1");
        assert_eq!(conf.shape(), PluginList::Single);
        assert_eq!(conf.plugins().count(), 1);
        assert_eq!(conf.types(), ["macvlan"]);

        let list = DelegateConf::new(json!({"name": "", "plugins": [{"type": "a"}]}));
        assert_eq!(list.name(), None);
        assert_eq!(
            list.plugins().map(|(i, _)| i).collect::<Vec<_>>(),
            [Some(0)]
        );
    }

    #[test]
    fn plugins_are_read_through_one_view() {
        let list = DelegateConf::new(json!({"disableCheck": true, "plugins": [
            {"type": "sriov", "ipam": {"type": "static"}, "capabilities": {"mac": true}},
            {"type": "tuning", "linkInContainer": "yes"},
        ]}));
        assert_eq!(list.types(), ["sriov", "tuning"]);
        assert!(list.flag("disableCheck") && !list.flag("disableGC"));
        assert_eq!(list.only_plugin(), None);
        let first = list.first_plugin();
        assert_eq!(first.plugin_type(), Some("sriov"));
        assert_eq!(first.ipam_type(), Some("static"));
        assert!(first.declares("mac") && !first.declares("ips"));
        let (_, second) = list.plugins().nth(1).unwrap();
        // A flag is a boolean true, not any value.
        assert!(!second.flag("linkInContainer"));
        assert_eq!(second.str("linkInContainer"), Some("yes"));

        let one = DelegateConf::new(json!({"plugins": [{"type": "macvlan"}]}));
        assert_eq!(
            one.only_plugin().and_then(|p| p.plugin_type()),
            Some("macvlan")
        );
        let single = DelegateConf::new(json!({"type": "ipvlan"}));
        assert_eq!(
            single.only_plugin().and_then(|p| p.plugin_type()),
            Some("ipvlan")
        );
        assert_eq!(single.first_plugin().plugin_type(), Some("ipvlan"));
        let empty = DelegateConf::new(json!({"plugins": []}));
        assert_eq!(empty.only_plugin(), None);
        assert!(empty.types().is_empty());
    }

    #[test]
    fn runtime_config_reaches_only_plugins_that_declare_it() {
        let mut conf = DelegateConf::new(json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"macvlan","capabilities":{"mac":true,"ips":true}},
            {"type":"tuning","capabilities":{"mac":true}},
            {"type":"portmap","capabilities":{"portMappings":true},"runtimeConfig":{"keep":1}}
        ]}));
        let missing = conf.inject_runtime_config(&map(
            json!({"mac":"02:00:00:00:00:01","ips":["10.1.1.5/24"],"bandwidth":{}}),
        ));
        assert_eq!(missing, vec!["bandwidth".to_string()]);
        assert_eq!(
            conf["plugins"][0]["runtimeConfig"],
            json!({"mac":"02:00:00:00:00:01","ips":["10.1.1.5/24"]})
        );
        assert_eq!(
            conf["plugins"][1]["runtimeConfig"],
            json!({"mac":"02:00:00:00:00:01"})
        );
        assert_eq!(conf["plugins"][2]["runtimeConfig"], json!({"keep":1}));
    }

    #[test]
    fn single_conf_gets_runtime_config_at_top_level() {
        let mut conf = DelegateConf::new(json!({"type":"macvlan","capabilities":{"ips":true}}));
        let missing = conf.inject_runtime_config(&map(json!({"ips":["10.0.0.2/24"]})));
        assert!(missing.is_empty());
        assert_eq!(conf["runtimeConfig"], json!({"ips":["10.0.0.2/24"]}));
    }

    #[test]
    fn cni_args_override_nad_args() {
        let mut conf =
            DelegateConf::new(json!({"type":"x","args":{"cni":{"a":1,"b":1},"other":true}}));
        conf.inject_cni_args(&map(json!({"b":2,"c":3})));
        assert_eq!(
            conf["args"],
            json!({"cni":{"a":1,"b":2,"c":3},"other":true})
        );
        // args that are not objects are replaced, not merged into.
        let mut odd = DelegateConf::new(json!({"type":"x","args":5}));
        odd.inject_cni_args(&map(json!({"c":3})));
        assert_eq!(odd["args"], json!({"cni":{"c":3}}));
    }

    #[test]
    fn device_id_goes_to_every_plugin() {
        let mut conf =
            DelegateConf::new(json!({"name":"n","plugins":[{"type":"sriov"},{"type":"tuning"}]}));
        conf.inject_device_id("0000:af:06.0");
        for p in conf["plugins"].as_array().unwrap() {
            assert_eq!(p["deviceID"], "0000:af:06.0");
            assert_eq!(p["pciBusID"], "0000:af:06.0");
        }
    }

    #[test]
    fn device_info_file_reaches_only_plugins_that_declare_it() {
        let mut conf = DelegateConf::new(json!({"name":"n","plugins":[
            {"type":"sriov","capabilities":{"CNIDeviceInfoFile":true},
             "runtimeConfig":{"CNIDeviceInfoFile":"/old","mac":"02:00:00:00:00:01"}},
            {"type":"tuning","capabilities":{"CNIDeviceInfoFile":false}},
            {"type":"portmap"}
        ]}));
        assert!(conf.declares_capability(DEVICE_INFO_FILE_CAPABILITY));
        assert!(conf.inject_device_info_file(Path::new("/d/n-c1_net1")));
        assert_eq!(
            conf["plugins"][0]["runtimeConfig"],
            json!({"CNIDeviceInfoFile":"/d/n-c1_net1","mac":"02:00:00:00:00:01"})
        );
        assert_eq!(conf["plugins"][1].get("runtimeConfig"), None);
        assert_eq!(conf["plugins"][2].get("runtimeConfig"), None);
    }

    #[test]
    fn a_conf_without_the_capability_gets_no_device_info_file() {
        let mut conf = DelegateConf::new(json!({"type":"macvlan","capabilities":{"ips":true}}));
        assert!(!conf.declares_capability(DEVICE_INFO_FILE_CAPABILITY));
        let before = conf.clone();
        assert!(!conf.inject_device_info_file(Path::new("/d/x")));
        assert_eq!(conf, before);
        assert!(!DelegateConf::new(json!("not an object")).declares_capability("x"));
    }

    #[test]
    fn missing_name_is_filled_from_the_nad() {
        let mut conf = DelegateConf::new(json!({"type":"macvlan"}));
        assert_eq!(conf.ensure_name("storage"), "storage");
        assert_eq!(conf["name"], "storage");
        let mut named = DelegateConf::new(json!({"type":"macvlan","name":"own"}));
        assert_eq!(named.ensure_name("storage"), "own");
        let mut empty = DelegateConf::new(json!({"type":"macvlan","name":""}));
        assert_eq!(empty.ensure_name("storage"), "storage");
        assert_eq!(empty["name"], "storage");
    }
}
