//! Link operations of the netlink socket against the real kernel, checked with `ip -j`.

mod common;

use std::os::fd::AsRawFd;

use common::{handle, has_flag, link, link_json, open};
use multinet_netlink::{
    KernelError, MacAddr, MacvlanMode, MacvlanSpec, Socket, VethSpec, delete_links_tagged,
    link_tag, macvlan_message, pending_link_name, veth_message,
};
use multinet_testbed::{TestNetns, VethPair, require_root, unique_link_name};

fn macvlan(name: &str, parent_index: u32) -> MacvlanSpec {
    MacvlanSpec {
        name: name.to_owned(),
        parent_index,
        mode: MacvlanMode::Bridge,
        mtu: None,
        mac: None,
    }
}

/// Creates the macvlan `spec` through `nl`, into `target` (the socket's namespace when None).
fn create_macvlan(
    nl: &Socket,
    spec: &MacvlanSpec,
    target: Option<&TestNetns>,
) -> Result<(), KernelError> {
    let target = target.map(open);
    nl.create_link(macvlan_message(
        spec,
        target.as_ref().map(AsRawFd::as_raw_fd),
    ))
}

#[test]
fn macvlan_is_created_straight_into_the_target_namespace() {
    require_root!();
    let host = TestNetns::new();
    let pod = TestNetns::new();
    let veth = VethPair::in_netns(&host);
    let nl = handle(&host);
    let parent = link(&nl, veth.a_name());
    let name = unique_link_name("mv");
    let spec = MacvlanSpec {
        mode: MacvlanMode::Private,
        mtu: Some(1400),
        mac: Some("02:42:ac:11:00:09".parse().unwrap()),
        ..macvlan(&name, parent.index)
    };
    create_macvlan(&nl, &spec, Some(&pod)).unwrap();

    assert!(
        !host.has_link(&name),
        "the macvlan must never appear in the parent's netns"
    );
    let json = link_json(&pod, &name);
    assert_eq!(json["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(json["linkinfo"]["info_data"]["mode"], "private");
    assert_eq!(json["mtu"], 1400);
    assert_eq!(json["address"], "02:42:ac:11:00:09");

    let inside = link(&handle(&pod), &name);
    assert_eq!(inside.kind.as_deref(), Some("macvlan"));
    assert_eq!(inside.mtu, 1400);
    assert_eq!(inside.mac(), spec.mac);
    assert_eq!(
        inside.link,
        Some(parent.index),
        "IFLA_LINK names the parent in its netns"
    );
    assert!(inside.link_netnsid.is_some());
    assert!(!inside.is_up());
}

#[test]
fn macvlan_in_the_same_namespace_and_duplicate_names() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let parent = link(&nl, veth.a_name());
    let name = unique_link_name("mv");
    create_macvlan(&nl, &macvlan(&name, parent.index), None).unwrap();
    assert_eq!(
        link_json(&ns, &name)["linkinfo"]["info_data"]["mode"],
        "bridge"
    );

    let e = create_macvlan(&nl, &macvlan(&name, parent.index), None).unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");
    let e = create_macvlan(&nl, &macvlan(veth.b_name(), parent.index), None).unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");

    let pod = TestNetns::new();
    pod.add_veth(&name, &unique_link_name("p"), None);
    let e = create_macvlan(&nl, &macvlan(&name, parent.index), Some(&pod)).unwrap_err();
    assert!(
        matches!(e, KernelError::Exists),
        "name taken in the target netns: {e}"
    );
}

#[test]
fn macvlan_on_a_missing_parent_is_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let e = create_macvlan(&nl, &macvlan(&unique_link_name("mv"), 4242), None).unwrap_err();
    assert!(matches!(e, KernelError::NoSuchLink), "{e}");
}

#[test]
fn lookups_report_kernel_state() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let bridge = unique_link_name("br");
    ns.ip(&["link", "add", &bridge, "type", "bridge"]);
    ns.ip(&["link", "set", veth.a_name(), "master", &bridge]);
    let nl = handle(&ns);

    let a = link(&nl, veth.a_name());
    let json = link_json(&ns, veth.a_name());
    assert_eq!(a.index, json["ifindex"].as_u64().unwrap() as u32);
    assert_eq!(
        a.mac().unwrap().to_string(),
        json["address"].as_str().unwrap()
    );
    assert_eq!(a.mtu, 1500);
    assert_eq!(a.kind.as_deref(), Some("veth"));
    let br = link(&nl, &bridge);
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(a.master, Some(br.index));
    let b = link(&nl, veth.b_name());
    assert_eq!(a.link, Some(b.index), "a veth's IFLA_LINK is its peer");

    assert_eq!(nl.link_by_index(a.index).unwrap(), Some(a.clone()));
    assert_eq!(nl.link_named(veth.a_name()).unwrap(), Some(a));
    let names: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
    assert!(
        names.contains(&"lo".to_owned()) && names.contains(&bridge),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        4,
        "lo, bridge and the veth pair only: {names:?}"
    );

    assert!(nl.link_by_name("nosuchlink").unwrap().is_none());
    assert!(nl.link_by_index(99999).unwrap().is_none());
}

#[test]
fn rename_mac_mtu_alias_up_down() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let l = link(&nl, veth.a_name());
    let new_name = unique_link_name("rn");

    nl.rename(l.index, &new_name).unwrap();
    assert!(!ns.has_link(veth.a_name()));
    assert_eq!(link_json(&ns, &new_name)["ifindex"], l.index);
    let e = nl.rename(l.index, veth.b_name()).unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");

    let mac: MacAddr = "02:aa:bb:cc:dd:01".parse().unwrap();
    nl.set_mac(l.index, mac).unwrap();
    nl.set_mtu(l.index, 1280).unwrap();
    nl.set_alias(l.index, "pod-x/net1").unwrap();
    let json = link_json(&ns, &new_name);
    assert_eq!(json["address"], "02:aa:bb:cc:dd:01");
    assert_eq!(json["mtu"], 1280);
    assert_eq!(json["ifalias"], "pod-x/net1");
    let read = nl.link_by_index(l.index).unwrap().unwrap();
    assert_eq!(
        (read.mac(), read.mtu, read.alias.as_deref()),
        (Some(mac), 1280, Some("pod-x/net1"))
    );

    nl.set_up(l.index).unwrap();
    assert!(has_flag(&link_json(&ns, &new_name), "UP"));
    assert!(nl.link_by_index(l.index).unwrap().unwrap().is_up());
    let e = nl.rename(l.index, &unique_link_name("rn"));
    // Renaming a running link is refused by most kernels; either way it must not be "not found".
    if let Err(e) = e {
        assert!(!e.is_not_found(), "{e}");
    }
    nl.set_down(l.index).unwrap();
    assert!(!has_flag(
        &link_json(&ns, &nl.link_by_index(l.index).unwrap().unwrap().name),
        "UP"
    ));

    let e = nl.set_mtu(l.index, 40).unwrap_err();
    assert!(
        matches!(e, KernelError::Errno(_)),
        "MTU below the minimum: {e}"
    );
    assert_eq!(e.errno(), Some(libc::EINVAL));
}

#[test]
fn operations_on_a_missing_link_are_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let missing = 31337;
    for result in [
        nl.set_up(missing),
        nl.set_down(missing),
        nl.set_mtu(missing, 1400),
        nl.set_mac(missing, "02:00:00:00:00:01".parse().unwrap()),
        nl.rename(missing, "x"),
        nl.delete_link(missing),
        nl.add_address(missing, "10.9.9.9/24".parse().unwrap()),
    ] {
        let e = result.unwrap_err();
        assert!(matches!(e, KernelError::NoSuchLink), "{e}");
    }
}

#[test]
fn move_between_namespaces_with_rename() {
    require_root!();
    let a = TestNetns::new();
    let b = TestNetns::new();
    let veth = VethPair::in_netns(&a);
    let nl_a = handle(&a);
    let l = link(&nl_a, veth.a_name());
    let new_name = unique_link_name("mvd");

    nl_a.move_to_netns(l.index, open(&b).as_raw_fd(), &new_name)
        .unwrap();
    assert!(!a.has_link(veth.a_name()));
    assert!(b.has_link(&new_name));
    assert!(!b.has_link(veth.a_name()), "moved and renamed in one step");
    let nl_b = handle(&b);
    let moved = link(&nl_b, &new_name);
    assert_eq!(moved.kind.as_deref(), Some("veth"));

    // Back, keeping its name.
    nl_b.move_to_netns(moved.index, open(&a).as_raw_fd(), &new_name)
        .unwrap();
    assert!(a.has_link(&new_name));

    // A name taken in the target.
    let peer = link(&nl_a, veth.b_name());
    let e = nl_a
        .move_to_netns(peer.index, open(&a).as_raw_fd(), &new_name)
        .unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");
    assert!(
        a.has_link(veth.b_name()),
        "a refused rename leaves the link as it was"
    );

    let e = nl_a
        .move_to_netns(4242, open(&b).as_raw_fd(), "x")
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn veth_pair_across_namespaces_and_delete() {
    require_root!();
    let a = TestNetns::new();
    let b = TestNetns::new();
    let c = TestNetns::new();
    let nl = handle(&a);
    let spec = VethSpec {
        name: unique_link_name("ve"),
        peer_name: unique_link_name("vp"),
        mtu: Some(9000),
        mac: Some("02:00:00:00:0a:01".parse().unwrap()),
        peer_mac: Some("02:00:00:00:0a:02".parse().unwrap()),
    };
    let (nb, nc) = (open(&b), open(&c));
    nl.create_link(veth_message(
        &spec,
        Some(nb.as_raw_fd()),
        Some(nc.as_raw_fd()),
    ))
    .unwrap();
    assert!(!a.has_link(&spec.name) && !a.has_link(&spec.peer_name));
    let end = link_json(&b, &spec.name);
    let peer = link_json(&c, &spec.peer_name);
    assert_eq!(
        (end["mtu"].clone(), end["address"].clone()),
        (9000.into(), "02:00:00:00:0a:01".into())
    );
    assert_eq!(
        (peer["mtu"].clone(), peer["address"].clone()),
        (9000.into(), "02:00:00:00:0a:02".into())
    );

    let nl_b = handle(&b);
    let e = nl_b
        .create_link(veth_message(&spec, None, None))
        .unwrap_err();
    assert!(matches!(e, KernelError::Exists), "{e}");

    let end = link(&nl_b, &spec.name);
    nl_b.delete_link(end.index).unwrap();
    assert!(!b.has_link(&spec.name));
    assert!(
        !c.has_link(&spec.peer_name),
        "deleting one end removes the pair"
    );
    assert!(nl_b.link_named(&spec.name).unwrap().is_none());
}

#[test]
fn delete_by_index_then_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let l = link(&nl, veth.a_name());
    nl.delete_link(l.index).unwrap();
    assert!(!ns.has_link(veth.a_name()));
    let e = nl.delete_link(l.index).unwrap_err();
    assert!(matches!(e, KernelError::NoSuchLink), "{e}");
}

#[test]
fn socket_keeps_working_after_the_namespace_path_is_deleted() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let name = veth.a_name().to_owned();
    drop(veth);
    drop(ns);
    // The socket holds the namespace; lookups answer "not found", never act elsewhere.
    assert!(nl.link_by_name(&name).unwrap().is_none());
    assert_eq!(nl.links().unwrap().len(), 1, "only lo is left");
}

#[test]
fn sockets_here_and_inside_a_namespace() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let host = Socket::here().unwrap();
    let pod_links: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(pod_links, vec!["lo".to_owned()]);
    let host_links = host.links().unwrap();
    let expected = multinet_testbed::host_ip_json(&["link", "show"]);
    assert_eq!(host_links.len(), expected.as_array().unwrap().len());
}

/// Teardown without a record deletes exactly the links tagged for the container, and those
/// still under one of its pending names (an ADD stopped before naming them): not those tagged
/// for another container or pending for it, not a look-alike alias, not an untagged link, not
/// a link under our pending name that someone else aliased.
#[test]
fn delete_links_tagged_removes_ours_only() {
    require_root!();
    let pod = TestNetns::new();
    let veth = VethPair::in_netns(&pod);
    let nl = handle(&pod);
    let parent = link(&nl, veth.a_name());
    let id = "ctr-a";
    let pending = pending_link_name(id, "net1");
    let pending_aliased = pending_link_name(id, "net2");
    let pending_other = pending_link_name("ctr-b", "net1");
    let aliases = [
        ("ours1", Some(link_tag(id))),
        ("ours2", Some(link_tag(id))),
        (pending.as_str(), None),
        ("other", Some(link_tag("ctr-b"))),
        ("longer", Some(format!("{}x", link_tag(id)))),
        ("shorter", Some("multinet:ctr-".to_owned())),
        ("plain", None),
        (pending_aliased.as_str(), Some("the pod's".to_owned())),
        (pending_other.as_str(), None),
    ];
    let ours = |name: &str| name.starts_with("ours") || name == pending;
    for (name, alias) in &aliases {
        create_macvlan(&nl, &macvlan(name, parent.index), None).unwrap();
        if let Some(alias) = alias {
            let l = link(&nl, name);
            nl.set_alias(l.index, alias).unwrap();
        }
    }
    // A veth end of another plugin, with an alias of its own.
    nl.set_alias(parent.index, "multinet:ctr-b").unwrap();

    let deleted = delete_links_tagged(pod.path(), id).unwrap();
    assert_eq!(deleted, 3);
    for (name, _) in &aliases {
        assert_eq!(pod.has_link(name), !ours(name), "{name}");
    }
    assert!(pod.has_link(veth.a_name()) && pod.has_link(veth.b_name()));
    assert_eq!(
        link_json(&pod, "other")["ifalias"],
        "multinet:ctr-b",
        "left untouched"
    );
    // Nothing more to delete; a namespace that is gone has nothing either.
    assert_eq!(delete_links_tagged(pod.path(), id).unwrap(), 0);
    let gone = std::path::Path::new("/run/netns/multinet-no-such-netns");
    assert_eq!(delete_links_tagged(gone, id).unwrap(), 0);
}

/// A path that is not a namespace is an error, not "nothing to delete".
#[test]
fn delete_links_tagged_refuses_a_path_that_is_no_namespace() {
    require_root!();
    let e = delete_links_tagged(std::path::Path::new("/proc/self/status"), "ctr-a").unwrap_err();
    assert!(!e.is_not_found(), "{e}");
    assert!(e.to_string().contains("/proc/self/status"), "{e}");
}

#[test]
fn links_deleted_as_a_group_go_in_one_request() {
    require_root!();
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "ga", "type", "veth", "peer", "name", "gb"]);
    ns.ip(&["link", "add", "gc", "type", "veth", "peer", "name", "gd"]);
    ns.ip(&[
        "link", "add", "keep", "type", "veth", "peer", "name", "kept",
    ]);
    let nl = handle(&ns);
    let a = link(&nl, "ga").index;
    let c = link(&nl, "gc").index;
    nl.delete_links_as_group(&[a, c], 0x6d6e_6574).unwrap();
    for name in ["ga", "gb", "gc", "gd"] {
        assert!(nl.link_by_name(name).unwrap().is_none(), "{name}");
    }
    assert!(nl.link_named("keep").unwrap().is_some(), "other links stay");
}
