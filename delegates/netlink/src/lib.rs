//! The one route-netlink layer of multinet: network namespaces and the synchronous netlink
//! socket every multinet crate talks to the kernel through.
//!
//! - [`Netns`]: a network namespace opened by path, checked to really be one; a missing path
//!   is [`Error::NotFound`], which DEL treats as success.
//! - [`run_in_netns`]: runs a closure inside a namespace on a thread of its own, so the
//!   caller's thread never changes namespace, even on early return or panic.
//! - [`Socket`]: the synchronous route netlink socket (the kernel handles a request inside
//!   `send`, so blocking costs nothing), made in the caller's namespace ([`Socket::here`]) or
//!   inside another ([`Socket::inside`]), with typed operations: create macvlan / ipvlan /
//!   veth straight into a namespace ([`macvlan_message`], ...), move, rename, MAC, MTU,
//!   up/down, alias, addresses, routes, IPv6 DAD wait, delete (one link, or several as one
//!   group), lookups and dumps, and the SR-IOV VF request codec ([`vf_request`], byte-compared
//!   with `ip`). Its requests are encoded in one place ([`encode_request`]).
//! - [`write_sysctl_in`]: network sysctls inside a namespace.
//! - [`link_tag`]: the alias multinet gives every link it creates for a container, and
//!   [`delete_links_tagged`], which deletes exactly those links of a container.
//!
//! ```no_run
//! # fn demo() -> Result<(), multinet_netlink::KernelError> {
//! use std::os::fd::AsRawFd;
//! use multinet_netlink::{MacvlanMode, MacvlanSpec, Netns, Socket, macvlan_message};
//!
//! let pod = Netns::open("/run/netns/pod")?;
//! let host = Socket::here()?;
//! let Some((parent, _)) = host.link_by_name("eth1")? else { return Ok(()) };
//! let spec = MacvlanSpec {
//!     name: "net1".into(),
//!     parent_index: parent.index,
//!     mode: MacvlanMode::Bridge,
//!     mtu: None,
//!     mac: None,
//! };
//! host.create_link(macvlan_message(&spec, Some(pod.as_raw_fd())))?;
//! let (inside, ()) = Socket::inside(&pod, |_| ())?;
//! if let Some(link) = inside.link_named("net1")? {
//!     inside.add_address(link.index, "10.1.0.5/24".parse().unwrap())?;
//!     inside.set_up(link.index)?;
//! }
//! # Ok(())
//! # }
//! ```

mod addr;
mod create;
mod error;
mod link;
mod mac;
mod netns;
mod route;
mod socket;
mod sysctl;
mod tag;
mod vf;
mod wire;

pub use addr::{Address, address_message};
pub use create::{
    IpvlanFlag, IpvlanMode, IpvlanSpec, MacvlanMode, MacvlanSpec, VethSpec, ipvlan_message,
    link_mode, macvlan_message, set_macvlan_bcqueuelen, veth_message,
};
pub use error::{Error, Missing, Result};
pub use link::Link;
pub use mac::{MacAddr, MacParseError};
pub use netns::{Netns, run_in_netns};
pub use route::{Family, MAIN_TABLE, Route, RouteOp, route_message};
pub use socket::{
    KernelError, KernelResult, Socket, add_address_message, add_route_message, set_alias_message,
    set_up_message,
};
pub use sysctl::{read_sysctl, read_sysctl_in, sysctl_path, write_sysctl, write_sysctl_in};
pub use tag::{
    MAX_ALIAS_LEN, TAG_PREFIX, delete_links_tagged, is_multinet_tag, is_pending_link_of, link_tag,
    pending_link_name,
};
pub use vf::{
    PfVfState, VfLinkState, VfSetting, VlanProto, vf_request, vf_request_bytes,
    vf_states_from_message,
};
pub use wire::encode_request;

/// The netlink message types, for callers that need the raw kernel representation.
pub use netlink_packet_route as packet;
