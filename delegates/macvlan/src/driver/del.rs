//! DEL: addresses released, link deleted; nothing there is success.

use multinet_cni::Request;
use multinet_netlink::Netns;

use crate::driver::ipam::Ipam;
use crate::driver::rtnl::KernelError;
use crate::driver::{kernel, socket_in};
use crate::error::{Error, Result};

/// DEL: releases the addresses first, then deletes the link. Succeeds when there is no netns,
/// the netns is gone, or the link is gone; a failed release is reported after the link is
/// deleted anyway.
pub async fn del(plugin: &'static str, req: &Request, ipam_type: Option<&str>) -> Result<()> {
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
    let deleted = delete_in_container(plugin, req);
    let released = match (&ipam, releasing) {
        (Some(ipam), Some(releasing)) => ipam.finish_del(releasing),
        _ => released_first,
    };
    released.and(deleted)
}

fn delete_in_container(plugin: &'static str, req: &Request) -> Result<()> {
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
    match inside.delete_link_by_name(ifname) {
        Ok(()) | Err(KernelError::NoSuchLink) => Ok(()),
        Err(e) => Err(kernel(plugin, format!("delete {ifname:?} in {path}"))(e)),
    }
}
