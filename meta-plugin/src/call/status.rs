//! The `k8s.v1.cni.cncf.io/network-status` annotation, built from the delegates' results in the
//! format Multus writes, so tools that read it keep working.

use multinet_cni::{IpConfig, NetworkResult};
use multinet_crds::{DeviceInfo, Dns, NetworkStatus, format_network_status, status_ip};

use std::collections::BTreeMap;

use crate::call::attachment::Attachment;
use crate::call::plan::NotApplied;
use crate::call::source::dra::{ClaimDevice, NetworkData};
use crate::call::source::{EventKind, PodEvent};

/// The attachments the delegates added, with their results, in order.
fn added(attachments: &[Attachment]) -> impl Iterator<Item = (&Attachment, &NetworkResult)> {
    attachments
        .iter()
        .filter_map(|a| Some((a, a.added.as_ref()?)))
}

/// One status entry per added attachment. The interface is the first one the delegate placed in
/// a sandbox; IPs are those of that interface, plus any the result did not tie to an interface
/// (a strict filter would drop them, as one widely used client does). `device_infos[i]`, when
/// there, is attachment i's `device-info`.
pub fn status_entries(
    attachments: &[Attachment],
    device_infos: &[Option<DeviceInfo>],
) -> Vec<NetworkStatus> {
    added(attachments)
        .enumerate()
        .map(|(i, (p, r))| {
            let iface_idx = sandbox_interface(r);
            let iface = iface_idx.map(|i| &r.interfaces[i]);
            NetworkStatus {
                name: p.network.clone(),
                interface: iface.map_or_else(|| p.ifname.clone(), |i| i.name.clone()),
                ips: ips_of(r, iface_idx)
                    .map(|ip| status_ip(ip.address.addr()))
                    .collect(),
                mac: iface.and_then(|i| i.mac.clone()).unwrap_or_default(),
                mtu: iface.and_then(|i| i.mtu).unwrap_or(0),
                default: p.is_default,
                dns: Dns {
                    nameservers: r.dns.nameservers.clone(),
                    domain: r.dns.domain.clone().unwrap_or_default(),
                    search: r.dns.search.clone(),
                    options: r.dns.options.clone(),
                },
                device_info: device_infos.get(i).cloned().flatten(),
                gateway: p.default_route.iter().map(|g| status_ip(*g)).collect(),
            }
        })
        .collect()
}

/// Per claim, the network data of each of its devices that an added attachment took: the
/// interface in the pod, its addresses (CIDR) and MAC.
pub fn claim_network_data(
    attachments: &[Attachment],
    origins: &BTreeMap<String, ClaimDevice>,
) -> BTreeMap<String, Vec<(ClaimDevice, NetworkData)>> {
    let mut out: BTreeMap<String, Vec<(ClaimDevice, NetworkData)>> = BTreeMap::new();
    for (a, r) in added(attachments) {
        let Some(origin) = a.device_id.as_ref().and_then(|id| origins.get(id)) else {
            continue;
        };
        let iface_idx = sandbox_interface(r);
        let iface = iface_idx.map(|i| &r.interfaces[i]);
        let data = NetworkData {
            interface_name: iface.map_or_else(|| a.ifname.clone(), |i| i.name.clone()),
            ips: ips_of(r, iface_idx)
                .map(|ip| ip.address.to_string())
                .collect(),
            hardware_address: iface.and_then(|i| i.mac.clone()).unwrap_or_default(),
        };
        out.entry(origin.claim.clone())
            .or_default()
            .push((origin.clone(), data));
    }
    out
}

/// The first interface the delegate placed in a sandbox.
fn sandbox_interface(r: &NetworkResult) -> Option<usize> {
    r.interfaces
        .iter()
        .position(|i| i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
}

/// The IPs of interface `iface`, plus those the result tied to no interface.
fn ips_of(r: &NetworkResult, iface: Option<usize>) -> impl Iterator<Item = &IpConfig> {
    r.ips
        .iter()
        .filter(move |ip| ip.interface.is_none() || ip.interface == iface)
}

/// One `AddedInterface` event per attachment, worded as Multus words it
/// ("Add net1 [10.10.0.5/24] from team/data"), so `kubectl describe pod` reads the same.
pub fn added_interface_events(attachments: &[Attachment]) -> Vec<PodEvent> {
    added(attachments)
        .map(|(p, r)| {
            let iface_idx = sandbox_interface(r);
            let ifname = iface_idx.map_or(p.ifname.as_str(), |i| r.interfaces[i].name.as_str());
            let ips: Vec<String> = ips_of(r, iface_idx)
                .map(|ip| ip.address.to_string())
                .collect();
            PodEvent {
                reason: "AddedInterface",
                message: format!("Add {ifname} [{}] from {}", ips.join(" "), p.network),
                kind: EventKind::Normal,
            }
        })
        .collect()
}

/// One Warning event per network whose requests were not applied (Multus ignores them without
/// a word; the pod's owner should learn that a mac or a bandwidth limit is not in force).
pub fn not_applied_events(not_applied: &[NotApplied]) -> Vec<PodEvent> {
    not_applied
        .iter()
        .map(|n| PodEvent {
            reason: "NetworkRequestNotApplied",
            message: n.to_string(),
            kind: EventKind::Warning,
        })
        .collect()
}

pub fn network_status(attachments: &[Attachment], device_infos: &[Option<DeviceInfo>]) -> String {
    format_network_status(&status_entries(attachments, device_infos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::Interface;
    use multinet_crds::PciDevice;
    use serde_json::{Value, json};

    /// An attachment whose delegate added `result`.
    fn added(network: &str, ifname: &str, result: NetworkResult) -> Attachment {
        let mut a = Attachment::planned(network, ifname, json!({"type": "x"}));
        a.mark_added(Value::Null, result);
        a
    }

    fn result(ifname: &str) -> NetworkResult {
        NetworkResult {
            interfaces: vec![Interface {
                name: ifname.into(),
                sandbox: Some("/run/netns/p".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn added_interface_events_are_worded_as_multus_words_them() {
        let mut r = result("net1");
        r.ips = vec![
            serde_json::from_value(json!({"address": "10.10.0.5/24", "interface": 0})).unwrap(),
            serde_json::from_value(json!({"address": "fd00::5/64", "interface": 0})).unwrap(),
            serde_json::from_value(json!({"address": "10.9.9.9/24", "interface": 1})).unwrap(),
        ];
        let events = added_interface_events(&[
            added("team/data", "net1", r),
            added("cluster", "eth0", NetworkResult::default()),
        ]);
        assert_eq!(
            events,
            vec![
                PodEvent {
                    reason: "AddedInterface",
                    message: "Add net1 [10.10.0.5/24 fd00::5/64] from team/data".into(),
                    kind: EventKind::Normal,
                },
                PodEvent {
                    reason: "AddedInterface",
                    message: "Add eth0 [] from cluster".into(),
                    kind: EventKind::Normal,
                },
            ]
        );
    }

    #[test]
    fn device_info_goes_to_its_own_attachment_only() {
        let vf = DeviceInfo::pci(PciDevice {
            pci_address: "0000:3b:02.1".into(),
            ..Default::default()
        });
        let text = network_status(
            &[
                added("team/mac", "net1", result("net1")),
                added("team/vf", "net2", result("net2")),
            ],
            &[None, Some(vf)],
        );
        let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(entries[0].get("device-info"), None);
        assert_eq!(
            entries[1]["device-info"],
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.1"}})
        );
        // Fewer device infos than attachments (none read at all) is no device info.
        let entries = status_entries(&[added("team/mac", "net1", result("net1"))], &[]);
        assert_eq!(entries[0].device_info, None);
    }
}
