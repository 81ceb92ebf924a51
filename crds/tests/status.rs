//! The network-status annotation: the exact text peers write, and what the reader accepts.

// Test helpers may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use multinet_crds::{
    DeviceInfo, DeviceType, Dns, MemifDevice, NetworkStatus, PciDevice, VdpaDevice,
    VhostUserDevice, format_network_status, parse_network_status, status_ip,
};

fn cluster_and_macvlan() -> Vec<NetworkStatus> {
    vec![
        NetworkStatus {
            name: "kindnet".to_owned(),
            interface: "eth0".to_owned(),
            ips: vec!["10.244.2.5".to_owned()],
            mac: "2e:91:5c:3a:0b:14".to_owned(),
            default: true,
            gateway: vec!["10.244.2.1".to_owned()],
            ..NetworkStatus::default()
        },
        NetworkStatus {
            name: "lab/data-macvlan".to_owned(),
            interface: "net1".to_owned(),
            ips: vec!["10.10.0.11".to_owned(), "fd00::11".to_owned()],
            mac: "b6:7e:21:9f:40:c2".to_owned(),
            mtu: 1500,
            ..NetworkStatus::default()
        },
    ]
}

const CLUSTER_AND_MACVLAN: &str = r#"[{
    "name": "kindnet",
    "interface": "eth0",
    "ips": [
        "10.244.2.5"
    ],
    "mac": "2e:91:5c:3a:0b:14",
    "default": true,
    "dns": {},
    "gateway": [
        "10.244.2.1"
    ]
},{
    "name": "lab/data-macvlan",
    "interface": "net1",
    "ips": [
        "10.10.0.11",
        "fd00::11"
    ],
    "mac": "b6:7e:21:9f:40:c2",
    "mtu": 1500,
    "dns": {}
}]"#;

#[test]
fn writes_what_the_go_client_writes() {
    assert_eq!(
        format_network_status(&cluster_and_macvlan()),
        CLUSTER_AND_MACVLAN
    );
    assert_eq!(format_network_status(&[]), "[]");
}

#[test]
fn writes_dns_and_device_info_in_field_order() {
    let status = NetworkStatus {
        name: "team/sriov".to_owned(),
        interface: "net1".to_owned(),
        dns: Dns {
            nameservers: vec!["10.0.0.10".to_owned()],
            domain: "cluster.local".to_owned(),
            search: vec!["svc.cluster.local".to_owned()],
            options: vec!["ndots:5".to_owned()],
        },
        device_info: Some(DeviceInfo::pci(PciDevice {
            pci_address: "0000:03:02.3".to_owned(),
            pf_pci_address: "0000:03:00.0".to_owned(),
            ..PciDevice::default()
        })),
        ..NetworkStatus::default()
    };
    let expected = r#"[{
    "name": "team/sriov",
    "interface": "net1",
    "dns": {
        "nameservers": [
            "10.0.0.10"
        ],
        "domain": "cluster.local",
        "search": [
            "svc.cluster.local"
        ],
        "options": [
            "ndots:5"
        ]
    },
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.3",
            "pf-pci-address": "0000:03:00.0"
        }
    }
}]"#;
    assert_eq!(format_network_status(&[status]), expected);
}

#[test]
fn escapes_like_go() {
    let status = NetworkStatus {
        name: "a<b>&c\u{2028}\u{2029}\"\\\n\t\u{1}\u{8}\u{c}é".to_owned(),
        ..NetworkStatus::default()
    };
    let expected = "[{\n    \"name\": \"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\\"\\\\\\n\\t\\u0001\\b\\fé\",\n    \"dns\": {}\n}]";
    assert_eq!(
        format_network_status(std::slice::from_ref(&status)),
        expected
    );
    assert_eq!(parse_network_status(expected).unwrap(), vec![status]);
}

#[test]
fn reads_what_it_writes() {
    assert_eq!(
        parse_network_status(CLUSTER_AND_MACVLAN).unwrap(),
        cluster_and_macvlan()
    );
}

#[test]
fn reads_the_spec_spelling_default_route() {
    let spec_form = r#"[{"name":"a","default":true,"default-route":["10.0.0.1"]}]"#;
    let parsed = parse_network_status(spec_form).unwrap();
    assert_eq!(parsed[0].gateway, vec!["10.0.0.1".to_owned()]);
    assert!(parsed[0].default);
    // Both spellings: `gateway` wins.
    let both = r#"[{"name":"a","gateway":["10.0.0.1"],"default-route":["10.0.0.2"]}]"#;
    assert_eq!(
        parse_network_status(both).unwrap()[0].gateway,
        vec!["10.0.0.1".to_owned()]
    );
}

#[test]
fn reader_tolerates_nulls_unknown_keys_and_missing_dns() {
    let text = r#"[{"name":"a","interface":null,"ips":null,"dns":null,"mtu":null,
                    "device-info":{"type":"vhost-user","version":"1.1.0",
                                   "vhost-user":{"mode":"server","path":"/var/run/vhu.sock"},"pci":null},
                    "x-extra":{"anything":[1]}}]"#;
    let parsed = parse_network_status(text).unwrap();
    assert_eq!(
        parsed,
        vec![NetworkStatus {
            name: "a".to_owned(),
            device_info: Some(DeviceInfo::vhost_user(VhostUserDevice {
                mode: "server".to_owned(),
                path: "/var/run/vhu.sock".to_owned(),
            })),
            ..NetworkStatus::default()
        }]
    );
}

#[test]
fn reader_reports_malformed_values() {
    for (text, message) in [
        (
            "",
            "network-status: EOF while parsing a value at line 1 column 0",
        ),
        (
            "{}",
            "network-status: invalid type: map, expected a sequence",
        ),
        (
            r#"[{"name":7}]"#,
            "network-status: invalid type: integer `7`, expected a string",
        ),
        (
            r#"[{"name":"a","mtu":-1}]"#,
            "network-status: invalid value: integer `-1`, expected u32",
        ),
        (
            r#"[{"name":"a","ips":"10.0.0.1"}]"#,
            "network-status: invalid type: string \"10.0.0.1\", expected a sequence",
        ),
    ] {
        assert_eq!(
            parse_network_status(text).unwrap_err().to_string(),
            message,
            "{text}"
        );
    }
}

#[test]
fn device_info_types() {
    let vdpa = DeviceInfo::vdpa(VdpaDevice {
        parent_device: "vdpa:0000:65:00.3".to_owned(),
        driver: "vhost".to_owned(),
        path: "/dev/vhost-vdpa-0".to_owned(),
        pci_address: "0000:65:00.3".to_owned(),
        pf_pci_address: "0000:65:00.0".to_owned(),
        representor_device: "eth3".to_owned(),
    });
    assert_eq!(
        serde_json::to_string(&vdpa).unwrap(),
        r#"{"type":"vdpa","version":"1.1.0","vdpa":{"parent-device":"vdpa:0000:65:00.3","driver":"vhost","path":"/dev/vhost-vdpa-0","pci-address":"0000:65:00.3","pf-pci-address":"0000:65:00.0","representor-device":"eth3"}}"#
    );
    let memif = DeviceInfo::memif(MemifDevice {
        role: "master".to_owned(),
        path: "/run/memif.sock".to_owned(),
        mode: "ethernet".to_owned(),
    });
    assert_eq!(
        serde_json::to_string(&memif).unwrap(),
        r#"{"type":"memif","version":"1.1.0","memif":{"role":"master","path":"/run/memif.sock","mode":"ethernet"}}"#
    );
    let pci = DeviceInfo::pci(PciDevice {
        pci_address: "0000:03:02.3".to_owned(),
        vhost_net: "/dev/vhost-net".to_owned(),
        rdma_device: "mlx5_3".to_owned(),
        pf_pci_address: "0000:03:00.0".to_owned(),
        representor_device: "pf0vf3".to_owned(),
    });
    let pci_json = r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.3","vhost-net":"/dev/vhost-net","rdma-device":"mlx5_3","pf-pci-address":"0000:03:00.0","representor-device":"pf0vf3"}}"#;
    assert_eq!(serde_json::to_string(&pci).unwrap(), pci_json);
    let vhost = DeviceInfo::vhost_user(VhostUserDevice {
        mode: "server".to_owned(),
        path: "/run/vhu.sock".to_owned(),
    });
    let vhost_json = r#"{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server","path":"/run/vhu.sock"}}"#;
    assert_eq!(serde_json::to_string(&vhost).unwrap(), vhost_json);
    for (info, json) in [(&pci, pci_json), (&vhost, vhost_json)] {
        assert_eq!(&DeviceInfo::from_json(json).unwrap(), info);
    }
    // Every key may be missing, in the document and in the per-type objects.
    assert_eq!(
        DeviceInfo::from_json(r#"{"vdpa":{},"memif":{"path":"/m"}}"#).unwrap(),
        DeviceInfo {
            vdpa: Some(VdpaDevice::default()),
            memif: Some(MemifDevice {
                path: "/m".to_owned(),
                ..MemifDevice::default()
            }),
            ..DeviceInfo::default()
        }
    );
    // The file a device plugin writes.
    let dp = DeviceInfo::from_json(
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.3","rdma-device":"mlx5_3","vhost-net":"/dev/vhost-net","representor-device":"pf0vf3"}}"#,
    )
    .unwrap();
    assert_eq!(dp.device_type, Some(DeviceType::Pci));
    let pci = dp.pci.unwrap();
    assert_eq!(pci.rdma_device, "mlx5_3");
    assert_eq!(pci.vhost_net, "/dev/vhost-net");
    assert_eq!(pci.representor_device, "pf0vf3");
    let other = DeviceInfo::from_json(r#"{"type":"future-kind","version":"2.0.0"}"#).unwrap();
    assert_eq!(
        other.device_type,
        Some(DeviceType::Other("future-kind".to_owned()))
    );
    assert_eq!(
        serde_json::to_string(&other).unwrap(),
        r#"{"type":"future-kind","version":"2.0.0"}"#
    );
    assert!(DeviceInfo::from_json("[").is_err());
}

#[test]
fn status_ip_matches_go_formatting() {
    assert_eq!(status_ip("10.1.2.3".parse().unwrap()), "10.1.2.3");
    assert_eq!(status_ip("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
    assert_eq!(status_ip("2001:DB8::1".parse().unwrap()), "2001:db8::1");
}
