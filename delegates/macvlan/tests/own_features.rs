//! What the installed reference (1.1.1) cannot be compared on: linkInContainer, bcqueuelen,
//! STATUS and GC (CNI 1.1.0), the in-process path the meta-plugin uses, and a CNI_IFNAME that
//! the host namespace also has.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use multinet_cni::dispatch;
use multinet_macvlan::MacvlanPlugin;
use multinet_testbed::require_root;
use serde_json::{Value, json};

fn ours() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

fn hl(subnet: &str) -> Value {
    json!({"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]})
}

#[test]
fn link_in_container_uses_a_master_inside_the_pod() {
    require_root!();
    for version in VERSIONS {
        let node = Node::new();
        let c = &node.container;
        c.ip(&[
            "link", "add", "podm0", "type", "veth", "peer", "name", "podm1",
        ]);
        c.ip(&["link", "set", "podm0", "up"]);
        c.ip(&["link", "set", "podm1", "up"]);
        c.ip(&["addr", "add", "198.51.100.1/24", "dev", "podm0"]);
        c.ip(&["route", "add", "default", "via", "198.51.100.254"]);
        for (label, extra) in [
            (
                "named",
                json!({"master": "podm0", "linkInContainer": true, "ipam": hl("10.50.0.0/24")}),
            ),
            // Without master: the container's default route gives it.
            (
                "default route",
                json!({"linkInContainer": true, "ipam": hl("10.50.0.0/24")}),
            ),
        ] {
            let ctx = format!("[{version} {label}]");
            let conf = conf(version, "lic", extra);
            let call = Call::new("lic");
            let out = node.run(&ours(), "ADD", &conf, &call);
            let result = out.expect_ok(&ctx).clone();
            let link = c.ip_json(&["-d", "link", "show", "eth0"]);
            assert_eq!(link[0]["linkinfo"]["info_kind"], "macvlan", "{ctx}");
            assert_eq!(link[0]["link"], "podm0", "{ctx} parent is the pod's veth");
            assert_eq!(result["interfaces"][0]["mac"], link[0]["address"], "{ctx}");
            assert_eq!(
                node.host_links(),
                vec!["lo", MASTER, PEER],
                "{ctx} host untouched"
            );
            if version != "0.3.1" {
                node.run(&ours(), "CHECK", &with_prev(&conf, &result), &call)
                    .expect_ok(&format!("{ctx} CHECK"));
            }
            node.run(&ours(), "DEL", &conf, &call)
                .expect_ok(&format!("{ctx} DEL"));
            assert!(!c.has_link("eth0"), "{ctx}");
            assert!(c.has_link("podm0"), "{ctx} master kept");
            assert!(node.allocated("lic").is_empty(), "{ctx}");
        }
    }
}

#[test]
fn bcqueuelen_reaches_the_kernel() {
    require_root!();
    for version in VERSIONS {
        let node = Node::new();
        let conf = conf(version, "bcq", json!({"master": MASTER, "bcqueuelen": 256}));
        let call = Call::new("bcq");
        node.run(&ours(), "ADD", &conf, &call)
            .expect_ok(&format!("[{version}] ADD"));
        let link = node.container.ip_json(&["-d", "link", "show", "eth0"]);
        assert_eq!(
            link[0]["linkinfo"]["info_data"]["bcqueuelen"], 256,
            "[{version}]"
        );
        node.run(&ours(), "DEL", &conf, &call)
            .expect_ok(&format!("[{version}] DEL"));
    }
}

#[test]
fn status_and_gc_forward_to_ipam() {
    require_root!();
    let node = Node::new();
    let conf = conf(
        "1.1.0",
        "gcnet",
        json!({"master": MASTER, "ipam": hl("10.51.0.0/24")}),
    );
    for id in ["keep", "stale"] {
        let mut call = Call::new(id);
        call.ifname = "eth0".into();
        // Two attachments in two containers would need two netns; the IPAM state is what GC
        // is about, so the second ADD uses another interface name in the same container.
        if id == "stale" {
            call.ifname = "net9".into();
        }
        node.run(&ours(), "ADD", &conf, &call).expect_ok(id);
    }
    assert_eq!(node.allocated("gcnet").len(), 2);

    let status = node.run(&ours(), "STATUS", &conf, &Call::new("s"));
    status.expect_ok("STATUS");
    // STATUS only exists from 1.1.0 on.
    let old = conf_of(
        "macvlan",
        "1.0.0",
        "gcnet",
        json!({"master": MASTER, "ipam": hl("10.51.0.0/24")}),
    );
    assert_eq!(
        node.run(&ours(), "STATUS", &old, &Call::new("s")).code(),
        Some(1)
    );
    assert_eq!(
        node.run(&ours(), "GC", &old, &Call::new("s")).code(),
        Some(1)
    );
    // An unusable store makes STATUS fail with 50.
    let mut broken = conf.clone();
    broken["ipam"]["dataDir"] = json!("/proc/multinet-not-writable");
    let out = node.run(&ours(), "STATUS", &broken, &Call::new("s"));
    assert_eq!(out.code(), Some(50), "{out:?}");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.run(&ours(), "GC", &gc, &Call::new("gc"))
        .expect_ok("GC");
    assert_eq!(
        node.allocated("gcnet"),
        vec!["10.51.0.2"],
        "GC released the stale address only"
    );
    for (id, ifname) in [("keep", "eth0"), ("stale", "net9")] {
        let mut call = Call::new(id);
        call.ifname = ifname.into();
        node.run(&ours(), "DEL", &conf, &call).expect_ok("DEL");
    }
    assert!(node.allocated("gcnet").is_empty());
}

/// The meta-plugin runs MacvlanPlugin in-process through `dispatch`: same result as the binary.
#[test]
fn in_process_dispatch_matches_the_binary() {
    require_root!();
    for version in VERSIONS {
        let by_binary = Node::new();
        let in_process = Node::new();
        let extra =
            json!({"master": MASTER, "mac": "02:00:00:00:aa:01", "ipam": hl("10.52.0.0/24")});
        let conf = conf(version, "inproc", extra);
        let call = Call::new("inproc");
        let bin_out = by_binary.run(&ours(), "ADD", &conf, &call);
        let bin_result = bin_out.expect_ok("binary ADD").clone();

        let stdin = serde_json::to_vec(&in_process.localise(&conf)).unwrap();
        let vars = |verb: &str| {
            [
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", "inproc"),
                ("CNI_NETNS", in_process.container.path_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", CNI_PATH),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec()
        };
        // The plugin acts in the namespace of the thread that runs it: the node's host.
        let host = multinet_netlink::Netns::open(in_process.host.path()).unwrap();
        let run = |verb: &str| {
            let (vars, stdin) = (vars(verb), stdin.clone());
            multinet_netlink::run_in_netns(&host, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(dispatch(&MacvlanPlugin::new(), vars, &stdin))
            })
            .unwrap()
        };
        let (out, code) = run("ADD");
        assert_eq!(code, 0, "[{version}] {}", String::from_utf8_lossy(&out));
        let result: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            normalise_result(&result, in_process.container.path_str(), true, false),
            normalise_result(&bin_result, by_binary.container.path_str(), true, false),
            "[{version}]"
        );
        assert_eq!(
            in_process.snapshot(true),
            by_binary.snapshot(true),
            "[{version}]"
        );
        let (_, code) = run("DEL");
        assert_eq!(code, 0);
        assert_eq!(in_process.container_links(), vec!["lo"]);
        assert!(in_process.allocated("inproc").is_empty());
        by_binary
            .run(&ours(), "DEL", &conf, &call)
            .expect_ok("binary DEL");
    }
}

/// The host has a link named like CNI_IFNAME: the container's link is made all the same (on
/// kernels before 6.13 too: the link is created under its pending name, which the host never
/// has, and renamed in the container).
#[test]
fn ifname_that_the_host_also_has() {
    require_root!();
    for version in VERSIONS {
        let node = Node::new();
        let conf = conf(
            version,
            "samename",
            json!({"master": MASTER, "ipam": hl("10.53.0.0/24")}),
        );
        let mut call = Call::new("samename");
        call.ifname = PEER.into();
        let out = node.run(&ours(), "ADD", &conf, &call);
        let result = out.expect_ok(&format!("[{version}] ADD")).clone();
        assert_eq!(result["interfaces"][0]["name"], PEER);
        assert!(node.container.has_link(PEER));
        assert_eq!(node.host_links(), vec!["lo", MASTER, PEER]);
        node.run(&ours(), "DEL", &conf, &call).expect_ok("DEL");
        assert_eq!(node.container_links(), vec!["lo"]);
        assert!(
            node.host.has_link(PEER),
            "the host's link of that name is untouched"
        );
    }
}

/// arp_notify and ndisc_notify on every link; IPv6 enabled and kept on link-down when an IPv6
/// address comes.
#[test]
fn sysctls_are_set_inside_the_container() {
    require_root!();
    let read = |node: &Node, key: &str| {
        node.container
            .exec_checked(&["cat", &format!("/proc/sys/net/{key}")])
            .trim()
            .to_owned()
    };
    for (label, extra, ipv6) in [
        ("layer 2", json!({"master": MASTER}), false),
        (
            "dual stack",
            json!({"master": MASTER, "ipam": {"type": "static",
                "addresses": [{"address": "10.54.0.5/24"}, {"address": "fd00:54::5/64"}]}}),
            true,
        ),
    ] {
        let node = Node::new();
        // IPv6 off in the container beforehand: the plugin must turn it on for the address.
        node.container
            .exec_checked(&["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1"]);
        let conf = conf("1.0.0", "sysctl", extra);
        let call = Call::new("sysctl");
        node.run(&ours(), "ADD", &conf, &call).expect_ok(label);
        assert_eq!(read(&node, "ipv4/conf/eth0/arp_notify"), "1", "{label}");
        assert_eq!(read(&node, "ipv6/conf/eth0/ndisc_notify"), "1", "{label}");
        let want = if ipv6 { "0" } else { "1" };
        assert_eq!(read(&node, "ipv6/conf/lo/disable_ipv6"), want, "{label}");
        if ipv6 {
            assert_eq!(
                read(&node, "ipv6/conf/eth0/keep_addr_on_down"),
                "1",
                "{label}"
            );
            let addrs = node
                .container
                .ip_json(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
            assert_eq!(addrs[0]["addr_info"][0]["local"], "fd00:54::5", "{label}");
        }
        node.run(&ours(), "DEL", &conf, &call).expect_ok(label);
    }
}
