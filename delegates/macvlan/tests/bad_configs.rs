//! Bad configs and failing ADDs: each is answered with the right CNI code and a message that
//! names the key (or variable), and leaves nothing behind: no link in the container or the
//! host, no address on record in host-local's store. Rows that fail after the link exists
//! (an unreachable route gateway, a duplicate IPv6 address) prove the rollback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use serde_json::{Value, json};

fn ours() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

fn hl(subnet: &str) -> Value {
    json!({"type": "host-local", "subnet": subnet})
}

fn rows() -> Vec<Row> {
    let m = MASTER;
    vec![
        row(
            "unknown-mode",
            json!({"master": m, "mode": "bridged"}),
            7,
            "\"mode\"",
        ),
        row(
            "source-mode",
            json!({"master": m, "mode": "source"}),
            7,
            "\"mode\"",
        ),
        row(
            "mode-not-a-string",
            json!({"master": m, "mode": 1}),
            7,
            "\"mode\"",
        ),
        row(
            "mtu-above-master",
            json!({"master": m, "mtu": 1501}),
            7,
            "\"mtu\"",
        ),
        row(
            "mtu-negative",
            json!({"master": m, "mtu": -1}),
            7,
            "\"mtu\"",
        ),
        row(
            "mtu-a-string",
            json!({"master": m, "mtu": "1400"}),
            7,
            "\"mtu\"",
        ),
        row(
            "mtu-fraction",
            json!({"master": m, "mtu": 1400.5}),
            7,
            "\"mtu\"",
        ),
        row(
            "master-missing-on-host",
            json!({"master": "nosuch0"}),
            7,
            "\"master\"",
        ),
        // host-local has started allocating when the master turns out wrong: released again.
        row(
            "master-missing-with-ipam",
            json!({"master": "nosuch0", "ipam": hl("10.68.0.0/24")}),
            7,
            "\"master\"",
        ),
        row(
            "mtu-above-master-with-ipam",
            json!({"master": m, "mtu": 9000, "ipam": hl("10.69.0.0/24")}),
            7,
            "\"mtu\"",
        ),
        row(
            "master-not-a-string",
            json!({"master": [m]}),
            7,
            "\"master\"",
        ),
        row(
            "master-missing-in-container",
            json!({"master": m, "linkInContainer": true}),
            7,
            "\"master\"",
        ),
        row(
            "link-in-container-not-bool",
            json!({"master": m, "linkInContainer": "yes"}),
            7,
            "\"linkInContainer\"",
        ),
        row(
            "bad-mac",
            json!({"master": m, "mac": "02:00:00:00:00"}),
            7,
            "\"mac\"",
        ),
        row(
            "multicast-mac",
            json!({"master": m, "mac": "01:00:5e:00:00:01"}),
            7,
            "\"mac\"",
        ),
        Row {
            args: Some("IgnoreUnknown=1;MAC=zz:zz"),
            ..row("bad-cni-args-mac", json!({"master": m}), 7, "CNI_ARGS MAC")
        },
        row(
            "bad-runtime-config-mac",
            json!({"master": m, "runtimeConfig": {"mac": "00:00:00:00:00:00"}}),
            7,
            "runtimeConfig.mac",
        ),
        row(
            "bcqueuelen-negative",
            json!({"master": m, "bcqueuelen": -1}),
            7,
            "\"bcqueuelen\"",
        ),
        row(
            "ipam-bad-cidr",
            json!({"master": m, "ipam": hl("10.60.0.0/33")}),
            7,
            "subnet",
        ),
        row(
            "ipam-range-start-outside",
            json!({"master": m, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.61.0.0/24", "rangeStart": "10.62.0.5"}]]}}),
            7,
            "rangeStart",
        ),
        row(
            "ipam-unknown-type",
            json!({"master": m, "ipam": {"type": "no-such-ipam"}}),
            7,
            "no-such-ipam",
        ),
        row(
            "ipam-type-not-a-string",
            json!({"master": m, "ipam": {"type": 5}}),
            7,
            "ipam.type",
        ),
        row(
            "ipam-not-an-object",
            json!({"master": m, "ipam": "host-local"}),
            7,
            "\"ipam\"",
        ),
        row(
            "static-bad-address",
            json!({"master": m, "ipam": {"type": "static", "addresses": [{"address": "10.63.0.300/24"}]}}),
            7,
            "address",
        ),
        Row {
            netns: Some("/run/netns/multinet-no-such-netns"),
            ..row("netns-missing", json!({"master": m}), 8, "CNI_NETNS")
        },
        Row {
            pre_links: &["eth0"],
            ..row(
                "ifname-taken",
                json!({"master": m, "ipam": hl("10.64.0.0/24")}),
                4,
                "CNI_IFNAME",
            )
        },
        // Failures after the link exists: everything made is undone.
        Row {
            pre_allocated: &["10.67.0.5"],
            ..row(
                "ipam-range-exhausted",
                json!({"master": m, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.67.0.0/24",
                    "rangeStart": "10.67.0.5", "rangeEnd": "10.67.0.5"}]]}}),
                11,
                "10.67.0",
            )
        },
        row(
            "route-gateway-unreachable",
            json!({"master": m, "ipam": {"type": "host-local", "subnet": "10.65.0.0/24",
                "routes": [{"dst": "192.168.0.0/16", "gw": "172.31.9.9"}]}}),
            5,
            "route 192.168.0.0/16",
        ),
        Row {
            host_setup: &[&["addr", "add", "fd00:66::2/64", "dev", PEER, "nodad"]],
            ..row(
                "duplicate-ipv6-address",
                json!({"master": m, "ipam": {"type": "host-local", "subnet": "fd00:66::/64",
                    "routes": [{"dst": "::/0"}]}}),
                5,
                "duplicate address",
            )
        },
        Row {
            verb: "CHECK",
            ..row(
                "check-without-prev-result",
                json!({"master": m}),
                7,
                "prevResult",
            )
        },
        Row {
            verb: "CHECK",
            ..row(
                "check-undecodable-prev-result",
                json!({"master": m, "prevResult": {"ips": [{"address": "not-an-ip"}]}}),
                6,
                "prevResult",
            )
        },
    ]
}

fn table(version: &str) {
    if !multinet_testbed::require_root("bad_configs") {
        return;
    }
    let rows = rows();
    assert!(rows.len() >= 20, "the table must have at least 20 rows");
    run_table(&ours(), "macvlan", version, rows);
}

#[test]
fn bad_configs_0_3_1() {
    table("0.3.1");
}

#[test]
fn bad_configs_0_4_0() {
    table("0.4.0");
}

#[test]
fn bad_configs_1_0_0() {
    table("1.0.0");
}

#[test]
fn bad_configs_1_1_0() {
    table("1.1.0");
}
