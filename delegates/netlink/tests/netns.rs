//! Opening namespaces and running code inside them, against the real kernel.

mod common;

use std::os::unix::fs::MetadataExt;

use multinet_netlink::{Error, Missing, Netns, run_in_netns};
use multinet_testbed::{TestNetns, current_thread_netns_inode, require_root, run_checked};

#[test]
fn opens_a_namespace_by_path() {
    require_root!();
    let ns = TestNetns::new();
    let netns = Netns::open(ns.path()).unwrap();
    assert_eq!(netns.inode().unwrap(), ns.inode());
    assert_eq!(netns.path(), ns.path());
    assert!(!netns.is_current().unwrap());
    let current = Netns::current().unwrap();
    assert!(current.is_current().unwrap());
    assert_eq!(current.inode().unwrap(), current_thread_netns_inode());
    assert_eq!(netns.try_clone().unwrap().inode().unwrap(), ns.inode());
}

#[test]
fn proc_pid_paths_are_namespaces_too() {
    require_root!();
    let netns = Netns::open(format!(
        "/proc/{}/task/{}/ns/net",
        std::process::id(),
        nix::unistd::gettid()
    ))
    .unwrap();
    assert_eq!(netns.inode().unwrap(), current_thread_netns_inode());
}

#[test]
fn other_namespace_kinds_are_refused() {
    require_root!();
    let e = Netns::open("/proc/thread-self/ns/mnt").unwrap_err();
    assert!(matches!(e, Error::NotANetns { .. }), "{e}");
    // procfs passes the statfs magic check (as in Go) but is not a namespace.
    let e = Netns::open("/proc/self/status").unwrap_err();
    assert!(matches!(e, Error::NotANetns { .. }), "{e}");
    let e = Netns::open("/proc/thread-self/ns/uts").unwrap_err();
    assert!(matches!(e, Error::NotANetns { .. }), "{e}");
}

#[test]
fn deleted_namespace_path_is_not_found() {
    require_root!();
    let ns = TestNetns::new();
    let path = ns.path().to_owned();
    drop(ns);
    let e = Netns::open(&path).unwrap_err();
    assert!(
        matches!(e, Error::NotFound(Missing::Netns(ref p)) if *p == path),
        "{e}"
    );
    assert!(e.is_not_found());
}

#[test]
fn unmounted_namespace_file_is_gone() {
    require_root!();
    let ns = TestNetns::new();
    // What a runtime leaves behind when it unmounts a pod's namespace but keeps the file.
    run_checked("umount", &[ns.path_str()]);
    assert!(ns.path().exists());
    let e = Netns::open(ns.path()).unwrap_err();
    assert!(matches!(e, Error::NetnsGone { .. }), "{e}");
    assert!(e.is_not_found());
}

#[test]
fn closure_runs_inside_and_caller_stays_outside() {
    require_root!();
    let ns = TestNetns::new();
    let netns = common::open(&ns);
    let before = current_thread_netns_inode();
    let inside = run_in_netns(&netns, current_thread_netns_inode).unwrap();
    assert_eq!(inside, ns.inode());
    assert_eq!(current_thread_netns_inode(), before);
    // The closure may borrow from the caller.
    let mut seen = Vec::new();
    run_in_netns(&netns, || seen.push(netns.is_current().unwrap())).unwrap();
    assert_eq!(seen, vec![true]);
}

#[test]
fn early_return_inside_does_not_leak_the_namespace() {
    require_root!();
    let ns = TestNetns::new();
    let netns = common::open(&ns);
    let before = current_thread_netns_inode();
    let result = run_in_netns(&netns, || -> Result<u64, std::io::Error> {
        let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
        std::fs::metadata("/nonexistent/early/return")?;
        Ok(meta.ino())
    })
    .unwrap();
    assert!(result.is_err());
    assert_eq!(current_thread_netns_inode(), before);
    // Later work on this thread and on new threads runs in the original namespace.
    let other = std::thread::spawn(current_thread_netns_inode)
        .join()
        .unwrap();
    assert_eq!(other, before);
}

#[test]
fn panic_inside_becomes_an_error() {
    require_root!();
    let ns = TestNetns::new();
    let netns = common::open(&ns);
    let before = current_thread_netns_inode();
    let e = run_in_netns(&netns, || -> u32 { panic!("exploded in the pod") }).unwrap_err();
    match &e {
        Error::Panicked { message, netns } => {
            assert_eq!(message, "exploded in the pod");
            assert!(netns.contains(ns.name()), "{netns}");
        }
        other => panic!("expected Panicked, got {other}"),
    }
    assert_eq!(current_thread_netns_inode(), before);
    assert_eq!(
        run_in_netns(&netns, current_thread_netns_inode).unwrap(),
        ns.inode()
    );
}

#[test]
fn open_namespace_outlives_its_path() {
    require_root!();
    let ns = TestNetns::new();
    let netns = common::open(&ns);
    let inode = ns.inode();
    let path = ns.path().to_owned();
    drop(ns);
    assert!(!path.exists());
    // The open file keeps the namespace alive: code can still run in it.
    assert_eq!(
        run_in_netns(&netns, current_thread_netns_inode).unwrap(),
        inode
    );
}
