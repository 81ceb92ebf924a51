//! What the meta-plugin itself does inside the pod's namespace: interface names must be free
//! before anything is created; a requested `default-route` gateway becomes the pod's only default
//! route for its family (every other default route of that family is removed); and on DEL the
//! pod's virtual links are deleted together, in one kernel operation.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use multinet_cni::NetworkResult;
use multinet_netlink::{Family, Netns, Route, Socket};

use crate::error::MetaError;

fn netlink_err(what: &str, e: impl Into<crate::error::BoxError>) -> MetaError {
    MetaError::io(what, e)
}

/// A netlink socket inside `ns`. Its requests are answered within the system call (well under
/// a millisecond), so the async callers use it directly.
fn socket_in(ns: &Netns) -> Result<Socket, MetaError> {
    Socket::inside(ns, |_| ())
        .map(|(socket, ())| socket)
        .map_err(|e| netlink_err("netns", e))
}

/// The names of the links in the pod's namespace; None when the namespace cannot be opened (the
/// delegates report that).
pub async fn link_names(netns: &Path) -> Result<Option<BTreeSet<String>>, MetaError> {
    let Ok(ns) = Netns::open(netns) else {
        return Ok(None);
    };
    let socket = socket_in(&ns)?;
    let names = socket
        .links()
        .map_err(|e| netlink_err("list links", e))?
        .into_iter()
        .map(|l| l.name)
        .collect();
    Ok(Some(names))
}

/// The links in the pod's namespace by name, with their MAC address (None for a link without
/// one); None when the namespace cannot be opened.
pub fn link_macs(
    netns: &Path,
) -> Result<Option<std::collections::BTreeMap<String, Option<String>>>, MetaError> {
    let Ok(ns) = Netns::open(netns) else {
        return Ok(None);
    };
    let socket = socket_in(&ns)?;
    let links = socket
        .links()
        .map_err(|e| netlink_err("list links", e))?
        .into_iter()
        .map(|l| {
            let mac = l.mac().map(|m| m.to_string());
            (l.name, mac)
        })
        .collect();
    Ok(Some(links))
}

/// Fails when one of `names` is already among the pod's `existing` links.
pub fn check_ifnames_free<'a>(
    netns: &Path,
    existing: &BTreeSet<String>,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), MetaError> {
    let taken: Vec<&str> = names.filter(|n| existing.contains(*n)).collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(MetaError::InvalidConfig(format!(
            "interface {} already exists in {}",
            taken.join(", "),
            netns.display()
        )))
    }
}

/// Makes `gateways` (at most one per family) the only default routes of their family, through
/// `ifname`.
pub async fn make_only_default(
    netns: &Path,
    ifname: &str,
    gateways: &[IpAddr],
    _result: &NetworkResult,
) -> Result<(), MetaError> {
    let ns = Netns::open(netns).map_err(|e| netlink_err("netns", e))?;
    let socket = socket_in(&ns)?;
    let link = socket
        .link_by_name(ifname)
        .map_err(|e| netlink_err(&format!("default-route: interface {ifname}"), e))?
        .map(|(link, _)| link)
        .ok_or_else(|| {
            netlink_err(
                &format!("default-route: interface {ifname}"),
                format!("link {ifname} not found"),
            )
        })?;
    for gw in gateways {
        let family = Family::of(*gw);
        for old in socket
            .default_routes(family)
            .map_err(|e| netlink_err("list default routes", e))?
        {
            if old.gateway == Some(*gw) && old.oif == Some(link.index) {
                continue;
            }
            match socket.delete_route(&old) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(netlink_err("delete default route", e)),
            }
        }
        let want = Route::default_route(family).via(*gw).dev(link.index);
        socket
            .replace_route(&want)
            .map_err(|e| netlink_err(&format!("default route via {gw} dev {ifname}"), e))?;
    }
    Ok(())
}

/// Marks the links a DEL deletes together ("mnet").
const TEARDOWN_GROUP: u32 = 0x6d6e_6574;

/// Links the kernel can delete (virtual ones). A VF or a moved physical device cannot be deleted
/// and must go back to the host through its own delegate.
const DELETABLE_KINDS: &[&str] = &[
    "macvlan", "macvtap", "ipvlan", "ipvtap", "veth", "vlan", "vxlan",
];

/// Plugins whose pod interface is a link they created for the pod and delete on DEL. Any other
/// plugin (sriov, host-device, ...) may have moved an existing device in, which must go back to
/// the host, so its interface is never deleted here, whatever kind it is.
const CREATES_ITS_LINK: &[&str] = &[
    "macvlan", "ipvlan", "bridge", "ptp", "vlan", "macvtap", "ipvtap",
];

/// True when the first plugin of a delegate config creates the pod's link itself.
pub fn delegate_creates_its_link(conf: &multinet_cni::DelegateConf) -> bool {
    conf.first_plugin()
        .plugin_type()
        .is_some_and(|t| CREATES_ITS_LINK.contains(&t))
}

/// Refuses a CNI_NETNS that is the node's network namespace (that of pid 1) or multinet's own:
/// interfaces made "for the pod" there would be the node's, and DEL would delete from the node.
pub fn refuse_host_netns(netns: &Path) -> Result<(), MetaError> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let pod = match std::fs::metadata(netns) {
        Ok(m) => id(m),
        // A path that does not exist is the delegates' error to report.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(MetaError::Env(format!(
                "CNI_NETNS {}: cannot be used as a pod's network namespace: {e}",
                netns.display()
            )));
        }
    };
    for (whose, ns) in [
        ("the node's (pid 1)", "/proc/1/ns/net"),
        ("multinet's own", "/proc/self/ns/net"),
    ] {
        if std::fs::metadata(ns).ok().map(id) == Some(pod) {
            return Err(MetaError::Env(format!(
                "CNI_NETNS {} is {whose} network namespace, not a pod's",
                netns.display()
            )));
        }
    }
    Ok(())
}

/// A link of the pod that DEL may delete with the others: the name multinet gave it and the MAC
/// its delegate reported when it made it. A link with that name but another MAC was not made by
/// multinet for this attachment and is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLink<'a> {
    pub ifname: &'a str,
    pub mac: String,
}

/// Deletes the pod's virtual links in `owned` with one RTM_DELLINK for the whole group.
/// Each link deletion waits for an RCU grace period (13-22 ms); deleted as a group they share one.
/// Delegates run their DEL afterwards as usual and find their link gone, which DEL must tolerate
/// (spec), so they still release addresses and other state. Returns how many links went.
pub async fn delete_links_together(
    netns: &Path,
    container_id: &str,
    owned: &[OwnedLink<'_>],
) -> Result<usize, MetaError> {
    let Ok(ns) = Netns::open(netns) else {
        return Ok(0);
    };
    let socket = socket_in(&ns)?;
    let doomed: Vec<u32> = socket
        .links()
        .map_err(|e| netlink_err("list links", e))?
        .into_iter()
        .filter(|l| {
            owned.iter().any(|o| {
                o.ifname == l.name
                    && l.mac()
                        .is_some_and(|m| m.to_string().eq_ignore_ascii_case(&o.mac))
            })
        })
        // A link multinet's own delegates made carries the container's tag; one tagged for
        // another container, or an untagged macvlan/ipvlan with a copied MAC, is not this
        // attachment's.
        .filter(|l| match l.alias.as_deref() {
            Some(alias) if multinet_netlink::is_multinet_tag(alias) => l.tagged_for(container_id),
            _ => true,
        })
        .filter(|l| {
            l.kind
                .as_deref()
                .is_some_and(|k| DELETABLE_KINDS.contains(&k))
        })
        .map(|l| l.index)
        .collect();
    if doomed.len() < 2 {
        // Nothing to share a grace period with: the delegate deletes its own link.
        return Ok(0);
    }
    socket
        .delete_links_as_group(&doomed, TEARDOWN_GROUP)
        .map_err(|e| netlink_err("delete the pod's links together", e))?;
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn delegate_creates_its_link(conf: &Value) -> bool {
        super::delegate_creates_its_link(&multinet_cni::DelegateConf::new(conf.clone()))
    }

    #[test]
    fn only_plugins_that_create_their_link_have_it_deleted_together() {
        assert!(delegate_creates_its_link(&json!({"type":"macvlan"})));
        assert!(delegate_creates_its_link(
            &json!({"plugins":[{"type":"bridge"},{"type":"portmap"}]})
        ));
        assert!(!delegate_creates_its_link(&json!({"type":"sriov"})));
        assert!(!delegate_creates_its_link(&json!({"type":"host-device"})));
        assert!(!delegate_creates_its_link(
            &json!({"plugins":[{"type":"calico"}]})
        ));
    }
}
