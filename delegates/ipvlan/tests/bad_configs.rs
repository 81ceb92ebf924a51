//! ipvlan's bad configs: right code, a message naming the key, nothing left behind. Every
//! row fails before a link would be created, so the table also runs on kernels without
//! ipvlan; the kernel lab (tests/kernel-lab/guest/ipvlan-*.sh) covers the working paths.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "../../macvlan/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;

fn ours() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ipvlan"))
}

fn rows() -> Vec<Row> {
    let m = MASTER;
    let hl = json!({"type": "host-local", "subnet": "10.70.0.0/24"});
    let prev_two = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0"}, {"name": "veth0"}],
        "ips": [{"address": "10.71.0.5/24", "interface": 0}]});
    let prev_no_ips = json!({"cniVersion": "1.0.0", "interfaces": [{"name": m}]});
    vec![
        row(
            "unknown-mode",
            json!({"master": m, "mode": "l4", "ipam": hl}),
            7,
            "\"mode\"",
        ),
        row(
            "mode-wrong-case",
            json!({"master": m, "mode": "L2", "ipam": hl}),
            7,
            "\"mode\"",
        ),
        row(
            "no-ipam-no-prev-result",
            json!({"master": m}),
            7,
            "\"ipam\"",
        ),
        row(
            "empty-ipam-no-prev-result",
            json!({"master": m, "ipam": {}}),
            7,
            "\"ipam\"",
        ),
        row(
            "prev-result-without-ips",
            json!({"prevResult": prev_no_ips}),
            7,
            "\"ipam\"",
        ),
        row(
            "chained-two-interfaces",
            json!({"prevResult": prev_two, "ipam": hl}),
            7,
            "\"master\"",
        ),
        row(
            "mtu-negative",
            json!({"master": m, "mtu": -5, "ipam": hl}),
            7,
            "\"mtu\"",
        ),
        row(
            "master-missing",
            json!({"master": "nosuch0", "ipam": hl}),
            7,
            "\"master\"",
        ),
        row(
            "master-missing-in-container",
            json!({"master": m, "linkInContainer": true, "ipam": hl}),
            7,
            "\"master\"",
        ),
        row(
            "ipam-bad-cidr",
            json!({"master": m, "ipam": {"type": "host-local", "subnet": "10.72.0.0/40"}}),
            7,
            "subnet",
        ),
        row(
            "ipam-unknown-type",
            json!({"master": m, "ipam": {"type": "no-such-ipam"}}),
            7,
            "no-such-ipam",
        ),
        row(
            "ipam-not-an-object",
            json!({"master": m, "ipam": ["host-local"]}),
            7,
            "\"ipam\"",
        ),
        Row {
            netns: Some("/run/netns/multinet-no-such-netns"),
            ..row(
                "netns-missing",
                json!({"master": m, "ipam": hl}),
                8,
                "CNI_NETNS",
            )
        },
        Row {
            verb: "CHECK",
            ..row(
                "check-without-prev-result",
                json!({"master": m, "ipam": {"type": "static",
                "addresses": [{"address": "10.73.0.5/24"}]}}),
                7,
                "prevResult",
            )
        },
    ]
}

fn table(version: &str) {
    if !multinet_testbed::require_root("ipvlan bad_configs") {
        return;
    }
    run_table(&ours(), "ipvlan", version, rows());
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
