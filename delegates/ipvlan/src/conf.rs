//! The ipvlan config: the shared keys plus `mode`, and chaining: without `master`, a
//! prevResult with exactly one named interface gives the master; without IPAM, prevResult's
//! addresses are reused; otherwise IPAM is required.

use multinet_cni::{Command, NetworkResult, Request};
use multinet_link::conf::{
    Addressing, ChildKind, LinkConf, Master, common_keys, config_dns, ipvlan_mode,
};
use multinet_link::keys::Keys;
use multinet_link::{Error, Result};

/// The plugin's name, in messages and VERSION.
pub const PLUGIN: &str = "ipvlan";

/// Reads and validates an ipvlan config for `verb`. Chaining applies to ADD only: for CHECK
/// prevResult is ipvlan's own result, not the previous plugin's.
pub fn ipvlan_conf(req: &Request, verb: Command) -> Result<LinkConf> {
    let keys = Keys::new(PLUGIN, &req.config.extra);
    let common = common_keys(&keys, req)?;
    let mode = ipvlan_mode(&keys)?;
    let prev = if verb == Command::Add {
        req.config.prev_result().map_err(|source| Error::Protocol {
            plugin: PLUGIN,
            source,
        })?
    } else {
        None
    };
    let master = match (common.master, &prev) {
        (Some(name), _) => Master::Named(name),
        (None, None) => Master::DefaultRoute,
        (None, Some(prev)) => Master::Named(chained_master(&keys, prev)?),
    };
    let addressing = match (common.ipam_type, prev) {
        (Some(plugin_type), _) => Addressing::Ipam { plugin_type },
        (None, Some(prev)) if !prev.ips.is_empty() => Addressing::PrevResult(Box::new(prev)),
        (None, _) if verb != Command::Add => Addressing::None,
        (None, prev) => {
            let why = if prev.is_some() {
                "prevResult has no IP address to reuse"
            } else {
                "there is no prevResult to take addresses from"
            };
            return Err(keys.invalid(
                "ipam",
                format!("required: set ipam.type ({why}); ipvlan has no layer-2-only mode"),
            ));
        }
    };
    Ok(LinkConf {
        plugin: PLUGIN,
        master,
        link_in_container: common.link_in_container,
        mtu: common.mtu,
        kind: ChildKind::Ipvlan { mode },
        addressing,
        dns: config_dns(req),
    })
}

fn chained_master(keys: &Keys<'_>, prev: &NetworkResult) -> Result<String> {
    match prev.interfaces.as_slice() {
        [only] if !only.name.is_empty() => Ok(only.name.clone()),
        other => Err(keys.invalid(
            "master",
            format!(
                "not set, and prevResult has {} interfaces; chaining takes the master from a \
                 prevResult with exactly one named interface",
                other.len()
            ),
        )),
    }
}

/// `ipam.type` only, for DEL, STATUS and GC.
pub fn ipvlan_ipam_type(req: &Request) -> Result<Option<String>> {
    multinet_link::conf::ipam_type(&Keys::new(PLUGIN, &req.config.extra), req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::CniEnv;
    use multinet_link::conf::Master;
    use multinet_netlink::IpvlanMode;
    use serde_json::{Value, json};

    fn req(conf: Value) -> Request {
        let env = CniEnv::from_vars(
            [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/run/netns/x"),
                ("CNI_IFNAME", "net1"),
                ("CNI_PATH", "/usr/lib/cni"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap();
        Request::new(env, serde_json::to_vec(&conf).unwrap(), Vec::new()).unwrap()
    }

    fn prev() -> Value {
        json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],
               "ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1","interface":0}],
               "routes":[{"dst":"0.0.0.0/0"}]})
    }

    #[test]
    fn defaults_and_modes() {
        let c = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","master":"eth1","mode":"l3s","mtu":1400,
                        "ipam":{"type":"host-local","subnet":"10.0.0.0/24"}})),
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.master, Master::Named("eth1".into()));
        assert_eq!(
            c.kind,
            ChildKind::Ipvlan {
                mode: IpvlanMode::L3s
            }
        );
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.addressing.ipam_type(), Some("host-local"));
        let c = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","ipam":{"type":"static"}})),
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.master, Master::DefaultRoute);
        assert_eq!(
            c.kind,
            ChildKind::Ipvlan {
                mode: IpvlanMode::L2
            }
        );
    }

    #[test]
    fn chained_master_and_addresses_come_from_prev_result() {
        let c = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult": prev()})),
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.master, Master::Named("eth0".into()));
        match &c.addressing {
            Addressing::PrevResult(p) => assert_eq!(p.ips.len(), 1),
            other => panic!("{other:?}"),
        }
        // An explicit master and IPAM win over prevResult.
        let c = ipvlan_conf(
            &req(
                json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","master":"eth9",
                        "ipam":{"type":"host-local"},"prevResult": prev()}),
            ),
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.master, Master::Named("eth9".into()));
        assert_eq!(c.addressing.ipam_type(), Some("host-local"));
    }

    #[test]
    fn chaining_errors_name_the_key() {
        let mut two = prev();
        two["interfaces"] = json!([{"name":"a"},{"name":"b"}]);
        let e = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult": two})),
            Command::Add,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key \"master\"") && e.contains("2 interfaces"),
            "{e}"
        );

        let e = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","master":"eth1"})),
            Command::Add,
        )
        .unwrap_err();
        assert!(e.to_string().contains("key \"ipam\""), "{e}");
        assert_eq!(multinet_cni::CniError::from(e).code.code(), 7);

        let mut no_ips = prev();
        no_ips["ips"] = json!([]);
        let e = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult": no_ips})),
            Command::Add,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no IP address to reuse"), "{e}");

        // CHECK reads its own result as prevResult: no chaining, and no IPAM is fine.
        let c = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult": prev()})),
            Command::Check,
        )
        .unwrap();
        assert_eq!(c.master, Master::DefaultRoute);
        assert_eq!(c.addressing, Addressing::None);
    }

    #[test]
    fn bad_prev_result_keeps_decode_code() {
        let e = ipvlan_conf(
            &req(json!({"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult":{"ips":[{"address":"x"}]}})),
            Command::Add,
        )
        .unwrap_err();
        assert_eq!(multinet_cni::CniError::from(e).code.code(), 6);
    }
}
