//! The child link's RTM_NEWLINK (everything in one request), from multinet-netlink's builders.

use std::os::fd::RawFd;

use multinet_netlink::packet::link::LinkMessage;
use multinet_netlink::{
    IpvlanFlag, IpvlanSpec, MacvlanSpec, ipvlan_message, macvlan_message, set_macvlan_bcqueuelen,
};

use crate::conf::ChildKind;

/// The RTM_NEWLINK for a child of link `parent_index`, named `name`, created in the namespace
/// `netns_fd` (the handle's own when None), down.
pub fn child_message(
    kind: &ChildKind,
    name: &str,
    parent_index: u32,
    mtu: Option<u32>,
    netns_fd: Option<RawFd>,
) -> LinkMessage {
    match kind {
        ChildKind::Macvlan {
            mode,
            mac,
            bcqueuelen,
        } => {
            let spec = MacvlanSpec {
                name: name.to_owned(),
                parent_index,
                mode: *mode,
                mtu,
                mac: *mac,
            };
            let mut msg = macvlan_message(&spec, netns_fd);
            if let Some(len) = bcqueuelen {
                set_macvlan_bcqueuelen(&mut msg, *len);
            }
            msg
        }
        ChildKind::Ipvlan { mode } => {
            let spec = IpvlanSpec {
                name: name.to_owned(),
                parent_index,
                mode: *mode,
                flag: IpvlanFlag::Bridge,
                mtu,
            };
            ipvlan_message(&spec, netns_fd)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_netlink::link_mode;
    use multinet_netlink::packet::link::{
        InfoData, InfoMacVlan, LinkAttribute, LinkFlags, LinkInfo, MacVlanMode,
    };
    use multinet_netlink::{IpvlanMode, MacvlanMode};

    fn data(msg: &LinkMessage) -> &InfoData {
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => i.iter().find_map(|i| match i {
                    LinkInfo::Data(d) => Some(d),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn macvlan_message_has_bcqueuelen_and_mode_reads_back() {
        let kind = ChildKind::Macvlan {
            mode: MacvlanMode::Passthru,
            mac: None,
            bcqueuelen: Some(4096),
        };
        let msg = child_message(&kind, "net1", 3, Some(1400), Some(9));
        assert_eq!(
            data(&msg),
            &InfoData::MacVlan(vec![
                InfoMacVlan::Mode(MacVlanMode::Passthrough),
                InfoMacVlan::BcQueueLen(4096)
            ])
        );
        assert!(msg.attributes.contains(&LinkAttribute::NetNsFd(9)));
        assert!(msg.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert_eq!(link_mode(&msg).as_deref(), Some("passthru"));
        // Created down: a link is renamed after it is made, and an up link cannot be.
        assert!(!msg.header.flags.contains(LinkFlags::Up));
    }

    #[test]
    fn ipvlan_message_mode_reads_back() {
        let kind = ChildKind::Ipvlan {
            mode: IpvlanMode::L3s,
        };
        let msg = child_message(&kind, "net1", 3, None, None);
        assert_eq!(link_mode(&msg).as_deref(), Some("l3s"));
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::NetNsFd(_) | LinkAttribute::Mtu(_)))
        );
    }
}
