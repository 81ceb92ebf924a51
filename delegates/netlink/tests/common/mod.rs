//! Helpers shared by the privileged tests: kernel state read back through `ip -j`.

#![allow(dead_code, clippy::unwrap_used)]

use multinet_netlink::{Link, Netns, Socket};
use multinet_testbed::TestNetns;
use serde_json::Value;

/// Opens the test namespace through the crate under test.
pub fn open(ns: &TestNetns) -> Netns {
    Netns::open(ns.path()).unwrap()
}

/// A netlink socket bound to the test namespace.
pub fn handle(ns: &TestNetns) -> Socket {
    Socket::inside(&open(ns), |_| ()).unwrap().0
}

/// The link named `name` (or one whose altname is `name`), which must exist.
pub fn link(nl: &Socket, name: &str) -> Link {
    nl.link_by_name(name).unwrap().unwrap().0
}

/// `ip -d -j link show dev <name>` inside `ns`, the single entry.
pub fn link_json(ns: &TestNetns, name: &str) -> Value {
    let v = ns.ip_json(&["-d", "link", "show", "dev", name]);
    v[0].clone()
}

/// True when `ip` reports flag `flag` (e.g. "UP") for the link.
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

/// Addresses of `name` in `ns` as "ip/prefix" strings.
pub fn addresses(ns: &TestNetns, name: &str) -> Vec<String> {
    let v = ns.ip_json(&["addr", "show", "dev", name]);
    v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}
