//! The workspace talks to the kernel's route netlink through this crate only: no other crate
//! opens a netlink socket or builds rtnetlink messages, none depends on the netlink crates, no
//! crate (this one included) depends on the async `rtnetlink` stack or holds an async handle, the
//! delegates and the meta-plugin use this crate (directly or through multinet-link), and
//! ipvlan does not depend on macvlan (they are side by side on multinet-link).
//!
//! It reads the sources and manifests, so it fails as soon as a second netlink stack appears.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The workspace root (this crate is delegates/netlink).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// Directories never scanned: build output, VCS data, the kernel lab's downloads.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "work", "node_modules"];

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// What marks a netlink socket or rtnetlink message building in Rust code.
const MARKERS: &[&str] = &[
    "AF_NETLINK",
    "NETLINK_ROUTE",
    "netlink_sys",
    "netlink_packet_core",
    "rtnetlink::",
    "new_connection(",
    "NetlinkHeader",
    "NetlinkMessage::new",
    "NetlinkPayload",
    "NLM_F_",
    "RTM_NEWLINK",
    "RTM_SETLINK",
    "RTM_DELLINK",
    "RTM_NEWADDR",
    "RTM_NEWROUTE",
    "RTM_DELROUTE",
    "LinkMessage::default",
    "AddressMessage::default",
    "RouteMessage::default",
    "RouteNetlinkMessage::",
    "LinkUnspec",
    "NetlinkHandle",
];

/// Files outside this crate allowed a marker, each with the reason: none.
const ALLOWED: &[(&str, &str)] = &[];

#[test]
fn no_netlink_socket_or_message_building_outside_this_crate() {
    let root = root();
    let own = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    files(&root, ".rs", &mut sources);
    assert!(sources.len() > 50, "the walk found the workspace's sources");
    let mut found = Vec::new();
    for file in sources.iter().filter(|f| !f.starts_with(own)) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for marker in MARKERS {
                if code.contains(marker) && !ALLOWED.contains(&(rel.as_str(), marker)) {
                    found.push(format!("{rel}:{}: {marker}: {}", n + 1, code));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "netlink outside delegates/netlink (use multinet_netlink::Socket):\n{}",
        found.join("\n")
    );
}

/// The `[dependencies]` and `[build-dependencies]` keys of a manifest (not dev-dependencies).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]" || line == "[build-dependencies]";
            continue;
        }
        if in_deps && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && !key.starts_with('#') {
                deps.push(key.to_owned());
            }
        }
    }
    deps
}

#[test]
fn only_this_crate_depends_on_the_netlink_crates() {
    let root = root();
    let mut manifests = Vec::new();
    files(&root, "Cargo.toml", &mut manifests);
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut found = Vec::new();
    for manifest in manifests
        .iter()
        .filter(|m| **m != own && **m != root.join("Cargo.toml"))
    {
        for dep in dependencies(manifest) {
            if dep == "rtnetlink" || dep.starts_with("netlink-") {
                found.push(format!("{}: {dep}", manifest.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "netlink crates used directly:\n{}",
        found.join("\n")
    );
}

/// One socket type: the synchronous [`multinet_netlink::Socket`]. No manifest, the workspace's
/// and this crate's included, names the async `rtnetlink` stack, and this crate's sources hold
/// no async netlink connection.
#[test]
fn no_crate_depends_on_the_async_netlink_stack() {
    let root = root();
    let mut manifests = Vec::new();
    files(&root, "Cargo.toml", &mut manifests);
    let mut found = Vec::new();
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest).unwrap();
        for (n, line) in text.lines().enumerate() {
            let key = line.trim().split(['=', ' ']).next().unwrap_or_default();
            if key == "rtnetlink" || key == "netlink-proto" {
                found.push(format!("{}:{}: {line}", manifest.display(), n + 1));
            }
        }
    }
    let mut own = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        ".rs",
        &mut own,
    );
    for file in &own {
        let text = std::fs::read_to_string(file).unwrap();
        for marker in ["rtnetlink::", "new_connection(", "NetlinkHandle"] {
            if text.contains(marker) {
                found.push(format!("{}: {marker}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a second, async netlink stack:\n{}",
        found.join("\n")
    );
}

#[test]
fn delegates_and_meta_plugin_use_this_crate_and_ipvlan_not_macvlan() {
    let root = root();
    for krate in [
        "delegates/link",
        "delegates/macvlan",
        "delegates/ipvlan",
        "delegates/sriov",
        "meta-plugin",
    ] {
        let deps = dependencies(&root.join(krate).join("Cargo.toml"));
        assert!(
            deps.iter()
                .any(|d| d == "multinet-netlink" || d == "multinet-link"),
            "{krate} reaches the kernel through multinet-netlink: {deps:?}"
        );
    }
    let link = dependencies(&root.join("delegates/link/Cargo.toml"));
    assert!(link.iter().any(|d| d == "multinet-netlink"), "{link:?}");
    let ipvlan = dependencies(&root.join("delegates/ipvlan/Cargo.toml"));
    assert!(
        !ipvlan.iter().any(|d| d == "multinet-macvlan"),
        "ipvlan sits beside macvlan on multinet-link: {ipvlan:?}"
    );
    let sriov = dependencies(&root.join("delegates/sriov/Cargo.toml"));
    assert!(
        !sriov.iter().any(|d| d == "multinet-crds" || d == "kube"),
        "the sriov binary stays small (the kernel lab's guest has 512 MiB): {sriov:?}"
    );
}
