//! The test bed checked against the kernel: every object it makes exists while guarded and is
//! gone after drop, also after a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use multinet_testbed::{
    CniCall, HostLinkGuard, Macvlan, TestNetns, VethPair, current_thread_netns_inode, host_ip,
    host_ip_json, require_root, unique_link_name,
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
fn add_veth_peers_across_or_within_namespaces() {
    require_root!();
    let (ns, other) = (TestNetns::new(), TestNetns::new());
    ns.add_veth("eth0", "eth0p", Some(&other));
    ns.add_veth("va", "vb", None);
    let peer_of = |ns: &TestNetns, name: &str| {
        let link = ns.ip_json(&["-d", "link", "show", "dev", name]);
        assert_eq!(link[0]["linkinfo"]["info_kind"], "veth", "{link}");
        link[0]["link_netnsid"].is_number()
    };
    assert!(peer_of(&ns, "eth0"), "peer in another namespace");
    assert!(peer_of(&other, "eth0p"));
    assert!(!peer_of(&ns, "va"), "peer here");
    assert!(ns.has_link("vb") && !other.has_link("vb"));
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

/// A shell-script plugin running `body`, in the temp dir under a unique name.
fn reporting_plugin(body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(multinet_testbed::unique_name("mntb-plugin-"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

#[test]
fn cni_call_passes_env_and_stdin_and_returns_the_answer() {
    let plugin = reporting_plugin("/usr/bin/env; /bin/cat >&2; exit 3");
    let out = CniCall::new(&plugin, "ADD")
        .container_id("c1")
        .netns("/run/netns/x")
        .ifname("net1")
        .args("IgnoreUnknown=1")
        .path("/usr/lib/cni")
        .env("EXTRA", "yes")
        .env_clear()
        .stdin(r#"{"cniVersion":"1.0.0"}"#)
        .run();
    std::fs::remove_file(&plugin).unwrap();
    assert_eq!(out.code(), 3);
    assert!(!out.success());
    assert_eq!(out.stderr, r#"{"cniVersion":"1.0.0"}"#);
    let mut env: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("PWD="))
        .collect();
    env.sort_unstable();
    assert_eq!(
        env,
        [
            "CNI_ARGS=IgnoreUnknown=1",
            "CNI_COMMAND=ADD",
            "CNI_CONTAINERID=c1",
            "CNI_IFNAME=net1",
            "CNI_NETNS=/run/netns/x",
            "CNI_PATH=/usr/lib/cni",
            "EXTRA=yes",
        ]
    );
}

#[test]
fn cni_call_drops_the_cargo_library_path_and_removed_variables() {
    let plugin = reporting_plugin("/usr/bin/env");
    // SAFETY: no other test touches these names, and the other threads of this binary read the
    // environment only through std, which serialises that with set_var.
    unsafe {
        std::env::set_var("LD_LIBRARY_PATH", "/cargo/deps");
        std::env::set_var("MNTB_INHERITED", "1");
        std::env::set_var("MNTB_REMOVED", "1");
    }
    let out = CniCall::new(&plugin, "VERSION")
        .env_remove("MNTB_REMOVED")
        .run();
    std::fs::remove_file(&plugin).unwrap();
    assert!(out.success(), "{}", out.stderr);
    let env: Vec<&str> = out.stdout.lines().collect();
    assert!(env.contains(&"MNTB_INHERITED=1"), "{env:?}");
    assert!(env.contains(&"CNI_COMMAND=VERSION"), "{env:?}");
    assert!(
        !env.iter().any(|l| l.starts_with("LD_LIBRARY_PATH=")),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|l| l.starts_with("MNTB_REMOVED=")),
        "{env:?}"
    );
    assert!(!env.iter().any(|l| l.starts_with("CNI_NETNS=")), "{env:?}");
}

#[test]
fn cni_call_runs_inside_the_node_namespace() {
    require_root!();
    let node = TestNetns::new();
    let plugin = reporting_plugin("/usr/bin/stat -L -c %i /proc/self/ns/net; /bin/cat");
    let out = CniCall::new(&plugin, "ADD")
        .in_netns(&node)
        .env_clear()
        .stdin(r#"{"cniVersion":"1.1.0","name":"n"}"#)
        .run();
    std::fs::remove_file(&plugin).unwrap();
    assert!(out.success(), "{}", out.stderr);
    let (inode, stdin) = out.stdout.split_once('\n').unwrap();
    assert_eq!(inode.parse::<u64>().unwrap(), node.inode());
    assert_ne!(node.inode(), current_thread_netns_inode());
    assert_eq!(stdin, r#"{"cniVersion":"1.1.0","name":"n"}"#);
}

#[test]
fn cni_output_parses_json_and_empty_stdout() {
    let plugin = reporting_plugin("echo '{\"code\": 7}'; exit 1");
    let add = CniCall::new(&plugin, "ADD").run();
    assert_eq!(add.code(), 1);
    assert_eq!(add.json()["code"], 7);
    let empty = reporting_plugin("exit 0");
    assert_eq!(
        CniCall::new(&empty, "DEL").run().json(),
        serde_json::Value::Null
    );
    // A blank line is output where none belongs, not an empty answer.
    let blank = reporting_plugin("echo");
    let garbage = reporting_plugin("echo not-json");
    let bad = [&blank, &garbage].map(|p| CniCall::new(p, "DEL").run());
    for p in [&plugin, &empty, &blank, &garbage] {
        std::fs::remove_file(p).unwrap();
    }
    for out in bad {
        assert!(catch_unwind(|| out.json()).is_err(), "{out:?}");
    }
}
