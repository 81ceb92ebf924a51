//! Addresses, routes, IPv6 DAD and sysctls against the real kernel, checked with `ip -j`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{addresses, handle, link, open};
use ipnet::IpNet;
use multinet_netlink::{
    Family, KernelError, MAIN_TABLE, Route, Socket, read_sysctl, read_sysctl_in, write_sysctl_in,
};
use multinet_testbed::{TestNetns, VethPair, require_root};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A veth pair with both ends up, in one namespace, and the socket on it.
fn up_pair(ns: &TestNetns) -> (VethPair, Socket, u32, u32) {
    let veth = VethPair::in_netns(ns);
    let nl = handle(ns);
    let a = link(&nl, veth.a_name()).index;
    let b = link(&nl, veth.b_name()).index;
    nl.set_up(a).unwrap();
    nl.set_up(b).unwrap();
    (veth, nl, a, b)
}

#[test]
fn add_and_list_addresses() {
    require_root!();
    let ns = TestNetns::new();
    let (veth, nl, a, _) = up_pair(&ns);
    nl.add_address(a, net("10.20.0.5/24")).unwrap();
    nl.add_address(a, net("fd00:20::5/64")).unwrap();
    let shown = addresses(&ns, veth.a_name());
    assert!(shown.contains(&"10.20.0.5/24".to_owned()), "{shown:?}");
    assert!(shown.contains(&"fd00:20::5/64".to_owned()), "{shown:?}");
    // IPv4 broadcast is set like `ip addr add ... brd +`.
    let json = ns.ip_json(&["-4", "addr", "show", "dev", veth.a_name()]);
    assert_eq!(json[0]["addr_info"][0]["broadcast"], "10.20.0.255");

    let listed = nl.addresses(a).unwrap();
    let nets: Vec<IpNet> = listed.iter().map(|x| x.address).collect();
    assert!(
        nets.contains(&net("10.20.0.5/24")) && nets.contains(&net("fd00:20::5/64")),
        "{nets:?}"
    );
    assert!(listed.iter().all(|x| x.index == a));

    let e = nl.add_address(a, net("10.20.0.5/24")).unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");
}

#[test]
fn routes_and_default_routes_per_family() {
    require_root!();
    let ns = TestNetns::new();
    let (veth, nl, a, _) = up_pair(&ns);
    nl.add_address(a, net("10.30.0.2/24")).unwrap();
    nl.add_address(a, net("fd00:30::2/64")).unwrap();
    // Skip IPv6 DAD so the gateway is usable at once.
    ns.ip(&[
        "addr",
        "change",
        "fd00:30::2/64",
        "dev",
        veth.a_name(),
        "nodad",
    ]);

    let v4_default = Route::default_route(Family::V4)
        .via("10.30.0.1".parse().unwrap())
        .dev(a);
    let v6_default = Route::default_route(Family::V6)
        .via("fd00:30::1".parse().unwrap())
        .dev(a);
    let static_route = Route::new(net("192.168.50.0/24"))
        .via("10.30.0.1".parse().unwrap())
        .metric(50);
    let device_route = Route::new(net("172.16.9.0/24")).dev(a);
    for r in [&v4_default, &v6_default, &static_route, &device_route] {
        nl.add_route(r).unwrap();
    }

    let v4 = ns.ip_json(&["-4", "route", "show"]);
    let find = |dst: &str| {
        v4.as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == dst)
            .cloned()
    };
    assert_eq!(find("default").unwrap()["gateway"], "10.30.0.1");
    assert_eq!(find("192.168.50.0/24").unwrap()["metric"], 50);
    assert_eq!(find("172.16.9.0/24").unwrap()["scope"], "link");
    let v6 = ns.ip_json(&["-6", "route", "show", "default"]);
    assert_eq!(v6[0]["gateway"], "fd00:30::1");

    let defaults4 = nl.default_routes(Family::V4).unwrap();
    assert_eq!(defaults4.len(), 1);
    assert_eq!(defaults4[0].gateway, v4_default.gateway);
    assert_eq!(defaults4[0].oif, Some(a));
    let defaults6 = nl.default_routes(Family::V6).unwrap();
    assert_eq!(defaults6.len(), 1);
    assert_eq!(defaults6[0].gateway, v6_default.gateway);
    assert_eq!(nl.default_route_link().unwrap(), Some(a));
    let routes4 = nl.routes(Family::V4, MAIN_TABLE).unwrap();
    let listed = routes4
        .iter()
        .find(|r| r.destination == net("192.168.50.0/24"))
        .unwrap();
    assert_eq!(listed.metric, Some(50));
    assert!(
        routes4.iter().any(|r| r.destination == net("10.30.0.0/24")),
        "kernel prefix route listed"
    );
    assert!(routes4.iter().all(|r| r.destination.addr().is_ipv4()));

    let e = nl.add_route(&static_route).unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");

    nl.delete_route(&Route::default_route(Family::V4)).unwrap();
    nl.delete_route(&defaults6[0]).unwrap();
    assert!(nl.default_routes(Family::V4).unwrap().is_empty());
    assert!(nl.default_routes(Family::V6).unwrap().is_empty());
    assert!(
        ns.ip_json(&["-4", "route", "show", "default"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        ns.ip_json(&["-6", "route", "show", "default"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let e = nl
        .delete_route(&Route::default_route(Family::V4))
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = nl
        .delete_route(&Route::default_route(Family::V6))
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn replace_route_changes_the_gateway() {
    require_root!();
    let ns = TestNetns::new();
    let (_veth, nl, a, _) = up_pair(&ns);
    nl.add_address(a, net("10.40.0.2/24")).unwrap();
    nl.add_route(&Route::default_route(Family::V4).via("10.40.0.1".parse().unwrap()))
        .unwrap();
    nl.replace_route(&Route::default_route(Family::V4).via("10.40.0.254".parse().unwrap()))
        .unwrap();
    let defaults = nl.default_routes(Family::V4).unwrap();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].gateway, Some("10.40.0.254".parse().unwrap()));
}

#[test]
fn route_through_a_missing_link_is_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let e = nl
        .add_route(&Route::new(net("10.99.0.0/16")).dev(777))
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn waits_for_ipv6_dad() {
    require_root!();
    let ns = TestNetns::new();
    let (veth, nl, a, _) = up_pair(&ns);
    nl.add_address(a, net("fd00:60::1/64")).unwrap();
    let tentative = ns.ip_json(&["-6", "addr", "show", "dev", veth.a_name(), "tentative"]);
    assert!(
        !tentative[0]["addr_info"].as_array().unwrap().is_empty(),
        "DAD runs after add: {tentative}"
    );
    nl.wait_for_dad(a, Duration::from_secs(10)).await.unwrap();
    let tentative = ns.ip_json(&["-6", "addr", "show", "dev", veth.a_name(), "tentative"]);
    assert!(tentative.as_array().unwrap().is_empty(), "{tentative}");
    assert!(nl.addresses(a).unwrap().iter().all(|x| !x.is_tentative()));
}

#[tokio::test]
async fn duplicate_ipv6_address_fails_dad() {
    require_root!();
    let ns = TestNetns::new();
    let (_veth, nl, a, b) = up_pair(&ns);
    // Both ends on one segment: the address is in use on A when B claims it.
    nl.add_address(a, net("fd00:61::1/64")).unwrap();
    nl.wait_for_dad(a, Duration::from_secs(10)).await.unwrap();
    nl.add_address(b, net("fd00:61::1/64")).unwrap();
    let e = nl
        .wait_for_dad(b, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(e, KernelError::DadFailed(ip) if ip == "fd00:61::1".parse::<std::net::IpAddr>().unwrap()),
        "{e}"
    );
}

#[tokio::test]
async fn dad_wait_is_bounded() {
    require_root!();
    let ns = TestNetns::new();
    let (veth, nl, a, _) = up_pair(&ns);
    let key = format!("net/ipv6/conf/{}/dad_transmits", veth.a_name());
    write_sysctl_in(&open(&ns), &key, "20").unwrap();
    nl.add_address(a, net("fd00:62::1/64")).unwrap();
    let e = nl
        .wait_for_dad(a, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, KernelError::DadTimeout(_)), "{e}");
}

#[tokio::test]
async fn sysctl_inside_a_namespace_leaves_the_host_alone() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let netns = open(&ns);
    let key = format!("net.ipv4.conf.{}.arp_notify", veth.a_name());
    assert_eq!(read_sysctl_in(&netns, &key).unwrap(), "0");
    write_sysctl_in(&netns, &key, "1").unwrap();
    let shown = ns.exec_checked(&[
        "cat",
        &format!("/proc/sys/net/ipv4/conf/{}/arp_notify", veth.a_name()),
    ]);
    assert_eq!(shown.trim(), "1");
    assert_eq!(read_sysctl_in(&netns, &key).unwrap(), "1");
    // The interface exists only in the namespace: the host has no such key.
    assert!(read_sysctl(&key).is_err());

    let host_before = read_sysctl("net.ipv4.conf.all.arp_notify").unwrap();
    let flipped = if host_before == "0" { "1" } else { "0" };
    write_sysctl_in(&netns, "net.ipv4.conf.all.arp_notify", flipped).unwrap();
    assert_eq!(
        read_sysctl_in(&netns, "net.ipv4.conf.all.arp_notify").unwrap(),
        flipped
    );
    assert_eq!(
        read_sysctl("net.ipv4.conf.all.arp_notify").unwrap(),
        host_before
    );

    let e = write_sysctl_in(&netns, "net.ipv4.conf.nosuchif.arp_notify", "1").unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    assert!(write_sysctl_in(&netns, "kernel.hostname", "x").is_err());
}

#[test]
fn links_without_vfs_report_none_and_refuse_vf_settings() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let a = nl.link_named(veth.a_name()).unwrap().unwrap();
    assert_eq!(
        nl.vf_states(a.index).unwrap(),
        None,
        "a veth reports no VF list"
    );
    let e = nl
        .set_vf(
            a.index,
            &multinet_netlink::VfSetting::Trust { vf: 0, on: true },
        )
        .unwrap_err();
    assert!(
        e.errno().is_some(),
        "veth has no VFs: the kernel refuses: {e}"
    );
    assert_eq!(nl.vf_states(55555).unwrap(), None, "no such link");
}
