//! The validated config of one child link (macvlan or ipvlan): what both drivers share, read
//! before anything touches the kernel.

use multinet_cni::{Dns, NetworkResult, Request};
use multinet_netlink::{IpvlanMode, MacAddr, MacvlanMode};

use crate::error::{Error, Result};
use crate::keys::Keys;

/// Which link the child hangs off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// The interface named in `master` (or taken from prevResult by a chained ipvlan).
    Named(String),
    /// `master` not set: the interface of the default route (in the host, or in the
    /// container with `linkInContainer`).
    DefaultRoute,
}

/// What kind of child link to make, with its kind-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildKind {
    Macvlan {
        mode: MacvlanMode,
        /// The MAC after precedence (config < CNI_ARGS < runtimeConfig); random when None.
        mac: Option<MacAddr>,
        /// `bcqueuelen`: the broadcast queue length; the kernel default when None.
        bcqueuelen: Option<u32>,
    },
    Ipvlan {
        mode: IpvlanMode,
    },
}

/// `IFLA_INFO_KIND` of a macvlan link.
pub const MACVLAN_KIND: &str = "macvlan";
/// `IFLA_INFO_KIND` of an ipvlan link.
pub const IPVLAN_KIND: &str = "ipvlan";

impl ChildKind {
    /// `IFLA_INFO_KIND` of the link.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ChildKind::Macvlan { .. } => MACVLAN_KIND,
            ChildKind::Ipvlan { .. } => IPVLAN_KIND,
        }
    }

    /// A macvlan may not exceed its master's MTU (the reference refuses it); an ipvlan's MTU is
    /// not checked against the master, as in the reference, whose configs rely on that.
    pub fn mtu_bounded_by_master(&self) -> bool {
        matches!(self, ChildKind::Macvlan { .. })
    }

    /// The mode as written in configs.
    pub fn mode_name(&self) -> &'static str {
        match self {
            ChildKind::Macvlan { mode, .. } => macvlan_mode_name(*mode),
            ChildKind::Ipvlan { mode } => ipvlan_mode_name(*mode),
        }
    }
}

/// Where the container's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// No IPAM: a layer-2 link, only brought up.
    None,
    /// The IPAM plugin `ipam.type` allocates them.
    Ipam { plugin_type: String },
    /// A chained ipvlan without IPAM reuses the addresses (and routes) of prevResult.
    PrevResult(Box<NetworkResult>),
}

impl Addressing {
    /// The IPAM type to release on DEL and to forward STATUS, GC and CHECK to.
    pub fn ipam_type(&self) -> Option<&str> {
        match self {
            Addressing::Ipam { plugin_type } => Some(plugin_type),
            _ => None,
        }
    }
}

/// A child link's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConf {
    pub plugin: &'static str,
    pub master: Master,
    /// `linkInContainer`: the master lives in the container's namespace.
    pub link_in_container: bool,
    /// `mtu`; None (or 0 in the config) inherits the master's.
    pub mtu: Option<u32>,
    pub kind: ChildKind,
    pub addressing: Addressing,
    /// The config's top-level `dns`, which the result carries (as the reference does).
    pub dns: Dns,
}

/// The keys both drivers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonKeys {
    pub master: Option<String>,
    pub link_in_container: bool,
    pub mtu: Option<u32>,
    pub ipam_type: Option<String>,
}

/// Reads `master`, `linkInContainer`, `mtu` and `ipam.type`. An `ipam` object without a type
/// (often written as `"ipam": {}`) means no IPAM, as in the reference plugins.
pub fn common_keys(keys: &Keys<'_>, req: &Request) -> Result<CommonKeys> {
    let master = keys.string("master")?.map(str::to_owned);
    let link_in_container = keys.flag("linkInContainer")?;
    let mtu = match keys.integer("mtu")? {
        None | Some(0) => None,
        Some(m) if m < 0 => {
            return Err(keys.invalid(
                "mtu",
                format!("{m} is negative; use 0 (or leave it out) for the master's MTU"),
            ));
        }
        Some(m) => {
            Some(u32::try_from(m).map_err(|_| keys.invalid("mtu", format!("{m} is too large")))?)
        }
    };
    Ok(CommonKeys {
        master,
        link_in_container,
        mtu,
        ipam_type: ipam_type(keys, req)?,
    })
}

/// `ipam.type`, when set.
pub fn ipam_type(keys: &Keys<'_>, req: &Request) -> Result<Option<String>> {
    match &req.config.ipam {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) => match m.get("type") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(t)) if t.is_empty() => Ok(None),
            Some(serde_json::Value::String(t)) => Ok(Some(t.clone())),
            Some(other) => {
                Err(keys.invalid("ipam.type", format!("expected a string, got {other}")))
            }
        },
        Some(other) => Err(keys.invalid("ipam", format!("expected an object, got {other}"))),
    }
}

/// The MTU check done against the master once it is known: a child may not exceed it.
pub fn check_mtu(
    keys_plugin: &'static str,
    mtu: Option<u32>,
    master: &str,
    master_mtu: u32,
) -> Result<()> {
    match mtu {
        Some(m) if m > master_mtu => Err(Error::InvalidKey {
            plugin: keys_plugin,
            key: "mtu".into(),
            msg: format!(
                "{m} is larger than the MTU of master {master:?} ({master_mtu}); allowed 0..={master_mtu}"
            ),
        }),
        _ => Ok(()),
    }
}

pub const MACVLAN_MODES: &str = "bridge, private, vepa or passthru";
pub const IPVLAN_MODES: &str = "l2, l3 or l3s";

/// `mode` for a macvlan; bridge when not set. `source` needs a MAC list the CNI config cannot
/// carry, so it is refused, as in the reference plugin.
pub fn macvlan_mode(keys: &Keys<'_>) -> Result<MacvlanMode> {
    match keys.string("mode")? {
        None | Some("bridge") => Ok(MacvlanMode::Bridge),
        Some("private") => Ok(MacvlanMode::Private),
        Some("vepa") => Ok(MacvlanMode::Vepa),
        Some("passthru") => Ok(MacvlanMode::Passthru),
        Some("source") => Err(keys.invalid(
            "mode",
            format!("macvlan mode \"source\" is not supported; use {MACVLAN_MODES}"),
        )),
        Some(other) => Err(keys.invalid(
            "mode",
            format!("unknown macvlan mode {other:?}; use {MACVLAN_MODES}"),
        )),
    }
}

/// `mode` for an ipvlan; l2 when not set.
pub fn ipvlan_mode(keys: &Keys<'_>) -> Result<IpvlanMode> {
    match keys.string("mode")? {
        None | Some("l2") => Ok(IpvlanMode::L2),
        Some("l3") => Ok(IpvlanMode::L3),
        Some("l3s") => Ok(IpvlanMode::L3s),
        Some(other) => Err(keys.invalid(
            "mode",
            format!("unknown ipvlan mode {other:?}; use {IPVLAN_MODES}"),
        )),
    }
}

pub fn macvlan_mode_name(mode: MacvlanMode) -> &'static str {
    match mode {
        MacvlanMode::Bridge => "bridge",
        MacvlanMode::Private => "private",
        MacvlanMode::Vepa => "vepa",
        MacvlanMode::Passthru => "passthru",
        MacvlanMode::Source => "source",
    }
}

pub fn ipvlan_mode_name(mode: IpvlanMode) -> &'static str {
    match mode {
        IpvlanMode::L2 => "l2",
        IpvlanMode::L3 => "l3",
        IpvlanMode::L3s => "l3s",
    }
}

/// One place a MAC can come from, in rising precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacSource {
    /// The config's `mac`.
    Config,
    /// `MAC=` in CNI_ARGS.
    CniArgs,
    /// `runtimeConfig.mac` (the `mac` capability).
    RuntimeConfig,
}

impl MacSource {
    /// The key, as named in messages.
    pub fn key(&self) -> &'static str {
        match self {
            MacSource::Config => "mac",
            MacSource::CniArgs => "CNI_ARGS MAC",
            MacSource::RuntimeConfig => "runtimeConfig.mac",
        }
    }
}

/// Picks the MAC by precedence (config `mac` < CNI_ARGS `MAC` < `runtimeConfig.mac`) and
/// validates only the winner, as the reference does. A MAC must be a 6-byte unicast address
/// and not all zeroes (the kernel refuses others).
pub fn resolve_mac(
    plugin: &'static str,
    candidates: [(MacSource, Option<&str>); 3],
) -> Result<Option<MacAddr>> {
    let winner = candidates
        .iter()
        .rev()
        .find_map(|(src, v)| v.filter(|s| !s.is_empty()).map(|s| (*src, s)));
    let Some((src, text)) = winner else {
        return Ok(None);
    };
    let invalid = |msg: String| Error::InvalidKey {
        plugin,
        key: src.key().into(),
        msg,
    };
    let mac: MacAddr = text.parse().map_err(|_| {
        invalid(format!(
            "{text:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)"
        ))
    })?;
    if mac.is_multicast() {
        return Err(invalid(format!(
            "{mac} is a multicast address; an interface needs a unicast MAC"
        )));
    }
    if mac.is_zero() {
        return Err(invalid(format!("{mac} is all zeroes")));
    }
    Ok(Some(mac))
}

/// The config's top-level `dns`, or empty.
pub fn config_dns(req: &Request) -> Dns {
    req.config.dns.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn modes_parse_and_errors_name_mode() {
        let m = map(json!({"mode":"vepa"}));
        assert_eq!(
            macvlan_mode(&Keys::new("macvlan", &m)).unwrap(),
            MacvlanMode::Vepa
        );
        let m = map(json!({}));
        assert_eq!(
            macvlan_mode(&Keys::new("macvlan", &m)).unwrap(),
            MacvlanMode::Bridge
        );
        assert_eq!(
            ipvlan_mode(&Keys::new("ipvlan", &m)).unwrap(),
            IpvlanMode::L2
        );
        for bad in ["source", "Bridge", "passthrough", "x"] {
            let m = map(json!({"mode": bad}));
            let e = macvlan_mode(&Keys::new("macvlan", &m))
                .unwrap_err()
                .to_string();
            assert!(e.contains("key \"mode\""), "{e}");
        }
        let m = map(json!({"mode":"l3s"}));
        assert_eq!(
            ipvlan_mode(&Keys::new("ipvlan", &m)).unwrap(),
            IpvlanMode::L3s
        );
        let m = map(json!({"mode":"l4"}));
        assert!(ipvlan_mode(&Keys::new("ipvlan", &m)).is_err());
        for mode in [
            MacvlanMode::Bridge,
            MacvlanMode::Private,
            MacvlanMode::Vepa,
            MacvlanMode::Passthru,
        ] {
            let m = map(json!({"mode": macvlan_mode_name(mode)}));
            assert_eq!(macvlan_mode(&Keys::new("macvlan", &m)).unwrap(), mode);
        }
    }

    #[test]
    fn mac_precedence_and_validation() {
        use MacSource::*;
        let all = |c, a, r| resolve_mac("macvlan", [(Config, c), (CniArgs, a), (RuntimeConfig, r)]);
        assert_eq!(all(None, None, None).unwrap(), None);
        let c = "02:00:00:00:00:01";
        let a = "02:00:00:00:00:02";
        let r = "02:00:00:00:00:03";
        assert_eq!(all(Some(c), None, None).unwrap().unwrap().to_string(), c);
        assert_eq!(all(Some(c), Some(a), None).unwrap().unwrap().to_string(), a);
        assert_eq!(
            all(Some(c), Some(a), Some(r)).unwrap().unwrap().to_string(),
            r
        );
        assert_eq!(
            all(Some(c), Some(""), None).unwrap().unwrap().to_string(),
            c
        );
        // Only the winner is validated.
        assert_eq!(
            all(Some("junk"), None, Some(r))
                .unwrap()
                .unwrap()
                .to_string(),
            r
        );
        let e = all(Some("junk"), None, None).unwrap_err().to_string();
        assert!(e.contains("key \"mac\""), "{e}");
        let e = all(None, Some("01:00:5e:00:00:01"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CNI_ARGS MAC") && e.contains("multicast"), "{e}");
        let e = all(None, None, Some("00:00:00:00:00:00"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtimeConfig.mac"), "{e}");
        assert_eq!(
            all(Some("02-AA-bb-cc-dd-ee"), None, None)
                .unwrap()
                .unwrap()
                .to_string(),
            "02:aa:bb:cc:dd:ee"
        );
    }

    #[test]
    fn mtu_check_names_master() {
        assert!(check_mtu("macvlan", None, "eth1", 1500).is_ok());
        assert!(check_mtu("macvlan", Some(1500), "eth1", 1500).is_ok());
        let e = check_mtu("macvlan", Some(1501), "eth1", 1500)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key \"mtu\"") && e.contains("eth1") && e.contains("1500"),
            "{e}"
        );
    }
}
