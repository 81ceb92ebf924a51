//! How the container's interface is configured from an IPAM result, decided before any kernel
//! call: addresses, whether IPv6 must be enabled, whether to wait for DAD, and the routes with
//! their gateways filled in. The rules are the reference plugins' (`ipam.ConfigureIface`).

use std::net::IpAddr;

use ipnet::IpNet;
use multinet_cni::NetworkResult;
use multinet_netlink::Route;
use multinet_netlink::packet::route::RouteScope;

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
pub fn plan_iface(result: &NetworkResult) -> IfacePlan {
    let mut plan = IfacePlan::default();
    let mut v4_gw: Option<IpAddr> = None;
    let mut v6_gw: Option<IpAddr> = None;
    for ip in result
        .ips
        .iter()
        .filter(|ip| ip.interface.unwrap_or(0) == 0)
    {
        plan.addresses.push(ip.address);
        if ip.address.addr().is_ipv6() {
            plan.enable_ipv6 = true;
        }
        match ip.gateway {
            Some(gw @ IpAddr::V4(_)) if v4_gw.is_none() => v4_gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6_gw.is_none() => v6_gw = Some(gw),
            _ => {}
        }
    }
    plan.wait_for_dad = v6_gw.is_some();
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
        let plan = plan_iface(&r);
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
        let plan = plan_iface(&r);
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
        let plan = plan_iface(&r);
        assert!(!plan.enable_ipv6 && !plan.wait_for_dad && plan.routes.is_empty());
    }
}
