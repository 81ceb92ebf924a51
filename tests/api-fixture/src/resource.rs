//! The resources the fixture serves and how request paths map onto them.

/// What the `status` subresource of a resource may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusSubresource {
    /// No status subresource: `.../status` is 404 and the main resource owns `status`.
    None,
    /// Writes to `.../status` change only `status` (custom resources).
    StatusOnly,
    /// Writes to `.../status` change `status` and metadata but not `spec` or owner
    /// references, as for pods (the kubelet and CNI plugins write annotations there).
    StatusAndMetadata,
}

/// One served resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub status: StatusSubresource,
    /// Field selector labels accepted besides metadata.name and metadata.namespace;
    /// any other label is refused with 400 as kube-apiserver does.
    pub field_selectors: Vec<String>,
    pub short_names: Vec<String>,
    /// Built-in (compiled-in) types: their list items carry no apiVersion/kind.
    pub builtin: bool,
}

impl ResourceDef {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether a user-supplied name (Kind, plural, singular, short name, optionally
    /// `.group`-qualified) refers to this resource.
    pub fn is_named(&self, name: &str) -> bool {
        let (base, group) = match name.split_once('.') {
            Some((base, group)) => (base, Some(group)),
            None => (name, None),
        };
        if group.is_some_and(|g| g != self.group) {
            return false;
        }
        base.eq_ignore_ascii_case(&self.kind)
            || base == self.plural
            || base == self.singular
            || self.short_names.iter().any(|s| s == base)
    }

    /// Whether a field selector label is supported for this resource.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.field_selectors.iter().any(|f| f == field)
    }

    /// Core v1 pods, with the field selectors kube-apiserver supports for them.
    pub fn pods() -> Self {
        ResourceDef {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            singular: "pod".into(),
            namespaced: true,
            status: StatusSubresource::StatusAndMetadata,
            field_selectors: strings(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
            short_names: strings(&["po"]),
            builtin: true,
        }
    }

    /// Core v1 events.
    pub fn events() -> Self {
        ResourceDef {
            group: String::new(),
            version: "v1".into(),
            kind: "Event".into(),
            plural: "events".into(),
            singular: "event".into(),
            namespaced: true,
            status: StatusSubresource::None,
            field_selectors: strings(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ]),
            short_names: strings(&["ev"]),
            builtin: true,
        }
    }

    /// events.k8s.io/v1 events, which kube's event recorder writes.
    pub fn events_k8s_io() -> Self {
        ResourceDef {
            group: "events.k8s.io".into(),
            field_selectors: strings(&[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "reportingController",
                "type",
            ]),
            ..Self::events()
        }
    }

    /// Core v1 nodes (cluster-scoped).
    pub fn nodes() -> Self {
        ResourceDef {
            group: String::new(),
            version: "v1".into(),
            kind: "Node".into(),
            plural: "nodes".into(),
            singular: "node".into(),
            namespaced: false,
            status: StatusSubresource::StatusAndMetadata,
            field_selectors: strings(&["spec.unschedulable"]),
            short_names: strings(&["no"]),
            builtin: true,
        }
    }

    /// NetworkAttachmentDefinitions (k8s.cni.cncf.io/v1), a custom resource without status.
    pub fn network_attachment_definitions() -> Self {
        ResourceDef {
            group: "k8s.cni.cncf.io".into(),
            version: "v1".into(),
            kind: "NetworkAttachmentDefinition".into(),
            plural: "network-attachment-definitions".into(),
            singular: "network-attachment-definition".into(),
            namespaced: true,
            status: StatusSubresource::None,
            field_selectors: Vec::new(),
            short_names: strings(&["net-attach-def"]),
            builtin: false,
        }
    }

    /// Core v1 ConfigMaps.
    pub fn config_maps() -> Self {
        ResourceDef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            singular: "configmap".into(),
            namespaced: true,
            status: StatusSubresource::None,
            field_selectors: Vec::new(),
            short_names: strings(&["cm"]),
            builtin: true,
        }
    }

    /// resource.k8s.io/v1 ResourceClaims: namespaced, the scheduler writes `status`.
    pub fn resource_claims() -> Self {
        ResourceDef {
            group: "resource.k8s.io".into(),
            version: "v1".into(),
            kind: "ResourceClaim".into(),
            plural: "resourceclaims".into(),
            singular: "resourceclaim".into(),
            namespaced: true,
            status: StatusSubresource::StatusOnly,
            field_selectors: Vec::new(),
            short_names: Vec::new(),
            builtin: true,
        }
    }

    /// resource.k8s.io/v1 ResourceSlices (cluster-scoped), with the field selectors
    /// kube-apiserver supports for them.
    pub fn resource_slices() -> Self {
        ResourceDef {
            group: "resource.k8s.io".into(),
            version: "v1".into(),
            kind: "ResourceSlice".into(),
            plural: "resourceslices".into(),
            singular: "resourceslice".into(),
            namespaced: false,
            status: StatusSubresource::None,
            field_selectors: strings(&["spec.nodeName", "spec.driver", "spec.pool.name"]),
            short_names: Vec::new(),
            builtin: true,
        }
    }

    /// Everything served unless the builder is told otherwise.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::pods(),
            Self::events(),
            Self::events_k8s_io(),
            Self::nodes(),
            Self::network_attachment_definitions(),
            Self::config_maps(),
            Self::resource_claims(),
            Self::resource_slices(),
        ]
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A request path under `/api/v1` or `/apis/{group}/{version}` naming resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/api/{version}`
    CoreResources(String),
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/apis/{group}/{version}`
    GroupResources(String, String),
    Resource(ResourcePath),
    NotFound,
}

pub(crate) fn parse_path(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", version] => Route::CoreResources(version.to_string()),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version] => Route::GroupResources(group.to_string(), version.to_string()),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    match rest {
        [plural, tail @ ..] if tail.len() <= 2 => Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace,
            plural: plural.to_string(),
            name: tail.first().map(|s| s.to_string()),
            subresource: tail.get(1).map(|s| s.to_string()),
        }),
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        group: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Route {
        Route::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn routes_discovery_paths() {
        assert_eq!(parse_path("/version"), Route::Version);
        assert_eq!(parse_path("/api"), Route::CoreVersions);
        assert_eq!(parse_path("/api/v1"), Route::CoreResources("v1".into()));
        assert_eq!(parse_path("/apis"), Route::Groups);
        assert_eq!(
            parse_path("/apis/k8s.cni.cncf.io"),
            Route::Group("k8s.cni.cncf.io".into())
        );
        assert_eq!(
            parse_path("/apis/k8s.cni.cncf.io/v1"),
            Route::GroupResources("k8s.cni.cncf.io".into(), "v1".into())
        );
        assert_eq!(parse_path("/healthz/x"), Route::NotFound);
    }

    #[test]
    fn routes_resource_paths() {
        assert_eq!(
            parse_path("/api/v1/pods"),
            resource("", None, "pods", None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/ns1/pods"),
            resource("", Some("ns1"), "pods", None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/ns1/pods/web/status"),
            resource("", Some("ns1"), "pods", Some("web"), Some("status"))
        );
        assert_eq!(
            parse_path("/api/v1/nodes/n1"),
            resource("", None, "nodes", Some("n1"), None)
        );
        assert_eq!(
            parse_path("/apis/k8s.cni.cncf.io/v1/namespaces/a/network-attachment-definitions/n"),
            resource(
                "k8s.cni.cncf.io",
                Some("a"),
                "network-attachment-definitions",
                Some("n"),
                None
            )
        );
        // The namespaces resource itself is not served but its paths still parse.
        assert_eq!(
            parse_path("/api/v1/namespaces/ns1"),
            resource("", None, "namespaces", Some("ns1"), None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/pods/b/status/extra"),
            Route::NotFound
        );
    }

    #[test]
    fn resources_answer_to_their_names() {
        let nad = ResourceDef::network_attachment_definitions();
        assert!(nad.is_named("NetworkAttachmentDefinition"));
        assert!(nad.is_named("network-attachment-definitions"));
        assert!(nad.is_named("net-attach-def"));
        assert!(nad.is_named("network-attachment-definitions.k8s.cni.cncf.io"));
        assert!(!nad.is_named("pods"));
        let core = ResourceDef::events();
        let grouped = ResourceDef::events_k8s_io();
        assert!(core.is_named("events") && grouped.is_named("events"));
        assert!(grouped.is_named("events.events.k8s.io"));
        assert!(!core.is_named("events.events.k8s.io"));
        assert_eq!(grouped.api_version(), "events.k8s.io/v1");
        assert_eq!(ResourceDef::pods().api_version(), "v1");
    }

    #[test]
    fn field_selector_support_is_per_resource() {
        let pods = ResourceDef::pods();
        assert!(pods.supports_field("spec.nodeName"));
        assert!(pods.supports_field("metadata.namespace"));
        assert!(!pods.supports_field("spec.containers"));
        let nodes = ResourceDef::nodes();
        assert!(!nodes.supports_field("metadata.namespace"));
    }
}
