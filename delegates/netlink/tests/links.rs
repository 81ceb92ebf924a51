//! Link operations against the real kernel, checked with `ip -j`.

mod common;

use common::{handle, has_flag, link_json, open};
use multinet_netlink::{
    Error, LinkRef, MacAddr, MacvlanMode, MacvlanSpec, Missing, NetlinkHandle, VethSpec,
    delete_links_tagged, link_tag,
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

#[tokio::test]
async fn macvlan_is_created_straight_into_the_target_namespace() {
    require_root!();
    let host = TestNetns::new();
    let pod = TestNetns::new();
    let veth = VethPair::in_netns(&host);
    let nl = handle(&host);
    let parent = nl.link_by_name(veth.a_name()).await.unwrap();
    let name = unique_link_name("mv");
    let spec = MacvlanSpec {
        mode: MacvlanMode::Private,
        mtu: Some(1400),
        mac: Some("02:42:ac:11:00:09".parse().unwrap()),
        ..macvlan(&name, parent.index)
    };
    nl.create_macvlan(&spec, Some(&open(&pod))).await.unwrap();

    assert!(
        !host.has_link(&name),
        "the macvlan must never appear in the parent's netns"
    );
    let link = link_json(&pod, &name);
    assert_eq!(link["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(link["linkinfo"]["info_data"]["mode"], "private");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(link["address"], "02:42:ac:11:00:09");

    let inside = handle(&pod).link_by_name(&name).await.unwrap();
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

#[tokio::test]
async fn macvlan_in_the_same_namespace_and_duplicate_names() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let parent = nl.link_by_name(veth.a_name()).await.unwrap();
    let name = unique_link_name("mv");
    nl.create_macvlan(&macvlan(&name, parent.index), None)
        .await
        .unwrap();
    assert_eq!(
        link_json(&ns, &name)["linkinfo"]["info_data"]["mode"],
        "bridge"
    );

    let e = nl
        .create_macvlan(&macvlan(&name, parent.index), None)
        .await
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    let e = nl
        .create_macvlan(&macvlan(veth.b_name(), parent.index), None)
        .await
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");

    let pod = TestNetns::new();
    pod.add_veth(&name, &unique_link_name("p"), None);
    let e = nl
        .create_macvlan(&macvlan(&name, parent.index), Some(&open(&pod)))
        .await
        .unwrap_err();
    assert!(e.is_already_exists(), "name taken in the target netns: {e}");
}

#[tokio::test]
async fn macvlan_on_a_missing_parent_is_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let e = nl
        .create_macvlan(&macvlan(&unique_link_name("mv"), 4242), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::NotFound(Missing::Link(LinkRef::Index(4242)))),
        "{e}"
    );
}

#[tokio::test]
async fn lookups_report_kernel_state() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let bridge = unique_link_name("br");
    ns.ip(&["link", "add", &bridge, "type", "bridge"]);
    ns.ip(&["link", "set", veth.a_name(), "master", &bridge]);
    let nl = handle(&ns);

    let a = nl.link_by_name(veth.a_name()).await.unwrap();
    let json = link_json(&ns, veth.a_name());
    assert_eq!(a.index, json["ifindex"].as_u64().unwrap() as u32);
    assert_eq!(
        a.mac().unwrap().to_string(),
        json["address"].as_str().unwrap()
    );
    assert_eq!(a.mtu, 1500);
    assert_eq!(a.kind.as_deref(), Some("veth"));
    let br = nl.link_by_name(&bridge).await.unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(a.master, Some(br.index));
    let b = nl.link_by_name(veth.b_name()).await.unwrap();
    assert_eq!(a.link, Some(b.index), "a veth's IFLA_LINK is its peer");

    assert_eq!(nl.link_by_index(a.index).await.unwrap(), a);
    let names: Vec<String> = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(
        names.contains(&"lo".to_owned()) && names.contains(&bridge),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        4,
        "lo, bridge and the veth pair only: {names:?}"
    );

    let e = nl.link_by_name("nosuchlink").await.unwrap_err();
    assert!(
        matches!(e, Error::NotFound(Missing::Link(LinkRef::Name(ref n))) if n == "nosuchlink"),
        "{e}"
    );
    let e = nl.link_by_index(99999).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn rename_mac_mtu_alias_up_down() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let link = nl.link_by_name(veth.a_name()).await.unwrap();
    let new_name = unique_link_name("rn");

    nl.rename(link.index, &new_name).await.unwrap();
    assert!(!ns.has_link(veth.a_name()));
    assert_eq!(link_json(&ns, &new_name)["ifindex"], link.index);
    let e = nl.rename(link.index, veth.b_name()).await.unwrap_err();
    assert!(e.is_already_exists(), "{e}");

    let mac: MacAddr = "02:aa:bb:cc:dd:01".parse().unwrap();
    nl.set_mac(link.index, mac).await.unwrap();
    nl.set_mtu(link.index, 1280).await.unwrap();
    nl.set_alias(link.index, "pod-x/net1").await.unwrap();
    let json = link_json(&ns, &new_name);
    assert_eq!(json["address"], "02:aa:bb:cc:dd:01");
    assert_eq!(json["mtu"], 1280);
    assert_eq!(json["ifalias"], "pod-x/net1");
    let read = nl.link_by_index(link.index).await.unwrap();
    assert_eq!(
        (read.mac(), read.mtu, read.alias.as_deref()),
        (Some(mac), 1280, Some("pod-x/net1"))
    );

    nl.set_up(link.index).await.unwrap();
    assert!(has_flag(&link_json(&ns, &new_name), "UP"));
    assert!(nl.link_by_index(link.index).await.unwrap().is_up());
    let e = nl.rename(link.index, &unique_link_name("rn")).await;
    // Renaming a running link is refused by most kernels; either way it must not be "not found".
    if let Err(e) = e {
        assert!(!e.is_not_found(), "{e}");
    }
    nl.set_down(link.index).await.unwrap();
    assert!(!has_flag(
        &link_json(&ns, &nl.link_by_index(link.index).await.unwrap().name),
        "UP"
    ));

    let e = nl.set_mtu(link.index, 40).await.unwrap_err();
    assert!(
        matches!(e, Error::Netlink { .. }),
        "MTU below the minimum: {e}"
    );
    assert_eq!(e.errno(), Some(libc::EINVAL));
}

#[tokio::test]
async fn operations_on_a_missing_link_are_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let missing = 31337;
    for result in [
        nl.set_up(missing).await,
        nl.set_down(missing).await,
        nl.set_mtu(missing, 1400).await,
        nl.set_mac(missing, "02:00:00:00:00:01".parse().unwrap())
            .await,
        nl.rename(missing, "x").await,
        nl.delete_link(missing).await,
        nl.add_address(missing, "10.9.9.9/24".parse().unwrap())
            .await,
    ] {
        let e = result.unwrap_err();
        assert!(
            matches!(e, Error::NotFound(Missing::Link(LinkRef::Index(31337)))),
            "{e}"
        );
    }
}

#[tokio::test]
async fn move_between_namespaces_with_rename() {
    require_root!();
    let a = TestNetns::new();
    let b = TestNetns::new();
    let veth = VethPair::in_netns(&a);
    let nl_a = handle(&a);
    let link = nl_a.link_by_name(veth.a_name()).await.unwrap();
    let new_name = unique_link_name("mvd");

    nl_a.move_to_netns(link.index, &open(&b), Some(&new_name))
        .await
        .unwrap();
    assert!(!a.has_link(veth.a_name()));
    assert!(b.has_link(&new_name));
    assert!(!b.has_link(veth.a_name()), "moved and renamed in one step");
    let moved = handle(&b).link_by_name(&new_name).await.unwrap();
    assert_eq!(moved.kind.as_deref(), Some("veth"));

    // Back without rename.
    let nl_b = handle(&b);
    nl_b.move_to_netns(moved.index, &open(&a), None)
        .await
        .unwrap();
    assert!(a.has_link(&new_name));

    // A name taken in the target.
    let peer = nl_a.link_by_name(veth.b_name()).await.unwrap();
    let e = nl_a
        .move_to_netns(peer.index, &open(&a), Some(&new_name))
        .await
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    let taken = unique_link_name("tk");
    b.add_veth(&taken, &unique_link_name("tp"), None);
    let e = nl_a
        .move_to_netns(peer.index, &open(&b), Some(&taken))
        .await
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(
        a.has_link(veth.b_name()),
        "a refused move leaves the link where it was"
    );

    let e = nl_a.move_to_netns(4242, &open(&b), None).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn failed_rename_after_move_moves_the_link_back() {
    require_root!();
    let a = TestNetns::new();
    let b = TestNetns::new();
    let veth = VethPair::in_netns(&a);
    let nl_a = handle(&a);
    let link = nl_a.link_by_name(veth.a_name()).await.unwrap();
    // The kernel moves first and renames after; an invalid name fails only at the rename.
    let e = nl_a
        .move_to_netns(link.index, &open(&b), Some("bad/name"))
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
    assert!(
        !b.has_link(veth.a_name()),
        "nothing may be left in the target"
    );
    assert!(a.has_link(veth.a_name()), "the link is back where it was");
}

#[tokio::test]
async fn veth_pair_across_namespaces_and_delete() {
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
    nl.create_veth(&spec, Some(&open(&b)), Some(&open(&c)))
        .await
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
    let e = nl_b.create_veth(&spec, None, None).await.unwrap_err();
    assert!(e.is_already_exists(), "{e}");

    nl_b.delete_link_by_name(&spec.name).await.unwrap();
    assert!(!b.has_link(&spec.name));
    assert!(
        !c.has_link(&spec.peer_name),
        "deleting one end removes the pair"
    );
    let e = nl_b.delete_link_by_name(&spec.name).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn delete_by_index_then_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let link = nl.link_by_name(veth.a_name()).await.unwrap();
    nl.delete_link(link.index).await.unwrap();
    assert!(!ns.has_link(veth.a_name()));
    let e = nl.delete_link(link.index).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(Missing::Link(_))), "{e}");
}

#[tokio::test]
async fn handle_keeps_working_after_the_namespace_path_is_deleted() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let nl = handle(&ns);
    let name = veth.a_name().to_owned();
    drop(veth);
    drop(ns);
    // The socket holds the namespace; lookups answer "not found", never act elsewhere.
    let e = nl.link_by_name(&name).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(nl.links().await.unwrap().len(), 1, "only lo is left");
}

#[test]
fn handles_need_a_runtime() {
    let e = NetlinkHandle::current().unwrap_err();
    assert!(matches!(e, Error::Runtime(_)), "{e}");
}

#[test]
fn runtime_without_io_is_an_error_not_a_panic() {
    require_root!();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = rt.block_on(async { NetlinkHandle::current().unwrap_err() });
    assert!(matches!(e, Error::Runtime(_)), "{e}");
    assert!(e.to_string().contains("IO is disabled"), "{e}");
}

#[test]
fn current_thread_runtime_is_enough() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::in_netns(&ns);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let link = rt.block_on(async {
        let nl = handle(&ns);
        nl.link_by_name(veth.b_name()).await.unwrap()
    });
    assert_eq!(link.name, veth.b_name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_runtime_and_current_netns_handle() {
    require_root!();
    let ns = TestNetns::new();
    let nl = handle(&ns);
    let host = NetlinkHandle::current().unwrap();
    let pod_links: Vec<String> = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(pod_links, vec!["lo".to_owned()]);
    let host_links = host.links().await.unwrap();
    let expected = multinet_testbed::host_ip_json(&["link", "show"]);
    assert_eq!(host_links.len(), expected.as_array().unwrap().len());
}

/// Teardown without a record deletes exactly the links tagged for the container: not those
/// tagged for another container, not a look-alike alias, not an untagged link.
#[tokio::test]
async fn delete_links_tagged_removes_ours_only() {
    require_root!();
    let pod = TestNetns::new();
    let veth = VethPair::in_netns(&pod);
    let nl = handle(&pod);
    let parent = nl.link_by_name(veth.a_name()).await.unwrap();
    let id = "ctr-a";
    let aliases = [
        ("ours1", Some(link_tag(id))),
        ("ours2", Some(link_tag(id))),
        ("other", Some(link_tag("ctr-b"))),
        ("longer", Some(format!("{}x", link_tag(id)))),
        ("shorter", Some("multinet:ctr-".to_owned())),
        ("plain", None),
    ];
    for (name, alias) in &aliases {
        nl.create_macvlan(&macvlan(name, parent.index), None)
            .await
            .unwrap();
        if let Some(alias) = alias {
            let link = nl.link_by_name(name).await.unwrap();
            nl.set_alias(link.index, alias).await.unwrap();
        }
    }
    // A veth end of another plugin, with an alias of its own.
    nl.set_alias(parent.index, "multinet:ctr-b").await.unwrap();

    let deleted = delete_links_tagged(pod.path(), id).await.unwrap();
    assert_eq!(deleted, 2);
    for (name, _) in &aliases {
        assert_eq!(pod.has_link(name), !name.starts_with("ours"), "{name}");
    }
    assert!(pod.has_link(veth.a_name()) && pod.has_link(veth.b_name()));
    assert_eq!(
        link_json(&pod, "other")["ifalias"],
        "multinet:ctr-b",
        "left untouched"
    );
    // Nothing more to delete; a namespace that is gone has nothing either.
    assert_eq!(delete_links_tagged(pod.path(), id).await.unwrap(), 0);
    let gone = std::path::Path::new("/run/netns/multinet-no-such-netns");
    assert_eq!(delete_links_tagged(gone, id).await.unwrap(), 0);
}

/// A path that is not a namespace is an error, not "nothing to delete".
#[tokio::test]
async fn delete_links_tagged_refuses_a_path_that_is_no_namespace() {
    require_root!();
    let e = delete_links_tagged(std::path::Path::new("/proc/self/status"), "ctr-a")
        .await
        .unwrap_err();
    assert!(!e.is_not_found(), "{e}");
    assert!(e.to_string().contains("/proc/self/status"), "{e}");
}

#[tokio::test]
async fn links_deleted_as_a_group_go_in_one_request() {
    require_root!();
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "ga", "type", "veth", "peer", "name", "gb"]);
    ns.ip(&["link", "add", "gc", "type", "veth", "peer", "name", "gd"]);
    ns.ip(&[
        "link", "add", "keep", "type", "veth", "peer", "name", "kept",
    ]);
    let nl = handle(&ns);
    let a = nl.link_by_name("ga").await.unwrap().index;
    let c = nl.link_by_name("gc").await.unwrap().index;
    nl.delete_links_as_group(&[a, c], 0x6d6e_6574)
        .await
        .unwrap();
    for name in ["ga", "gb", "gc", "gd"] {
        let e = nl.link_by_name(name).await.unwrap_err();
        assert!(e.is_not_found(), "{name}: {e}");
    }
    assert!(nl.link_by_name("keep").await.is_ok(), "other links stay");
}
