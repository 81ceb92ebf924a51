//! What the meta-plugin adds to a delegate's config before running it, as a runtime does:
//! runtimeConfig filtered by each plugin's declared capabilities, `args.cni`, a device ID and a
//! device-info file path. Pure functions over JSON, applied to a single conf or to every plugin
//! of a conflist.

use std::path::Path;

use serde_json::{Map, Value};

/// The capability (and runtimeConfig key) naming the file a plugin writes its device info to.
pub const DEVICE_INFO_FILE_CAPABILITY: &str = "CNIDeviceInfoFile";

use multinet_cni::config::plugins_mut;

/// The plugin objects of a conf or a conflist, read-only.
fn plugins(conf: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    multinet_cni::config::plugins(conf).filter_map(|(_, p)| p.as_object())
}

/// True when at least one plugin of the conf or conflist declares `capability`.
pub fn declares_capability(conf: &Value, capability: &str) -> bool {
    plugins(conf).any(|p| declares(p, capability))
}

fn declares(plugin: &Map<String, Value>, capability: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(capability))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Gives each plugin the runtimeConfig keys it declares a capability for. Returns the keys that no
/// plugin declared: the multi-net spec says such a request must fail the attachment.
pub fn inject_runtime_config(conf: &mut Value, available: &Map<String, Value>) -> Vec<String> {
    let mut used = vec![false; available.len()];
    for plugin in plugins_mut(conf) {
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

/// Merges the selection's `cni-args` into `args.cni` of every plugin; the selection wins over args
/// the NAD already had.
pub fn inject_cni_args(conf: &mut Value, cni_args: &Map<String, Value>) {
    if cni_args.is_empty() {
        return;
    }
    for plugin in plugins_mut(conf) {
        let args = plugin
            .entry("args")
            .or_insert_with(|| Value::Object(Map::new()));
        if !args.is_object() {
            *args = Value::Object(Map::new());
        }
        if let Value::Object(args) = args {
            let cni = args
                .entry("cni")
                .or_insert_with(|| Value::Object(Map::new()));
            if !cni.is_object() {
                *cni = Value::Object(Map::new());
            }
            if let Value::Object(cni) = cni {
                cni.extend(cni_args.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
}

/// Puts a device (a VF's PCI address) where SR-IOV-style plugins read it: top-level `deviceID`
/// and `pciBusID` of every plugin, as Multus does.
pub fn inject_device_id(conf: &mut Value, device_id: &str) {
    for plugin in plugins_mut(conf) {
        plugin.insert("deviceID".into(), Value::String(device_id.into()));
        plugin.insert("pciBusID".into(), Value::String(device_id.into()));
    }
}

/// Gives `path` as runtimeConfig `CNIDeviceInfoFile` to the plugins that declare that capability
/// (replacing any path already there, as Multus does). Returns whether any plugin got it.
pub fn inject_device_info_file(conf: &mut Value, path: &Path) -> bool {
    let rc = Map::from_iter([(
        DEVICE_INFO_FILE_CAPABILITY.to_string(),
        Value::String(path.to_string_lossy().into_owned()),
    )]);
    inject_runtime_config(conf, &rc).is_empty()
}

/// Fills a missing `name` (the multi-net spec's MUST) and returns the network name.
pub fn ensure_name(conf: &mut Value, fallback: &str) -> String {
    if let Some(name) = conf.get("name").and_then(Value::as_str)
        && !name.is_empty()
    {
        return name.to_string();
    }
    if let Value::Object(obj) = conf {
        obj.insert("name".into(), Value::String(fallback.into()));
    }
    fallback.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn runtime_config_reaches_only_plugins_that_declare_it() {
        let mut conf = json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"macvlan","capabilities":{"mac":true,"ips":true}},
            {"type":"tuning","capabilities":{"mac":true}},
            {"type":"portmap","capabilities":{"portMappings":true},"runtimeConfig":{"keep":1}}
        ]});
        let missing = inject_runtime_config(
            &mut conf,
            &map(json!({"mac":"02:00:00:00:00:01","ips":["10.1.1.5/24"],"bandwidth":{}})),
        );
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
        let mut conf = json!({"type":"macvlan","capabilities":{"ips":true}});
        let missing = inject_runtime_config(&mut conf, &map(json!({"ips":["10.0.0.2/24"]})));
        assert!(missing.is_empty());
        assert_eq!(conf["runtimeConfig"], json!({"ips":["10.0.0.2/24"]}));
    }

    #[test]
    fn cni_args_override_nad_args() {
        let mut conf = json!({"type":"x","args":{"cni":{"a":1,"b":1},"other":true}});
        inject_cni_args(&mut conf, &map(json!({"b":2,"c":3})));
        assert_eq!(
            conf["args"],
            json!({"cni":{"a":1,"b":2,"c":3},"other":true})
        );
    }

    #[test]
    fn device_id_goes_to_every_plugin() {
        let mut conf = json!({"name":"n","plugins":[{"type":"sriov"},{"type":"tuning"}]});
        inject_device_id(&mut conf, "0000:af:06.0");
        for p in conf["plugins"].as_array().unwrap() {
            assert_eq!(p["deviceID"], "0000:af:06.0");
            assert_eq!(p["pciBusID"], "0000:af:06.0");
        }
    }

    #[test]
    fn device_info_file_reaches_only_plugins_that_declare_it() {
        let mut conf = json!({"name":"n","plugins":[
            {"type":"sriov","capabilities":{"CNIDeviceInfoFile":true},
             "runtimeConfig":{"CNIDeviceInfoFile":"/old","mac":"02:00:00:00:00:01"}},
            {"type":"tuning","capabilities":{"CNIDeviceInfoFile":false}},
            {"type":"portmap"}
        ]});
        assert!(declares_capability(&conf, DEVICE_INFO_FILE_CAPABILITY));
        assert!(inject_device_info_file(
            &mut conf,
            Path::new("/d/n-c1_net1")
        ));
        assert_eq!(
            conf["plugins"][0]["runtimeConfig"],
            json!({"CNIDeviceInfoFile":"/d/n-c1_net1","mac":"02:00:00:00:00:01"})
        );
        assert_eq!(conf["plugins"][1].get("runtimeConfig"), None);
        assert_eq!(conf["plugins"][2].get("runtimeConfig"), None);
    }

    #[test]
    fn a_conf_without_the_capability_gets_no_device_info_file() {
        let mut conf = json!({"type":"macvlan","capabilities":{"ips":true}});
        assert!(!declares_capability(&conf, DEVICE_INFO_FILE_CAPABILITY));
        let before = conf.clone();
        assert!(!inject_device_info_file(&mut conf, Path::new("/d/x")));
        assert_eq!(conf, before);
        assert!(!declares_capability(&json!("not an object"), "x"));
    }

    #[test]
    fn missing_name_is_filled_from_the_nad() {
        let mut conf = json!({"type":"macvlan"});
        assert_eq!(ensure_name(&mut conf, "storage"), "storage");
        assert_eq!(conf["name"], "storage");
        let mut named = json!({"type":"macvlan","name":"own"});
        assert_eq!(ensure_name(&mut named, "storage"), "own");
    }
}
