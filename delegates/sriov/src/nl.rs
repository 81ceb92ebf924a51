//! A small synchronous rtnetlink client for what the delegate needs: read a link (with the
//! PF's VF list), set flags/MAC/MTU/name, move a link to another netns (with its new name in
//! the same request), delete an altname, program one VF setting on a PF, add addresses and
//! routes.
//!
//! A socket talks to the netns it was created in, so one [`Netlink`] per namespace is enough;
//! [`crate::netns::netlink_in`] makes one inside another namespace without moving the caller.
//! Requests are built as `ip` builds them (RTM_NEWLINK, NLM_F_REQUEST|NLM_F_ACK), so the VF
//! requests can be compared byte for byte with `ip link set PF vf N ...`.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo, Prop, VfInfo,
    VfInfoLinkState, VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan,
    VfLinkState as NlVfLinkState, VfVlan, VfVlanInfo, VlanProtocol,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::config::{MacAddr, VfLinkState, VlanProto};
use crate::vf::{PfVfState, VfSetting};

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub altnames: Vec<String>,
    /// ARPHRD_* of the link.
    pub link_type: u16,
    /// The PF's VFs; None when the link reports no VF list (not a PF, or a veth standing in).
    pub vfs: Option<Vec<PfVfState>>,
}

/// A netlink socket bound to the netns it was created in.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// Serialises `msg` as a request with the given flags; sequence and port are left 0 so the
/// bytes depend only on the request.
pub fn encode_request(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// The RTM_NEWLINK request that programs one VF setting on the PF with index `pf_index`,
/// attribute for attribute what `ip link set dev PF vf N <setting>` sends.
pub fn vf_request(pf_index: u32, setting: &VfSetting) -> RouteNetlinkMessage {
    let info = match *setting {
        // ip sends the old IFLA_VF_VLAN for 802.1Q (every kernel and driver knows it) and the
        // VLAN list only for 802.1ad.
        VfSetting::Vlan {
            vf,
            vlan,
            qos,
            proto: VlanProto::Dot1Q,
        } => VfInfo::Vlan(VfInfoVlan::new(vf, vlan.into(), qos.into())),
        VfSetting::Vlan {
            vf,
            vlan,
            qos,
            proto: VlanProto::Dot1AD,
        } => VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
            vf,
            vlan.into(),
            qos.into(),
            VlanProtocol::Ieee8021Ad,
        ))]),
        VfSetting::Mac { vf, mac } => VfInfo::Mac(VfInfoMac::new(vf, &mac.0)),
        VfSetting::Rate { vf, min, max } => VfInfo::Rate(VfInfoRate::new(vf, min, max)),
        VfSetting::Spoofchk { vf, on } => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
        VfSetting::Trust { vf, on } => VfInfo::Trust(VfInfoTrust::new(vf, on)),
        VfSetting::LinkState { vf, state } => VfInfo::LinkState(VfInfoLinkState::new(
            vf,
            NlVfLinkState::from(state.as_u32()),
        )),
    };
    let mut msg = LinkMessage::default();
    msg.header.index = pf_index;
    msg.attributes
        .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]));
    RouteNetlinkMessage::NewLink(msg)
}

/// The bytes of [`vf_request`] (sequence 0, port 0).
pub fn vf_request_bytes(pf_index: u32, setting: &VfSetting) -> Vec<u8> {
    encode_request(vf_request(pf_index, setting), NLM_F_REQUEST | NLM_F_ACK, 0)
}

fn parse_vf(info: &LinkVfInfo) -> Option<PfVfState> {
    let mut st = PfVfState::default();
    let mut index = None;
    for attr in &info.0 {
        match attr {
            VfInfo::Mac(m) => {
                index = Some(m.vf_id);
                st.admin_mac = MacAddr::from_bytes(&m.mac).unwrap_or_default();
            }
            VfInfo::Vlan(v) => {
                st.vlan = u16::try_from(v.vlan_id).unwrap_or(0);
                st.qos = u8::try_from(v.qos).unwrap_or(0);
            }
            VfInfo::VlanList(list) => {
                if let Some(VfVlan::Info(v)) = list.first() {
                    st.vlan = u16::try_from(v.vlan_id).unwrap_or(0);
                    st.qos = u8::try_from(v.qos).unwrap_or(0);
                    st.proto = VlanProto::from_ethertype(u16::from(v.protocol)).unwrap_or_default();
                }
            }
            VfInfo::Rate(r) => {
                st.min_tx_rate = r.min_tx_rate;
                st.max_tx_rate = r.max_tx_rate;
            }
            VfInfo::SpoofCheck(s) => st.spoofchk = Some(s.enabled),
            VfInfo::Trust(t) => st.trust = Some(t.enabled),
            VfInfo::LinkState(l) => st.link_state = VfLinkState::from_u32(u32::from(l.state)),
            _ => {}
        }
    }
    st.vf = index?;
    Some(st)
}

fn parse_link(msg: &LinkMessage) -> LinkInfo {
    let mut link = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        altnames: Vec::new(),
        link_type: u16::from(msg.header.link_layer_type),
        vfs: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = MacAddr::from_bytes(a),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::PropList(props) => {
                link.altnames = props
                    .iter()
                    .filter_map(|p| match p {
                        Prop::AltIfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
            }
            LinkAttribute::VfInfoList(list) => {
                link.vfs = Some(list.iter().filter_map(parse_vf).collect());
            }
            _ => {}
        }
    }
    link
}

impl Netlink {
    /// A socket in the calling thread's netns.
    pub fn new() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and collects the replies until its ACK (or error, or the end of a
    /// dump); a kernel error comes back as the matching `io::Error` (ENODEV, EEXIST, ...).
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = encode_request(msg, flags | NLM_F_REQUEST | NLM_F_ACK, seq);
        self.socket.send(&buf, 0)?;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let packet = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| io::Error::other(format!("bad netlink reply: {e}")))?;
                let len = packet.header.length as usize;
                if len == 0 {
                    return Err(io::Error::other("netlink reply of length 0"));
                }
                offset += (len + 3) & !3;
                if packet.header.sequence_number != seq {
                    continue;
                }
                match packet.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    fn get_link(&mut self, mut msg: LinkMessage, with_vfs: bool) -> io::Result<Option<LinkInfo>> {
        if with_vfs {
            msg.attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        }
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link named exactly `name` (an altname that matches does not count).
    pub fn link_by_name(&mut self, name: &str, with_vfs: bool) -> io::Result<Option<LinkInfo>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        Ok(self.get_link(msg, with_vfs)?.filter(|l| l.name == name))
    }

    pub fn link_by_index(&mut self, index: u32, with_vfs: bool) -> io::Result<Option<LinkInfo>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg, with_vfs)
    }

    fn set_link(&mut self, index: u32, attrs: Vec<LinkAttribute>) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = attrs;
        self.request(RouteNetlinkMessage::NewLink(msg), 0).map(drop)
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        self.request(RouteNetlinkMessage::NewLink(msg), 0).map(drop)
    }

    pub fn set_mac(&mut self, index: u32, mac: MacAddr) -> io::Result<()> {
        self.set_link(index, vec![LinkAttribute::Address(mac.0.to_vec())])
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        self.set_link(index, vec![LinkAttribute::Mtu(mtu)])
    }

    pub fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        self.set_link(index, vec![LinkAttribute::IfName(name.to_owned())])
    }

    /// Moves the link into the netns open as `netns_fd`, named `name` there: one request, so
    /// the link never shows up under a temporary name in either namespace. The kernel moves
    /// first and renames second: on EEXIST the link may have arrived under its old name.
    pub fn move_to_netns(&mut self, index: u32, netns_fd: RawFd, name: &str) -> io::Result<()> {
        self.set_link(
            index,
            vec![
                LinkAttribute::NetNsFd(netns_fd),
                LinkAttribute::IfName(name.to_owned()),
            ],
        )
    }

    pub fn del_altname(&mut self, index: u32, altname: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::PropList(vec![Prop::AltIfName(
                altname.to_owned(),
            )]));
        self.request(RouteNetlinkMessage::DelLinkProp(msg), 0)
            .map(drop)
    }

    /// Programs one VF setting on a PF.
    pub fn set_vf(&mut self, pf_index: u32, setting: &VfSetting) -> io::Result<()> {
        self.request(vf_request(pf_index, setting), 0).map(drop)
    }

    pub fn add_address(&mut self, index: u32, addr: &IpNet) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(&addr.addr());
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.addr()));
        msg.attributes.push(AddressAttribute::Address(addr.addr()));
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Adds a route via `gw` (or on-link when None) out of link `index` in the main table.
    pub fn add_route(&mut self, index: u32, dst: &IpNet, gw: Option<IpAddr>) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(&dst.addr());
        msg.header.destination_prefix_length = dst.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.header.kind = RouteType::Unicast;
        if dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    dst.network(),
                )));
        }
        if let Some(gw) = gw {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_requests_have_the_expected_layout() {
        let b = vf_request_bytes(7, &VfSetting::Spoofchk { vf: 2, on: true });
        // nlmsghdr(16) + ifinfomsg(16) + VFINFO_LIST(4) + VF_INFO(4) + SPOOFCHK(4 + 8)
        assert_eq!(b.len(), 52);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 52);
        assert_eq!(
            u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            16,
            "RTM_NEWLINK"
        );
        assert_eq!(
            u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            5,
            "REQUEST|ACK"
        );
        assert_eq!(
            i32::from_ne_bytes(b[20..24].try_into().unwrap()),
            7,
            "ifindex"
        );
        assert_eq!(
            u16::from_ne_bytes(b[34..36].try_into().unwrap()),
            22,
            "IFLA_VFINFO_LIST"
        );
        assert_eq!(
            u16::from_ne_bytes(b[38..40].try_into().unwrap()),
            1,
            "IFLA_VF_INFO"
        );
        assert_eq!(
            u16::from_ne_bytes(b[42..44].try_into().unwrap()),
            4,
            "IFLA_VF_SPOOFCHK"
        );
        assert_eq!(&b[44..52], &[2, 0, 0, 0, 1, 0, 0, 0]);
    }
}
