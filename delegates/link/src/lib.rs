//! The link driver shared by the macvlan and ipvlan delegates: a child link of a master, made
//! straight inside the container's namespace, addressed by IPAM (or prevResult), checked, and
//! removed; and the interface step ([`iface`]: an IPAM result becomes sysctls, addresses, up,
//! DAD wait and routes) that the SR-IOV delegate uses for its VF too.
//!
//! Each plugin only reads its config into a [`LinkConf`]; everything from there on is here.
//! All kernel requests go through `multinet_netlink::Socket`.
//!
//! ADD order, chosen so the common failures cost least to undo and the slow parts overlap:
//! 1. config checks that need no kernel state (done by the plugin), including the IPAM
//!    config for host-local, so a bad config never touches the kernel (deleting a link waits
//!    for an RCU grace period, 13-22 ms);
//! 2. host-local starts allocating on a thread of its own (its store work includes a file
//!    sync), overlapping steps 3-5;
//! 3. the master is looked up (and a macvlan's MTU checked against it); any other IPAM
//!    plugin runs after this, in order;
//! 4. the link is created in the container's namespace under its pending name
//!    ([`multinet_netlink::pending_link_name`], from the container ID), in one request;
//! 5. one thread enters the namespace, names the link and tags it with
//!    [`multinet_netlink::link_tag`] of the container (its alias) in one request, writes the
//!    sysctls (arp_notify and ndisc_notify, as the reference does for addressed links; here
//!    for every link, as it costs nothing more) and opens a socket there;
//! 6. addresses, up, routes, sent back to back through that socket (with a DAD wait before
//!    the routes when an IPv6 gateway is used).
//!
//! So every link made carries a mark of its container from the request that creates it: its
//! pending name, then its tag. Any failure releases the addresses IPAM gave and deletes the
//! link if it was made (by index: only the link this ADD made). DEL deletes the link only
//! when it is ours ([`owner`]: kind and tag, or kind and prevResult's MAC), and the link a
//! stopped ADD left under its pending name. DEL releases host-local's addresses on a thread of its own while the link's deletion waits in
//! the kernel; other IPAM plugins are released first, in order.

mod add;
pub mod check;
pub mod conf;
mod del;
pub mod error;
pub mod iface;
pub mod ipam;
pub mod kernel;
pub mod keys;
mod ns;
pub mod owner;
pub mod result;
mod verify;

use multinet_cni::{GcRequest, NetworkResult, Request};

use crate::ipam::Ipam;

pub use error::{BoxError, Error, Result};

pub use add::{DAD_TIMEOUT, add};
pub use conf::{ChildKind, CommonKeys, IPVLAN_KIND, LinkConf, MACVLAN_KIND};
pub use del::del;
pub use verify::check;

/// STATUS: the IPAM plugin's status (the master is not checked: it may differ per pod).
pub async fn status(plugin: &'static str, req: &Request, ipam_type: Option<&str>) -> Result<()> {
    match ipam_type {
        Some(t) => {
            Ipam {
                plugin,
                plugin_type: t,
                req,
            }
            .status()
            .await
        }
        None => Ok(()),
    }
}

/// GC: forwarded to the IPAM plugin.
pub async fn gc(
    plugin: &'static str,
    req: &Request,
    gc: &GcRequest,
    ipam_type: Option<&str>,
) -> Result<()> {
    match ipam_type {
        Some(t) => {
            Ipam {
                plugin,
                plugin_type: t,
                req,
            }
            .gc(gc)
            .await
        }
        None => Ok(()),
    }
}

/// The request's prevResult, required for `verb`.
pub fn prev_result(
    plugin: &'static str,
    req: &Request,
    verb: &'static str,
) -> Result<NetworkResult> {
    req.config
        .prev_result()
        .map_err(|source| Error::Protocol { plugin, source })?
        .ok_or(Error::MissingPrevResult { plugin, verb })
}
