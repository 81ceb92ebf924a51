//! CHECK: compares what the container has with what prevResult says it should have. The
//! comparison is pure; the caller reads the kernel state into [`Observed`].

use ipnet::IpNet;
use multinet_cni::NetworkResult;
use multinet_netlink::{MacAddr, Route};

/// The container's interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    /// `IFLA_INFO_KIND`.
    pub kind: Option<String>,
    /// The macvlan or ipvlan mode, as written in configs.
    pub mode: Option<String>,
    pub mac: Option<MacAddr>,
    /// Administratively up.
    pub up: bool,
}

/// What CHECK found in the container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// None when there is no interface named CNI_IFNAME.
    pub link: Option<ObservedLink>,
    /// Addresses on the interface.
    pub addresses: Vec<IpNet>,
    /// Routes of the tables prevResult mentions (and the main table).
    pub routes: Vec<Route>,
}

/// What the interface should be.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedLink<'a> {
    pub ifname: &'a str,
    pub kind: &'a str,
    pub mode: &'a str,
}

/// The index of the prevResult interface named `ifname` in sandbox `netns`.
pub fn find_interface(prev: &NetworkResult, ifname: &str, netns: &str) -> Result<usize, String> {
    prev.interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.as_deref() == Some(netns))
        .ok_or_else(|| format!("prevResult has no interface {ifname:?} with sandbox {netns:?}"))
}

/// Every difference between prevResult (for interface `index`) and the container; empty
/// when they agree. State added by later plugins (more addresses, more routes) is tolerated.
pub fn compare(
    expected: ExpectedLink<'_>,
    prev: &NetworkResult,
    index: usize,
    observed: &Observed,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let name = expected.ifname;
    let Some(link) = &observed.link else {
        diffs.push(format!("interface {name:?} not found in the container"));
        return diffs;
    };
    if link.kind.as_deref() != Some(expected.kind) {
        diffs.push(format!(
            "interface {name:?} is of kind {}, expected {}",
            link.kind.as_deref().unwrap_or("(none)"),
            expected.kind
        ));
    } else if link.mode.as_deref() != Some(expected.mode) {
        diffs.push(format!(
            "interface {name:?} has {} mode {}, expected {}",
            expected.kind,
            link.mode.as_deref().unwrap_or("(unknown)"),
            expected.mode
        ));
    }
    if !link.up {
        diffs.push(format!("interface {name:?} is down"));
    }
    if let Some(want) = prev.interfaces.get(index).and_then(|i| i.mac.as_deref()) {
        let have = link.mac.map(|m| m.to_string());
        let same = match (want.parse::<MacAddr>(), link.mac) {
            (Ok(w), Some(h)) => w == h,
            _ => false,
        };
        if !same {
            diffs.push(format!(
                "interface {name:?} has MAC {}, prevResult says {want}",
                have.as_deref().unwrap_or("(none)")
            ));
        }
    }
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == index))
    {
        let addr = ip.address;
        if !observed.addresses.contains(&addr) {
            diffs.push(format!("address {addr} missing on interface {name:?}"));
            continue;
        }
        let net = addr.trunc();
        if addr.prefix_len() < addr.max_prefix_len()
            && !observed
                .routes
                .iter()
                .any(|r| r.destination == net && r.table == multinet_netlink::MAIN_TABLE)
        {
            diffs.push(format!(
                "route to the subnet {net} of address {addr} missing"
            ));
        }
    }
    for want in &prev.routes {
        let table = want.table.unwrap_or(multinet_netlink::MAIN_TABLE);
        let dst = want.dst.trunc();
        let found = observed.routes.iter().any(|r| {
            r.destination == dst
                && r.table == table
                && want.gw.is_none_or(|gw| r.gateway == Some(gw))
        });
        if !found {
            let via = want.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            let tab = want
                .table
                .map(|t| format!(" table {t}"))
                .unwrap_or_default();
            diffs.push(format!("route {dst}{via}{tab} missing"));
        }
    }
    diffs
}

/// The routing tables CHECK must read: main, plus any prevResult names.
pub fn tables_to_read(prev: &NetworkResult) -> Vec<u32> {
    let mut tables = vec![multinet_netlink::MAIN_TABLE];
    for t in prev.routes.iter().filter_map(|r| r.table) {
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::CniVersion;
    use serde_json::json;

    fn prev() -> NetworkResult {
        NetworkResult::from_value(
            &json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"net1","mac":"02:00:00:00:00:01","sandbox":"/run/netns/a"}],
                "ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0},
                       {"address":"fd00::2/64","interface":0}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"},{"dst":"192.168.0.0/16","table":100}]}),
            CniVersion::V1_0_0,
        )
        .unwrap()
    }

    fn good() -> Observed {
        let r = |d: &str, gw: Option<&str>, table: u32| {
            let mut r = Route::new(d.parse().unwrap());
            if let Some(g) = gw {
                r = r.via(g.parse().unwrap());
            }
            r.table = table;
            r
        };
        Observed {
            link: Some(ObservedLink {
                kind: Some("macvlan".into()),
                mode: Some("bridge".into()),
                mac: Some("02:00:00:00:00:01".parse().unwrap()),
                up: true,
            }),
            addresses: vec![
                "10.0.0.2/24".parse().unwrap(),
                "fd00::2/64".parse().unwrap(),
                "10.9.9.9/8".parse().unwrap(),
            ],
            routes: vec![
                r("10.0.0.0/24", None, 254),
                r("fd00::/64", None, 254),
                r("0.0.0.0/0", Some("10.0.0.1"), 254),
                r("192.168.0.0/16", None, 100),
                r("10.0.0.0/8", None, 254),
            ],
        }
    }

    const EXP: ExpectedLink<'static> = ExpectedLink {
        ifname: "net1",
        kind: "macvlan",
        mode: "bridge",
    };

    #[test]
    fn matching_state_has_no_differences_and_extras_are_tolerated() {
        assert_eq!(compare(EXP, &prev(), 0, &good()), Vec::<String>::new());
        assert_eq!(tables_to_read(&prev()), vec![254, 100]);
    }

    #[test]
    fn finds_interface_by_name_and_sandbox() {
        assert_eq!(find_interface(&prev(), "net1", "/run/netns/a"), Ok(0));
        assert!(find_interface(&prev(), "net1", "/run/netns/b").is_err());
        assert!(find_interface(&prev(), "net2", "/run/netns/a").is_err());
    }

    #[test]
    fn every_difference_is_reported() {
        let mut o = good();
        o.link = Some(ObservedLink {
            kind: Some("macvlan".into()),
            mode: Some("vepa".into()),
            mac: Some("02:00:00:00:00:09".parse().unwrap()),
            up: false,
        });
        o.addresses.retain(|a| a.addr().is_ipv4());
        o.routes
            .retain(|r| r.table != 100 && !r.destination.addr().is_unspecified());
        let d = compare(EXP, &prev(), 0, &o);
        assert_eq!(d.len(), 6, "{d:?}");
        assert!(d[0].contains("mode vepa"));
        assert!(d[1].contains("is down"));
        assert!(d[2].contains("MAC 02:00:00:00:00:09"));
        assert!(d[3].contains("fd00::2/64"));
        assert!(d[4].contains("0.0.0.0/0 via 10.0.0.1"));
        assert!(d[5].contains("table 100"));
    }

    #[test]
    fn wrong_kind_missing_link_gateway_and_subnet_route() {
        let mut o = good();
        o.link.as_mut().unwrap().kind = Some("veth".into());
        assert!(compare(EXP, &prev(), 0, &o)[0].contains("kind veth"));
        o.link = None;
        assert!(compare(EXP, &prev(), 0, &o)[0].contains("not found"));

        let mut o = good();
        o.routes[2].gateway = Some("10.0.0.254".parse().unwrap());
        o.routes.remove(0);
        let d = compare(EXP, &prev(), 0, &o);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("subnet 10.0.0.0/24"));
    }
}
