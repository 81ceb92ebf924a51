//! Links created for one test: veth pairs, macvlans, and guards for host-namespace links.

use crate::command::{run, run_checked};
use crate::netns::TestNetns;

/// Names that a test must never own.
const FORBIDDEN: &[&str] = &["lo", "eth0"];

fn ns_args<'a>(ns: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut full = Vec::new();
    if let Some(ns) = ns {
        full.extend_from_slice(&["-n", ns]);
    }
    full.extend_from_slice(args);
    full
}

fn link_exists(ns: Option<&str>, name: &str) -> bool {
    run("ip", &ns_args(ns, &["link", "show", "dev", name]))
        .status
        .success()
}

/// Deletes `name` in `ns` (None = host), silently when it is gone already.
fn delete_link(ns: Option<&str>, name: &str) -> bool {
    run("ip", &ns_args(ns, &["link", "delete", "dev", name]))
        .status
        .success()
}

fn check_name(name: &str) {
    if FORBIDDEN.contains(&name) {
        panic!("a test must not own link {name}");
    }
    if name.is_empty() || name.len() > 15 {
        panic!("invalid link name {name:?}: 1 to 15 bytes (use unique_link_name)");
    }
}

/// A veth pair; each end lives in a test namespace or (only when the test needs it) the host.
/// Dropping it deletes the pair if it still exists (deleting either end removes both).
#[derive(Debug)]
pub struct VethPair {
    a_ns: Option<String>,
    a_name: String,
    b_ns: Option<String>,
    b_name: String,
}

impl VethPair {
    /// Creates `a_name` in `a_ns` peered with `b_name` in `b_ns` (None = host namespace), both
    /// down. Panics if the kernel refuses, or if a host-side name already exists.
    pub fn new(
        a_ns: Option<&TestNetns>,
        a_name: &str,
        b_ns: Option<&TestNetns>,
        b_name: &str,
    ) -> Self {
        check_name(a_name);
        check_name(b_name);
        for (ns, name) in [(a_ns, a_name), (b_ns, b_name)] {
            if ns.is_none() && link_exists(None, name) {
                panic!("host link {name} exists already; a test may only create new links");
            }
        }
        let mut args = vec!["link", "add", a_name];
        if let Some(ns) = a_ns {
            args.extend_from_slice(&["netns", ns.name()]);
        }
        args.extend_from_slice(&["type", "veth", "peer", "name", b_name]);
        if let Some(ns) = b_ns {
            args.extend_from_slice(&["netns", ns.name()]);
        }
        run_checked("ip", &args);
        VethPair {
            a_ns: a_ns.map(|n| n.name().to_owned()),
            a_name: a_name.to_owned(),
            b_ns: b_ns.map(|n| n.name().to_owned()),
            b_name: b_name.to_owned(),
        }
    }

    /// Both ends in one test namespace, with generated names.
    pub fn in_netns(ns: &TestNetns) -> Self {
        let a = crate::unique_link_name("va");
        let b = crate::unique_link_name("vb");
        Self::new(Some(ns), &a, Some(ns), &b)
    }

    /// Name of end A.
    pub fn a_name(&self) -> &str {
        &self.a_name
    }

    /// Name of end B.
    pub fn b_name(&self) -> &str {
        &self.b_name
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // The test may have moved or deleted an end; try both, whichever is still where it was.
        if !delete_link(self.a_ns.as_deref(), &self.a_name) {
            delete_link(self.b_ns.as_deref(), &self.b_name);
        }
    }
}

/// A macvlan on `parent`, both in the same test namespace; deleted on drop if still there.
#[derive(Debug)]
pub struct Macvlan {
    ns: String,
    name: String,
}

impl Macvlan {
    /// Creates macvlan `name` on `parent` in `ns` with `mode` (bridge, vepa, private, passthru).
    pub fn new(ns: &TestNetns, parent: &str, name: &str, mode: &str) -> Self {
        check_name(name);
        ns.ip(&[
            "link", "add", "link", parent, "name", name, "type", "macvlan", "mode", mode,
        ]);
        Macvlan {
            ns: ns.name().to_owned(),
            name: name.to_owned(),
        }
    }

    /// The macvlan's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Macvlan {
    fn drop(&mut self) {
        delete_link(Some(&self.ns), &self.name);
    }
}

/// Owns a link name in the host namespace that the test (or the code under test) creates:
/// the link is deleted on drop, also when the test panics.
///
/// Create the guard *before* the link: it refuses a name that exists already, so it can never
/// take ownership of a link the test did not make.
#[derive(Debug)]
pub struct HostLinkGuard {
    name: String,
}

impl HostLinkGuard {
    /// Guards `name`, which must not exist yet (use [`crate::unique_link_name`]).
    pub fn new(name: &str) -> Self {
        check_name(name);
        if link_exists(None, name) {
            panic!(
                "host link {name} exists already; HostLinkGuard only guards links the test creates"
            );
        }
        HostLinkGuard {
            name: name.to_owned(),
        }
    }

    /// The guarded name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while the link exists in the host namespace.
    pub fn exists(&self) -> bool {
        link_exists(None, &self.name)
    }
}

impl Drop for HostLinkGuard {
    fn drop(&mut self) {
        delete_link(None, &self.name);
    }
}
