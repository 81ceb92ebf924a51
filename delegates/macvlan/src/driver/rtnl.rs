//! The netlink requests of the drivers, on plain synchronous rtnetlink sockets, built and
//! parsed with multinet-netlink's public message builders and parsers.
//!
//! Why not `multinet_netlink::NetlinkHandle`: it makes every socket on a thread of its own,
//! also for the caller's own namespace, a socket inside a namespace cannot share that thread
//! with the sysctl writes that must happen there too, and its asynchronous connection costs
//! about 0.15 ms more than a plain socket on its first request. The kernel handles a route
//! netlink request inside the `send` call anyway, so a synchronous socket loses nothing: the
//! host socket is made on the calling thread, the container's on the one thread that also
//! writes the sysctls (entering the namespace only through `multinet_netlink::run_in_netns`).

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use multinet_netlink::packet::RouteNetlinkMessage;
use multinet_netlink::packet::address::AddressMessage;
use multinet_netlink::packet::link::{LinkAttribute, LinkMessage};
use multinet_netlink::packet::route::{RouteMessage, RouteType};
use multinet_netlink::{
    Address, Family, Link, Netns, Route, RouteOp, address_message, route_message,
};
use rtnetlink::LinkUnspec;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::sys::{Socket as RawSocket, protocols::NETLINK_ROUTE};

/// What the kernel said to a request, reduced to what the drivers act on.
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
    Netns(#[from] multinet_netlink::Error),
    /// The socket itself failed, or a reply could not be read.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("IPv6 duplicate address detection failed for {0}")]
    DadFailed(IpAddr),
    #[error("addresses still tentative after {0:?}")]
    DadTimeout(Duration),
}

fn from_errno(code: i32) -> KernelError {
    match -code {
        libc::EEXIST => KernelError::Exists,
        libc::ENODEV | libc::ENOENT => KernelError::NoSuchLink,
        errno => KernelError::Errno(std::io::Error::from_raw_os_error(errno)),
    }
}

type Res<T> = Result<T, KernelError>;

/// Replies are read into a buffer of this size; the kernel fills at most that much per read
/// (a dump takes several), and only the pages written are touched.
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
    /// first, so the namespace is entered once.
    pub fn inside<T: Send>(ns: &Netns, also: impl FnOnce() -> T + Send) -> Res<(Socket, T)> {
        let (made, out) = ns.run(move || {
            let out = also();
            (Socket::here(), out)
        })?;
        Ok((made?, out))
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        seq
    }

    fn send(&self, msg: RouteNetlinkMessage, flags: u16) -> Res<u32> {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(seq)
    }

    /// Reads the replies to request `seq` until its ACK (or, for a dump, its end); the
    /// messages it carried come back in order.
    fn replies(&self, seq: u32) -> Res<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        let mut buf = self.buf.borrow_mut();
        loop {
            buf.clear();
            self.socket.recv(&mut *buf, 0)?;
            let mut offset = 0;
            while offset < buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
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
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Res<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_ACK | flags)?;
        self.replies(seq)
    }

    /// A dump: every message until the kernel says done.
    fn dump(&self, msg: RouteNetlinkMessage) -> Res<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP)?;
        self.replies(seq)
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
            .map(|s| s.and_then(|seq| self.replies(seq).map(drop)))
            .collect()
    }

    /// The link named `name` and its raw message, or None.
    pub fn link_by_name(&self, name: &str) -> Res<Option<(Link, LinkMessage)>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        first_link(self.request(RouteNetlinkMessage::GetLink(msg), 0))
    }

    /// The link with index `index`, or None.
    pub fn link_by_index(&self, index: u32) -> Res<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        Ok(first_link(self.request(RouteNetlinkMessage::GetLink(msg), 0))?.map(|(l, _)| l))
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

    /// Sets the alias (`IFLA_IFALIAS`) of link `index`.
    pub fn set_alias(&self, index: u32, alias: &str) -> Res<()> {
        let (msg, flags) = set_alias_message(index, alias);
        self.request(msg, flags).map(drop)
    }

    pub fn rename(&self, index: u32, name: &str) -> Res<()> {
        let msg = LinkUnspec::new_with_index(index).name(name).build();
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
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
        query.header.address_family = match family {
            Family::V4 => multinet_netlink::packet::AddressFamily::Inet,
            Family::V6 => multinet_netlink::packet::AddressFamily::Inet6,
        };
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
            let routes = self.routes(family, multinet_netlink::MAIN_TABLE)?;
            if let Some(oif) = routes.iter().filter(|r| r.is_default()).find_map(|r| r.oif) {
                return Ok(Some(oif));
            }
        }
        Ok(None)
    }
}

/// RTM_SETLINK for "link `index` up".
pub fn set_up_message(index: u32) -> (RouteNetlinkMessage, u16) {
    let msg = LinkUnspec::new_with_index(index).up().build();
    (RouteNetlinkMessage::SetLink(msg), 0)
}

/// RTM_SETLINK giving link `index` the alias (`IFLA_IFALIAS`) `alias`. The kernel ignores an
/// alias in the RTM_NEWLINK that creates a link, so it takes a request of its own.
pub fn set_alias_message(index: u32, alias: &str) -> (RouteNetlinkMessage, u16) {
    let msg = LinkUnspec::new_with_index(index).alias(alias).build();
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
