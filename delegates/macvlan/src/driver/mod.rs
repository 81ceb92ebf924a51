//! The driver shared by macvlan and ipvlan: a child link of a master, made straight inside the
//! container's namespace, addressed by IPAM (or prevResult), checked, and removed.
//!
//! Each plugin only reads its config into a [`LinkConf`]; everything from there on is here.
//!
//! ADD order, chosen so the common failures cost least to undo:
//! 1. config checks that need no kernel state (done by the plugin);
//! 2. the master is looked up (and a macvlan's MTU checked against it);
//! 3. IPAM allocates (a bad IPAM config thus never touches the kernel, and releasing an
//!    address is far cheaper than deleting a link, which waits for an RCU grace period);
//! 4. the link is created in the container's namespace under its final name, in one request;
//! 5. sysctls, addresses, up, DAD wait, routes, through a socket inside the namespace.
//!
//! Any failure after step 3 releases the addresses, and after step 4 deletes the link.

pub mod check;
pub mod conf;
pub mod ipam;
pub mod kernel;
pub mod keys;
pub mod plan;
pub mod result;

use std::time::Duration;

use multinet_cni::{GcRequest, Interface, NetworkResult, Request};
use multinet_netlink::{Family, Link, NetlinkHandle, Netns};

use crate::driver::check::{ExpectedLink, Observed, compare, find_interface, tables_to_read};
use crate::driver::conf::{Addressing, LinkConf, Master, check_mtu};
use crate::driver::ipam::Ipam;
use crate::driver::kernel::{
    IfaceSysctls, KernelError, child_message, create_link, created_up, delete_link_by_name,
    observe_link,
};
use crate::driver::plan::{IfacePlan, plan_iface};
use crate::driver::result::{build_result, interface_entry};
use crate::error::{BoxError, Error, Result};

pub use conf::{ChildKind, CommonKeys};

/// How long ADD waits for IPv6 duplicate address detection, as the reference does.
pub const DAD_TIMEOUT: Duration = Duration::from_secs(5);

fn kernel(plugin: &'static str, op: impl Into<String>) -> impl FnOnce(BoxError) -> Error {
    let op = op.into();
    move |source| Error::Kernel { plugin, op, source }
}

fn netns_path(plugin: &'static str, req: &Request) -> Result<String> {
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

fn open_netns(plugin: &'static str, path: &str) -> Result<Netns> {
    Netns::open(path).map_err(|source| Error::Netns {
        plugin,
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// A netlink socket inside `netns`, made on a thread that entered it. `also` runs on that
/// thread first (e.g. sysctls), so the namespace is entered once.
fn handle_in<T: Send>(
    netns: &Netns,
    also: impl FnOnce() -> T + Send,
) -> multinet_netlink::Result<(NetlinkHandle, T)> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| multinet_netlink::Error::Runtime(e.to_string()))?;
    netns.run(move || {
        let out = also();
        // The socket registers with the caller's runtime, which can be entered from here.
        let _entered = runtime.enter();
        NetlinkHandle::current().map(|h| (h, out))
    })?
}

/// ADD: creates and configures the link; returns the result.
pub async fn add(req: &Request, conf: &LinkConf) -> Result<NetworkResult> {
    let plugin = conf.plugin;
    let path = netns_path(plugin, req)?;
    let netns = open_netns(plugin, &path)?;
    let master_side = if conf.link_in_container {
        handle_in(&netns, || ()).map(|(h, ())| h)
    } else {
        NetlinkHandle::current()
    }
    .map_err(|e| kernel(plugin, "open a netlink socket")(e.into()))?;
    let master = resolve_master(conf, &master_side).await?;
    if conf.kind.mtu_bounded_by_master() {
        check_mtu(plugin, conf.mtu, &master.name, master.mtu)?;
    }

    let ipam = conf.addressing.ipam_type().map(|t| Ipam {
        plugin,
        plugin_type: t,
        req,
    });
    let addresses = match &conf.addressing {
        Addressing::None => None,
        Addressing::Ipam { .. } => match &ipam {
            Some(ipam) => Some(ipam.add().await?),
            None => None,
        },
        Addressing::PrevResult(prev) => Some((**prev).clone()),
    };
    let made = LinkMaker {
        req,
        conf,
        netns: &netns,
        path: &path,
        master_side: &master_side,
        master: &master,
    }
    .make(addresses.as_ref())
    .await;
    match made {
        Ok(iface) => Ok(build_result(
            req.version,
            iface,
            addresses.as_ref(),
            conf::config_dns(req),
        )),
        Err(e) => {
            if let Some(ipam) = ipam {
                // The ADD's own error is what the runtime needs; a failed release is only logged.
                if let Err(rel) = ipam.del().await {
                    eprintln!("{plugin}: releasing addresses after a failed ADD: {rel}");
                }
            }
            Err(e)
        }
    }
}

/// The master link: named, or the default route's interface.
async fn resolve_master(conf: &LinkConf, handle: &NetlinkHandle) -> Result<Link> {
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
            let mut found = None;
            for family in [Family::V4, Family::V6] {
                let routes = handle
                    .default_routes(family)
                    .await
                    .map_err(|e| kernel(plugin, "list default routes")(e.into()))?;
                if let Some(oif) = routes.iter().find_map(|r| r.oif) {
                    found = Some(oif);
                    break;
                }
            }
            let oif = found.ok_or_else(|| {
                invalid(format!(
                    "not set, and there is no default route in {place} to take it from"
                ))
            })?;
            handle
                .link_by_index(oif)
                .await
                .map_err(|e| kernel(plugin, "look up the default route's interface")(e.into()))?
                .name
        }
    };
    handle.link_by_name(&name).await.map_err(|e| {
        if e.is_not_found() {
            invalid(format!("interface {name:?} not found in {place}"))
        } else {
            kernel(plugin, format!("look up master {name:?}"))(e.into())
        }
    })
}

/// Creates the link and configures it; deletes it again if configuring fails.
struct LinkMaker<'a> {
    req: &'a Request,
    conf: &'a LinkConf,
    netns: &'a Netns,
    path: &'a str,
    master_side: &'a NetlinkHandle,
    master: &'a Link,
}

impl LinkMaker<'_> {
    fn plugin(&self) -> &'static str {
        self.conf.plugin
    }

    fn ifname(&self) -> &str {
        &self.req.env.ifname
    }

    async fn make(&self, addresses: Option<&NetworkResult>) -> Result<Interface> {
        let plan = addresses.map(plan_iface);
        let up_at_create = plan.is_none();
        let inside = self.create(up_at_create, plan.as_ref()).await?;
        match self.configure(&inside, plan.as_ref(), up_at_create).await {
            Ok(iface) => Ok(iface),
            Err(e) => {
                if let Err(del) = delete_link_by_name(&inside, self.ifname()).await {
                    eprintln!(
                        "{}: deleting {} after a failed ADD: {del}",
                        self.plugin(),
                        self.ifname()
                    );
                }
                Err(e)
            }
        }
    }

    fn sysctls<'s>(
        &'s self,
        plan: Option<&IfacePlan>,
    ) -> impl FnOnce() -> multinet_netlink::Result<()> + Send + 's {
        let enable_ipv6 = plan.is_some_and(|p| p.enable_ipv6);
        let with_sysctls = plan.is_some();
        let ifname = self.ifname();
        move || {
            if with_sysctls {
                IfaceSysctls {
                    ifname,
                    enable_ipv6,
                }
                .apply()
            } else {
                Ok(())
            }
        }
    }

    /// Creates the link under its final name straight in the container's namespace, and
    /// returns a socket inside that namespace (after the sysctls are written there).
    ///
    /// Creating with the final name is safe: the request is exclusive (NLM_F_EXCL), so an
    /// existing link is never modified. Kernels before 6.13 look the name up in the
    /// *caller's* namespace first and answer EEXIST when the host has a link of that name;
    /// then, if the container really has no such link, the link is made under a temporary
    /// name and renamed inside the container, as the reference always does.
    async fn create(&self, up: bool, plan: Option<&IfacePlan>) -> Result<NetlinkHandle> {
        let plugin = self.plugin();
        let ifname = self.ifname();
        let fd =
            (!self.conf.link_in_container).then(|| std::os::fd::AsRawFd::as_raw_fd(self.netns));
        let msg = child_message(
            &self.conf.kind,
            ifname,
            self.master.index,
            self.conf.mtu,
            fd,
        );
        let msg = if up { created_up(msg) } else { msg };
        let kind = self.conf.kind.kind_name();
        let op = format!(
            "create {kind} {ifname:?} on {:?} in {}",
            self.master.name, self.path
        );
        match create_link(self.master_side, msg).await {
            Ok(()) => self.inside(plan).await,
            Err(KernelError::Exists) => {
                // The final name does not exist yet, so the sysctls wait until after the rename.
                let inside = self.inside(None).await?;
                match observe_link(&inside, ifname).await {
                    Ok(None) if !self.conf.link_in_container => {}
                    Ok(_) => return Err(self.taken()),
                    Err(e) => return Err(kernel(plugin, format!("look up {ifname:?}"))(e.into())),
                }
                self.create_and_rename(&inside, up).await?;
                if plan.is_some() {
                    let sysctls = self.sysctls(plan);
                    self.netns
                        .run(sysctls)
                        .and_then(|r| r)
                        .map_err(|e| kernel(plugin, "set sysctls")(e.into()))?;
                }
                Ok(inside)
            }
            Err(e) => Err(kernel(plugin, op)(e.into())),
        }
    }

    async fn inside(&self, plan: Option<&IfacePlan>) -> Result<NetlinkHandle> {
        let plugin = self.plugin();
        if self.conf.link_in_container {
            // The master's socket is inside the container already; the sysctls still need a
            // thread there.
            if plan.is_some() {
                let sysctls = self.sysctls(plan);
                self.netns
                    .run(sysctls)
                    .and_then(|r| r)
                    .map_err(|e| kernel(plugin, "set sysctls")(e.into()))?;
            }
            return handle_in(self.netns, || ())
                .map(|(h, ())| h)
                .map_err(|e| kernel(plugin, "open a netlink socket in the container")(e.into()));
        }
        let (handle, sysctls) = handle_in(self.netns, self.sysctls(plan))
            .map_err(|e| kernel(plugin, "open a netlink socket in the container")(e.into()))?;
        sysctls.map_err(|e| kernel(plugin, "set sysctls")(e.into()))?;
        Ok(handle)
    }

    fn taken(&self) -> Error {
        Error::IfnameTaken {
            plugin: self.plugin(),
            ifname: self.ifname().to_owned(),
            netns: self.path.to_owned(),
        }
    }

    /// The fallback for kernels that check the new name in the caller's namespace.
    async fn create_and_rename(&self, inside: &NetlinkHandle, up: bool) -> Result<()> {
        let plugin = self.plugin();
        let ifname = self.ifname();
        let tmp = temporary_name();
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.netns);
        let msg = child_message(
            &self.conf.kind,
            &tmp,
            self.master.index,
            self.conf.mtu,
            Some(fd),
        );
        create_link(self.master_side, msg)
            .await
            .map_err(|e| kernel(plugin, format!("create {tmp:?} in {}", self.path))(e.into()))?;
        let renamed = async {
            let link = inside.link_by_name(&tmp).await?;
            inside.rename(link.index, ifname).await?;
            if up {
                inside.set_up(link.index).await?;
            }
            Ok::<(), multinet_netlink::Error>(())
        }
        .await;
        if let Err(e) = renamed {
            let _ = delete_link_by_name(inside, &tmp).await;
            return Err(if e.is_already_exists() {
                self.taken()
            } else {
                kernel(plugin, format!("rename {tmp:?} to {ifname:?}"))(e.into())
            });
        }
        Ok(())
    }

    async fn configure(
        &self,
        inside: &NetlinkHandle,
        plan: Option<&IfacePlan>,
        is_up: bool,
    ) -> Result<Interface> {
        let plugin = self.plugin();
        let ifname = self.ifname();
        let link = inside.link_by_name(ifname).await.map_err(|e| {
            kernel(plugin, format!("look up {ifname:?} after creating it"))(e.into())
        })?;
        let index = link.index;
        if let Some(plan) = plan {
            for address in &plan.addresses {
                inside.add_address(index, *address).await.map_err(|e| {
                    kernel(plugin, format!("add address {address} to {ifname:?}"))(e.into())
                })?;
            }
        }
        if !is_up {
            inside
                .set_up(index)
                .await
                .map_err(|e| kernel(plugin, format!("set {ifname:?} up"))(e.into()))?;
        }
        if let Some(plan) = plan {
            if plan.wait_for_dad {
                self.wait_for_dad(inside, index).await?;
            }
            for route in &plan.routes {
                let route = route.clone().dev(index);
                inside
                    .add_route(&route)
                    .await
                    .map_err(|e| kernel(plugin, format!("add route {route}"))(e.into()))?;
            }
        }
        Ok(interface_entry(
            ifname,
            link.mac().map(|m| m.to_string()),
            self.path,
        ))
    }

    /// Waits for DAD; like the reference, a link that is not operationally up when the wait
    /// times out (no carrier, so DAD cannot run) is not an error.
    async fn wait_for_dad(&self, inside: &NetlinkHandle, index: u32) -> Result<()> {
        let plugin = self.plugin();
        match inside.wait_for_dad(index, DAD_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(multinet_netlink::Error::Timeout { .. }) => {
                let link = inside
                    .link_by_index(index)
                    .await
                    .map_err(|e| kernel(plugin, "look up link after DAD timeout")(e.into()))?;
                if link.oper_state == multinet_netlink::packet::link::State::Up {
                    Err(kernel(plugin, "wait for IPv6 DAD")(
                        format!("addresses still tentative after {DAD_TIMEOUT:?}").into(),
                    ))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(kernel(plugin, "wait for IPv6 DAD")(e.into())),
        }
    }
}

/// A name unlikely to be taken anywhere: "mnt" and 10 hex digits from the OS's randomness.
fn temporary_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("mnt{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// DEL: releases the addresses first, then deletes the link. Succeeds when there is no netns,
/// the netns is gone, or the link is gone; a failed release is reported after the link is
/// deleted anyway.
pub async fn del(plugin: &'static str, req: &Request, ipam_type: Option<&str>) -> Result<()> {
    let released = match ipam_type {
        Some(t) => {
            Ipam {
                plugin,
                plugin_type: t,
                req,
            }
            .del()
            .await
        }
        None => Ok(()),
    };
    let deleted = delete_in_container(plugin, req).await;
    released.and(deleted)
}

async fn delete_in_container(plugin: &'static str, req: &Request) -> Result<()> {
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
    let (inside, ()) = handle_in(&netns, || ())
        .map_err(|e| kernel(plugin, "open a netlink socket in the container")(e.into()))?;
    let ifname = &req.env.ifname;
    match delete_link_by_name(&inside, ifname).await {
        Ok(()) | Err(KernelError::NoSuchLink) => Ok(()),
        Err(e) => Err(kernel(plugin, format!("delete {ifname:?} in {path}"))(
            e.into(),
        )),
    }
}

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
    let (inside, ()) = handle_in(&netns, || ())
        .map_err(|e| kernel(plugin, "open a netlink socket in the container")(e.into()))?;
    if let Master::Named(name) = &conf.master {
        let master_side = if conf.link_in_container {
            None
        } else {
            Some(
                NetlinkHandle::current()
                    .map_err(|e| kernel(plugin, "open a netlink socket")(e.into()))?,
            )
        };
        let found = master_side
            .as_ref()
            .unwrap_or(&inside)
            .link_by_name(name)
            .await;
        match found {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(mismatch(format!("master {name:?} not found")));
            }
            Err(e) => return Err(kernel(plugin, format!("look up master {name:?}"))(e.into())),
        }
    }
    let observed = observe(plugin, &inside, ifname, prev).await?;
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

async fn observe(
    plugin: &'static str,
    inside: &NetlinkHandle,
    ifname: &str,
    prev: &NetworkResult,
) -> Result<Observed> {
    let Some((link, observed_link)) = observe_link(inside, ifname)
        .await
        .map_err(|e| kernel(plugin, format!("look up {ifname:?}"))(e.into()))?
    else {
        return Ok(Observed::default());
    };
    let addresses = inside
        .addresses(Some(link.index))
        .await
        .map_err(|e| kernel(plugin, "list addresses")(e.into()))?
        .into_iter()
        .map(|a| a.address)
        .collect();
    let mut routes = Vec::new();
    for table in tables_to_read(prev) {
        for family in [Family::V4, Family::V6] {
            routes.extend(
                inside
                    .routes_in_table(family, table)
                    .await
                    .map_err(|e| kernel(plugin, "list routes")(e.into()))?,
            );
        }
    }
    Ok(Observed {
        link: Some(observed_link),
        addresses,
        routes,
    })
}

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
