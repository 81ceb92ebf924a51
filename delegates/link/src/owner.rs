//! Whether the link named CNI_IFNAME in the container is one this driver made for this
//! container, so DEL may delete it. Pure: the caller reads the link and prevResult.
//!
//! A name proves nothing: the container, or another plugin, may hold a link of that name
//! (and an ADD that failed because the name was taken is followed by a DEL). The kind must be
//! ours, and then either multinet's tag for this container (set at creation) or the MAC
//! prevResult recorded for the interface must match. The tag wins over the MAC (a pod may
//! change its MAC); a link tagged for another container is never ours; the MAC alone serves
//! for links made before tagging existed. An ipvlan has its master's MAC, shared by every
//! ipvlan on that master, so for ipvlan the tag is what really tells.

use multinet_cni::NetworkResult;
use multinet_netlink::{Link, MacAddr, is_multinet_tag};

/// What was recorded about the link this driver made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// `IFLA_INFO_KIND`: macvlan or ipvlan.
    pub kind: &'a str,
    /// [`multinet_netlink::link_tag`] of the container.
    pub tag: &'a str,
    /// The MAC prevResult recorded for the interface, when there is one.
    pub mac: Option<MacAddr>,
}

/// The verdict on a link found under our name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// Not ours, and why (for the log).
    Foreign(String),
}

/// Judges `found` against what was recorded.
pub fn judge(expected: Expected<'_>, found: &Link) -> Ownership {
    let name = &found.name;
    if found.kind.as_deref() != Some(expected.kind) {
        return Ownership::Foreign(format!(
            "{name:?} is of kind {}, not {}",
            found.kind.as_deref().unwrap_or("(none)"),
            expected.kind
        ));
    }
    match found.alias.as_deref() {
        Some(alias) if alias == expected.tag => return Ownership::Ours,
        Some(alias) if is_multinet_tag(alias) => {
            return Ownership::Foreign(format!(
                "{name:?} is tagged {alias:?}, not {:?}",
                expected.tag
            ));
        }
        _ => {}
    }
    match (expected.mac, found.mac()) {
        (Some(want), Some(have)) if want == have => Ownership::Ours,
        (Some(want), have) => Ownership::Foreign(format!(
            "{name:?} has MAC {}, prevResult recorded {want}, and no tag {:?}",
            have.map_or_else(|| "(none)".to_owned(), |m| m.to_string()),
            expected.tag
        )),
        (None, _) => Ownership::Foreign(format!(
            "{name:?} has no tag {:?} and there is no prevResult MAC to match",
            expected.tag
        )),
    }
}

/// The MAC prevResult recorded for interface `ifname` in sandbox `netns`; None without such an
/// interface or with an unreadable MAC (then only the tag can prove ownership).
pub fn recorded_mac(prev: Option<&NetworkResult>, ifname: &str, netns: &str) -> Option<MacAddr> {
    prev?
        .interfaces
        .iter()
        .find(|i| i.name == ifname && i.sandbox.as_deref() == Some(netns))?
        .mac
        .as_deref()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::Interface;
    use multinet_netlink::packet::link::{LinkFlags, State};

    const TAG: &str = "multinet:abc";

    fn link(kind: Option<&str>, mac: [u8; 6], alias: Option<&str>) -> Link {
        Link {
            index: 7,
            name: "net1".into(),
            address: mac.to_vec(),
            mtu: 1500,
            kind: kind.map(str::to_owned),
            flags: LinkFlags::empty(),
            oper_state: State::Up,
            master: None,
            link: None,
            link_netnsid: None,
            alias: alias.map(str::to_owned),
            num_vf: None,
            altnames: Vec::new(),
        }
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn expect(mac: Option<[u8; 6]>) -> Expected<'static> {
        Expected {
            kind: crate::MACVLAN_KIND,
            tag: TAG,
            mac: mac.map(MacAddr),
        }
    }

    fn foreign_naming(verdict: Ownership, what: &str) {
        match verdict {
            Ownership::Foreign(why) => assert!(why.contains(what), "{why}"),
            Ownership::Ours => panic!("judged ours, expected foreign ({what})"),
        }
    }

    #[test]
    fn our_tag_proves_it_with_or_without_a_mac() {
        let ours = link(Some("macvlan"), MAC, Some(TAG));
        assert_eq!(judge(expect(None), &ours), Ownership::Ours);
        assert_eq!(judge(expect(Some(MAC)), &ours), Ownership::Ours);
        // The pod changed the MAC of our link: still ours.
        assert_eq!(judge(expect(Some(OTHER_MAC)), &ours), Ownership::Ours);
    }

    #[test]
    fn the_recorded_mac_proves_an_untagged_link() {
        let old = link(Some("macvlan"), MAC, None);
        assert_eq!(judge(expect(Some(MAC)), &old), Ownership::Ours);
        let aliased = link(Some("macvlan"), MAC, Some("set by the pod"));
        assert_eq!(judge(expect(Some(MAC)), &aliased), Ownership::Ours);
    }

    #[test]
    fn another_kind_is_never_ours() {
        for alias in [None, Some(TAG)] {
            let veth = link(Some("veth"), MAC, alias);
            foreign_naming(judge(expect(Some(MAC)), &veth), "kind veth");
            let hw = link(None, MAC, alias);
            foreign_naming(judge(expect(Some(MAC)), &hw), "kind (none)");
        }
        let ipvlan = link(Some("ipvlan"), MAC, Some(TAG));
        foreign_naming(judge(expect(Some(MAC)), &ipvlan), "not macvlan");
    }

    #[test]
    fn ipvlan_is_judged_by_its_own_kind() {
        let ipvlan = Expected {
            kind: crate::IPVLAN_KIND,
            ..expect(Some(MAC))
        };
        assert_eq!(
            judge(ipvlan, &link(Some("ipvlan"), MAC, Some(TAG))),
            Ownership::Ours
        );
        // Every ipvlan on a master has the master's MAC: a tag for another container
        // outweighs a MAC that matches.
        let theirs = link(Some("ipvlan"), MAC, Some("multinet:other"));
        foreign_naming(judge(ipvlan, &theirs), "multinet:other");
        foreign_naming(
            judge(ipvlan, &link(Some("macvlan"), MAC, Some(TAG))),
            "not ipvlan",
        );
    }

    #[test]
    fn a_foreign_macvlan_named_like_ours_is_left() {
        foreign_naming(
            judge(expect(Some(MAC)), &link(Some("macvlan"), OTHER_MAC, None)),
            "02:00:00:00:00:02",
        );
        foreign_naming(
            judge(expect(None), &link(Some("macvlan"), MAC, None)),
            "no prevResult MAC",
        );
        // Tagged for another container: not ours even with the recorded MAC.
        let theirs = link(Some("macvlan"), MAC, Some("multinet:other"));
        foreign_naming(judge(expect(Some(MAC)), &theirs), "multinet:other");
    }

    #[test]
    fn the_mac_comes_from_our_interface_in_our_sandbox() {
        let iface = |name: &str, mac: Option<&str>, sandbox: Option<&str>| Interface {
            name: name.into(),
            mac: mac.map(str::to_owned),
            sandbox: sandbox.map(str::to_owned),
            ..Interface::default()
        };
        let prev = NetworkResult {
            interfaces: vec![
                iface("net1", Some("02:00:00:00:00:09"), None),
                iface("net1", Some("02:00:00:00:00:08"), Some("/run/netns/other")),
                iface("eth0", Some("02:00:00:00:00:07"), Some("/run/netns/pod")),
                iface("net1", Some("02:00:00:00:00:01"), Some("/run/netns/pod")),
            ],
            ..NetworkResult::default()
        };
        assert_eq!(
            recorded_mac(Some(&prev), "net1", "/run/netns/pod"),
            Some(MacAddr(MAC))
        );
        assert_eq!(recorded_mac(Some(&prev), "net2", "/run/netns/pod"), None);
        assert_eq!(recorded_mac(None, "net1", "/run/netns/pod"), None);
        let garbled = NetworkResult {
            interfaces: vec![iface("net1", Some("not a mac"), Some("/run/netns/pod"))],
            ..NetworkResult::default()
        };
        assert_eq!(recorded_mac(Some(&garbled), "net1", "/run/netns/pod"), None);
    }
}
