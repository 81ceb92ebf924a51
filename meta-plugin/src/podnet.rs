//! Pod-side checks and fixes done by the meta-plugin itself: interface names must be free before
//! anything is created, and a requested `default-route` gateway becomes the pod's only default
//! route for its family (every other default route of that family is removed).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use multinet_cni::NetworkResult;
use multinet_netlink::{Family, NetlinkHandle, Netns, Route};

use crate::error::MetaError;

fn netlink_err(what: &str, e: multinet_netlink::Error) -> MetaError {
    MetaError::Io(format!("{what}: {e}"))
}

/// Fails when one of `names` already exists in the pod's namespace. A namespace that cannot be
/// opened is left for the delegates to report.
pub async fn check_ifnames_free<'a>(
    netns: &Path,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), MetaError> {
    let Ok(ns) = Netns::open(netns) else {
        return Ok(());
    };
    let handle = NetlinkHandle::for_netns(&ns).map_err(|e| netlink_err("netns", e))?;
    let existing: BTreeSet<String> = handle
        .links()
        .await
        .map_err(|e| netlink_err("list links", e))?
        .into_iter()
        .map(|l| l.name)
        .collect();
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
    let handle = NetlinkHandle::for_netns(&ns).map_err(|e| netlink_err("netns", e))?;
    let link = handle
        .link_by_name(ifname)
        .await
        .map_err(|e| netlink_err(&format!("default-route: interface {ifname}"), e))?;
    for gw in gateways {
        let family = Family::of(*gw);
        for old in handle
            .default_routes(family)
            .await
            .map_err(|e| netlink_err("list default routes", e))?
        {
            if old.gateway == Some(*gw) && old.oif == Some(link.index) {
                continue;
            }
            match handle.delete_route(&old).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(netlink_err("delete default route", e)),
            }
        }
        let want = Route::default_route(family).via(*gw).dev(link.index);
        handle
            .replace_route(&want)
            .await
            .map_err(|e| netlink_err(&format!("default route via {gw} dev {ifname}"), e))?;
    }
    Ok(())
}
