//! Discovery documents: /version, /api, /apis and the per-group-version resource lists,
//! in both the classic form and the aggregated (apidiscovery.k8s.io/v2) form.

use serde_json::{Value, json};

use crate::resource::{ResourceDef, StatusSubresource};

/// The Content-Type of aggregated discovery responses.
pub(crate) const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery.
pub(crate) fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Groups other than core, each with its versions in order of first appearance.
fn groups(defs: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for def in defs.iter().filter(|d| !d.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == def.group) {
            Some((_, versions)) if !versions.contains(&def.version) => {
                versions.push(def.version.clone())
            }
            Some(_) => {}
            None => groups.push((def.group.clone(), vec![def.version.clone()])),
        }
    }
    groups
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/api`
pub(crate) fn core_versions(defs: &[ResourceDef], server_address: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for def in defs.iter().filter(|d| d.group.is_empty()) {
        if !versions.contains(&def.version.as_str()) {
            versions.push(&def.version);
        }
    }
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`
pub(crate) fn group_list(defs: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(defs).iter().map(|(g, v)| group_json(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, or None when the group is not served.
pub(crate) fn group(defs: &[ResourceDef], name: &str) -> Option<Value> {
    let (group, versions) = groups(defs).into_iter().find(|(g, _)| g == name)?;
    let mut doc = group_json(&group, &versions);
    if let Some(map) = doc.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(doc)
}

/// `/api/{version}` or `/apis/{group}/{version}`, or None when nothing is served there.
pub(crate) fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceDef> = defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for def in served {
        resources.push(json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": VERBS,
            "shortNames": def.short_names,
        }));
        if def.status != StatusSubresource::None {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_group(defs: &[ResourceDef], group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for def in defs.iter().filter(|d| d.group == group) {
        if !versions.contains(&def.version.as_str()) {
            versions.push(&def.version);
        }
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|version| {
            let resources: Vec<Value> = defs
                .iter()
                .filter(|d| d.group == group && d.version == version)
                .map(|def| {
                    let kind = json!({"group": def.group, "version": def.version, "kind": def.kind});
                    let subresources: Vec<Value> = if def.status == StatusSubresource::None {
                        Vec::new()
                    } else {
                        vec![json!({"subresource": "status", "responseKind": kind, "verbs": STATUS_VERBS})]
                    };
                    json!({
                        "resource": def.plural,
                        "responseKind": kind,
                        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": def.singular,
                        "verbs": VERBS,
                        "shortNames": def.short_names,
                        "subresources": subresources,
                    })
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// Aggregated discovery: the core group for `/api`, every other group for `/apis`.
pub(crate) fn aggregated(defs: &[ResourceDef], core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(defs, "")]
    } else {
        groups(defs)
            .iter()
            .map(|(g, _)| aggregated_group(defs, g))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_nad_group() {
        let defs = ResourceDef::defaults();
        let list = group_list(&defs);
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["events.k8s.io", "k8s.cni.cncf.io", "resource.k8s.io"]
        );
        assert_eq!(
            list["groups"][1]["preferredVersion"]["groupVersion"],
            "k8s.cni.cncf.io/v1"
        );
        assert!(group(&defs, "k8s.cni.cncf.io").is_some());
        assert!(group(&defs, "apps").is_none());
    }

    #[test]
    fn resource_lists_include_status_subresources() {
        let defs = ResourceDef::defaults();
        let core = resource_list(&defs, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "pods",
                "pods/status",
                "events",
                "nodes",
                "nodes/status",
                "configmaps"
            ]
        );
        let nads = resource_list(&defs, "k8s.cni.cncf.io", "v1").unwrap();
        assert_eq!(nads["resources"][0]["kind"], "NetworkAttachmentDefinition");
        assert_eq!(nads["resources"][0]["namespaced"], true);
        assert!(resource_list(&defs, "k8s.cni.cncf.io", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_is_negotiated() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
        let defs = ResourceDef::defaults();
        let core = aggregated(&defs, true);
        assert_eq!(
            core["items"][0]["versions"][0]["resources"][0]["resource"],
            "pods"
        );
        let groups = aggregated(&defs, false);
        assert_eq!(groups["items"][1]["metadata"]["name"], "k8s.cni.cncf.io");
        assert_eq!(
            groups["items"][1]["versions"][0]["resources"][0]["scope"],
            "Namespaced"
        );
    }
}
