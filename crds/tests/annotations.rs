//! The selection annotations, case by case: each input with the exact parsed value or the exact
//! error message.

// Test helpers may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use multinet_crds::{
    AnnotationKind, Bandwidth, CrdError, HardwareAddr, IpRequest, NetworkSelection, PortMapping,
    PortProtocol, SelectionProblem, format_networks, parse_default_network, parse_networks,
};
use serde_json::{Map, Value, json};

fn sel(name: &str) -> NetworkSelection {
    NetworkSelection::new(name)
}

fn in_ns(ns: &str, name: &str) -> NetworkSelection {
    NetworkSelection {
        namespace: Some(ns.to_owned()),
        ..sel(name)
    }
}

fn with_if(mut s: NetworkSelection, interface: &str) -> NetworkSelection {
    s.interface = Some(interface.to_owned());
    s
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ipreq(s: &str) -> IpRequest {
    s.parse().unwrap()
}

fn mac(s: &str) -> HardwareAddr {
    s.parse().unwrap()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

enum Expect {
    Ok(Vec<NetworkSelection>),
    Err(&'static str),
}

fn cases() -> Vec<(&'static str, Expect)> {
    use Expect::{Err, Ok};
    vec![
        // --- short form ---
        ("", Ok(vec![])),
        ("   ", Ok(vec![])),
        ("macvlan-conf", Ok(vec![sel("macvlan-conf")])),
        ("a,b", Ok(vec![sel("a"), sel("b")])),
        (" a , b ", Ok(vec![sel("a"), sel("b")])),
        ("team/a", Ok(vec![in_ns("team", "a")])),
        ("a@net1", Ok(vec![with_if(sel("a"), "net1")])),
        (
            "team/a@net1, other/b@eth_2",
            Ok(vec![
                with_if(in_ns("team", "a"), "net1"),
                with_if(in_ns("other", "b"), "eth_2"),
            ]),
        ),
        (
            " team / a @ net1 ",
            Ok(vec![with_if(in_ns("team", "a"), "net1")]),
        ),
        ("a,a", Ok(vec![sel("a"), sel("a")])),
        ("0net", Ok(vec![sel("0net")])),
        ("a,,b", Err("networks[1]: must not be empty")),
        ("a,", Err("networks[1]: must not be empty")),
        ("ns/", Err("networks[0].name: is required")),
        ("/a", Err("networks[0].namespace: must not be empty")),
        (
            "a@",
            Err("networks[0].interface: \"\" is not a valid interface name: it is empty"),
        ),
        (
            "a/b/c",
            Err("networks[0]: \"a/b/c\" is not of the form [namespace/]name[@interface]"),
        ),
        (
            "a@b@c",
            Err("networks[0]: \"a@b@c\" is not of the form [namespace/]name[@interface]"),
        ),
        (
            "Macvlan",
            Err(
                "networks[0].name: \"Macvlan\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
            ),
        ),
        // NAD names are Kubernetes object names: dots are allowed.
        ("a.b", Ok(vec![sel("a.b")])),
        (
            "team/storage.v2@net5",
            Ok(vec![with_if(in_ns("team", "storage.v2"), "net5")]),
        ),
        (
            "a..b",
            Err(
                "networks[0].name: \"a..b\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
            ),
        ),
        (
            "a,-b",
            Err(
                "networks[1].name: \"-b\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
            ),
        ),
        (
            "Team/a",
            Err(
                "networks[0].namespace: \"Team\" is not a DNS-1123 label (at most 63 lower-case alphanumerics or '-', starting and ending with an alphanumeric)",
            ),
        ),
        (
            "a@averyveryverylongname",
            Err(
                "networks[0].interface: \"averyveryverylongname\" is not a valid interface name: it is longer than 15 bytes",
            ),
        ),
        (
            "a@..",
            Err(
                "networks[0].interface: \"..\" is not a valid interface name: \".\" and \"..\" are reserved",
            ),
        ),
        (
            "a@x:y",
            Err(
                "networks[0].interface: \"x:y\" is not a valid interface name: it contains '/', ':', whitespace or NUL",
            ),
        ),
        (
            "a@net1,b@net1",
            Err("networks[1].interface: \"net1\" is already requested by networks[0]"),
        ),
        // --- JSON form ---
        ("[]", Ok(vec![])),
        (r#"[{"name":"a"}]"#, Ok(vec![sel("a")])),
        (
            r#"[{"name":"a","namespace":"team","interface":"net1"}]"#,
            Ok(vec![with_if(in_ns("team", "a"), "net1")]),
        ),
        (
            r#"[{"name":"a","interfaceRequest":"net1"}]"#,
            Ok(vec![with_if(sel("a"), "net1")]),
        ),
        (
            r#"[{"Name":"a","NAMESPACE":"team"}]"#,
            Ok(vec![in_ns("team", "a")]),
        ),
        (
            r#"[{"name":"a","namespace":"","interface":"","mac":null,"ips":null}]"#,
            Ok(vec![sel("a")]),
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.5/24","2001:db8::5"],"mac":"02:00:00:AA:BB:CC"}]"#,
            Ok(vec![NetworkSelection {
                ips: vec![ipreq("10.1.1.5/24"), ipreq("2001:db8::5")],
                mac: Some(mac("02:00:00:aa:bb:cc")),
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a","default-route":["10.1.1.1"]},{"name":"b","default-route":["2001:db8::1"]}]"#,
            Ok(vec![
                NetworkSelection {
                    default_route: vec![ip("10.1.1.1")],
                    ..sel("a")
                },
                NetworkSelection {
                    default_route: vec![ip("2001:db8::1")],
                    ..sel("b")
                },
            ]),
        ),
        (
            r#"[{"name":"a","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"192.0.2.1"},{"containerPort":53,"protocol":"UDP"}]}]"#,
            Ok(vec![NetworkSelection {
                port_mappings: vec![
                    PortMapping {
                        host_port: 8080,
                        container_port: 80,
                        protocol: Some(PortProtocol::Tcp),
                        host_ip: Some(ip("192.0.2.1")),
                    },
                    PortMapping {
                        host_port: 0,
                        container_port: 53,
                        protocol: Some(PortProtocol::Udp),
                        host_ip: None,
                    },
                ],
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a","bandwidth":{"ingressRate":1000,"egressBurst":20}}]"#,
            Ok(vec![NetworkSelection {
                bandwidth: Some(Bandwidth {
                    ingress_rate: 1000,
                    ingress_burst: 0,
                    egress_rate: 0,
                    egress_burst: 20,
                }),
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a","cni-args":{"foo":"bar","n":1},"deviceID":"0000:03:02.3","infiniband-guid":"00:11:22:33:44:55:66:77"}]"#,
            Ok(vec![NetworkSelection {
                cni_args: Some(object(json!({"foo": "bar", "n": 1}))),
                device_id: Some("0000:03:02.3".to_owned()),
                infiniband_guid: Some(mac("00:11:22:33:44:55:66:77")),
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a","ipam-claim-reference":"claim-1.v1"}]"#,
            Ok(vec![NetworkSelection {
                ipam_claim_reference: Some("claim-1.v1".to_owned()),
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a","example.com/x":{"k":[1,2]},"y":true}]"#,
            Ok(vec![NetworkSelection {
                extra: object(json!({"example.com/x": {"k": [1, 2]}, "y": true})),
                ..sel("a")
            }]),
        ),
        (
            r#"[{"name":"a"}"#,
            Err("networks: is not valid JSON: EOF while parsing a list at line 1 column 13"),
        ),
        (
            r#"{"name":"a"}"#,
            Err("networks: must be a JSON array of objects"),
        ),
        (r#""a""#, Err("networks: must be a JSON array of objects")),
        (r#"["a"]"#, Err("networks[0]: must be a JSON object")),
        (
            r#"[{"namespace":"team"}]"#,
            Err("networks[0].name: is required"),
        ),
        (r#"[{"name":""}]"#, Err("networks[0].name: is required")),
        (r#"[{"name":5}]"#, Err("networks[0].name: must be a string")),
        (
            r#"[{"name":"a"},{"name":"b","mac":"zz"}]"#,
            Err("networks[1].mac: \"zz\" is not a MAC address"),
        ),
        (
            r#"[{"name":"a","infiniband-guid":"xyz"}]"#,
            Err(
                "networks[0].infiniband-guid: \"xyz\" is not an InfiniBand GUID (a hardware address)",
            ),
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.5","10.1.1.300/24"]}]"#,
            Err("networks[0].ips[1]: \"10.1.1.300/24\" is not an IP address or CIDR"),
        ),
        (
            r#"[{"name":"a","ips":"10.1.1.5"}]"#,
            Err("networks[0].ips: must be an array of strings"),
        ),
        (
            r#"[{"name":"a","default-route":["10.1.1.1","gw"]}]"#,
            Err("networks[0].default-route[1]: \"gw\" is not an IP address"),
        ),
        (
            r#"[{"name":"a","default-route":["10.1.1.1"]},{"name":"b","default-route":["10.2.2.1"]}]"#,
            Err(
                "networks[1].default-route: 10.2.2.1 is a second IPv4 default-route gateway (networks[0] already sets one; ECMP is not supported)",
            ),
        ),
        (
            r#"[{"name":"a","default-route":["2001:db8::1","2001:db8::2"]}]"#,
            Err(
                "networks[0].default-route: 2001:db8::2 is a second IPv6 default-route gateway (networks[0] already sets one; ECMP is not supported)",
            ),
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.5"],"ipam-claim-reference":"c"}]"#,
            Err("networks[0].ipam-claim-reference: cannot be combined with \"ips\""),
        ),
        (
            r#"[{"name":"a","ipam-claim-reference":"Bad_Claim"}]"#,
            Err(
                "networks[0].ipam-claim-reference: \"Bad_Claim\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
            ),
        ),
        (
            r#"[{"name":"a","interface":"net1"},{"name":"b","interface":"net1"}]"#,
            Err("networks[1].interface: \"net1\" is already requested by networks[0]"),
        ),
        (
            r#"[{"name":"a","interface":"net 1"}]"#,
            Err(
                "networks[0].interface: \"net 1\" is not a valid interface name: it contains '/', ':', whitespace or NUL",
            ),
        ),
        (
            r#"[{"name":"a","interface":"net1","interfaceRequest":"net2"}]"#,
            Err("networks[0].interface: \"net1\" disagrees with interfaceRequest \"net2\""),
        ),
        (
            r#"[{"name":"a","portMappings":[{"hostPort":70000,"containerPort":80}]}]"#,
            Err("networks[0].portMappings[0].hostPort: 70000 is not a port number (1-65535)"),
        ),
        (
            r#"[{"name":"a","portMappings":[{"hostPort":80}]}]"#,
            Err("networks[0].portMappings[0].containerPort: 0 is not a port number (1-65535)"),
        ),
        (
            r#"[{"name":"a","portMappings":[{"containerPort":80,"protocol":"icmp"}]}]"#,
            Err(
                "networks[0].portMappings[0].protocol: \"icmp\" is not a protocol (TCP, UDP or SCTP)",
            ),
        ),
        (
            r#"[{"name":"a","bandwidth":{"ingressRate":-1}}]"#,
            Err("networks[0].bandwidth.ingressRate: -1 is not a non-negative integer"),
        ),
        (
            r#"[{"name":"a","cni-args":["x"]}]"#,
            Err("networks[0].cni-args: must be a JSON object"),
        ),
        (r#"[{"name":"a.b"}]"#, Ok(vec![sel("a.b")])),
        (
            r#"[{"name":"a.b-"}]"#,
            Err(
                "networks[0].name: \"a.b-\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
            ),
        ),
    ]
}

#[test]
fn networks_annotation_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "the table must keep at least 40 cases");
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let got = parse_networks(input);
        let ok = match (&got, &expected) {
            (Ok(value), Expect::Ok(want)) => value == want,
            (Err(err), Expect::Err(want)) => err.to_string() == *want,
            _ => false,
        };
        if !ok {
            let want = match expected {
                Expect::Ok(v) => format!("Ok({v:?})"),
                Expect::Err(e) => format!("Err({e})"),
            };
            failures.push(format!("input {input:?}\n  got  {got:?}\n  want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_are_typed_with_index_and_field() {
    let err = parse_networks(r#"[{"name":"a"},{"name":"b"},{"name":"c","mac":"zz"}]"#).unwrap_err();
    let CrdError::Selection(err) = err else {
        panic!("not a selection error: {err:?}");
    };
    assert_eq!(err.annotation, AnnotationKind::Networks);
    assert_eq!(err.index, Some(2));
    assert_eq!(err.field.as_deref(), Some("mac"));
    assert_eq!(err.problem, SelectionProblem::NotMac("zz".to_owned()));
    assert_eq!(
        err.to_string(),
        "networks[2].mac: \"zz\" is not a MAC address"
    );
}

#[test]
fn default_network_takes_exactly_one() {
    assert_eq!(
        parse_default_network("kube-system/calico").unwrap(),
        in_ns("kube-system", "calico")
    );
    assert_eq!(
        parse_default_network(r#"[{"name":"calico","interface":"eth0"}]"#).unwrap(),
        with_if(sel("calico"), "eth0")
    );
    let cases = [
        (
            "",
            "default-network: must select exactly one network, found 0",
        ),
        (
            "[]",
            "default-network: must select exactly one network, found 0",
        ),
        (
            "a,b",
            "default-network: must select exactly one network, found 2",
        ),
        (
            "A",
            "default-network[0].name: \"A\" is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)",
        ),
        (
            r#"[{"name":"a","mac":"1"}]"#,
            "default-network[0].mac: \"1\" is not a MAC address",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(
            parse_default_network(input).unwrap_err().to_string(),
            message,
            "{input:?}"
        );
    }
}

#[test]
fn format_uses_short_form_when_it_says_everything() {
    let list = vec![with_if(in_ns("team", "a"), "net1"), sel("b")];
    assert_eq!(format_networks(&list), "team/a@net1,b");
    assert_eq!(format_networks(&[]), "[]");
    let rich = vec![NetworkSelection {
        mac: Some(mac("02:00:00:00:00:01")),
        ..sel("a")
    }];
    assert_eq!(
        format_networks(&rich),
        r#"[{"name":"a","mac":"02:00:00:00:00:01"}]"#
    );
    assert_eq!(parse_networks(&format_networks(&rich)).unwrap(), rich);
    // The kernel allows ',' and '@' in names; such a name only survives the JSON form.
    let odd = parse_networks(r#"[{"name":"a","interface":"x,y@z"}]"#).unwrap();
    assert_eq!(odd, vec![with_if(sel("a"), "x,y@z")]);
    assert_eq!(
        format_networks(&odd),
        r#"[{"name":"a","interface":"x,y@z"}]"#
    );
}

#[test]
fn selection_serializes_every_field_under_its_wire_name() {
    let full = NetworkSelection {
        name: "a".to_owned(),
        namespace: Some("team".to_owned()),
        interface: Some("net1".to_owned()),
        ips: vec![ipreq("10.1.1.5/24")],
        mac: Some(mac("02:00:00:00:00:01")),
        default_route: vec![ip("10.1.1.1")],
        port_mappings: vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Some(PortProtocol::Sctp),
            host_ip: None,
        }],
        bandwidth: Some(Bandwidth {
            ingress_rate: 1,
            ingress_burst: 2,
            egress_rate: 3,
            egress_burst: 4,
        }),
        cni_args: Some(object(json!({"k": "v"}))),
        infiniband_guid: Some(mac("00:11:22:33:44:55:66:77")),
        device_id: Some("0000:03:02.3".to_owned()),
        ipam_claim_reference: None,
        extra: object(json!({"x-key": 1, "NAME": "shadow"})),
    };
    let value = serde_json::to_value(&full).unwrap();
    assert_eq!(
        value,
        json!({
            "name": "a", "namespace": "team", "interface": "net1", "ips": ["10.1.1.5/24"],
            "mac": "02:00:00:00:00:01", "infiniband-guid": "00:11:22:33:44:55:66:77",
            "default-route": ["10.1.1.1"],
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "SCTP"}],
            "bandwidth": {"ingressRate": 1, "ingressBurst": 2, "egressRate": 3, "egressBurst": 4},
            "cni-args": {"k": "v"}, "deviceID": "0000:03:02.3", "x-key": 1
        })
    );
    let back: NetworkSelection = serde_json::from_value(value).unwrap();
    let mut expected = full.clone();
    expected.extra.remove("NAME");
    assert_eq!(back, expected);
}

/// Found by the fuzzer: a huge float among pass-through keys must format back to the same value.
#[test]
fn unknown_keys_with_floats_survive_format_and_parse() {
    let text = r#"[{"name":"a","x-port":[{"hostPort":807777777777777777777777777777777777777777777777777777777777777777777777777.2080}]}]"#;
    let parsed = multinet_crds::parse_networks(text).unwrap();
    let again = multinet_crds::parse_networks(&multinet_crds::format_networks(&parsed)).unwrap();
    assert_eq!(again, parsed);
}
