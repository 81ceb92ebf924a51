//! static: fixed addresses from the config, CNI_ARGS, `args.cni.ips` or `runtimeConfig.ips`.
//!
//! Precedence as the reference: `ipam.addresses`, plus CNI_ARGS `IP` (comma list of CIDRs),
//! with CNI_ARGS `GATEWAY` (comma list) setting the gateway of every address whose subnet
//! contains it; `args.cni.ips` replaces that list, and `runtimeConfig.ips` replaces it again.
//! DEL does nothing. CHECK needs prevResult and, stricter than the reference, fails when a
//! configured address is missing from it, not only when its gateway differs.

use std::net::IpAddr;

use ipnet::IpNet;
use multinet_cni::{CniEnv, CniError, CniVersion, Dns, IpConfig, NetConf, NetworkResult, Route};
use serde_json::Value;

use crate::addr::canonical;
use crate::error::{IpamError, IpamResult};
use crate::host_local::config::ipam_object;
use crate::json::{as_array, as_object, as_str, field, opt_ip, parse_dns, parse_routes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAddress {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct StaticConfig {
    pub addresses: Vec<StaticAddress>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn parse_cidr_str(s: &str, key: &str) -> IpamResult<IpNet> {
    let s = s.trim();
    let net: IpNet = s.parse().map_err(|_| {
        IpamError::config(
            key,
            format!("{s:?} is not in CIDR notation (address/prefix)"),
        )
    })?;
    IpNet::new(canonical(net.addr()), net.prefix_len())
        .map_err(|e| IpamError::config(key, e.to_string()))
}

fn cidr_list(v: &Value, key: &str) -> IpamResult<Vec<StaticAddress>> {
    as_array(v, key)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let k = format!("{key}[{i}]");
            Ok(StaticAddress {
                address: parse_cidr_str(as_str(item, &k)?, &k)?,
                gateway: None,
            })
        })
        .collect()
}

impl StaticConfig {
    pub fn parse(conf: &NetConf, ipam: Option<&Value>, env: &CniEnv) -> IpamResult<StaticConfig> {
        let ipam = ipam_object(ipam)?;
        let mut addresses = Vec::new();
        if let Some(list) = field(ipam, "addresses") {
            for (i, item) in as_array(list, "ipam.addresses")?.iter().enumerate() {
                let k = format!("ipam.addresses[{i}]");
                let obj = as_object(item, &k)?;
                let address = field(obj, "address")
                    .ok_or_else(|| IpamError::config(format!("{k}.address"), "is missing"))?;
                let address = parse_cidr_str(
                    as_str(address, &format!("{k}.address"))?,
                    &format!("{k}.address"),
                )?;
                let gateway = opt_ip(obj, "gateway", &format!("{k}.gateway"))?;
                addresses.push(StaticAddress { address, gateway });
            }
        }
        if let Some(ips) = env.arg("IP").filter(|s| !s.is_empty()) {
            for item in ips.split(',') {
                addresses.push(StaticAddress {
                    address: parse_cidr_str(item, "CNI_ARGS IP")?,
                    gateway: None,
                });
            }
        }
        if let Some(gws) = env.arg("GATEWAY").filter(|s| !s.is_empty()) {
            for item in gws.split(',') {
                let gw: IpAddr = item.trim().parse().map(canonical).map_err(|_| {
                    IpamError::config("CNI_ARGS GATEWAY", format!("{item:?} is not an IP address"))
                })?;
                for a in addresses.iter_mut().filter(|a| a.address.contains(&gw)) {
                    a.gateway = Some(gw);
                }
            }
        }
        if let Some(ips) = conf.args_cni().and_then(|a| field(a, "ips")) {
            let list = cidr_list(ips, "args.cni.ips")?;
            if !list.is_empty() {
                addresses = list;
            }
        }
        if let Some(ips) = conf.runtime_config.as_ref().and_then(|r| field(r, "ips")) {
            let list = cidr_list(ips, "runtimeConfig.ips")?;
            if !list.is_empty() {
                addresses = list;
            }
        }
        let version = conf.version()?;
        let v4 = addresses
            .iter()
            .filter(|a| a.address.addr().is_ipv4())
            .count();
        if version < CniVersion::V0_3_0 && (v4 > 1 || addresses.len() - v4 > 1) {
            return Err(CniError::incompatible_version(format!(
                "CNI version {version} does not support more than 1 address per family"
            ))
            .into());
        }
        Ok(StaticConfig {
            addresses,
            routes: parse_routes(field(ipam, "routes"), "ipam.routes")?,
            dns: parse_dns(field(ipam, "dns"), "ipam.dns")?,
        })
    }

    pub fn result(&self) -> NetworkResult {
        NetworkResult {
            ips: self
                .addresses
                .iter()
                .map(|a| IpConfig {
                    address: a.address,
                    gateway: a.gateway,
                    interface: None,
                })
                .collect(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
            ..NetworkResult::default()
        }
    }

    /// Every configured address is in prevResult, with the configured gateway when one is set.
    pub fn check(&self, conf: &NetConf, ifname: &str) -> IpamResult<()> {
        let prev = conf
            .prev_result()?
            .ok_or_else(|| IpamError::config("prevResult", "required for CHECK but missing"))?;
        for a in &self.addresses {
            let Some(found) = prev
                .ips
                .iter()
                .find(|p| p.address.addr() == a.address.addr())
            else {
                return Err(IpamError::NotFound(format!(
                    "static: address {} is not in prevResult for interface {ifname}",
                    a.address
                )));
            };
            if let Some(gw) = a.gateway
                && found.gateway != Some(gw)
            {
                return Err(IpamError::NotFound(format!(
                    "static: address {} on interface {ifname} has gateway {:?}, expected {gw}",
                    a.address, found.gateway
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(args: &str) -> CniEnv {
        CniEnv::from_vars([
            ("CNI_COMMAND".to_string(), "ADD".to_string()),
            ("CNI_CONTAINERID".to_string(), "c".to_string()),
            ("CNI_NETNS".to_string(), "/x".to_string()),
            ("CNI_IFNAME".to_string(), "eth0".to_string()),
            ("CNI_ARGS".to_string(), args.to_string()),
            ("CNI_PATH".to_string(), "/x".to_string()),
        ])
        .unwrap()
    }

    fn parse(v: Value, args: &str) -> IpamResult<(NetConf, StaticConfig)> {
        let conf = NetConf::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        let s = StaticConfig::parse(&conf, conf.ipam.as_ref(), &env(args))?;
        Ok((conf, s))
    }

    #[test]
    fn precedence() {
        let base = json!({"cniVersion":"1.0.0","name":"n","type":"x",
            "ipam":{"type":"static","addresses":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}],
                    "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["1.1.1.1"]}}});
        let (_, s) = parse(
            base.clone(),
            "IP=10.1.0.5/16,2001:db8::5/64;GATEWAY=10.1.0.1",
        )
        .unwrap();
        let r = s.result();
        let got: Vec<String> = r
            .ips
            .iter()
            .map(|i| format!("{}|{:?}", i.address, i.gateway))
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.5/24|Some(10.0.0.1)",
                "10.1.0.5/16|Some(10.1.0.1)",
                "2001:db8::5/64|None"
            ]
        );
        assert_eq!(r.dns.nameservers, ["1.1.1.1"]);
        let mut with_args = base.clone();
        with_args["args"] = json!({"cni": {"ips": ["10.2.0.5/24"]}});
        let (_, s) = parse(with_args.clone(), "IP=10.1.0.5/16").unwrap();
        assert_eq!(s.addresses.len(), 1);
        assert_eq!(s.addresses[0].address.to_string(), "10.2.0.5/24");
        with_args["runtimeConfig"] = json!({"ips": ["10.3.0.5/24"]});
        let (_, s) = parse(with_args, "").unwrap();
        assert_eq!(s.addresses[0].address.to_string(), "10.3.0.5/24");
    }

    #[test]
    fn errors_name_keys() {
        for (v, args, key) in [
            (json!({"name":"n","type":"x"}), "", "ipam"),
            (
                json!({"name":"n","type":"x","ipam":{"addresses":[{"address":"10.0.0.5"}]}}),
                "",
                "ipam.addresses[0].address",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"addresses":[{}]}}),
                "",
                "ipam.addresses[0].address",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"addresses":[{"address":"10.0.0.5/24","gateway":"x"}]}}),
                "",
                "ipam.addresses[0].gateway",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"addresses":5}}),
                "",
                "ipam.addresses",
            ),
            (
                json!({"name":"n","type":"x","ipam":{}}),
                "IP=10.0.0.1",
                "CNI_ARGS IP",
            ),
            (
                json!({"name":"n","type":"x","ipam":{}}),
                "IP=10.0.0.1/24;GATEWAY=q",
                "CNI_ARGS GATEWAY",
            ),
            (
                json!({"name":"n","type":"x","args":{"cni":{"ips":["1"]}},"ipam":{}}),
                "",
                "args.cni.ips[0]",
            ),
            (
                json!({"name":"n","type":"x","runtimeConfig":{"ips":[1]},"ipam":{}}),
                "",
                "runtimeConfig.ips[0]",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"routes":[{"dst":"1"}]}}),
                "",
                "ipam.routes[0].dst",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"dns":{"search":"a"}}}),
                "",
                "ipam.dns",
            ),
        ] {
            match parse(v.clone(), args) {
                Err(IpamError::Config { key: k, .. }) => assert_eq!(k, key, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
        }
    }

    #[test]
    fn check_against_prev_result() {
        let v = json!({"cniVersion":"1.0.0","name":"n","type":"x",
            "ipam":{"addresses":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}]},
            "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}]}});
        let (conf, s) = parse(v.clone(), "").unwrap();
        s.check(&conf, "eth0").unwrap();
        let mut wrong_gw = v.clone();
        wrong_gw["prevResult"]["ips"][0]["gateway"] = json!("10.0.0.2");
        let (conf, s) = parse(wrong_gw, "").unwrap();
        assert!(matches!(
            s.check(&conf, "eth0"),
            Err(IpamError::NotFound(_))
        ));
        let mut missing = v.clone();
        missing["prevResult"]["ips"][0]["address"] = json!("10.0.0.6/24");
        let (conf, s) = parse(missing, "").unwrap();
        assert!(matches!(
            s.check(&conf, "eth0"),
            Err(IpamError::NotFound(_))
        ));
        let mut none = v;
        none.as_object_mut().unwrap().remove("prevResult");
        let (conf, s) = parse(none, "").unwrap();
        assert!(
            matches!(s.check(&conf, "eth0"), Err(IpamError::Config { key, .. }) if key == "prevResult")
        );
    }
}
