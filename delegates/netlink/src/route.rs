//! Routes: add, delete, list, default routes per family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

/// The main routing table.
pub const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// IP version of a route or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    pub(crate) fn address_family(self) -> AddressFamily {
        match self {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }

    /// The default destination, 0.0.0.0/0 or ::/0.
    pub fn default_destination(self) -> IpNet {
        match self {
            Family::V4 => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            Family::V6 => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        }
        .unwrap_or_default()
    }
}

/// A unicast route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; 0.0.0.0/0 or ::/0 for a default route.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output link index.
    pub oif: Option<u32>,
    /// Metric (priority); the kernel's default when None.
    pub metric: Option<u32>,
    /// Routing table.
    pub table: u32,
    /// Scope; None picks link scope for IPv4 routes without gateway, universe otherwise.
    pub scope: Option<RouteScope>,
    /// Protocol; `Unspec` is sent as `boot` on add (like `ip route add`) and matches any
    /// protocol on delete.
    pub protocol: RouteProtocol,
    /// Preferred source address.
    pub source: Option<IpAddr>,
}

impl Route {
    /// A route to `destination` in the main table.
    pub fn new(destination: IpNet) -> Self {
        Route {
            destination: destination.trunc(),
            gateway: None,
            oif: None,
            metric: None,
            table: MAIN_TABLE,
            scope: None,
            protocol: RouteProtocol::Unspec,
            source: None,
        }
    }

    /// A default route of `family` in the main table.
    pub fn default_route(family: Family) -> Self {
        Self::new(family.default_destination())
    }

    /// With next hop `gateway`.
    pub fn via(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Through link `oif`.
    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    /// With metric `metric`.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// The IP version.
    pub fn family(&self) -> Family {
        Family::of(self.destination.addr())
    }

    /// True for 0.0.0.0/0 and ::/0.
    pub fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }

    /// Reads a route from an RTM_NEWROUTE message; None for other families.
    pub fn from_message(msg: &RouteMessage) -> Option<Self> {
        let family = match msg.header.address_family {
            AddressFamily::Inet => Family::V4,
            AddressFamily::Inet6 => Family::V6,
            _ => return None,
        };
        let mut route = Route::default_route(family);
        route.table = u32::from(msg.header.table);
        route.scope = Some(msg.header.scope);
        route.protocol = msg.header.protocol;
        let mut destination = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => destination = route_ip(a),
                RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
                RouteAttribute::PrefSource(a) => route.source = route_ip(a),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Priority(p) => route.metric = Some(*p),
                RouteAttribute::Table(t) => route.table = *t,
                _ => {}
            }
        }
        if let Some(ip) = destination {
            route.destination = IpNet::new(ip, msg.header.destination_prefix_length).ok()?;
        }
        Some(route)
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev {oif}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(ip) => RouteAddress::Inet(ip),
        IpAddr::V6(ip) => RouteAddress::Inet6(ip),
    }
}

/// Whether a message is for adding or deleting: deletion leaves unset fields as wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    /// RTM_NEWROUTE.
    Add,
    /// RTM_DELROUTE.
    Delete,
}

/// The RTM_NEWROUTE / RTM_DELROUTE message for `route`.
pub fn route_message(route: &Route, op: RouteOp) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let family = route.family();
    msg.header.address_family = family.address_family();
    msg.header.destination_prefix_length = route.destination.prefix_len();
    msg.header.kind = match op {
        RouteOp::Add => RouteType::Unicast,
        RouteOp::Delete => RouteType::Unspec,
    };
    msg.header.protocol = match (op, route.protocol) {
        (RouteOp::Add, RouteProtocol::Unspec) => RouteProtocol::Boot,
        (_, p) => p,
    };
    msg.header.scope = match (op, route.scope) {
        (_, Some(scope)) => scope,
        (RouteOp::Delete, None) => RouteScope::NoWhere,
        (RouteOp::Add, None) if family == Family::V4 && route.gateway.is_none() => RouteScope::Link,
        (RouteOp::Add, None) => RouteScope::Universe,
    };
    if let Ok(table) = u8::try_from(route.table) {
        msg.header.table = table;
    } else {
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes.push(RouteAttribute::Table(route.table));
    }
    if route.destination.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_address(
                route.destination.addr(),
            )));
    }
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gw)));
    }
    if let Some(src) = route.source {
        msg.attributes
            .push(RouteAttribute::PrefSource(route_address(src)));
    }
    if let Some(oif) = route.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(metric) = route.metric {
        msg.attributes.push(RouteAttribute::Priority(metric));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_message_for_default_route() {
        let route = Route::default_route(Family::V4)
            .via("10.0.0.1".parse().unwrap())
            .dev(3);
        let msg = route_message(&route, RouteOp::Add);
        assert_eq!(msg.header.destination_prefix_length, 0);
        assert_eq!(msg.header.scope, RouteScope::Universe);
        assert_eq!(msg.header.protocol, RouteProtocol::Boot);
        assert_eq!(msg.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        assert!(msg.attributes.contains(&RouteAttribute::Oif(3)));
        assert_eq!(Route::from_message(&msg).unwrap().gateway, route.gateway);
    }

    #[test]
    fn device_route_gets_link_scope_on_ipv4_only() {
        let v4 = Route::new("10.1.0.0/16".parse().unwrap()).dev(2);
        assert_eq!(
            route_message(&v4, RouteOp::Add).header.scope,
            RouteScope::Link
        );
        let v6 = Route::new("fd00::/64".parse().unwrap()).dev(2);
        assert_eq!(
            route_message(&v6, RouteOp::Add).header.scope,
            RouteScope::Universe
        );
    }

    #[test]
    fn delete_leaves_unset_fields_as_wildcards() {
        let route = Route::default_route(Family::V6);
        let msg = route_message(&route, RouteOp::Delete);
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert_eq!(msg.header.protocol, RouteProtocol::Unspec);
        assert_eq!(msg.header.kind, RouteType::Unspec);
    }

    #[test]
    fn round_trips_through_a_message() {
        let mut route = Route::new("192.168.7.9/24".parse().unwrap())
            .via("192.168.1.1".parse().unwrap())
            .dev(5)
            .metric(100);
        route.table = 1000;
        assert_eq!(
            route.destination.to_string(),
            "192.168.7.0/24",
            "host bits are dropped"
        );
        let mut back = Route::from_message(&route_message(&route, RouteOp::Add)).unwrap();
        assert_eq!(back.protocol, RouteProtocol::Boot);
        back.protocol = RouteProtocol::Unspec;
        back.scope = None;
        assert_eq!(back, route);
        assert_eq!(
            route.to_string(),
            "192.168.7.0/24 via 192.168.1.1 dev 5 metric 100 table 1000"
        );
    }
}
