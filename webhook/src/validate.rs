//! `/validate`: NetworkAttachmentDefinition CREATE and UPDATE.
//!
//! A NAD is admitted when its name is a DNS-1123 subdomain and its `spec.config` is empty (the
//! node's on-disk config is used) or a CNI conf or conflist that multinet can run: the same
//! structural rules the plugin applies when it reads the NAD (`multinet_crds::parse_nad_config`),
//! a `cniVersion` multinet speaks, plugin types that are file names, not paths, and the trust rule
//! the plugin applies before it runs a delegate (`multinet_crds::check_delegate_config`: no
//! meta-plugin as a delegate, none of multinet's node-path keys, `logFile` only under /var/log/).

use kube::core::admission::{AdmissionResponse, Operation};
use multinet_cni::{CniVersion, DelegateConf, PluginConf, SUPPORTED_VERSIONS};
use multinet_crds::syntax::is_dns1123_subdomain;
use multinet_crds::{
    CrdError, NadConfigError, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
    check_delegate_config, nad_config_with_name,
};
use serde_json::{Map, Value};

use crate::review::{Denial, Request, kind_label, object_json};

/// API group of NetworkAttachmentDefinitions.
pub const NAD_GROUP: &str = "k8s.cni.cncf.io";
/// Kind of NetworkAttachmentDefinitions.
pub const NAD_KIND: &str = "NetworkAttachmentDefinition";

/// The decision for one `/validate` request.
pub fn validate_nad(request: &Request) -> AdmissionResponse {
    match check_nad_request(request) {
        Ok(()) => AdmissionResponse::from(request),
        Err(denial) => denial.respond(request),
    }
}

fn check_nad_request(request: &Request) -> Result<(), Denial> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(());
    }
    if request.kind.group != NAD_GROUP || request.kind.kind != NAD_KIND {
        return Err(Denial::bad_request(format!(
            "this webhook validates {NAD_GROUP} {NAD_KIND} objects, not {}",
            kind_label(request)
        )));
    }
    let object = object_json(request);
    if object.is_null() {
        return Err(Denial::bad_request("the request carries no object"));
    }
    check_nad(&object)
}

/// Checks a NetworkAttachmentDefinition given as JSON. The error names the field at fault.
pub fn check_nad(object: &Value) -> Result<(), Denial> {
    let name = match object.pointer("/metadata/name") {
        None | Some(Value::Null) => "",
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(Denial::bad_request("metadata.name must be a string")),
    };
    if name.is_empty() {
        return Err(Denial::bad_request("metadata.name is required"));
    }
    if !is_dns1123_subdomain(name) {
        return Err(Denial::bad_request(format!(
            "metadata.name {name:?} is not a DNS-1123 subdomain (at most 253 characters: \
             dot-separated lower-case alphanumerics or '-', each part starting and ending \
             with an alphanumeric)"
        )));
    }
    let config = match object.get("spec") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(spec)) => match spec.get("config") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(config)) => config.clone(),
            Some(_) => {
                return Err(Denial::bad_request(
                    "spec.config must be a string holding the CNI configuration as JSON",
                ));
            }
        },
        Some(_) => return Err(Denial::bad_request("spec must be an object")),
    };
    let nad = NetworkAttachmentDefinition::new(
        name,
        NetworkAttachmentDefinitionSpec {
            config,
            extra: Map::new(),
        },
    );
    let config = match nad_config_with_name(&nad) {
        Ok(config) => config,
        Err(CrdError::NadConfig {
            source: NadConfigError::Empty,
            ..
        }) => return Ok(()),
        Err(CrdError::NadConfig { source, .. }) => {
            return Err(Denial::bad_request(format!("spec.config {source}")));
        }
        Err(other) => return Err(Denial::bad_request(format!("spec.config: {other}"))),
    };
    check_runnable(&config).map_err(Denial::bad_request)
}

/// The checks beyond structure: what a NAD author may put in a delegate config (the plugin's own
/// rule, in its words), versions multinet speaks, and plugin types that cannot name a file
/// outside the CNI binary directories.
fn check_runnable(config: &DelegateConf) -> Result<(), String> {
    check_delegate_config(config).map_err(|violation| format!("spec.config.{violation}"))?;
    check_version(config.get("cniVersion"), "spec.config")?;
    for (index, plugin) in config.plugins() {
        match index {
            Some(index) => {
                let at = format!("spec.config.plugins[{index}]");
                check_version(plugin.get("cniVersion"), &at)?;
                check_type(plugin, &at)?;
            }
            None => check_type(plugin, "spec.config")?,
        }
    }
    crate::own_delegates::check_own_delegates(config)
}

fn check_version(version: Option<&Value>, at: &str) -> Result<(), String> {
    match version {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(version)) => {
            CniVersion::from_config_str(version)
                .map(|_| ())
                .map_err(|_| {
                    let supported: Vec<&str> =
                        SUPPORTED_VERSIONS.iter().map(|v| v.as_str()).collect();
                    format!(
                        "{at}.cniVersion {version:?} is not a CNI version multinet supports ({})",
                        supported.join(", ")
                    )
                })
        }
        Some(_) => Err(format!("{at}.cniVersion must be a string")),
    }
}

fn check_type(plugin: PluginConf<'_>, at: &str) -> Result<(), String> {
    // The structural check already made sure `type` is a non-empty string.
    let plugin_type = plugin.plugin_type().unwrap_or("");
    if plugin_type.contains(['/', '\0']) || plugin_type == "." || plugin_type == ".." {
        return Err(format!(
            "{at}.type {plugin_type:?} must be a plugin binary name, not a path \
             (no '/', not \".\" or \"..\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::answer;
    use crate::review::tests::{response_of, review_json};
    use serde_json::json;

    fn nad(name: Value, spec: Value) -> Value {
        let mut object = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "team"},
        });
        if !spec.is_null() || name == "spec-null" {
            object["spec"] = spec;
        }
        object
    }

    fn with_config(config: &str) -> Value {
        nad(json!("net1"), json!({ "config": config }))
    }

    const MACVLAN: &str = r#"{"cniVersion":"1.0.0","name":"net1","type":"macvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#;

    /// (case, object, None when admitted or Some(text the denial contains)).
    fn cases() -> Vec<(&'static str, Value, Option<&'static str>)> {
        vec![
            ("valid conf", with_config(MACVLAN), None),
            (
                "valid conflist",
                with_config(
                    r#"{"cniVersion":"1.1.0","name":"chain","plugins":[{"type":"macvlan"},{"type":"tuning"}]}"#,
                ),
                None,
            ),
            // The reference (libcni ConfListFromBytes) refuses this; the NAD name fills it in.
            (
                "conflist without a name",
                with_config(r#"{"plugins":[{"type":"bridge"}]}"#),
                None,
            ),
            (
                "conf without a name",
                with_config(r#"{"type":"macvlan"}"#),
                None,
            ),
            ("empty config", with_config(""), None),
            ("blank config", with_config("  \n"), None),
            ("no spec", nad(json!("net1"), Value::Null), None),
            ("spec null", nad(json!("spec-null"), Value::Null), None),
            (
                "config null",
                nad(json!("net1"), json!({"config": null})),
                None,
            ),
            ("spec without config", nad(json!("net1"), json!({})), None),
            // The reference's pattern refuses a leading digit 0 ...
            ("name starting with 0", nad(json!("0net"), json!({})), None),
            ("name of digits", nad(json!("100"), json!({})), None),
            // ... and admits a leading '-'.
            (
                "name starting with '-'",
                nad(json!("-net"), json!({})),
                Some("metadata.name \"-net\" is not a DNS-1123 subdomain"),
            ),
            ("name with dots", nad(json!("storage.v2"), json!({})), None),
            (
                "name with an empty part",
                nad(json!("storage..v2"), json!({})),
                Some("metadata.name \"storage..v2\""),
            ),
            (
                "upper-case name",
                nad(json!("Net1"), json!({})),
                Some("metadata.name \"Net1\" is not a DNS-1123 subdomain"),
            ),
            (
                "name ending with '-'",
                nad(json!("net-"), json!({})),
                Some("metadata.name \"net-\""),
            ),
            (
                "name with '_'",
                nad(json!("my_net"), json!({})),
                Some("metadata.name \"my_net\""),
            ),
            (
                "63-character label",
                nad(json!("a".repeat(63)), json!({})),
                None,
            ),
            (
                "64-character label",
                nad(json!("a".repeat(64)), json!({})),
                Some("is not a DNS-1123 subdomain"),
            ),
            (
                "253-character name",
                nad(json!(format!("{}b", "a.".repeat(126))), json!({})),
                None,
            ),
            (
                "254-character name",
                nad(json!(format!("{}bc", "a.".repeat(126))), json!({})),
                Some("is not a DNS-1123 subdomain"),
            ),
            (
                "no name",
                nad(Value::Null, json!({})),
                Some("metadata.name is required"),
            ),
            (
                "name not a string",
                nad(json!(7), json!({})),
                Some("metadata.name must be a string"),
            ),
            (
                "config not JSON",
                with_config("{type: macvlan}"),
                Some("spec.config is not valid JSON"),
            ),
            (
                "config a JSON array",
                with_config(r#"[{"type":"macvlan"}]"#),
                Some("spec.config is not a JSON object"),
            ),
            (
                "config a JSON string",
                with_config(r#""macvlan""#),
                Some("spec.config is not a JSON object"),
            ),
            // The reference panics on these.
            (
                "plugins an object",
                with_config(r#"{"name":"x","plugins":{"type":"macvlan"}}"#),
                Some("spec.config has a \"plugins\" that is not an array"),
            ),
            (
                "plugins a string",
                with_config(r#"{"name":"x","plugins":"macvlan"}"#),
                Some("spec.config has a \"plugins\" that is not an array"),
            ),
            (
                "plugins null",
                with_config(r#"{"name":"x","type":"macvlan","plugins":null}"#),
                Some("spec.config has a \"plugins\" that is not an array"),
            ),
            (
                "empty plugins",
                with_config(r#"{"name":"x","plugins":[]}"#),
                Some("spec.config has an empty \"plugins\" list"),
            ),
            (
                "plugin without a type",
                with_config(r#"{"name":"x","plugins":[{"type":"macvlan"},{"mtu":9000}]}"#),
                Some("spec.config has plugins[1] without a \"type\""),
            ),
            (
                "plugin not an object",
                with_config(r#"{"name":"x","plugins":["macvlan"]}"#),
                Some("spec.config has plugins[0] that is not an object"),
            ),
            (
                "conf without a type",
                with_config(r#"{"name":"x","master":"eth1"}"#),
                Some("spec.config has no \"type\""),
            ),
            (
                "type a number",
                with_config(r#"{"name":"x","type":5}"#),
                Some("spec.config has no \"type\""),
            ),
            (
                "empty type",
                with_config(r#"{"name":"x","type":""}"#),
                Some("spec.config has no \"type\""),
            ),
            (
                "name not a string",
                with_config(r#"{"name":["x"],"type":"macvlan"}"#),
                Some("spec.config has a \"name\" that is not a string"),
            ),
            // The reference never looks at the version.
            (
                "unknown cniVersion",
                with_config(r#"{"cniVersion":"0.5.0","type":"macvlan"}"#),
                Some(
                    "spec.config.cniVersion \"0.5.0\" is not a CNI version multinet supports (0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
                ),
            ),
            (
                "cniVersion a number",
                with_config(r#"{"cniVersion":1.0,"type":"macvlan"}"#),
                Some("spec.config.cniVersion must be a string"),
            ),
            (
                "cniVersion 0.3.1",
                with_config(r#"{"cniVersion":"0.3.1","type":"macvlan"}"#),
                None,
            ),
            (
                "empty cniVersion (read as 0.1.0)",
                with_config(r#"{"cniVersion":"","type":"macvlan"}"#),
                None,
            ),
            (
                "plugin with an unknown cniVersion",
                with_config(
                    r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"macvlan","cniVersion":"2.0.0"}]}"#,
                ),
                Some("spec.config.plugins[0].cniVersion \"2.0.0\""),
            ),
            (
                "type escaping the plugin directory",
                with_config(r#"{"type":"../../bin/sh"}"#),
                Some("spec.config.type \"../../bin/sh\" must be a plugin binary name, not a path"),
            ),
            (
                "type \".\"",
                with_config(r#"{"type":"."}"#),
                Some("spec.config.type \".\" must be a plugin binary name"),
            ),
            (
                "type \"..\"",
                with_config(r#"{"type":".."}"#),
                Some("spec.config.type \"..\" must be a plugin binary name"),
            ),
            (
                "absolute plugin type in a list",
                with_config(r#"{"name":"x","plugins":[{"type":"macvlan"},{"type":"/opt/evil"}]}"#),
                Some("spec.config.plugins[1].type \"/opt/evil\""),
            ),
            (
                "type with dots but no slash",
                with_config(r#"{"type":"my.plugin..v2"}"#),
                None,
            ),
            // The trust rule (multinet_crds::check_delegate_config), in the plugin's words.
            (
                "multinet as a delegate",
                with_config(r#"{"cniVersion":"1.0.0","type":"multinet"}"#),
                Some(
                    "spec.config.type: \"multinet\" is a meta-plugin and cannot be a delegate of multinet",
                ),
            ),
            (
                "multus as a delegate",
                with_config(r#"{"type":"multus","kubeconfig":"/etc/cni/net.d/multus.kubeconfig"}"#),
                Some("spec.config.type: \"multus\" is a meta-plugin"),
            ),
            (
                "multus-shim in a conflist",
                with_config(
                    r#"{"name":"x","plugins":[{"type":"macvlan"},{"type":"multus-shim"}]}"#,
                ),
                Some("spec.config.plugins[1].type: \"multus-shim\" is a meta-plugin"),
            ),
            (
                "a node path key",
                with_config(r#"{"type":"macvlan","binDir":"/tmp/evil"}"#),
                Some("spec.config.binDir: names a node path or network of multinet's own config"),
            ),
            (
                "a node path key in a conflist",
                with_config(
                    r#"{"name":"x","plugins":[{"type":"macvlan"},{"type":"tuning","kubeconfig":"/root/.kube/config"}]}"#,
                ),
                Some("spec.config.plugins[1].kubeconfig: names a node path"),
            ),
            (
                "delegates key",
                with_config(r#"{"type":"macvlan","delegates":[{"type":"bridge"}]}"#),
                Some("spec.config.delegates"),
            ),
            (
                "readinessindicatorfile key",
                with_config(r#"{"type":"macvlan","readinessindicatorfile":"/etc/shadow"}"#),
                Some("spec.config.readinessindicatorfile"),
            ),
            (
                "logFile outside /var/log",
                with_config(r#"{"type":"sriov","logFile":"/etc/cron.d/evil"}"#),
                Some("spec.config.logFile: must be a file under /var/log/"),
            ),
            (
                "logFile climbing out of /var/log",
                with_config(r#"{"type":"sriov","logFile":"/var/log/../../etc/passwd"}"#),
                Some("spec.config.logFile: must be a file under /var/log/"),
            ),
            (
                "logFile under /var/log",
                with_config(r#"{"type":"sriov","logFile":"/var/log/sriov.log"}"#),
                None,
            ),
            (
                "a type that merely contains multus",
                with_config(r#"{"type":"multus-thick-helper-not"}"#),
                None,
            ),
            // One of multinet's delegates reads the config as it will at ADD.
            (
                "a macvlan mode our delegate does not know",
                with_config(r#"{"cniVersion":"1.0.0","type":"macvlan","mode":"bridgee"}"#),
                Some("spec.config: the macvlan delegate refuses this config"),
            ),
            (
                "an SR-IOV VLAN out of range",
                with_config(r#"{"cniVersion":"1.0.0","type":"sriov","vlan":4096}"#),
                Some("spec.config: the sriov delegate refuses this config"),
            ),
            (
                "a host-local subnet that is no subnet",
                with_config(
                    r#"{"cniVersion":"1.0.0","type":"ipvlan","ipam":{"type":"host-local","subnet":"10.0.0.0/40"}}"#,
                ),
                Some("the ipvlan delegate refuses this config"),
            ),
            (
                "config a number",
                nad(json!("net1"), json!({"config": 5})),
                Some("spec.config must be a string"),
            ),
            (
                "spec a string",
                nad(json!("net1"), json!("config")),
                Some("spec must be an object"),
            ),
        ]
    }

    #[test]
    fn nad_table() {
        let cases = cases();
        assert!(cases.len() >= 25);
        for (case, object, expected) in cases {
            let outcome = check_nad(&object);
            match (expected, outcome) {
                (None, Ok(())) => {}
                (Some(text), Err(denial)) => {
                    assert_eq!(denial.code, 400, "{case}");
                    assert!(
                        denial.message.contains(text),
                        "{case}: {:?} does not contain {text:?}",
                        denial.message
                    );
                }
                (expected, outcome) => {
                    panic!("{case}: expected {expected:?}, got {outcome:?}")
                }
            }
        }
    }

    fn review(operation: &str, kind: &str, object: Value) -> Value {
        let (group, resource) = if kind == NAD_KIND {
            (NAD_GROUP, "network-attachment-definitions")
        } else {
            ("", "pods")
        };
        let body = review_json(group, kind, resource, operation, "team", object);
        response_of(&answer(&body, validate_nad))
    }

    /// Checks that `response` refuses the object with a 400 and gives back its message.
    fn denial_message(response: &Value) -> &str {
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        response["status"]["message"].as_str().unwrap()
    }

    #[test]
    fn reviews_deny_with_the_message_and_admit_with_uid() {
        let response = review("CREATE", NAD_KIND, with_config(MACVLAN));
        assert_eq!(response["allowed"], true);
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");

        let response = review("UPDATE", NAD_KIND, with_config(r#"{"type":"../x"}"#));
        assert!(denial_message(&response).starts_with("spec.config.type \"../x\""));
    }

    #[test]
    fn the_denial_is_the_plugins_own_words() {
        for config in [
            json!({"type": "multinet"}),
            json!({"name": "x", "plugins": [{"type": "macvlan", "cniDir": "/tmp"}]}),
            json!({"type": "sriov", "logFile": "/root/x"}),
        ] {
            let violation = check_delegate_config(&DelegateConf::new(config.clone())).unwrap_err();
            let denial = check_nad(&with_config(&config.to_string())).unwrap_err();
            assert_eq!(denial.message, format!("spec.config.{violation}"));
        }
        // Through a whole review, as the API server sees it.
        let response = review("CREATE", NAD_KIND, with_config(r#"{"type":"multus"}"#));
        assert!(denial_message(&response).contains("meta-plugin"));
    }

    #[test]
    fn other_operations_pass_and_other_kinds_are_refused() {
        let bad = with_config("not json");
        assert_eq!(review("DELETE", NAD_KIND, bad.clone())["allowed"], true);
        assert_eq!(review("CONNECT", NAD_KIND, bad)["allowed"], true);
        let response = review(
            "CREATE",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
        );
        assert_eq!(response["allowed"], false);
        assert_eq!(
            response["status"]["message"],
            "this webhook validates k8s.cni.cncf.io NetworkAttachmentDefinition objects, not v1 Pod"
        );
    }
}
