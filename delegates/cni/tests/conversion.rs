//! Result conversion: property tests over every version pair against an independent model of
//! what each version can carry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use multinet_cni::{CniVersion, Dns, Interface, IpConfig, NetworkResult, Route};
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    ip().prop_flat_map(|a| {
        let max: u8 = if a.is_ipv4() { 32 } else { 128 };
        (Just(a), 0..=max).prop_map(|(a, p)| IpNet::new(a, p).unwrap())
    })
}

fn word() -> impl Strategy<Value = String> {
    "[a-z0-9:/._-]{1,20}"
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        "[a-z0-9]{1,15}",
        proptest::option::of(word()),
        proptest::option::of(1u32..65536),
        proptest::option::of(word()),
        proptest::option::of(word()),
        proptest::option::of(word()),
    )
        .prop_map(|(name, mac, mtu, sandbox, socket_path, pci_id)| Interface {
            name,
            mac,
            mtu,
            sandbox,
            socket_path,
            pci_id,
        })
}

fn ipconfig() -> impl Strategy<Value = IpConfig> {
    (
        net(),
        proptest::option::of(ip()),
        proptest::option::of(0usize..4),
    )
        .prop_map(|(address, gateway, interface)| IpConfig {
            address,
            gateway,
            interface,
        })
}

fn route() -> impl Strategy<Value = Route> {
    (
        net(),
        proptest::option::of(ip()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn dns() -> impl Strategy<Value = Dns> {
    (
        proptest::collection::vec(word(), 0..3),
        proptest::option::of(word()),
        proptest::collection::vec(word(), 0..3),
        proptest::collection::vec(word(), 0..3),
    )
        .prop_map(|(nameservers, domain, search, options)| Dns {
            nameservers,
            domain,
            search,
            options,
        })
}

fn version() -> impl Strategy<Value = CniVersion> {
    proptest::sample::select(CniVersion::ALL.to_vec())
}

fn result() -> impl Strategy<Value = NetworkResult> {
    (
        version(),
        proptest::collection::vec(interface(), 0..3),
        proptest::collection::vec(ipconfig(), 0..4),
        proptest::collection::vec(route(), 0..4),
        dns(),
    )
        .prop_map(
            |(cni_version, interfaces, ips, routes, dns)| NetworkResult {
                cni_version,
                interfaces,
                ips,
                routes,
                dns,
            },
        )
}

/// What survives a trip through `v`, written independently of the crate's converter.
fn model(r: &NetworkResult, v: CniVersion) -> Option<NetworkResult> {
    let mut out = r.clone();
    out.cni_version = v;
    if v >= CniVersion::V1_0_0 {
        return Some(out);
    }
    if v >= CniVersion::V0_3_0 {
        for i in &mut out.interfaces {
            i.mtu = None;
            i.socket_path = None;
            i.pci_id = None;
        }
        return Some(out);
    }
    let v4 = r.ips.iter().find(|i| i.address.addr().is_ipv4());
    let v6 = r.ips.iter().find(|i| i.address.addr().is_ipv6());
    if v4.is_none() && v6.is_none() {
        return None;
    }
    out.interfaces.clear();
    out.ips.clear();
    out.routes.clear();
    for (first, is_v4) in [(v4, true), (v6, false)] {
        if let Some(ipc) = first {
            out.ips.push(IpConfig {
                address: ipc.address,
                gateway: ipc.gateway,
                interface: None,
            });
            out.routes.extend(
                r.routes
                    .iter()
                    .filter(|rt| rt.dst.addr().is_ipv4() == is_v4)
                    .map(|rt| Route::new(rt.dst, rt.gw)),
            );
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_version_pair_round_trips(r in result()) {
        for a in CniVersion::ALL {
            for b in CniVersion::ALL {
                let expected = model(&r, a).and_then(|m| model(&m, b));
                let got = r.convert_to(a).and_then(|x| x.convert_to(b));
                match (expected, got) {
                    (Some(e), Ok(g)) => prop_assert_eq!(e, g, "{} -> {}", a, b),
                    (None, Err(e)) => prop_assert_eq!(e.code.code(), 1),
                    (e, g) => prop_assert!(false, "{a} -> {b}: model {e:?}, converter {g:?}"),
                }
            }
        }
    }

    #[test]
    fn wire_shape_per_version(r in result(), v in version()) {
        let Ok(value) = r.to_value(v) else {
            prop_assert!(v.is_legacy_result());
            return Ok(());
        };
        prop_assert_eq!(value["cniVersion"].as_str(), Some(v.as_str()));
        prop_assert!(value["dns"].is_object());
        if v.is_legacy_result() {
            prop_assert!(value.get("ips").is_none());
            prop_assert!(value.get("ip4").is_some() || value.get("ip6").is_some());
        } else {
            for (i, ipv) in value["ips"].as_array().into_iter().flatten().enumerate() {
                let family = if r.ips[i].address.addr().is_ipv4() { "4" } else { "6" };
                if v.has_ip_version_field() {
                    prop_assert_eq!(ipv["version"].as_str(), Some(family));
                } else {
                    prop_assert!(ipv.get("version").is_none());
                }
            }
            for ifv in value["interfaces"].as_array().into_iter().flatten() {
                if v < CniVersion::V1_0_0 {
                    prop_assert!(ifv.get("mtu").is_none() && ifv.get("pciID").is_none() && ifv.get("socketPath").is_none());
                }
            }
        }
        // Reading it back as text gives the same as converting in memory.
        let text = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(NetworkResult::from_slice(&text, CniVersion::V0_1_0).unwrap(), r.convert_to(v).unwrap());
    }
}
