//! The synchronous route netlink socket every delegate talks to the kernel through.
//!
//! Why synchronous: the kernel handles a route netlink request inside the `send` call, so a
//! plain blocking socket loses nothing, and it costs about 0.15 ms less per first request than
//! an asynchronous connection (measured by the macvlan bench). A socket acts in the namespace
//! it was made in: [`Socket::here`] on the calling thread, [`Socket::inside`] on the one thread
//! that enters another namespace (through [`crate::run_in_netns`]), which can also do other
//! work there (the sysctl writes) so the namespace is entered once.
//!
//! Requests are built as `ip` builds them (NLM_F_REQUEST|NLM_F_ACK), so the VF requests
//! ([`crate::vf_request`]) compare byte for byte with `ip link set PF vf N ...`.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, Prop};
use netlink_packet_route::route::{RouteMessage, RouteType};
use netlink_sys::{Socket as RawSocket, protocols::NETLINK_ROUTE};

use crate::addr::{Address, address_message};
use crate::link::Link;
use crate::mac::MacAddr;
use crate::netns::Netns;
use crate::route::{Family, MAIN_TABLE, Route, RouteOp, route_message};
use crate::vf::{PfVfState, VfSetting, vf_request, vf_states_from_message};
use crate::wire::{encode_request, link_admin_state, link_message};

/// What the kernel said to a request, reduced to what callers act on.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// EEXIST.
    #[error("exists already")]
    Exists,
    /// ENODEV / ENOENT: the link named in the request is gone.
    #[error("no such link")]
    NoSuchLink,
    /// Any other errno from the kernel.
    #[error("{0}")]
    Errno(std::io::Error),
    #[error(transparent)]
    Netns(#[from] crate::Error),
    /// The socket itself failed, or a reply could not be read.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("IPv6 duplicate address detection failed for {0}")]
    DadFailed(IpAddr),
    #[error("addresses still tentative after {0:?}")]
    DadTimeout(Duration),
}

impl KernelError {
    /// The kernel's errno (positive) when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Exists => Some(libc::EEXIST),
            KernelError::NoSuchLink => Some(libc::ENODEV),
            KernelError::Errno(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// True when the object the request named is not there: a link (ENODEV / ENOENT) or a
    /// route (ENOENT / ESRCH).
    pub fn is_not_found(&self) -> bool {
        matches!(self, KernelError::NoSuchLink) || self.errno() == Some(libc::ESRCH)
    }
}

/// As the OS describes it ("File exists (os error 17)") when the kernel refused the request.
impl From<KernelError> for std::io::Error {
    fn from(e: KernelError) -> Self {
        match (e.errno(), e) {
            (Some(errno), _) => std::io::Error::from_raw_os_error(errno),
            (None, KernelError::Io(io)) => io,
            (None, other) => std::io::Error::other(other),
        }
    }
}

fn from_errno(code: i32) -> KernelError {
    match -code {
        libc::EEXIST => KernelError::Exists,
        libc::ENODEV | libc::ENOENT => KernelError::NoSuchLink,
        errno => KernelError::Errno(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Result of a [`Socket`] request.
pub type KernelResult<T> = Result<T, KernelError>;
type Res<T> = KernelResult<T>;

/// Replies are read into a buffer of this size; the kernel fills at most that much per read
/// (a dump takes several), and only the pages written are touched. A PF's reply with its VF
/// list can be larger: it is read at its full size ([`Socket::vf_states`]).
const RECV_BUFFER: usize = 32 * 1024;

/// A route netlink socket bound to one namespace.
pub struct Socket {
    socket: RawSocket,
    seq: Cell<u32>,
    buf: RefCell<Vec<u8>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").finish_non_exhaustive()
    }
}

impl Socket {
    /// A socket in the calling thread's namespace (for a plugin process: the host's).
    pub fn here() -> Res<Socket> {
        let mut socket = RawSocket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        Ok(Socket {
            socket,
            seq: Cell::new(0),
            buf: RefCell::new(Vec::with_capacity(RECV_BUFFER)),
        })
    }

    /// A socket inside `ns`, made on a thread that entered it; `also` runs on that thread
    /// with the socket, so the namespace is entered once for what needs both (sysctls are
    /// files of the namespace a thread is in).
    pub fn inside<T: Send>(ns: &Netns, also: impl FnOnce(&Socket) -> T + Send) -> Res<(Socket, T)> {
        ns.run(move || {
            let socket = Socket::here()?;
            let out = also(&socket);
            Ok((socket, out))
        })?
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        seq
    }

    fn send(&self, msg: RouteNetlinkMessage, flags: u16) -> Res<u32> {
        let seq = self.next_seq();
        let bytes = encode_request(msg, NLM_F_REQUEST | flags, seq);
        self.socket.send(&bytes, 0)?;
        Ok(seq)
    }

    /// Reads the replies to request `seq` until its ACK (or, for a dump, its end); the
    /// messages it carried come back in order. `full`: read each datagram at its full size
    /// (one more system call per read), for replies that may exceed [`RECV_BUFFER`].
    fn replies(&self, seq: u32, full: bool) -> Res<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        let mut buf = self.buf.borrow_mut();
        loop {
            let large;
            let data: &[u8] = if full {
                large = self.socket.recv_from_full()?.0;
                &large
            } else {
                buf.clear();
                self.socket.recv(&mut *buf, 0)?;
                &buf
            };
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(from_errno(code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    /// One request and its replies (an ACK is always asked for).
    pub fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Res<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_ACK | flags)?;
        self.replies(seq, false)
    }

    /// A dump: every message until the kernel says done.
    fn dump(&self, msg: RouteNetlinkMessage) -> Res<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP)?;
        self.replies(seq, false)
    }

    /// Requests sent back to back, then their answers read: the kernel handles a socket's
    /// requests in order, so each sees the effect of those before it, and no reply is waited
    /// for in between. One outcome per request, in order.
    pub fn batch(&self, msgs: Vec<(RouteNetlinkMessage, u16)>) -> Vec<Res<()>> {
        let sent: Vec<Res<u32>> = msgs
            .into_iter()
            .map(|(m, flags)| self.send(m, NLM_F_ACK | flags))
            .collect();
        sent.into_iter()
            .map(|s| s.and_then(|seq| self.replies(seq, false).map(drop)))
            .collect()
    }

    /// The link named `name` and its raw message, or None. The kernel also finds a link by
    /// one of its altnames.
    pub fn link_by_name(&self, name: &str) -> Res<Option<(Link, LinkMessage)>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        first_link(self.request(RouteNetlinkMessage::GetLink(msg), 0))
    }

    /// The link named exactly `name` (a link whose altname is `name` does not count), or None.
    pub fn link_named(&self, name: &str) -> Res<Option<Link>> {
        Ok(self
            .link_by_name(name)?
            .map(|(l, _)| l)
            .filter(|l| l.name == name))
    }

    /// The link with index `index`, or None.
    pub fn link_by_index(&self, index: u32) -> Res<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        Ok(first_link(self.request(RouteNetlinkMessage::GetLink(msg), 0))?.map(|(l, _)| l))
    }

    /// The VFs link `pf_index` reports (RTEXT_FILTER_VF); None when the link is gone or
    /// reports no VF list (not a PF, or a veth standing in for one).
    pub fn vf_states(&self, pf_index: u32) -> Res<Option<Vec<PfVfState>>> {
        let mut msg = LinkMessage::default();
        msg.header.index = pf_index;
        Ok(self.link_and_vfs(msg)?.and_then(|(_, vfs)| vfs))
    }

    /// The link named exactly `name` with the VFs it reports (see [`Socket::vf_states`]).
    pub fn link_with_vfs(&self, name: &str) -> Res<Option<(Link, Option<Vec<PfVfState>>)>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        Ok(self.link_and_vfs(msg)?.filter(|(l, _)| l.name == name))
    }

    fn link_and_vfs(&self, mut query: LinkMessage) -> Res<Option<(Link, Option<Vec<PfVfState>>)>> {
        query
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let seq = self.send(RouteNetlinkMessage::GetLink(query), NLM_F_ACK)?;
        match self.replies(seq, true) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    Some((Link::from_message(l), vf_states_from_message(l)))
                }
                _ => None,
            })),
            Err(KernelError::NoSuchLink) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&self) -> Res<Vec<Link>> {
        let replies = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Deletes the links `indices` with one RTM_DELLINK: each is put in link group `group`
    /// first, then the group is deleted, so the links share one RCU grace period instead of
    /// waiting for one each. `group` must be one no other link of the namespace is in.
    pub fn delete_links_as_group(&self, indices: &[u32], group: u32) -> Res<()> {
        for index in indices {
            let mut msg = LinkMessage::default();
            msg.header.index = *index;
            msg.attributes.push(LinkAttribute::Group(group));
            self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        self.request(RouteNetlinkMessage::DelLink(msg), 0).map(drop)
    }

    /// RTM_NEWLINK, exclusive create.
    pub fn create_link(&self, msg: LinkMessage) -> Res<()> {
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// RTM_DELLINK of link `index`: by index, never by name, so only the link the caller
    /// identified is deleted.
    pub fn delete_link(&self, index: u32) -> Res<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0).map(drop)
    }

    pub fn set_up(&self, index: u32) -> Res<()> {
        let (msg, flags) = set_up_message(index);
        self.request(msg, flags).map(drop)
    }

    pub fn set_down(&self, index: u32) -> Res<()> {
        let msg = link_admin_state(index, false);
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Sets the alias (`IFLA_IFALIAS`) of link `index`.
    pub fn set_alias(&self, index: u32, alias: &str) -> Res<()> {
        let (msg, flags) = set_alias_message(index, alias);
        self.request(msg, flags).map(drop)
    }

    /// Names link `index` `name`, gives it the alias `alias` and, with `up`, sets it up: one
    /// request, so the link is never under its final name without its alias. The kernel
    /// renames first (a link must be down to be renamed) and sets it up last.
    pub fn name_and_tag(&self, index: u32, name: &str, alias: &str, up: bool) -> Res<()> {
        let mut msg = link_message(
            index,
            vec![
                LinkAttribute::IfName(name.to_owned()),
                LinkAttribute::IfAlias(alias.to_owned()),
            ],
        );
        if up {
            msg.header.flags |= LinkFlags::Up;
            msg.header.change_mask |= LinkFlags::Up;
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    pub fn rename(&self, index: u32, name: &str) -> Res<()> {
        let msg = link_message(index, vec![LinkAttribute::IfName(name.to_owned())]);
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    pub fn set_mac(&self, index: u32, mac: MacAddr) -> Res<()> {
        let msg = link_message(index, vec![LinkAttribute::Address(mac.0.to_vec())]);
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    pub fn set_mtu(&self, index: u32, mtu: u32) -> Res<()> {
        let msg = link_message(index, vec![LinkAttribute::Mtu(mtu)]);
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Moves link `index` into the namespace open as `netns_fd`, named `name` there: one
    /// request, so the link never shows up under a temporary name in either namespace. The
    /// kernel moves first and renames second: on EEXIST the link may have arrived under its
    /// old name.
    pub fn move_to_netns(&self, index: u32, netns_fd: RawFd, name: &str) -> Res<()> {
        let msg = link_message(
            index,
            vec![
                LinkAttribute::NetNsFd(netns_fd),
                LinkAttribute::IfName(name.to_owned()),
            ],
        );
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Removes the alternative name `altname` of link `index`.
    pub fn del_altname(&self, index: u32, altname: &str) -> Res<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::PropList(vec![Prop::AltIfName(
                altname.to_owned(),
            )]));
        self.request(RouteNetlinkMessage::DelLinkProp(msg), 0)
            .map(drop)
    }

    /// Programs one VF setting on the PF `pf_index` ([`vf_request`]).
    pub fn set_vf(&self, pf_index: u32, setting: &VfSetting) -> Res<()> {
        self.request(vf_request(pf_index, setting), 0).map(drop)
    }

    /// Adds `address` to link `index` (exclusive, like `ip addr add`).
    pub fn add_address(&self, index: u32, address: IpNet) -> Res<()> {
        let (msg, flags) = add_address_message(index, address);
        self.request(msg, flags).map(drop)
    }

    /// Adds `route` ([`add_route_message`]).
    pub fn add_route(&self, route: &Route) -> Res<()> {
        let (msg, flags) = add_route_message(route);
        self.request(msg, flags).map(drop)
    }

    /// Adds `route`, or replaces the route to the same destination (`ip route replace`).
    pub fn replace_route(&self, route: &Route) -> Res<()> {
        let msg = RouteNetlinkMessage::NewRoute(route_message(route, RouteOp::Add));
        self.request(msg, NLM_F_CREATE | NLM_F_REPLACE).map(drop)
    }

    /// Deletes the route matching `route` (fields left unset match any value). A route that
    /// is not there is [`KernelError::NoSuchLink`] (ENOENT) or errno ESRCH, see
    /// [`KernelError::is_not_found`].
    pub fn delete_route(&self, route: &Route) -> Res<()> {
        let msg = RouteNetlinkMessage::DelRoute(route_message(route, RouteOp::Delete));
        self.request(msg, 0).map(drop)
    }

    /// The default routes of `family` in the main table.
    pub fn default_routes(&self, family: Family) -> Res<Vec<Route>> {
        let mut routes = self.routes(family, MAIN_TABLE)?;
        routes.retain(Route::is_default);
        Ok(routes)
    }

    /// Addresses of link `index`.
    pub fn addresses(&self, index: u32) -> Res<Vec<Address>> {
        let replies = self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    Address::from_message(a)
                }
                _ => None,
            })
            .collect())
    }

    /// Waits until no IPv6 address of link `index` is tentative.
    pub async fn wait_for_dad(&self, index: u32, timeout: Duration) -> Res<()> {
        const POLL: Duration = Duration::from_millis(20);
        let start = Instant::now();
        loop {
            let addrs = self.addresses(index)?;
            if let Some(dup) = addrs.iter().find(|a| a.is_dad_failed()) {
                return Err(KernelError::DadFailed(dup.address.addr()));
            }
            if !addrs.iter().any(Address::is_tentative) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(KernelError::DadTimeout(timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Unicast routes of `family` in `table`.
    pub fn routes(&self, family: Family, table: u32) -> Res<Vec<Route>> {
        let mut query = RouteMessage::default();
        query.header.address_family = family.address_family();
        let replies = self.dump(RouteNetlinkMessage::GetRoute(query))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => {
                    Route::from_message(r)
                }
                _ => None,
            })
            .filter(|r| r.table == table)
            .collect())
    }

    /// The output link of the first default route in the main table, IPv4 first.
    pub fn default_route_link(&self) -> Res<Option<u32>> {
        for family in [Family::V4, Family::V6] {
            let routes = self.routes(family, MAIN_TABLE)?;
            if let Some(oif) = routes.iter().filter(|r| r.is_default()).find_map(|r| r.oif) {
                return Ok(Some(oif));
            }
        }
        Ok(None)
    }
}

/// RTM_SETLINK for "link `index` up".
pub fn set_up_message(index: u32) -> (RouteNetlinkMessage, u16) {
    let msg = link_admin_state(index, true);
    (RouteNetlinkMessage::SetLink(msg), 0)
}

/// RTM_SETLINK giving link `index` the alias (`IFLA_IFALIAS`) `alias`. The kernel ignores an
/// alias in the RTM_NEWLINK that creates a link, so it takes a request of its own.
pub fn set_alias_message(index: u32, alias: &str) -> (RouteNetlinkMessage, u16) {
    let msg = link_message(index, vec![LinkAttribute::IfAlias(alias.to_owned())]);
    (RouteNetlinkMessage::SetLink(msg), 0)
}

/// RTM_NEWADDR for `address` on link `index` (exclusive, like `ip addr add`).
pub fn add_address_message(index: u32, address: IpNet) -> (RouteNetlinkMessage, u16) {
    (
        RouteNetlinkMessage::NewAddress(address_message(index, address)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// RTM_NEWROUTE for `route` without NLM_F_EXCL, as the reference adds routes (Go's
/// `RouteAddEcmp`): a route to the same destination through another link or gateway (the
/// pod's eth0 default route, typically) is kept beside it rather than refused.
pub fn add_route_message(route: &Route) -> (RouteNetlinkMessage, u16) {
    (
        RouteNetlinkMessage::NewRoute(route_message(route, RouteOp::Add)),
        NLM_F_CREATE,
    )
}

fn first_link(replies: Res<Vec<RouteNetlinkMessage>>) -> Res<Option<(Link, LinkMessage)>> {
    match replies {
        Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some((Link::from_message(&l), l)),
            _ => None,
        })),
        Err(KernelError::NoSuchLink) => Ok(None),
        Err(e) => Err(e),
    }
}
