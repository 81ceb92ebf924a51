//! The NetworkAttachmentDefinition type, its generated CRD, and the NAD helpers.

// Test helpers may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use multinet_crds::{
    CrdError, NadConfigError, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
    REGENERATE_COMMAND, RESOURCE_NAME_ANNOTATION, crd, crd_yaml, nad_config_with_name,
    resource_name,
};
use serde_json::{Value, json};

const CRD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/network-attachment-definition.yaml"
);

#[test]
fn committed_crd_yaml_is_current() {
    let generated = crd_yaml().unwrap();
    let committed = std::fs::read_to_string(CRD_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "{CRD_PATH} is stale or missing; regenerate it with `{REGENERATE_COMMAND}`"
    );
}

#[test]
fn crd_names_and_scope() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("network-attachment-definitions.k8s.cni.cncf.io")
    );
    assert_eq!(crd.spec.group, "k8s.cni.cncf.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "NetworkAttachmentDefinition");
    assert_eq!(names.plural, "network-attachment-definitions");
    assert_eq!(
        names.singular.as_deref(),
        Some("network-attachment-definition")
    );
    assert!(
        names
            .short_names
            .as_ref()
            .unwrap()
            .contains(&"net-attach-def".to_owned())
    );
    let [version] = crd.spec.versions.as_slice() else {
        panic!("one version expected");
    };
    assert_eq!(version.name, "v1");
    assert!(version.served && version.storage);
    // No status subresource: status writes go through the main resource, as upstream.
    assert!(version.subresources.is_none());
}

/// What the structural schema of a CRD decides for an object: wrong types and missing required
/// fields are refused; unknown fields (where not preserved) are refused under strict field
/// validation and pruned otherwise.
fn accepts(schema: &Value, value: &Value, strict: bool) -> bool {
    if value.is_null() {
        // Null is pruned (treated as absent) for fields that are not nullable.
        return true;
    }
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("array") => value.is_array(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        return false;
    }
    let Some(object) = value.as_object() else {
        return true;
    };
    let empty = serde_json::Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if required
        .iter()
        .any(|r| r.as_str().is_some_and(|r| !object.contains_key(r)))
    {
        return false;
    }
    object.iter().all(|(key, child)| match properties.get(key) {
        Some(child_schema) => accepts(child_schema, child, strict),
        None => preserve || !strict,
    })
}

/// The root object's own fields are always allowed; the schema governs the rest.
fn root_accepts(schema: &Value, object: &Value, strict: bool) -> bool {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    accepts(schema, &rest, strict)
}

/// The upstream CRD schemas (current client artifact, Multus deployment, older client artifact
/// with `required` and `status`), restated as the constraints they impose.
fn upstream_schemas() -> Vec<Value> {
    vec![
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"config": {"type": "string"}}}}}),
        json!({"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {"config": {"type": "string"}}}}}),
        json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["config"],
                     "properties": {"config": {"type": "string"}}},
            "status": {"type": "object", "properties": {
                "state": {"type": "string"}, "observation": {"type": "string"}}}}}),
    ]
}

fn sample_objects() -> Vec<Value> {
    let meta = json!({"name": "macvlan-conf", "namespace": "default"});
    let with = |extra: Value| {
        let mut object = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": meta.clone(),
        });
        if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        object
    };
    vec![
        with(json!({})),
        with(json!({"spec": null})),
        with(json!({"spec": {}})),
        with(json!({"spec": {"config": ""}})),
        with(json!({"spec": {"config": null}})),
        with(json!({"spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"macvlan\"}"}})),
        with(json!({"spec": {"config": "{}", "plugin": "legacy"}})),
        with(json!({"spec": {"config": "x"}, "status": {"state": "ok", "observation": "fine"}})),
        with(json!({"spec": {"config": "x"}, "status": {}})),
        with(json!({"spec": {"config": 5}})),
        with(json!({"spec": "config"})),
        with(json!({"spec": {"config": "x"}, "extra": 1})),
        with(json!({"status": {"state": 1}})),
    ]
}

fn our_schema() -> Value {
    let crd = crd();
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

#[test]
fn crd_accepts_every_object_an_upstream_crd_accepts() {
    let ours = our_schema();
    for (strict, expected_count) in [(true, 8), (false, 11)] {
        let mut upstream_accepted = 0;
        for object in sample_objects() {
            if upstream_schemas()
                .iter()
                .any(|s| root_accepts(s, &object, strict))
            {
                upstream_accepted += 1;
                assert!(
                    root_accepts(&ours, &object, strict),
                    "ours refuses {object} (strict {strict})"
                );
                let nad: Result<NetworkAttachmentDefinition, _> =
                    serde_json::from_value(object.clone());
                assert!(nad.is_ok(), "{object} does not deserialize: {nad:?}");
            }
        }
        assert_eq!(upstream_accepted, expected_count, "strict {strict}");
    }
    // Objects of the wrong shape are still refused.
    assert!(!root_accepts(&ours, &json!({"spec": {"config": 5}}), false));
    assert!(!root_accepts(&ours, &json!({"spec": "config"}), false));
}

#[test]
fn nad_without_spec_or_config_reads_as_empty_config() {
    let objects = [
        json!({"metadata": {"name": "a"}}),
        json!({"metadata": {"name": "a"}, "spec": null}),
        json!({"metadata": {"name": "a"}, "spec": {}}),
        json!({"metadata": {"name": "a"}, "spec": {"config": null}}),
    ];
    for object in objects {
        let nad: NetworkAttachmentDefinition = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(
            nad.spec,
            NetworkAttachmentDefinitionSpec::default(),
            "{object}"
        );
        assert_eq!(nad.metadata.name.as_deref(), Some("a"));
    }
}

#[test]
fn nad_round_trips_and_keeps_unknown_spec_keys() {
    let object = json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "a", "namespace": "team"},
        "spec": {"config": "{\"type\":\"macvlan\"}", "plugin": {"x": 1}},
    });
    let nad: NetworkAttachmentDefinition = serde_json::from_value(object.clone()).unwrap();
    assert_eq!(nad.spec.extra.get("plugin"), Some(&json!({"x": 1})));
    assert_eq!(serde_json::to_value(&nad).unwrap(), object);
    // Like the Go client, an empty config is still written.
    let empty = NetworkAttachmentDefinition::new("b", NetworkAttachmentDefinitionSpec::default());
    assert_eq!(
        serde_json::to_value(&empty).unwrap()["spec"],
        json!({"config": ""})
    );
}

fn nad(name: &str, config: &str) -> NetworkAttachmentDefinition {
    let mut nad = NetworkAttachmentDefinition::new(
        name,
        NetworkAttachmentDefinitionSpec {
            config: config.to_owned(),
            ..Default::default()
        },
    );
    nad.metadata.namespace = Some("team".to_owned());
    nad
}

#[test]
fn config_gets_the_nad_name_when_it_has_none() {
    let conf = nad_config_with_name(&nad(
        "macvlan-conf",
        r#"{"cniVersion":"1.0.0","type":"macvlan"}"#,
    ))
    .unwrap();
    assert_eq!(
        conf,
        json!({"cniVersion": "1.0.0", "type": "macvlan", "name": "macvlan-conf"})
    );

    let list = nad_config_with_name(&nad(
        "l",
        r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
    ))
    .unwrap();
    assert_eq!(list["name"], json!("l"));
    assert_eq!(list["plugins"][1], json!({"type": "tuning"}));

    let named = nad_config_with_name(&nad("a", r#"{"name":"kept","type":"macvlan"}"#)).unwrap();
    assert_eq!(named["name"], json!("kept"));
    let null_name = nad_config_with_name(&nad("a", r#"{"name":null,"type":"macvlan"}"#)).unwrap();
    assert_eq!(null_name["name"], json!("a"));
}

#[test]
fn unusable_configs_are_refused_with_the_reason() {
    let cases = [
        ("", NadConfigError::Empty),
        ("  ", NadConfigError::Empty),
        (
            "{",
            NadConfigError::NotJson("EOF while parsing an object at line 1 column 1".to_owned()),
        ),
        ("[1]", NadConfigError::NotObject),
        (r#"{"plugins":{}}"#, NadConfigError::PluginsNotArray),
        (r#"{"plugins":[]}"#, NadConfigError::NoPlugins),
        (
            r#"{"plugins":[1]}"#,
            NadConfigError::PluginNotObject { index: 0 },
        ),
        (
            r#"{"plugins":[{"type":"a"},{}]}"#,
            NadConfigError::PluginWithoutType { index: 1 },
        ),
        (r#"{"cniVersion":"1.0.0"}"#, NadConfigError::NoType),
        (r#"{"type":"a","name":3}"#, NadConfigError::NameNotString),
    ];
    for (config, expected) in cases {
        let err = nad_config_with_name(&nad("a", config)).unwrap_err();
        assert_eq!(
            err,
            CrdError::NadConfig {
                nad: "team/a".to_owned(),
                source: expected.clone()
            },
            "{config:?}"
        );
    }
    let err = nad_config_with_name(&nad("a", "")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "NetworkAttachmentDefinition team/a: spec.config is empty"
    );
    let mut unnamed = nad("a", r#"{"type":"macvlan"}"#);
    unnamed.metadata.name = None;
    assert!(matches!(
        nad_config_with_name(&unnamed),
        Err(CrdError::NadConfig {
            source: NadConfigError::NoName,
            ..
        })
    ));
}

#[test]
fn resource_name_annotation() {
    let mut n = nad("sriov", r#"{"type":"sriov"}"#);
    assert_eq!(resource_name(&n), None);
    n.metadata.annotations = Some(BTreeMap::from([(
        RESOURCE_NAME_ANNOTATION.to_owned(),
        " intel.com/sriov_netdevice ".to_owned(),
    )]));
    assert_eq!(resource_name(&n), Some("intel.com/sriov_netdevice"));
    n.metadata.annotations = Some(BTreeMap::from([(
        RESOURCE_NAME_ANNOTATION.to_owned(),
        String::new(),
    )]));
    assert_eq!(resource_name(&n), None);
    assert_eq!(RESOURCE_NAME_ANNOTATION, "k8s.v1.cni.cncf.io/resourceName");
}
