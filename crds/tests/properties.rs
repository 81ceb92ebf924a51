//! Properties of the annotation parsers and the network-status writer.

// Test helpers may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multinet_crds::{
    Bandwidth, DeviceInfo, DeviceType, Dns, HardwareAddr, IpRequest, MemifDevice, NetworkSelection,
    NetworkStatus, PciDevice, PortMapping, PortProtocol, VdpaDevice, VhostUserDevice,
    format_network_status, format_networks, parse_default_network, parse_network_status,
    parse_networks,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?"
}

/// Any name the kernel accepts, including characters that mean something in the short form.
fn interface_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.,@\\[\\]{}\"é\u{a0}\u{2028}-]{1,7}".prop_filter("reserved or too long", |s| {
        s != "." && s != ".." && s.len() <= 15
    })
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn ip_request() -> impl Strategy<Value = IpRequest> {
    (ip_addr(), any::<bool>(), 0u8..=128).prop_map(|(address, with_prefix, prefix)| {
        let max = if address.is_ipv4() { 32 } else { 128 };
        IpRequest {
            address,
            prefix_len: with_prefix.then_some(prefix % (max + 1)),
        }
    })
}

fn hardware_addr() -> impl Strategy<Value = HardwareAddr> {
    prop_oneof![
        vec(any::<u8>(), 6),
        vec(any::<u8>(), 8),
        vec(any::<u8>(), 20)
    ]
    .prop_map(|octets| HardwareAddr::from_octets(&octets).unwrap())
}

fn port_mapping() -> impl Strategy<Value = PortMapping> {
    (
        any::<u16>(),
        1u16..,
        option::of(prop_oneof![
            Just(PortProtocol::Tcp),
            Just(PortProtocol::Udp),
            Just(PortProtocol::Sctp)
        ]),
        option::of(ip_addr()),
    )
        .prop_map(
            |(host_port, container_port, protocol, host_ip)| PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            },
        )
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c, d)| Bandwidth {
        ingress_rate: a,
        ingress_burst: b,
        egress_rate: c,
        egress_burst: d,
    })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn json_map(keys: &'static str) -> impl Strategy<Value = Map<String, Value>> {
    btree_map(keys, json_leaf(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// A selection that satisfies every per-element rule; list rules are applied afterwards.
fn selection() -> impl Strategy<Value = NetworkSelection> {
    let identity = (label(), option::of(label()), option::of(interface_name()));
    let requests = (
        vec(ip_request(), 0..3),
        option::of(hardware_addr()),
        option::of(ip_addr()),
        vec(port_mapping(), 0..3),
        option::of(bandwidth()),
    );
    let extras = (
        option::of(json_map("[a-zA-Z0-9_]{1,8}")),
        option::of(hardware_addr()),
        option::of("[0-9a-f:.]{1,12}"),
        option::of("[a-z0-9]{1,10}(\\.[a-z0-9]{1,10})?"),
        json_map("x-[a-z0-9.-]{1,8}"),
    );
    (identity, requests, extras).prop_map(
        |(
            (name, namespace, interface),
            (ips, mac, gateway, port_mappings, bandwidth),
            (cni_args, infiniband_guid, device_id, ipam_claim_reference, extra),
        )| NetworkSelection {
            name,
            namespace,
            interface,
            ips: if ipam_claim_reference.is_some() {
                Vec::new()
            } else {
                ips
            },
            mac,
            default_route: gateway.into_iter().collect(),
            port_mappings,
            bandwidth,
            cni_args,
            infiniband_guid,
            device_id,
            ipam_claim_reference,
            extra,
        },
    )
}

/// Makes a list valid: unique interface names, one gateway per IP family.
fn make_list_valid(mut list: Vec<NetworkSelection>) -> Vec<NetworkSelection> {
    let mut interfaces = HashSet::new();
    let (mut v4, mut v6) = (false, false);
    for selection in &mut list {
        if let Some(interface) = &selection.interface
            && !interfaces.insert(interface.clone())
        {
            selection.interface = None;
        }
        selection.default_route.retain(|gw| {
            let seen = if gw.is_ipv4() { &mut v4 } else { &mut v6 };
            !std::mem::replace(seen, true)
        });
    }
    list
}

fn selections() -> impl Strategy<Value = Vec<NetworkSelection>> {
    vec(selection(), 0..5).prop_map(make_list_valid)
}

/// Selections that only name a network and an interface: the short form's domain.
fn identity_selections() -> impl Strategy<Value = Vec<NetworkSelection>> {
    vec(
        (label(), option::of(label()), option::of(interface_name())).prop_map(
            |(name, namespace, interface)| NetworkSelection {
                name,
                namespace,
                interface,
                ..NetworkSelection::default()
            },
        ),
        1..5,
    )
    .prop_map(make_list_valid)
}

/// Strings made of the characters the parsers care about, to reach deep paths.
fn annotation_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9/@, \\[\\]{}\":.\\-_A-Z]{0,60}",
        vec(
            prop_oneof![
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just(",".to_owned()),
                Just(":".to_owned()),
                Just("null".to_owned()),
                Just("\"name\"".to_owned()),
                Just("\"a\"".to_owned()),
                Just("\"ips\"".to_owned()),
                Just("\"default-route\"".to_owned()),
                Just("\"portMappings\"".to_owned()),
                Just("\"bandwidth\"".to_owned()),
                Just("\"interface\"".to_owned()),
                Just("\"10.0.0.1\"".to_owned()),
                Just("-1".to_owned()),
                Just("70000".to_owned()),
            ],
            0..30
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9<>&\"\\\\/.:-]{0,12}"]
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    let pci = (text(), text(), text(), text(), text()).prop_map(|(a, b, c, d, e)| {
        DeviceInfo::pci(PciDevice {
            pci_address: a,
            vhost_net: b,
            rdma_device: c,
            pf_pci_address: d,
            representor_device: e,
        })
    });
    let vdpa = (text(), text(), text(), text(), text(), text()).prop_map(|(a, b, c, d, e, f)| {
        DeviceInfo::vdpa(VdpaDevice {
            parent_device: a,
            driver: b,
            path: c,
            pci_address: d,
            pf_pci_address: e,
            representor_device: f,
        })
    });
    let vhost = (text(), text())
        .prop_map(|(mode, path)| DeviceInfo::vhost_user(VhostUserDevice { mode, path }));
    let memif = (text(), text(), text())
        .prop_map(|(role, path, mode)| DeviceInfo::memif(MemifDevice { role, path, mode }));
    let other = (text(), text()).prop_map(|(kind, version)| DeviceInfo {
        device_type: Some(DeviceType::from(kind.as_str())),
        version,
        ..DeviceInfo::default()
    });
    prop_oneof![pci, vdpa, vhost, memif, other]
}

fn network_status() -> impl Strategy<Value = NetworkStatus> {
    let head = (
        text(),
        text(),
        vec(text(), 0..3),
        text(),
        any::<u32>(),
        any::<bool>(),
    );
    let tail = (
        (
            vec(text(), 0..2),
            text(),
            vec(text(), 0..2),
            vec(text(), 0..2),
        ),
        option::of(device_info()),
        vec(text(), 0..2),
    );
    (head, tail).prop_map(
        |(
            (name, interface, ips, mac, mtu, default),
            ((ns, domain, search, options), device_info, gateway),
        )| {
            NetworkStatus {
                name,
                interface,
                ips,
                mac,
                mtu,
                default,
                dns: Dns {
                    nameservers: ns,
                    domain,
                    search,
                    options,
                },
                device_info,
                gateway,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic(input in annotation_like()) {
        let networks = parse_networks(&input);
        let default = parse_default_network(&input);
        // The default-network parser accepts exactly the one-element lists the list parser does.
        match (&networks, &default) {
            (Ok(list), Ok(one)) => prop_assert_eq!(list.as_slice(), std::slice::from_ref(one)),
            (Ok(list), Err(_)) => prop_assert_ne!(list.len(), 1),
            (Err(_), Ok(_)) => prop_assert!(false, "default-network accepted what networks refused"),
            (Err(_), Err(_)) => {}
        }
        let _ = parse_network_status(&input);
    }

    #[test]
    fn arbitrary_json_elements_never_panic(elements in vec(json_map("[a-zA-Z-]{1,12}"), 0..4)) {
        let text = serde_json::to_string(&elements).unwrap();
        let _ = parse_networks(&text);
    }

    #[test]
    fn parse_of_format_is_identity(list in selections()) {
        let text = format_networks(&list);
        prop_assert_eq!(parse_networks(&text).unwrap(), list);
    }

    #[test]
    fn identity_selections_round_trip(list in identity_selections()) {
        let text = format_networks(&list);
        prop_assert_eq!(parse_networks(&text).unwrap(), list.clone());
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if list.iter().all(|s| s.interface.as_deref().is_none_or(|i| i.chars().all(plain))) {
            prop_assert!(!text.contains('['), "expected the short form: {}", text);
        }
    }

    #[test]
    fn status_round_trips(statuses in vec(network_status(), 0..4)) {
        let text = format_network_status(&statuses);
        prop_assert_eq!(parse_network_status(&text).unwrap(), statuses);
    }
}
