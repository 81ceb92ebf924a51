//! Bad input through the multinet binary, table-driven: each case gets a fresh node, runs ADD once
//! and must fail with the exact CNI error code, a message that names the bad thing (annotation
//! element and field, NAD, config key, environment variable), and leave nothing behind: no new
//! link in the pod or the node, no IP allocated, no attachment record. The runtime's DEL after the
//! failed ADD must then succeed (or fail the same way when the input DEL reads is the bad part)
//! and still leave nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{Answer, Node};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

/// CNI error codes (spec).
const INCOMPATIBLE_VERSION: u64 = 1;
const INVALID_ENV: u64 = 4;
const DECODE: u64 = 6;
const INVALID_CONFIG: u64 = 7;
const INTERNAL: u64 = 999;

const POD: &str = "web";

/// Writes a pod of namespace `team` with these annotations (JSON is read by the local source).
fn pod_with(node: &Node, annotations: &[(&str, &str)]) {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": "team", "uid": format!("uid-{POD}"),
                     "annotations": annotations}});
    fs::write(
        node.path(&format!("cluster/pods/{POD}.json")),
        pod.to_string(),
    )
    .unwrap();
}

fn pod_networks(node: &Node, networks: &str) {
    pod_with(node, &[("k8s.v1.cni.cncf.io/networks", networks)]);
}

/// A NAD in any namespace; `config` None leaves spec.config out, a string is used verbatim.
fn nad_in(node: &Node, namespace: &str, name: &str, config: Option<String>) {
    let mut nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace}, "spec": {}});
    if let Some(c) = config {
        nad["spec"]["config"] = Value::String(c);
    }
    fs::write(
        node.path(&format!("cluster/nads/{namespace}-{name}.json")),
        nad.to_string(),
    )
    .unwrap();
}

/// The usual good networks: `data` (macvlan on up0) and `storage` (macvlan on up1).
fn good_nads(node: &Node) {
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
}

/// `data` plus one more NAD `bad` with this raw config, selected after `data` so the cluster
/// network and `data` are already attached when `bad` fails.
fn good_then_bad(node: &Node, bad_config: Value) {
    good_nads(node);
    nad_in(node, "team", "bad", Some(bad_config.to_string()));
    pod_networks(node, "data,bad");
}

/// One bad-input case.
struct Case {
    name: &'static str,
    /// Builds the case's NADs, pods, files and pre-existing links.
    setup: fn(&Node, &TestNetns),
    /// stdin; None means the node's good config.
    stdin: Option<fn(&Node) -> String>,
    /// Environment changes: (var, Some(value)) sets, (var, None) unsets; `__NODE__` in a value
    /// is the node's temp dir.
    env: &'static [(&'static str, Option<&'static str>)],
    code: u64,
    /// Every one must appear in the error message.
    names: &'static [&'static str],
    /// The DEL that follows uses the same stdin and env; true when those are the bad part, so
    /// DEL must fail with the same code.
    del_fails_too: bool,
}

const NO_ENV: &[(&str, Option<&str>)] = &[];

fn case(
    name: &'static str,
    setup: fn(&Node, &TestNetns),
    code: u64,
    names: &'static [&'static str],
) -> Case {
    Case {
        name,
        setup,
        stdin: None,
        env: NO_ENV,
        code,
        names,
        del_fails_too: false,
    }
}

/// Runs the multinet binary in the node namespace as a runtime would.
fn run(node: &Node, command: &str, pod_ns: &TestNetns, c: &Case) -> Answer {
    let mut call = node.call(command, "c1", POD, pod_ns.path_str());
    if let Some(f) = c.stdin {
        call = call.stdin(f(node));
    }
    for (k, v) in c.env {
        call = match v {
            Some(v) => call.env(k, v.replace("__NODE__", &node.dir.path().to_string_lossy())),
            None => call.env_remove(k),
        };
    }
    Answer::lenient(&call.run())
}

/// Links of a namespace with their kinds, to compare before and after.
fn all_links(ns: &TestNetns) -> Vec<String> {
    let mut names: Vec<String> = ns
        .ip_json(&["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Node links other than the bridge the reference bridge plugin keeps (it never deletes it).
fn node_links(node: &Node) -> Vec<String> {
    all_links(&node.ns)
        .into_iter()
        .filter(|n| n != "cni0")
        .collect()
}

/// Everything a failed ADD must not leave; returns what it found wrong.
fn leftovers(
    node: &Node,
    pod_ns: &TestNetns,
    pod_before: &[String],
    node_before: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    let pod_now = all_links(pod_ns);
    if pod_now != pod_before {
        wrong.push(format!("pod links {pod_now:?}, before {pod_before:?}"));
    }
    let node_now = node_links(node);
    if node_now != node_before {
        wrong.push(format!("node links {node_now:?}, before {node_before:?}"));
    }
    let ips = node.allocated_ips();
    if !ips.is_empty() {
        wrong.push(format!("IPs left {ips:?}"));
    }
    let records = node.records();
    if !records.is_empty() {
        wrong.push(format!("records left {records:?}"));
    }
    wrong
}

/// Runs one case on a fresh node; returns its failures.
fn check(c: &Case) -> Vec<String> {
    let node = Node::new("1.0.0");
    let pod_ns = TestNetns::new();
    (c.setup)(&node, &pod_ns);
    let pod_before = all_links(&pod_ns);
    let node_before = node_links(&node);
    let mut wrong = Vec::new();

    let add = run(&node, "ADD", &pod_ns, c);
    let code = add.stdout["code"].as_u64();
    let msg = add.stdout["msg"].as_str().unwrap_or("").to_string();
    eprintln!("{}: ADD -> {code:?} {msg}", c.name);
    if add.code == 0 {
        wrong.push(format!("ADD succeeded: {}", add.stdout));
    } else {
        if code != Some(c.code) {
            wrong.push(format!("code {code:?}, want {}: {msg}", c.code));
        }
        for name in c.names {
            if !msg.contains(name) {
                wrong.push(format!("message does not name {name:?}: {msg}"));
            }
        }
    }
    wrong.extend(leftovers(&node, &pod_ns, &pod_before, &node_before));

    let del = run(&node, "DEL", &pod_ns, c);
    match (c.del_fails_too, del.code) {
        (false, 0) => {}
        (false, _) => wrong.push(format!("DEL after the failed ADD failed: {}", del.stdout)),
        (true, 0) => wrong.push("DEL with the same bad input succeeded".into()),
        (true, _) => {
            if del.stdout["code"].as_u64() != Some(c.code) {
                wrong.push(format!("DEL code: {}", del.stdout));
            }
        }
    }
    wrong.extend(
        leftovers(&node, &pod_ns, &pod_before, &node_before)
            .into_iter()
            .map(|w| format!("after DEL: {w}")),
    );
    wrong
        .into_iter()
        .map(|w| format!("{}: {w}", c.name))
        .collect()
}

fn run_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        failures.extend(check(c));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_pod_annotations() {
    require_root!();
    run_table(vec![
        case(
            "short form: name with capitals and underscore",
            |n, _| {
                good_nads(n);
                pod_networks(n, "data,Bad_Name");
            },
            INVALID_CONFIG,
            &["networks[1].name", "Bad_Name"],
        ),
        case(
            "short form: bad namespace",
            |n, _| {
                good_nads(n);
                pod_networks(n, "Team!/data");
            },
            INVALID_CONFIG,
            &["networks[0].namespace", "Team!"],
        ),
        case(
            "short form: interface name too long",
            |n, _| {
                good_nads(n);
                pod_networks(n, "data@averyveryverylongname");
            },
            INVALID_CONFIG,
            &["networks[0].interface", "averyveryverylongname"],
        ),
        case(
            "short form: empty element",
            |n, _| {
                good_nads(n);
                pod_networks(n, "data,,storage");
            },
            INVALID_CONFIG,
            &["networks[1]", "empty"],
        ),
        case(
            "JSON form: bad MAC",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data","mac":"zz:00"}]"#);
            },
            INVALID_CONFIG,
            &["networks[0].mac", "zz:00"],
        ),
        case(
            "JSON form: bad IP",
            |n, _| {
                good_nads(n);
                pod_networks(
                    n,
                    r#"[{"name":"data"},{"name":"storage","ips":["10.20.0.300/24"]}]"#,
                );
            },
            INVALID_CONFIG,
            &["networks[1].ips[0]", "10.20.0.300"],
        ),
        case(
            "JSON form: ips is not a list",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data","ips":"10.10.0.5/24"}]"#);
            },
            INVALID_CONFIG,
            &["networks[0].ips", "array"],
        ),
        case(
            "JSON form: duplicate interface",
            |n, _| {
                good_nads(n);
                pod_networks(
                    n,
                    r#"[{"name":"data","interface":"net5"},{"name":"storage","interface":"net5"}]"#,
                );
            },
            INVALID_CONFIG,
            &["networks[1].interface", "net5", "networks[0]"],
        ),
        case(
            "JSON form: interface is the cluster network's",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data","interface":"eth0"}]"#);
            },
            INVALID_CONFIG,
            &["team/data", "networks[0].interface", "eth0"],
        ),
        case(
            "JSON form: two IPv4 default-route gateways",
            |n, _| {
                good_nads(n);
                pod_networks(
                    n,
                    r#"[{"name":"data","default-route":["10.10.0.1"]},{"name":"storage","default-route":["10.20.0.1"]}]"#,
                );
            },
            INVALID_CONFIG,
            &[
                "networks[1].default-route",
                "networks[0]",
                "10.20.0.1",
                "ECMP",
            ],
        ),
        case(
            "JSON form: bad default-route gateway",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data","default-route":["gateway"]}]"#);
            },
            INVALID_CONFIG,
            &["networks[0].default-route[0]", "gateway"],
        ),
        case(
            "JSON form: ipam-claim-reference together with ips",
            |n, _| {
                good_nads(n);
                pod_networks(
                    n,
                    r#"[{"name":"data","ips":["10.10.0.5/24"],"ipam-claim-reference":"claim-1"}]"#,
                );
            },
            INVALID_CONFIG,
            &["networks[0].ipam-claim-reference", "\"ips\""],
        ),
        case(
            "JSON form: unterminated",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data""#);
            },
            INVALID_CONFIG,
            &["networks", "JSON"],
        ),
        case(
            "JSON form: element without a name",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data"},{"interface":"net3"}]"#);
            },
            INVALID_CONFIG,
            &["networks[1].name", "required"],
        ),
        case(
            "JSON form: element is not an object",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data"},7]"#);
            },
            INVALID_CONFIG,
            &["networks[1]", "object"],
        ),
        case(
            "JSON form: port mapping without containerPort",
            |n, _| {
                good_nads(n);
                pod_networks(
                    n,
                    r#"[{"name":"data","portMappings":[{"hostPort":8080,"protocol":"tcp"}]}]"#,
                );
            },
            INVALID_CONFIG,
            &["networks[0].portMappings[0].containerPort"],
        ),
        case(
            "default-network annotation with two entries",
            |n, _| {
                good_nads(n);
                pod_with(n, &[("v1.multus-cni.io/default-network", "data,storage")]);
            },
            INVALID_CONFIG,
            &["default-network", "exactly one"],
        ),
    ]);
}

#[test]
fn bad_networks_and_delegate_configs() {
    require_root!();
    run_table(vec![
        case(
            "unknown NAD",
            |n, _| {
                good_nads(n);
                pod_networks(n, "data,ghost");
            },
            INVALID_CONFIG,
            &["team/ghost", "not found"],
        ),
        case(
            "other namespace under namespaceIsolation",
            |n, _| {
                good_nads(n);
                nad_in(
                    n,
                    "other",
                    "data",
                    Some(n.macvlan_nad("data", "up0", "10.10.0.0/24").to_string()),
                );
                pod_networks(n, "data,other/data");
            },
            INVALID_CONFIG,
            &[
                "k8s.v1.cni.cncf.io/networks[1]",
                "other/data",
                "namespaceIsolation",
            ],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c["namespaceIsolation"] = true.into();
            c.to_string()
        }),
        case(
            "interface name already in the pod",
            |n, pod| {
                good_nads(n);
                pod_networks(n, "data,storage");
                pod.ip(&[
                    "link", "add", "net2", "type", "veth", "peer", "name", "busy0",
                ]);
            },
            INVALID_CONFIG,
            &["net2", "already exists"],
        ),
        case(
            "CNI_IFNAME already in the pod",
            |n, pod| {
                good_nads(n);
                pod_networks(n, "data");
                pod.ip(&[
                    "link", "add", "eth0", "type", "veth", "peer", "name", "busy0",
                ]);
            },
            INVALID_CONFIG,
            &["eth0", "already exists"],
        ),
        case(
            "NAD failing between two good ones",
            |n, _| {
                good_nads(n);
                let bad = json!({"cniVersion":"1.0.0","name":"bad","type":"macvlan",
                    "master":"no-such-link", "ipam": {"type": "host-local",
                    "ranges": [[{"subnet": "10.30.0.0/24"}]], "dataDir": n.path("ipam")}});
                nad_in(n, "team", "bad", Some(bad.to_string()));
                pod_networks(n, "data,bad,storage");
            },
            // The reference macvlan reports a missing master as code 999; multinet keeps a
            // delegate's code and adds the network, plugin and interface.
            INTERNAL,
            &["team/bad", "macvlan", "net2", "Link not found"],
        ),
        case(
            "NAD config is not JSON",
            |n, _| {
                good_nads(n);
                nad_in(n, "team", "bad", Some("{\"type\": \"macvlan\",".into()));
                pod_networks(n, "data,bad");
            },
            INVALID_CONFIG,
            &["team/bad", "JSON"],
        ),
        case(
            "NAD config is not an object",
            |n, _| {
                good_nads(n);
                nad_in(n, "team", "bad", Some("[1,2]".into()));
                pod_networks(n, "data,bad");
            },
            INVALID_CONFIG,
            &["team/bad", "object"],
        ),
        case(
            "NAD config without type",
            |n, _| good_then_bad(n, json!({"cniVersion":"1.0.0","name":"bad","master":"up0"})),
            INVALID_CONFIG,
            &["team/bad", "\"type\""],
        ),
        case(
            "NAD conflist with empty plugins",
            |n, _| good_then_bad(n, json!({"cniVersion":"1.0.0","name":"bad","plugins":[]})),
            INVALID_CONFIG,
            &["team/bad", "plugins", "empty"],
        ),
        // The webhook's words for the same configs (`multinet_crds::parse_nad_config`).
        case(
            "NAD conflist whose plugins is not a list",
            |n, _| good_then_bad(n, json!({"cniVersion":"1.0.0","name":"bad","plugins":{}})),
            INVALID_CONFIG,
            &[
                "team/bad",
                "spec.config has a \"plugins\" that is not an array",
            ],
        ),
        case(
            "NAD conflist with a plugin without type",
            |n, _| {
                good_then_bad(
                    n,
                    json!({"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"macvlan"},{}]}),
                )
            },
            INVALID_CONFIG,
            &["team/bad", "spec.config has plugins[1] without a \"type\""],
        ),
        case(
            "NAD plugin type with a relative path",
            |n, _| good_then_bad(n, json!({"cniVersion":"1.0.0","name":"bad","type":"../x"})),
            INVALID_CONFIG,
            &["team/bad", "\"../x\""],
        ),
        case(
            "NAD plugin type with an absolute path",
            |n, _| {
                good_then_bad(
                    n,
                    json!({"cniVersion":"1.0.0","name":"bad","type":"/bin/sh"}),
                )
            },
            INVALID_CONFIG,
            &["team/bad", "\"/bin/sh\""],
        ),
        case(
            "NAD plugin missing from CNI_PATH",
            |n, _| {
                good_then_bad(
                    n,
                    json!({"cniVersion":"1.0.0","name":"bad","type":"frobnicator"}),
                )
            },
            INVALID_CONFIG,
            &["team/bad", "frobnicator", "CNI_PATH"],
        ),
        case(
            "NAD with an unknown cniVersion",
            |n, _| {
                good_then_bad(
                    n,
                    json!({"cniVersion":"9.9.9","name":"bad","type":"macvlan"}),
                )
            },
            INCOMPATIBLE_VERSION,
            &["team/bad", "9.9.9"],
        ),
        // Ignored by default, as Multus ignores it (multus_dropin.rs); refused when strict.
        case(
            "requested ips on a network whose plugins lack the capability, strictCapabilities",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"data","ips":["10.10.0.5/24"]}]"#);
            },
            INVALID_CONFIG,
            &["team/data", "ips", "capability", "strictCapabilities"],
        )
        .with_stdin(strict_capabilities),
        // Ignored by default, as Multus ignores it (multus_dropin.rs); refused when strict.
        case(
            "requested mac on a network whose plugins lack the capability, strictCapabilities",
            |n, _| {
                good_nads(n);
                pod_networks(n, r#"[{"name":"storage","mac":"02:00:00:00:00:07"}]"#);
            },
            INVALID_CONFIG,
            &["team/storage", "mac", "capability", "strictCapabilities"],
        )
        .with_stdin(strict_capabilities),
        case(
            "NAD with empty config and no file in confDir",
            |n, _| {
                good_nads(n);
                nad_in(n, "team", "empty", None);
                pod_networks(n, "data,empty");
            },
            INVALID_CONFIG,
            &["team/empty", "spec.config", "net.d"],
        ),
        case(
            "NAD's resourceName needs a device the pod does not hold",
            |n, _| {
                good_nads(n);
                let mut nad = json!({"apiVersion": "k8s.cni.cncf.io/v1",
                    "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": "vf", "namespace": "team",
                        "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}},
                    "spec": {}});
                nad["spec"]["config"] = n
                    .macvlan_nad("vf", "up0", "10.30.0.0/24")
                    .to_string()
                    .into();
                fs::write(n.path("cluster/nads/vf.json"), nad.to_string()).unwrap();
                fs::write(
                    n.path("checkpoint"),
                    r#"{"Data":{"PodDeviceEntries":[],"RegisteredDevices":{}},"Checksum":0}"#,
                )
                .unwrap();
                pod_networks(n, "data,vf");
            },
            INVALID_CONFIG,
            &["team/vf", "intel.com/sriov"],
        )
        .with_env(&[
            ("MULTINET_KUBELET_CHECKPOINT", Some("__NODE__/checkpoint")),
            (
                "MULTINET_PODRESOURCES_SOCKET",
                Some("__NODE__/no-kubelet.sock"),
            ),
        ]),
    ]);
}

#[test]
fn bad_cni_environment() {
    require_root!();
    let pod_setup: fn(&Node, &TestNetns) = |n, _| {
        good_nads(n);
        pod_networks(n, "data");
    };
    run_table(vec![
        case(
            "container id with a space",
            pod_setup,
            INVALID_ENV,
            &["CNI_CONTAINERID"],
        )
        .with_env(&[("CNI_CONTAINERID", Some("bad id"))])
        .del_fails_too(),
        case(
            "container id empty",
            pod_setup,
            INVALID_ENV,
            &["CNI_CONTAINERID"],
        )
        .with_env(&[("CNI_CONTAINERID", Some(""))])
        .del_fails_too(),
        case(
            "ifname too long",
            pod_setup,
            INVALID_ENV,
            &["CNI_IFNAME", "averyveryverylongname"],
        )
        .with_env(&[("CNI_IFNAME", Some("averyveryverylongname"))])
        .del_fails_too(),
        case(
            "ifname with a slash",
            pod_setup,
            INVALID_ENV,
            &["CNI_IFNAME", "a/b"],
        )
        .with_env(&[("CNI_IFNAME", Some("a/b"))])
        .del_fails_too(),
        case(
            "ADD without CNI_NETNS",
            pod_setup,
            INVALID_ENV,
            &["CNI_NETNS"],
        )
        .with_env(&[("CNI_NETNS", None)]),
        case(
            "CNI_ARGS pair without =",
            pod_setup,
            INVALID_ENV,
            &["CNI_ARGS", "K8S_POD_NAME"],
        )
        .with_env(&[(
            "CNI_ARGS",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME"),
        )])
        .del_fails_too(),
        case(
            "K8S_POD_NAME without K8S_POD_NAMESPACE",
            pod_setup,
            INVALID_ENV,
            &["CNI_ARGS", "K8S_POD_NAMESPACE"],
        )
        .with_env(&[(
            "CNI_ARGS",
            Some("IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_UID=uid-web"),
        )]),
        case(
            "K8S_POD_NAMESPACE without K8S_POD_NAME",
            pod_setup,
            INVALID_ENV,
            &["CNI_ARGS", "K8S_POD_NAME"],
        )
        .with_env(&[("CNI_ARGS", Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=team"))]),
        case(
            "pod not found",
            pod_setup,
            INVALID_CONFIG,
            &["team/nobody", "not found"],
        )
        .with_env(&[(
            "CNI_ARGS",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=nobody"),
        )]),
        case(
            "unknown CNI_COMMAND",
            pod_setup,
            INVALID_ENV,
            &["CNI_COMMAND", "ATTACH"],
        )
        .with_env(&[("CNI_COMMAND", Some("ATTACH"))])
        .del_fails_too(),
    ]);
}

#[test]
fn bad_multinet_config() {
    require_root!();
    let pod_setup: fn(&Node, &TestNetns) = |n, _| {
        good_nads(n);
        pod_networks(n, "data");
    };
    run_table(vec![
        case(
            "neither clusterNetwork nor delegates",
            pod_setup,
            INVALID_CONFIG,
            &["clusterNetwork", "delegates"],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c.as_object_mut().unwrap().remove("clusterNetwork");
            c.to_string()
        })
        .del_fails_too(),
        case("not JSON", pod_setup, DECODE, &["network config", "JSON"])
            .with_stdin(|_| "{\"cniVersion\": \"1.0.0\", \"name\":".into())
            .del_fails_too(),
        case(
            "unknown cniVersion",
            pod_setup,
            INCOMPATIBLE_VERSION,
            &["9.9.9"],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c["cniVersion"] = "9.9.9".into();
            c.to_string()
        })
        .del_fails_too(),
        case(
            "key of the wrong type",
            pod_setup,
            INVALID_CONFIG,
            &["\"namespaceIsolation\"", "boolean"],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c["namespaceIsolation"] = "yes".into();
            c.to_string()
        })
        .del_fails_too(),
        case(
            "clusterNetwork names nothing",
            pod_setup,
            INVALID_CONFIG,
            &["nowhere"],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c["clusterNetwork"] = "nowhere".into();
            c.to_string()
        }),
        case(
            "inline delegate without type",
            pod_setup,
            INVALID_CONFIG,
            &["network cluster", "\"type\""],
        )
        .with_stdin(|n| {
            let mut c = n.conf();
            c.as_object_mut().unwrap().remove("clusterNetwork");
            c["delegates"] = json!([{"cniVersion": "1.0.0", "name": "cluster"}]);
            c.to_string()
        }),
    ]);
}

/// The node's config with `strictCapabilities`.
fn strict_capabilities(n: &Node) -> String {
    let mut c = n.conf();
    c["strictCapabilities"] = json!(true);
    c.to_string()
}

impl Case {
    fn with_stdin(mut self, f: fn(&Node) -> String) -> Case {
        self.stdin = Some(f);
        self
    }

    fn with_env(mut self, env: &'static [(&'static str, Option<&'static str>)]) -> Case {
        self.env = env;
        self
    }

    fn del_fails_too(mut self) -> Case {
        self.del_fails_too = true;
        self
    }
}
