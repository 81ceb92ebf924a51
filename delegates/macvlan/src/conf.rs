//! The macvlan config: the shared keys plus `mode`, `mac` (with CNI_ARGS and runtimeConfig
//! overrides) and `bcqueuelen`.

use multinet_cni::Request;
use serde_json::Value;

use multinet_link::Result;
use multinet_link::conf::{
    Addressing, ChildKind, LinkConf, MacSource, Master, common_keys, config_dns, macvlan_mode,
    resolve_mac,
};
use multinet_link::keys::Keys;

/// The plugin's name, in messages and VERSION.
pub const PLUGIN: &str = "macvlan";

/// Reads and validates a macvlan config (everything that needs no kernel state).
pub fn macvlan_conf(req: &Request) -> Result<LinkConf> {
    let keys = Keys::new(PLUGIN, &req.config.extra);
    let common = common_keys(&keys, req)?;
    let mode = macvlan_mode(&keys)?;
    let runtime_mac = match req
        .config
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.get("mac"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(keys.invalid(
                "runtimeConfig.mac",
                format!("expected a string, got {other}"),
            ));
        }
    };
    let mac = resolve_mac(
        PLUGIN,
        [
            (MacSource::Config, keys.string("mac")?),
            (MacSource::CniArgs, req.env.arg("MAC")),
            (MacSource::RuntimeConfig, runtime_mac),
        ],
    )?;
    // 0 means "the kernel's default", as the reference leaves the attribute out for it.
    let bcqueuelen = keys.u32("bcqueuelen")?.filter(|n| *n > 0);
    Ok(LinkConf {
        plugin: PLUGIN,
        master: common.master.map_or(Master::DefaultRoute, Master::Named),
        link_in_container: common.link_in_container,
        mtu: common.mtu,
        kind: ChildKind::Macvlan {
            mode,
            mac,
            bcqueuelen,
        },
        addressing: common
            .ipam_type
            .map_or(Addressing::None, |plugin_type| Addressing::Ipam {
                plugin_type,
            }),
        dns: config_dns(req),
    })
}

/// `ipam.type` only, for DEL, STATUS and GC, which must work whatever else the config says.
pub fn macvlan_ipam_type(req: &Request) -> Result<Option<String>> {
    multinet_link::conf::ipam_type(&Keys::new(PLUGIN, &req.config.extra), req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::CniEnv;
    use multinet_netlink::MacvlanMode;
    use serde_json::json;

    fn req_with(conf: Value, cni_args: &str) -> Request {
        let env = CniEnv::from_vars(
            [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/run/netns/x"),
                ("CNI_IFNAME", "net1"),
                ("CNI_PATH", "/usr/lib/cni"),
                ("CNI_ARGS", cni_args),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap();
        Request::new(env, serde_json::to_vec(&conf).unwrap(), Vec::new()).unwrap()
    }

    fn req(conf: Value) -> Request {
        req_with(conf, "")
    }

    fn base() -> Value {
        json!({"cniVersion":"1.0.0","name":"n","type":"macvlan"})
    }

    fn with(extra: Value) -> Value {
        let mut b = base();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn defaults_are_the_references() {
        let c = macvlan_conf(&req(base())).unwrap();
        assert_eq!(c.master, Master::DefaultRoute);
        assert!(!c.link_in_container);
        assert_eq!(c.mtu, None);
        assert_eq!(
            c.kind,
            ChildKind::Macvlan {
                mode: MacvlanMode::Bridge,
                mac: None,
                bcqueuelen: None
            }
        );
        assert_eq!(c.addressing, Addressing::None);
        // "ipam": {} (a common way to say "no IPAM") and mtu 0 mean the defaults.
        let c = macvlan_conf(&req(with(json!({"ipam":{},"mtu":0,"bcqueuelen":0})))).unwrap();
        assert_eq!(c.addressing, Addressing::None);
        assert_eq!(c.mtu, None);
    }

    #[test]
    fn every_key_is_read() {
        let c = macvlan_conf(&req(with(json!({
            "master":"eth1","mode":"passthru","mtu":9000,"mac":"02:00:00:00:00:0a",
            "linkInContainer":true,"bcqueuelen":256,"ipam":{"type":"host-local"},
            "dns":{"nameservers":["10.0.0.53"]}
        }))))
        .unwrap();
        assert_eq!(c.master, Master::Named("eth1".into()));
        assert!(c.link_in_container);
        assert_eq!(c.mtu, Some(9000));
        assert_eq!(
            c.kind,
            ChildKind::Macvlan {
                mode: MacvlanMode::Passthru,
                mac: Some("02:00:00:00:00:0a".parse().unwrap()),
                bcqueuelen: Some(256)
            }
        );
        assert_eq!(c.addressing.ipam_type(), Some("host-local"));
        assert_eq!(c.dns.nameservers, vec!["10.0.0.53".to_owned()]);
    }

    #[test]
    fn mac_from_cni_args_and_runtime_config() {
        let conf = with(json!({"mac":"02:00:00:00:00:01"}));
        let mac = |c: &LinkConf| match &c.kind {
            ChildKind::Macvlan { mac, .. } => mac.map(|m| m.to_string()),
            ChildKind::Ipvlan { .. } => None,
        };
        let c = macvlan_conf(&req_with(
            conf.clone(),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
        ))
        .unwrap();
        assert_eq!(mac(&c).as_deref(), Some("02:00:00:00:00:02"));
        let mut rc = conf.clone();
        rc["runtimeConfig"] = json!({"mac":"02:00:00:00:00:03"});
        let c = macvlan_conf(&req_with(rc, "MAC=02:00:00:00:00:02")).unwrap();
        assert_eq!(mac(&c).as_deref(), Some("02:00:00:00:00:03"));
        let mut bad = conf;
        bad["runtimeConfig"] = json!({"mac": 5});
        let e = macvlan_conf(&req(bad)).unwrap_err().to_string();
        assert!(e.contains("runtimeConfig.mac"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, key) in [
            (json!({"mode":"source"}), "mode"),
            (json!({"mode":7}), "mode"),
            (json!({"mtu":-1}), "mtu"),
            (json!({"mtu":"1500"}), "mtu"),
            (json!({"mtu":1.5}), "mtu"),
            (json!({"master":["eth1"]}), "master"),
            (json!({"mac":"02:00:00:00:00"}), "mac"),
            (json!({"linkInContainer":"yes"}), "linkInContainer"),
            (json!({"bcqueuelen":-5}), "bcqueuelen"),
            (json!({"ipam":"host-local"}), "ipam"),
            (json!({"ipam":{"type":3}}), "ipam.type"),
        ] {
            let e = macvlan_conf(&req(with(extra.clone()))).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("key {key:?}")), "{extra}: {msg}");
            assert_eq!(multinet_cni::CniError::from(e).code.code(), 7, "{extra}");
        }
    }

    #[test]
    fn del_reads_only_ipam_type() {
        let r = req(with(
            json!({"mode":"bogus","mtu":"x","ipam":{"type":"static"}}),
        ));
        assert_eq!(macvlan_ipam_type(&r).unwrap().as_deref(), Some("static"));
        assert!(macvlan_conf(&r).is_err());
    }
}
