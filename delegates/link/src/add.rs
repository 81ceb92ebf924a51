//! ADD: the link made in the container, configured, and undone on any failure.

use std::time::Duration;

use multinet_cni::{Interface, NetworkResult, Request};
use multinet_netlink::{Link, Netns, link_tag, pending_link_name};

use crate::conf::{self, Addressing, LinkConf, Master, check_mtu};
use crate::error::{Error, Result};
use crate::iface::{self, Apply, IfacePlan, IfaceSysctls, Ipv6Dad, plan_iface};
use crate::ipam::{Ipam, PendingAdd};
use crate::kernel::child_message;
use crate::ns::{kernel, netns_path, open_netns, socket_in};
use crate::result::{build_result, interface_entry};
use multinet_netlink::{KernelError, Socket};

/// How long ADD waits for IPv6 duplicate address detection, as the reference does.
pub const DAD_TIMEOUT: Duration = Duration::from_secs(5);
/// IPv6 as the reference macvlan and ipvlan plugins bring it up.
const DAD: Ipv6Dad = Ipv6Dad::EnableAndWait;
/// ADD: creates and configures the link; returns the result.
pub async fn add(req: &Request, conf: &LinkConf) -> Result<NetworkResult> {
    let plugin = conf.plugin;
    let path = netns_path(plugin, req)?;
    let netns = open_netns(plugin, &path)?;
    let ipam = conf.addressing.ipam_type().map(|t| Ipam {
        plugin,
        plugin_type: t,
        req,
    });
    // host-local's config is checked before anything else happens; its allocation then runs
    // on its own thread while the master is looked up and the link made.
    let pending = match (&conf.addressing, &ipam) {
        (Addressing::Ipam { .. }, Some(ipam)) => ipam.start_add()?,
        _ => None,
    };
    let master_side = match master_socket(conf, &netns) {
        Ok(s) => s,
        Err(e) => return Err(abandon(ipam.as_ref(), pending, e).await),
    };
    let master = match resolve_master(conf, &master_side) {
        Ok(m) => m,
        Err(e) => return Err(abandon(ipam.as_ref(), pending, e).await),
    };
    if conf.kind.mtu_bounded_by_master()
        && let Err(e) = check_mtu(plugin, conf.mtu, &master.name, master.mtu)
    {
        return Err(abandon(ipam.as_ref(), pending, e).await);
    }
    // Other IPAM plugins run now, in order; prevResult's addresses need nothing.
    let addressing = match (&conf.addressing, &ipam, pending) {
        (_, _, Some(pending)) => Addresses::Pending(pending),
        (Addressing::Ipam { .. }, Some(ipam), None) => Addresses::Ready(ipam.add().await?),
        (Addressing::PrevResult(prev), _, None) => Addresses::Ready((**prev).clone()),
        _ => Addresses::None,
    };
    let maker = LinkMaker {
        req,
        conf,
        netns: &netns,
        path: &path,
        master_side: &master_side,
        master: &master,
    };
    let (made, allocated) = maker.make(addressing, ipam.as_ref()).await;
    match made {
        Ok(iface) => Ok(build_result(
            req.version,
            iface,
            allocated.as_ref(),
            conf::config_dns(req),
        )),
        Err(e) => {
            if let (Some(ipam), Some(_)) = (ipam, allocated) {
                // The ADD's own error is what the runtime needs; a failed release is only logged.
                if let Err(rel) = ipam.del().await {
                    eprintln!("{plugin}: releasing addresses after a failed ADD: {rel}");
                }
            }
            Err(e)
        }
    }
}

/// The socket the master is looked up and the link created through: the host's, or with
/// `linkInContainer` the container's.
fn master_socket(conf: &LinkConf, netns: &Netns) -> Result<Socket> {
    if conf.link_in_container {
        socket_in(conf.plugin, netns)
    } else {
        Socket::here().map_err(kernel(conf.plugin, "open a netlink socket"))
    }
}

/// Undoes a host-local allocation started before the ADD failed; returns the ADD's error.
async fn abandon(ipam: Option<&Ipam<'_>>, pending: Option<PendingAdd>, err: Error) -> Error {
    if let (Some(ipam), Some(pending)) = (ipam, pending)
        && ipam.finish_add(pending).is_ok()
        && let Err(rel) = ipam.del().await
    {
        eprintln!(
            "{}: releasing addresses after a failed ADD: {rel}",
            ipam.plugin
        );
    }
    err
}

/// The addresses an ADD puts on the link.
enum Addresses {
    /// None: a layer-2 link.
    None,
    Ready(NetworkResult),
    /// host-local still allocating.
    Pending(PendingAdd),
}

/// The master link: named, or the default route's interface.
fn resolve_master(conf: &LinkConf, socket: &Socket) -> Result<Link> {
    let plugin = conf.plugin;
    let place = if conf.link_in_container {
        "the container's namespace"
    } else {
        "the host namespace"
    };
    let invalid = |msg: String| Error::InvalidKey {
        plugin,
        key: "master".into(),
        msg,
    };
    let name = match &conf.master {
        Master::Named(n) => n.clone(),
        Master::DefaultRoute => {
            let oif = socket
                .default_route_link()
                .map_err(kernel(plugin, "list default routes"))?
                .ok_or_else(|| {
                    invalid(format!(
                        "not set, and there is no default route in {place} to take it from"
                    ))
                })?;
            socket
                .link_by_index(oif)
                .map_err(kernel(plugin, "look up the default route's interface"))?
                .ok_or_else(|| invalid(format!("the default route's interface {oif} is gone")))?
                .name
        }
    };
    match socket.link_by_name(&name) {
        Ok(Some((link, _))) => Ok(link),
        Ok(None) => Err(invalid(format!("interface {name:?} not found in {place}"))),
        Err(e) => Err(kernel(plugin, format!("look up master {name:?}"))(e)),
    }
}

/// Creates the link and configures it; deletes it again if configuring fails.
struct LinkMaker<'a> {
    req: &'a Request,
    conf: &'a LinkConf,
    netns: &'a Netns,
    path: &'a str,
    master_side: &'a Socket,
    master: &'a Link,
}

impl LinkMaker<'_> {
    fn plugin(&self) -> &'static str {
        self.conf.plugin
    }

    fn ifname(&self) -> &str {
        &self.req.env.ifname
    }

    /// Creates and configures the link. Returns the interface (or the error) and the
    /// addresses IPAM allocated, which the caller releases when the ADD failed.
    async fn make(
        &self,
        addresses: Addresses,
        ipam: Option<&Ipam<'_>>,
    ) -> (Result<Interface>, Option<NetworkResult>) {
        // What the sysctls need before the addresses are known: whether IPv6 is coming.
        let (l3, ipv6) = match &addresses {
            Addresses::None => (false, false),
            Addresses::Ready(r) => (true, plan_iface(r, DAD).enable_ipv6),
            Addresses::Pending(p) => (true, p.ipv6),
        };
        // A link without addresses has nothing to wait for: it is created up.
        let created = self.create(!l3, ipv6);
        let allocated = match (addresses, ipam) {
            (Addresses::None, _) => Ok(None),
            (Addresses::Ready(r), _) => Ok(Some(r)),
            (Addresses::Pending(p), Some(ipam)) => ipam.finish_add(p).map(Some),
            (Addresses::Pending(_), None) => Ok(None),
        };
        let ((inside, link), allocated) = match (created, allocated) {
            (Ok(made), Ok(allocated)) => (made, allocated),
            (Ok((inside, link)), Err(e)) => {
                self.undo(&inside, link.index);
                return (Err(e), None);
            }
            (Err(e), Ok(allocated)) => return (Err(e), allocated),
            // IPAM comes first in a CNI ADD, so its error is the one to report.
            (Err(_), Err(e)) => return (Err(e), None),
        };
        let plan = allocated.as_ref().map(|r| plan_iface(r, DAD));
        let configured = async {
            if plan.as_ref().is_some_and(|p| p.enable_ipv6 && !ipv6) {
                self.set_sysctls(true)?;
            }
            self.configure(&inside, &link, plan.as_ref(), !l3).await
        }
        .await;
        if configured.is_err() {
            self.undo(&inside, link.index);
        }
        (configured, allocated)
    }

    fn undo(&self, inside: &Socket, index: u32) {
        undo(self.plugin(), self.ifname(), inside, index);
    }

    /// The interface's sysctls (arp_notify, ndisc_notify, and with `ipv6` what IPv6 needs),
    /// as a closure to run inside the container.
    fn sysctls(&self, ipv6: bool) -> impl FnOnce() -> multinet_netlink::Result<()> + Send + '_ {
        let ifname = self.ifname();
        move || {
            IfaceSysctls {
                ifname,
                enable_ipv6: ipv6,
                dad: DAD,
            }
            .apply()
        }
    }

    fn set_sysctls(&self, ipv6: bool) -> Result<()> {
        self.netns
            .run(self.sysctls(ipv6))
            .and_then(|r| r)
            .map_err(|e| kernel(self.plugin(), "set sysctls")(e.into()))
    }

    /// Creates the link under its pending name straight in the container's namespace; then,
    /// on one thread inside the container, names and tags it and writes its sysctls. Returns a
    /// socket inside the container and the link.
    ///
    /// The kernel ignores an alias in the creating request, so until the request that names
    /// and tags the link, its pending name ([`pending_link_name`], from the container ID, set
    /// by the creating request itself) is what marks it as this container's: a call killed in
    /// between leaves a link that DEL, and teardown without a record, still remove. Both
    /// requests are safe against links made by others: creation is exclusive (NLM_F_EXCL),
    /// and the rename fails rather than replace a link of the final name.
    fn create(&self, up: bool, ipv6: bool) -> Result<(Socket, Link)> {
        let plugin = self.plugin();
        let ifname = self.ifname();
        let pending = pending_link_name(&self.req.env.container_id, ifname);
        let fd =
            (!self.conf.link_in_container).then(|| std::os::fd::AsRawFd::as_raw_fd(self.netns));
        // Created down whatever `up` says: a link that is up cannot be renamed.
        let msg = child_message(
            &self.conf.kind,
            &pending,
            self.master.index,
            self.conf.mtu,
            fd,
        );
        let kind = self.conf.kind.kind_name();
        self.master_side.create_link(msg).map_err(kernel(
            plugin,
            format!(
                "create {kind} {pending:?} (to be named {ifname:?}) on {:?} in {}",
                self.master.name, self.path
            ),
        ))?;
        let claim = Claim {
            plugin,
            kind,
            pending: &pending,
            ifname,
            netns: self.path,
            tag: link_tag(&self.req.env.container_id),
            up,
        };
        let sysctls = self.sysctls(ipv6);
        // Should entering the container fail, the pending link stays for DEL to remove.
        let (inside, claimed) = Socket::inside(self.netns, move |inside| {
            let link = claim.run(inside)?;
            match sysctls() {
                Ok(()) => Ok(link),
                Err(e) => {
                    undo(plugin, ifname, inside, link.index);
                    Err(kernel(plugin, "set sysctls")(e.into()))
                }
            }
        })
        .map_err(kernel(plugin, "open a netlink socket in the container"))?;
        Ok((inside, claimed?))
    }
    async fn configure(
        &self,
        inside: &Socket,
        link: &Link,
        plan: Option<&IfacePlan>,
        is_up: bool,
    ) -> Result<Interface> {
        let ifname = self.ifname();
        let how = Apply {
            ifname,
            set_up: !is_up,
            dad_timeout: DAD_TIMEOUT,
            existing_ok: false,
        };
        iface::apply(inside, link.index, plan, how)
            .await
            .map_err(|e| kernel(self.plugin(), e.what)(e.source))?;
        Ok(interface_entry(
            ifname,
            link.mac().map(|m| m.to_string()),
            self.path,
        ))
    }
}

/// Deletes the link made by a failed ADD: by its index, so only the link this ADD made.
fn undo(plugin: &str, ifname: &str, inside: &Socket, index: u32) {
    if let Err(del) = inside.delete_link(index) {
        eprintln!("{plugin}: deleting {ifname} after a failed ADD: {del}");
    }
}

/// The step that makes a just-created link the container's interface: found under its
/// pending name, then named and tagged ([`link_tag`]) in one request, and set up when it
/// needs no addresses.
struct Claim<'a> {
    plugin: &'static str,
    kind: &'static str,
    pending: &'a str,
    ifname: &'a str,
    netns: &'a str,
    tag: String,
    up: bool,
}

impl Claim<'_> {
    /// Runs through `inside`, a socket in the container; deletes the link when it fails.
    fn run(&self, inside: &Socket) -> Result<Link> {
        let Claim {
            plugin,
            kind,
            pending,
            ifname,
            ..
        } = *self;
        let (mut link, _) = inside
            .link_by_name(pending)
            .and_then(|l| l.ok_or(KernelError::NoSuchLink))
            .map_err(kernel(
                plugin,
                format!("look up {pending:?} after creating it"),
            ))?;
        // Only the container could have swapped the link in between; what is there now is
        // not ours to name or delete.
        if link.kind.as_deref() != Some(kind) {
            return Err(self.taken());
        }
        if let Err(e) = inside.name_and_tag(link.index, ifname, &self.tag, self.up) {
            undo(plugin, ifname, inside, link.index);
            return Err(match e {
                KernelError::Exists => self.taken(),
                e => kernel(plugin, format!("name {pending:?} {ifname:?} and tag it"))(e),
            });
        }
        link.name = ifname.to_owned();
        link.alias = Some(self.tag.clone());
        Ok(link)
    }

    fn taken(&self) -> Error {
        Error::IfnameTaken {
            plugin: self.plugin,
            ifname: self.ifname.to_owned(),
            netns: self.netns.to_owned(),
        }
    }
}
