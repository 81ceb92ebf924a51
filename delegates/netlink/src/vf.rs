//! SR-IOV virtual functions on their PF: the VF settings (`ip link set PF vf N ...`), the
//! RTM_NEWLINK request that programs one, and the PF's report of its VFs (IFLA_VFINFO_LIST).
//!
//! Each setting is sent in its own request, as `ip` does, so an error names the setting the
//! driver refused (many drivers lack trust or rate limits). The requests are compared byte for
//! byte with `ip`'s (tests/vf_bytes.rs, and in the kernel lab against netdevsim).

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate,
    VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlVfLinkState, VfVlan, VfVlanInfo,
    VlanProtocol,
};
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::wire::encode_request;

/// The VLAN tag protocol of a VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VlanProto {
    #[default]
    #[serde(rename = "802.1q")]
    Dot1Q,
    #[serde(rename = "802.1ad")]
    Dot1AD,
}

impl VlanProto {
    /// The ethertype sent over netlink.
    pub fn ethertype(&self) -> u16 {
        match self {
            VlanProto::Dot1Q => 0x8100,
            VlanProto::Dot1AD => 0x88a8,
        }
    }

    /// From the ethertype the kernel reports; 0 (not reported) is 802.1q.
    pub fn from_ethertype(t: u16) -> Option<VlanProto> {
        match t {
            0 | 0x8100 => Some(VlanProto::Dot1Q),
            0x88a8 => Some(VlanProto::Dot1AD),
            _ => None,
        }
    }
}

/// Administrative link state of a VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    Auto,
    Enable,
    Disable,
}

impl VfLinkState {
    /// IFLA_VF_LINK_STATE_* value.
    pub fn as_u32(&self) -> u32 {
        match self {
            VfLinkState::Auto => 0,
            VfLinkState::Enable => 1,
            VfLinkState::Disable => 2,
        }
    }

    pub fn from_u32(v: u32) -> Option<VfLinkState> {
        match v {
            0 => Some(VfLinkState::Auto),
            1 => Some(VfLinkState::Enable),
            2 => Some(VfLinkState::Disable),
            _ => None,
        }
    }
}

/// One netlink VF setting, what one `ip link set PF vf N ...` clause sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfSetting {
    Vlan {
        vf: u32,
        vlan: u16,
        qos: u8,
        proto: VlanProto,
    },
    Mac {
        vf: u32,
        mac: MacAddr,
    },
    Rate {
        vf: u32,
        min: u32,
        max: u32,
    },
    Spoofchk {
        vf: u32,
        on: bool,
    },
    Trust {
        vf: u32,
        on: bool,
    },
    LinkState {
        vf: u32,
        state: VfLinkState,
    },
}

impl VfSetting {
    /// The config key that asks for this setting (for messages).
    pub fn key(&self) -> &'static str {
        match self {
            VfSetting::Vlan { .. } => "vlan",
            VfSetting::Mac { .. } => "mac",
            VfSetting::Rate { .. } => "max_tx_rate",
            VfSetting::Spoofchk { .. } => "spoofchk",
            VfSetting::Trust { .. } => "trust",
            VfSetting::LinkState { .. } => "link_state",
        }
    }
}

/// The PF's view of one VF (IFLA_VF_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PfVfState {
    pub vf: u32,
    pub admin_mac: MacAddr,
    pub vlan: u16,
    pub qos: u8,
    pub proto: VlanProto,
    /// None when the PF does not report it.
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
    pub link_state: Option<VfLinkState>,
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

/// The VFs of a PF's RTM_NEWLINK (asked for with RTEXT_FILTER_VF); None when the message has
/// no VF list (not a PF, or a veth standing in for one).
pub fn vf_states_from_message(msg: &LinkMessage) -> Option<Vec<PfVfState>> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::VfInfoList(list) => Some(list.iter().filter_map(parse_vf).collect()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

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

    fn wire_round_trip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).expect("kernel-format message parses")
    }

    /// A PF reply as the kernel builds it (`rtnl_fill_vfinfo`), through the wire format.
    fn pf_reply() -> LinkMessage {
        let vf = |id: u32, mac: [u8; 6], vlan: u32, trust: bool| {
            LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(id, &mac)),
                VfInfo::Vlan(VfInfoVlan::new(id, vlan, 5)),
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    id,
                    vlan,
                    5,
                    if id == 1 {
                        VlanProtocol::Ieee8021Ad
                    } else {
                        VlanProtocol::Ieee8021Q
                    },
                ))]),
                VfInfo::Rate(VfInfoRate::new(id, 100, 300)),
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, true)),
                VfInfo::LinkState(VfInfoLinkState::new(id, NlVfLinkState::Enable)),
                VfInfo::Trust(VfInfoTrust::new(id, trust)),
            ])
        };
        let mut msg = LinkMessage::default();
        msg.header.index = 4;
        msg.attributes = vec![
            LinkAttribute::IfName("pf0".into()),
            LinkAttribute::NumVf(2),
            LinkAttribute::VfInfoList(vec![
                vf(0, [2, 0, 0, 0, 0, 0xa], 10, false),
                vf(1, [2, 0, 0, 0, 0, 0xb], 20, true),
            ]),
        ];
        wire_round_trip(&msg)
    }

    #[test]
    fn reads_every_vf_of_a_pf_reply() {
        let vfs = vf_states_from_message(&pf_reply()).unwrap();
        assert_eq!(vfs.len(), 2);
        assert_eq!(
            vfs[1],
            PfVfState {
                vf: 1,
                admin_mac: "02:00:00:00:00:0b".parse().unwrap(),
                vlan: 20,
                qos: 5,
                proto: VlanProto::Dot1AD,
                spoofchk: Some(true),
                trust: Some(true),
                min_tx_rate: 100,
                max_tx_rate: 300,
                link_state: Some(VfLinkState::Enable),
            }
        );
        assert_eq!(vfs[0].proto, VlanProto::Dot1Q);
        assert_eq!(vfs[0].trust, Some(false));
        assert_eq!(vf_states_from_message(&LinkMessage::default()), None);
    }

    #[test]
    fn a_request_reads_back_as_the_setting() {
        let RouteNetlinkMessage::NewLink(msg) = vf_request(
            4,
            &VfSetting::Vlan {
                vf: 3,
                vlan: 200,
                qos: 1,
                proto: VlanProto::Dot1AD,
            },
        ) else {
            panic!("not RTM_NEWLINK")
        };
        let msg = wire_round_trip(&msg);
        assert_eq!(msg.header.index, 4);
        let LinkAttribute::VfInfoList(list) = &msg.attributes[0] else {
            panic!("no VF list")
        };
        assert_eq!(
            list[0].0,
            vec![VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                3,
                200,
                1,
                VlanProtocol::Ieee8021Ad
            ))])]
        );
    }
}
