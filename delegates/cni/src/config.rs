//! Network configs: a single plugin config and a config list. Unknown keys are kept in `extra`
//! so a delegate's config passes through the meta-plugin untouched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CniError, Result};
use crate::result::{Dns, NetworkResult};
use crate::version::{CniVersion, SUPPORTED_VERSIONS};

/// One plugin's config, as a plugin reads it on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Parses bytes as a JSON object: code 6 when it is not JSON, code 7 when it is not an object.
fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| CniError::decode(format!("{what} is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(CniError::invalid_config(format!(
            "{what} must be a JSON object, got {}",
            json_kind(&other)
        ))),
    }
}

/// How a JSON value's type reads in an error message ("a string", "an array", ...).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON shape a standard key must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    String,
    Bool,
    Object,
    Strings,
    Objects,
}

impl Shape {
    fn fits(self, v: &Value) -> bool {
        match self {
            Shape::String => v.is_string(),
            Shape::Bool => v.is_boolean(),
            Shape::Object => v.is_object(),
            Shape::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Shape::Objects => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::String => "a string",
            Shape::Bool => "a boolean",
            Shape::Object => "an object",
            Shape::Strings => "an array of strings",
            Shape::Objects => "an array of objects",
        }
    }
}

/// A standard key, its shape, and whether null stands for "not given".
type KeyRule = (&'static str, Shape, bool);

/// The spec's keys of a plugin config that are parsed here. `ipam`, `args` and `prevResult` are
/// kept as they are and read by whoever uses them, which names them: the plugin that runs the
/// IPAM (`key "ipam"`), [`NetConf::prev_result`] (`prevResult`), [`NetConf::args_cni`]. Refusing
/// them here would make a DEL fail on a key it never reads.
const NET_CONF_KEYS: &[KeyRule] = &[
    ("cniVersion", Shape::String, false),
    ("name", Shape::String, false),
    ("type", Shape::String, false),
    ("capabilities", Shape::Object, true),
    ("dns", Shape::Object, true),
    ("runtimeConfig", Shape::Object, true),
];

/// The keys of a `dns` object.
const DNS_KEYS: &[KeyRule] = &[
    ("nameservers", Shape::Strings, false),
    ("domain", Shape::String, true),
    ("search", Shape::Strings, false),
    ("options", Shape::Strings, false),
];

/// The spec's keys of a config list.
const NET_CONF_LIST_KEYS: &[KeyRule] = &[
    ("cniVersion", Shape::String, false),
    ("cniVersions", Shape::Strings, true),
    ("name", Shape::String, false),
    ("disableCheck", Shape::Bool, false),
    ("disableGC", Shape::Bool, false),
    ("plugins", Shape::Objects, false),
];

/// Checks the standard keys' shapes before serde reads them, so an error names the key (serde
/// would say "invalid type: integer `5`, expected a string at line 1 column 17"). The message
/// says the expected and the found kind, never the value: configs come from files and NADs.
fn check_keys(obj: &Map<String, Value>, rules: &[KeyRule], what: &str) -> Result<()> {
    for &(key, shape, nullable) in rules {
        let Some(v) = obj.get(key) else { continue };
        if shape.fits(v) || (nullable && v.is_null()) {
            continue;
        }
        return Err(CniError::invalid_config(format!(
            "{what}: key {key:?} must be {}, got {}",
            shape.describe(),
            json_kind(v)
        ))
        .with_details(format!("key {key:?}")));
    }
    Ok(())
}

/// Any other serde failure, after the keys were checked: names the key when serde's message
/// does, and never quotes a value (serde_json's "invalid type: string \"...\"" would).
fn shape_error(obj: &Map<String, Value>, e: &serde_json::Error, what: &str) -> CniError {
    let text = e.to_string();
    let key = obj.keys().find(|k| text.contains(&format!("`{k}`")));
    match key {
        Some(k) => CniError::invalid_config(format!("{what}: key {k:?} has the wrong shape"))
            .with_details(format!("key {k:?}")),
        None => CniError::invalid_config(format!("{what}: a key has the wrong shape")),
    }
}

impl NetConf {
    /// Parses a plugin config: code 6 on bad JSON, code 7 on a missing `type` or a key of the
    /// wrong shape.
    pub fn from_slice(bytes: &[u8]) -> Result<NetConf> {
        let obj = parse_object(bytes, "network config")?;
        NetConf::from_map(obj)
    }

    /// Parses a plugin config already read as a JSON object.
    pub fn from_map(obj: Map<String, Value>) -> Result<NetConf> {
        const WHAT: &str = "invalid network config";
        check_keys(&obj, NET_CONF_KEYS, WHAT)?;
        if let Some(Value::Object(dns)) = obj.get("dns") {
            check_keys(dns, DNS_KEYS, &format!("{WHAT}: dns"))?;
        }
        let conf: NetConf = serde_json::from_value(Value::Object(obj.clone()))
            .map_err(|e| shape_error(&obj, &e, WHAT))?;
        if conf.plugin_type.is_empty() {
            return Err(CniError::invalid_config(
                "network config: key \"type\" is missing or empty",
            ));
        }
        Ok(conf)
    }

    /// The config as a JSON object, unknown keys included.
    pub fn to_value(&self) -> Result<Value> {
        serde_json::to_value(self)
            .map_err(|e| CniError::internal(format!("encoding network config: {e}")))
    }

    /// The config's version; an empty `cniVersion` means 0.1.0, an unknown one is code 1.
    pub fn version(&self) -> Result<CniVersion> {
        CniVersion::from_config_str(&self.cni_version)
    }

    /// The prevResult, read in the config's version when it has no cniVersion of its own.
    pub fn prev_result(&self) -> Result<Option<NetworkResult>> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => NetworkResult::from_value(v, self.version()?)
                .map(Some)
                .map_err(|e| e.context("prevResult")),
        }
    }

    /// `args.cni`, where runtimes put per-attachment arguments (`ips`, `mac`, ...).
    pub fn args_cni(&self) -> Option<&Map<String, Value>> {
        self.args.as_ref()?.get("cni")?.as_object()
    }
}

/// A network config list (`.conflist`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfList {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(
        rename = "cniVersions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_versions: Option<Vec<String>>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "disableCheck", default, skip_serializing_if = "is_false")]
    pub disable_check: bool,
    #[serde(rename = "disableGC", default, skip_serializing_if = "is_false")]
    pub disable_gc: bool,
    #[serde(default)]
    pub plugins: Vec<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NetConfList {
    /// Parses a config list: code 6 on bad JSON, code 7 on a missing name, no plugins, or a
    /// plugin without `type`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let obj = parse_object(bytes, "network config list")?;
        NetConfList::from_map(obj)
    }

    /// Parses a config list already read as a JSON object.
    pub fn from_map(obj: Map<String, Value>) -> Result<Self> {
        const WHAT: &str = "invalid network config list";
        check_keys(&obj, NET_CONF_LIST_KEYS, WHAT)?;
        let list: NetConfList = serde_json::from_value(Value::Object(obj.clone()))
            .map_err(|e| shape_error(&obj, &e, WHAT))?;
        if list.name.is_empty() {
            return Err(CniError::invalid_config(
                "network config list: key \"name\" is missing or empty",
            ));
        }
        if list.plugins.is_empty() {
            return Err(CniError::invalid_config(
                "network config list: key \"plugins\" is missing or empty",
            ));
        }
        for (i, p) in list.plugins.iter().enumerate() {
            if p.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(CniError::invalid_config(format!(
                    "network config list: plugins[{i}]: key \"type\" is missing, empty or not a string"
                )));
            }
        }
        Ok(list)
    }

    /// The version the list runs in: the highest supported entry of `cniVersions` (entries this
    /// crate does not know, e.g. newer ones, are ignored), else `cniVersion`.
    pub fn effective_version(&self) -> Result<CniVersion> {
        let best = self
            .cni_versions
            .iter()
            .flatten()
            .filter_map(|s| s.parse::<CniVersion>().ok())
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .max();
        match best {
            Some(v) => Ok(v),
            None => CniVersion::from_config_str(&self.cni_version),
        }
    }

    /// The stdin for plugin `i`, as libcni builds it: the plugin's object with the list's
    /// `name` and effective `cniVersion` injected, and `prevResult` (converted to that version)
    /// when given.
    pub fn plugin_conf(&self, i: usize, prev_result: Option<&NetworkResult>) -> Result<Vec<u8>> {
        let plugin = self.plugins.get(i).ok_or_else(|| {
            CniError::internal(format!(
                "network config list has {} plugins, no plugin {i}",
                self.plugins.len()
            ))
        })?;
        let version = self.effective_version()?;
        let mut obj = plugin.clone();
        obj.insert("name".into(), Value::from(self.name.clone()));
        obj.insert("cniVersion".into(), Value::from(version.as_str()));
        match prev_result {
            Some(prev) => {
                obj.insert("prevResult".into(), prev.to_value(version)?);
            }
            None => {
                obj.remove("prevResult");
            }
        }
        serde_json::to_vec(&Value::Object(obj))
            .map_err(|e| CniError::internal(format!("encoding plugin config: {e}")))
    }
}

/// How a config holds its plugins, read without judging it: each caller decides what a config of
/// the wrong shape means to it (a NAD is refused, a config being cleaned up is walked anyway).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PluginList<'a> {
    /// No `plugins` key: a single plugin's config, its own one plugin.
    Single,
    /// A config list: the elements of `plugins`, as given.
    List(&'a [Value]),
    /// `plugins` is there but is not an array.
    NotAList,
}

impl<'a> PluginList<'a> {
    /// The shape of the config object `conf`.
    pub fn of(conf: &'a Map<String, Value>) -> Self {
        match conf.get("plugins") {
            None => PluginList::Single,
            Some(Value::Array(list)) => PluginList::List(list),
            Some(_) => PluginList::NotAList,
        }
    }

    /// The shape of `conf`, which may not be an object (then it is its own plugin).
    pub fn of_value(conf: &'a Value) -> Self {
        conf.as_object().map_or(PluginList::Single, PluginList::of)
    }
}

/// The plugins of a conf or conflist, the one walk every step uses: a list's elements with their
/// index, else the config itself (index `None`), also when its `plugins` is not a list.
pub fn plugins(conf: &Value) -> impl Iterator<Item = (Option<usize>, &Value)> {
    let list = match PluginList::of_value(conf) {
        PluginList::List(list) => Some(list),
        PluginList::Single | PluginList::NotAList => None,
    };
    let single = list.is_none().then_some((None, conf));
    single.into_iter().chain(
        list.into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| (Some(i), p)),
    )
}

/// The plugin objects of a conf (itself) or a conflist (the objects of its `plugins`), to edit
/// them; nothing when `conf` is not an object.
pub fn plugins_mut(conf: &mut Value) -> Vec<&mut Map<String, Value>> {
    let Value::Object(obj) = conf else {
        return Vec::new();
    };
    if !matches!(PluginList::of(obj), PluginList::List(_)) {
        return vec![obj];
    }
    match obj.get_mut("plugins") {
        Some(Value::Array(list)) => list.iter_mut().filter_map(Value::as_object_mut).collect(),
        _ => Vec::new(),
    }
}

/// Either kind of config file.
#[allow(clippy::large_enum_variant)] // Parsed once per call; boxing would only add noise.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyConf {
    Single(NetConf),
    List(NetConfList),
}

/// Parses a `.conf` or a `.conflist`: an object with `plugins` is a list.
pub fn parse_any(bytes: &[u8]) -> Result<AnyConf> {
    let obj = parse_object(bytes, "network config")?;
    if PluginList::of(&obj) != PluginList::Single {
        NetConfList::from_map(obj).map(AnyConf::List)
    } else {
        NetConf::from_map(obj).map(AnyConf::Single)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_round_trip_in_order() {
        let text = r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"host-local","subnet":"10.0.0.0/24"},"x-custom":{"a":[1,2]}}"#;
        let conf = NetConf::from_slice(text.as_bytes()).unwrap();
        assert_eq!(conf.extra["master"], "eth1");
        assert_eq!(conf.extra["x-custom"], json!({"a":[1,2]}));
        let back = conf.to_value().unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn config_errors_have_codes() {
        assert_eq!(NetConf::from_slice(b"{").unwrap_err().code.code(), 6);
        assert_eq!(NetConf::from_slice(b"[1]").unwrap_err().code.code(), 7);
        let e = NetConf::from_slice(br#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap_err();
        assert_eq!(e.code.code(), 7);
        assert!(e.msg.contains("type"));
        let e = NetConf::from_slice(br#"{"cniVersion":"1.0.0","type":"x","runtimeConfig":5}"#)
            .unwrap_err();
        assert_eq!(e.code.code(), 7);
        let c = NetConf::from_slice(br#"{"cniVersion":"0.9.0","type":"x"}"#).unwrap();
        assert_eq!(c.version().unwrap_err().code.code(), 1);
    }

    /// A value of the wrong kind for every shape, none of which may be quoted in a message.
    fn wrong_values(shape: Shape) -> Vec<Value> {
        let secret = json!("SECRET-VALUE");
        match shape {
            Shape::String => vec![
                json!(5),
                json!(["SECRET-VALUE"]),
                json!({"k": "SECRET-VALUE"}),
            ],
            Shape::Bool => vec![secret, json!(1)],
            Shape::Object => vec![secret, json!(5), json!(["SECRET-VALUE"]), json!(true)],
            Shape::Strings => vec![secret, json!([1]), json!({"a": "SECRET-VALUE"})],
            Shape::Objects => vec![secret, json!(["SECRET-VALUE"]), json!({})],
        }
    }

    fn assert_names_key(e: &CniError, key: &str, case: &str) {
        assert_eq!(e.code.code(), 7, "{case}: {e}");
        assert!(e.msg.contains(&format!("{key:?}")), "{case}: {}", e.msg);
        assert!(!e.to_string().contains("SECRET-VALUE"), "{case}: {e}");
    }

    #[test]
    fn every_standard_key_of_the_wrong_type_is_named() {
        let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "x"});
        for &(key, shape, nullable) in NET_CONF_KEYS {
            for bad in wrong_values(shape) {
                let mut conf = base.clone();
                conf[key] = bad.clone();
                let bytes = serde_json::to_vec(&conf).unwrap();
                let case = format!("conf {key}={bad}");
                assert_names_key(&NetConf::from_slice(&bytes).unwrap_err(), key, &case);
                assert_names_key(&parse_any(&bytes).unwrap_err(), key, &case);
            }
            let mut conf = base.clone();
            conf[key] = Value::Null;
            let parsed = NetConf::from_slice(&serde_json::to_vec(&conf).unwrap());
            assert_eq!(parsed.is_ok(), nullable, "{key}=null");
        }
        for &(key, shape, _) in DNS_KEYS {
            for bad in wrong_values(shape) {
                let mut conf = base.clone();
                conf["dns"] = json!({ key: bad.clone() });
                let e = NetConf::from_slice(&serde_json::to_vec(&conf).unwrap()).unwrap_err();
                assert_names_key(&e, key, &format!("dns.{key}={bad}"));
                assert!(e.msg.contains("dns"), "{}", e.msg);
            }
        }
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}]});
        for &(key, shape, _) in NET_CONF_LIST_KEYS {
            for bad in wrong_values(shape) {
                let mut conf = list.clone();
                conf[key] = bad.clone();
                let bytes = serde_json::to_vec(&conf).unwrap();
                let case = format!("list {key}={bad}");
                assert_names_key(&NetConfList::from_slice(&bytes).unwrap_err(), key, &case);
                assert_names_key(&parse_any(&bytes).unwrap_err(), key, &case);
            }
        }
        // Not JSON at all: the parser says where, never what.
        let e = parse_any(br#"{"type":"x","token":"SECRET-VALUE" "more"}"#).unwrap_err();
        assert_eq!(e.code.code(), 6, "{e}");
        assert!(e.msg.contains("column"), "{}", e.msg);
        assert!(!e.to_string().contains("SECRET"), "{e}");
        // Kept as they are, named where they are read.
        let c = NetConf::from_slice(
            br#"{"type":"x","cniVersion":"1.0.0","prevResult":"SECRET-VALUE"}"#,
        )
        .unwrap();
        let e = c.prev_result().unwrap_err();
        assert!(e.msg.starts_with("prevResult"), "{}", e.msg);
        // The example from the issue, byte for byte.
        let e = NetConf::from_slice(br#"{"cniVersion": 5, "name": "n", "type": "x"}"#).unwrap_err();
        assert!(
            e.msg
                .contains("\"cniVersion\" must be a string, got a number"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn prev_result_is_read_in_config_version() {
        let c = NetConf::from_slice(
            br#"{"cniVersion":"0.4.0","type":"x","prevResult":{"ips":[{"version":"4","address":"10.0.0.2/24"}]},"args":{"cni":{"ips":["10.0.0.9"]}}}"#,
        )
        .unwrap();
        let prev = c.prev_result().unwrap().unwrap();
        assert_eq!(prev.cni_version, CniVersion::V0_4_0);
        assert_eq!(c.args_cni().unwrap()["ips"], json!(["10.0.0.9"]));
    }

    #[test]
    fn list_versions_and_plugin_conf() {
        let list = NetConfList::from_slice(
            br#"{"cniVersion":"0.4.0","cniVersions":["0.3.1","1.0.0","9.9.9"],"name":"net1","disableGC":true,
                "plugins":[{"type":"bridge","bridge":"cni0"},{"type":"tuning","capabilities":{"mac":true}}],"foo":1}"#,
        )
        .unwrap();
        assert_eq!(list.effective_version().unwrap(), CniVersion::V1_0_0);
        assert!(list.disable_gc && !list.disable_check);
        assert_eq!(list.extra["foo"], 1);
        let prev = NetworkResult::from_value(
            &json!({"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24"}]}),
            CniVersion::V1_1_0,
        )
        .unwrap();
        let p1: Value = serde_json::from_slice(&list.plugin_conf(1, Some(&prev)).unwrap()).unwrap();
        assert_eq!(p1["name"], "net1");
        assert_eq!(p1["cniVersion"], "1.0.0");
        assert_eq!(p1["prevResult"]["cniVersion"], "1.0.0");
        assert_eq!(p1["capabilities"]["mac"], true);
        let p0: Value = serde_json::from_slice(&list.plugin_conf(0, None).unwrap()).unwrap();
        assert!(p0.get("prevResult").is_none());
        assert_eq!(p0["bridge"], "cni0");
        assert!(list.plugin_conf(2, None).is_err());

        let only_new = NetConfList::from_slice(
            br#"{"cniVersion":"0.3.1","cniVersions":["2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(only_new.effective_version().unwrap(), CniVersion::V0_3_1);
    }

    #[test]
    fn list_errors() {
        let no_name = br#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#;
        assert!(
            NetConfList::from_slice(no_name)
                .unwrap_err()
                .msg
                .contains("name")
        );
        let no_plugins = br#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#;
        assert!(
            NetConfList::from_slice(no_plugins)
                .unwrap_err()
                .msg
                .contains("plugins")
        );
        let no_type = br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"a":1}]}"#;
        assert!(
            NetConfList::from_slice(no_type)
                .unwrap_err()
                .msg
                .contains("type")
        );
    }

    #[test]
    fn parse_any_picks_kind() {
        assert!(matches!(
            parse_any(br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#),
            Ok(AnyConf::List(_))
        ));
        assert!(matches!(
            parse_any(br#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#),
            Ok(AnyConf::Single(_))
        ));
    }

    #[test]
    fn plugins_walk_a_conf_or_a_conflist() {
        let conf = json!({"type": "macvlan"});
        assert_eq!(plugins(&conf).collect::<Vec<_>>(), [(None, &conf)]);
        let list = json!({"plugins": [{"type": "a"}, "b"]});
        let walked: Vec<_> = plugins(&list).collect();
        assert_eq!(
            walked,
            [(Some(0), &json!({"type": "a"})), (Some(1), &json!("b"))]
        );
        // `plugins` that is not a list: the config is walked as its own plugin.
        let odd = json!({"type": "x", "plugins": 5});
        assert_eq!(plugins(&odd).collect::<Vec<_>>(), [(None, &odd)]);
        assert_eq!(PluginList::of_value(&odd), PluginList::NotAList);
        assert_eq!(PluginList::of_value(&json!([1])), PluginList::Single);

        let mut list = json!({"plugins": [{"type": "a"}, "b", {"type": "c"}]});
        for p in plugins_mut(&mut list) {
            p.insert("seen".into(), json!(true));
        }
        assert_eq!(list["plugins"][2]["seen"], true);
        assert_eq!(list["plugins"][1], "b");
        assert!(plugins_mut(&mut json!("x")).is_empty());
    }
}
