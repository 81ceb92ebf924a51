//! An ADD killed at any of its netlink requests leaves nothing that the DEL the runtime sends
//! next does not remove, and that DEL touches nothing multinet did not make.
//!
//! strace stops the plugin exactly: `inject=SYSCALL:error=EIO:signal=KILL:when=K` replaces a
//! thread's K-th such system call by an error and kills the plugin there, so each stopping
//! point is reproduced, not found by timing. strace counts per thread, so two system calls
//! are used: `sendto` reaches every netlink request of the first thread to make it (and
//! after its answer, the request before), `setns` the moment a thread enters the container
//! (after the link is created there, before it is named). The window this guards most is that
//! one: the kernel ignores an alias in the creating request, so the link's pending name is
//! what marks it as multinet's until the request that names and tags it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::PathBuf;

use common::*;
use multinet_netlink::pending_link_name;
use multinet_testbed::require_root;
use serde_json::json;

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

/// A wrapper that runs the plugin under strace, killed at a thread's `$KILL_AT`-th `$SYSCALL`.
fn killing_wrapper(dir: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("kill-at-request");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &path,
        "#!/bin/sh\nexec strace -f -qq -o /dev/null -e trace=\"$SYSCALL\" \
         -e inject=\"$SYSCALL\":error=EIO:signal=KILL:when=\"$KILL_AT\" -- \"$PLUGIN\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn an_add_killed_at_any_netlink_request_is_undone_by_del() {
    require_root!();
    let node = Node::new();
    let c = &node.container;
    // Links of the container's own that DEL must leave: a macvlan under the pending name of
    // another container, and one of ours under our pending name but tagged by someone else.
    c.ip(&[
        "link", "add", "own0", "type", "veth", "peer", "name", "own1",
    ]);
    let others_pending = pending_link_name("someone-else", "net1");
    c.ip(&[
        "link",
        "add",
        &others_pending,
        "link",
        "own0",
        "type",
        "macvlan",
    ]);
    let before = node.container_links();
    let wrapper = killing_wrapper(&node.data.join("bin"));
    let conf = conf(
        "1.0.0",
        "killed",
        json!({"master": MASTER, "ipam": {"type": "host-local", "subnet": "10.58.0.0/24"}}),
    );
    let mut call = Call::new("killed-ctr");
    call.ifname = "net1".into();
    let pending = pending_link_name(&call.id, "net1");
    let mut left_pending = 0;
    let mut left_named = 0;
    for syscall in ["sendto", "setns"] {
        let mut completed = false;
        for kill_at in 1..=20 {
            let at = format!("killed at {syscall} {kill_at}");
            let add = node
                .call(&ours(), "ADD", &conf, &call)
                .program(&wrapper)
                .env("SYSCALL", syscall)
                .env("KILL_AT", kill_at.to_string())
                .env("PLUGIN", ours())
                .run();
            let links = node.container_links();
            if add.success() {
                // Past the last one: the ADD ran to its end, and DEL still undoes it.
                assert!(links.contains(&"net1".to_owned()), "{links:?}");
                completed = true;
            } else {
                assert!(add.stdout.is_empty(), "{at}, it printed {}", add.stdout);
                left_pending += usize::from(links.contains(&pending));
                left_named += usize::from(links.contains(&"net1".to_owned()));
            }
            let del = node.run(&ours(), "DEL", &conf, &call);
            del.expect_ok(&format!("DEL after an ADD {at}"));
            assert_eq!(
                node.container_links(),
                before,
                "{at}: DEL left or took links"
            );
            assert!(node.allocated("killed").is_empty(), "{at}: addresses left");
            assert_eq!(node.host_links(), vec!["lo", MASTER, PEER], "{at}");
            if completed {
                break;
            }
        }
        assert!(
            completed,
            "the ADD never ran to its end past 20 {syscall} calls"
        );
    }
    assert!(
        left_pending > 0,
        "no kill fell between creating the link and naming it: the test no longer covers it"
    );
    assert!(left_named > 0, "no kill fell after the link was named");
}
