//! SR-IOV virtual function settings, read from and written to the PF with RTM_GETLINK /
//! RTM_SETLINK (`IFLA_VFINFO_LIST`), the same requests as `ip link set <pf> vf N ...`.
//!
//! Each setting is sent in its own request, so an error names the setting the driver refused
//! (many drivers lack trust or rate limits) and earlier settings stay applied.

use std::fmt;
use std::str::FromStr;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo as NlVfInfo, VfInfoLinkState,
    VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlVfLinkState,
    VfVlan, VfVlanInfo, VlanProtocol,
};
use rtnetlink::LinkUnspec;

use crate::error::{Error, ErrorMap, LinkRef, Missing, Result};
use crate::handle::NetlinkHandle;
use crate::mac::MacAddr;

/// VF link state (sriov-cni `link_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VfLinkState {
    /// Follows the PF's link.
    #[default]
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
    /// A value this crate does not know.
    Unknown(u32),
}

impl FromStr for VfLinkState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Self::Auto,
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            _ => {
                return Err(Error::Invalid {
                    what: "VF link state",
                    value: s.to_owned(),
                });
            }
        })
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Enable => f.write_str("enable"),
            Self::Disable => f.write_str("disable"),
            Self::Unknown(v) => write!(f, "unknown({v})"),
        }
    }
}

impl From<NlVfLinkState> for VfLinkState {
    fn from(s: NlVfLinkState) -> Self {
        match s {
            NlVfLinkState::Auto => Self::Auto,
            NlVfLinkState::Enable => Self::Enable,
            NlVfLinkState::Disable => Self::Disable,
            other => Self::Unknown(u32::from(other)),
        }
    }
}

impl From<VfLinkState> for NlVfLinkState {
    fn from(s: VfLinkState) -> Self {
        match s {
            VfLinkState::Auto => Self::Auto,
            VfLinkState::Enable => Self::Enable,
            VfLinkState::Disable => Self::Disable,
            VfLinkState::Unknown(v) => Self::from(v),
        }
    }
}

/// VLAN protocol of a VF VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VlanProto {
    /// 802.1Q (the default).
    #[default]
    Dot1Q,
    /// 802.1ad (QinQ).
    Dot1Ad,
}

impl FromStr for VlanProto {
    type Err = Error;
    /// Accepts "802.1q" / "802.1Q" and "802.1ad" / "802.1AD", as sriov-cni does.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(Self::Dot1Q),
            "802.1ad" => Ok(Self::Dot1Ad),
            _ => Err(Error::Invalid {
                what: "VLAN protocol",
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dot1Q => "802.1Q",
            Self::Dot1Ad => "802.1ad",
        })
    }
}

impl From<VlanProto> for VlanProtocol {
    fn from(p: VlanProto) -> Self {
        match p {
            VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
            VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
        }
    }
}

impl From<VlanProtocol> for VlanProto {
    fn from(p: VlanProtocol) -> Self {
        match p {
            VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
            _ => VlanProto::Dot1Q,
        }
    }
}

/// The state of one VF as its PF reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VfInfo {
    /// VF number.
    pub id: u32,
    /// Administrative MAC (all zero when none was set).
    pub mac: MacAddr,
    /// VLAN id (0 = none).
    pub vlan: u32,
    /// VLAN QoS (priority).
    pub qos: u32,
    /// VLAN protocol.
    pub vlan_proto: VlanProto,
    /// MAC anti-spoofing.
    pub spoofchk: bool,
    /// Trusted (may change MAC, promiscuous...).
    pub trust: bool,
    /// Link state.
    pub link_state: VfLinkState,
    /// Minimum TX rate in Mbps (0 = none).
    pub min_tx_rate: u32,
    /// Maximum TX rate in Mbps (0 = none).
    pub max_tx_rate: u32,
}

impl VfInfo {
    /// Every setting of this VF, to restore it later with
    /// [`NetlinkHandle::apply_vf_settings`].
    pub fn settings(&self) -> Vec<VfSetting> {
        vec![
            VfSetting::Mac(self.mac),
            VfSetting::Vlan {
                vlan: self.vlan,
                qos: self.qos,
                proto: self.vlan_proto,
            },
            VfSetting::Rate {
                min_tx_rate: self.min_tx_rate,
                max_tx_rate: self.max_tx_rate,
            },
            VfSetting::SpoofCheck(self.spoofchk),
            VfSetting::Trust(self.trust),
            VfSetting::LinkState(self.link_state),
        ]
    }

    fn from_attributes(attrs: &[NlVfInfo]) -> Option<Self> {
        let id = attrs.iter().find_map(|a| match a {
            NlVfInfo::Mac(m) => Some(m.vf_id),
            NlVfInfo::Vlan(v) => Some(v.vf_id),
            _ => None,
        })?;
        let mut vf = VfInfo {
            id,
            ..VfInfo::default()
        };
        let mut legacy_rate = None;
        let mut has_rate = false;
        for attr in attrs {
            match attr {
                NlVfInfo::Mac(m) => vf.mac = MacAddr::from_slice(&m.mac[..6]).unwrap_or_default(),
                NlVfInfo::Vlan(v) => (vf.vlan, vf.qos) = (v.vlan_id, v.qos),
                NlVfInfo::VlanList(list) => {
                    if let Some(VfVlan::Info(info)) = list.first() {
                        vf.vlan_proto = info.protocol.into();
                    }
                }
                NlVfInfo::Rate(r) => {
                    has_rate = true;
                    (vf.min_tx_rate, vf.max_tx_rate) = (r.min_tx_rate, r.max_tx_rate);
                }
                NlVfInfo::TxRate(r) => legacy_rate = Some(r.rate),
                NlVfInfo::SpoofCheck(s) => vf.spoofchk = s.enabled,
                NlVfInfo::Trust(t) => vf.trust = t.enabled,
                NlVfInfo::LinkState(l) => vf.link_state = l.state.into(),
                _ => {}
            }
        }
        // Old drivers report only the legacy maximum rate.
        if let (false, Some(rate)) = (has_rate, legacy_rate) {
            vf.max_tx_rate = rate;
        }
        Some(vf)
    }
}

/// Reads every VF from an RTM_NEWLINK of the PF requested with `RTEXT_FILTER_VF`.
pub fn vf_infos_from_message(msg: &LinkMessage) -> Vec<VfInfo> {
    msg.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::VfInfoList(list) => Some(list),
            _ => None,
        })
        .flatten()
        .filter_map(|LinkVfInfo(attrs)| VfInfo::from_attributes(attrs))
        .collect()
}

/// One VF setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfSetting {
    /// Administrative MAC (`ip link set PF vf N mac M`).
    Mac(MacAddr),
    /// VLAN, QoS and protocol; vlan 0 removes the VLAN.
    Vlan {
        /// VLAN id, 0-4095.
        vlan: u32,
        /// QoS, 0-7.
        qos: u32,
        /// Protocol.
        proto: VlanProto,
    },
    /// TX rate limits in Mbps; 0 = no limit.
    Rate {
        /// Minimum.
        min_tx_rate: u32,
        /// Maximum.
        max_tx_rate: u32,
    },
    /// MAC anti-spoofing.
    SpoofCheck(bool),
    /// Trust.
    Trust(bool),
    /// Link state.
    LinkState(VfLinkState),
}

impl fmt::Display for VfSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mac(m) => write!(f, "mac {m}"),
            Self::Vlan { vlan, qos, proto } => write!(f, "vlan {vlan} qos {qos} proto {proto}"),
            Self::Rate {
                min_tx_rate,
                max_tx_rate,
            } => write!(f, "min_tx_rate {min_tx_rate} max_tx_rate {max_tx_rate}"),
            Self::SpoofCheck(on) => write!(f, "spoofchk {}", on_off(*on)),
            Self::Trust(on) => write!(f, "trust {}", on_off(*on)),
            Self::LinkState(s) => write!(f, "state {s}"),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// The RTM_SETLINK message that applies `setting` to VF `vf` of the PF `pf_index`.
pub fn vf_setting_message(pf_index: u32, vf: u32, setting: &VfSetting) -> LinkMessage {
    let info = match *setting {
        VfSetting::Mac(mac) => NlVfInfo::Mac(VfInfoMac::new(vf, &mac.0)),
        // Plain IFLA_VF_VLAN is what every driver takes; the list form carries 802.1ad.
        VfSetting::Vlan {
            vlan,
            qos,
            proto: VlanProto::Dot1Q,
        } => NlVfInfo::Vlan(VfInfoVlan::new(vf, vlan, qos)),
        VfSetting::Vlan {
            vlan,
            qos,
            proto: VlanProto::Dot1Ad,
        } => NlVfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
            vf,
            vlan,
            qos,
            VlanProtocol::Ieee8021Ad,
        ))]),
        VfSetting::Rate {
            min_tx_rate,
            max_tx_rate,
        } => NlVfInfo::Rate(VfInfoRate::new(vf, min_tx_rate, max_tx_rate)),
        VfSetting::SpoofCheck(on) => NlVfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
        VfSetting::Trust(on) => NlVfInfo::Trust(VfInfoTrust::new(vf, on)),
        VfSetting::LinkState(state) => NlVfInfo::LinkState(VfInfoLinkState::new(vf, state.into())),
    };
    LinkUnspec::new_with_index(pf_index)
        .append_extra_attribute(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]))
        .build()
}

impl NetlinkHandle {
    /// Every VF of the PF `pf_index` (empty for a link without VFs).
    pub async fn vf_infos(&self, pf_index: u32) -> Result<Vec<VfInfo>> {
        let request = self
            .raw()
            .link()
            .get()
            .match_index(pf_index)
            .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::Vf])
            .execute();
        let messages: Vec<LinkMessage> = request.try_collect().await.map_err(|e| {
            ErrorMap::new(format!("read VFs of link {pf_index}"))
                .missing_link(LinkRef::Index(pf_index))
                .map(e)
        })?;
        Ok(messages.iter().flat_map(vf_infos_from_message).collect())
    }

    /// VF `vf` of the PF `pf_index`; [`Error::NotFound`] when the PF has no such VF.
    pub async fn vf_info(&self, pf_index: u32, vf: u32) -> Result<VfInfo> {
        self.vf_infos(pf_index)
            .await?
            .into_iter()
            .find(|v| v.id == vf)
            .ok_or(Error::NotFound(Missing::Vf { pf: pf_index, vf }))
    }

    /// Applies one setting to VF `vf` of the PF `pf_index`.
    pub async fn set_vf(&self, pf_index: u32, vf: u32, setting: &VfSetting) -> Result<()> {
        let msg = vf_setting_message(pf_index, vf, setting);
        self.raw().link().set(msg).execute().await.map_err(|e| {
            let what = if matches!(e, rtnetlink::Error::NetlinkError(_)) {
                format!("set VF {vf} of link {pf_index}: {setting}")
            } else {
                format!("set VF {vf} of link {pf_index}")
            };
            // EINVAL for an out-of-range VF is indistinguishable from a bad value, so only
            // ENODEV (no PF) counts as not found.
            ErrorMap::new(what)
                .missing_link(LinkRef::Index(pf_index))
                .map(e)
        })
    }

    /// Applies `settings` in order, stopping at the first the driver refuses.
    pub async fn apply_vf_settings(
        &self,
        pf_index: u32,
        vf: u32,
        settings: &[VfSetting],
    ) -> Result<()> {
        for setting in settings {
            self.set_vf(pf_index, vf, setting).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::VfInfoTxRate;
    use rtnetlink::packet_core::{Emitable, Parseable};

    fn wire_round_trip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).expect("kernel-format message parses")
    }

    fn only_vf_attr(msg: &LinkMessage) -> NlVfInfo {
        match msg.attributes.as_slice() {
            [LinkAttribute::VfInfoList(list)] => match list.as_slice() {
                [LinkVfInfo(attrs)] if attrs.len() == 1 => attrs[0].clone(),
                other => panic!("expected one VF attribute, got {other:?}"),
            },
            other => panic!("expected only IFLA_VFINFO_LIST, got {other:?}"),
        }
    }

    #[test]
    fn setting_messages_target_the_pf_and_vf() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let msg = wire_round_trip(&vf_setting_message(4, 3, &VfSetting::Mac(mac)));
        assert_eq!(msg.header.index, 4);
        let NlVfInfo::Mac(m) = only_vf_attr(&msg) else {
            panic!()
        };
        assert_eq!((m.vf_id, &m.mac[..6]), (3, &mac.0[..]));
        assert!(m.mac[6..].iter().all(|b| *b == 0));

        let vlan = VfSetting::Vlan {
            vlan: 100,
            qos: 2,
            proto: VlanProto::Dot1Q,
        };
        let msg = wire_round_trip(&vf_setting_message(4, 3, &vlan));
        assert_eq!(
            only_vf_attr(&msg),
            NlVfInfo::Vlan(VfInfoVlan::new(3, 100, 2))
        );
    }

    #[test]
    fn qinq_vlan_uses_the_vlan_list() {
        let vlan = VfSetting::Vlan {
            vlan: 200,
            qos: 0,
            proto: VlanProto::Dot1Ad,
        };
        let msg = wire_round_trip(&vf_setting_message(1, 0, &vlan));
        let NlVfInfo::VlanList(list) = only_vf_attr(&msg) else {
            panic!()
        };
        assert_eq!(
            list,
            vec![VfVlan::Info(VfVlanInfo::new(
                0,
                200,
                0,
                VlanProtocol::Ieee8021Ad
            ))]
        );
    }

    #[test]
    fn flags_rates_and_state_messages() {
        let cases = [
            (
                VfSetting::SpoofCheck(false),
                NlVfInfo::SpoofCheck(VfInfoSpoofCheck::new(2, false)),
            ),
            (
                VfSetting::Trust(true),
                NlVfInfo::Trust(VfInfoTrust::new(2, true)),
            ),
            (
                VfSetting::Rate {
                    min_tx_rate: 10,
                    max_tx_rate: 500,
                },
                NlVfInfo::Rate(VfInfoRate::new(2, 10, 500)),
            ),
            (
                VfSetting::LinkState(VfLinkState::Disable),
                NlVfInfo::LinkState(VfInfoLinkState::new(2, NlVfLinkState::Disable)),
            ),
        ];
        for (setting, expected) in cases {
            let msg = wire_round_trip(&vf_setting_message(9, 2, &setting));
            assert_eq!(only_vf_attr(&msg), expected, "{setting}");
        }
    }

    /// A PF reply as the kernel builds it (`rtnl_fill_vfinfo`), through the wire format.
    fn pf_reply() -> LinkMessage {
        let vf = |id: u32, mac: [u8; 6], vlan: u32, trust: bool| {
            LinkVfInfo(vec![
                NlVfInfo::Mac(VfInfoMac::new(id, &mac)),
                NlVfInfo::Vlan(VfInfoVlan::new(id, vlan, 5)),
                NlVfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    id,
                    vlan,
                    5,
                    if id == 1 {
                        VlanProtocol::Ieee8021Ad
                    } else {
                        VlanProtocol::Ieee8021Q
                    },
                ))]),
                NlVfInfo::TxRate(VfInfoTxRate::new(id, 300)),
                NlVfInfo::Rate(VfInfoRate::new(id, 100, 300)),
                NlVfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, true)),
                NlVfInfo::LinkState(VfInfoLinkState::new(id, NlVfLinkState::Enable)),
                NlVfInfo::Trust(VfInfoTrust::new(id, trust)),
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
        let vfs = vf_infos_from_message(&pf_reply());
        assert_eq!(vfs.len(), 2);
        assert_eq!(
            vfs[1],
            VfInfo {
                id: 1,
                mac: "02:00:00:00:00:0b".parse().unwrap(),
                vlan: 20,
                qos: 5,
                vlan_proto: VlanProto::Dot1Ad,
                spoofchk: true,
                trust: true,
                link_state: VfLinkState::Enable,
                min_tx_rate: 100,
                max_tx_rate: 300,
            }
        );
        assert_eq!(vfs[0].vlan_proto, VlanProto::Dot1Q);
        assert!(!vfs[0].trust);
    }

    #[test]
    fn legacy_tx_rate_fills_max_rate() {
        let attrs = vec![
            NlVfInfo::Mac(VfInfoMac::new(5, &[2, 0, 0, 0, 0, 1])),
            NlVfInfo::TxRate(VfInfoTxRate::new(5, 250)),
        ];
        let vf = VfInfo::from_attributes(&attrs).unwrap();
        assert_eq!((vf.id, vf.min_tx_rate, vf.max_tx_rate), (5, 0, 250));
    }

    #[test]
    fn settings_restore_what_was_read() {
        let vfs = vf_infos_from_message(&pf_reply());
        let settings = vfs[1].settings();
        assert!(settings.contains(&VfSetting::Vlan {
            vlan: 20,
            qos: 5,
            proto: VlanProto::Dot1Ad
        }));
        assert!(settings.contains(&VfSetting::Trust(true)));
        assert_eq!(settings.len(), 6);
    }

    #[test]
    fn parses_sriov_cni_values() {
        assert_eq!(
            "enable".parse::<VfLinkState>().unwrap(),
            VfLinkState::Enable
        );
        assert!("on".parse::<VfLinkState>().is_err());
        assert_eq!("802.1AD".parse::<VlanProto>().unwrap(), VlanProto::Dot1Ad);
        assert_eq!("802.1q".parse::<VlanProto>().unwrap(), VlanProto::Dot1Q);
        assert!("qinq".parse::<VlanProto>().is_err());
        assert_eq!(VfSetting::SpoofCheck(true).to_string(), "spoofchk on");
    }
}
