//! Network sysctls (`/proc/sys/net/...`), in the current namespace or inside another one.
//!
//! Files under /proc/sys/net belong to the namespace of the thread that opens them, so writing
//! inside a namespace means opening the file on a thread that entered it ([`run_in_netns`]).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::{Netns, run_in_netns};

const PROC_SYS: &str = "/proc/sys";

/// The file for a network sysctl key.
///
/// The key is either dotted (`net.ipv4.conf.eth0.arp_notify`) or slash-separated
/// (`net/ipv4/conf/eth0.100/arp_notify`); use the slash form when a component (an interface
/// name) contains a dot. Only keys under `net` are accepted, and no component may be empty,
/// `.` or `..`.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let invalid = || Error::Invalid {
        what: "network sysctl key",
        value: key.to_owned(),
    };
    let parts: Vec<&str> = if key.contains('/') {
        key.trim_start_matches('/').split('/').collect()
    } else {
        key.split('.').collect()
    };
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(invalid());
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(invalid());
    }
    let mut path = PathBuf::from(PROC_SYS);
    path.extend(parts);
    Ok(path)
}

/// Writes `value` to the network sysctl `key` in the calling thread's namespace.
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value)
        .map_err(|e| Error::io(format!("write {value:?} to {}", path.display()), e))
}

/// Reads the network sysctl `key` in the calling thread's namespace (trailing newline
/// removed).
pub fn read_sysctl(key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(|e| Error::io(format!("read {}", path.display()), e))
}

/// Writes `value` to the network sysctl `key` inside `ns` (e.g. arp_notify of a pod link).
pub fn write_sysctl_in(ns: &Netns, key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    run_in_netns(ns, || std::fs::write(&path, value))?.map_err(|e| {
        Error::io(
            format!(
                "write {value:?} to {} in {}",
                path.display(),
                ns.path().display()
            ),
            e,
        )
    })
}

/// Reads the network sysctl `key` inside `ns`.
pub fn read_sysctl_in(ns: &Netns, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    run_in_netns(ns, || std::fs::read_to_string(&path))?
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(|e| {
            Error::io(
                format!("read {} in {}", path.display(), ns.path().display()),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_keys() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0.arp_notify").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0/arp_notify")
        );
        assert_eq!(
            sysctl_path("net/ipv6/conf/eth0.100/accept_dad").unwrap(),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/accept_dad")
        );
    }

    #[test]
    fn refuses_keys_outside_net_or_escaping() {
        for bad in [
            "kernel.hostname",
            "net",
            "net..ipv4",
            "net/ipv4/../../kernel/hostname",
            "net/./ipv4",
            "",
        ] {
            assert!(sysctl_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_a_network_sysctl() {
        let v = read_sysctl("net.ipv4.conf.lo.forwarding").unwrap();
        assert!(v == "0" || v == "1", "{v}");
    }
}
