//! Results in every spec version, held in one canonical form (the 1.1.0 shape).
//!
//! Conversion follows the spec's rules: 0.3.0-0.4.0 add `ips[].version` from the address
//! family and know only `name`, `mac` and `sandbox` for an interface; 1.0.0 and 1.1.0 drop
//! `version` and add interface `mtu`, `socketPath` and `pciID`. Route extras (`mtu`, `advmss`,
//! `priority`, `table`, `scope`) are kept in every version from 0.3.0. 0.1.0/0.2.0 keep only the
//! first IPv4 and first IPv6 address, with each family's routes (`dst` and `gw` only) under them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{CniError, Result};
use crate::version::CniVersion;

/// An interface a plugin created or configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub mac: Option<String>,
    /// From 1.0.0 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub sandbox: Option<String>,
    /// From 1.0.0 on.
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "is_none_or_empty"
    )]
    pub socket_path: Option<String>,
    /// From 1.0.0 on.
    #[serde(default, rename = "pciID", skip_serializing_if = "is_none_or_empty")]
    pub pci_id: Option<String>,
}

/// An address assigned to an interface (or, from an IPAM plugin, to be assigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, host bits kept ("10.1.0.5/24").
    pub address: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    pub gateway: Option<IpAddr>,
    /// Index into the result's `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route to install in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only a destination and an optional gateway.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings, in results and in configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or("").is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A CNI result in canonical form. `cni_version` is the version it was read in or converted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkResult {
    pub cni_version: CniVersion,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl Default for NetworkResult {
    fn default() -> Self {
        NetworkResult {
            cni_version: CniVersion::LATEST,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }
}

fn is_none_or_empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// Go plugins may write `"gateway": ""` for no gateway.
fn de_opt_ip<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IpAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// The 0.1.0/0.2.0 per-family block.
#[derive(Debug, Serialize, Deserialize)]
struct LegacyIpConfig {
    ip: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    gw: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct LegacyResult {
    #[serde(default)]
    ip4: Option<LegacyIpConfig>,
    #[serde(default)]
    ip6: Option<LegacyIpConfig>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Debug, Deserialize)]
struct CurrentResult {
    #[serde(default)]
    interfaces: Option<Vec<Interface>>,
    #[serde(default)]
    ips: Option<Vec<IpConfig>>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    dns: Option<Dns>,
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value, version: CniVersion) -> Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| CniError::decode(format!("invalid {version} result: {e}")))
}

fn to_json<T: Serialize>(t: &T) -> Result<Value> {
    serde_json::to_value(t).map_err(|e| CniError::internal(format!("encoding result: {e}")))
}

impl NetworkResult {
    /// Reads a result of any version. A result without `cniVersion` is read as `default_version`
    /// (as a prevResult is read in its config's version).
    pub fn from_value(v: &Value, default_version: CniVersion) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::decode("a result must be a JSON object"))?;
        let version = match obj.get("cniVersion") {
            None | Some(Value::Null) => default_version,
            Some(Value::String(s)) if s.is_empty() => default_version,
            Some(Value::String(s)) => s.parse()?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "result cniVersion must be a string, got {other}"
                )));
            }
        };
        if version.is_legacy_result() {
            let legacy: LegacyResult = decode(v, version)?;
            let mut out = NetworkResult {
                cni_version: version,
                dns: legacy.dns.unwrap_or_default(),
                ..NetworkResult::default()
            };
            for block in [legacy.ip4, legacy.ip6].into_iter().flatten() {
                out.ips.push(IpConfig {
                    address: block.ip,
                    gateway: block.gateway,
                    interface: None,
                });
                out.routes
                    .extend(block.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
            }
            return Ok(out);
        }
        let current: CurrentResult = decode(v, version)?;
        let mut interfaces = current.interfaces.unwrap_or_default();
        if version < CniVersion::V1_0_0 {
            for i in &mut interfaces {
                strip_1_0_interface_fields(i);
            }
        }
        Ok(NetworkResult {
            cni_version: version,
            interfaces,
            ips: current.ips.unwrap_or_default(),
            routes: current.routes.unwrap_or_default(),
            dns: current.dns.unwrap_or_default(),
        })
    }

    /// Reads a result of any version from bytes.
    pub fn from_slice(b: &[u8], default_version: CniVersion) -> Result<Self> {
        let v: Value = serde_json::from_slice(b)
            .map_err(|e| CniError::decode(format!("result is not valid JSON: {e}")))?;
        NetworkResult::from_value(&v, default_version)
    }

    /// Writes the result in `version` by the spec's rules.
    pub fn to_value(&self, version: CniVersion) -> Result<Value> {
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::from(version.as_str()));
        if version.is_legacy_result() {
            return self.to_legacy(version, out);
        }
        if !self.interfaces.is_empty() {
            let mut list = Vec::with_capacity(self.interfaces.len());
            for i in &self.interfaces {
                if version < CniVersion::V1_0_0 {
                    let mut i = i.clone();
                    strip_1_0_interface_fields(&mut i);
                    list.push(to_json(&i)?);
                } else {
                    list.push(to_json(i)?);
                }
            }
            out.insert("interfaces".into(), Value::Array(list));
        }
        if !self.ips.is_empty() {
            let mut list = Vec::with_capacity(self.ips.len());
            for ip in &self.ips {
                let mut entry = Map::new();
                if version.has_ip_version_field() {
                    let family = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    entry.insert("version".into(), Value::from(family));
                }
                if let Value::Object(fields) = to_json(ip)? {
                    entry.extend(fields);
                }
                list.push(Value::Object(entry));
            }
            out.insert("ips".into(), Value::Array(list));
        }
        if !self.routes.is_empty() {
            out.insert("routes".into(), to_json(&self.routes)?);
        }
        out.insert("dns".into(), to_json(&self.dns)?);
        Ok(Value::Object(out))
    }

    fn to_legacy(&self, version: CniVersion, mut out: Map<String, Value>) -> Result<Value> {
        let first = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.address.addr().is_ipv4() == v4)
                .map(|ip| LegacyIpConfig {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.addr().is_ipv4() == v4)
                        .map(|r| LegacyRoute {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        let (ip4, ip6) = (first(true), first(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(CniError::incompatible_version(format!(
                "cannot convert result to {version}: it needs at least one IP address"
            )));
        }
        if let Some(ip4) = ip4 {
            out.insert("ip4".into(), to_json(&ip4)?);
        }
        if let Some(ip6) = ip6 {
            out.insert("ip6".into(), to_json(&ip6)?);
        }
        out.insert("dns".into(), to_json(&self.dns)?);
        Ok(Value::Object(out))
    }

    /// The result as it reads after a trip through `version`: what that version cannot carry
    /// is dropped, and `cni_version` becomes `version`.
    pub fn convert_to(&self, version: CniVersion) -> Result<NetworkResult> {
        NetworkResult::from_value(&self.to_value(version)?, version)
    }

    /// Bytes to print on stdout, in `version`.
    pub fn to_vec_pretty(&self, version: CniVersion) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&self.to_value(version)?)
            .map_err(|e| CniError::internal(format!("encoding result: {e}")))
    }
}

fn strip_1_0_interface_fields(i: &mut Interface) {
    i.mtu = None;
    i.socket_path = None;
    i.pci_id = None;
}

impl Serialize for NetworkResult {
    /// Serializes in the result's own `cni_version`.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value(self.cni_version)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NetworkResult {
    /// Reads any version; without `cniVersion` the result is read as the latest version.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        NetworkResult::from_value(&v, CniVersion::LATEST).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> NetworkResult {
        NetworkResult {
            cni_version: CniVersion::V1_1_0,
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("99:88:77:66:55:44".into()),
                mtu: Some(1500),
                sandbox: Some("/var/run/netns/x".into()),
                socket_path: Some("/tmp/s".into()),
                pci_id: Some("0000:00:1f.6".into()),
            }],
            ips: vec![
                IpConfig {
                    address: "10.1.0.5/16".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "2001:db8::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![
                Route {
                    mtu: Some(1400),
                    table: Some(100),
                    ..Route::new("0.0.0.0/0".parse().unwrap(), None)
                },
                Route::new(
                    "::/0".parse().unwrap(),
                    Some("2001:db8::1".parse().unwrap()),
                ),
            ],
            dns: Dns {
                nameservers: vec!["10.1.0.1".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn v1_output_keeps_everything() {
        let v = sample().to_value(CniVersion::V1_0_0).unwrap();
        assert_eq!(v["interfaces"][0]["mtu"], 1500);
        assert_eq!(v["interfaces"][0]["pciID"], "0000:00:1f.6");
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["routes"][0]["table"], 100);
        let back = NetworkResult::from_value(&v, CniVersion::V0_1_0).unwrap();
        assert_eq!(back.cni_version, CniVersion::V1_0_0);
        assert_eq!(back.ips, sample().ips);
        assert_eq!(back.interfaces, sample().interfaces);
    }

    #[test]
    fn v04_output_adds_version_and_drops_interface_extras() {
        let v = sample().to_value(CniVersion::V0_4_0).unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert!(v["interfaces"][0].get("socketPath").is_none());
        assert!(v["interfaces"][0].get("pciID").is_none());
        assert_eq!(v["routes"][0]["mtu"], 1400);
        assert_eq!(v["dns"]["nameservers"][0], "10.1.0.1");
    }

    #[test]
    fn legacy_output_splits_families() {
        let v = sample().to_value(CniVersion::V0_2_0).unwrap();
        assert_eq!(
            v,
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
                "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0", "gw": "2001:db8::1"}]},
                "dns": {"nameservers": ["10.1.0.1"]}
            })
        );
        let empty = NetworkResult::default();
        assert_eq!(
            empty.to_value(CniVersion::V0_2_0).unwrap_err().code.code(),
            1
        );
    }

    #[test]
    fn empty_gateway_string_is_none_and_bad_ip_is_decode_error() {
        let v = json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24","gateway":""}]});
        let r = NetworkResult::from_value(&v, CniVersion::V1_0_0).unwrap();
        assert_eq!(r.ips[0].gateway, None);
        let bad = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]});
        assert_eq!(
            NetworkResult::from_value(&bad, CniVersion::V1_0_0)
                .unwrap_err()
                .code
                .code(),
            6
        );
        let badver = json!({"cniVersion":"7.0.0"});
        assert_eq!(
            NetworkResult::from_value(&badver, CniVersion::V1_0_0)
                .unwrap_err()
                .code
                .code(),
            1
        );
    }

    #[test]
    fn missing_version_uses_default() {
        let v = json!({"ips":[{"version":"4","address":"10.0.0.2/24"}]});
        let r = NetworkResult::from_value(&v, CniVersion::V0_3_1).unwrap();
        assert_eq!(r.cni_version, CniVersion::V0_3_1);
        let s: NetworkResult = serde_json::from_value(v).unwrap();
        assert_eq!(s.cni_version, CniVersion::LATEST);
        assert_eq!(
            serde_json::to_value(&s).unwrap()["cniVersion"],
            CniVersion::LATEST.as_str()
        );
    }

    #[test]
    fn pre_1_0_input_drops_interface_extras() {
        let v = json!({"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mtu":9000}]});
        let r = NetworkResult::from_value(&v, CniVersion::V1_0_0).unwrap();
        assert_eq!(r.interfaces[0].mtu, None);
    }
}
