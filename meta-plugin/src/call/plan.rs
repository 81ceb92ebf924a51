//! Planning: which networks a pod gets, in which order, under which interface names, with which
//! runtimeConfig. Pure functions: config + pod + loaded network configs → ordered attachments.
//! Nothing here touches the network, the disk or the API.

use std::collections::{BTreeMap, BTreeSet};

use multinet_crds::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelection, parse_default_network,
    parse_networks,
};
use serde_json::{Map, Value, json};

use crate::call::attachment::Attachment;
pub use crate::call::attachment::LoadedNetwork;
use crate::call::config::MultinetConf;
use crate::call::source::PodInfo;
use crate::error::MetaError;

/// A reference to a network that must be loaded before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRef {
    /// `clusterNetwork` / `defaultNetworks` entry: a NAD name in the multinet namespace, a network
    /// name in confDir, a directory or a file path.
    Configured(String),
    /// One of the inline `delegates`: the first is the cluster network, every other one an
    /// extra network of every pod.
    InlineDelegate(usize),
    /// A NAD.
    Nad { namespace: String, name: String },
}

/// What the pod asks for: the networks to load, and the selections in annotation order.
#[derive(Debug, Clone)]
pub struct Requested {
    pub cluster: NetworkRef,
    /// Networks every pod gets after the cluster network: the inline `delegates` after the
    /// first (every pod, as Multus), or `defaultNetworks` (pods outside `systemNamespaces`).
    pub defaults: Vec<NetworkRef>,
    pub selections: Vec<NetworkSelection>,
}

/// Reads the pod's annotations and the config into the list of networks to load. Applies
/// namespace isolation and system namespaces; a bad annotation is an error naming it.
pub fn requested_networks(
    conf: &MultinetConf,
    pod: Option<&PodInfo>,
) -> Result<Requested, MetaError> {
    let bad = |pod: &PodInfo, msg: String| MetaError::BadAnnotation {
        pod: pod.key(),
        msg,
    };
    // Multus: `clusterNetwork` wins over `delegates`; with `delegates`, the first is the cluster
    // network and the others are attached to every pod, and `defaultNetworks` is not read.
    let (mut cluster, mut defaults) = match &conf.cluster_network {
        Some(name) => (NetworkRef::Configured(name.clone()), Vec::new()),
        None => (
            NetworkRef::InlineDelegate(0),
            (1..conf.delegates.len())
                .map(NetworkRef::InlineDelegate)
                .collect(),
        ),
    };
    let mut selections = Vec::new();
    if let Some(pod) = pod {
        if let Some(value) = pod.annotations.get(DEFAULT_NETWORK_ANNOTATION) {
            let sel = parse_default_network(value).map_err(|e| bad(pod, e.to_string()))?;
            let ns = sel.namespace_or(&conf.multus_namespace);
            // Under isolation the pod's own namespace, the multinet namespace and the global
            // ones, as for the networks annotation.
            if conf.namespace_isolation
                && ns != pod.namespace
                && ns != conf.multus_namespace
                && !conf.global_namespace_list().contains(&ns)
            {
                return Err(bad(
                    pod,
                    format!(
                        "{DEFAULT_NETWORK_ANNOTATION}: network {ns}/{} is in another namespace, \
                         which namespaceIsolation forbids",
                        sel.name
                    ),
                ));
            }
            cluster = NetworkRef::Nad {
                namespace: ns.to_string(),
                name: sel.name.clone(),
            };
        }
        if conf.cluster_network.is_some() && !conf.is_system_namespace(&pod.namespace) {
            defaults = conf
                .default_networks
                .iter()
                .map(|n| NetworkRef::Configured(n.clone()))
                .collect();
        }
        if let Some(value) = pod.annotations.get(NETWORKS_ANNOTATION) {
            selections = parse_networks(value).map_err(|e| bad(pod, e.to_string()))?;
            // Resolve the default namespace once, so every later step sees a full reference.
            for sel in &mut selections {
                if sel.namespace.is_none() {
                    sel.namespace = Some(pod.namespace.clone());
                }
            }
        }
        if conf.namespace_isolation {
            let globals = conf.global_namespace_list();
            for (i, sel) in selections.iter().enumerate() {
                let ns = sel.namespace_or(&pod.namespace);
                if ns != pod.namespace && !globals.contains(&ns) {
                    return Err(bad(
                        pod,
                        format!(
                            "{NETWORKS_ANNOTATION}[{i}]: network {}/{} is in another namespace, \
                             which namespaceIsolation forbids (allowed: {} and {:?})",
                            ns, sel.name, pod.namespace, conf.global_namespaces
                        ),
                    ));
                }
            }
        }
    }
    let count = 1 + defaults.len() + selections.len();
    if count > conf.max_networks_per_pod {
        let what = pod.map_or_else(|| "the config".to_string(), PodInfo::key);
        return Err(MetaError::InvalidConfig(format!(
            "{what}: {count} networks (cluster network, defaultNetworks and the {NETWORKS_ANNOTATION} \
             annotation) are more than maxNetworksPerPod ({})",
            conf.max_networks_per_pod
        )));
    }
    Ok(Requested {
        cluster,
        defaults,
        selections,
    })
}

pub struct PlanInput<'a> {
    pub conf: &'a MultinetConf,
    /// CNI_CONTAINERID: names the attachments' device-info files.
    pub container_id: &'a str,
    /// CNI_IFNAME: the cluster network's interface.
    pub ifname: &'a str,
    pub cluster: LoadedNetwork,
    pub defaults: Vec<LoadedNetwork>,
    /// Annotation selections with their loaded networks, in annotation order.
    pub selected: Vec<(NetworkSelection, LoadedNetwork)>,
    /// Device IDs the pod holds, per resource name, sorted.
    pub device_ids: BTreeMap<String, Vec<String>>,
}

/// A finished plan: the attachments in order, and what the pod asked for that its networks'
/// plugins cannot take (ignored, as Multus ignores it; the caller tells the pod and the log).
#[derive(Debug, Clone)]
pub struct Plan {
    pub attachments: Vec<Attachment>,
    pub not_applied: Vec<NotApplied>,
}

/// Requests of one selection that no plugin of its network declares the capability for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    pub network: String,
    pub ifname: String,
    /// The capability names (`mac`, `ips`, `bandwidth`, `portMappings`, `infinibandGUID`).
    pub requests: Vec<String>,
}

impl std::fmt::Display for NotApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of network {} ({}) not applied: no plugin of the network declares the \
             capability",
            self.requests.join(", "),
            self.network,
            self.ifname
        )
    }
}

/// The interface name Multus gives a network the pod did not name: `net<its position in the
/// pod's list>`, the cluster network being position 0 (so the second entry of the annotation is
/// `net2` even when the first was named). Positions never shift to dodge a taken name.
fn positional_ifname(position: usize) -> String {
    format!("net{position}")
}

/// Orders the attachments (cluster network, then the extra inline delegates or defaultNetworks,
/// then the annotation's networks), names their interfaces (explicit, else `net<position>`) and
/// prepares their configs (device-info files included): the attachments come out finished. Two
/// networks with one interface name, or an unsatisfiable request, fail here, before anything is
/// created.
pub fn plan_attachments(input: PlanInput<'_>) -> Result<Plan, MetaError> {
    // Device IDs a selection names itself come first: they must be among the pod's own devices
    // for the NAD's resource, and the networks that take one automatically skip them.
    let mut given: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, (sel, net)) in input.selected.iter().enumerate() {
        let Some(id) = &sel.device_id else { continue };
        let at = format!("networks[{i}].deviceID");
        let Some(resource) = &net.resource_name else {
            return Err(MetaError::network(
                &net.key,
                format!(
                    "{at} {id:?}: a pod may only choose a device the kubelet gave it, and this \
                     NetworkAttachmentDefinition names no {} resource",
                    multinet_crds::RESOURCE_NAME_ANNOTATION
                ),
            ));
        };
        let held = input
            .device_ids
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if !held.contains(id) {
            return Err(MetaError::network(
                &net.key,
                format!(
                    "{at} {id:?} is not one of the pod's devices of resource {resource:?} \
                     (the pod holds {})",
                    held.len()
                ),
            ));
        }
        if !given.insert((resource.clone(), id.clone())) {
            return Err(MetaError::network(
                &net.key,
                format!("{at} {id:?} is given to another network of this pod"),
            ));
        }
    }
    let mut device_cursor: BTreeMap<String, usize> = BTreeMap::new();
    let mut take_device = |net: &LoadedNetwork| -> Result<Option<String>, MetaError> {
        let Some(resource) = &net.resource_name else {
            return Ok(None);
        };
        let free: Vec<&String> = input
            .device_ids
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|id| !given.contains(&(resource.clone(), (*id).clone())))
            .collect();
        let cursor = device_cursor.entry(resource.clone()).or_insert(0);
        let id = free.get(*cursor).map(|id| (*id).clone()).ok_or_else(|| {
            MetaError::network(
                &net.key,
                format!(
                    "needs a device of resource {resource:?} but the pod holds {} of them \
                     (request one more in the pod's resources)",
                    free.len() + given.iter().filter(|(r, _)| r == resource).count()
                ),
            )
        })?;
        *cursor += 1;
        Ok(Some(id))
    };

    let mut out = Vec::new();
    let mut cluster_conf = input.cluster.conf.clone();
    // The runtime's own runtimeConfig (portMappings, bandwidth, ...) goes to the cluster network.
    let _ = cluster_conf.inject_runtime_config(&input.conf.runtime_config);
    let cluster_device = take_device(&input.cluster)?;
    if let Some(id) = &cluster_device {
        cluster_conf.inject_device_id(id);
    }
    let mut cluster = Attachment::planned(&input.cluster.key, input.ifname, cluster_conf);
    cluster.is_default = true;
    cluster.device_id = cluster_device;
    cluster.resource_name = input.cluster.resource_name.clone();
    out.push(cluster);

    let mut not_applied = Vec::new();

    for net in &input.defaults {
        let mut conf = net.conf.clone();
        let device_id = take_device(net)?;
        if let Some(id) = &device_id {
            conf.inject_device_id(id);
        }
        let mut default = Attachment::planned(&net.key, positional_ifname(out.len()), conf);
        default.device_id = device_id;
        default.resource_name = net.resource_name.clone();
        out.push(default);
    }

    for (sel, net) in &input.selected {
        let mut conf = net.conf.clone();
        let device_id = match &sel.device_id {
            Some(id) => Some(id.clone()),
            None => take_device(net)?,
        };
        let mut runtime = Map::new();
        if !sel.ips.is_empty() {
            let ips: Vec<String> = sel.ips.iter().map(ToString::to_string).collect();
            runtime.insert("ips".into(), Value::from(ips));
        }
        if let Some(mac) = &sel.mac {
            runtime.insert("mac".into(), Value::String(mac.to_string()));
        }
        if !sel.port_mappings.is_empty() {
            runtime.insert("portMappings".into(), port_mappings_value(sel));
        }
        if let Some(bw) = &sel.bandwidth {
            runtime.insert(
                "bandwidth".into(),
                json!({"ingressRate": bw.ingress_rate, "ingressBurst": bw.ingress_burst,
                       "egressRate": bw.egress_rate, "egressBurst": bw.egress_burst}),
            );
        }
        if let Some(guid) = &sel.infiniband_guid {
            runtime.insert("infinibandGUID".into(), Value::String(guid.to_string()));
        }
        if let Some(id) = &device_id {
            runtime.insert("deviceID".into(), Value::String(id.clone()));
        }
        let missing = conf.inject_runtime_config(&runtime);
        // deviceID also travels as a top-level key, so a plugin need not declare the capability.
        let missing: Vec<String> = missing.into_iter().filter(|k| k != "deviceID").collect();
        let ifname = match &sel.interface {
            Some(name) => name.clone(),
            None => positional_ifname(out.len()),
        };
        if !missing.is_empty() {
            if input.conf.strict_capabilities {
                return Err(MetaError::network(
                    &net.key,
                    format!(
                        "the selection asks for {} but no plugin of this network declares the \
                         capability (strictCapabilities refuses such a pod)",
                        missing.join(", ")
                    ),
                ));
            }
            not_applied.push(NotApplied {
                network: net.key.clone(),
                ifname: ifname.clone(),
                requests: missing,
            });
        }
        if let Some(id) = &device_id {
            conf.inject_device_id(id);
        }
        if let Some(args) = &sel.cni_args {
            conf.inject_cni_args(args);
        }
        let mut selected = Attachment::planned(&net.key, ifname, conf);
        selected.device_id = device_id;
        selected.resource_name = net.resource_name.clone();
        selected.default_route = sel.default_route.clone();
        out.push(selected);
    }
    // The annotation's entries follow the cluster network and the defaults.
    let first_selection = 1 + input.defaults.len();
    let named: Vec<bool> = input
        .selected
        .iter()
        .map(|(sel, _)| sel.interface.is_some())
        .collect();
    refuse_shared_ifnames(&out, |position| {
        let i = position.checked_sub(first_selection)?;
        named.get(i)?.then(|| format!("networks[{i}].interface: "))
    })?;
    Ok(Plan {
        attachments: crate::call::devinfo::prepare(input.conf, input.container_id, out),
        not_applied,
    })
}

/// Two networks of one pod under one interface name fail the pod, as under Multus (whose
/// second ADD finds the name taken); here before anything is created, naming both.
/// `named_at(position)` says where the pod named the interface of the attachment at
/// `position` (`networks[i].interface: `), if it did.
fn refuse_shared_ifnames(
    attachments: &[Attachment],
    named_at: impl Fn(usize) -> Option<String>,
) -> Result<(), MetaError> {
    let mut seen: BTreeMap<&str, (usize, &Attachment)> = BTreeMap::new();
    for (position, a) in attachments.iter().enumerate() {
        if let Some((first_position, first)) = seen.insert(&a.ifname, (position, a)) {
            let by_position = [first_position, position]
                .iter()
                .any(|p| a.ifname == positional_ifname(*p));
            let hint = if by_position {
                format!(
                    "; a network the pod does not name gets net<its position> ({} here): name \
                     one of them in the annotation",
                    a.ifname
                )
            } else {
                String::new()
            };
            return Err(MetaError::network(
                &a.network,
                format!(
                    "{}interface {:?} is also the interface of network {} of this pod{hint}",
                    named_at(position).unwrap_or_default(),
                    a.ifname,
                    first.network
                ),
            ));
        }
    }
    Ok(())
}

/// `portMappings` as the CNI capability convention spells it (what the portmap plugin reads).
fn port_mappings_value(sel: &NetworkSelection) -> Value {
    Value::Array(
        sel.port_mappings
            .iter()
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.map_or("tcp", |p| p.as_str()).to_ascii_lowercase(),
                });
                if let Some(ip) = p.host_ip {
                    m["hostIP"] = Value::String(ip.to_string());
                }
                m
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn conf(extra: &str) -> MultinetConf {
        let text = format!(
            r#"{{"cniVersion":"1.0.0","name":"m","type":"multinet","clusterNetwork":"cluster"{extra}}}"#
        );
        MultinetConf::parse(text.as_bytes()).unwrap().0
    }

    fn pod(ns: &str, networks: Option<&str>) -> PodInfo {
        let mut annotations = BTreeMap::new();
        if let Some(n) = networks {
            annotations.insert(NETWORKS_ANNOTATION.to_string(), n.to_string());
        }
        PodInfo {
            namespace: ns.into(),
            name: "p".into(),
            uid: Some("u".into()),
            annotations,
            ..Default::default()
        }
    }

    fn net(key: &str, conf: Value, resource: Option<&str>) -> LoadedNetwork {
        LoadedNetwork {
            key: key.into(),
            conf: conf.into(),
            resource_name: resource.map(str::to_string),
        }
    }

    fn macvlan() -> Value {
        json!({"cniVersion":"1.0.0","name":"m","type":"macvlan","capabilities":{"ips":true,"mac":true}})
    }

    fn plan(
        c: &MultinetConf,
        p: &PodInfo,
        defaults: Vec<LoadedNetwork>,
    ) -> Result<Vec<Attachment>, MetaError> {
        plan_with_warnings(c, p, defaults).map(|p| p.attachments)
    }

    fn plan_with_warnings(
        c: &MultinetConf,
        p: &PodInfo,
        defaults: Vec<LoadedNetwork>,
    ) -> Result<Plan, MetaError> {
        let req = requested_networks(c, Some(p))?;
        let selected = req
            .selections
            .iter()
            .map(|s| {
                let key = format!("{}/{}", s.namespace_or(""), s.name);
                let resource = s.name.starts_with("sriov").then_some("intel.com/vf");
                (s.clone(), net(&key, macvlan(), resource))
            })
            .collect();
        let mut device_ids = BTreeMap::new();
        device_ids.insert(
            "intel.com/vf".to_string(),
            vec!["0000:af:06.0".to_string(), "0000:af:06.1".to_string()],
        );
        plan_attachments(PlanInput {
            conf: c,
            container_id: "c1",
            ifname: "eth0",
            cluster: net(
                "cluster",
                json!({"cniVersion":"1.0.0","name":"cluster","type":"bridge"}),
                None,
            ),
            defaults,
            selected,
            device_ids,
        })
    }

    #[test]
    fn order_and_names_cluster_then_defaults_then_annotation() {
        let c = conf(r#","defaultNetworks":["storage"]"#);
        let p = pod(
            "team",
            Some(r#"[{"name":"a","interface":"net2"},{"name":"b"},{"name":"c"}]"#),
        );
        let req = requested_networks(&c, Some(&p)).unwrap();
        assert_eq!(req.defaults, vec![NetworkRef::Configured("storage".into())]);
        let planned = plan(&c, &p, vec![net("storage", macvlan(), None)]).unwrap();
        let names: Vec<(&str, &str)> = planned
            .iter()
            .map(|a| (a.network.as_str(), a.ifname.as_str()))
            .collect();
        // Positions, as Multus counts them: defaultNetworks first.
        assert_eq!(
            names,
            vec![
                ("cluster", "eth0"),
                ("storage", "net1"),
                ("team/a", "net2"),
                ("team/b", "net3"),
                ("team/c", "net4")
            ]
        );
        assert!(planned[0].is_default && !planned[1].is_default);
    }

    #[test]
    fn system_namespaces_get_no_default_networks() {
        let c = conf(r#","defaultNetworks":["storage"]"#);
        let req = requested_networks(&c, Some(&pod("kube-system", None))).unwrap();
        assert!(req.defaults.is_empty());
    }

    #[test]
    fn default_network_annotation_replaces_the_cluster_network() {
        let c = conf("");
        let mut p = pod("team", None);
        p.annotations
            .insert(DEFAULT_NETWORK_ANNOTATION.into(), "calico-alt".into());
        let req = requested_networks(&c, Some(&p)).unwrap();
        assert_eq!(
            req.cluster,
            NetworkRef::Nad {
                namespace: "kube-system".into(),
                name: "calico-alt".into()
            }
        );
    }

    #[test]
    fn explicit_duplicate_and_cluster_name_clash_fail_before_anything() {
        let c = conf("");
        for networks in [r#"[{"name":"a","interface":"eth0"}]"#, "a@net5,b@net5"] {
            let err = plan(&c, &pod("team", Some(networks)), vec![]);
            assert!(err.is_err(), "{networks}");
        }
    }

    #[test]
    fn namespace_isolation_refuses_other_namespaces_but_allows_globals() {
        let c = conf(r#","namespaceIsolation":true,"globalNamespaces":"shared""#);
        let err = requested_networks(&c, Some(&pod("team", Some("other/a")))).unwrap_err();
        assert!(err.to_string().contains("namespaceIsolation"), "{err}");
        assert!(requested_networks(&c, Some(&pod("team", Some("shared/a,team/b,c")))).is_ok());
    }

    #[test]
    fn selection_requests_become_runtime_config_and_args() {
        let c = conf("");
        let p = pod(
            "team",
            Some(
                r#"[{"name":"a","ips":["10.1.1.5/24"],"mac":"02:00:00:00:00:05","cni-args":{"x":"y"}}]"#,
            ),
        );
        let planned = plan(&c, &p, vec![]).unwrap();
        let conf = &planned[1].conf;
        assert_eq!(conf["runtimeConfig"]["ips"], json!(["10.1.1.5/24"]));
        assert_eq!(conf["runtimeConfig"]["mac"], "02:00:00:00:00:05");
        assert_eq!(conf["args"]["cni"]["x"], "y");
    }

    #[test]
    fn a_request_no_plugin_can_take_is_ignored_and_reported_unless_strict() {
        let p = pod(
            "team",
            Some(
                r#"[{"name":"a","mac":"02:00:00:00:00:05","bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":1000,"egressBurst":10}}]"#,
            ),
        );
        // As Multus: the pod starts, the request the plugins cannot take is left out.
        let planned = plan_with_warnings(&conf(""), &p, vec![]).unwrap();
        let conf_a = &planned.attachments[1].conf;
        assert_eq!(conf_a["runtimeConfig"]["mac"], "02:00:00:00:00:05");
        assert_eq!(conf_a["runtimeConfig"].get("bandwidth"), None);
        assert_eq!(
            planned.not_applied,
            vec![NotApplied {
                network: "team/a".into(),
                ifname: "net1".into(),
                requests: vec!["bandwidth".into()],
            }]
        );
        assert!(planned.not_applied[0].to_string().contains("bandwidth"));
        // strictCapabilities keeps the refusal.
        let err = plan(&conf(r#","strictCapabilities":true"#), &p, vec![]).unwrap_err();
        assert!(
            err.to_string().contains("bandwidth") && err.to_string().contains("strictCapabilities"),
            "{err}"
        );
        assert_eq!(
            multinet_cni::CniError::from(err).code,
            multinet_cni::error::ErrorCode::InvalidConfig
        );
    }

    #[test]
    fn unnamed_networks_are_named_by_their_position_as_multus_names_them() {
        let c = conf("");
        let names = |networks: &str| -> Vec<String> {
            plan(&c, &pod("team", Some(networks)), vec![])
                .unwrap()
                .into_iter()
                .map(|a| a.ifname)
                .collect()
        };
        // The second entry is net2 although the first was named.
        assert_eq!(
            names(r#"[{"name":"a","interface":"data0"},{"name":"b"}]"#),
            ["eth0", "data0", "net2"]
        );
        assert_eq!(names("a,b@x,c"), ["eth0", "net1", "x", "net3"]);
        // A name that is another entry's position: Multus fails such a pod, so does multinet,
        // before anything is created, and says how to fix it.
        let err = plan(&c, &pod("team", Some("a@net2,b")), vec![]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"net2\"") && msg.contains("team/a") && msg.contains("position"),
            "{msg}"
        );
    }

    #[test]
    fn extra_inline_delegates_are_networks_of_every_pod() {
        let c = MultinetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"m","delegates":[{"type":"bridge","name":"cluster"},
                {"type":"macvlan","name":"extra"}],"defaultNetworks":["ignored"]}"#,
        )
        .unwrap()
        .0;
        for ns in ["team", "kube-system"] {
            let req = requested_networks(&c, Some(&pod(ns, Some("a")))).unwrap();
            assert_eq!(req.cluster, NetworkRef::InlineDelegate(0));
            assert_eq!(req.defaults, vec![NetworkRef::InlineDelegate(1)], "{ns}");
        }
        let req = requested_networks(&c, None).unwrap();
        assert_eq!(req.defaults, vec![NetworkRef::InlineDelegate(1)]);
        assert_eq!(c.ignored_settings().len(), 1, "{:?}", c.ignored_settings());
        // Named after the cluster network, before the annotation's networks.
        let planned = plan(
            &c,
            &pod("team", Some("a,b")),
            vec![net("extra", macvlan(), None)],
        )
        .unwrap();
        let names: Vec<(&str, &str)> = planned
            .iter()
            .map(|a| (a.network.as_str(), a.ifname.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("cluster", "eth0"),
                ("extra", "net1"),
                ("team/a", "net2"),
                ("team/b", "net3")
            ]
        );
    }

    #[test]
    fn device_ids_are_consumed_in_network_order() {
        let c = conf("");
        let planned = plan(&c, &pod("team", Some("sriov-a,sriov-b")), vec![]).unwrap();
        assert_eq!(planned[1].device_id.as_deref(), Some("0000:af:06.0"));
        assert_eq!(planned[2].device_id.as_deref(), Some("0000:af:06.1"));
        assert_eq!(planned[2].conf["deviceID"], "0000:af:06.1");
        assert_eq!(planned[2].conf["runtimeConfig"].get("deviceID"), None);
        // The device keeps its resource: the device plugin's file for it is named by both.
        assert_eq!(planned[2].resource_name.as_deref(), Some("intel.com/vf"));
        assert_eq!(
            planned[2]
                .device_info_file
                .as_ref()
                .and_then(|f| f.from_device_plugin.clone()),
            Some(std::path::PathBuf::from(
                "/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-vf-0000:af:06.1-device.json"
            ))
        );
        assert_eq!(planned[0].resource_name, None);
        let err = plan(&c, &pod("team", Some("sriov-a,sriov-b,sriov-c")), vec![]).unwrap_err();
        assert!(err.to_string().contains("intel.com/vf"), "{err}");
    }

    #[test]
    fn bad_annotations_name_the_annotation() {
        let c = conf("");
        for bad in ["Bad_Name", "[{\"name\":\"a\",\"mac\":\"zz\"}]", "[{\"nam"] {
            let err = requested_networks(&c, Some(&pod("team", Some(bad)))).unwrap_err();
            assert!(
                matches!(err, MetaError::BadAnnotation { .. }),
                "{bad}: {err}"
            );
        }
    }
}
