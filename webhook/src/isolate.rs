//! `/isolate`: pod CREATE. The selection annotations must parse, and with namespace isolation on,
//! `k8s.v1.cni.cncf.io/networks` may only select networks from the pod's own namespace or a
//! global one.
//!
//! The default-network annotation is parsed but not isolated: as in the plugin (and Multus), an
//! element without a namespace names the plugin's own namespace, and the cluster's operator, not
//! the pod's author, decides which networks are fit to replace the cluster network.

use std::collections::BTreeMap;

use kube::core::admission::{AdmissionResponse, Operation};
use multinet_crds::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, parse_default_network, parse_networks,
};

use crate::review::{Denial, Request, kind_label, object_namespace};

/// Which namespaces a pod may take networks from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationPolicy {
    /// Off: any namespace may be named.
    pub enabled: bool,
    /// Namespaces whose networks every pod may use.
    pub global_namespaces: Vec<String>,
}

impl Default for IsolationPolicy {
    /// Off, with `default` global as in the plugin's `globalNamespaces`.
    fn default() -> Self {
        Self {
            enabled: false,
            global_namespaces: vec!["default".to_owned()],
        }
    }
}

impl IsolationPolicy {
    fn allows(&self, pod_namespace: &str, network_namespace: &str) -> bool {
        !self.enabled
            || network_namespace == pod_namespace
            || self
                .global_namespaces
                .iter()
                .any(|g| g == network_namespace)
    }
}

/// The decision for one `/isolate` request.
pub fn isolate_pod(request: &Request, policy: &IsolationPolicy) -> AdmissionResponse {
    match check_pod_request(request, policy) {
        Ok(()) => AdmissionResponse::from(request),
        Err(denial) => denial.respond(request),
    }
}

fn check_pod_request(request: &Request, policy: &IsolationPolicy) -> Result<(), Denial> {
    if request.operation != Operation::Create {
        return Ok(());
    }
    if !request.kind.group.is_empty() || request.kind.kind != "Pod" {
        return Err(Denial::bad_request(format!(
            "this webhook checks v1 Pod objects, not {}",
            kind_label(request)
        )));
    }
    let Some(pod) = &request.object else {
        return Err(Denial::bad_request("the request carries no object"));
    };
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    check_pod_annotations(annotations, &object_namespace(request), policy)
}

/// Checks a pod's selection annotations.
pub fn check_pod_annotations(
    annotations: &BTreeMap<String, String>,
    pod_namespace: &str,
    policy: &IsolationPolicy,
) -> Result<(), Denial> {
    if let Some(value) = annotations.get(DEFAULT_NETWORK_ANNOTATION) {
        parse_default_network(value).map_err(|e| {
            Denial::bad_request(format!(
                "annotation {DEFAULT_NETWORK_ANNOTATION} is invalid: {e}"
            ))
        })?;
    }
    let Some(value) = annotations.get(NETWORKS_ANNOTATION) else {
        return Ok(());
    };
    let selections = parse_networks(value).map_err(|e| {
        Denial::bad_request(format!("annotation {NETWORKS_ANNOTATION} is invalid: {e}"))
    })?;
    for (index, selection) in selections.iter().enumerate() {
        let namespace = selection.namespace_or(pod_namespace);
        if !policy.allows(pod_namespace, namespace) {
            return Err(Denial::forbidden(format!(
                "annotation {NETWORKS_ANNOTATION}: networks[{index}] selects network \
                 {namespace}/{} from another namespace; with namespace isolation a pod in \
                 {pod_namespace:?} may only use networks from its own namespace or from {}",
                selection.name,
                global_list(&policy.global_namespaces)
            )));
        }
    }
    Ok(())
}

fn global_list(globals: &[String]) -> String {
    if globals.is_empty() {
        "no other namespace".to_owned()
    } else {
        globals.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::answer;
    use crate::review::tests::{response_of, review_json};
    use serde_json::json;

    fn isolated(globals: &[&str]) -> IsolationPolicy {
        IsolationPolicy {
            enabled: true,
            global_namespaces: globals.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NETS: &str = NETWORKS_ANNOTATION;
    const DEFAULT: &str = DEFAULT_NETWORK_ANNOTATION;

    /// (case, annotations, isolation on, None when admitted or Some((code, message part))).
    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<(
        &'static str,
        Vec<(&'static str, &'static str)>,
        bool,
        Option<(u16, &'static str)>,
    )> {
        vec![
            ("no annotations", vec![], true, None),
            ("one local network", vec![(NETS, "net1")], true, None),
            ("blank annotation", vec![(NETS, "  ")], true, None),
            ("empty JSON list", vec![(NETS, "[]")], true, None),
            (
                "own namespace named",
                vec![(NETS, "team/net1@eth1")],
                true,
                None,
            ),
            (
                "global namespace",
                vec![(NETS, "net1,default/shared")],
                true,
                None,
            ),
            (
                "second global namespace",
                vec![(NETS, r#"[{"name":"shared","namespace":"infra"}]"#)],
                true,
                None,
            ),
            (
                "other namespace, short form",
                vec![(NETS, "net1,other/net2")],
                true,
                Some((
                    403,
                    "annotation k8s.v1.cni.cncf.io/networks: networks[1] selects network other/net2 from another namespace; with namespace isolation a pod in \"team\" may only use networks from its own namespace or from default, infra",
                )),
            ),
            (
                "other namespace, JSON form",
                vec![(
                    NETS,
                    r#"[{"name":"net2","namespace":"other","interface":"net9"}]"#,
                )],
                true,
                Some((403, "networks[0] selects network other/net2")),
            ),
            (
                "other namespace without isolation",
                vec![(NETS, "other/net2")],
                false,
                None,
            ),
            (
                "bad short form",
                vec![(NETS, "a/b/c")],
                true,
                Some((
                    400,
                    "annotation k8s.v1.cni.cncf.io/networks is invalid: networks[0]",
                )),
            ),
            (
                "bad name",
                vec![(NETS, "net1,Net_2")],
                false,
                Some((400, "networks[1]")),
            ),
            (
                "bad JSON",
                vec![(NETS, r#"[{"name":"net1"]"#)],
                false,
                Some((400, "is not valid JSON")),
            ),
            (
                "bad MAC",
                vec![(NETS, r#"[{"name":"net1","mac":"zz"}]"#)],
                false,
                Some((400, "networks[0].mac: \"zz\" is not a MAC address")),
            ),
            (
                "duplicate interface",
                vec![(NETS, "net1@eth1,net2@eth1")],
                false,
                Some((400, "\"eth1\" is already requested by networks[0]")),
            ),
            (
                "bad default network",
                vec![(DEFAULT, "a,b")],
                false,
                Some((
                    400,
                    "annotation v1.multus-cni.io/default-network is invalid: default-network: must select exactly one network, found 2",
                )),
            ),
            (
                "default network from another namespace",
                vec![(DEFAULT, "kube-system/calico"), (NETS, "net1")],
                true,
                None,
            ),
            (
                "default network checked before networks",
                vec![(DEFAULT, "BAD"), (NETS, "other/net1")],
                true,
                Some((400, "default-network")),
            ),
        ]
    }

    #[test]
    fn annotation_table() {
        let cases = cases();
        assert!(cases.len() >= 15);
        for (case, pairs, enabled, expected) in cases {
            let policy = IsolationPolicy {
                enabled,
                ..isolated(&["default", "infra"])
            };
            let outcome = check_pod_annotations(&annotations(&pairs), "team", &policy);
            match (expected, outcome) {
                (None, Ok(())) => {}
                (Some((code, text)), Err(denial)) => {
                    assert_eq!(denial.code, code, "{case}: {denial:?}");
                    assert!(
                        denial.message.contains(text),
                        "{case}: {:?} does not contain {text:?}",
                        denial.message
                    );
                }
                (expected, outcome) => panic!("{case}: expected {expected:?}, got {outcome:?}"),
            }
        }
    }

    #[test]
    fn no_global_namespaces_is_said_plainly() {
        let denial =
            check_pod_annotations(&annotations(&[(NETS, "default/x")]), "team", &isolated(&[]))
                .unwrap_err();
        assert!(
            denial.message.ends_with("from no other namespace"),
            "{}",
            denial.message
        );
    }

    fn pod(namespace: Option<&str>, networks: &str) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {NETS: networks}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        });
        if let Some(ns) = namespace {
            pod["metadata"]["namespace"] = json!(ns);
        }
        pod
    }

    use serde_json::Value;

    #[test]
    fn the_request_namespace_counts_when_the_pod_has_none() {
        let policy = isolated(&[]);
        let body = review_json("", "Pod", "pods", "CREATE", "team", pod(None, "team/net1"));
        let response = response_of(&answer(&body, |r| isolate_pod(r, &policy)));
        assert_eq!(response["allowed"], true, "{response}");
        let body = review_json("", "Pod", "pods", "CREATE", "other", pod(None, "team/net1"));
        let response = response_of(&answer(&body, |r| isolate_pod(r, &policy)));
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 403);
    }

    #[test]
    fn only_pod_creation_is_checked() {
        let policy = isolated(&[]);
        let body = review_json("", "Pod", "pods", "UPDATE", "team", pod(None, "a/b/c"));
        assert_eq!(
            response_of(&answer(&body, |r| isolate_pod(r, &policy)))["allowed"],
            true
        );
        let body = review_json(
            "apps",
            "Deployment",
            "deployments",
            "CREATE",
            "team",
            json!({"metadata": {"name": "d"}}),
        );
        let response = response_of(&answer(&body, |r| isolate_pod(r, &policy)));
        assert_eq!(response["allowed"], false);
        assert_eq!(
            response["status"]["message"],
            "this webhook checks v1 Pod objects, not apps/v1 Deployment"
        );
    }
}
