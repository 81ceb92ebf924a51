//! Differential tests against the reference macvlan plugin (Debian containernetworking-plugins,
//! /usr/lib/cni/macvlan): the same config goes through theirs and ours, each in a node of its
//! own (a host namespace whose veth `mvm0` is the master, and a container namespace), and the
//! results, the container's kernel state and the error codes must agree.
//!
//! Known, deliberate differences, normalised or asserted separately:
//! - The reference answers 999 ("internal", Go's wrapper for untyped errors) for every config
//!   error; ours gives the spec's specific code (7 for a bad key, 8 for a bad netns, 4 for a
//!   taken CNI_IFNAME, 101 for a failed CHECK). Where the reference has a specific code (1, 4,
//!   6), ours must be the same.
//! - The installed reference (1.1.1) predates CNI 1.1.0: for 1.1.0 it is given the same config
//!   as 1.0.0 and results are compared without `cniVersion` (the two shapes are identical).
//! - The installed reference sets txqueuelen 0 on the link, which upstream fixed as a bug
//!   (plugins commit 3a49cff1); ours keeps the kernel default, so txqlen is not compared.
//! - The reference leaks the link when IPAM or address configuration fails; ours leaves
//!   nothing (asserted in the error table).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use multinet_testbed::require_root;
use serde_json::{Value, json};

fn ours_macvlan() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

const REFERENCE_MISSING: &str =
    "reference plugin /usr/lib/cni/macvlan missing: apt-get install -y containernetworking-plugins";

struct Case {
    name: &'static str,
    extra: Value,
    args: Option<&'static str>,
    /// The MAC is fixed by the config, so it is compared too.
    fixed_mac: bool,
    /// Commands run in both containers after ADD that CHECK must then notice.
    tamper: &'static [&'static [&'static str]],
    /// Commands run in both containers before ADD.
    setup: &'static [&'static [&'static str]],
}

fn host_local(extra: Value) -> Value {
    let mut ipam = json!({"type": "host-local", "subnet": "10.40.0.0/24"});
    for (k, v) in extra.as_object().unwrap() {
        ipam[k] = v.clone();
    }
    ipam
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "l2-bridge",
            extra: json!({"master": MASTER}),
            args: None,
            fixed_mac: false,
            tamper: &[&["link", "set", "eth0", "address", "02:99:99:99:99:99"]],
            setup: &[],
        },
        Case {
            name: "l2-private-empty-ipam",
            extra: json!({"master": MASTER, "mode": "private", "ipam": {}}),
            args: None,
            fixed_mac: false,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "l2-passthru",
            extra: json!({"master": MASTER, "mode": "passthru"}),
            args: None,
            fixed_mac: false,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "v4-vepa-default-route",
            extra: json!({"master": MASTER, "mode": "vepa",
                "ipam": host_local(json!({"routes": [{"dst": "0.0.0.0/0"}]}))}),
            args: None,
            fixed_mac: false,
            tamper: &[&["route", "del", "default"]],
            setup: &[],
        },
        Case {
            name: "dual-stack-v6-gateway",
            extra: json!({"master": MASTER, "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.41.0.0/24"}], [{"subnet": "fd00:41::/64"}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}),
            args: None,
            fixed_mac: false,
            tamper: &[&["addr", "del", "fd00:41::2/64", "dev", "eth0"]],
            setup: &[],
        },
        Case {
            name: "mtu-and-mac",
            extra: json!({"master": MASTER, "mtu": 1400, "mac": "02:12:34:56:78:9a",
                "ipam": host_local(json!({}))}),
            args: None,
            fixed_mac: true,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "mac-from-cni-args",
            extra: json!({"master": MASTER, "mac": "02:00:00:00:00:01", "ipam": host_local(json!({}))}),
            args: Some("IgnoreUnknown=1;MAC=02:00:00:00:00:02;K8S_POD_NAME=p"),
            fixed_mac: true,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "mac-from-runtime-config",
            extra: json!({"master": MASTER, "mac": "02:00:00:00:00:01",
                "runtimeConfig": {"mac": "02:00:00:00:00:03"}, "ipam": host_local(json!({}))}),
            args: Some("IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
            fixed_mac: true,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "master-from-default-route",
            extra: json!({"ipam": host_local(json!({}))}),
            args: None,
            fixed_mac: false,
            tamper: &[],
            setup: &[],
        },
        Case {
            name: "static-routes-and-dns",
            extra: json!({"master": MASTER,
                "ipam": {"type": "static",
                    "addresses": [{"address": "10.42.0.5/24", "gateway": "10.42.0.1"}],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.50.0/24", "gw": "10.42.0.254"}]},
                "dns": {"nameservers": ["10.42.0.53"], "search": ["example.test"]}}),
            args: None,
            fixed_mac: false,
            tamper: &[&["route", "del", "192.168.50.0/24"]],
            setup: &[],
        },
        Case {
            name: "static-device-route-no-gateway",
            extra: json!({"master": MASTER,
                "ipam": {"type": "static",
                    "addresses": [{"address": "10.43.0.5/24"}, {"address": "fd00:43::5/64"}],
                    "routes": [{"dst": "10.43.1.0/24"}, {"dst": "fd00:44::/64"}]}}),
            args: None,
            fixed_mac: false,
            tamper: &[&["route", "del", "10.43.1.0/24"]],
            setup: &[],
        },
        Case {
            // The pod already has a default route (its eth0 from the primary CNI, here a veth):
            // the second one is added beside it, not refused.
            name: "second-default-route",
            extra: json!({"master": MASTER, "ipam": host_local(json!({"routes": [{"dst": "0.0.0.0/0"}]}))}),
            args: None,
            fixed_mac: false,
            tamper: &[],
            setup: &[
                &[
                    "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
                ],
                &["link", "set", "pod0", "up"],
                &["addr", "add", "172.20.0.2/24", "dev", "pod0"],
                &["route", "add", "default", "via", "172.20.0.1"],
            ],
        },
    ]
}

/// The reference speaks at most 1.0.0; 1.1.0 results have the same shape.
fn reference_version(version: &str) -> &str {
    if version == "1.1.0" { "1.0.0" } else { version }
}

fn run_case(version: &str, case: &Case) {
    let ours_bin = ours_macvlan();
    let ref_bin = std::path::PathBuf::from(REFERENCE_MACVLAN);
    let ours = Node::new();
    let theirs = Node::new();
    let our_conf = conf(version, case.name, case.extra.clone());
    let ref_conf = conf(reference_version(version), case.name, case.extra.clone());
    let mut call = Call::new(&format!("diff-{}", case.name));
    call.args = case.args.map(str::to_owned);
    let ctx = format!("[{version} {}]", case.name);
    for cmd in case.setup {
        ours.container.ip(cmd);
        theirs.container.ip(cmd);
    }

    // ADD
    let o = ours.run(&ours_bin, "ADD", &our_conf, &call);
    let t = theirs.run(&ref_bin, "ADD", &ref_conf, &call);
    let our_result = o.expect_ok(&format!("{ctx} our ADD")).clone();
    let ref_result = t.expect_ok(&format!("{ctx} reference ADD")).clone();
    assert_eq!(our_result["cniVersion"], version, "{ctx}");
    let drop_version = version != reference_version(version);
    assert_eq!(
        normalise_result(
            &our_result,
            &ours.container_path(),
            case.fixed_mac,
            drop_version
        ),
        normalise_result(
            &ref_result,
            &theirs.container_path(),
            case.fixed_mac,
            drop_version
        ),
        "{ctx} ADD results differ"
    );
    // The MAC we report is the link's.
    let mac = our_result["interfaces"][0]["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ours.container.link_mac("eth0"), mac, "{ctx}");
    assert_eq!(
        ours.snapshot(case.fixed_mac),
        theirs.snapshot(case.fixed_mac),
        "{ctx} kernel state after ADD differs"
    );
    let our_links = ours.container.ip_json(&["-d", "link", "show", "eth0"]);
    assert_eq!(
        our_links[0]["txqlen"], 1000,
        "{ctx} kernel default txqueuelen"
    );

    // CHECK
    let our_check_conf = with_prev(&our_conf, &our_result);
    let ref_check_conf = with_prev(&ref_conf, &ref_result);
    let o = ours.run(&ours_bin, "CHECK", &our_check_conf, &call);
    let t = theirs.run(&ref_bin, "CHECK", &ref_check_conf, &call);
    if version == "0.3.1" {
        assert_eq!(
            (o.code(), t.code()),
            (Some(1), Some(1)),
            "{ctx} CHECK gate: {o:?} {t:?}"
        );
    } else {
        o.expect_ok(&format!("{ctx} our CHECK"));
        t.expect_ok(&format!("{ctx} reference CHECK"));
        if !case.tamper.is_empty() {
            for cmd in case.tamper {
                ours.container.ip(cmd);
                theirs.container.ip(cmd);
            }
            let o = ours.run(&ours_bin, "CHECK", &our_check_conf, &call);
            let t = theirs.run(&ref_bin, "CHECK", &ref_check_conf, &call);
            assert_eq!(
                o.code(),
                Some(101),
                "{ctx} our CHECK after tampering: {o:?}"
            );
            assert!(!t.ok(), "{ctx} reference CHECK after tampering passed");
        }
    }

    // DEL (with prevResult from 0.4.0 on, as libcni sends it), twice.
    let (our_del_conf, ref_del_conf) = if version == "0.3.1" {
        (our_conf.clone(), ref_conf.clone())
    } else {
        (our_check_conf, ref_check_conf)
    };
    for round in ["DEL", "repeated DEL"] {
        let o = ours.run(&ours_bin, "DEL", &our_del_conf, &call);
        let t = theirs.run(&ref_bin, "DEL", &ref_del_conf, &call);
        o.expect_ok(&format!("{ctx} our {round}"));
        t.expect_ok(&format!("{ctx} reference {round}"));
        // Only what the test put there before ADD is left.
        let before: Vec<&str> = if case.setup.is_empty() {
            vec!["lo"]
        } else {
            vec!["lo", "pod0", "pod1"]
        };
        assert_eq!(ours.container_links(), before, "{ctx} after our {round}");
        assert_eq!(
            theirs.container_links(),
            before,
            "{ctx} after reference {round}"
        );
        assert_eq!(
            ours.snapshot(false),
            theirs.snapshot(false),
            "{ctx} after {round}"
        );
        assert!(
            ours.allocated(case.name).is_empty(),
            "{ctx} our {round} left IPs"
        );
        assert!(
            theirs.allocated(case.name).is_empty(),
            "{ctx} reference {round} left IPs"
        );
    }
    assert_eq!(ours.host_links(), vec!["lo", MASTER, PEER], "{ctx}");
}

fn differential(version: &str) {
    if !multinet_testbed::require_root("differential") {
        return;
    }
    assert!(
        std::path::Path::new(REFERENCE_MACVLAN).exists(),
        "{REFERENCE_MISSING}"
    );
    for case in cases() {
        run_case(version, &case);
    }
}

#[test]
fn add_check_del_match_the_reference_0_3_1() {
    differential("0.3.1");
}

#[test]
fn add_check_del_match_the_reference_0_4_0() {
    differential("0.4.0");
}

#[test]
fn add_check_del_match_the_reference_1_0_0() {
    differential("1.0.0");
}

#[test]
fn add_check_del_match_the_reference_1_1_0() {
    differential("1.1.0");
}

/// A vanished netns: both release the addresses and succeed.
#[test]
fn del_after_the_netns_is_gone_matches_the_reference() {
    require_root!();
    for version in VERSIONS {
        let ours = Node::new();
        let theirs = Node::new();
        let extra = json!({"master": MASTER, "ipam": host_local(json!({}))});
        let our_conf = conf(version, "gone", extra.clone());
        let ref_conf = conf(reference_version(version), "gone", extra);
        let call = Call::new("gone");
        ours.run(&ours_macvlan(), "ADD", &our_conf, &call)
            .expect_ok("our ADD");
        theirs
            .run(
                std::path::Path::new(REFERENCE_MACVLAN),
                "ADD",
                &ref_conf,
                &call,
            )
            .expect_ok("reference ADD");
        assert_eq!(ours.allocated("gone").len(), 1);
        for node in [&ours, &theirs] {
            node.host.ip(&["link", "show"]); // the host namespace stays
            std::process::Command::new("ip")
                .args(["netns", "delete", node.container.name()])
                .status()
                .unwrap();
        }
        for _ in 0..2 {
            ours.run(&ours_macvlan(), "DEL", &our_conf, &call)
                .expect_ok("our DEL");
            theirs
                .run(
                    std::path::Path::new(REFERENCE_MACVLAN),
                    "DEL",
                    &ref_conf,
                    &call,
                )
                .expect_ok("reference DEL");
        }
        assert!(
            ours.allocated("gone").is_empty(),
            "[{version}] our DEL left the IP"
        );
        assert!(theirs.allocated("gone").is_empty());
        // An empty CNI_NETNS is also fine for DEL.
        let mut empty = call.clone();
        empty.netns = Some(String::new());
        ours.run(&ours_macvlan(), "DEL", &our_conf, &empty)
            .expect_ok("our DEL without netns");
    }
}

struct ErrCase {
    name: &'static str,
    verb: &'static str,
    extra: Value,
    /// Our code; the reference must give the same or its generic 999.
    code: u64,
    /// Text our message must contain (the key or variable).
    names: &'static str,
    ifname: &'static str,
    /// Links the test puts in the container first.
    pre_links: &'static [&'static str],
}

fn err_cases() -> Vec<ErrCase> {
    let e = |name, extra, code, names| ErrCase {
        name,
        verb: "ADD",
        extra,
        code,
        names,
        ifname: "eth0",
        pre_links: &[],
    };
    vec![
        e(
            "unknown-mode",
            json!({"master": MASTER, "mode": "bridged"}),
            7,
            "\"mode\"",
        ),
        e(
            "source-mode",
            json!({"master": MASTER, "mode": "source"}),
            7,
            "\"mode\"",
        ),
        e(
            "mtu-too-large",
            json!({"master": MASTER, "mtu": 9000}),
            7,
            "\"mtu\"",
        ),
        e(
            "mtu-negative",
            json!({"master": MASTER, "mtu": -1}),
            7,
            "\"mtu\"",
        ),
        e(
            "mtu-not-a-number",
            json!({"master": MASTER, "mtu": "1400"}),
            7,
            "\"mtu\"",
        ),
        e(
            "missing-master",
            json!({"master": "nosuch0"}),
            7,
            "\"master\"",
        ),
        e(
            "bad-mac",
            json!({"master": MASTER, "mac": "02:00:00:00:00"}),
            7,
            "\"mac\"",
        ),
        e(
            "multicast-mac",
            json!({"master": MASTER, "mac": "01:00:5e:00:00:01"}),
            7,
            "\"mac\"",
        ),
        e(
            "bad-cidr",
            json!({"master": MASTER, "ipam": {"type": "host-local", "subnet": "10.1.2.0/33"}}),
            7,
            "subnet",
        ),
        e(
            "unknown-ipam-type",
            json!({"master": MASTER, "ipam": {"type": "no-such-ipam"}}),
            7,
            "no-such-ipam",
        ),
        e(
            "bad-version",
            json!({"master": MASTER, "cniVersion": "9.9.9"}),
            1,
            "9.9.9",
        ),
        ErrCase {
            name: "ifname-taken",
            pre_links: &["eth0"],
            ..e("ifname-taken", json!({"master": MASTER}), 4, "CNI_IFNAME")
        },
        ErrCase {
            ifname: "",
            ..e("empty-ifname", json!({"master": MASTER}), 4, "CNI_IFNAME")
        },
        ErrCase {
            verb: "CHECK",
            ..e(
                "check-without-prev-result",
                json!({"master": MASTER}),
                7,
                "prevResult",
            )
        },
    ]
}

fn errors(version: &str) {
    if !multinet_testbed::require_root("errors") {
        return;
    }
    assert!(
        std::path::Path::new(REFERENCE_MACVLAN).exists(),
        "{REFERENCE_MISSING}"
    );
    for case in err_cases() {
        if case.verb == "CHECK" && version == "0.3.1" {
            continue;
        }
        let ctx = format!("[{version} {}]", case.name);
        let ours = Node::new();
        let theirs = Node::new();
        let mut extra = case.extra.clone();
        let v = extra
            .as_object_mut()
            .unwrap()
            .remove("cniVersion")
            .map(|v| v.as_str().unwrap().to_owned());
        let our_conf = conf(v.as_deref().unwrap_or(version), case.name, extra.clone());
        let ref_conf = conf(
            v.as_deref().unwrap_or(reference_version(version)),
            case.name,
            extra,
        );
        for node in [&ours, &theirs] {
            for l in case.pre_links {
                node.container.add_veth(l, &format!("{l}p"), None);
            }
        }
        let before = ours.container_links();
        let mut call = Call::new("err");
        call.ifname = case.ifname.to_owned();
        let o = ours.run(&ours_macvlan(), case.verb, &our_conf, &call);
        let t = theirs.run(
            std::path::Path::new(REFERENCE_MACVLAN),
            case.verb,
            &ref_conf,
            &call,
        );
        assert_eq!(o.code(), Some(case.code), "{ctx} ours: {o:?}");
        let their_code = t
            .code()
            .unwrap_or_else(|| panic!("{ctx} reference did not fail: {t:?}"));
        assert!(
            their_code == case.code || their_code == 999,
            "{ctx} reference code {their_code}, ours {}",
            case.code
        );
        assert!(
            o.msg().contains(case.names),
            "{ctx} message {:?} does not name {}",
            o.msg(),
            case.names
        );
        assert_eq!(
            ours.container_links(),
            before,
            "{ctx} we left links in the container"
        );
        assert_eq!(
            ours.host_links(),
            vec!["lo", MASTER, PEER],
            "{ctx} host links changed"
        );
        assert!(
            ours.allocated(case.name).is_empty(),
            "{ctx} we left an IP allocated"
        );
        if theirs.container_links() != before {
            eprintln!(
                "{ctx} note: the reference left {:?} behind",
                theirs.container_links()
            );
        }
    }
}

#[test]
fn errors_match_the_reference_0_3_1() {
    errors("0.3.1");
}

#[test]
fn errors_match_the_reference_0_4_0() {
    errors("0.4.0");
}

#[test]
fn errors_match_the_reference_1_0_0() {
    errors("1.0.0");
}

#[test]
fn errors_match_the_reference_1_1_0() {
    errors("1.1.0");
}
