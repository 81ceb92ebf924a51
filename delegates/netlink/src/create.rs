//! Creating macvlan, ipvlan and veth links, directly in a target namespace.
//!
//! A link created with `IFLA_NET_NS_FD` is registered in the target namespace under its final
//! name; it never appears in the caller's namespace, so there is no name clash with host links
//! and nothing to clean there if the call fails. `IFLA_LINK` (the parent) is an index in the
//! namespace of the handle used.

use std::os::fd::RawFd;
use std::str::FromStr;

use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, IpVlanFlags, IpVlanMode, LinkAttribute,
    LinkInfo, LinkMessage, MacVlanMode,
};

use crate::error::{Error, Result};
use crate::mac::MacAddr;
use crate::wire::link_message;

/// Macvlan modes, named as in CNI configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacvlanMode {
    /// Macvlans on one parent talk to each other directly (the CNI default).
    #[default]
    Bridge,
    /// No traffic between macvlans on one parent.
    Private,
    /// Traffic between macvlans goes through the external switch.
    Vepa,
    /// One macvlan takes over the parent ("passthru").
    Passthru,
    /// Only frames from listed source MACs.
    Source,
}

/// The value `s` names in `names`; an unknown name is [`Error::Invalid`] about `what`.
fn parse_name<T: Copy>(what: &'static str, names: &[(&str, T)], s: &str) -> Result<T> {
    names
        .iter()
        .find_map(|&(name, value)| (name == s).then_some(value))
        .ok_or_else(|| Error::Invalid {
            what,
            value: s.to_owned(),
        })
}

impl FromStr for MacvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names = [
            ("bridge", Self::Bridge),
            ("private", Self::Private),
            ("vepa", Self::Vepa),
            ("passthru", Self::Passthru),
            ("source", Self::Source),
        ];
        parse_name("macvlan mode", &names, s)
    }
}

impl From<MacvlanMode> for MacVlanMode {
    fn from(m: MacvlanMode) -> Self {
        match m {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
            MacvlanMode::Source => MacVlanMode::Source,
        }
    }
}

/// Ipvlan modes, named as in CNI configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpvlanMode {
    /// Layer 2 (the CNI default).
    #[default]
    L2,
    /// Layer 3.
    L3,
    /// Layer 3 with netfilter on the parent.
    L3s,
}

impl FromStr for IpvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names = [("l2", Self::L2), ("l3", Self::L3), ("l3s", Self::L3s)];
        parse_name("ipvlan mode", &names, s)
    }
}

impl From<IpvlanMode> for IpVlanMode {
    fn from(m: IpvlanMode) -> Self {
        match m {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        }
    }
}

/// Ipvlan isolation flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpvlanFlag {
    /// Slaves talk to each other (kernel default).
    #[default]
    Bridge,
    /// No traffic between slaves.
    Private,
    /// Traffic between slaves goes through the parent's switch.
    Vepa,
}

impl FromStr for IpvlanFlag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names = [
            ("bridge", Self::Bridge),
            ("private", Self::Private),
            ("vepa", Self::Vepa),
        ];
        parse_name("ipvlan flag", &names, s)
    }
}

/// A macvlan to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanSpec {
    /// Final interface name.
    pub name: String,
    /// Parent index in the handle's namespace.
    pub parent_index: u32,
    /// Mode.
    pub mode: MacvlanMode,
    /// MTU; the parent's when None.
    pub mtu: Option<u32>,
    /// MAC; random when None.
    pub mac: Option<MacAddr>,
}

/// An ipvlan to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvlanSpec {
    /// Final interface name.
    pub name: String,
    /// Parent index in the handle's namespace.
    pub parent_index: u32,
    /// Mode.
    pub mode: IpvlanMode,
    /// Isolation flag.
    pub flag: IpvlanFlag,
    /// MTU; the parent's when None.
    pub mtu: Option<u32>,
}

/// A veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// Name of the first end.
    pub name: String,
    /// Name of the peer.
    pub peer_name: String,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the first end; random when None.
    pub mac: Option<MacAddr>,
    /// MAC of the peer; random when None.
    pub peer_mac: Option<MacAddr>,
}

/// A new link's attributes: its name, its parent (`IFLA_LINK`), then the optional MTU, MAC and
/// target namespace, then its kind and kind data.
fn new_link(
    name: &str,
    parent_index: Option<u32>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    netns_fd: Option<RawFd>,
    info: Vec<LinkInfo>,
) -> LinkMessage {
    let mut attributes = vec![LinkAttribute::IfName(name.to_owned())];
    attributes.extend(parent_index.map(LinkAttribute::Link));
    attributes.extend(mtu.map(LinkAttribute::Mtu));
    attributes.extend(mac.map(|m| LinkAttribute::Address(m.0.to_vec())));
    attributes.extend(netns_fd.map(LinkAttribute::NetNsFd));
    if !info.is_empty() {
        attributes.push(LinkAttribute::LinkInfo(info));
    }
    link_message(0, attributes)
}

/// The RTM_NEWLINK message for a macvlan; `netns_fd` is the target namespace.
pub fn macvlan_message(spec: &MacvlanSpec, netns_fd: Option<RawFd>) -> LinkMessage {
    let info = vec![
        LinkInfo::Kind(InfoKind::MacVlan),
        LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(spec.mode.into())])),
    ];
    new_link(
        &spec.name,
        Some(spec.parent_index),
        spec.mtu,
        spec.mac,
        netns_fd,
        info,
    )
}

/// The RTM_NEWLINK message for an ipvlan; `netns_fd` is the target namespace.
pub fn ipvlan_message(spec: &IpvlanSpec, netns_fd: Option<RawFd>) -> LinkMessage {
    let mut data = vec![InfoIpVlan::Mode(spec.mode.into())];
    match spec.flag {
        IpvlanFlag::Bridge => {}
        IpvlanFlag::Private => data.push(InfoIpVlan::Flags(IpVlanFlags::Private)),
        IpvlanFlag::Vepa => data.push(InfoIpVlan::Flags(IpVlanFlags::Vepa)),
    }
    let info = vec![
        LinkInfo::Kind(InfoKind::IpVlan),
        LinkInfo::Data(InfoData::IpVlan(data)),
    ];
    new_link(
        &spec.name,
        Some(spec.parent_index),
        spec.mtu,
        None,
        netns_fd,
        info,
    )
}

/// The RTM_NEWLINK message for a veth pair: the first end goes to `netns_fd`, the peer to
/// `peer_netns_fd` (None = the socket's namespace).
pub fn veth_message(
    spec: &VethSpec,
    netns_fd: Option<RawFd>,
    peer_netns_fd: Option<RawFd>,
) -> LinkMessage {
    let peer = new_link(
        &spec.peer_name,
        None,
        spec.mtu,
        spec.peer_mac,
        peer_netns_fd,
        Vec::new(),
    );
    let info = vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ];
    new_link(&spec.name, None, spec.mtu, spec.mac, netns_fd, info)
}

/// Adds the broadcast queue length (`bcqueuelen`) to a macvlan's RTM_NEWLINK.
pub fn set_macvlan_bcqueuelen(msg: &mut LinkMessage, len: u32) {
    let attr = InfoMacVlan::BcQueueLen(len);
    for a in &mut msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = a {
            for i in infos.iter_mut() {
                if let LinkInfo::Data(InfoData::MacVlan(data)) = i {
                    data.push(attr);
                    return;
                }
            }
        }
    }
}

/// The macvlan or ipvlan mode of a link message, named as in configs.
pub fn link_mode(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::MacVlan(data)) => data.iter().find_map(|d| match d {
                InfoMacVlan::Mode(m) => Some(
                    match m {
                        MacVlanMode::Bridge => "bridge",
                        MacVlanMode::Private => "private",
                        MacVlanMode::Vepa => "vepa",
                        MacVlanMode::Passthrough => "passthru",
                        MacVlanMode::Source => "source",
                        _ => "other",
                    }
                    .to_owned(),
                ),
                _ => None,
            }),
            LinkInfo::Data(InfoData::IpVlan(data)) => data.iter().find_map(|d| match d {
                InfoIpVlan::Mode(m) => Some(
                    match m {
                        IpVlanMode::L2 => "l2",
                        IpVlanMode::L3 => "l3",
                        IpVlanMode::L3S => "l3s",
                        _ => "other",
                    }
                    .to_owned(),
                ),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_link_info_has_no_mode() {
        assert_eq!(link_mode(&LinkMessage::default()), None);
    }
    use netlink_packet_route::link::{InfoIpVlan, InfoMacVlan, LinkAttribute, LinkInfo};

    fn info_data(msg: &LinkMessage) -> Option<&InfoData> {
        msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(d) => Some(d),
                _ => None,
            }),
            _ => None,
        })
    }

    #[test]
    fn parses_cni_mode_names() {
        assert_eq!(
            "passthru".parse::<MacvlanMode>().unwrap(),
            MacvlanMode::Passthru
        );
        assert_eq!(
            MacVlanMode::from(MacvlanMode::Passthru),
            MacVlanMode::Passthrough
        );
        assert!("passthrough".parse::<MacvlanMode>().is_err());
        assert_eq!("l3s".parse::<IpvlanMode>().unwrap(), IpvlanMode::L3s);
        assert!("L2".parse::<IpvlanMode>().is_err());
        assert_eq!("vepa".parse::<IpvlanFlag>().unwrap(), IpvlanFlag::Vepa);
        for (err, what, value) in [
            (
                "passthrough".parse::<MacvlanMode>().unwrap_err(),
                "macvlan mode",
                "passthrough",
            ),
            ("L2".parse::<IpvlanMode>().unwrap_err(), "ipvlan mode", "L2"),
            (
                "source".parse::<IpvlanFlag>().unwrap_err(),
                "ipvlan flag",
                "source",
            ),
        ] {
            assert!(
                matches!(&err, Error::Invalid { what: w, value: v } if *w == what && v == value),
                "{err:?}"
            );
        }
    }

    #[test]
    fn macvlan_message_carries_everything_in_one_request() {
        let spec = MacvlanSpec {
            name: "net1".into(),
            parent_index: 4,
            mode: MacvlanMode::Vepa,
            mtu: Some(1400),
            mac: Some("02:11:22:33:44:55".parse().unwrap()),
        };
        let msg = macvlan_message(&spec, Some(7));
        let a = &msg.attributes;
        assert!(a.contains(&LinkAttribute::IfName("net1".into())));
        assert!(a.contains(&LinkAttribute::Link(4)));
        assert!(a.contains(&LinkAttribute::Mtu(1400)));
        assert!(a.contains(&LinkAttribute::Address(vec![
            2, 0x11, 0x22, 0x33, 0x44, 0x55
        ])));
        assert!(a.contains(&LinkAttribute::NetNsFd(7)));
        assert_eq!(
            info_data(&msg),
            Some(&InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Vepa
            )]))
        );
    }

    #[test]
    fn ipvlan_message_sets_mode_and_flag() {
        let spec = IpvlanSpec {
            name: "net2".into(),
            parent_index: 2,
            mode: IpvlanMode::L3,
            flag: IpvlanFlag::Private,
            mtu: None,
        };
        let msg = ipvlan_message(&spec, None);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::NetNsFd(_)))
        );
        assert_eq!(
            info_data(&msg),
            Some(&InfoData::IpVlan(vec![
                InfoIpVlan::Mode(IpVlanMode::L3),
                InfoIpVlan::Flags(IpVlanFlags::Private)
            ]))
        );
    }

    #[test]
    fn veth_peer_gets_its_own_namespace() {
        let spec = VethSpec {
            name: "a".into(),
            peer_name: "b".into(),
            mtu: Some(9000),
            mac: None,
            peer_mac: None,
        };
        let msg = veth_message(&spec, Some(5), Some(6));
        assert!(msg.attributes.contains(&LinkAttribute::NetNsFd(5)));
        let Some(InfoData::Veth(InfoVeth::Peer(peer))) = info_data(&msg) else {
            panic!("no veth peer in {msg:?}");
        };
        assert!(peer.attributes.contains(&LinkAttribute::IfName("b".into())));
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(6)));
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(9000)));
    }
}
