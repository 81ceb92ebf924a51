//! The NetworkAttachmentDefinition custom resource and helpers that read it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResource;
use kube::CustomResourceExt;
use multinet_cni::{DelegateConf, PluginList};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CrdError, NadConfigError};

/// NAD annotation naming the device-plugin resource whose device IDs the attachment consumes.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// Desired state of a network attachment: a CNI configuration (conf or conflist) as a JSON string.
/// When `config` is empty or missing, or `spec` itself is, the on-disk configuration whose `name`
/// equals the NAD name is used.
#[derive(CustomResource, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    singular = "network-attachment-definition",
    shortname = "net-attach-def",
    shortname = "nad",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "NetworkAttachmentDefinition (k8s.cni.cncf.io/v1): how to attach pods to one or more networks."
)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct NetworkAttachmentDefinitionSpec {
    /// JSON-encoded CNI configuration or configuration list.
    #[serde(default)]
    #[schemars(transform = drop_schema_default)]
    pub config: String,
    /// Keys of `spec` other than `config`, kept so that a read-modify-write never drops them.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

/// The wire form of the spec, without the missing-spec tolerance.
#[derive(Deserialize)]
struct SpecFields {
    // `config: null` is valid upstream (the API server prunes it) and means "no config".
    #[serde(default)]
    config: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

// A NAD without `spec` (or with `spec: null`) is valid upstream. Going through `Option` lets the
// derived root struct treat a missing `spec` as "none" instead of a missing-field error.
impl<'de> Deserialize<'de> for NetworkAttachmentDefinitionSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = Option::<SpecFields>::deserialize(deserializer)?;
        Ok(fields
            .map(|f| Self {
                config: f.config.unwrap_or_default(),
                extra: f.extra,
            })
            .unwrap_or_default())
    }
}

/// A schema default would make the API server write `config: ""` into stored objects.
fn drop_schema_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// Widens the derived schema to accept every object the upstream CRDs accept: `spec` is optional
/// there, and older upstream CRDs declared a `status` (`state`, `observation`).
fn accept_upstream_objects(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        schema.required = None;
        schema
            .properties
            .get_or_insert_with(Default::default)
            .insert(
                "status".to_owned(),
                JSONSchemaProps {
                    type_: Some("object".to_owned()),
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    ..Default::default()
                },
            );
    }
}

/// The CustomResourceDefinition generated from [`NetworkAttachmentDefinition`].
pub fn crd() -> CustomResourceDefinition {
    let mut crd = NetworkAttachmentDefinition::crd();
    accept_upstream_objects(&mut crd);
    crd
}

/// The CRD as a YAML document, as committed in `crds/network-attachment-definition.yaml`.
pub fn crd_yaml() -> Result<String, CrdError> {
    let body = serde_yaml::to_string(&crd()).map_err(|e| CrdError::Yaml(e.to_string()))?;
    Ok(format!(
        "# Generated from multinet_crds::NetworkAttachmentDefinition; do not edit.\n\
         # Regenerate with: {REGENERATE_COMMAND}\n---\n{body}"
    ))
}

/// The command that rewrites the committed CRD YAML.
pub const REGENERATE_COMMAND: &str = "cargo run -p multinet-crds --bin gen-crd";

/// The NAD's `k8s.v1.cni.cncf.io/resourceName` annotation, if set and not blank.
pub fn resource_name(nad: &NetworkAttachmentDefinition) -> Option<&str> {
    nad.metadata
        .annotations
        .as_ref()?
        .get(RESOURCE_NAME_ANNOTATION)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Parses `spec.config` (a conf or a conflist) and fills a missing `"name"` with the NAD name,
/// as the multi-net spec requires.
pub fn nad_config_with_name(nad: &NetworkAttachmentDefinition) -> Result<DelegateConf, CrdError> {
    let nad_name = nad.metadata.name.as_deref().unwrap_or_default();
    parse_nad_config(&nad.spec.config, nad_name).map_err(|source| CrdError::NadConfig {
        nad: nad_ref(nad),
        source,
    })
}

fn nad_ref(nad: &NetworkAttachmentDefinition) -> String {
    let name = nad.metadata.name.as_deref().unwrap_or("<unnamed>");
    match nad.metadata.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// Parses the text of a NAD's `spec.config` named `nad_name`: the one structural rule the plugin
/// (when it reads the NAD) and the webhook (when it admits it) apply, so both refuse the same
/// configs with the same words.
pub fn parse_nad_config(config: &str, nad_name: &str) -> Result<DelegateConf, NadConfigError> {
    config_with_name(config, nad_name).map(DelegateConf::new)
}

fn config_with_name(config: &str, nad_name: &str) -> Result<Value, NadConfigError> {
    if config.trim().is_empty() {
        return Err(NadConfigError::Empty);
    }
    let mut value: Value =
        serde_json::from_str(config).map_err(|e| NadConfigError::NotJson(e.to_string()))?;
    let object = value.as_object_mut().ok_or(NadConfigError::NotObject)?;
    check_conf_or_conflist(object)?;
    let has_name = match object.get("name") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => return Err(NadConfigError::NameNotString),
    };
    if !has_name {
        if nad_name.is_empty() {
            return Err(NadConfigError::NoName);
        }
        object.insert("name".to_owned(), Value::String(nad_name.to_owned()));
    }
    Ok(value)
}

/// A conflist needs a non-empty `plugins` array whose members each have a `type`; a single
/// conf needs a top-level `type`.
fn check_conf_or_conflist(object: &Map<String, Value>) -> Result<(), NadConfigError> {
    match PluginList::of(object) {
        PluginList::List(plugins) => {
            if plugins.is_empty() {
                return Err(NadConfigError::NoPlugins);
            }
            for (index, plugin) in plugins.iter().enumerate() {
                let plugin = plugin
                    .as_object()
                    .ok_or(NadConfigError::PluginNotObject { index })?;
                if !has_type(plugin) {
                    return Err(NadConfigError::PluginWithoutType { index });
                }
            }
            Ok(())
        }
        PluginList::NotAList => Err(NadConfigError::PluginsNotArray),
        PluginList::Single if has_type(object) => Ok(()),
        PluginList::Single => Err(NadConfigError::NoType),
    }
}

fn has_type(object: &Map<String, Value>) -> bool {
    matches!(object.get("type"), Some(Value::String(t)) if !t.is_empty())
}
