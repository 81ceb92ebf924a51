//! Network namespaces and rtnetlink link operations used by every multinet delegate.
//!
//! - [`Netns`]: a network namespace opened by path, checked to really be one; a missing path
//!   is [`Error::NotFound`], which DEL treats as success.
//! - [`run_in_netns`]: runs a closure inside a namespace on a thread of its own, so the
//!   caller's thread never changes namespace, even on early return or panic.
//! - [`NetlinkHandle`]: an rtnetlink socket created inside one namespace and driven by the
//!   caller's tokio runtime (current-thread runtimes work), with typed operations: create
//!   macvlan / ipvlan / veth straight into a namespace, move, rename, MAC, MTU, up/down, alias,
//!   addresses, routes, IPv6 DAD wait, delete, lookups.
//! - [`Socket`]: the synchronous route netlink socket the delegates use (one request is
//!   handled by the kernel inside `send`, so blocking costs nothing), with the same
//!   operations plus the SR-IOV VF request codec ([`vf_request`], byte-compared with `ip`).
//! - [`write_sysctl_in`]: network sysctls inside a namespace.
//! - [`link_tag`]: the alias multinet gives every link it creates for a container, and
//!   [`delete_links_tagged`], which deletes exactly those links of a container.
//!
//! ```no_run
//! # async fn demo() -> multinet_netlink::Result<()> {
//! use multinet_netlink::{MacvlanMode, MacvlanSpec, NetlinkHandle, Netns};
//!
//! let pod = Netns::open("/run/netns/pod")?;
//! let host = NetlinkHandle::current()?;
//! let parent = host.link_by_name("eth1").await?;
//! let spec = MacvlanSpec {
//!     name: "net1".into(),
//!     parent_index: parent.index,
//!     mode: MacvlanMode::Bridge,
//!     mtu: None,
//!     mac: None,
//! };
//! host.create_macvlan(&spec, Some(&pod)).await?;
//! let inside = NetlinkHandle::for_netns(&pod)?;
//! let link = inside.link_by_name("net1").await?;
//! inside.add_address(link.index, "10.1.0.5/24".parse().unwrap()).await?;
//! inside.set_up(link.index).await?;
//! # Ok(())
//! # }
//! ```

mod addr;
mod create;
mod error;
mod handle;
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
    IpvlanFlag, IpvlanMode, IpvlanSpec, MacvlanMode, MacvlanSpec, VethSpec, created_up,
    ipvlan_message, link_mode, macvlan_message, set_macvlan_bcqueuelen, veth_message,
};
pub use error::{Error, LinkRef, Missing, Result};
pub use handle::NetlinkHandle;
pub use link::Link;
pub use mac::{MacAddr, MacParseError};
pub use netns::{Netns, run_in_netns};
pub use route::{Family, MAIN_TABLE, Route, RouteOp, route_message};
pub use socket::{
    KernelError, KernelResult, Socket, add_address_message, add_route_message, set_alias_message,
    set_up_message,
};
pub use sysctl::{read_sysctl, read_sysctl_in, sysctl_path, write_sysctl, write_sysctl_in};
pub use tag::{MAX_ALIAS_LEN, TAG_PREFIX, delete_links_tagged, is_multinet_tag, link_tag};
pub use vf::{
    PfVfState, VfLinkState, VfSetting, VlanProto, vf_request, vf_request_bytes,
    vf_states_from_message,
};
pub use wire::encode_request;

/// The netlink message types, for callers that need the raw kernel representation.
pub use netlink_packet_route as packet;
