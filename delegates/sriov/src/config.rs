//! The `"type": "sriov"` network config: every key of the reference SR-IOV CNI with the same
//! validation rules, plus `pool`. Parsing is pure and runs before anything is touched, so a bad
//! config changes nothing. Keys match case-insensitively (an exact match wins), as the
//! reference's decoder does.

use std::path::PathBuf;
use std::str::FromStr;

use multinet_cni::{CniEnv, NetConf};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, SriovError};
use crate::pci::PciAddress;
use crate::selector::PoolSpec;
use crate::topology::{TOPOLOGY_HINT_KEY, TopologyHint};
use multinet_cni::DEVICE_INFO_FILE_CAPABILITY;

pub use multinet_netlink::{MacAddr, VfLinkState, VlanProto};

/// VLAN, QoS and protocol of a VF, as `ip link set PF vf N vlan V qos Q proto P` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VlanConfig {
    pub vlan: u16,
    pub qos: u8,
    pub proto: VlanProto,
}

/// Minimum and maximum TX rate in Mbps; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TxRate {
    pub min: u32,
    pub max: u32,
}

/// The PF-side VF settings a config asks for; None leaves a setting alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfSettings {
    pub vlan: Option<VlanConfig>,
    pub mac: Option<MacAddr>,
    pub rate: Option<TxRate>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
}

impl VfSettings {
    /// The config keys of the settings that need the PF to program a VF (all but `mac`, which
    /// also works on a netdev alone).
    pub fn pf_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.vlan.is_some() {
            keys.push("vlan");
        }
        if self.rate.is_some() {
            keys.push("max_tx_rate");
        }
        if self.spoofchk.is_some() {
            keys.push("spoofchk");
        }
        if self.trust.is_some() {
            keys.push("trust");
        }
        if self.link_state.is_some() {
            keys.push("link_state");
        }
        keys
    }
}

/// Log verbosity (`logLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Panic,
    Error,
    Warning,
    #[default]
    Info,
    Debug,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "panic" => Ok(LogLevel::Panic),
            "error" => Ok(LogLevel::Error),
            "warning" => Ok(LogLevel::Warning),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            _ => Err(format!(
                "unknown log level {s:?} (panic, error, warning, info, debug)"
            )),
        }
    }
}

/// Where and how much to log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConf {
    pub level: LogLevel,
    pub file: Option<PathBuf>,
    /// A problem with the log keys, reported once logging is set up (the reference only warns).
    pub warning: Option<String>,
}

/// A validated ADD/CHECK config.
#[derive(Debug, Clone, PartialEq)]
pub struct SriovConf {
    pub name: String,
    pub device_id: Option<PciAddress>,
    pub pool: Option<PoolSpec>,
    pub settings: VfSettings,
    pub ipam: Option<Value>,
    pub log: LogConf,
    /// runtimeConfig `CNIDeviceInfoFile`.
    pub device_info_file: Option<PathBuf>,
    /// Where the pod's other devices are, to pick a pool's VF near them.
    pub topology: TopologyHint,
}

/// What DEL needs from the config; DEL works from its cache, so VF keys are not validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DelConf {
    pub name: String,
    pub ipam: Option<Value>,
    pub log: LogConf,
}

/// Finds `key` in `map`: the exact key, else the first key equal ignoring ASCII case.
/// Returns the key as written (for messages) and its value; JSON null counts as absent.
pub fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<(&'a str, &'a Value)> {
    let found = map
        .get_key_value(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))?;
    (!found.1.is_null()).then_some((found.0.as_str(), found.1))
}

fn get_int(map: &Map<String, Value>, key: &str) -> Result<Option<(String, i64)>> {
    let Some((k, v)) = lookup(map, key) else {
        return Ok(None);
    };
    let n = v
        .as_i64()
        .ok_or_else(|| SriovError::config(k, format!("must be an integer, not {v}")))?;
    Ok(Some((k.to_owned(), n)))
}

fn get_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<(&'a str, &'a str)>> {
    let Some((k, v)) = lookup(map, key) else {
        return Ok(None);
    };
    let s = v
        .as_str()
        .ok_or_else(|| SriovError::config(k, format!("must be a string, not {v}")))?;
    Ok(Some((k, s)))
}

fn parse_mac(key: &str, s: &str) -> Result<MacAddr> {
    let mac: MacAddr = s
        .to_ascii_lowercase()
        .parse()
        .map_err(|e: multinet_netlink::MacParseError| SriovError::config(key, e.to_string()))?;
    if mac.is_multicast() {
        return Err(SriovError::config(
            key,
            format!("{mac} is a multicast address; a VF needs a unicast MAC"),
        ));
    }
    Ok(mac)
}

fn parse_vlan(map: &Map<String, Value>) -> Result<Option<VlanConfig>> {
    let vlan = get_int(map, "vlan")?;
    let qos = get_int(map, "vlanQoS")?;
    let proto = get_str(map, "vlanProto")?;
    let Some((vlan_key, vlan)) = vlan else {
        if let Some((k, _)) = qos {
            return Err(SriovError::config(
                k,
                "vlan id must be configured to set vlan QoS",
            ));
        }
        if let Some((k, _)) = proto {
            return Err(SriovError::config(
                k,
                "vlan id must be configured to set vlan proto",
            ));
        }
        return Ok(None);
    };
    let vlan = u16::try_from(vlan)
        .ok()
        .filter(|v| *v <= 4094)
        .ok_or_else(|| {
            SriovError::config(
                &vlan_key,
                format!("vlan id {vlan} invalid: value must be in the range 0-4094"),
            )
        })?;
    let qos = match qos {
        None => 0,
        Some((k, q)) => {
            let q = u8::try_from(q).ok().filter(|q| *q <= 7).ok_or_else(|| {
                SriovError::config(
                    &k,
                    format!("vlan QoS {q} invalid: value must be in the range 0-7"),
                )
            })?;
            if q != 0 && vlan == 0 {
                return Err(SriovError::config(
                    &k,
                    "non-zero vlan QoS needs a vlan id other than 0",
                ));
            }
            q
        }
    };
    let proto = match proto {
        None => VlanProto::Dot1Q,
        Some((k, p)) => match p.to_ascii_lowercase().as_str() {
            "802.1q" => VlanProto::Dot1Q,
            "802.1ad" => {
                if vlan == 0 {
                    return Err(SriovError::config(
                        k,
                        "802.1ad needs a vlan id other than 0",
                    ));
                }
                VlanProto::Dot1AD
            }
            other => {
                return Err(SriovError::config(
                    k,
                    format!("vlan proto {other:?} invalid: value must be 802.1q or 802.1ad"),
                ));
            }
        },
    };
    Ok(Some(VlanConfig { vlan, qos, proto }))
}

fn parse_rate(map: &Map<String, Value>) -> Result<Option<TxRate>> {
    let rate = |key: &str| -> Result<Option<(String, u32)>> {
        match get_int(map, key)? {
            None => Ok(None),
            Some((k, n)) => {
                let n = u32::try_from(n).map_err(|_| {
                    SriovError::config(&k, format!("{n} invalid: a rate is 0 or more Mbps"))
                })?;
                Ok(Some((k, n)))
            }
        }
    };
    let min = rate("min_tx_rate")?;
    let max = rate("max_tx_rate")?;
    if min.is_none() && max.is_none() {
        return Ok(None);
    }
    // Either one set sends both, the missing one as 0 (no limit).
    let rate = TxRate {
        min: min.as_ref().map_or(0, |(_, n)| *n),
        max: max.as_ref().map_or(0, |(_, n)| *n),
    };
    if rate.max != 0 && rate.min > rate.max {
        let key = min.map_or_else(|| "min_tx_rate".to_owned(), |(k, _)| k);
        return Err(SriovError::config(
            key,
            format!("min_tx_rate {} is above max_tx_rate {}", rate.min, rate.max),
        ));
    }
    Ok(Some(rate))
}

fn parse_on_off(map: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    // The reference treats every value but "on" as off.
    Ok(get_str(map, key)?.map(|(_, v)| v == "on"))
}

fn parse_link_state(map: &Map<String, Value>) -> Result<Option<VfLinkState>> {
    let Some((k, v)) = get_str(map, "link_state")? else {
        return Ok(None);
    };
    match v {
        "auto" => Ok(Some(VfLinkState::Auto)),
        "enable" => Ok(Some(VfLinkState::Enable)),
        "disable" => Ok(Some(VfLinkState::Disable)),
        other => Err(SriovError::config(
            k,
            format!("link_state {other:?} invalid: value must be auto, enable or disable"),
        )),
    }
}

/// `logFile` comes from a NAD author: it must obey the rule every delegate config written by one
/// obeys (`multinet_cni::trust`: a file under /var/log/, no `..`). The key is looked up
/// ignoring case, so "LOGFILE" is held to the same rule.
fn check_log_file(key: &str, value: &Value) -> Result<()> {
    multinet_cni::trust::check_delegate_config(&multinet_cni::DelegateConf::new(
        serde_json::json!({ "logFile": value }),
    ))
    .map_err(|violation| SriovError::config(key, violation.msg))
}

/// The log keys; a `logFile` that breaks the rule is dropped (logs go to stderr) and returned
/// as the error ADD and CHECK refuse the config with.
fn parse_log(map: &Map<String, Value>) -> (LogConf, Option<SriovError>) {
    let mut log = LogConf::default();
    if let Some((k, v)) = lookup(map, "logLevel") {
        match v.as_str().map(str::parse::<LogLevel>) {
            Some(Ok(level)) => log.level = level,
            Some(Err(e)) => log.warning = Some(format!("key {k:?}: {e}")),
            None => log.warning = Some(format!("key {k:?}: must be a string, not {v}")),
        }
    }
    let mut refused = None;
    if let Some((k, v)) = lookup(map, "logFile") {
        match (check_log_file(k, v), v) {
            (Err(e), _) => {
                log.warning = Some(format!("{e}; logging to stderr"));
                refused = Some(e);
            }
            (Ok(()), Value::String(f)) if !f.is_empty() => log.file = Some(PathBuf::from(f)),
            (Ok(()), _) => {}
        }
    }
    (log, refused)
}

/// The requested MAC: `mac`, overridden by CNI_ARGS `MAC=`, overridden by `runtimeConfig.mac`.
fn parse_requested_mac(conf: &NetConf, env: &CniEnv) -> Result<Option<MacAddr>> {
    let mut mac = match get_str(&conf.extra, "mac")? {
        Some((k, s)) => Some(parse_mac(k, s)?),
        None => None,
    };
    if let Some(s) = env.arg("MAC") {
        mac = Some(parse_mac("CNI_ARGS MAC", s)?);
    }
    if let Some(rc) = &conf.runtime_config
        && let Some((_, v)) = lookup(rc, "mac")
    {
        let s = v.as_str().ok_or_else(|| {
            SriovError::config("runtimeConfig.mac", format!("must be a string, not {v}"))
        })?;
        mac = Some(parse_mac("runtimeConfig.mac", s)?);
    }
    Ok(mac)
}

impl SriovConf {
    /// Parses and validates the config of an ADD or CHECK.
    pub fn from_request(conf: &NetConf, env: &CniEnv) -> Result<SriovConf> {
        let map = &conf.extra;
        let device_id = match get_str(map, "deviceID")? {
            Some((k, s)) if !s.is_empty() => Some(
                s.parse::<PciAddress>()
                    .map_err(|e| SriovError::config(k, format!("VF PCI address: {e}")))?,
            ),
            _ => None,
        };
        let pool = match lookup(map, "pool") {
            Some((k, v)) => Some(PoolSpec::from_value(k, v)?),
            None => None,
        };
        if device_id.is_none() && pool.is_none() {
            return Err(SriovError::config(
                "deviceID",
                "VF PCI address is required (set by the device plugin through the NAD's \
                 k8s.v1.cni.cncf.io/resourceName, or give \"pool\" to let multinet pick a VF)",
            ));
        }
        let (log, refused_log) = parse_log(map);
        if let Some(e) = refused_log {
            return Err(e);
        }
        let settings = VfSettings {
            vlan: parse_vlan(map)?,
            mac: parse_requested_mac(conf, env)?,
            rate: parse_rate(map)?,
            spoofchk: parse_on_off(map, "spoofchk")?,
            trust: parse_on_off(map, "trust")?,
            link_state: parse_link_state(map)?,
        };
        let device_info_file = conf
            .runtime_config
            .as_ref()
            .and_then(|rc| lookup(rc, DEVICE_INFO_FILE_CAPABILITY))
            .and_then(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let topology = match lookup(map, TOPOLOGY_HINT_KEY) {
            Some((k, v)) => TopologyHint::from_value(k, v)?,
            None => TopologyHint::default(),
        };
        Ok(SriovConf {
            name: conf.name.clone(),
            device_id,
            pool,
            settings,
            ipam: conf.ipam.clone(),
            log,
            device_info_file,
            topology,
        })
    }
}

impl DelConf {
    pub fn from_request(conf: &NetConf) -> DelConf {
        DelConf {
            name: conf.name.clone(),
            ipam: conf.ipam.clone(),
            // DEL never fails on a bad logFile: the warning goes to stderr.
            log: parse_log(&conf.extra).0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(args: &str) -> CniEnv {
        CniEnv::from_vars([
            ("CNI_COMMAND".to_owned(), "ADD".to_owned()),
            ("CNI_CONTAINERID".to_owned(), "c1".to_owned()),
            ("CNI_NETNS".to_owned(), "/run/netns/x".to_owned()),
            ("CNI_IFNAME".to_owned(), "net1".to_owned()),
            ("CNI_PATH".to_owned(), "/opt/cni/bin".to_owned()),
            ("CNI_ARGS".to_owned(), args.to_owned()),
        ])
        .unwrap()
    }

    fn parse(extra: Value) -> Result<SriovConf> {
        parse_with(extra, "")
    }

    fn parse_with(extra: Value, args: &str) -> Result<SriovConf> {
        let mut v = json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        let conf = NetConf::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        SriovConf::from_request(&conf, &env(args))
    }

    fn key_of(r: Result<SriovConf>) -> String {
        match r {
            Err(SriovError::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn full_config() {
        let c = parse(json!({
            "deviceID": "0000:af:06.0", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1AD",
            "mac": "02:AA:00:00:00:01", "spoofchk": "on", "trust": "off", "link_state": "enable",
            "min_tx_rate": 10, "max_tx_rate": 100, "logLevel": "debug", "logFile": "/var/log/x.log",
            "runtimeConfig": {"CNIDeviceInfoFile": "/run/devinfo.json"},
            "ipam": {"type": "host-local"}
        }))
        .unwrap();
        assert_eq!(c.device_id.unwrap().to_string(), "0000:af:06.0");
        assert_eq!(
            c.settings.vlan,
            Some(VlanConfig {
                vlan: 100,
                qos: 3,
                proto: VlanProto::Dot1AD
            })
        );
        assert_eq!(c.settings.mac.unwrap().to_string(), "02:aa:00:00:00:01");
        assert_eq!(c.settings.spoofchk, Some(true));
        assert_eq!(c.settings.trust, Some(false));
        assert_eq!(c.settings.link_state, Some(VfLinkState::Enable));
        assert_eq!(c.settings.rate, Some(TxRate { min: 10, max: 100 }));
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.log.file, Some(PathBuf::from("/var/log/x.log")));
        assert_eq!(c.device_info_file, Some(PathBuf::from("/run/devinfo.json")));
        assert!(c.ipam.is_some());
    }

    #[test]
    fn minimal_config_sets_nothing() {
        let c = parse(json!({"deviceID": "0000:af:06.0"})).unwrap();
        assert_eq!(c.settings, VfSettings::default());
        assert!(c.settings.pf_only_keys().is_empty());
    }

    #[test]
    fn keys_match_case_insensitively() {
        let c = parse(json!({"deviceid": "0000:af:06.0", "VLAN": 7, "Spoofchk": "on"})).unwrap();
        assert_eq!(c.settings.vlan.unwrap().vlan, 7);
        assert_eq!(c.settings.spoofchk, Some(true));
        assert!(c.device_id.is_some());
    }

    #[test]
    fn defaults_follow_the_reference() {
        let c = parse(
            json!({"deviceID": "0000:af:06.0", "vlan": 0, "trust": "yes",
            "max_tx_rate": 50}),
        )
        .unwrap();
        assert_eq!(
            c.settings.vlan,
            Some(VlanConfig {
                vlan: 0,
                qos: 0,
                proto: VlanProto::Dot1Q
            })
        );
        assert_eq!(c.settings.trust, Some(false), "anything but on is off");
        assert_eq!(c.settings.rate, Some(TxRate { min: 0, max: 50 }));
    }

    #[test]
    fn mac_overrides() {
        let base = json!({"deviceID": "0000:af:06.0", "mac": "02:00:00:00:00:01"});
        let c = parse_with(base.clone(), "MAC=02:00:00:00:00:02").unwrap();
        assert_eq!(c.settings.mac.unwrap().to_string(), "02:00:00:00:00:02");
        let mut with_rc = base;
        with_rc["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
        let c = parse_with(with_rc, "MAC=02:00:00:00:00:02").unwrap();
        assert_eq!(c.settings.mac.unwrap().to_string(), "02:00:00:00:00:03");
    }

    #[test]
    fn bad_values_name_their_key() {
        let d = "0000:af:06.0";
        let cases = [
            (json!({}), "deviceID"),
            (json!({"deviceID": "af:06.0"}), "deviceID"),
            (json!({"deviceID": 5}), "deviceID"),
            (
                json!({"deviceID": d, "topologyHint": {"numaNodes": "0"}}),
                "topologyHint",
            ),
            (json!({"deviceID": d, "vlan": 4095}), "vlan"),
            (json!({"deviceID": d, "vlan": -1}), "vlan"),
            (json!({"deviceID": d, "vlan": "100"}), "vlan"),
            (json!({"deviceID": d, "vlanQoS": 1}), "vlanQoS"),
            (json!({"deviceID": d, "vlan": 5, "vlanQoS": 8}), "vlanQoS"),
            (json!({"deviceID": d, "vlan": 0, "vlanQoS": 2}), "vlanQoS"),
            (json!({"deviceID": d, "vlanProto": "802.1q"}), "vlanProto"),
            (
                json!({"deviceID": d, "vlan": 0, "vlanProto": "802.1ad"}),
                "vlanProto",
            ),
            (
                json!({"deviceID": d, "vlan": 3, "vlanProto": "802.1x"}),
                "vlanProto",
            ),
            (json!({"deviceID": d, "link_state": "up"}), "link_state"),
            (
                json!({"deviceID": d, "min_tx_rate": 200, "max_tx_rate": 100}),
                "min_tx_rate",
            ),
            (json!({"deviceID": d, "max_tx_rate": -5}), "max_tx_rate"),
            (json!({"deviceID": d, "mac": "02:00:00:00:00"}), "mac"),
            (json!({"deviceID": d, "mac": "01:00:5e:00:00:01"}), "mac"),
            (json!({"deviceID": d, "spoofchk": true}), "spoofchk"),
            (
                json!({"deviceID": d, "runtimeConfig": {"mac": "zz"}}),
                "runtimeConfig.mac",
            ),
        ];
        for (extra, key) in cases {
            assert_eq!(key_of(parse(extra.clone())), key, "{extra}");
        }
        assert_eq!(
            key_of(parse_with(json!({"deviceID": d}), "MAC=nope")),
            "CNI_ARGS MAC"
        );
    }

    #[test]
    fn min_rate_without_max_is_fine() {
        let c = parse(json!({"deviceID": "0000:af:06.0", "min_tx_rate": 10})).unwrap();
        assert_eq!(c.settings.rate, Some(TxRate { min: 10, max: 0 }));
    }

    #[test]
    fn a_log_file_outside_var_log_is_refused_by_add_and_dropped_by_del() {
        for (key, bad) in [
            ("logFile", json!("/etc/cron.d/x")),
            ("logFile", json!("/var/log/../../etc/shadow")),
            ("logFile", json!("/var/log/")),
            ("logFile", json!(["/var/log/x"])),
            ("LOGFILE", json!("/root/.bashrc")),
        ] {
            let conf = json!({"deviceID": "0000:af:06.0", key: bad});
            let err = parse(conf.clone()).unwrap_err();
            assert_eq!(err.code().code(), 7, "{err}");
            assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
            assert!(err.to_string().contains("/var/log/"), "{err}");
            let conf = NetConf::from_slice(
                &serde_json::to_vec(&json!({
                    "cniVersion": "1.0.0", "name": "n", "type": "sriov", key: bad
                }))
                .unwrap(),
            )
            .unwrap();
            let del = DelConf::from_request(&conf);
            assert_eq!(del.log.file, None, "{key}: {bad}");
            assert!(del.log.warning.unwrap().contains("stderr"));
        }
        let ok = parse(json!({"deviceID": "0000:af:06.0", "logFile": ""})).unwrap();
        assert_eq!(ok.log.file, None);
    }

    #[test]
    fn bad_log_level_only_warns() {
        let c = parse(json!({"deviceID": "0000:af:06.0", "logLevel": "loud"})).unwrap();
        assert_eq!(c.log.level, LogLevel::Info);
        assert!(c.log.warning.unwrap().contains("loud"));
    }
}
