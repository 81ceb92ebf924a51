//! PF-side VF settings: save, apply in the reference order (vlan/qos/proto, MAC, rate,
//! spoofchk, trust, link state), roll back a half-applied set, restore on DEL.
//!
//! The logic runs against [`VfControl`], which the netlink socket implements and unit tests
//! fake, so ordering, rollback and restore are tested without hardware.

use std::io;
use std::thread::sleep;
use std::time::Duration;

use multinet_netlink::Socket;

use crate::config::{VfSettings, VlanProto};
use crate::error::{Result, SriovError};

pub use multinet_netlink::{PfVfState, VfSetting};

/// What programs and reads VFs on a PF.
pub trait VfControl {
    fn set_vf(&mut self, pf_index: u32, setting: &VfSetting) -> io::Result<()>;
    /// The VF's state; Ok(None) when the PF reports no VF list or not this VF.
    fn read_vf(&mut self, pf_index: u32, vf: u32) -> io::Result<Option<PfVfState>>;
}

impl VfControl for Socket {
    fn set_vf(&mut self, pf_index: u32, setting: &VfSetting) -> io::Result<()> {
        Ok(Socket::set_vf(self, pf_index, setting)?)
    }

    fn read_vf(&mut self, pf_index: u32, vf: u32) -> io::Result<Option<PfVfState>> {
        Ok(self
            .vf_states(pf_index)?
            .and_then(|vfs| vfs.into_iter().find(|s| s.vf == vf)))
    }
}

/// The settings `wanted` asks for, in the reference order. `admin_mac` is false when the PF
/// has no VF info: then `mac` is applied to the VF netdev only.
pub fn settings_to_apply(vf: u32, wanted: &VfSettings, admin_mac: bool) -> Vec<VfSetting> {
    let mut out = Vec::new();
    if let Some(v) = wanted.vlan {
        out.push(VfSetting::Vlan {
            vf,
            vlan: v.vlan,
            qos: v.qos,
            proto: v.proto,
        });
    }
    if let Some(mac) = wanted.mac.filter(|_| admin_mac) {
        out.push(VfSetting::Mac { vf, mac });
    }
    if let Some(r) = wanted.rate {
        out.push(VfSetting::Rate {
            vf,
            min: r.min,
            max: r.max,
        });
    }
    if let Some(on) = wanted.spoofchk {
        out.push(VfSetting::Spoofchk { vf, on });
    }
    if let Some(on) = wanted.trust {
        out.push(VfSetting::Trust { vf, on });
    }
    if let Some(state) = wanted.link_state {
        out.push(VfSetting::LinkState { vf, state });
    }
    out
}

/// The setting that puts `setting`'s field back to its value in `orig`; None when `orig` does
/// not know that value.
fn restoring(setting: &VfSetting, orig: &PfVfState) -> Option<VfSetting> {
    let vf = orig.vf;
    Some(match setting {
        VfSetting::Vlan { .. } => VfSetting::Vlan {
            vf,
            vlan: orig.vlan,
            qos: orig.qos,
            // A VLAN of 0 is untagged: only 802.1Q is meaningful (and accepted) there.
            proto: if orig.vlan == 0 {
                VlanProto::Dot1Q
            } else {
                orig.proto
            },
        },
        VfSetting::Mac { .. } => VfSetting::Mac {
            vf,
            mac: orig.admin_mac,
        },
        VfSetting::Rate { .. } => VfSetting::Rate {
            vf,
            min: orig.min_tx_rate,
            max: orig.max_tx_rate,
        },
        VfSetting::Spoofchk { .. } => VfSetting::Spoofchk {
            vf,
            on: orig.spoofchk?,
        },
        VfSetting::Trust { .. } => VfSetting::Trust {
            vf,
            on: orig.trust?,
        },
        VfSetting::LinkState { .. } => VfSetting::LinkState {
            vf,
            state: orig.link_state?,
        },
    })
}

/// What DEL programs: the original value of every setting ADD applied, plus the admin MAC
/// whenever it differs from the original now (a leaked MAC duplicates addresses on the wire).
pub fn settings_to_restore(
    applied: &VfSettings,
    orig: &PfVfState,
    current: Option<&PfVfState>,
) -> Vec<VfSetting> {
    let mut wanted = *applied;
    if current.is_some_and(|c| c.admin_mac != orig.admin_mac) {
        wanted.mac = Some(orig.admin_mac);
    }
    settings_to_apply(orig.vf, &wanted, true)
        .iter()
        .filter_map(|s| restoring(s, orig))
        .collect()
}

const MAC_VERIFY_TRIES: u32 = 20;
const MAC_VERIFY_PAUSE: Duration = Duration::from_millis(100);

fn program(ctl: &mut dyn VfControl, pf_index: u32, pf: &str, s: &VfSetting) -> Result<()> {
    ctl.set_vf(pf_index, s).map_err(|e| SriovError::Netlink {
        what: format!("setting {s:?} on PF {pf} (key {:?})", s.key()),
        msg: e.to_string(),
    })?;
    if let VfSetting::Mac { vf, mac } = s {
        // Some drivers apply the MAC asynchronously: wait until the PF reports it.
        for _ in 0..MAC_VERIFY_TRIES {
            match ctl.read_vf(pf_index, *vf) {
                Ok(Some(st)) if st.admin_mac == *mac => return Ok(()),
                Ok(None) => return Ok(()),
                _ => sleep(MAC_VERIFY_PAUSE),
            }
        }
        return Err(SriovError::Netlink {
            what: format!("setting the MAC of VF {vf} on PF {pf}"),
            msg: format!("the PF still does not report {mac} after 2 s"),
        });
    }
    Ok(())
}

/// Applies `wanted` to VF `orig.vf` of the PF, in order. On failure the settings already
/// applied are put back (in reverse order) before the error is returned.
pub fn apply(
    ctl: &mut dyn VfControl,
    pf_index: u32,
    pf: &str,
    wanted: &VfSettings,
    orig: &PfVfState,
) -> Result<()> {
    let steps = settings_to_apply(orig.vf, wanted, true);
    for (i, s) in steps.iter().enumerate() {
        if let Err(e) = program(ctl, pf_index, pf, s) {
            for done in steps[..=i].iter().rev() {
                if let Some(back) = restoring(done, orig) {
                    let _ = ctl.set_vf(pf_index, &back);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Restores what ADD applied. Tries every setting; returns the first failure.
pub fn restore(
    ctl: &mut dyn VfControl,
    pf_index: u32,
    pf: &str,
    applied: &VfSettings,
    orig: &PfVfState,
) -> Result<()> {
    let current = ctl.read_vf(pf_index, orig.vf).ok().flatten();
    let mut first_err = None;
    for s in settings_to_restore(applied, orig, current.as_ref()) {
        if let Err(e) = ctl.set_vf(pf_index, &s) {
            first_err.get_or_insert(SriovError::Netlink {
                what: format!("restoring {s:?} on PF {pf}"),
                msg: e.to_string(),
            });
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MacAddr, TxRate, VfLinkState, VlanConfig};

    /// Applies settings to an in-memory VF and records every call.
    #[derive(Default)]
    struct FakePf {
        vf: PfVfState,
        calls: Vec<VfSetting>,
        fail_on: Option<&'static str>,
    }

    impl VfControl for FakePf {
        fn set_vf(&mut self, _pf: u32, s: &VfSetting) -> io::Result<()> {
            self.calls.push(*s);
            if self.fail_on == Some(s.key()) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            match *s {
                VfSetting::Vlan {
                    vlan, qos, proto, ..
                } => {
                    self.vf.vlan = vlan;
                    self.vf.qos = qos;
                    self.vf.proto = proto;
                }
                VfSetting::Mac { mac, .. } => self.vf.admin_mac = mac,
                VfSetting::Rate { min, max, .. } => {
                    self.vf.min_tx_rate = min;
                    self.vf.max_tx_rate = max;
                }
                VfSetting::Spoofchk { on, .. } => self.vf.spoofchk = Some(on),
                VfSetting::Trust { on, .. } => self.vf.trust = Some(on),
                VfSetting::LinkState { state, .. } => self.vf.link_state = Some(state),
            }
            Ok(())
        }

        fn read_vf(&mut self, _pf: u32, _vf: u32) -> io::Result<Option<PfVfState>> {
            Ok(Some(self.vf))
        }
    }

    fn original() -> PfVfState {
        PfVfState {
            vf: 3,
            admin_mac: MacAddr::ZERO,
            spoofchk: Some(true),
            trust: Some(false),
            link_state: Some(VfLinkState::Auto),
            ..Default::default()
        }
    }

    fn everything() -> VfSettings {
        VfSettings {
            vlan: Some(VlanConfig {
                vlan: 100,
                qos: 2,
                proto: VlanProto::Dot1AD,
            }),
            mac: Some("02:00:00:00:00:07".parse().unwrap()),
            rate: Some(TxRate { min: 10, max: 100 }),
            spoofchk: Some(false),
            trust: Some(true),
            link_state: Some(VfLinkState::Enable),
        }
    }

    #[test]
    fn applies_in_reference_order_and_restores_everything() {
        let orig = original();
        let mut pf = FakePf {
            vf: orig,
            ..Default::default()
        };
        apply(&mut pf, 1, "pf0", &everything(), &orig).unwrap();
        let keys: Vec<_> = pf.calls.iter().map(VfSetting::key).collect();
        assert_eq!(
            keys,
            [
                "vlan",
                "mac",
                "max_tx_rate",
                "spoofchk",
                "trust",
                "link_state"
            ]
        );
        assert_eq!(pf.vf.vlan, 100);
        assert_eq!(pf.vf.admin_mac.to_string(), "02:00:00:00:00:07");
        restore(&mut pf, 1, "pf0", &everything(), &orig).unwrap();
        assert_eq!(pf.vf, orig);
    }

    #[test]
    fn only_requested_settings_are_touched() {
        let orig = original();
        let mut pf = FakePf {
            vf: orig,
            ..Default::default()
        };
        let wanted = VfSettings {
            trust: Some(true),
            ..Default::default()
        };
        apply(&mut pf, 1, "pf0", &wanted, &orig).unwrap();
        restore(&mut pf, 1, "pf0", &wanted, &orig).unwrap();
        assert_eq!(
            pf.calls,
            vec![
                VfSetting::Trust { vf: 3, on: true },
                VfSetting::Trust { vf: 3, on: false }
            ]
        );
    }

    #[test]
    fn a_failure_rolls_back_what_was_applied() {
        let orig = original();
        let mut pf = FakePf {
            vf: orig,
            fail_on: Some("spoofchk"),
            ..Default::default()
        };
        let err = apply(&mut pf, 1, "pf0", &everything(), &orig).unwrap_err();
        assert!(err.to_string().contains("spoofchk"), "{err}");
        assert_eq!(pf.vf, orig, "state restored after the failure");
        assert!(
            !pf.calls.iter().any(|c| c.key() == "trust"),
            "stopped at the failure"
        );
    }

    #[test]
    fn a_changed_admin_mac_is_restored_even_if_not_requested() {
        let orig = original();
        let mut current = orig;
        current.admin_mac = "02:00:00:00:00:99".parse().unwrap();
        let restore = settings_to_restore(&VfSettings::default(), &orig, Some(&current));
        assert_eq!(
            restore,
            vec![VfSetting::Mac {
                vf: 3,
                mac: MacAddr::ZERO
            }]
        );
        assert!(settings_to_restore(&VfSettings::default(), &orig, Some(&orig)).is_empty());
    }

    #[test]
    fn restoring_vlan_zero_uses_802_1q() {
        let orig = original();
        let r = settings_to_restore(&everything(), &orig, None);
        assert_eq!(
            r[0],
            VfSetting::Vlan {
                vf: 3,
                vlan: 0,
                qos: 0,
                proto: VlanProto::Dot1Q
            }
        );
    }

    #[test]
    fn mac_stays_off_the_pf_without_vf_info() {
        let s = settings_to_apply(0, &everything(), false);
        assert!(!s.iter().any(|s| s.key() == "mac"));
    }
}
