//! The spec's own example configs and results.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use multinet_cni::{AnyConf, CniError, CniVersion, NetConf, NetConfList, NetworkResult, parse_any};
use serde_json::{Value, json};

/// The 1.x spec's example config list.
const SPEC_CONFLIST: &str = r#"{
  "cniVersion": "1.1.0",
  "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  "name": "dbnet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "keyA": ["some more", "plugin specific", "configuration"],
      "ipam": {
        "type": "host-local",
        "subnet": "10.1.0.0/16",
        "gateway": "10.1.0.1",
        "routes": [ {"dst": "0.0.0.0/0"} ]
      },
      "dns": { "nameservers": [ "10.1.0.1" ] }
    },
    {
      "type": "tuning",
      "capabilities": { "mac": true },
      "sysctl": { "net.core.somaxconn": "500" }
    },
    {
        "type": "portmap",
        "capabilities": {"portMappings": true}
    }
  ]
}"#;

/// The 1.x spec's example ADD result of the bridge plugin.
const SPEC_RESULT: &str = r#"{
  "cniVersion": "1.1.0",
  "interfaces": [
      { "name": "cni0", "mac": "00:11:22:33:44:55" },
      { "name": "veth3243", "mac": "55:44:33:22:11:11" },
      { "name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue" }
  ],
  "ips": [
      { "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 }
  ],
  "routes": [ { "dst": "0.0.0.0/0" } ],
  "dns": { "nameservers": [ "10.1.0.1" ] }
}"#;

/// The 0.4.0 spec's prevResult as handed to the tuning plugin.
const SPEC_040_TUNING_CONF: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "dbnet",
  "type": "tuning",
  "sysctl": { "net.core.somaxconn": "500" },
  "prevResult": {
    "ips": [ { "version": "4", "address": "10.0.0.5/32", "interface": 2 } ],
    "interfaces": [
        { "name": "cni0", "mac": "00:11:22:33:44:55" },
        { "name": "veth3243", "mac": "55:44:33:22:11:11" },
        { "name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue" }
    ],
    "dns": { "nameservers": [ "10.1.0.1" ] }
  }
}"#;

/// The 0.4.0 spec's IPAM result shape with every optional part.
const SPEC_040_IPAM_RESULT: &str = r#"{
  "cniVersion": "0.4.0",
  "ips": [
      { "version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1" },
      { "version": "6", "address": "2001:db8::5/64" }
  ],
  "routes": [ { "dst": "0.0.0.0/0", "gw": "10.1.0.1" } ],
  "dns": { "nameservers": ["10.1.0.1"], "domain": "example.com", "search": ["a.example.com"], "options": ["ndots:2"] }
}"#;

#[test]
fn spec_conflist_parses_and_feeds_plugins_like_the_spec() {
    let AnyConf::List(list) = parse_any(SPEC_CONFLIST.as_bytes()).unwrap() else {
        panic!("a list");
    };
    assert_eq!(list.name, "dbnet");
    assert_eq!(list.plugins.len(), 3);
    assert_eq!(list.effective_version().unwrap(), CniVersion::V1_1_0);
    let bridge: Value = serde_json::from_slice(&list.plugin_conf(0, None).unwrap()).unwrap();
    assert_eq!(
        bridge,
        json!({
            "type": "bridge",
            "bridge": "cni0",
            "keyA": ["some more", "plugin specific", "configuration"],
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "gateway": "10.1.0.1",
                     "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["10.1.0.1"]},
            "name": "dbnet",
            "cniVersion": "1.1.0"
        })
    );
    let prev = NetworkResult::from_slice(SPEC_RESULT.as_bytes(), CniVersion::V1_1_0).unwrap();
    let tuning = NetConf::from_slice(&list.plugin_conf(1, Some(&prev)).unwrap()).unwrap();
    assert_eq!(tuning.plugin_type, "tuning");
    assert_eq!(tuning.extra["sysctl"], json!({"net.core.somaxconn": "500"}));
    assert_eq!(tuning.prev_result().unwrap(), Some(prev));
    // Round trip of the whole list object.
    let again: Value = serde_json::to_value(&list).unwrap();
    let orig: Value = serde_json::from_str(SPEC_CONFLIST).unwrap();
    assert_eq!(again, orig);
}

#[test]
fn spec_bridge_conf_from_list_round_trips_as_single_conf() {
    let list = NetConfList::from_slice(SPEC_CONFLIST.as_bytes()).unwrap();
    let bytes = list.plugin_conf(0, None).unwrap();
    let conf = NetConf::from_slice(&bytes).unwrap();
    assert_eq!(conf.ipam.as_ref().unwrap()["subnet"], "10.1.0.0/16");
    assert_eq!(conf.dns.as_ref().unwrap().nameservers, vec!["10.1.0.1"]);
    assert_eq!(conf.extra["bridge"], "cni0");
    assert_eq!(
        conf.to_value().unwrap(),
        serde_json::from_slice::<Value>(&bytes).unwrap()
    );
}

#[test]
fn spec_result_in_every_version() {
    let r = NetworkResult::from_slice(SPEC_RESULT.as_bytes(), CniVersion::V1_0_0).unwrap();
    assert_eq!(r.cni_version, CniVersion::V1_1_0);
    assert_eq!(r.ips[0].interface, Some(2));
    // 1.1.0 out is the spec's text.
    assert_eq!(
        r.to_value(CniVersion::V1_1_0).unwrap(),
        serde_json::from_str::<Value>(SPEC_RESULT).unwrap()
    );
    // 0.4.0 out adds "version".
    let v040 = r.to_value(CniVersion::V0_4_0).unwrap();
    assert_eq!(
        v040["ips"],
        json!([{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}])
    );
    // 0.2.0 out keeps the first v4 address and its routes.
    assert_eq!(
        r.to_value(CniVersion::V0_2_0).unwrap(),
        json!({"cniVersion": "0.2.0",
               "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
               "dns": {"nameservers": ["10.1.0.1"]}})
    );
}

#[test]
fn spec_040_prev_result_is_read_in_config_version() {
    let conf = NetConf::from_slice(SPEC_040_TUNING_CONF.as_bytes()).unwrap();
    let prev = conf.prev_result().unwrap().unwrap();
    assert_eq!(prev.cni_version, CniVersion::V0_4_0);
    assert_eq!(prev.interfaces.len(), 3);
    assert_eq!(
        prev.interfaces[2].sandbox.as_deref(),
        Some("/var/run/netns/blue")
    );
    assert_eq!(prev.ips[0].address.to_string(), "10.0.0.5/32");
    let v1 = prev.to_value(CniVersion::V1_0_0).unwrap();
    assert!(v1["ips"][0].get("version").is_none());
}

#[test]
fn spec_040_ipam_result_round_trips_exactly() {
    let orig: Value = serde_json::from_str(SPEC_040_IPAM_RESULT).unwrap();
    let r = NetworkResult::from_value(&orig, CniVersion::V1_0_0).unwrap();
    assert_eq!(r.to_value(CniVersion::V0_4_0).unwrap(), orig);
    assert_eq!(r.dns.domain.as_deref(), Some("example.com"));
}

#[test]
fn spec_error_and_version_examples() {
    let spec_err = json!({
      "cniVersion": "1.1.0",
      "code": 7,
      "msg": "Invalid Configuration",
      "details": "Network 192.168.0.0/31 too small to allocate from."
    });
    let e: CniError = serde_json::from_value(spec_err.clone()).unwrap();
    assert_eq!(e.code.code(), 7);
    assert_eq!(e.to_json("1.1.0"), spec_err);
    let info = multinet_cni::plugin::version_info(multinet_cni::SUPPORTED_VERSIONS);
    assert_eq!(
        info,
        json!({"cniVersion": "1.1.0",
               "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[test]
fn legacy_020_result_reads_up() {
    let legacy = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
        "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0"}]},
        "dns": {}
    });
    let r = NetworkResult::from_value(&legacy, CniVersion::V1_0_0).unwrap();
    assert_eq!(r.ips.len(), 2);
    assert_eq!(r.routes.len(), 2);
    assert_eq!(
        r.to_value(CniVersion::V0_3_1).unwrap()["ips"][1],
        json!({"version": "6", "address": "2001:db8::5/64"})
    );
    assert_eq!(r.to_value(CniVersion::V0_2_0).unwrap(), legacy);
}
