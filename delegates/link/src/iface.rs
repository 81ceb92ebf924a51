//! The interface step shared by macvlan, ipvlan and sriov: how the container's interface is
//! configured from an IPAM result (decided before any kernel call: [`plan_iface`]), its
//! sysctls ([`IfaceSysctls`]), and the requests that carry the plan out ([`apply`]): addresses,
//! up, DAD wait, routes. The rules are the reference plugins' (`ipam.ConfigureIface`).
//!
//! The delegates differ in one respect, kept as an explicit option ([`Ipv6Dad`]): the
//! reference macvlan and ipvlan plugins enable IPv6 and wait for duplicate address detection
//! before routes through an IPv6 gateway, while the reference SR-IOV plugin marks addresses
//! optimistic (`optimistic_dad`) and never waits. Each delegate keeps its reference's
//! behaviour, which the differential tests compare.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use multinet_cni::NetworkResult;
use multinet_netlink::packet::RouteNetlinkMessage;
use multinet_netlink::packet::link::State;
use multinet_netlink::packet::route::RouteScope;
use multinet_netlink::{
    KernelError, Route, Socket, add_address_message, add_route_message, read_sysctl,
    set_up_message, write_sysctl,
};

/// How IPv6 addresses are brought into service (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Dad {
    /// macvlan and ipvlan, as their reference plugins: make sure IPv6 is enabled on `lo` and
    /// the interface (addresses kept when down), and wait for DAD before routes through an
    /// IPv6 gateway.
    EnableAndWait,
    /// sriov, as the reference SR-IOV plugin: `optimistic_dad` on the interface (addresses
    /// usable at once), IPv6 left as the namespace has it, no wait.
    Optimistic,
}

/// What to do to the interface, in order: sysctls, addresses, up, DAD wait, routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfacePlan {
    /// Addresses with their prefix length, in result order.
    pub addresses: Vec<IpNet>,
    /// An IPv6 address is coming: make sure IPv6 is enabled on `lo` and the interface, and
    /// that addresses survive the link going down.
    pub enable_ipv6: bool,
    /// An IPv6 gateway is used: routes through it need the addresses out of DAD first.
    pub wait_for_dad: bool,
    /// Routes without their output link (set once the link's index is known).
    pub routes: Vec<Route>,
}

/// The plan for the addresses of `result` that belong to interface 0 (or name no interface).
pub fn plan_iface(result: &NetworkResult, dad: Ipv6Dad) -> IfacePlan {
    let mut plan = IfacePlan::default();
    let mut v4_gw: Option<IpAddr> = None;
    let mut v6_gw: Option<IpAddr> = None;
    for ip in result
        .ips
        .iter()
        .filter(|ip| ip.interface.unwrap_or(0) == 0)
    {
        plan.addresses.push(ip.address);
        if ip.address.addr().is_ipv6() && dad == Ipv6Dad::EnableAndWait {
            plan.enable_ipv6 = true;
        }
        match ip.gateway {
            Some(gw @ IpAddr::V4(_)) if v4_gw.is_none() => v4_gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6_gw.is_none() => v6_gw = Some(gw),
            _ => {}
        }
    }
    plan.wait_for_dad = v6_gw.is_some() && dad == Ipv6Dad::EnableAndWait;
    for r in &result.routes {
        let family_gw = if r.dst.addr().is_ipv4() { v4_gw } else { v6_gw };
        let mut route = Route::new(r.dst);
        if let Some(gw) = r.gw.or(family_gw) {
            route = route.via(gw);
        }
        if let Some(p) = r.priority {
            route = route.metric(p);
        }
        if let Some(t) = r.table {
            route.table = t;
        }
        // Without a scope the reference sends universe, also for IPv4 routes without gateway.
        route.scope = Some(RouteScope::from(r.scope.unwrap_or(0)));
        plan.routes.push(route);
    }
    plan
}

/// Per-interface sysctls the reference plugins set; [`IfaceSysctls::apply`] must run inside
/// the container's namespace.
#[derive(Debug, Clone, Copy)]
pub struct IfaceSysctls<'a> {
    pub ifname: &'a str,
    /// Also make sure IPv6 works on `lo` and the interface and keeps addresses when down.
    pub enable_ipv6: bool,
    pub dad: Ipv6Dad,
}

impl IfaceSysctls<'_> {
    /// Writes the sysctls. arp_notify, ndisc_notify and optimistic_dad are best effort (as in
    /// the reference: a kernel without IPv6 has no ndisc_notify); enabling IPv6 is required
    /// when asked.
    pub fn apply(&self) -> multinet_netlink::Result<()> {
        let ifname = self.ifname;
        let _ = write_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        let _ = write_sysctl(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1");
        if self.dad == Ipv6Dad::Optimistic {
            let _ = write_sysctl(&format!("net/ipv6/conf/{ifname}/optimistic_dad"), "1");
        }
        if self.enable_ipv6 {
            for dev in ["lo", ifname] {
                let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
                match read_sysctl(&key) {
                    // Without the file IPv6 is off in this kernel; adding the address will tell.
                    Err(_) => continue,
                    Ok(v) if v.trim() == "0" => continue,
                    Ok(_) => write_sysctl(&key, "0")?,
                }
            }
            write_sysctl(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1")?;
        }
        Ok(())
    }
}

/// A request of [`apply`] the kernel refused, and what it was for.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct StepError {
    /// e.g. `add address 10.1.0.5/24 to "net1"`.
    pub what: String,
    #[source]
    pub source: KernelError,
}

/// How [`apply`] carries the plan out.
#[derive(Debug, Clone, Copy)]
pub struct Apply<'a> {
    pub ifname: &'a str,
    /// Set the link up after the addresses (false when it is up already).
    pub set_up: bool,
    /// How long to wait for DAD when the plan asks for it.
    pub dad_timeout: Duration,
    /// An address or route that exists already is not an error. The SR-IOV delegate has always
    /// tolerated it (its VF netdev is not made fresh for the pod); the macvlan and ipvlan
    /// drivers make a fresh link and report it, as their reference does.
    pub existing_ok: bool,
}

/// Configures link `index` through `inside` (a socket in its namespace): addresses, up, and
/// routes, sent back to back; with a DAD wait before the routes when the plan asks for it.
pub async fn apply(
    inside: &Socket,
    index: u32,
    plan: Option<&IfacePlan>,
    how: Apply<'_>,
) -> Result<(), StepError> {
    let mut steps: Vec<Step> = plan
        .iter()
        .flat_map(|p| p.addresses.iter().map(|a| Step::Address(*a)))
        .collect();
    if how.set_up {
        steps.push(Step::Up);
    }
    let routes = plan
        .iter()
        .flat_map(|p| p.routes.iter().map(|r| Step::Route(r.clone().dev(index))));
    if plan.is_some_and(|p| p.wait_for_dad) {
        in_order(inside, index, steps, &how)?;
        wait_for_dad(inside, index, how.dad_timeout).await?;
        in_order(inside, index, routes.collect(), &how)
    } else {
        steps.extend(routes);
        in_order(inside, index, steps, &how)
    }
}

/// Sends `steps` back to back on one socket: the kernel handles a socket's requests in
/// order, so each sees the effect of those before it, and no reply is waited for in
/// between. The first failure (in order) is reported.
fn in_order(
    inside: &Socket,
    index: u32,
    steps: Vec<Step>,
    how: &Apply<'_>,
) -> Result<(), StepError> {
    let replies = inside.batch(steps.iter().map(|s| s.message(index)).collect());
    for (step, reply) in steps.iter().zip(replies) {
        match reply {
            Err(KernelError::Exists) if how.existing_ok && !matches!(step, Step::Up) => {}
            Err(source) => {
                return Err(StepError {
                    what: step.describe(how.ifname),
                    source,
                });
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Waits for DAD; like the reference, a link that is not operationally up when the wait
/// times out (no carrier, so DAD cannot run) is not an error.
async fn wait_for_dad(inside: &Socket, index: u32, timeout: Duration) -> Result<(), StepError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |source| StepError { what, source }
    };
    match inside.wait_for_dad(index, timeout).await {
        Ok(()) => Ok(()),
        Err(KernelError::DadTimeout(after)) => {
            let link = inside
                .link_by_index(index)
                .map_err(failed("look up link after DAD timeout"))?;
            if link.is_some_and(|l| l.oper_state == State::Up) {
                Err(failed("wait for IPv6 DAD")(KernelError::DadTimeout(after)))
            } else {
                Ok(())
            }
        }
        Err(e) => Err(failed("wait for IPv6 DAD")(e)),
    }
}

/// One request that configures the container's link.
enum Step {
    Address(IpNet),
    Up,
    /// With its output link set.
    Route(Route),
}

impl Step {
    fn message(&self, index: u32) -> (RouteNetlinkMessage, u16) {
        match self {
            Step::Address(a) => add_address_message(index, *a),
            Step::Up => set_up_message(index),
            Step::Route(r) => add_route_message(r),
        }
    }

    fn describe(&self, ifname: &str) -> String {
        match self {
            Step::Address(a) => format!("add address {a} to {ifname:?}"),
            Step::Up => format!("set {ifname:?} up"),
            Step::Route(r) => format!("add route {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::{CniVersion, NetworkResult};
    use serde_json::json;

    fn result(v: serde_json::Value) -> NetworkResult {
        NetworkResult::from_value(&v, CniVersion::V1_0_0).unwrap()
    }

    #[test]
    fn routes_take_the_first_gateway_of_their_family() {
        let r = result(json!({
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"address": "10.2.0.5/24", "gateway": "10.2.0.1"},
                {"address": "fd00::5/64", "gateway": "fd00::1"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0"},
                {"dst": "192.168.0.0/16", "gw": "10.2.0.254"},
                {"dst": "::/0", "priority": 50, "table": 100},
                {"dst": "172.16.0.0/12", "scope": 253}
            ]
        }));
        let plan = plan_iface(&r, Ipv6Dad::EnableAndWait);
        assert_eq!(plan.addresses.len(), 3);
        assert!(plan.enable_ipv6 && plan.wait_for_dad);
        let rs = &plan.routes;
        assert_eq!(rs[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(rs[0].scope, Some(RouteScope::Universe));
        assert_eq!(rs[1].gateway, Some("10.2.0.254".parse().unwrap()));
        assert_eq!(rs[2].gateway, Some("fd00::1".parse().unwrap()));
        assert_eq!((rs[2].metric, rs[2].table), (Some(50), 100));
        assert_eq!(rs[3].scope, Some(RouteScope::Link));
        assert!(rs.iter().all(|r| r.oif.is_none()));
    }

    #[test]
    fn no_gateway_means_no_dad_wait_and_device_routes() {
        let r = result(json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "fd00::5/64"}, {"address": "10.0.0.2/24", "interface": 1}],
            "routes": [{"dst": "fd01::/64"}]
        }));
        let plan = plan_iface(&r, Ipv6Dad::EnableAndWait);
        assert_eq!(plan.addresses, vec!["fd00::5/64".parse::<IpNet>().unwrap()]);
        assert!(plan.enable_ipv6);
        assert!(!plan.wait_for_dad);
        assert_eq!(plan.routes[0].gateway, None);
    }

    #[test]
    fn ipv4_only_needs_no_ipv6() {
        let r = result(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}]}),
        );
        let plan = plan_iface(&r, Ipv6Dad::EnableAndWait);
        assert!(!plan.enable_ipv6 && !plan.wait_for_dad && plan.routes.is_empty());
    }

    #[test]
    fn optimistic_dad_neither_enables_ipv6_nor_waits() {
        let r = result(json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "fd00::5/64", "gateway": "fd00::1"}],
            "routes": [{"dst": "::/0"}]
        }));
        let plan = plan_iface(&r, Ipv6Dad::Optimistic);
        assert!(!plan.enable_ipv6 && !plan.wait_for_dad);
        assert_eq!(plan.routes[0].gateway, Some("fd00::1".parse().unwrap()));
    }
}
