//! Looking links up and changing their basic settings.

use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, Prop, State,
};

use crate::mac::MacAddr;

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (unique within its namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address (6 bytes for Ethernet; empty when the link has none).
    pub address: Vec<u8>,
    /// MTU in bytes.
    pub mtu: u32,
    /// `IFLA_INFO_KIND` ("macvlan", "veth", ...); None for plain hardware interfaces.
    pub kind: Option<String>,
    /// `IFF_*` flags.
    pub flags: LinkFlags,
    /// Operational state.
    pub oper_state: State,
    /// Index of the controller (bridge, bond) it is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent (macvlan/ipvlan/VLAN) or the veth peer; with
    /// [`Link::link_netnsid`] set, an index in another namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the namespace id of the parent or peer, when it lives elsewhere.
    pub link_netnsid: Option<i32>,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
    /// Number of VFs, for a PF that reports it.
    pub num_vf: Option<u32>,
    /// Alternative names (`IFLA_PROP_LIST`); a VF moved into a pod keeps its host name here.
    pub altnames: Vec<String>,
}

impl Link {
    /// The Ethernet MAC, when the hardware address has 6 bytes.
    pub fn mac(&self) -> Option<MacAddr> {
        MacAddr::from_slice(&self.address)
    }

    /// Administratively up (IFF_UP).
    pub fn is_up(&self) -> bool {
        self.flags.contains(LinkFlags::Up)
    }

    /// Reads a link from an RTM_NEWLINK message.
    pub fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            address: Vec::new(),
            mtu: 0,
            kind: None,
            flags: msg.header.flags,
            oper_state: State::Unknown,
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            num_vf: None,
            altnames: Vec::new(),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.address = a.clone(),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::OperState(s) => link.oper_state = *s,
                LinkAttribute::Controller(c) => link.master = Some(*c),
                LinkAttribute::Link(l) => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::NumVf(n) => link.num_vf = Some(*n),
                LinkAttribute::PropList(props) => {
                    link.altnames = props
                        .iter()
                        .filter_map(|p| match p {
                            Prop::AltIfName(n) => Some(n.clone()),
                            _ => None,
                        })
                        .collect();
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(k)),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

fn kind_name(kind: &InfoKind) -> String {
    kind.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{InfoData, InfoMacVlan, MacVlanMode};

    #[test]
    fn reads_link_attributes() {
        let mut msg = LinkMessage::default();
        msg.header.index = 9;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("net1".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Link(3),
            LinkAttribute::Controller(5),
            LinkAttribute::IfAlias("pod-a".into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Bridge,
                )])),
            ]),
        ];
        let link = Link::from_message(&msg);
        assert_eq!(link.index, 9);
        assert_eq!(link.name, "net1");
        assert_eq!(link.mac().unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(link.mtu, 1400);
        assert_eq!(link.kind.as_deref(), Some("macvlan"));
        assert_eq!(link.link, Some(3));
        assert_eq!(link.master, Some(5));
        assert_eq!(link.alias.as_deref(), Some("pod-a"));
        assert!(link.is_up());
    }
}
