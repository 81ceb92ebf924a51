//! The example manifests in deploy/ agree with each other and with the server: flags parse,
//! ports, paths, names, the Secret's mount and the RBAC the lookups need.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers outside #[test] fns fail loudly by design.

use std::path::{Path, PathBuf};

use clap::Parser;
use multinet_webhook::flags::Flags;
use multinet_webhook::server::{
    DEFAULT_CERT_FILE, DEFAULT_KEY_FILE, DEFAULT_PORT, HEALTHZ_PATH, ISOLATE_PATH, MUTATE_PATH,
    READYZ_PATH, VALIDATE_PATH,
};
use multinet_webhook::validate::NAD_GROUP;
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of every YAML file in deploy/.
fn documents() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{value} is not a list"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn flags(deployment: &Value) -> Flags {
    let args = strings(&container(deployment)["args"]);
    Flags::try_parse_from(std::iter::once("multinet-webhook").chain(args))
        .unwrap_or_else(|e| panic!("the Deployment's args do not parse: {e}"))
}

#[test]
fn every_document_is_a_known_kind() {
    let kinds: Vec<String> = documents()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Issuer",
        "Certificate",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in deploy/");
    }
    assert_eq!(kinds.len(), 11, "{kinds:?}");
}

#[test]
fn ports_and_certificate_paths_match_the_server() {
    let docs = documents();
    let deployment = one(&docs, "Deployment");
    let config = flags(deployment).config().unwrap();
    assert_eq!(config.listen.port(), DEFAULT_PORT);
    assert_eq!(config.cert_files.cert, Path::new(DEFAULT_CERT_FILE));
    assert_eq!(config.cert_files.key, Path::new(DEFAULT_KEY_FILE));

    let container = container(deployment);
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"], json!(DEFAULT_PORT));
    let service = one(&docs, "Service");
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["targetPort"], port["name"]);
    for (probe, path) in [
        ("livenessProbe", HEALTHZ_PATH),
        ("readinessProbe", READYZ_PATH),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path);
        assert_eq!(get["port"], port["name"]);
        assert_eq!(get["scheme"], "HTTPS");
    }

    // The Secret is mounted where the flags look, and holds the files they name.
    let mount = &container["volumeMounts"][0];
    assert_eq!(
        Path::new(mount["mountPath"].as_str().unwrap()),
        config.cert_files.cert.parent().unwrap()
    );
    assert_eq!(config.cert_files.cert.file_name().unwrap(), "tls.crt");
    assert_eq!(config.cert_files.key.file_name().unwrap(), "tls.key");
    let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    let certificate = one(&docs, "Certificate");
    assert_eq!(
        volume["secret"]["secretName"],
        certificate["spec"]["secretName"]
    );
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    let service_name = service["metadata"]["name"].as_str().unwrap();
    assert!(
        strings(&certificate["spec"]["dnsNames"])
            .contains(&format!("{service_name}.{namespace}.svc").as_str())
    );

    // The pods the Service selects are the Deployment's.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value);
    }
    assert_eq!(service["metadata"]["namespace"], namespace);
}

#[test]
fn webhooks_call_the_server_paths_for_the_right_objects() {
    let docs = documents();
    let service = one(&docs, "Service");
    let certificate = one(&docs, "Certificate");
    let ca_source = format!(
        "{}/{}",
        certificate["metadata"]["namespace"].as_str().unwrap(),
        certificate["metadata"]["name"].as_str().unwrap()
    );
    let mut seen = Vec::new();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let configuration = one(&docs, kind);
        assert_eq!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            ca_source.as_str()
        );
        for hook in configuration["webhooks"].as_array().unwrap() {
            let target = &hook["clientConfig"]["service"];
            assert_eq!(target["name"], service["metadata"]["name"]);
            assert_eq!(target["namespace"], service["metadata"]["namespace"]);
            assert_eq!(target["port"], service["spec"]["ports"][0]["port"]);
            assert_eq!(strings(&hook["admissionReviewVersions"]), ["v1"]);
            assert_eq!(hook["sideEffects"], "None");
            let rule = &hook["rules"][0];
            let path = target["path"].as_str().unwrap();
            let (group, resource, operations, mutating) = match path {
                p if p == VALIDATE_PATH => (
                    NAD_GROUP,
                    "network-attachment-definitions",
                    vec!["CREATE", "UPDATE"],
                    false,
                ),
                p if p == ISOLATE_PATH => ("", "pods", vec!["CREATE"], false),
                p if p == MUTATE_PATH => ("", "pods", vec!["CREATE"], true),
                other => panic!("{other} is not a path the server serves"),
            };
            assert_eq!(kind == "MutatingWebhookConfiguration", mutating, "{path}");
            assert_eq!(strings(&rule["apiGroups"]), [group], "{path}");
            assert_eq!(strings(&rule["apiVersions"]), ["v1"], "{path}");
            assert_eq!(strings(&rule["resources"]), [resource], "{path}");
            assert_eq!(strings(&rule["operations"]), operations, "{path}");
            if resource == "pods" {
                let excluded = &hook["namespaceSelector"]["matchExpressions"][0];
                assert_eq!(excluded["operator"], "NotIn");
                assert!(strings(&excluded["values"]).contains(&"kube-system"));
            }
            seen.push(path.to_owned());
        }
    }
    seen.sort();
    assert_eq!(seen, [ISOLATE_PATH, MUTATE_PATH, VALIDATE_PATH]);
}

#[test]
fn the_service_account_may_read_nads() {
    let docs = documents();
    let deployment = one(&docs, "Deployment");
    let account = one(&docs, "ServiceAccount");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        account["metadata"]["name"]
    );
    assert_eq!(
        account["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let binding = one(&docs, "ClusterRoleBinding");
    let role = one(&docs, "ClusterRole");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], account["metadata"]["name"]);
    assert_eq!(subject["namespace"], account["metadata"]["namespace"]);
    let grants = role["rules"].as_array().unwrap().iter().any(|rule| {
        strings(&rule["apiGroups"]).contains(&NAD_GROUP)
            && strings(&rule["resources"]).contains(&"network-attachment-definitions")
            && ["get", "list"]
                .iter()
                .all(|verb| strings(&rule["verbs"]).contains(verb))
    });
    assert!(
        grants,
        "the ClusterRole does not grant get and list on NADs"
    );
}

#[test]
fn the_service_account_may_read_its_control_configmap_only() {
    let docs = documents();
    let deployment = one(&docs, "Deployment");
    let control = flags(deployment).config().unwrap().control.unwrap();
    let role = one(&docs, "Role");
    let binding = one(&docs, "RoleBinding");
    assert_eq!(
        role["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    assert_eq!(
        control.namespace,
        deployment["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], "multinet-webhook");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": [control.name], "verbs": ["get"]}])
    );
}

#[test]
fn the_own_namespace_comes_from_the_downward_api() {
    let docs = documents();
    let deployment = one(&docs, "Deployment");
    let env = container(deployment)["env"].as_array().unwrap();
    let namespace = env.iter().find(|e| e["name"] == "POD_NAMESPACE").unwrap();
    assert_eq!(
        namespace["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // The flags read that variable: the own namespace lands among the skipped ones.
    let config = flags(deployment).config().unwrap();
    assert!(
        config.injector.skip_namespaces.contains(
            &deployment["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_owned()
        )
    );
}
