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
    /// The first of the inline `delegates`.
    InlineDelegate(usize),
    /// A NAD.
    Nad { namespace: String, name: String },
}

/// What the pod asks for: the networks to load, and the selections in annotation order.
#[derive(Debug, Clone)]
pub struct Requested {
    pub cluster: NetworkRef,
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
    let mut cluster = match &conf.cluster_network {
        Some(name) => NetworkRef::Configured(name.clone()),
        None => NetworkRef::InlineDelegate(0),
    };
    let mut defaults = Vec::new();
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
        if !conf.is_system_namespace(&pod.namespace) {
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

/// Orders the attachments (cluster network, then defaultNetworks, then the annotation's networks),
/// names their interfaces (explicit, else net1, net2, ... skipping taken names) and prepares their
/// configs (device-info files included): the attachments come out finished. Any duplicate name or
/// unsatisfiable request fails here, before anything is created.
pub fn plan_attachments(input: PlanInput<'_>) -> Result<Vec<Attachment>, MetaError> {
    let mut taken: BTreeSet<String> = BTreeSet::new();
    taken.insert(input.ifname.to_string());
    // Explicit names first, so automatic names never take them.
    for (i, (sel, net)) in input.selected.iter().enumerate() {
        if let Some(name) = &sel.interface
            && !taken.insert(name.clone())
        {
            return Err(MetaError::network(
                &net.key,
                format!("networks[{i}].interface: {name:?} is used by another network of this pod"),
            ));
        }
    }
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

    let mut next_index = 1usize;
    let mut auto_name = |taken: &mut BTreeSet<String>| loop {
        let name = format!("net{next_index}");
        next_index += 1;
        if taken.insert(name.clone()) {
            return name;
        }
    };

    for net in &input.defaults {
        let mut conf = net.conf.clone();
        let device_id = take_device(net)?;
        if let Some(id) = &device_id {
            conf.inject_device_id(id);
        }
        let mut default = Attachment::planned(&net.key, auto_name(&mut taken), conf);
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
        if !missing.is_empty() {
            return Err(MetaError::network(
                &net.key,
                format!(
                    "the selection asks for {} but no plugin of this network declares the \
                     capability",
                    missing.join(", ")
                ),
            ));
        }
        if let Some(id) = &device_id {
            conf.inject_device_id(id);
        }
        if let Some(args) = &sel.cni_args {
            conf.inject_cni_args(args);
        }
        let ifname = match &sel.interface {
            Some(name) => name.clone(),
            None => auto_name(&mut taken),
        };
        let mut selected = Attachment::planned(&net.key, ifname, conf);
        selected.device_id = device_id;
        selected.resource_name = net.resource_name.clone();
        selected.default_route = sel.default_route.clone();
        out.push(selected);
    }
    Ok(crate::call::devinfo::prepare(
        input.conf,
        input.container_id,
        out,
    ))
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
        // net2 is taken explicitly, so automatic names skip it.
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
    fn a_request_no_plugin_can_take_is_refused() {
        let c = conf("");
        let p = pod(
            "team",
            Some(
                r#"[{"name":"a","bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":1000,"egressBurst":10}}]"#,
            ),
        );
        let err = plan(&c, &p, vec![]).unwrap_err();
        assert!(err.to_string().contains("bandwidth"), "{err}");
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
