//! CHECK: the container's state read from the kernel and compared with prevResult
//! ([`crate::check`] holds the comparison).

use multinet_cni::{NetworkResult, Request};
use multinet_netlink::Family;

use crate::check::{ExpectedLink, Observed, ObservedLink, compare, find_interface, tables_to_read};
use crate::conf::{LinkConf, Master};
use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::ns::{kernel, netns_path, open_netns, socket_in};
use multinet_netlink::Socket;
use multinet_netlink::link_mode;

/// CHECK: IPAM's check, then the link, its addresses and routes against prevResult.
pub async fn check(req: &Request, conf: &LinkConf, prev: &NetworkResult) -> Result<()> {
    let plugin = conf.plugin;
    if let Some(t) = conf.addressing.ipam_type() {
        Ipam {
            plugin,
            plugin_type: t,
            req,
        }
        .check()
        .await?;
    }
    let path = netns_path(plugin, req)?;
    let ifname = &req.env.ifname;
    let mismatch = |d: String| Error::Mismatch {
        plugin,
        differences: vec![d],
    };
    let index = find_interface(prev, ifname, &path).map_err(mismatch)?;
    let netns = open_netns(plugin, &path)?;
    let inside = socket_in(plugin, &netns)?;
    if let Master::Named(name) = &conf.master {
        let host;
        let master_side = if conf.link_in_container {
            &inside
        } else {
            host = Socket::here().map_err(kernel(plugin, "open a netlink socket"))?;
            &host
        };
        match master_side.link_by_name(name) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(mismatch(format!("master {name:?} not found"))),
            Err(e) => return Err(kernel(plugin, format!("look up master {name:?}"))(e)),
        }
    }
    let observed = observe(plugin, &inside, ifname, prev)?;
    let expected = ExpectedLink {
        ifname,
        kind: conf.kind.kind_name(),
        mode: conf.kind.mode_name(),
    };
    let differences = compare(expected, prev, index, &observed);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch {
            plugin,
            differences,
        })
    }
}

fn observe(
    plugin: &'static str,
    inside: &Socket,
    ifname: &str,
    prev: &NetworkResult,
) -> Result<Observed> {
    let Some((link, msg)) = inside
        .link_by_name(ifname)
        .map_err(kernel(plugin, format!("look up {ifname:?}")))?
    else {
        return Ok(Observed::default());
    };
    let addresses = inside
        .addresses(link.index)
        .map_err(kernel(plugin, "list addresses"))?
        .into_iter()
        .map(|a| a.address)
        .collect();
    let mut routes = Vec::new();
    for table in tables_to_read(prev) {
        for family in [Family::V4, Family::V6] {
            routes.extend(
                inside
                    .routes(family, table)
                    .map_err(kernel(plugin, "list routes"))?,
            );
        }
    }
    Ok(Observed {
        link: Some(ObservedLink {
            kind: link.kind.clone(),
            mode: link_mode(&msg),
            mac: link.mac(),
            up: link.is_up(),
        }),
        addresses,
        routes,
    })
}
