//! The ADD result: the one interface made, the addresses (all on it) and routes from IPAM or
//! prevResult, and the config's `dns`.

use multinet_cni::{CniVersion, Dns, Interface, NetworkResult};

/// Builds the result for interface `iface`. Every address is put on interface 0, the one
/// made here, whatever the IPAM plugin or prevResult said.
pub fn build_result(
    version: CniVersion,
    iface: Interface,
    addresses: Option<&NetworkResult>,
    dns: Dns,
) -> NetworkResult {
    let mut result = NetworkResult {
        cni_version: version,
        interfaces: vec![iface],
        dns,
        ..NetworkResult::default()
    };
    if let Some(from) = addresses {
        result.ips = from.ips.clone();
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        result.routes = from.routes.clone();
    }
    result
}

/// The interface entry: name, MAC as the kernel reports it, and the netns path as given.
pub fn interface_entry(ifname: &str, mac: Option<String>, sandbox: &str) -> Interface {
    Interface {
        name: ifname.to_owned(),
        mac,
        sandbox: Some(sandbox.to_owned()),
        ..Interface::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_move_to_interface_zero_and_dns_comes_from_config() {
        let ipam = NetworkResult::from_value(
            &json!({"cniVersion":"1.0.0",
                "ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":3}],
                "routes":[{"dst":"0.0.0.0/0"}],
                "dns":{"nameservers":["9.9.9.9"]}}),
            CniVersion::V1_0_0,
        )
        .unwrap();
        let dns = Dns {
            nameservers: vec!["1.1.1.1".into()],
            ..Dns::default()
        };
        let iface = interface_entry("net1", Some("02:00:00:00:00:01".into()), "/run/netns/x");
        let r = build_result(CniVersion::V0_4_0, iface, Some(&ipam), dns.clone());
        assert_eq!(r.cni_version, CniVersion::V0_4_0);
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns, dns);
        let v = r.to_value(CniVersion::V0_4_0).unwrap();
        assert_eq!(
            v["interfaces"][0],
            json!({"name":"net1","mac":"02:00:00:00:00:01","sandbox":"/run/netns/x"})
        );
        assert_eq!(v["ips"][0]["version"], "4");

        let l2 = build_result(
            CniVersion::V1_0_0,
            interface_entry("net1", None, "/n"),
            None,
            Dns::default(),
        );
        assert!(l2.ips.is_empty() && l2.routes.is_empty());
    }
}
