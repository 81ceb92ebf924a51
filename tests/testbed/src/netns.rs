//! Network namespaces created for one test.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use crate::command::{parse_ip_json, run, run_checked};
use crate::names::unique_name;

/// Where `ip netns` keeps its namespace files.
const NETNS_RUN_DIR: &str = "/run/netns";

/// `ip netns add` mounts /run/netns on first use; serialising it in this process avoids two
/// threads racing to set up that mount.
static NETNS_ADD_LOCK: Mutex<()> = Mutex::new(());

/// A network namespace named `mntb-<pid>x<n>`, created with `ip netns add`, so it is visible to
/// `ip netns` and usable by path (`/run/netns/<name>`) by any CNI plugin. Dropping it deletes the
/// namespace and so every link inside it.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    /// Creates a fresh namespace with loopback up. Panics if it cannot.
    pub fn new() -> Self {
        let name = unique_name("mntb-");
        {
            let _serial = NETNS_ADD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            run_checked("ip", &["netns", "add", &name]);
        }
        let ns = TestNetns {
            path: Path::new(NETNS_RUN_DIR).join(&name),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, what CNI_NETNS points to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string (for env vars and command lines).
    pub fn path_str(&self) -> &str {
        // Built from NETNS_RUN_DIR and an ASCII name, so always UTF-8.
        self.path.to_str().unwrap_or_default()
    }

    /// Inode of the namespace, comparable with [`current_thread_netns_inode`].
    pub fn inode(&self) -> u64 {
        std::fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", self.path.display()))
            .ino()
    }

    /// Runs `cmd` inside the namespace (`ip netns exec`); returns its output whatever its status.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Runs `cmd` inside the namespace, panicking unless it succeeds; returns stdout.
    pub fn exec_checked(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run_checked("ip", &args)
    }

    /// `ip -n <ns> args`, panicking on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_checked("ip", &full)
    }

    /// `ip -n <ns> args` returning the raw output (for commands expected to fail).
    pub fn ip_output(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -n <ns> -j args`, parsed. Empty output parses as an empty array.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-n", &self.name, "-j"];
        full.extend_from_slice(args);
        parse_ip_json(&run_checked("ip", &full))
    }

    /// Checks layer-2 reachability of `ip` from this namespace without needing `ping`: sends one
    /// UDP datagram (bash's /dev/udp) and returns the MAC the neighbour table resolved for `ip`,
    /// or None when nothing answered the ARP/ND request within about two seconds.
    pub fn resolve_neighbor(&self, ip: &str) -> Option<String> {
        let send = format!("echo probe > /dev/udp/{ip}/9");
        for _ in 0..20 {
            // The datagram itself may be refused (ICMP port unreachable); only resolution counts.
            let _ = self.exec(&["bash", "-c", &send]);
            let neigh = self.ip_json(&["neigh", "show", "to", ip]);
            let resolved = neigh.as_array().into_iter().flatten().find_map(|n| {
                let reachable = n["state"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|x| x == "REACHABLE" || x == "STALE" || x == "DELAY")
                });
                reachable
                    .then(|| n["lladdr"].as_str().map(str::to_owned))
                    .flatten()
            });
            if resolved.is_some() {
                return resolved;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    /// MAC address of `link` in this namespace.
    pub fn link_mac(&self, link: &str) -> String {
        let info = self.ip_json(&["link", "show", "dev", link]);
        match info[0]["address"].as_str() {
            Some(mac) => mac.to_owned(),
            None => panic!("no address for {link} in {}: {info}", self.name),
        }
    }

    /// Adds veth `name` here, its peer `peer` in `peer_ns` (here when None), both down. No
    /// guard: the links go with the namespaces, so any name (also eth0) may be used here.
    pub fn add_veth(&self, name: &str, peer: &str, peer_ns: Option<&TestNetns>) {
        let mut args = vec!["link", "add", name, "type", "veth", "peer", "name", peer];
        if let Some(ns) = peer_ns {
            args.extend_from_slice(&["netns", ns.name()]);
        }
        self.ip(&args);
    }

    /// True when a link named `name` exists in the namespace.
    pub fn has_link(&self, name: &str) -> bool {
        self.ip_output(&["link", "show", "dev", name])
            .status
            .success()
    }
}

impl Default for TestNetns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let out = run("ip", &["netns", "delete", &self.name]);
        // A test may delete its namespace on purpose (e.g. to test a vanished netns).
        if !out.status.success() && self.path.exists() {
            eprintln!(
                "warning: could not delete netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Inode of the network namespace of the calling thread (`/proc/thread-self/ns/net`).
pub fn current_thread_netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .unwrap_or_else(|e| panic!("cannot stat /proc/thread-self/ns/net: {e}"))
        .ino()
}
