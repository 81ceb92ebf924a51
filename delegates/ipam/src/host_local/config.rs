//! The host-local config: keys, defaults and refusals as the reference reads them, with errors
//! that name the key.

use std::net::IpAddr;
use std::path::PathBuf;

use multinet_cni::{CniEnv, CniError, CniVersion, NetConf, Route};
use serde_json::{Map, Value};

use crate::addr::parse_ip_or_cidr;
use crate::error::{IpamError, IpamResult};
use crate::json::{as_array, as_object, field, opt_ip, opt_str, parse_cidr, parse_routes};
use crate::range::{RangeSet, RawRange};

/// Where the reference keeps its allocations.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A requested address and where it was asked for (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedIp {
    pub ip: IpAddr,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct HostLocalConfig {
    /// The network name: the store's directory under `data_dir`.
    pub name: String,
    pub data_dir: PathBuf,
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: Option<PathBuf>,
    pub requested: Vec<RequestedIp>,
}

/// The store location only: what DEL and GC need, so they work even when the ranges changed.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    pub name: String,
    pub data_dir: PathBuf,
}

/// The network name must be one path component: it names a directory under dataDir.
pub fn validate_network_name(name: &str) -> IpamResult<()> {
    if name.is_empty() {
        return Err(IpamError::config("name", "is missing or empty"));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(IpamError::config(
            "name",
            format!("{name:?} cannot be used as a directory name"),
        ));
    }
    Ok(())
}

pub fn ipam_object(ipam: Option<&Value>) -> IpamResult<&Map<String, Value>> {
    match ipam {
        None | Some(Value::Null) => {
            Err(IpamError::config("ipam", "IPAM config missing 'ipam' key"))
        }
        Some(v) => as_object(v, "ipam"),
    }
}

pub fn store_location(conf: &NetConf, ipam: &Map<String, Value>) -> IpamResult<StoreLocation> {
    validate_network_name(&conf.name)?;
    let data_dir = match opt_str(ipam, "dataDir", "ipam.dataDir")? {
        None | Some("") => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) => PathBuf::from(d),
    };
    Ok(StoreLocation {
        name: conf.name.clone(),
        data_dir,
    })
}

fn raw_range(v: &Value, key: &str) -> IpamResult<RawRange> {
    let obj = as_object(v, key)?;
    let subnet = field(obj, "subnet")
        .map(|s| parse_cidr(s, &format!("{key}.subnet")))
        .transpose()?;
    Ok(RawRange {
        key: key.to_string(),
        subnet,
        range_start: opt_ip(obj, "rangeStart", &format!("{key}.rangeStart"))?,
        range_end: opt_ip(obj, "rangeEnd", &format!("{key}.rangeEnd"))?,
        gateway: opt_ip(obj, "gateway", &format!("{key}.gateway"))?,
    })
}

/// A list of range sets (`ipam.ranges`, `runtimeConfig.ipRanges`).
fn range_sets(v: &Value, key: &str) -> IpamResult<Vec<RangeSet>> {
    let mut out = Vec::new();
    for (i, set) in as_array(v, key)?.iter().enumerate() {
        let set_key = format!("{key}[{i}]");
        let raws = as_array(set, &set_key)?
            .iter()
            .enumerate()
            .map(|(j, r)| raw_range(r, &format!("{set_key}[{j}]")))
            .collect::<IpamResult<Vec<_>>>()?;
        out.push(RangeSet::canonicalize(&set_key, &raws)?);
    }
    Ok(out)
}

fn requested_list(v: Option<&Value>, key: &str, out: &mut Vec<RequestedIp>) -> IpamResult<()> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    for (i, item) in as_array(v, key)?.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let s = crate::json::as_str(item, &k)?;
        let ip = parse_ip_or_cidr(s)
            .ok_or_else(|| IpamError::config(&k, format!("{s:?} is not an IP address")))?;
        out.push(RequestedIp { ip, source: k });
    }
    Ok(())
}

/// The requested addresses: CNI_ARGS `IP`, then `args.cni.ips`, then `runtimeConfig.ips`.
pub fn requested_ips(conf: &NetConf, env: &CniEnv) -> IpamResult<Vec<RequestedIp>> {
    let mut out = Vec::new();
    if let Some(s) = env.arg("IP").filter(|s| !s.is_empty()) {
        let ip = parse_ip_or_cidr(s).ok_or_else(|| {
            IpamError::config("CNI_ARGS IP", format!("{s:?} is not an IP address"))
        })?;
        out.push(RequestedIp {
            ip,
            source: "CNI_ARGS IP".into(),
        });
    }
    requested_list(
        conf.args_cni().and_then(|a| a.get("ips")),
        "args.cni.ips",
        &mut out,
    )?;
    requested_list(
        conf.runtime_config.as_ref().and_then(|r| r.get("ips")),
        "runtimeConfig.ips",
        &mut out,
    )?;
    Ok(out)
}

impl HostLocalConfig {
    /// Reads the full config of the calling plugin, with `ipam` as its IPAM section.
    pub fn parse(
        conf: &NetConf,
        ipam: Option<&Value>,
        env: &CniEnv,
    ) -> IpamResult<HostLocalConfig> {
        let ipam = ipam_object(ipam)?;
        let loc = store_location(conf, ipam)?;
        let routes = parse_routes(field(ipam, "routes"), "ipam.routes")?;
        let resolv_conf = opt_str(ipam, "resolvConf", "ipam.resolvConf")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);

        let mut ranges = Vec::new();
        if let Some(rt) = conf
            .runtime_config
            .as_ref()
            .and_then(|r| field(r, "ipRanges"))
        {
            ranges.extend(range_sets(rt, "runtimeConfig.ipRanges")?);
        }
        if field(ipam, "subnet").is_some() {
            let legacy = raw_range(&Value::Object(ipam.clone()), "ipam")?;
            ranges.push(RangeSet::canonicalize("ipam", &[legacy])?);
        }
        if let Some(v) = field(ipam, "ranges") {
            ranges.extend(range_sets(v, "ipam.ranges")?);
        }
        if ranges.is_empty() {
            return Err(IpamError::config(
                "ipam.ranges",
                "no IP ranges specified (set ipam.ranges or ipam.subnet)",
            ));
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in ranges.iter().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(IpamError::config(
                        b.key.clone(),
                        format!("range set {b} overlaps with {} ({a})", a.key),
                    ));
                }
            }
        }
        let version = conf.version()?;
        let v4 = ranges.iter().filter(|s| s.is_v4()).count();
        if version < CniVersion::V0_3_0 && (v4 > 1 || ranges.len() - v4 > 1) {
            return Err(CniError::incompatible_version(format!(
                "CNI version {version} does not support more than 1 address per family"
            ))
            .into());
        }
        Ok(HostLocalConfig {
            name: loc.name,
            data_dir: loc.data_dir,
            ranges,
            routes,
            resolv_conf,
            requested: requested_ips(conf, env)?,
        })
    }

    /// Pairs each requested address with the first range set that contains it (one per set,
    /// as the reference does); an address no set takes is an error naming where it came from.
    pub fn assign_requested(&self) -> IpamResult<Vec<Option<IpAddr>>> {
        let mut per_set = vec![None; self.ranges.len()];
        for req in &self.requested {
            let slot = self
                .ranges
                .iter()
                .enumerate()
                .find(|(i, set)| per_set[*i].is_none() && set.contains(req.ip))
                .map(|(i, _)| i);
            match slot {
                Some(i) => per_set[i] = Some(req.ip),
                None => {
                    return Err(IpamError::config(
                        &req.source,
                        format!(
                            "requested IP {} is not in any free range set ({})",
                            req.ip,
                            self.ranges
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ));
                }
            }
        }
        Ok(per_set)
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

    fn parse(v: Value, args: &str) -> IpamResult<HostLocalConfig> {
        let conf = NetConf::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        HostLocalConfig::parse(&conf, conf.ipam.as_ref(), &env(args))
    }

    #[test]
    fn legacy_is_prepended_and_runtime_ranges_first() {
        let c = parse(
            json!({"cniVersion":"1.0.0","name":"n","type":"x",
                "runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/24"}]], "ips": ["10.1.0.9/24"]},
                "args": {"cni": {"ips": ["2001:db8::9"]}},
                "ipam": {"type":"host-local","subnet":"10.1.0.0/24","rangeStart":"10.1.0.5",
                         "ranges":[[{"subnet":"2001:db8::/64"}]], "dataDir": "/tmp/x",
                         "routes": [{"dst": "0.0.0.0/0"}]}}),
            "IgnoreUnknown=1;IP=10.9.0.7",
        )
        .unwrap();
        let keys: Vec<&str> = c.ranges.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            ["runtimeConfig.ipRanges[0]", "ipam", "ipam.ranges[0]"]
        );
        assert_eq!(c.ranges[1].ranges[0].range_start.to_string(), "10.1.0.5");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let req: Vec<String> = c
            .requested
            .iter()
            .map(|r| format!("{}@{}", r.ip, r.source))
            .collect();
        assert_eq!(
            req,
            [
                "10.9.0.7@CNI_ARGS IP",
                "2001:db8::9@args.cni.ips[0]",
                "10.1.0.9@runtimeConfig.ips[0]"
            ]
        );
        let assigned = c.assign_requested().unwrap();
        assert_eq!(assigned.iter().flatten().count(), 3);
    }

    #[test]
    fn two_requests_in_one_set_is_an_error() {
        let c = parse(
            json!({"cniVersion":"1.0.0","name":"n","type":"x",
                "args": {"cni": {"ips": ["10.1.0.5", "10.1.0.6"]}},
                "ipam": {"subnet":"10.1.0.0/24"}}),
            "",
        )
        .unwrap();
        assert!(
            matches!(c.assign_requested(), Err(IpamError::Config { key, .. }) if key == "args.cni.ips[1]")
        );
    }

    #[test]
    fn errors_name_keys() {
        let cases = [
            (json!({"name":"n","type":"x"}), "ipam"),
            (json!({"name":"n","type":"x","ipam":{}}), "ipam.ranges"),
            (
                json!({"name":"","type":"x","ipam":{"subnet":"10.0.0.0/24"}}),
                "name",
            ),
            (
                json!({"name":"a/b","type":"x","ipam":{"subnet":"10.0.0.0/24"}}),
                "name",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"subnet":"10.0.0.0/24","dataDir":5}}),
                "ipam.dataDir",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.128/25"}]]}}),
                "ipam.ranges[1]",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"ranges":[[]]}}),
                "ipam.ranges[0]",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"ranges":[[{"rangeStart":"10.0.0.1"}]]}}),
                "ipam.ranges[0][0].subnet",
            ),
            (
                json!({"name":"n","type":"x","ipam":{"subnet":"10.0.0.0/24","resolvConf":[]}}),
                "ipam.resolvConf",
            ),
            (
                json!({"name":"n","type":"x","runtimeConfig":{"ips":["bad"]},"ipam":{"subnet":"10.0.0.0/24"}}),
                "runtimeConfig.ips[0]",
            ),
            (
                json!({"name":"n","type":"x","runtimeConfig":{"ipRanges":[[{"subnet":"x"}]]},"ipam":{"subnet":"10.0.0.0/24"}}),
                "runtimeConfig.ipRanges[0][0].subnet",
            ),
        ];
        for (v, key) in cases {
            match parse(v.clone(), "") {
                Err(IpamError::Config { key: k, .. }) => assert_eq!(k, key, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
        }
        match parse(json!({"name":"n","type":"x"}), "IP=nope") {
            Err(IpamError::Config { key, .. }) => assert_eq!(key, "ipam"),
            other => panic!("{other:?}"),
        }
        match parse(
            json!({"name":"n","type":"x","ipam":{"subnet":"10.0.0.0/24"}}),
            "IP=nope",
        ) {
            Err(IpamError::Config { key, .. }) => assert_eq!(key, "CNI_ARGS IP"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_versions_allow_one_address_per_family() {
        let two_v4 = json!({"cniVersion":"0.2.0","name":"n","type":"x",
            "ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.1.0/24"}]]}});
        assert!(matches!(parse(two_v4, ""), Err(IpamError::Cni(e)) if e.code.code() == 1));
    }
}
