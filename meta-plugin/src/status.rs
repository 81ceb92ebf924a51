//! The `k8s.v1.cni.cncf.io/network-status` annotation, built from the delegates' results in the
//! format Multus writes, so tools that read it keep working.

use multinet_cni::NetworkResult;
use multinet_crds::{Dns, NetworkStatus, format_network_status, status_ip};

use crate::plan::PlannedAttachment;

/// One status entry per attachment. The interface is the first one the delegate placed in a
/// sandbox; IPs are those of that interface, plus any the result did not tie to an interface
/// (a strict filter would drop them, as one widely used client does).
pub fn status_entries(
    planned: &[PlannedAttachment],
    results: &[NetworkResult],
) -> Vec<NetworkStatus> {
    planned
        .iter()
        .zip(results)
        .map(|(p, r)| {
            let iface_idx = r
                .interfaces
                .iter()
                .position(|i| i.sandbox.as_deref().is_some_and(|s| !s.is_empty()));
            let iface = iface_idx.map(|i| &r.interfaces[i]);
            NetworkStatus {
                name: p.network.clone(),
                interface: iface.map_or_else(|| p.ifname.clone(), |i| i.name.clone()),
                ips: r
                    .ips
                    .iter()
                    .filter(|ip| ip.interface.is_none() || ip.interface == iface_idx)
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
                device_info: None,
                gateway: p.default_route.iter().map(|g| status_ip(*g)).collect(),
            }
        })
        .collect()
}

pub fn network_status(planned: &[PlannedAttachment], results: &[NetworkResult]) -> String {
    format_network_status(&status_entries(planned, results))
}
