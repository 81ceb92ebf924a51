//! `/mutate`: pod CREATE. For each network a pod selects, the NAD's device-plugin resource
//! (`k8s.v1.cni.cncf.io/resourceName`, or the configured keys) is requested on one container:
//! the one the pod names in `multinet.io/resources-container`, else the first (a name that is not
//! a container of the pod is refused, never ignored). The NAD's `k8s.v1.cni.cncf.io/nodeSelector`
//! is merged into the pod's, and, when a resource was injected, the `podnetinfo` downward-API
//! volume (labels, annotations and, when switched on, each container's hugepages as
//! `hugepages_<size>_<request|limit>_<container>` in MiB, with `CONTAINER_NAME` in its
//! environment) is mounted read-only at `/etc/podnetinfo` in every container, where device-info
//! consumers read it. User-defined injections of the control ConfigMap
//! ([`crate::control`]) add annotations to labelled pods first, so an injected networks
//! annotation selects networks as if the pod had it.
//!
//! NADs come through [`NadLookup`]; the server looks up [`nads_to_look_up`] first, so the decision
//! itself never waits on the network.

use std::collections::{BTreeMap, HashMap};

use kube::core::admission::{AdmissionResponse, Operation};
use multinet_crds::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkAttachmentDefinition,
    RESOURCE_NAME_ANNOTATION, parse_default_network, parse_networks,
};
use serde_json::{Map, Value, json};

use crate::control::Switches;
use crate::review::{Denial, Request, kind_label, object_namespace};

/// Pod annotation naming the container that gets the networks' resources.
pub const RESOURCES_CONTAINER_ANNOTATION: &str = "multinet.io/resources-container";
/// Environment variable telling a container its own name, for its hugepages files.
pub const CONTAINER_NAME_ENV: &str = "CONTAINER_NAME";

/// NAD annotation restricting the nodes its pods may run on, as one `key=value` label.
pub const NODE_SELECTOR_ANNOTATION: &str = "k8s.v1.cni.cncf.io/nodeSelector";
/// Name of the downward-API volume holding the pod's labels and annotations.
pub const PODNETINFO_VOLUME: &str = "podnetinfo";
/// Where every container sees [`PODNETINFO_VOLUME`].
pub const PODNETINFO_MOUNT_PATH: &str = "/etc/podnetinfo";

/// How `/mutate` behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectorOptions {
    /// NAD annotations naming a resource; each one set adds one unit of that resource.
    pub resource_name_keys: Vec<String>,
    /// When a container already asks for a resource: false leaves the pod's numbers alone, true
    /// adds the count to the first container's.
    pub honor_resources: bool,
    /// Pods in these namespaces are left alone (`kube-system` and the webhook's own, so the
    /// webhook can always be started).
    pub skip_namespaces: Vec<String>,
    /// Where a default-network element without a namespace is looked up: multinet's namespace.
    pub default_network_namespace: String,
    /// Expose each container's hugepages requests and limits in the `podnetinfo` volume.
    pub hugepages_downward_api: bool,
    /// Pod label key → annotations added to pods labelled `<key>: "true"`.
    pub user_injections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for InjectorOptions {
    fn default() -> Self {
        Self {
            resource_name_keys: vec![RESOURCE_NAME_ANNOTATION.to_owned()],
            honor_resources: false,
            skip_namespaces: vec!["kube-system".to_owned()],
            default_network_namespace: "kube-system".to_owned(),
            hugepages_downward_api: false,
            user_injections: BTreeMap::new(),
        }
    }
}

impl InjectorOptions {
    /// These options with the control ConfigMap's switches applied: a feature it names wins
    /// over the flag; its injections are the only ones.
    pub fn with_switches(&self, switches: &Switches) -> InjectorOptions {
        InjectorOptions {
            honor_resources: switches.honor_resources.unwrap_or(self.honor_resources),
            hugepages_downward_api: switches
                .hugepages_downward_api
                .unwrap_or(self.hugepages_downward_api),
            user_injections: switches.user_injections.clone(),
            ..self.clone()
        }
    }
}

/// A NAD by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NadRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl NadRef {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for NadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where NADs come from during a decision.
pub trait NadLookup {
    /// The NAD, `None` when it does not exist, or why it could not be read.
    fn nad(&self, nad: &NadRef) -> Result<Option<&NetworkAttachmentDefinition>, String>;
}

/// NADs already looked up: what the server hands the decision, and what tests fill by hand.
#[derive(Debug, Default, Clone)]
pub struct FetchedNads {
    results: HashMap<NadRef, Result<Option<NetworkAttachmentDefinition>, String>>,
}

impl FetchedNads {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the outcome of looking `nad` up.
    pub fn record(
        &mut self,
        nad: NadRef,
        outcome: Result<Option<NetworkAttachmentDefinition>, String>,
    ) {
        self.results.insert(nad, outcome);
    }

    /// Records an existing NAD under its own namespace and name.
    pub fn found(&mut self, nad: NetworkAttachmentDefinition) {
        let key = NadRef::new(
            nad.metadata.namespace.clone().unwrap_or_default(),
            nad.metadata.name.clone().unwrap_or_default(),
        );
        self.results.insert(key, Ok(Some(nad)));
    }
}

impl NadLookup for FetchedNads {
    fn nad(&self, nad: &NadRef) -> Result<Option<&NetworkAttachmentDefinition>, String> {
        match self.results.get(nad) {
            Some(Ok(found)) => Ok(found.as_ref()),
            Some(Err(e)) => Err(e.clone()),
            // A NAD the server did not look up is an error, never "absent".
            None => Err("it was not looked up".to_owned()),
        }
    }
}

/// One network the pod selects: where in the annotations, and which NAD.
struct Selected {
    /// `networks[1]` or `default-network`.
    label: String,
    nad: NadRef,
}

/// What `/mutate` reads of a pod it acts on: the networks it selects (with user-defined
/// injections applied) and the annotations those injections add.
#[derive(Default)]
struct PodView {
    selected: Vec<Selected>,
    injected: BTreeMap<String, String>,
}

/// The annotations user-defined injections add to a pod with these labels and annotations: of
/// every injection whose label the pod carries as `"true"` (any case), in label order, each key
/// the pod does not already have (its own annotation wins, and so does the first injection).
fn injected_annotations(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    options: &InjectorOptions,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(labels) = labels else {
        return out;
    };
    for (label, adds) in &options.user_injections {
        if !labels
            .get(label)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            continue;
        }
        for (key, value) in adds {
            if annotations.is_some_and(|a| a.contains_key(key)) || out.contains_key(key) {
                continue;
            }
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

/// The pod, when it is one `/mutate` acts on, and its networks.
fn selections(request: &Request, options: &InjectorOptions) -> Result<PodView, Denial> {
    if request.operation != Operation::Create {
        return Ok(PodView::default());
    }
    if !request.kind.group.is_empty() || request.kind.kind != "Pod" {
        return Err(Denial::bad_request(format!(
            "this webhook mutates v1 Pod objects, not {}",
            kind_label(request)
        )));
    }
    let pod_namespace = object_namespace(request);
    if options.skip_namespaces.contains(&pod_namespace) {
        return Ok(PodView::default());
    }
    let Some(pod) = &request.object else {
        return Err(Denial::bad_request("the request carries no object"));
    };
    let own = pod.metadata.annotations.as_ref();
    let injected = injected_annotations(pod.metadata.labels.as_ref(), own, options);
    let annotation = |key: &str| {
        own.and_then(|a| a.get(key))
            .or_else(|| injected.get(key))
            .cloned()
    };
    let mut selected = Vec::new();
    if let Some(value) = annotation(DEFAULT_NETWORK_ANNOTATION) {
        let selection = parse_default_network(&value).map_err(|e| {
            Denial::bad_request(format!(
                "annotation {DEFAULT_NETWORK_ANNOTATION} is invalid: {e}"
            ))
        })?;
        let namespace = selection.namespace_or(&options.default_network_namespace);
        selected.push(Selected {
            label: "default-network".to_owned(),
            nad: NadRef::new(namespace, &selection.name),
        });
    }
    if let Some(value) = annotation(NETWORKS_ANNOTATION) {
        let list = parse_networks(&value).map_err(|e| {
            Denial::bad_request(format!("annotation {NETWORKS_ANNOTATION} is invalid: {e}"))
        })?;
        for (index, selection) in list.iter().enumerate() {
            selected.push(Selected {
                label: format!("networks[{index}]"),
                nad: NadRef::new(selection.namespace_or(&pod_namespace), &selection.name),
            });
        }
    }
    Ok(PodView { selected, injected })
}

/// The NADs [`mutate_pod`] will ask for, each once. Empty when the pod is left alone or its
/// annotations do not parse (the decision reports that).
pub fn nads_to_look_up(request: &Request, options: &InjectorOptions) -> Vec<NadRef> {
    let mut refs: Vec<NadRef> = selections(request, options)
        .unwrap_or_default()
        .selected
        .into_iter()
        .map(|s| s.nad)
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// The decision for one `/mutate` request.
pub fn mutate_pod(
    request: &Request,
    lookup: &dyn NadLookup,
    options: &InjectorOptions,
) -> AdmissionResponse {
    let outcome = pod_patch(request, lookup, options).and_then(|ops| {
        let allowed = AdmissionResponse::from(request);
        if ops.is_empty() {
            return Ok(allowed);
        }
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
            .map_err(|e| Denial::internal(format!("building the patch: {e}")))?;
        allowed
            .with_patch(patch)
            .map_err(|e| Denial::internal(e.to_string()))
    });
    outcome.unwrap_or_else(|denial| denial.respond(request))
}

/// The JSONPatch operations for the pod under review; empty when nothing changes.
pub fn pod_patch(
    request: &Request,
    lookup: &dyn NadLookup,
    options: &InjectorOptions,
) -> Result<Vec<Value>, Denial> {
    let view = selections(request, options)?;
    let mut pod = crate::review::object_json(request);
    let mut ops = Vec::new();
    annotation_ops(&pod, &view.injected, &mut ops);
    // From here on the pod is read as it will be: with the injected annotations.
    if !view.injected.is_empty()
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            for (key, value) in &view.injected {
                annotations.insert(key.clone(), json!(value));
            }
        }
    }
    if view.selected.is_empty() {
        return Ok(ops);
    }
    let wants = collect_wants(&view.selected, lookup, options)?;
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let target = resources_container(&pod, &spec, &wants.resources)?;
    let injected = resource_ops(
        &spec,
        target,
        &wants.resources,
        options.honor_resources,
        &mut ops,
    )?;
    node_selector_ops(&spec, &wants.node_selector, &mut ops)?;
    if injected {
        let hugepages = match options.hugepages_downward_api {
            true => hugepages_ops(&spec, &mut ops),
            false => Vec::new(),
        };
        podnetinfo_ops(&pod, &spec, &hugepages, &mut ops);
    }
    Ok(ops)
}

/// What the selected NADs ask of the pod.
#[derive(Default)]
struct Wants {
    /// Units of each resource, by resource name.
    resources: BTreeMap<String, u64>,
    /// Node labels, with the NAD that asked for each (for conflict messages).
    node_selector: BTreeMap<String, (String, NadRef)>,
}

fn collect_wants(
    selected: &[Selected],
    lookup: &dyn NadLookup,
    options: &InjectorOptions,
) -> Result<Wants, Denial> {
    let mut wants = Wants::default();
    for Selected {
        label,
        nad: nad_ref,
    } in selected
    {
        let nad = lookup
            .nad(nad_ref)
            .map_err(|e| {
                Denial::internal(format!(
                    "{label}: cannot read NetworkAttachmentDefinition {nad_ref}: {e}"
                ))
            })?
            .ok_or_else(|| {
                Denial::bad_request(format!(
                    "{label} selects NetworkAttachmentDefinition {nad_ref}, which does not exist"
                ))
            })?;
        let Some(annotations) = &nad.metadata.annotations else {
            continue;
        };
        for key in &options.resource_name_keys {
            if let Some(resource) = annotations.get(key).map(|v| v.trim())
                && !resource.is_empty()
            {
                *wants.resources.entry(resource.to_owned()).or_default() += 1;
            }
        }
        let Some(selector) = annotations
            .get(NODE_SELECTOR_ANNOTATION)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let (key, value) = selector
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.contains('='))
            .ok_or_else(|| {
                Denial::bad_request(format!(
                    "{label}: NetworkAttachmentDefinition {nad_ref} has annotation \
                     {NODE_SELECTOR_ANNOTATION} {selector:?}, which is not one key=value label"
                ))
            })?;
        match wants.node_selector.get(key) {
            Some((earlier, by)) if earlier != value => {
                return Err(Denial::bad_request(format!(
                    "{label}: NetworkAttachmentDefinition {nad_ref} needs node label \
                     {key}={value} but {by} needs {key}={earlier}"
                )));
            }
            _ => {
                wants
                    .node_selector
                    .insert(key.to_owned(), (value.to_owned(), nad_ref.clone()));
            }
        }
    }
    Ok(wants)
}

/// A JSON pointer token: `~` and `/` escaped (resource names hold a `/`).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn add(path: String, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

fn containers(spec: &Value) -> &[Value] {
    spec.get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A quantity of an extended resource: a whole number, as a string or (loosely) a number.
fn whole_quantity(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The annotations user-defined injections add, as patch operations.
fn annotation_ops(pod: &Value, injected: &BTreeMap<String, String>, ops: &mut Vec<Value>) {
    if injected.is_empty() {
        return;
    }
    if pod
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        for (key, value) in injected {
            ops.push(add(
                format!("/metadata/annotations/{}", pointer_token(key)),
                json!(value),
            ));
        }
    } else {
        ops.push(add("/metadata/annotations".to_owned(), json!(injected)));
    }
}

/// The index of the container that gets the resources: the one the pod names in
/// [`RESOURCES_CONTAINER_ANNOTATION`], else the first. Refused when resources are wanted and
/// there is no such container: a pod's networks are never silently left without their devices.
fn resources_container(
    pod: &Value,
    spec: &Value,
    wants: &BTreeMap<String, u64>,
) -> Result<usize, Denial> {
    let containers = containers(spec);
    let names = || {
        containers
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = pointer_token(RESOURCES_CONTAINER_ANNOTATION);
    match pod
        .pointer(&format!("/metadata/annotations/{key}"))
        .and_then(Value::as_str)
    {
        Some(wanted) => containers
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(wanted.trim()))
            .ok_or_else(|| {
                Denial::bad_request(format!(
                    "annotation {RESOURCES_CONTAINER_ANNOTATION} names container {wanted:?}, \
                     which is not one of the pod's containers ({})",
                    names()
                ))
            }),
        None if containers.is_empty() && !wants.is_empty() => Err(Denial::bad_request(
            "the pod has no container to request its networks' resources on",
        )),
        None => Ok(0),
    }
}

/// Adds requests and limits on container `target`; true when anything was added.
fn resource_ops(
    spec: &Value,
    target: usize,
    wants: &BTreeMap<String, u64>,
    honor_resources: bool,
    ops: &mut Vec<Value>,
) -> Result<bool, Denial> {
    let containers = containers(spec);
    let Some(first) = containers.get(target) else {
        // Nothing is wanted (a missing container with wants was refused above).
        return Ok(false);
    };
    let asked_anywhere = |resource: &str| {
        containers.iter().any(|c| {
            ["requests", "limits"].iter().any(|m| {
                c.pointer(&format!("/resources/{m}"))
                    .and_then(|m| m.get(resource))
                    .is_some()
            })
        })
    };
    let resources = first.get("resources").and_then(Value::as_object);
    let mut new: [(&str, Map<String, Value>); 2] =
        [("requests", Map::new()), ("limits", Map::new())];
    for (resource, count) in wants {
        let already_asked = asked_anywhere(resource);
        if already_asked && !honor_resources {
            continue;
        }
        for (map, values) in &mut new {
            let map = *map;
            let existing = resources
                .and_then(|r| r.get(map))
                .and_then(|m| m.get(resource));
            let base = match existing {
                Some(quantity) if already_asked => whole_quantity(quantity).ok_or_else(|| {
                    Denial::bad_request(format!(
                        "spec.containers[{target}].resources.{map}[{resource:?}] is {quantity}, \
                         not a whole number the network's {count} can be added to"
                    ))
                })?,
                _ => 0,
            };
            values.insert(resource.clone(), json!((base + count).to_string()));
        }
    }
    if new.iter().all(|(_, values)| values.is_empty()) {
        return Ok(false);
    }
    let base = format!("/spec/containers/{target}/resources");
    match resources {
        None => {
            let all: Map<String, Value> = new
                .into_iter()
                .map(|(map, values)| (map.to_owned(), Value::Object(values)))
                .collect();
            ops.push(add(base, Value::Object(all)));
        }
        Some(resources) => {
            for (map, values) in new.into_iter().filter(|(_, v)| !v.is_empty()) {
                if resources.get(map).is_some_and(Value::is_object) {
                    for (resource, quantity) in values {
                        let path = format!("{base}/{map}/{}", pointer_token(&resource));
                        ops.push(add(path, quantity));
                    }
                } else {
                    ops.push(add(format!("{base}/{map}"), Value::Object(values)));
                }
            }
        }
    }
    Ok(true)
}

fn node_selector_ops(
    spec: &Value,
    wants: &BTreeMap<String, (String, NadRef)>,
    ops: &mut Vec<Value>,
) -> Result<(), Denial> {
    if wants.is_empty() {
        return Ok(());
    }
    let Some(existing) = spec.get("nodeSelector").and_then(Value::as_object) else {
        let selector: Map<String, Value> = wants
            .iter()
            .map(|(k, (v, _))| (k.clone(), json!(v)))
            .collect();
        ops.push(add(
            "/spec/nodeSelector".to_owned(),
            Value::Object(selector),
        ));
        return Ok(());
    };
    for (key, (value, nad)) in wants {
        match existing.get(key).and_then(Value::as_str) {
            Some(current) if current == value => {}
            Some(current) => {
                return Err(Denial::bad_request(format!(
                    "NetworkAttachmentDefinition {nad} needs node label {key}={value} \
                     but spec.nodeSelector asks for {key}={current}"
                )));
            }
            None => ops.push(add(
                format!("/spec/nodeSelector/{}", pointer_token(key)),
                json!(value),
            )),
        }
    }
    Ok(())
}

/// Whether a quantity is zero ("0", "0Gi", 0); anything else, even unparsable, counts as set
/// (the API server validates quantities).
fn is_zero_quantity(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => {
            let digits: String = s
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            digits.parse::<f64>().is_ok_and(|n| n == 0.0)
        }
        _ => true,
    }
}

/// The downward-API files for every container's hugepages (requests and limits, in MiB), and
/// the `CONTAINER_NAME` variable of each such container (so it knows which files are its own).
fn hugepages_ops(spec: &Value, ops: &mut Vec<Value>) -> Vec<Value> {
    let mut items = Vec::new();
    for (index, container) in containers(spec).iter().enumerate() {
        let Some(name) = container.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut found = false;
        for (map, kind) in [("requests", "request"), ("limits", "limit")] {
            let Some(quantities) = container
                .pointer(&format!("/resources/{map}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (resource, quantity) in quantities {
                let Some(size) = resource.strip_prefix("hugepages-") else {
                    continue;
                };
                if is_zero_quantity(quantity) {
                    continue;
                }
                found = true;
                items.push(json!({
                    "path": format!("hugepages_{}_{kind}_{name}", size.replace('i', "")),
                    "resourceFieldRef": {"containerName": name, "resource": format!("{map}.{resource}"),
                                         "divisor": "1Mi"}
                }));
            }
        }
        if !found {
            continue;
        }
        let env = container.get("env").and_then(Value::as_array);
        if env.is_some_and(|e| {
            e.iter()
                .any(|v| v.get("name") == Some(&json!(CONTAINER_NAME_ENV)))
        }) {
            continue;
        }
        let var = json!({"name": CONTAINER_NAME_ENV, "value": name});
        let path = format!("/spec/containers/{index}/env");
        match env {
            Some(_) => ops.push(add(format!("{path}/-"), var)),
            None => ops.push(add(path, json!([var]))),
        }
    }
    items
}

fn podnetinfo_ops(pod: &Value, spec: &Value, extra_items: &[Value], ops: &mut Vec<Value>) {
    let volumes = spec.get("volumes").and_then(Value::as_array);
    let has_volume = volumes.is_some_and(|v| {
        v.iter()
            .any(|v| v.get("name") == Some(&json!(PODNETINFO_VOLUME)))
    });
    if !has_volume {
        let non_empty = |field: &str| {
            pod.pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        };
        let items: Vec<Value> = ["labels", "annotations"]
            .into_iter()
            .filter(|field| non_empty(field))
            .map(|field| json!({"path": field, "fieldRef": {"fieldPath": format!("metadata.{field}")}}))
            .chain(extra_items.iter().cloned())
            .collect();
        let volume = json!({"name": PODNETINFO_VOLUME, "downwardAPI": {"items": items}});
        match volumes {
            Some(_) => ops.push(add("/spec/volumes/-".to_owned(), volume)),
            None => ops.push(add("/spec/volumes".to_owned(), json!([volume]))),
        }
    }
    let mount =
        json!({"name": PODNETINFO_VOLUME, "mountPath": PODNETINFO_MOUNT_PATH, "readOnly": true});
    for (index, container) in containers(spec).iter().enumerate() {
        let mounts = container.get("volumeMounts").and_then(Value::as_array);
        // A mount of the volume, or anything else at that path, is the pod's own choice.
        let has_mount = mounts.is_some_and(|mounts| {
            mounts.iter().any(|m| {
                m.get("name") == Some(&json!(PODNETINFO_VOLUME))
                    || m.get("mountPath") == Some(&json!(PODNETINFO_MOUNT_PATH))
            })
        });
        if has_mount {
            continue;
        }
        let base = format!("/spec/containers/{index}/volumeMounts");
        match mounts {
            Some(_) => ops.push(add(format!("{base}/-"), mount.clone())),
            None => ops.push(add(base, json!([mount.clone()]))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::answer;
    use crate::review::tests::{response_of, review_json};
    use base64::prelude::{BASE64_STANDARD, Engine as _};

    const SRIOV_A: &str = "intel.com/sriov_a";
    const ALT_KEY: &str = "example.com/device";

    fn nad(
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> NetworkAttachmentDefinition {
        let annotations: Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"config": r#"{"type":"sriov"}"#}
        }))
        .unwrap()
    }

    fn cluster() -> FetchedNads {
        let mut nads = FetchedNads::new();
        nads.found(nad(
            "team",
            "sriov-a",
            &[(RESOURCE_NAME_ANNOTATION, SRIOV_A)],
        ));
        nads.found(nad(
            "team",
            "sriov-b",
            &[
                (RESOURCE_NAME_ANNOTATION, "intel.com/sriov_b"),
                (NODE_SELECTOR_ANNOTATION, "sriov=true"),
            ],
        ));
        nads.found(nad("team", "plain", &[]));
        nads.found(nad(
            "team",
            "zone-a",
            &[(NODE_SELECTOR_ANNOTATION, "topology/zone = a")],
        ));
        nads.found(nad(
            "team",
            "zone-b",
            &[(NODE_SELECTOR_ANNOTATION, "topology/zone=b")],
        ));
        nads.found(nad(
            "team",
            "bad-selector",
            &[(NODE_SELECTOR_ANNOTATION, "sriov")],
        ));
        nads.found(nad("team", "alt", &[(ALT_KEY, "example.com/alt")]));
        nads.found(nad(
            "infra",
            "shared",
            &[(RESOURCE_NAME_ANNOTATION, SRIOV_A)],
        ));
        nads.found(nad(
            "kube-system",
            "fast-default",
            &[(RESOURCE_NAME_ANNOTATION, "example.com/dflt")],
        ));
        nads.record(NadRef::new("team", "ghost"), Ok(None));
        nads.record(
            NadRef::new("team", "broken"),
            Err("the server is currently unable to handle the request".to_owned()),
        );
        nads
    }

    fn pod(annotations: Value, spec: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team", "annotations": annotations},
            "spec": spec
        })
    }

    fn nets(value: &str) -> Value {
        json!({ NETWORKS_ANNOTATION: value })
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "app", "image": "busybox", "resources": {}}]})
    }

    fn outcome(
        pod: Value,
        namespace: &str,
        options: &InjectorOptions,
    ) -> Result<Vec<Value>, Denial> {
        let body = review_json("", "Pod", "pods", "CREATE", namespace, pod);
        let request = crate::review::parse_review(&body).unwrap();
        pod_patch(&request, &cluster(), options)
    }

    fn volume(items: &[&str]) -> Value {
        let items: Vec<Value> = items
            .iter()
            .map(|f| json!({"path": f, "fieldRef": {"fieldPath": format!("metadata.{f}")}}))
            .collect();
        json!({"name": "podnetinfo", "downwardAPI": {"items": items}})
    }

    fn mount() -> Value {
        json!({"name": "podnetinfo", "mountPath": "/etc/podnetinfo", "readOnly": true})
    }

    fn honor() -> InjectorOptions {
        InjectorOptions {
            honor_resources: true,
            ..InjectorOptions::default()
        }
    }

    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<(
        &'static str,
        Value,
        InjectorOptions,
        Result<Value, (u16, &'static str)>,
    )> {
        let defaults = InjectorOptions::default;
        vec![
            (
                "no annotations",
                pod(json!({}), one_container()),
                defaults(),
                Ok(json!([])),
            ),
            (
                "a network without a resource",
                pod(nets("plain"), one_container()),
                defaults(),
                Ok(json!([])),
            ),
            (
                "one resource, empty resources",
                pod(nets("sriov-a"), one_container()),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {SRIOV_A: "1"}},
                    {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {SRIOV_A: "1"}},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "no resources object at all",
                pod(nets("sriov-a"), json!({"containers": [{"name": "app"}]})),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources",
                     "value": {"requests": {SRIOV_A: "1"}, "limits": {SRIOV_A: "1"}}},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "existing maps get escaped keys; counts add up across networks",
                pod(
                    nets("sriov-a,sriov-b@net2,infra/shared"),
                    json!({
                        "containers": [{"name": "app", "resources": {
                            "requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}],
                        "volumes": [{"name": "data", "emptyDir": {}}]
                    }),
                ),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_a", "value": "2"},
                    {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_b", "value": "1"},
                    {"op": "add", "path": "/spec/containers/0/resources/limits/intel.com~1sriov_a", "value": "2"},
                    {"op": "add", "path": "/spec/containers/0/resources/limits/intel.com~1sriov_b", "value": "1"},
                    {"op": "add", "path": "/spec/nodeSelector", "value": {"sriov": "true"}},
                    {"op": "add", "path": "/spec/volumes/-", "value": volume(&["annotations"])},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "a resource another container asks for is left alone",
                pod(
                    nets("sriov-a"),
                    json!({"containers": [
                        {"name": "app", "resources": {}},
                        {"name": "side", "resources": {"limits": {SRIOV_A: "1"}}}
                    ]}),
                ),
                defaults(),
                Ok(json!([])),
            ),
            (
                "honorResources adds to the first container's numbers",
                pod(
                    nets("sriov-a,sriov-a"),
                    json!({"containers": [{"name": "app", "resources": {
                        "requests": {SRIOV_A: "1"}, "limits": {SRIOV_A: 1}}}]}),
                ),
                honor(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_a", "value": "3"},
                    {"op": "add", "path": "/spec/containers/0/resources/limits/intel.com~1sriov_a", "value": "3"},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "honorResources when only another container asks",
                pod(
                    nets("sriov-a"),
                    json!({"containers": [
                        {"name": "app", "resources": {"requests": {"cpu": "1"}}},
                        {"name": "side", "resources": {"requests": {SRIOV_A: "1"}, "limits": {SRIOV_A: "1"}}}
                    ]}),
                ),
                honor(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov_a", "value": "1"},
                    {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {SRIOV_A: "1"}},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                    {"op": "add", "path": "/spec/containers/1/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "honorResources refuses a quantity it cannot add to",
                pod(
                    nets("sriov-a"),
                    json!({"containers": [{"name": "app", "resources": {"requests": {SRIOV_A: "500m"}}}]}),
                ),
                honor(),
                Err((
                    400,
                    "spec.containers[0].resources.requests[\"intel.com/sriov_a\"] is \"500m\", not a whole number",
                )),
            ),
            (
                "node selectors merge into an existing one; labels are exposed; mounts are respected",
                pod(
                    nets("sriov-b,zone-a"),
                    json!({
                        "nodeSelector": {"disk": "ssd", "sriov": "true"},
                        "volumes": [{"name": "podnetinfo", "downwardAPI": {"items": []}}],
                        "containers": [
                            {"name": "app", "resources": {}, "volumeMounts": [{"name": "podnetinfo", "mountPath": "/etc/podnetinfo"}]},
                            {"name": "side", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                            {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": "/etc/podnetinfo"}]}
                        ]
                    }),
                ),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"intel.com/sriov_b": "1"}},
                    {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"intel.com/sriov_b": "1"}},
                    {"op": "add", "path": "/spec/nodeSelector/topology~1zone", "value": "a"},
                    {"op": "add", "path": "/spec/containers/1/volumeMounts/-", "value": mount()},
                ])),
            ),
            (
                "a node selector alone adds no volume",
                pod(nets("zone-a,zone-a"), one_container()),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/nodeSelector", "value": {"topology/zone": "a"}},
                ])),
            ),
            (
                "two NADs disagree on a node label",
                pod(nets("zone-a,zone-b"), one_container()),
                defaults(),
                Err((
                    400,
                    "networks[1]: NetworkAttachmentDefinition team/zone-b needs node label topology/zone=b but team/zone-a needs topology/zone=a",
                )),
            ),
            (
                "a NAD disagrees with the pod's node selector",
                pod(
                    nets("zone-b"),
                    json!({"nodeSelector": {"topology/zone": "a"}, "containers": [{"name": "app"}]}),
                ),
                defaults(),
                Err((
                    400,
                    "NetworkAttachmentDefinition team/zone-b needs node label topology/zone=b but spec.nodeSelector asks for topology/zone=a",
                )),
            ),
            (
                "a malformed node selector",
                pod(nets("bad-selector"), one_container()),
                defaults(),
                Err((
                    400,
                    "networks[0]: NetworkAttachmentDefinition team/bad-selector has annotation k8s.v1.cni.cncf.io/nodeSelector \"sriov\", which is not one key=value label",
                )),
            ),
            (
                "a missing NAD",
                pod(nets("sriov-a,ghost"), one_container()),
                defaults(),
                Err((
                    400,
                    "networks[1] selects NetworkAttachmentDefinition team/ghost, which does not exist",
                )),
            ),
            (
                "an API failure",
                pod(nets("broken"), one_container()),
                defaults(),
                Err((
                    500,
                    "networks[0]: cannot read NetworkAttachmentDefinition team/broken: the server is currently unable",
                )),
            ),
            (
                "an unparsable annotation",
                pod(nets("a/b/c"), one_container()),
                defaults(),
                Err((
                    400,
                    "annotation k8s.v1.cni.cncf.io/networks is invalid: networks[0]",
                )),
            ),
            (
                "the default network is looked up in multinet's namespace",
                pod(
                    json!({DEFAULT_NETWORK_ANNOTATION: "fast-default"}),
                    one_container(),
                ),
                defaults(),
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"example.com/dflt": "1"}},
                    {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"example.com/dflt": "1"}},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "configured resource-name keys",
                pod(nets("alt,sriov-a"), one_container()),
                InjectorOptions {
                    resource_name_keys: vec![ALT_KEY.to_owned()],
                    ..InjectorOptions::default()
                },
                Ok(json!([
                    {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"example.com/alt": "1"}},
                    {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"example.com/alt": "1"}},
                    {"op": "add", "path": "/spec/volumes", "value": [volume(&["annotations"])]},
                    {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [mount()]},
                ])),
            ),
            (
                "skipped namespace, even with a missing NAD",
                pod(nets("ghost"), one_container()),
                InjectorOptions {
                    skip_namespaces: vec!["kube-system".to_owned(), "team".to_owned()],
                    ..InjectorOptions::default()
                },
                Ok(json!([])),
            ),
        ]
    }

    #[test]
    fn mutation_table() {
        let cases = cases();
        assert!(cases.len() >= 12);
        for (case, pod, options, expected) in cases {
            match (expected, outcome(pod, "team", &options)) {
                (Ok(ops), Ok(actual)) => assert_eq!(Value::Array(actual), ops, "{case}"),
                (Err((code, text)), Err(denial)) => {
                    assert_eq!(denial.code, code, "{case}: {denial:?}");
                    assert!(
                        denial.message.contains(text),
                        "{case}: {:?} does not contain {text:?}",
                        denial.message
                    );
                }
                (expected, actual) => panic!("{case}: expected {expected:?}, got {actual:?}"),
            }
        }
    }

    #[test]
    fn labels_are_exposed_when_the_pod_has_some() {
        let mut pod = pod(nets("sriov-a"), one_container());
        pod["metadata"]["labels"] = json!({"app": "x"});
        let ops = outcome(pod, "team", &InjectorOptions::default()).unwrap();
        assert_eq!(
            ops[2],
            json!({"op": "add", "path": "/spec/volumes", "value": [volume(&["labels", "annotations"])]})
        );
    }

    #[test]
    fn the_patch_applies_and_travels_base64_encoded() {
        let pod = pod(nets("sriov-a,sriov-b"), one_container());
        let body = review_json("", "Pod", "pods", "CREATE", "team", pod.clone());
        let lookup = cluster();
        let options = InjectorOptions::default();
        let response = response_of(&answer(&body, |r| mutate_pod(r, &lookup, &options)));
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        let patch = BASE64_STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        let mut patched = pod;
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(
            patched["spec"]["containers"][0]["resources"],
            json!({"requests": {SRIOV_A: "1", "intel.com/sriov_b": "1"},
                   "limits": {SRIOV_A: "1", "intel.com/sriov_b": "1"}})
        );
        assert_eq!(patched["spec"]["nodeSelector"], json!({"sriov": "true"}));
        assert_eq!(
            patched["spec"]["containers"][0]["volumeMounts"],
            json!([mount()])
        );
    }

    #[test]
    fn no_change_means_no_patch_and_denials_carry_their_code() {
        let lookup = cluster();
        let options = InjectorOptions::default();
        let body = review_json(
            "",
            "Pod",
            "pods",
            "CREATE",
            "team",
            pod(nets("plain"), one_container()),
        );
        let response = response_of(&answer(&body, |r| mutate_pod(r, &lookup, &options)));
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none() && response.get("patchType").is_none());

        let body = review_json(
            "",
            "Pod",
            "pods",
            "CREATE",
            "team",
            pod(nets("ghost"), one_container()),
        );
        let response = response_of(&answer(&body, |r| mutate_pod(r, &lookup, &options)));
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);

        let body = review_json(
            "",
            "Pod",
            "pods",
            "UPDATE",
            "team",
            pod(nets("ghost"), one_container()),
        );
        let response = response_of(&answer(&body, |r| mutate_pod(r, &lookup, &options)));
        assert_eq!(response["allowed"], true);
    }

    #[test]
    fn lookups_are_listed_once_and_skipped_pods_need_none() {
        let options = InjectorOptions::default();
        let request = |namespace: &str, annotations: Value| {
            let mut pod = pod(annotations, one_container());
            pod["metadata"]["namespace"] = json!(namespace);
            let body = review_json("", "Pod", "pods", "CREATE", namespace, pod);
            crate::review::parse_review(&body).unwrap()
        };
        let all = json!({
            NETWORKS_ANNOTATION: "sriov-b,infra/shared,sriov-b@net3",
            DEFAULT_NETWORK_ANNOTATION: "fast-default"
        });
        assert_eq!(
            nads_to_look_up(&request("team", all.clone()), &options),
            vec![
                NadRef::new("infra", "shared"),
                NadRef::new("kube-system", "fast-default"),
                NadRef::new("team", "sriov-b"),
            ]
        );
        assert!(nads_to_look_up(&request("kube-system", all), &options).is_empty());
        assert!(nads_to_look_up(&request("team", nets("a/b/c")), &options).is_empty());
    }

    #[test]
    fn a_ref_nobody_looked_up_is_an_error() {
        let nads = FetchedNads::new();
        assert_eq!(
            nads.nad(&NadRef::new("team", "x")).unwrap_err(),
            "it was not looked up"
        );
    }

    #[test]
    fn the_container_the_pod_names_gets_the_resources_and_a_wrong_name_is_refused() {
        let two = json!({"containers": [{"name": "app"}, {"name": "dpdk", "resources": {}}]});
        let named = |name: &str| {
            let mut a = nets("sriov-a");
            a[RESOURCES_CONTAINER_ANNOTATION] = json!(name);
            pod(a, two.clone())
        };
        let ops = outcome(named("dpdk"), "team", &InjectorOptions::default()).unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "add", "path": "/spec/containers/1/resources/requests", "value": {SRIOV_A: "1"}})
        );
        assert!(!ops.iter().any(|op| {
            op["path"]
                .as_str()
                .unwrap()
                .starts_with("/spec/containers/0/resources")
        }));
        let denial = outcome(named("ghost"), "team", &InjectorOptions::default()).unwrap_err();
        assert_eq!(denial.code, 400);
        assert!(
            denial.message.contains(
                "annotation multinet.io/resources-container names container \"ghost\", which is \
                 not one of the pod's containers (app, dpdk)"
            ),
            "{}",
            denial.message
        );
        // No container at all: refused, not silently skipped.
        let denial = outcome(
            pod(nets("sriov-a"), json!({"containers": []})),
            "team",
            &InjectorOptions::default(),
        )
        .unwrap_err();
        assert!(
            denial.message.contains("no container"),
            "{}",
            denial.message
        );
        // A network without resources needs no container.
        assert!(
            outcome(
                pod(nets("plain"), json!({"containers": []})),
                "team",
                &InjectorOptions::default()
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn hugepages_of_every_container_are_exposed_when_switched_on() {
        let spec = json!({"containers": [
            {"name": "app", "resources": {"requests": {"hugepages-1Gi": "2Gi", "cpu": "1"},
                                          "limits": {"hugepages-1Gi": "2Gi"}}},
            // Zero hugepages are no hugepages; a CONTAINER_NAME of the pod's own stays.
            {"name": "side", "env": [{"name": "CONTAINER_NAME", "value": "mine"}],
             "resources": {"requests": {"hugepages-2Mi": "0", "hugepages-1Gi": "1Gi"}}},
            {"name": "idle", "resources": {"limits": {"hugepages-2Mi": 0}}}
        ]});
        let on = InjectorOptions {
            hugepages_downward_api: true,
            ..InjectorOptions::default()
        };
        let ops = outcome(pod(nets("sriov-a"), spec.clone()), "team", &on).unwrap();
        let items = ops
            .iter()
            .find(|op| op["path"] == "/spec/volumes")
            .map(|op| op["value"][0]["downwardAPI"]["items"].clone())
            .unwrap();
        let paths: Vec<&str> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "annotations",
                "hugepages_1G_request_app",
                "hugepages_1G_limit_app",
                "hugepages_1G_request_side"
            ]
        );
        assert_eq!(
            items[2]["resourceFieldRef"],
            json!({"containerName": "app", "resource": "limits.hugepages-1Gi", "divisor": "1Mi"})
        );
        let envs: Vec<&Value> = ops
            .iter()
            .filter(|op| op["path"].as_str().unwrap().contains("/env"))
            .collect();
        assert_eq!(
            envs,
            [&json!({"op": "add", "path": "/spec/containers/0/env",
                     "value": [{"name": "CONTAINER_NAME", "value": "app"}]})]
        );
        // Off (the default): no hugepages files.
        let ops = outcome(
            pod(nets("sriov-a"), spec),
            "team",
            &InjectorOptions::default(),
        )
        .unwrap();
        assert!(!json!(ops).to_string().contains("hugepages_"));
    }

    #[test]
    fn injections_follow_labels_and_never_override_the_pod() {
        let mut options = InjectorOptions::default();
        options.user_injections.insert(
            "sriov".into(),
            BTreeMap::from([
                (NETWORKS_ANNOTATION.to_string(), "sriov-a".to_string()),
                ("team.example.com/tier".to_string(), "fast".to_string()),
            ]),
        );
        let labelled = |labels: Value, annotations: Value| {
            let mut p = pod(annotations, one_container());
            p["metadata"]["labels"] = labels;
            p
        };
        // Label "TRUE": the annotations are added, and the injected network's resource follows.
        let ops = outcome(
            labelled(json!({"sriov": "TRUE"}), json!({})),
            "team",
            &options,
        )
        .unwrap();
        assert_eq!(
            &ops[..3],
            &[
                json!({"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks", "value": "sriov-a"}),
                json!({"op": "add", "path": "/metadata/annotations/team.example.com~1tier", "value": "fast"}),
                json!({"op": "add", "path": "/spec/containers/0/resources/requests", "value": {SRIOV_A: "1"}}),
            ]
        );
        // The pod's own networks annotation wins over the injected one.
        let ops = outcome(
            labelled(json!({"sriov": "true"}), nets("plain")),
            "team",
            &options,
        )
        .unwrap();
        assert_eq!(
            ops,
            [
                json!({"op": "add", "path": "/metadata/annotations/team.example.com~1tier", "value": "fast"})
            ]
        );
        // Another label value, or no labels: nothing.
        for labels in [json!({"sriov": "yes"}), json!({})] {
            assert!(
                outcome(labelled(labels, json!({})), "team", &options)
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn switches_win_over_flags_only_where_they_speak() {
        let flags = InjectorOptions {
            honor_resources: true,
            ..InjectorOptions::default()
        };
        let none = flags.with_switches(&Switches::default());
        assert_eq!(none, flags);
        let some = flags.with_switches(&Switches {
            hugepages_downward_api: Some(true),
            honor_resources: Some(false),
            ..Switches::default()
        });
        assert!(some.hugepages_downward_api && !some.honor_resources);
    }
}
