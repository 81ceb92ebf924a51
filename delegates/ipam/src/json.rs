//! Reading typed values out of config JSON with errors that name the key path.

use std::net::IpAddr;

use ipnet::IpNet;
use multinet_cni::{Dns, Route};
use serde_json::{Map, Value};

use crate::addr::canonical;
use crate::error::{IpamError, IpamResult};

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A present, non-null value.
pub fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

pub fn as_object<'a>(v: &'a Value, key: &str) -> IpamResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| IpamError::config(key, format!("must be an object, got {}", kind(v))))
}

pub fn as_array<'a>(v: &'a Value, key: &str) -> IpamResult<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| IpamError::config(key, format!("must be a list, got {}", kind(v))))
}

pub fn as_str<'a>(v: &'a Value, key: &str) -> IpamResult<&'a str> {
    v.as_str()
        .ok_or_else(|| IpamError::config(key, format!("must be a string, got {}", kind(v))))
}

pub fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    key: &str,
) -> IpamResult<Option<&'a str>> {
    field(obj, name).map(|v| as_str(v, key)).transpose()
}

pub fn parse_ip(v: &Value, key: &str) -> IpamResult<IpAddr> {
    let s = as_str(v, key)?;
    s.parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| IpamError::config(key, format!("{s:?} is not an IP address")))
}

pub fn opt_ip(obj: &Map<String, Value>, name: &str, key: &str) -> IpamResult<Option<IpAddr>> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => parse_ip(v, key).map(Some),
    }
}

pub fn parse_cidr(v: &Value, key: &str) -> IpamResult<IpNet> {
    let s = as_str(v, key)?;
    s.parse::<IpNet>()
        .map_err(|_| IpamError::config(key, format!("{s:?} is not a CIDR (address/prefix)")))
}

/// `routes`: a list of {dst, gw, mtu, advmss, priority, table, scope}.
pub fn parse_routes(v: Option<&Value>, key: &str) -> IpamResult<Vec<Route>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, r) in as_array(v, key)?.iter().enumerate() {
        let rk = format!("{key}[{i}]");
        let obj = as_object(r, &rk)?;
        let dst = field(obj, "dst")
            .ok_or_else(|| IpamError::config(format!("{rk}.dst"), "is missing"))?;
        let dst = parse_cidr(dst, &format!("{rk}.dst"))?;
        let gw = opt_ip(obj, "gw", &format!("{rk}.gw"))?;
        if let Some(gw) = gw
            && gw.is_ipv4() != dst.addr().is_ipv4()
        {
            return Err(IpamError::config(
                format!("{rk}.gw"),
                format!("{gw} is not of the same family as dst {dst}"),
            ));
        }
        let num = |name: &str| -> IpamResult<Option<u32>> {
            match field(obj, name) {
                None => Ok(None),
                Some(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        IpamError::config(format!("{rk}.{name}"), "must be a non-negative integer")
                    }),
            }
        };
        let scope = match num("scope")? {
            None => None,
            Some(s) => Some(u8::try_from(s).map_err(|_| {
                IpamError::config(format!("{rk}.scope"), "must be between 0 and 255")
            })?),
        };
        out.push(Route {
            dst,
            gw,
            mtu: num("mtu")?,
            advmss: num("advmss")?,
            priority: num("priority")?,
            table: num("table")?,
            scope,
        });
    }
    Ok(out)
}

/// `dns`: {nameservers, domain, search, options}.
pub fn parse_dns(v: Option<&Value>, key: &str) -> IpamResult<Dns> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Dns::default());
    };
    serde_json::from_value(v.clone()).map_err(|e| IpamError::config(key, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes() {
        let r = parse_routes(
            Some(&json!([{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400}, {"dst": "::/0"}])),
            "ipam.routes",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].mtu, Some(1400));
        for (bad, key) in [
            (json!([{"dst": "0.0.0.0/33"}]), "ipam.routes[0].dst"),
            (json!([{"gw": "10.0.0.1"}]), "ipam.routes[0].dst"),
            (
                json!([{"dst": "0.0.0.0/0", "gw": "x"}]),
                "ipam.routes[0].gw",
            ),
            (
                json!([{"dst": "0.0.0.0/0", "gw": "::1"}]),
                "ipam.routes[0].gw",
            ),
            (
                json!([{"dst": "0.0.0.0/0", "mtu": -1}]),
                "ipam.routes[0].mtu",
            ),
            (json!({"dst": "0.0.0.0/0"}), "ipam.routes"),
            (json!([5]), "ipam.routes[0]"),
        ] {
            match parse_routes(Some(&bad), "ipam.routes") {
                Err(IpamError::Config { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn dns() {
        let d = parse_dns(
            Some(&json!({"nameservers": ["1.1.1.1"], "search": ["a"]})),
            "ipam.dns",
        )
        .unwrap();
        assert_eq!(d.nameservers, vec!["1.1.1.1"]);
        assert!(parse_dns(Some(&json!({"nameservers": "x"})), "ipam.dns").is_err());
    }
}
