//! The test bed checked against the kernel: every object it makes exists while guarded and is
//! gone after drop, also after a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use multinet_testbed::{
    HostLinkGuard, Macvlan, TestNetns, VethPair, current_thread_netns_inode, host_ip, host_ip_json,
    require_root, unique_link_name,
};

fn host_has_link(name: &str) -> bool {
    host_ip_json(&["link", "show"])
        .as_array()
        .is_some_and(|links| links.iter().any(|l| l["ifname"] == name))
}

#[test]
fn skip_messages_name_the_enclosing_test() {
    let name = multinet_testbed::enclosing_fn_name!();
    assert_eq!(name, "testbed::skip_messages_name_the_enclosing_test");
    let name_of = || multinet_testbed::enclosing_fn_name!();
    let in_closure = name_of();
    assert_eq!(in_closure, "testbed::skip_messages_name_the_enclosing_test");
}

fn returns_early_unless_root(reached: &mut bool) {
    require_root!();
    *reached = true;
}

#[test]
fn require_root_macro_falls_through_as_root() {
    let mut reached = false;
    returns_early_unless_root(&mut reached);
    assert_eq!(reached, multinet_testbed::is_root());
}

#[test]
fn netns_is_visible_to_ip_netns_and_removed_on_drop() {
    require_root!();
    let ns = TestNetns::new();
    let name = ns.name().to_owned();
    let path = ns.path().to_owned();
    assert!(path.exists());
    let listed = host_ip(&["netns", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name)),
        "{listed}"
    );
    assert_ne!(ns.inode(), current_thread_netns_inode());
    let lo = ns.ip_json(&["link", "show", "dev", "lo"]);
    assert!(
        lo[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{lo}"
    );
    let out = ns.exec_checked(&["readlink", "/proc/self/ns/net"]);
    assert!(out.contains(&ns.inode().to_string()), "{out}");
    drop(ns);
    assert!(!path.exists());
    assert!(!host_ip(&["netns", "list"]).contains(&name));
}

#[test]
fn netns_names_are_unique() {
    require_root!();
    let a = TestNetns::new();
    let b = TestNetns::new();
    assert_ne!(a.name(), b.name());
    assert_ne!(a.inode(), b.inode());
}

#[test]
fn veth_between_namespaces_carries_traffic_and_is_removed() {
    require_root!();
    let ns1 = TestNetns::new();
    let ns2 = TestNetns::new();
    let (a, b) = (unique_link_name("va"), unique_link_name("vb"));
    let veth = VethPair::new(Some(&ns1), &a, Some(&ns2), &b);
    ns1.ip(&["addr", "add", "192.0.2.1/24", "dev", &a]);
    ns2.ip(&["addr", "add", "192.0.2.2/24", "dev", &b]);
    ns1.ip(&["link", "set", &a, "up"]);
    ns2.ip(&["link", "set", &b, "up"]);
    assert_eq!(ns1.resolve_neighbor("192.0.2.2"), Some(ns2.link_mac(&b)));
    assert_eq!(ns1.resolve_neighbor("192.0.2.99"), None);
    assert!(!host_has_link(&a) && !host_has_link(&b));
    drop(veth);
    assert!(!ns1.has_link(&a));
    assert!(!ns2.has_link(&b));
}

#[test]
fn veth_drop_tolerates_a_moved_or_deleted_end() {
    require_root!();
    let ns1 = TestNetns::new();
    let ns2 = TestNetns::new();
    let veth = VethPair::in_netns(&ns1);
    ns1.ip(&["link", "set", veth.a_name(), "netns", ns2.name()]);
    let b = veth.b_name().to_owned();
    drop(veth);
    assert!(!ns1.has_link(&b));
}

#[test]
fn macvlan_on_veth_parent() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let name = unique_link_name("mv");
    let mv = Macvlan::new(&ns, veth.a_name(), &name, "bridge");
    let link = ns.ip_json(&["-d", "link", "show", "dev", mv.name()]);
    assert_eq!(link[0]["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(link[0]["linkinfo"]["info_data"]["mode"], "bridge");
    drop(mv);
    assert!(!ns.has_link(&name));
}

#[test]
fn host_link_guard_removes_the_link_even_on_panic() {
    require_root!();
    let (a, b) = (unique_link_name("hg"), unique_link_name("hg"));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _ga = HostLinkGuard::new(&a);
        let _gb = HostLinkGuard::new(&b);
        host_ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        assert!(host_has_link(&a));
        panic!("test failure after creating a host link");
    }));
    assert!(result.is_err());
    assert!(!host_has_link(&a));
    assert!(!host_has_link(&b));
}

#[test]
fn host_link_guard_refuses_links_it_did_not_create() {
    require_root!();
    assert!(catch_unwind(|| HostLinkGuard::new("lo")).is_err());
    assert!(catch_unwind(|| HostLinkGuard::new("eth0")).is_err());
    let name = unique_link_name("hx");
    let peer = unique_link_name("hx");
    let guard = HostLinkGuard::new(&name);
    let _peer_guard = HostLinkGuard::new(&peer);
    host_ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
    assert!(guard.exists());
    assert!(catch_unwind(|| HostLinkGuard::new(&name)).is_err());
}
