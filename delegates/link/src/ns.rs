//! The container's side of a call: its namespace, a socket inside it, and kernel errors
//! named with what was being done.

use multinet_cni::Request;
use multinet_netlink::{KernelError, Netns, Socket};

use crate::error::{BoxError, Error, Result};

/// Wraps a kernel error with what was being done.
pub(crate) fn kernel(
    plugin: &'static str,
    op: impl Into<String>,
) -> impl FnOnce(KernelError) -> Error {
    let op = op.into();
    move |source| Error::Kernel {
        plugin,
        op,
        source: BoxError::from(source),
    }
}

pub(crate) fn netns_path(plugin: &'static str, req: &Request) -> Result<String> {
    req.env
        .netns
        .as_ref()
        .map(|p| p.display().to_string())
        .ok_or_else(|| Error::Netns {
            plugin,
            path: String::new(),
            source: Box::new(multinet_netlink::Error::Invalid {
                what: "netns path",
                value: "(empty)".into(),
            }),
        })
}

pub(crate) fn open_netns(plugin: &'static str, path: &str) -> Result<Netns> {
    Netns::open(path).map_err(|source| Error::Netns {
        plugin,
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// A socket inside the container (nothing else done there).
pub(crate) fn socket_in(plugin: &'static str, netns: &Netns) -> Result<Socket> {
    Socket::inside(netns, |_| ())
        .map(|(s, ())| s)
        .map_err(kernel(plugin, "open a netlink socket in the container"))
}
