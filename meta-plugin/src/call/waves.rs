//! Which attachments may run at the same time when `parallelNetworks` asks for it (by default,
//! as the multi-net spec's section 7.3 requires, every attachment runs alone, in order). The
//! cluster network always runs first and alone.
//! After it, consecutive networks whose delegates are known not to depend on one another (each
//! creates or claims its own interface and keeps its own state, locked where shared) run together;
//! any other network is a barrier that runs alone, after everything before it and before
//! everything after it. So a plugin that builds on interfaces made by earlier networks (a bond
//! over two VFs, a vlan on a link inside the pod, a source-based-routing chain that picks a free
//! table) still sees them in annotation order.

use std::ops::Range;

use multinet_cni::DelegateConf;

/// Main plugin types that create or claim only their own interface from a master in the host.
const INDEPENDENT_TYPES: &[&str] = &["macvlan", "ipvlan", "sriov", "host-device"];

/// IPAM types that are safe to run at the same time: each locks its own shared state.
const INDEPENDENT_IPAM: &[&str] = &["host-local", "static", "dhcp", "whereabouts"];

/// True when the delegate config (a conf, or a conflist of exactly one plugin) is one of the
/// independent kinds: its main type and IPAM type are known, and its master is not inside the
/// pod (`linkInContainer`), where an earlier network may have made it.
pub fn is_independent(conf: &DelegateConf) -> bool {
    let Some(plugin) = conf.only_plugin() else {
        return false;
    };
    let main_ok = plugin
        .plugin_type()
        .is_some_and(|t| INDEPENDENT_TYPES.contains(&t));
    let ipam_ok = match (plugin.get("ipam"), plugin.ipam_type()) {
        (None, _) => true,
        (Some(ipam), None) => ipam.as_object().is_some_and(serde_json::Map::is_empty),
        (Some(_), Some(t)) => INDEPENDENT_IPAM.contains(&t),
    };
    main_ok && ipam_ok && !plugin.flag("linkInContainer")
}

/// Splits attachments `0..confs.len()` into consecutive waves; the attachments of one wave may
/// run at the same time, waves run one after another. With `parallel` false every attachment is
/// its own wave (one at a time, in order).
pub fn waves(confs: &[&DelegateConf], parallel: bool) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, conf) in confs.iter().enumerate() {
        let joins_previous = parallel
            && i > 1
            && is_independent(conf)
            && out
                .last()
                .is_some_and(|w| w.start > 0 && is_independent(confs[w.start]));
        match out.last_mut() {
            Some(w) if joins_previous => w.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn is_independent(conf: &Value) -> bool {
        super::is_independent(&DelegateConf::new(conf.clone()))
    }

    fn waves(confs: &[&Value], parallel: bool) -> Vec<Range<usize>> {
        let confs: Vec<DelegateConf> = confs
            .iter()
            .map(|c| DelegateConf::new((*c).clone()))
            .collect();
        super::waves(&confs.iter().collect::<Vec<_>>(), parallel)
    }

    fn macvlan() -> Value {
        json!({"type":"macvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}})
    }

    #[test]
    fn the_cluster_network_runs_alone_then_independent_networks_together() {
        let (c, a, b, d) = (macvlan(), macvlan(), json!({"type":"sriov"}), macvlan());
        assert_eq!(waves(&[&c, &a, &b, &d], true), vec![0..1, 1..4]);
    }

    #[test]
    fn sequential_when_parallel_is_off() {
        let (c, a, b) = (macvlan(), macvlan(), macvlan());
        assert_eq!(waves(&[&c, &a, &b], false), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn an_unknown_plugin_is_a_barrier_that_keeps_annotation_order() {
        // A bond over the two VFs before it must see them; the macvlan after it waits.
        let (c, v1, v2, bond, m) = (
            macvlan(),
            json!({"type":"sriov"}),
            json!({"type":"sriov"}),
            json!({"type":"bond","links":[{"name":"net1"},{"name":"net2"}]}),
            macvlan(),
        );
        assert_eq!(
            waves(&[&c, &v1, &v2, &bond, &m], true),
            vec![0..1, 1..3, 3..4, 4..5]
        );
    }

    #[test]
    fn what_makes_a_network_dependent() {
        assert!(is_independent(&macvlan()));
        assert!(is_independent(&json!({"type":"ipvlan","ipam":{}})));
        assert!(is_independent(
            &json!({"cniVersion":"1.0.0","plugins":[{"type":"host-device","device":"eth9"}]})
        ));
        // Master inside the pod: an earlier network may have created it.
        assert!(!is_independent(
            &json!({"type":"macvlan","master":"net1","linkInContainer":true})
        ));
        // Chained plugins may touch state shared across the pod (routing tables, firewall).
        assert!(!is_independent(
            &json!({"plugins":[{"type":"macvlan"},{"type":"sbr"}]})
        ));
        assert!(!is_independent(
            &json!({"type":"macvlan","ipam":{"type":"my-ipam"}})
        ));
        assert!(!is_independent(&json!({"type":"bridge"})));
        assert!(!is_independent(
            &json!({"type":"macvlan","ipam":{"subnet":"x"}})
        ));
    }
}
