//! DEL deletes only a link multinet made: one of its kind that carries multinet's tag for the
//! container, or the MAC prevResult recorded. A link of the same name made by someone else
//! (the container, another plugin, or one that made a later ADD fail) is left alone, and DEL
//! still succeeds and still releases its addresses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use multinet_netlink::link_tag;
use multinet_testbed::require_root;
use serde_json::{Value, json};

fn ours() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

fn hl(subnet: &str) -> Value {
    json!({"type": "host-local", "subnet": subnet})
}

/// The container's `eth0` as `ip -d -j` reports it, or None.
fn eth0(node: &Node) -> Option<Value> {
    node.container
        .has_link("eth0")
        .then(|| node.container.ip_json(&["-d", "link", "show", "eth0"])[0].clone())
}

/// A prevResult naming the container's eth0 with `mac`, as a runtime would send on DEL.
fn prev_with_mac(node: &Node, version: &str, mac: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": mac, "sandbox": node.container_path()}],
        "ips": [{"address": "10.60.0.2/24", "interface": 0}],
    })
}

/// What must not change about a link another party owns.
fn identity(link: &Value) -> (Value, Value, Value, Value) {
    (
        link["ifindex"].clone(),
        link["address"].clone(),
        link["linkinfo"]["info_kind"].clone(),
        link["ifalias"].clone(),
    )
}

/// The container made a macvlan named like ours: our ADD fails with "name taken" and leaves
/// nothing, and the DEL the runtime sends next (with or without a prevResult) leaves it too.
#[test]
fn a_foreign_macvlan_named_like_ours_survives_the_failed_add_and_the_del() {
    require_root!();
    for version in VERSIONS {
        let ctx = format!("[{version}]");
        let node = Node::new();
        let c = &node.container;
        c.ip(&[
            "link", "add", "podf0", "type", "veth", "peer", "name", "podf1",
        ]);
        c.ip(&[
            "link",
            "add",
            "eth0",
            "link",
            "podf0",
            "address",
            "02:00:00:00:f0:01",
            "type",
            "macvlan",
        ]);
        let before = identity(&eth0(&node).unwrap());
        let host_before = node.host_links();

        let conf = conf(
            version,
            "foreign",
            json!({"master": MASTER, "ipam": hl("10.60.0.0/24")}),
        );
        let call = Call::new("victim");
        let out = node.run(&ours(), "ADD", &conf, &call);
        assert_eq!(out.code(), Some(4), "{ctx} {out:?}");
        assert!(out.msg().contains("\"eth0\""), "{ctx} {}", out.msg());
        assert!(
            node.allocated("foreign").is_empty(),
            "{ctx} addresses released"
        );
        assert_eq!(node.host_links(), host_before, "{ctx} host untouched");

        let dels = [
            ("no prevResult", conf.clone()),
            (
                "prevResult with another MAC",
                with_prev(&conf, &prev_with_mac(&node, version, "02:00:00:00:f0:02")),
            ),
        ];
        for (label, del) in dels {
            node.run(&ours(), "DEL", &del, &call)
                .expect_ok(&format!("{ctx} DEL, {label}"));
            let after = eth0(&node).unwrap_or_else(|| panic!("{ctx} {label}: eth0 deleted"));
            assert_eq!(identity(&after), before, "{ctx} {label}: eth0 changed");
        }
        assert_eq!(
            c.ip_json(&["link", "show", "type", "macvlan"])
                .as_array()
                .unwrap()
                .len(),
            1,
            "{ctx} no other macvlan appeared"
        );
        assert!(node.allocated("foreign").is_empty(), "{ctx}");
    }
}

/// The container replaced our link with a veth of the same name, carrying our tag and our
/// recorded MAC: it is not of our kind, so DEL leaves it (and its peer), and still releases
/// the addresses.
#[test]
fn a_veth_named_like_ours_is_left_even_with_our_tag_and_mac() {
    require_root!();
    for with_prev_result in [false, true] {
        let ctx = format!("[prevResult: {with_prev_result}]");
        let node = Node::new();
        let c = &node.container;
        let conf = conf(
            "1.0.0",
            "vethnet",
            json!({"master": MASTER, "ipam": hl("10.61.0.0/24")}),
        );
        let call = Call::new("victim");
        let result = node
            .run(&ours(), "ADD", &conf, &call)
            .expect_ok(&ctx)
            .clone();
        assert_eq!(node.allocated("vethnet").len(), 1, "{ctx}");
        let mac = result["interfaces"][0]["mac"].as_str().unwrap().to_owned();

        c.ip(&["link", "del", "eth0"]);
        c.ip(&[
            "link", "add", "eth0", "address", &mac, "type", "veth", "peer", "name", "podv1",
        ]);
        c.ip(&["link", "set", "eth0", "alias", &link_tag("victim")]);
        let before = identity(&eth0(&node).unwrap());
        assert_eq!(before.1, json!(mac), "{ctx}");

        let del = if with_prev_result {
            with_prev(&conf, &result)
        } else {
            conf.clone()
        };
        node.run(&ours(), "DEL", &del, &call).expect_ok(&ctx);
        let after = eth0(&node).unwrap_or_else(|| panic!("{ctx} the veth was deleted"));
        assert_eq!(identity(&after), before, "{ctx}");
        assert!(c.has_link("podv1"), "{ctx} its peer too");
        assert!(
            node.allocated("vethnet").is_empty(),
            "{ctx} released anyway"
        );
    }
}

/// ADD tags the link; DEL deletes it by the tag (no prevResult: CNI 0.3 runtimes, or a crash
/// before the result was recorded) or by prevResult's MAC when the tag is gone (links made
/// before tagging existed). Without either proof the link is left.
#[test]
fn our_link_is_tagged_and_deleted_with_or_without_prev_result() {
    require_root!();
    for version in VERSIONS {
        let ctx = format!("[{version}]");
        let node = Node::new();
        let conf = conf(
            version,
            "tagged",
            json!({"master": MASTER, "ipam": hl("10.62.0.0/24")}),
        );
        let call = Call::new("tagged-ctr");
        let add = || {
            let result = node
                .run(&ours(), "ADD", &conf, &call)
                .expect_ok(&ctx)
                .clone();
            let link = eth0(&node).unwrap();
            assert_eq!(
                link["ifalias"],
                link_tag("tagged-ctr"),
                "{ctx} tag set by ADD"
            );
            assert_eq!(result["interfaces"][0]["mac"], link["address"], "{ctx}");
            result
        };
        let gone = |label: &str| {
            assert!(!node.container.has_link("eth0"), "{ctx} {label}");
            assert!(node.allocated("tagged").is_empty(), "{ctx} {label}");
        };

        add();
        node.run(&ours(), "DEL", &conf, &call)
            .expect_ok(&format!("{ctx} DEL by tag"));
        gone("by tag");

        let result = add();
        node.run(&ours(), "DEL", &with_prev(&conf, &result), &call)
            .expect_ok(&format!("{ctx} DEL with prevResult"));
        gone("with prevResult");

        // The pod changed our link's MAC: the tag still proves it.
        let result = add();
        node.container
            .ip(&["link", "set", "eth0", "address", "02:00:00:00:0c:0d"]);
        node.run(&ours(), "DEL", &with_prev(&conf, &result), &call)
            .expect_ok(&format!("{ctx} DEL after a MAC change"));
        gone("after a MAC change");

        // An untagged link (made before tagging existed): prevResult's MAC proves it.
        let result = add();
        node.container.ip(&["link", "set", "eth0", "alias", ""]);
        assert!(eth0(&node).unwrap().get("ifalias").is_none(), "{ctx}");
        node.run(&ours(), "DEL", &conf, &call)
            .expect_ok(&format!("{ctx} DEL of an untagged link, no prevResult"));
        assert!(
            node.container.has_link("eth0"),
            "{ctx} no tag and no MAC: nothing proves it ours"
        );
        assert!(node.allocated("tagged").is_empty(), "{ctx} released anyway");
        node.run(&ours(), "DEL", &with_prev(&conf, &result), &call)
            .expect_ok(&format!("{ctx} DEL of an untagged link, with prevResult"));
        gone("untagged, by MAC");
    }
}

/// A link tagged for another container is not ours, whatever its name.
#[test]
fn a_link_tagged_for_another_container_is_left() {
    require_root!();
    let node = Node::new();
    let conf = conf("1.1.0", "two", json!({"master": MASTER}));
    node.run(&ours(), "ADD", &conf, &Call::new("ctr-a"))
        .expect_ok("ADD");
    let before = identity(&eth0(&node).unwrap());
    node.run(&ours(), "DEL", &conf, &Call::new("ctr-b"))
        .expect_ok("DEL as another container");
    assert_eq!(identity(&eth0(&node).expect("left")), before);
    node.run(&ours(), "DEL", &conf, &Call::new("ctr-a"))
        .expect_ok("DEL");
    assert!(!node.container.has_link("eth0"));
}

/// A container ID too long for the kernel's alias buffer gets the hashed tag, and DEL finds
/// the link by it.
#[test]
fn a_long_container_id_gets_a_tag_that_fits() {
    require_root!();
    let node = Node::new();
    let id = format!("c{}", "0123456789abcdef".repeat(20));
    let conf = conf("1.1.0", "long", json!({"master": MASTER}));
    node.run(&ours(), "ADD", &conf, &Call::new(&id))
        .expect_ok("ADD");
    let alias = eth0(&node).unwrap()["ifalias"].clone();
    assert_eq!(alias, link_tag(&id));
    assert!(alias.as_str().unwrap().len() <= multinet_netlink::MAX_ALIAS_LEN);
    node.run(&ours(), "DEL", &conf, &Call::new(&id))
        .expect_ok("DEL");
    assert!(!node.container.has_link("eth0"));
}
