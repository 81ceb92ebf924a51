//! host-local: addresses from configured ranges, recorded in a file store shared with the
//! reference plugin.
//!
//! Differences from the reference, all on the safe side: the store lock is held across a whole
//! ADD, so parallel ADDs never race; an ADD that fails releases only what it reserved; a
//! requested address that no range can take is refused before anything is written; DEL and GC
//! read only `name` and `dataDir`, so they still release after the ranges changed; DEL, CHECK
//! and GC create no directory; GC and STATUS are implemented.

pub mod config;
pub mod store;

use std::net::IpAddr;

use multinet_cni::{GcRequest, IpConfig, NetConf, NetworkResult};
use serde_json::Value;

use crate::error::{IpamError, IpamResult};
use crate::range::{RangeIter, RangeSet};
use crate::resolv::parse_resolv_conf;
pub use config::{HostLocalConfig, StoreLocation};
pub use store::{Allocation, Store};

/// Allocates one address per range set for (id, ifname).
pub fn add(cfg: &HostLocalConfig, id: &str, ifname: &str) -> IpamResult<NetworkResult> {
    let requested = cfg.assign_requested()?;
    let dns = match &cfg.resolv_conf {
        None => Default::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                IpamError::config(
                    "ipam.resolvConf",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            parse_resolv_conf(&text)
        }
    };
    let store = Store::open(&cfg.data_dir, &cfg.name)?;
    let mut reserved: Vec<IpAddr> = Vec::new();
    let mut ips = Vec::new();
    for (idx, set) in cfg.ranges.iter().enumerate() {
        match allocate(&store, set, idx, id, ifname, requested[idx], cfg) {
            Ok(ipc) => {
                reserved.push(ipc.address.addr());
                ips.push(ipc);
            }
            Err(e) => {
                for ip in reserved {
                    // Best effort: the error being returned is the one that matters.
                    let _ = store.release(ip);
                }
                return Err(e);
            }
        }
    }
    Ok(NetworkResult {
        ips,
        routes: cfg.routes.clone(),
        dns,
        ..NetworkResult::default()
    })
}

fn allocate(
    store: &Store,
    set: &RangeSet,
    idx: usize,
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
    cfg: &HostLocalConfig,
) -> IpamResult<IpConfig> {
    if let Some(ip) = requested {
        let source = cfg
            .requested
            .iter()
            .find(|r| r.ip == ip)
            .map(|r| r.source.clone())
            .unwrap_or_default();
        // assign_requested only hands out addresses the set contains.
        let Some(range) = set.range_for(ip) else {
            return Err(IpamError::config(
                source,
                format!("{ip} is not in range set {set}"),
            ));
        };
        if ip == range.gateway {
            return Err(IpamError::config(
                source,
                format!(
                    "requested ip {ip} is the gateway of {}",
                    range.subnet.trunc()
                ),
            ));
        }
        if !store.reserve(id, ifname, ip, idx)? {
            return Err(IpamError::AddressInUse(format!(
                "requested IP address {ip} is not available in range set {set} ({})",
                set.key
            )));
        }
        return Ok(IpConfig {
            address: range.with_prefix(ip),
            gateway: Some(range.gateway),
            interface: None,
        });
    }
    if let Some(held) = store
        .get_by_id(id, ifname)?
        .into_iter()
        .find(|ip| set.contains(*ip))
    {
        return Err(IpamError::AddressInUse(format!(
            "{held} has been allocated to {id} ({ifname}), duplicate allocation is not allowed"
        )));
    }
    for (ip, ri) in RangeIter::new(set, store.last_reserved_ip(idx)) {
        if store.reserve(id, ifname, ip, idx)? {
            let range = &set.ranges[ri];
            return Ok(IpConfig {
                address: range.with_prefix(ip),
                gateway: Some(range.gateway),
                interface: None,
            });
        }
    }
    Err(IpamError::Exhausted(format!(
        "no IP addresses available in range set {} ({}) of network {}",
        set.key, set, cfg.name
    )))
}

/// Releases every address of (id, ifname); no store means nothing to release.
pub fn del(loc: &StoreLocation, id: &str, ifname: &str) -> IpamResult<()> {
    match Store::open_existing(&loc.data_dir, &loc.name)? {
        None => Ok(()),
        Some(store) => store.release_by_id(id, ifname).map(|_| ()),
    }
}

/// The allocation of (id, ifname) exists.
pub fn check(cfg: &HostLocalConfig, id: &str, ifname: &str) -> IpamResult<()> {
    let found = match Store::open_existing(&cfg.data_dir, &cfg.name)? {
        None => false,
        Some(store) => !store.get_by_id(id, ifname)?.is_empty(),
    };
    if found {
        Ok(())
    } else {
        Err(IpamError::NotFound(format!(
            "host-local: failed to find address added by container {id} ({ifname}) in network {}",
            cfg.name
        )))
    }
}

/// Releases every address whose attachment is not in the valid list; old-format files (no
/// ifname) are kept while any valid attachment has their container ID. Goes on past errors.
pub fn gc(loc: &StoreLocation, valid: &GcRequest) -> IpamResult<Vec<IpAddr>> {
    let Some(store) = Store::open_existing(&loc.data_dir, &loc.name)? else {
        return Ok(Vec::new());
    };
    let mut released = Vec::new();
    let mut errors = Vec::new();
    for a in store.allocations()? {
        let keep = match &a.ifname {
            Some(ifname) => valid.is_valid(&a.container_id, ifname),
            None => valid
                .valid_attachments
                .iter()
                .any(|v| v.container_id == a.container_id),
        };
        if keep {
            continue;
        }
        match store.release(a.ip) {
            Ok(()) => released.push(a.ip),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(released)
    } else {
        Err(IpamError::io(
            "gc",
            std::io::Error::other(errors.join("; ")),
        ))
    }
}

/// Releases every address that container `container_id` holds in any network under
/// `data_dir_root` (`DEFAULT_DATA_DIR` on a node), whatever the interface, each network under its
/// lock, for a caller that knows only the container (the meta-plugin when its own record is
/// lost or corrupt). Network directories that are symlinks or not trusted are skipped, as are
/// address files that are not trusted; empty address files left by interrupted writes go too.
/// Returns how many addresses were released.
pub fn release_container(data_dir_root: &std::path::Path, container_id: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir_root) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        // Only folders that already are host-local stores: nothing is created anywhere else.
        .filter(|e| e.path().join(store::LOCK_FILE).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter_map(|network| Store::open_existing(data_dir_root, &network).ok().flatten())
        .map(|store| {
            store
                .release_container(container_id)
                .map_or(0, |ips| ips.len())
        })
        .sum()
}

/// Ready for ADD: the network directory can be created and written.
pub fn status(loc: &StoreLocation) -> IpamResult<()> {
    let dir = Store::network_dir(&loc.data_dir, &loc.name);
    let probe = multinet_cni::files::temp_path(&dir.join("status-probe"));
    multinet_cni::files::ensure_dir(&loc.data_dir, store::DIR_MODE)
        .and_then(|()| multinet_cni::files::ensure_dir(&dir, store::DIR_MODE))
        .and_then(|()| {
            multinet_cni::files::write_atomic(
                &probe,
                b"",
                multinet_cni::files::WriteOptions::PRIVATE_QUICK,
            )
        })
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            IpamError::NotAvailable(format!(
                "host-local store {} is not writable: {e}",
                dir.display()
            ))
        })
}

/// The store location from a config (for DEL and GC).
pub fn location(conf: &NetConf, ipam: Option<&Value>) -> IpamResult<StoreLocation> {
    let ipam = config::ipam_object(ipam)?;
    config::store_location(conf, ipam)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multinet_cni::{Attachment, CniEnv};
    use serde_json::json;

    fn env() -> CniEnv {
        CniEnv::from_vars([
            ("CNI_COMMAND".to_string(), "ADD".to_string()),
            ("CNI_CONTAINERID".to_string(), "c".to_string()),
            ("CNI_NETNS".to_string(), "/x".to_string()),
            ("CNI_IFNAME".to_string(), "eth0".to_string()),
            ("CNI_PATH".to_string(), "/x".to_string()),
        ])
        .unwrap()
    }

    fn cfg(dir: &std::path::Path, ipam: Value) -> HostLocalConfig {
        let mut ipam = ipam;
        ipam["dataDir"] = json!(dir);
        let conf = NetConf::from_slice(
            &serde_json::to_vec(
                &json!({"cniVersion": "1.0.0", "name": "net", "type": "x", "ipam": ipam}),
            )
            .unwrap(),
        )
        .unwrap();
        HostLocalConfig::parse(&conf, conf.ipam.as_ref(), &env()).unwrap()
    }

    #[test]
    fn allocates_round_robin_and_exhausts_with_code_11() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path(), json!({"subnet": "10.0.0.0/29"}));
        let mut got = Vec::new();
        for i in 0..5 {
            let r = add(&c, &format!("c{i}"), "eth0").unwrap();
            got.push(r.ips[0].address.to_string());
            assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.0.0.1");
        }
        assert_eq!(
            got,
            [
                "10.0.0.2/29",
                "10.0.0.3/29",
                "10.0.0.4/29",
                "10.0.0.5/29",
                "10.0.0.6/29"
            ]
        );
        let e = add(&c, "c9", "eth0").unwrap_err();
        assert!(matches!(e, IpamError::Exhausted(_)));
        assert!(e.to_string().contains("10.0.0.1-10.0.0.6"), "{e}");
        // Release one in the middle: round robin goes on past the last handed out, then wraps.
        del(&location_of(&c), "c1", "eth0").unwrap();
        assert_eq!(
            add(&c, "c10", "eth0").unwrap().ips[0].address.to_string(),
            "10.0.0.3/29"
        );
    }

    fn location_of(c: &HostLocalConfig) -> StoreLocation {
        StoreLocation {
            name: c.name.clone(),
            data_dir: c.data_dir.clone(),
        }
    }

    #[test]
    fn duplicate_and_requested() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(
            d.path(),
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "2001:db8::/64"}]]}),
        );
        let r = add(&c, "c", "eth0").unwrap();
        assert_eq!(r.ips.len(), 2);
        assert!(matches!(
            add(&c, "c", "eth0"),
            Err(IpamError::AddressInUse(_))
        ));
        // Same container, other interface: fine.
        add(&c, "c", "net1").unwrap();
        check(&c, "c", "net1").unwrap();
        assert!(matches!(
            check(&c, "c", "net9"),
            Err(IpamError::NotFound(_))
        ));
        let mut c2 = c.clone();
        c2.requested = vec![config::RequestedIp {
            ip: "10.0.0.2".parse().unwrap(),
            source: "CNI_ARGS IP".into(),
        }];
        // 10.0.0.2 is held by c/eth0.
        assert!(matches!(
            add(&c2, "x", "eth0"),
            Err(IpamError::AddressInUse(_))
        ));
        // A failed ADD leaves nothing behind.
        let store = Store::open(d.path(), "net").unwrap();
        assert!(store.get_by_id("x", "eth0").unwrap().is_empty());
        drop(store);
        c2.requested[0].ip = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            add(&c2, "x", "eth0"),
            Err(IpamError::Config { .. })
        ));
        c2.requested[0].ip = "10.0.0.77".parse().unwrap();
        let r = add(&c2, "x", "eth0").unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.77/24");
    }

    #[test]
    fn gc_keeps_valid_only() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path(), json!({"subnet": "10.0.0.0/24"}));
        for i in 0..4 {
            add(&c, &format!("c{i}"), "eth0").unwrap();
        }
        std::fs::write(d.path().join("net/10.0.0.200"), "c3").unwrap();
        std::fs::write(d.path().join("net/10.0.0.201"), "gone").unwrap();
        let valid = GcRequest {
            valid_attachments: vec![
                Attachment {
                    container_id: "c1".into(),
                    ifname: "eth0".into(),
                },
                Attachment {
                    container_id: "c3".into(),
                    ifname: "net1".into(),
                },
            ],
        };
        let released = gc(&location_of(&c), &valid).unwrap();
        let released: Vec<String> = released.iter().map(|i| i.to_string()).collect();
        assert_eq!(released, ["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.201"]);
        let left: Vec<String> = Store::open(d.path(), "net")
            .unwrap()
            .allocations()
            .unwrap()
            .iter()
            .map(|a| a.ip.to_string())
            .collect();
        assert_eq!(left, ["10.0.0.3", "10.0.0.200"]);
    }

    #[test]
    fn status_and_missing_store() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path(), json!({"subnet": "10.0.0.0/24"}));
        del(&location_of(&c), "c", "eth0").unwrap();
        assert!(!d.path().join("net").exists());
        assert!(
            gc(&location_of(&c), &GcRequest::default())
                .unwrap()
                .is_empty()
        );
        status(&location_of(&c)).unwrap();
        let bad = StoreLocation {
            name: "net".into(),
            data_dir: "/proc/nope".into(),
        };
        assert!(matches!(status(&bad), Err(IpamError::NotAvailable(_))));
    }
}

/// How full one range of a host-local network is (for the node daemon's metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeUsage {
    /// The store's network name.
    pub network: String,
    /// `rangeStart-rangeEnd`.
    pub range: String,
    /// Addresses the range hands out (the gateway not counted).
    pub size: u128,
    /// Addresses of the range with a reservation file in the store.
    pub used: usize,
}

/// The usage of every range of a host-local config (the plugin's config, `ipam` its IPAM
/// section), counted from the store's address files without taking its lock: a gauge may be a
/// moment old, and a scrape must never wait behind an ADD.
pub fn range_usage(conf: &NetConf, ipam: Option<&Value>) -> IpamResult<Vec<RangeUsage>> {
    let env = multinet_cni::CniEnv {
        command: multinet_cni::Command::Status,
        container_id: String::new(),
        netns: None,
        ifname: String::new(),
        args: Vec::new(),
        path: Vec::new(),
    };
    let cfg = HostLocalConfig::parse(conf, ipam, &env)?;
    let dir = Store::network_dir(&cfg.data_dir, &cfg.name);
    let reserved: Vec<IpAddr> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for range in cfg.ranges.iter().flat_map(|set| &set.ranges) {
        let (start, end) = (
            crate::addr::to_u128(range.range_start).1,
            crate::addr::to_u128(range.range_end).1,
        );
        let gateway_inside = range.contains(range.gateway);
        out.push(RangeUsage {
            network: cfg.name.clone(),
            range: format!("{}-{}", range.range_start, range.range_end),
            size: (end - start + 1).saturating_sub(u128::from(gateway_inside)),
            used: reserved
                .iter()
                .filter(|ip| range.contains(**ip) && **ip != range.gateway)
                .count(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn range_usage_counts_reservations_per_range() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = serde_json::json!({"type": "host-local", "dataDir": tmp.path(),
            "ranges": [[{"subnet": "10.1.0.0/29"}], [{"subnet": "10.2.0.0/24",
                "rangeStart": "10.2.0.10", "rangeEnd": "10.2.0.19"}]]});
        let conf: NetConf = serde_json::from_value(serde_json::json!({
            "cniVersion": "1.0.0", "name": "net-a", "type": "macvlan", "ipam": ipam}))
        .unwrap();
        let dir = tmp.path().join("net-a");
        std::fs::create_dir_all(&dir).unwrap();
        for ip in ["10.1.0.2", "10.1.0.3", "10.2.0.11", "last_reserved_ip.0"] {
            std::fs::write(dir.join(ip), "c1\nnet1").unwrap();
        }
        let usage = range_usage(&conf, conf.ipam.as_ref()).unwrap();
        let got: Vec<(&str, u128, usize)> = usage
            .iter()
            .map(|u| (u.range.as_str(), u.size, u.used))
            .collect();
        // 10.1.0.1-10.1.0.6 less the gateway .1; 10.2.0.10-19 (gateway .1 outside).
        assert_eq!(
            got,
            [("10.1.0.1-10.1.0.6", 5, 2), ("10.2.0.10-10.2.0.19", 10, 1)]
        );
        assert!(usage.iter().all(|u| u.network == "net-a"));
    }
}
