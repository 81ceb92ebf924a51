//! DEL: addresses released, our link deleted; nothing there is success, and a link of our
//! name that multinet did not create is left alone.

use multinet_cni::{NetworkResult, Request};
use multinet_netlink::{Link, Netns, link_tag, pending_link_name};

use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::ns::{kernel, socket_in};
use crate::owner::{Expected, Ownership, judge, recorded_mac};
use multinet_netlink::KernelError;

/// DEL: releases the addresses first, then deletes the link of kind `kind` (macvlan or
/// ipvlan) if it is ours. Succeeds when there is no netns, the netns is gone, the link is gone,
/// or the link is not ours; a failed release is reported after the link is deleted anyway.
pub async fn del(
    plugin: &'static str,
    kind: &'static str,
    req: &Request,
    ipam_type: Option<&str>,
) -> Result<()> {
    let ipam = ipam_type.map(|t| Ipam {
        plugin,
        plugin_type: t,
        req,
    });
    // host-local releases on its own thread while the link's deletion waits in the kernel.
    let releasing = ipam.as_ref().and_then(Ipam::start_del);
    let released_first = match (&ipam, &releasing) {
        (Some(ipam), None) => ipam.del().await,
        _ => Ok(()),
    };
    let deleted = delete_in_container(plugin, kind, req);
    let released = match (&ipam, releasing) {
        (Some(ipam), Some(releasing)) => ipam.finish_del(releasing),
        _ => released_first,
    };
    released.and(deleted)
}

/// Deletes the link named CNI_IFNAME in the container if it is ours (see [`crate::owner`]),
/// and the link an ADD stopped before naming it left under its pending name; a link of either
/// name that is not ours is left, and that is no error.
fn delete_in_container(plugin: &'static str, kind: &'static str, req: &Request) -> Result<()> {
    let Some(path) = req.env.netns.as_ref() else {
        return Ok(());
    };
    let path = path.display().to_string();
    let netns = match Netns::open(&path) {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(source) => {
            return Err(Error::Netns {
                plugin,
                path,
                source: Box::new(source),
            });
        }
    };
    let inside = socket_in(plugin, &netns)?;
    let ifname = &req.env.ifname;
    let delete = |link: &Link| match inside.delete_link(link.index) {
        Ok(()) | Err(KernelError::NoSuchLink) => Ok(()),
        Err(e) => Err(kernel(plugin, format!("delete {:?} in {path}", link.name))(
            e,
        )),
    };
    let lookup = |name: &str| {
        inside
            .link_by_name(name)
            .map(|l| l.map(|(link, _)| link))
            .map_err(kernel(plugin, format!("look up {name:?} in {path}")))
    };
    if let Some(found) = lookup(ifname)? {
        let tag = link_tag(&req.env.container_id);
        let expected = Expected {
            kind,
            tag: &tag,
            mac: recorded_mac(prev_result(plugin, req).as_ref(), ifname, &path),
        };
        match judge(expected, &found) {
            Ownership::Ours => delete(&found)?,
            Ownership::Foreign(why) => {
                eprintln!("{plugin}: DEL leaves a link multinet did not create: {why}");
            }
        }
    }
    // An ADD stopped between creating the link and naming it left it under its pending name.
    let pending = pending_link_name(&req.env.container_id, ifname);
    if let Some(found) = lookup(&pending)?
        && found.kind.as_deref() == Some(kind)
        && found.pending_for(&req.env.container_id)
    {
        delete(&found)?;
    }
    Ok(())
}

/// prevResult, when the request has a readable one. DEL must succeed without it (CNI 0.3,
/// or a crash before the result was recorded), so an unreadable one only loses the MAC.
fn prev_result(plugin: &'static str, req: &Request) -> Option<NetworkResult> {
    req.config.prev_result().unwrap_or_else(|e| {
        eprintln!("{plugin}: DEL ignores an unreadable prevResult: {e}");
        None
    })
}
