//! The netlink requests of the drivers, on plain rtnetlink sockets, built and parsed with
//! multinet-netlink's public message builders and parsers.
//!
//! Why not `multinet_netlink::NetlinkHandle`: it makes every socket on a thread of its own,
//! also for the caller's own namespace, and a socket inside a namespace cannot share that
//! thread with the sysctl writes that must happen there too. On a busy node each thread
//! hand-off costs a scheduling delay on the ADD and DEL paths, so here the host socket is made
//! on the calling thread and the container's socket on the one thread that also writes the
//! sysctls (entering the namespace only through `multinet_netlink::run_in_netns`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use ipnet::IpNet;
use multinet_netlink::packet::address::AddressMessage;
use multinet_netlink::packet::link::{LinkAttribute, LinkMessage};
use multinet_netlink::packet::route::RouteMessage;
use multinet_netlink::{
    Address, Family, Link, Netns, Route, RouteOp, address_message, route_message,
};
use rtnetlink::LinkUnspec;
use tokio::task::JoinHandle;

/// What the kernel said to a request, reduced to what the drivers act on.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// EEXIST.
    #[error("exists already")]
    Exists,
    /// ENODEV / ENOENT: the link named in the request is gone.
    #[error("no such link")]
    NoSuchLink,
    #[error(transparent)]
    Netlink(#[from] rtnetlink::Error),
    #[error(transparent)]
    Netns(#[from] multinet_netlink::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("IPv6 duplicate address detection failed for {0}")]
    DadFailed(IpAddr),
    #[error("addresses still tentative after {0:?}")]
    DadTimeout(Duration),
}

fn classify(e: rtnetlink::Error) -> KernelError {
    let errno = match &e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    };
    match errno {
        Some(libc::EEXIST) => KernelError::Exists,
        Some(libc::ENODEV) | Some(libc::ENOENT) => KernelError::NoSuchLink,
        _ => KernelError::Netlink(e),
    }
}

type Res<T> = Result<T, KernelError>;

/// An rtnetlink socket bound to one namespace; its connection task ends when it is dropped.
#[derive(Debug)]
pub struct Socket {
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn runtime() -> Res<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current()
        .map_err(|e| multinet_netlink::Error::Runtime(e.to_string()).into())
}

impl Socket {
    /// A socket in the calling thread's namespace (for a plugin process: the host's). Needs a
    /// tokio runtime with IO enabled.
    pub fn here() -> Res<Socket> {
        let runtime = runtime()?;
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Socket {
            handle,
            connection: runtime.spawn(connection),
        })
    }

    /// A socket inside `ns`, made on a thread that entered it; `also` runs on that thread
    /// first, so the namespace is entered once.
    pub fn inside<T: Send>(ns: &Netns, also: impl FnOnce() -> T + Send) -> Res<(Socket, T)> {
        let runtime = runtime()?;
        let rt = runtime.clone();
        let (made, out) = ns.run(move || {
            let out = also();
            // The socket registers with the caller's runtime, which any thread may enter.
            let _entered = rt.enter();
            (rtnetlink::new_connection(), out)
        })?;
        let (connection, handle, _) = made?;
        Ok((
            Socket {
                handle,
                connection: runtime.spawn(connection),
            },
            out,
        ))
    }

    pub fn raw(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// The link named `name` and its raw message, or None.
    pub async fn link_by_name(&self, name: &str) -> Res<Option<(Link, LinkMessage)>> {
        let found = first(self.handle.link().get().match_name(name).execute()).await?;
        Ok(found.map(|m| (Link::from_message(&m), m)))
    }

    /// The link with index `index`, or None.
    pub async fn link_by_index(&self, index: u32) -> Res<Option<Link>> {
        let found = first(self.handle.link().get().match_index(index).execute()).await?;
        Ok(found.map(|m| Link::from_message(&m)))
    }

    /// RTM_NEWLINK, exclusive create.
    pub async fn create_link(&self, msg: LinkMessage) -> Res<()> {
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(classify)
    }

    /// RTM_DELLINK by name: one request.
    pub async fn delete_link_by_name(&self, name: &str) -> Res<()> {
        let mut req = self.handle.link().del(0);
        req.message_mut()
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        req.execute().await.map_err(classify)
    }

    pub async fn set_up(&self, index: u32) -> Res<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(classify)
    }

    pub async fn rename(&self, index: u32, name: &str) -> Res<()> {
        let msg = LinkUnspec::new_with_index(index).name(name).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(classify)
    }

    pub async fn add_address(&self, index: u32, address: IpNet) -> Res<()> {
        let mut req = self
            .handle
            .address()
            .add(index, address.addr(), address.prefix_len());
        *req.message_mut() = address_message(index, address);
        req.execute().await.map_err(classify)
    }

    pub async fn addresses(&self, index: u32) -> Res<Vec<Address>> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(classify)?;
        Ok(msgs.iter().filter_map(Address::from_message).collect())
    }

    /// Waits until no IPv6 address of link `index` is tentative.
    pub async fn wait_for_dad(&self, index: u32, timeout: Duration) -> Res<()> {
        const POLL: Duration = Duration::from_millis(20);
        let start = Instant::now();
        loop {
            let addrs = self.addresses(index).await?;
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

    /// Adds `route` like `ip route add` without NLM_F_EXCL, as the reference does (Go's
    /// `RouteAddEcmp`): a route to the same destination through another link or gateway (the
    /// pod's eth0 default route, typically) is kept beside it rather than refused.
    pub async fn add_route(&self, route: &Route) -> Res<()> {
        use rtnetlink::packet_core::{
            NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
        };
        let mut req =
            NetlinkMessage::from(multinet_netlink::packet::RouteNetlinkMessage::NewRoute(
                route_message(route, RouteOp::Add),
            ));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(classify)?;
        while let Some(reply) = replies.next().await {
            if let NetlinkPayload::Error(e) = reply.payload {
                return Err(classify(rtnetlink::Error::NetlinkError(e)));
            }
        }
        Ok(())
    }

    /// Unicast routes of `family` in `table`.
    pub async fn routes(&self, family: Family, table: u32) -> Res<Vec<Route>> {
        let mut query = RouteMessage::default();
        query.header.address_family = match family {
            Family::V4 => multinet_netlink::packet::AddressFamily::Inet,
            Family::V6 => multinet_netlink::packet::AddressFamily::Inet6,
        };
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(classify)?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.kind == multinet_netlink::packet::route::RouteType::Unicast)
            .filter_map(Route::from_message)
            .filter(|r| r.table == table)
            .collect())
    }

    /// The output link of the first default route in the main table, IPv4 first.
    pub async fn default_route_link(&self) -> Res<Option<u32>> {
        for family in [Family::V4, Family::V6] {
            let routes = self.routes(family, multinet_netlink::MAIN_TABLE).await?;
            if let Some(oif) = routes.iter().filter(|r| r.is_default()).find_map(|r| r.oif) {
                return Ok(Some(oif));
            }
        }
        Ok(None)
    }
}

async fn first<T>(stream: impl Stream<Item = Result<T, rtnetlink::Error>>) -> Res<Option<T>> {
    let mut stream = std::pin::pin!(stream);
    match stream.next().await {
        None => Ok(None),
        Some(Ok(m)) => {
            // Drain the rest so the request completes cleanly.
            while stream.next().await.is_some() {}
            Ok(Some(m))
        }
        Some(Err(e)) => match classify(e) {
            KernelError::NoSuchLink => Ok(None),
            other => Err(other),
        },
    }
}
