//! Moving a VF netdev into a pod and back, and configuring its addresses.
//!
//! The move and the rename are one netlink request (the kernel moves, then renames, under one
//! lock), so the netdev never appears under a temporary name in the host and cannot collide
//! with a host name. The one partial outcome the kernel allows (moved, but the new name is
//! taken) is detected and undone.

use std::os::fd::AsRawFd;

use multinet_cni::NetworkResult;
use multinet_link::iface::{self, Apply, IfaceSysctls, Ipv6Dad, plan_iface};
use multinet_netlink::{KernelError, KernelResult, Link, Netns, Socket, run_in_netns};

use crate::config::MacAddr;
use crate::error::{Result, SriovError};
use crate::state::OriginalVfState;

/// Kernel name pattern for a VF whose original name is taken when it returns to the host.
const FALLBACK_HOST_NAME: &str = "sriovvf%d";

fn nl_err(what: impl Into<String>) -> impl FnOnce(KernelError) -> SriovError {
    let what = what.into();
    // As the OS words it ("File exists (os error 17)"), as before the shared socket.
    move |e| SriovError::Netlink {
        what,
        msg: std::io::Error::from(e).to_string(),
    }
}

/// A netlink socket inside `ns`.
pub fn netlink_in(ns: &Netns) -> Result<Socket> {
    run_in_netns(ns, Socket::here)
        .map_err(|e| SriovError::Netns {
            path: ns.path().to_owned(),
            msg: e.to_string(),
        })?
        .map_err(nl_err(format!(
            "opening a netlink socket in {}",
            ns.path().display()
        )))
}

/// Moves link `link` from `from` into the netns `to` under `name`. When the kernel moved it
/// but could not rename it, it is moved back (under its old name) before the error returns.
fn move_and_rename(
    from: &Socket,
    to_nl: &Socket,
    to: &Netns,
    back_to: &Netns,
    link: &Link,
    name: &str,
) -> KernelResult<()> {
    let err = match from.move_to_netns(link.index, to.as_raw_fd(), name) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let still_here = from
        .link_by_index(link.index)
        .ok()
        .flatten()
        .is_some_and(|l| l.name == link.name);
    if !still_here && let Ok(Some(arrived)) = to_nl.link_named(&link.name) {
        let _ = to_nl.move_to_netns(arrived.index, back_to.as_raw_fd(), &link.name);
    }
    Err(err)
}

/// Puts `link` (already in the pod) into service: drops the altname equal to its host name,
/// sets the notify sysctls, sets `mac`, brings it up. Returns the link as it is then.
fn prepare_in_pod(
    pod: &Netns,
    pod_nl: &Socket,
    ifname: &str,
    host_name: &str,
    mac: Option<MacAddr>,
) -> Result<Link> {
    let link = pod_nl
        .link_named(ifname)
        .map_err(nl_err(format!("reading {ifname} in the pod")))?
        .ok_or_else(|| SriovError::Internal(format!("{ifname} vanished from the pod netns")))?;
    if link.altnames.iter().any(|a| a == host_name) {
        // The host name would stay reserved in the pod and block a later move back.
        let _ = pod_nl.del_altname(link.index, host_name);
    }
    // Announce address changes at once and use IPv6 addresses before DAD ends (as the
    // reference does); best effort, like it.
    let _ = run_in_netns(pod, || {
        IfaceSysctls {
            ifname,
            enable_ipv6: false,
            dad: DAD,
        }
        .apply()
    });
    if let Some(mac) = mac {
        pod_nl
            .set_mac(link.index, mac)
            .map_err(nl_err(format!("setting MAC {mac} on {ifname}")))?;
    }
    pod_nl
        .set_up(link.index)
        .map_err(nl_err(format!("setting {ifname} up")))?;
    let now = pod_nl
        .link_named(ifname)
        .map_err(nl_err(format!("reading {ifname} in the pod")))?
        .ok_or_else(|| SriovError::Internal(format!("{ifname} vanished from the pod netns")))?;
    if let Some(mac) = mac
        && now.mac() != Some(mac)
    {
        return Err(SriovError::Netlink {
            what: format!("setting MAC {mac} on {ifname}"),
            msg: format!(
                "the link reports {}",
                now.mac().map_or("no MAC".to_owned(), |m| m.to_string())
            ),
        });
    }
    Ok(now)
}

/// The host and pod namespaces of one attachment, each with its netlink socket.
#[derive(Debug)]
pub struct Namespaces<'a> {
    pub host: &'a Netns,
    pub host_nl: &'a Socket,
    pub pod: &'a Netns,
    pub pod_nl: &'a Socket,
}

/// Moves the VF netdev `link` from the host into `pod` as `ifname`, sets `mac`, brings it up.
/// On failure the netdev is back in the host under its name.
pub fn move_into_pod(
    ns: &mut Namespaces<'_>,
    link: &Link,
    ifname: &str,
    mac: Option<MacAddr>,
    original: &OriginalVfState,
) -> Result<Link> {
    let Namespaces {
        host,
        host_nl,
        pod,
        pod_nl,
    } = ns;
    if pod_nl
        .link_named(ifname)
        .map_err(nl_err("reading the pod's links"))?
        .is_some()
    {
        return Err(SriovError::Netns {
            path: pod.path().to_owned(),
            msg: format!("it already has an interface named {ifname}"),
        });
    }
    move_and_rename(host_nl, pod_nl, pod, host, link, ifname).map_err(nl_err(format!(
        "moving {} into {} as {ifname}",
        link.name,
        pod.path().display()
    )))?;
    match prepare_in_pod(pod, pod_nl, ifname, &link.name, mac) {
        Ok(l) => Ok(l),
        Err(e) => {
            if let Ok(Some(in_pod)) = pod_nl.link_named(ifname) {
                let _ = return_to_host(pod_nl, host_nl, host, &in_pod, original);
            }
            Err(e)
        }
    }
}

/// Takes the link down and restores its MAC and MTU (in whatever netns `nl` serves).
fn restore_netdev(nl: &Socket, link: &Link, original: &OriginalVfState) -> Result<()> {
    nl.set_down(link.index)
        .map_err(nl_err(format!("setting {} down", link.name)))?;
    if let Some(mac) = original.effective_mac
        && link.mac() != Some(mac)
    {
        nl.set_mac(link.index, mac)
            .map_err(nl_err(format!("restoring MAC {mac} on {}", link.name)))?;
    }
    if let Some(mtu) = original.mtu
        && link.mtu != mtu
    {
        nl.set_mtu(link.index, mtu)
            .map_err(nl_err(format!("restoring MTU {mtu} on {}", link.name)))?;
    }
    Ok(())
}

/// Where a VF netdev ended up when it went back to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returned {
    /// Under its original name.
    AsOriginal(String),
    /// The original name was taken; the kernel picked this one.
    Renamed(String),
}

/// Restores the netdev (down, MAC, MTU) in the pod and moves it to the host under its
/// original name (falling back to a kernel-chosen `sriovvfN` if that name is taken).
pub fn return_to_host(
    pod_nl: &Socket,
    host_nl: &Socket,
    host: &Netns,
    link: &Link,
    original: &OriginalVfState,
) -> Result<Returned> {
    restore_netdev(pod_nl, link, original)?;
    let name = original
        .host_ifname
        .as_deref()
        .unwrap_or(FALLBACK_HOST_NAME);
    match pod_nl.move_to_netns(link.index, host.as_raw_fd(), name) {
        Ok(()) => return Ok(Returned::AsOriginal(name.to_owned())),
        Err(e) if !matches!(e, KernelError::Exists) => {
            return Err(nl_err(format!(
                "moving {} back to the host as {name}",
                link.name
            ))(e));
        }
        Err(_) => {}
    }
    // Moved but not renamed, or not moved: find it and give it a free name.
    if let Ok(Some(still)) = pod_nl.link_named(&link.name) {
        pod_nl
            .move_to_netns(still.index, host.as_raw_fd(), FALLBACK_HOST_NAME)
            .map_err(nl_err(format!("moving {} back to the host", link.name)))?;
    } else if let Ok(Some(arrived)) = host_nl.link_named(&link.name) {
        host_nl
            .rename(arrived.index, FALLBACK_HOST_NAME)
            .map_err(nl_err(format!("renaming {} in the host", link.name)))?;
    }
    let found = host_nl
        .link_by_index(link.index)
        .ok()
        .flatten()
        .map_or_else(|| "sriovvf?".to_owned(), |l| l.name);
    Ok(Returned::Renamed(found))
}

/// A VF netdev found in the host after its pod netns vanished (the kernel returns physical
/// netdevs to the host): down, MAC, MTU, original name.
pub fn release_in_host(
    host_nl: &Socket,
    link: &Link,
    original: &OriginalVfState,
) -> Result<Returned> {
    restore_netdev(host_nl, link, original)?;
    let Some(name) = original.host_ifname.as_deref() else {
        return Ok(Returned::Renamed(link.name.clone()));
    };
    if link.name == name {
        return Ok(Returned::AsOriginal(link.name.clone()));
    }
    if host_nl
        .link_named(name)
        .map_err(nl_err("reading host links"))?
        .is_some()
    {
        return Ok(Returned::Renamed(link.name.clone()));
    }
    host_nl
        .rename(link.index, name)
        .map_err(nl_err(format!("renaming {} back to {name}", link.name)))?;
    Ok(Returned::AsOriginal(name.to_owned()))
}

/// IPv6 as the reference SR-IOV plugin brings it up: optimistic DAD, no wait.
const DAD: Ipv6Dad = Ipv6Dad::Optimistic;

/// Adds the IPAM result's addresses and routes to link `index` (in the pod, already up), with
/// the interface step macvlan and ipvlan use ([`multinet_link::iface`]).
pub async fn configure_ips(
    pod_nl: &Socket,
    ifname: &str,
    index: u32,
    result: &NetworkResult,
) -> Result<()> {
    let plan = plan_iface(result, DAD);
    let how = Apply {
        ifname,
        set_up: false,
        // Never used: optimistic DAD does not wait.
        dad_timeout: std::time::Duration::ZERO,
        existing_ok: true,
    };
    iface::apply(pod_nl, index, Some(&plan), how)
        .await
        .map_err(|e| nl_err(e.what)(e.source))
}
