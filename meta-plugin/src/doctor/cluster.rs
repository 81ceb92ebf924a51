//! The cluster's side of `multinet doctor`: the API and multinet's permissions there, the cluster
//! network, and one pod (`--pod`) from its annotation to its interfaces. Networks are resolved
//! and interfaces checked by the call's own code (`plan`, `resolve`, CHECK).

use std::path::PathBuf;

use multinet_cni::{CniEnv, Command, Plugin, Request};

use super::node::{self, RuntimeConfig};
use super::report::{Check, InterfaceState, PERMISSIONS, compare_interfaces};
use crate::call::attachment::LoadedNetwork;
use crate::call::plan::{self, NetworkRef};
use crate::call::podnet;
use crate::call::resolve;
use crate::call::source::kube::ClientReuse;
use crate::call::source::{AnySource, ClusterSource};
use crate::call::store::AttachmentRecord;
use crate::call::verbs::{self, MetaPlugin};

/// Where pods and NADs come from, with one check line saying so; None when there is no source
/// or it cannot be reached.
pub async fn source(conf: &RuntimeConfig, checks: &mut Vec<Check>) -> Option<AnySource> {
    match verbs::cluster_source(
        &conf.conf,
        ClientReuse::PerCall,
        &crate::metrics::Metrics::off(),
        None,
    )
    .await
    {
        Ok(Some(AnySource::Local(l))) => {
            let dir = conf.conf.local_dir.clone().unwrap_or_default();
            checks.push(Check::skip(
                "API",
                format!("pods and NADs come from localDir {}", dir.display()),
            ));
            Some(AnySource::Local(l))
        }
        Ok(Some(kube)) => Some(kube),
        Ok(None) => {
            checks.push(Check::fail(
                "API",
                "no kubeconfig, no localDir and no in-cluster service account: pods get only \
                 the cluster network",
                "run `multinet install` (it writes the kubeconfig), or set kubeconfig in the \
                 config",
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                "API",
                e.to_string(),
                "fix the kubeconfig (`multinet install` rewrites it from the service account)",
            ));
            None
        }
    }
}

/// Whether the API answers and allows each permission multinet needs; false when it did not
/// answer (later checks then leave it alone rather than wait for it again).
pub async fn permissions(source: Option<&AnySource>, checks: &mut Vec<Check>) -> bool {
    let Some(AnySource::Kube(kube)) = source else {
        return true;
    };
    let mut reached = false;
    for p in PERMISSIONS {
        let name = format!("may {}", p.spelled());
        match kube.may(p.verb, p.group, p.resource, p.subresource).await {
            Ok((true, _)) => {
                if !reached {
                    checks.push(Check::ok("API", "the kubeconfig reaches the API server"));
                    reached = true;
                }
                checks.push(Check::ok(name, format!("allowed ({})", p.why)));
            }
            Ok((false, reason)) => {
                if !reached {
                    checks.push(Check::ok("API", "the kubeconfig reaches the API server"));
                    reached = true;
                }
                let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
                checks.push(Check::fail(
                    name,
                    format!("denied{reason}; multinet needs it to {}", p.why),
                    format!(
                        "grant it to multinet's service account (the ClusterRole in \
                         deploy/rbac.yaml): `kubectl auth can-i {} --as \
                         system:serviceaccount:kube-system:multinet` must say yes",
                        p.spelled()
                    ),
                ));
            }
            Err(e) => {
                checks.push(Check::fail(
                    "API",
                    e.to_string(),
                    "check the kubeconfig's server and credentials, and that this node reaches \
                     the API server",
                ));
                return false;
            }
        }
    }
    true
}

/// Whether the cluster network's config is found, as ADD loads it.
pub async fn cluster_network(
    conf: &RuntimeConfig,
    source: Option<&AnySource>,
    checks: &mut Vec<Check>,
) -> Option<LoadedNetwork> {
    let requested = match plan::requested_networks(&conf.conf, None) {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail(
                "cluster network",
                e.to_string(),
                "correct the config",
            ));
            return None;
        }
    };
    match resolve::load(&requested.cluster, &conf.conf, source).await {
        Ok(network) => {
            checks.push(Check::ok(
                "cluster network",
                format!("{} ({})", network.key, network.conf.types().join(", ")),
            ));
            Some(network)
        }
        Err(e) => {
            checks.push(Check::fail(
                "cluster network",
                e.to_string(),
                "install the cluster network (its config file in confDir or the CNI config \
                 folder), or point clusterNetwork at it",
            ));
            None
        }
    }
}

/// `--pod NS/NAME`: its annotation, the networks it resolves to, its record, and its interfaces
/// compared with the record.
pub async fn pod(
    conf: &RuntimeConfig,
    source: Option<&AnySource>,
    records: &[AttachmentRecord],
    cni_path: &[PathBuf],
    namespace: &str,
    name: &str,
    checks: &mut Vec<Check>,
) {
    let key = format!("{namespace}/{name}");
    pod_networks(conf, source, namespace, name, checks).await;
    let Some(record) = records.iter().find(|r| {
        r.pod
            .as_ref()
            .is_some_and(|p| p.namespace == namespace && p.name == name)
    }) else {
        checks.push(Check::fail(
            "pod record",
            format!("no attachment record of {key} on this node"),
            "the runtime has not run ADD for it here: is the pod scheduled on this node, and \
             does its sandbox exist (crictl pods)?",
        ));
        return;
    };
    let attachments: Vec<String> = record
        .attachments
        .iter()
        .map(|a| format!("{} {} ({:?})", a.ifname, a.network, a.state).to_lowercase())
        .collect();
    checks.push(Check::ok(
        "pod record",
        format!(
            "container {}: {}",
            record.container_id,
            attachments.join(", ")
        ),
    ));
    interfaces(conf, record, cni_path, checks).await;
}

async fn pod_networks(
    conf: &RuntimeConfig,
    source: Option<&AnySource>,
    namespace: &str,
    name: &str,
    checks: &mut Vec<Check>,
) {
    let key = format!("{namespace}/{name}");
    let Some(source) = source else {
        checks.push(Check::skip(
            "pod annotation",
            "no cluster source to read the pod from (see the API check)",
        ));
        return;
    };
    let pod = match source.pod(namespace, name, None).await {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            checks.push(Check::fail(
                "pod annotation",
                format!("pod {key} not found"),
                "check the namespace and name (kubectl get pod -n NS NAME)",
            ));
            return;
        }
        Err(e) => {
            checks.push(Check::fail(
                "pod annotation",
                e.to_string(),
                "see the API checks above",
            ));
            return;
        }
    };
    let annotation = pod
        .annotations
        .get(multinet_crds::NETWORKS_ANNOTATION)
        .map_or_else(|| "none".to_string(), |a| format!("{a:?}"));
    let requested = match plan::requested_networks(&conf.conf, Some(&pod)) {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail(
                "pod annotation",
                e.to_string(),
                format!(
                    "correct the pod's {} annotation (the pod must be recreated)",
                    multinet_crds::NETWORKS_ANNOTATION
                ),
            ));
            return;
        }
    };
    checks.push(Check::ok(
        "pod annotation",
        format!("{}: {annotation}", multinet_crds::NETWORKS_ANNOTATION),
    ));
    let refs = requested
        .defaults
        .iter()
        .cloned()
        .chain(requested.selections.iter().map(|s| NetworkRef::Nad {
            namespace: s.namespace_or(namespace).to_string(),
            name: s.name.clone(),
        }));
    let mut found = Vec::new();
    for r in refs {
        match resolve::load(&r, &conf.conf, Some(source)).await {
            Ok(network) => found.push(format!(
                "{} ({})",
                network.key,
                network.conf.types().join(", ")
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "pod networks",
                    e.to_string(),
                    "create the NetworkAttachmentDefinition, or correct the annotation",
                ));
                return;
            }
        }
    }
    checks.push(Check::ok(
        "pod networks",
        if found.is_empty() {
            "the cluster network only".to_string()
        } else {
            found.join(", ")
        },
    ));
}

/// The pod's links against its record (names and MACs), then the CNI CHECK the runtime would
/// send, run by the call's own code.
async fn interfaces(
    conf: &RuntimeConfig,
    record: &AttachmentRecord,
    cni_path: &[PathBuf],
    checks: &mut Vec<Check>,
) {
    let name = "pod interfaces";
    let Some(netns) = record.netns.as_deref() else {
        checks.push(Check::skip(name, "the record names no network namespace"));
        return;
    };
    let links = match podnet::link_macs(std::path::Path::new(netns)) {
        Ok(Some(links)) => links,
        Ok(None) => {
            checks.push(Check::fail(
                name,
                format!("the pod's netns {netns} is gone"),
                "the sandbox is gone: its DEL or a CNI GC removes the record",
            ));
            return;
        }
        Err(e) => {
            checks.push(Check::fail(name, e.to_string(), "run doctor as root"));
            return;
        }
    };
    let recorded: Vec<(String, Option<String>)> = record
        .attachments
        .iter()
        .map(|a| (a.ifname.clone(), verbs::recorded_mac(a)))
        .collect();
    let wrong: Vec<String> = compare_interfaces(&recorded, &links)
        .into_iter()
        .filter_map(|(ifname, state)| match state {
            InterfaceState::Matches => None,
            InterfaceState::Missing => Some(format!("{ifname} is missing")),
            InterfaceState::OtherMac { recorded, found } => {
                Some(format!("{ifname} has MAC {found}, recorded {recorded}"))
            }
        })
        .collect();
    if !wrong.is_empty() {
        checks.push(Check::fail(
            name,
            format!("in {netns}: {}", wrong.join(", ")),
            "something changed the pod's interfaces after ADD: delete the pod so it is \
             recreated with its networks",
        ));
        return;
    }
    let present: Vec<&str> = recorded.iter().map(|(n, _)| n.as_str()).collect();
    checks.push(Check::ok(
        name,
        format!("{} present in {netns} as recorded", present.join(", ")),
    ));
    checks.push(check_call(conf, record, netns, cni_path).await);
}

/// The CNI CHECK of the pod's container as the runtime sends it, run here by the call's code.
async fn check_call(
    conf: &RuntimeConfig,
    record: &AttachmentRecord,
    netns: &str,
    cni_path: &[PathBuf],
) -> Check {
    let name = "pod CHECK";
    let version = &conf.conf.cni_version;
    // CHECK exists from CNI 0.4.0 on; the runtime does not send it to an older config.
    if version.is_empty()
        || version.starts_with("0.1")
        || version.starts_with("0.2")
        || version.starts_with("0.3")
    {
        return Check::skip(
            name,
            format!("cniVersion {version:?} has no CHECK (0.4.0 or later)"),
        );
    }
    let env = CniEnv {
        command: Command::Check,
        container_id: record.container_id.clone(),
        netns: Some(netns.into()),
        ifname: record
            .attachments
            .iter()
            .find(|a| a.is_default)
            .map_or_else(|| "eth0".to_string(), |a| a.ifname.clone()),
        args: record.cni_args.clone(),
        path: node::search_path(&conf.conf, cni_path),
    };
    let outcome = match Request::new(env, conf.stdin.clone(), Vec::new()) {
        Ok(request) => MetaPlugin::new().check(&request).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Check::ok(name, "every network's plugins pass CNI CHECK"),
        Err(e) => Check::fail(
            name,
            e.msg,
            "the plugin named here finds the attachment changed: delete the pod so it is \
             recreated",
        ),
    }
}
