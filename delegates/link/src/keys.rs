//! Typed reads of plugin-specific config keys, with errors that name the key.
//!
//! JSON `null` reads as "not set", as Go's decoder leaves the zero value for it.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The plugin-specific keys of one config (`NetConf::extra`), read for one plugin.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    plugin: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Keys<'a> {
    pub fn new(plugin: &'static str, map: &'a Map<String, Value>) -> Self {
        Keys { plugin, map }
    }

    /// The plugin these keys are read for (for messages).
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// An error about `key`.
    pub fn invalid(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::InvalidKey {
            plugin: self.plugin,
            key: key.to_owned(),
            msg: msg.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value) -> Error {
        self.invalid(
            key,
            format!(
                "expected {want}, got {} ({got})",
                multinet_cni::json_kind(got)
            ),
        )
    }

    /// A string key; an empty string reads as not set.
    pub fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A boolean key; not set reads as false.
    pub fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// An integer key (a JSON number without fraction).
    pub fn integer(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => Err(self.invalid(key, format!("{n} is not an integer in range"))),
            },
            Some(other) => Err(self.wrong_type(key, "an integer", other)),
        }
    }

    /// An unsigned 32-bit integer key.
    pub fn u32(&self, key: &str) -> Result<Option<u32>> {
        match self.integer(key)? {
            None => Ok(None),
            Some(i) => u32::try_from(i)
                .map(Some)
                .map_err(|_| self.invalid(key, format!("{i} is out of range 0..{}", u32::MAX))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn reads_each_type_and_names_the_key_on_error() {
        let m = map(
            json!({"s":"eth1","e":"","n":null,"b":true,"i":1400,"neg":-1,"f":1.5,"big":5000000000u64}),
        );
        let k = Keys::new("macvlan", &m);
        assert_eq!(k.string("s").unwrap(), Some("eth1"));
        assert_eq!(k.string("e").unwrap(), None);
        assert_eq!(k.string("n").unwrap(), None);
        assert_eq!(k.string("absent").unwrap(), None);
        assert!(k.flag("b").unwrap());
        assert!(!k.flag("absent").unwrap());
        assert_eq!(k.integer("i").unwrap(), Some(1400));
        assert_eq!(k.u32("i").unwrap(), Some(1400));

        let e = k.string("b").unwrap_err().to_string();
        assert!(e.contains("key \"b\"") && e.contains("a string"), "{e}");
        let e = k.flag("s").unwrap_err().to_string();
        assert!(e.contains("key \"s\""), "{e}");
        let e = k.integer("f").unwrap_err().to_string();
        assert!(
            e.contains("key \"f\"") && e.contains("not an integer"),
            "{e}"
        );
        let e = k.u32("neg").unwrap_err().to_string();
        assert!(
            e.contains("key \"neg\"") && e.contains("out of range"),
            "{e}"
        );
        assert!(k.u32("big").is_err());
        assert!(k.integer("s").is_err());
    }
}
