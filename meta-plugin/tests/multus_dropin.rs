//! A Multus config and pod through the multinet binary give the outcome Multus documents:
//! extra inline delegates, interface names by position, requests the plugins cannot take,
//! `logToStderr`/`logOptions`, `binDir` first in the search path, and GC of every network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Node;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

fn write_executable(path: &Path, script: &str) {
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A plugin that adds a named interface result, deletes nothing, and appends every GC's config to
/// `log`.
fn spy_script(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
conf=$(cat)
case "$CNI_COMMAND" in
ADD) printf '{{"cniVersion":"1.0.0","interfaces":[{{"name":"%s","sandbox":"%s"}}]}}' "$CNI_IFNAME" "$CNI_NETNS" ;;
GC) printf '%s\n' "$conf" >> {log} ;;
VERSION) printf '{{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}}' ;;
esac
"#,
        log = log.display()
    )
}

/// The node's config in Multus's `delegates` form: the cluster network first, then `extra`.
fn delegates_conf(node: &Node, extra: Vec<Value>) -> Value {
    let cluster: Value =
        serde_json::from_str(&fs::read_to_string(node.path("net.d/10-cluster.conflist")).unwrap())
            .unwrap();
    let mut conf = node.conf();
    conf.as_object_mut().unwrap().remove("clusterNetwork");
    let mut delegates = vec![cluster];
    delegates.extend(extra);
    conf["delegates"] = Value::Array(delegates);
    conf
}

fn sorted_links(ns: &TestNetns) -> Vec<String> {
    let mut links = Node::links(ns);
    links.sort();
    links
}

fn status_summary(node: &Node, pod: &str) -> Vec<(String, String, bool)> {
    node.network_status(pod)
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["interface"].as_str().unwrap().to_string(),
                s["default"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Multus: every entry of `delegates` after the first is a network of every pod, attached
/// after the cluster network and before the annotation's, named `net<position>`.
#[test]
fn extra_delegates_are_networks_of_every_pod() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("web", "data");
    let conf = delegates_conf(
        &node,
        vec![node.macvlan_nad("extra", "up1", "10.20.0.0/24")],
    );
    let pod = TestNetns::new();
    let result = node.cni_with("ADD", "c1", "web", pod.path_str(), &conf);
    // The cluster network's result is the one printed.
    let ip = result.ok()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.99.0."), "{ip}");
    assert_eq!(sorted_links(&pod), ["eth0", "net1", "net2"]);
    assert_eq!(
        status_summary(&node, "web"),
        [
            ("cluster".to_string(), "eth0".to_string(), true),
            ("extra".to_string(), "net1".to_string(), false),
            ("team/data".to_string(), "net2".to_string(), false),
        ]
    );
    let net1 = pod.ip_json(&["-4", "addr", "show", "net1"]);
    assert!(
        net1[0]["addr_info"][0]["local"]
            .as_str()
            .unwrap()
            .starts_with("10.20.0."),
        "{net1}"
    );
    // Recorded: DEL removes it with the rest.
    let record: Value =
        serde_json::from_str(&fs::read_to_string(&node.records()[0]).unwrap()).unwrap();
    let recorded: Vec<&str> = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["network"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, ["cluster", "extra", "team/data"]);
    node.cni_with("DEL", "c1", "web", pod.path_str(), &conf)
        .ok();
    node.assert_clean(&pod);

    // A pod with no annotation gets the extra network too.
    fs::write(
        node.path("cluster/pods/bare.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\n  namespace: team\n  uid: uid-bare\n",
    )
    .unwrap();
    let pod = TestNetns::new();
    node.cni_with("ADD", "c2", "bare", pod.path_str(), &conf)
        .ok();
    assert_eq!(sorted_links(&pod), ["eth0", "net1"]);
    node.cni_with("DEL", "c2", "bare", pod.path_str(), &conf)
        .ok();
    node.assert_clean(&pod);
}

/// Multus names a network the pod did not name `net<position>`: the second entry is net2 even
/// when the first was named; a name two networks would share fails the pod, before anything is
/// created here.
#[test]
fn unnamed_networks_are_named_by_their_position() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
    node.add_pod(
        "web",
        r#"[{"name":"data","interface":"first"},{"name":"storage"}]"#,
    );
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "web", Some(&pod)).ok();
    assert_eq!(sorted_links(&pod), ["eth0", "first", "net2"]);
    assert_eq!(
        status_summary(&node, "web"),
        [
            ("cluster".to_string(), "eth0".to_string(), true),
            ("team/data".to_string(), "first".to_string(), false),
            ("team/storage".to_string(), "net2".to_string(), false),
        ]
    );
    node.cni("DEL", "c1", "web", Some(&pod)).ok();
    node.assert_clean(&pod);

    node.add_pod("clash", "data@net2,storage");
    let pod = TestNetns::new();
    let (code, msg) = node.cni("ADD", "c2", "clash", Some(&pod)).err();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("\"net2\"") && msg.contains("team/data") && msg.contains("team/storage"),
        "{msg}"
    );
    node.assert_clean(&pod);
    node.cni("DEL", "c2", "clash", Some(&pod)).ok();
}

/// A request no plugin of the network declares the capability for is ignored, as Multus ignores
/// it, with a Warning event on the pod and a log line; `strictCapabilities` refuses the pod.
#[test]
fn requests_the_plugins_cannot_take_are_ignored_with_a_warning_event() {
    require_root!();
    let node = Node::new("1.0.0");
    let (api, conf) = node.start_api();
    common::insert_team_nads(&node, &api);
    let wanted_mac = "02:00:00:00:00:42";
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks":
                         format!(r#"[{{"name":"data","mac":"{wanted_mac}"}}]"#)}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
    let pod = TestNetns::new();
    node.cni_with("ADD", "c1", "web", pod.path_str(), &conf)
        .ok();
    assert_eq!(sorted_links(&pod), ["eth0", "net1"]);
    assert_ne!(pod.link_mac("net1"), wanted_mac, "the mac was not applied");
    let warnings: Vec<(String, String)> = api
        .list("Event", Some("team"))
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "NetworkRequestNotApplied");
    assert!(
        warnings[0].1.contains("mac") && warnings[0].1.contains("team/data"),
        "{warnings:?}"
    );
    let log = fs::read_to_string(node.path("multinet.log")).unwrap();
    assert!(
        log.contains("mac of network team/data (net1) not applied"),
        "{log}"
    );
    node.cni_with("DEL", "c1", "web", pod.path_str(), &conf)
        .ok();
    node.assert_clean(&pod);

    let mut strict = conf.clone();
    strict["strictCapabilities"] = json!(true);
    let (code, msg) = node
        .cni_with("ADD", "c2", "web", pod.path_str(), &strict)
        .err();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("mac") && msg.contains("strictCapabilities"),
        "{msg}"
    );
    node.assert_clean(&pod);
}

/// `logToStderr` (default true, as in Multus) and `logOptions`: a full log file is rotated,
/// gzipped, and the oldest backups go.
#[test]
fn log_to_stderr_and_log_rotation_work_as_in_multus() {
    require_root!();
    let node = Node::new("1.0.0");
    let log = node.path("multinet.log");
    let mut conf = node.conf();
    conf["logOptions"] = json!({"maxSize": 1, "maxBackups": 1, "compress": true});
    let mut rotations = 0;
    for (i, to_stderr) in [None, Some(false), Some(true)].into_iter().enumerate() {
        if let Some(v) = to_stderr {
            conf["logToStderr"] = json!(v);
        }
        // A log already at maxSize: the call's first line starts a new file.
        fs::write(&log, format!("filler {i}\n").repeat(150_000)).unwrap();
        rotations += 1;
        let answer = node.cni_with("DEL", &format!("c{i}"), "web", "", &conf);
        answer.ok();
        assert_eq!(
            answer.stderr.contains("DEL started"),
            to_stderr != Some(false),
            "logToStderr {to_stderr:?}: {}",
            answer.stderr
        );
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("DEL started") && !text.contains("filler"),
            "{text}"
        );
    }
    assert_eq!(rotations, 3);
    let backups: Vec<_> = fs::read_dir(node.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("multinet-") && name.ends_with(".log.gz")
        })
        .collect();
    assert_eq!(backups.len(), 1, "maxBackups 1: {backups:?}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(&backups[0]).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("filler 2\n"), "the newest backup is kept");
}

/// `binDir` is searched first even when CNI_PATH names it after another folder.
#[test]
fn bin_dir_is_searched_before_the_rest_of_cni_path() {
    require_root!();
    let node = Node::new("1.0.0");
    let other = node.path("other-bin");
    fs::create_dir_all(&other).unwrap();
    write_executable(
        &other.join("marker"),
        "#!/bin/sh\necho '{\"code\":7,\"msg\":\"the plugin of the other folder ran\"}'\nexit 1\n",
    );
    write_executable(
        &node.bin().join("marker"),
        &spy_script(&node.path("unused.log")),
    );
    node.add_nad(
        "marked",
        json!({"cniVersion":"1.0.0","name":"marked","type":"marker"}),
    );
    node.add_pod("web", "marked");
    let pod = TestNetns::new();
    let path = format!("{}:{}", other.display(), node.bin().display());
    let out = node
        .call("ADD", "c1", "web", pod.path_str())
        .path(&path)
        .run();
    assert_eq!(out.code(), 0, "{} {}", out.stdout, out.stderr);
    node.call("DEL", "c1", "web", pod.path_str())
        .path(&path)
        .run();
    node.assert_clean(&pod);
}

/// GC (CNI 1.1) reaches the extra delegates and the networks of the containers it collects, each
/// with the valid-attachments list, not only the cluster network.
#[test]
fn gc_reaches_every_secondary_network() {
    require_root!();
    let node = Node::new("1.1.0");
    let log = node.path("spy-gc.log");
    write_executable(&node.bin().join("spy"), &spy_script(&log));
    node.add_nad(
        "watched",
        json!({"cniVersion":"1.1.0","name":"watched","type":"spy"}),
    );
    node.add_pod("web", "watched");
    let mut conf = delegates_conf(
        &node,
        vec![json!({"cniVersion":"1.1.0","name":"extra","type":"spy"})],
    );
    let gone = TestNetns::new();
    node.cni_with("ADD", "gone", "web", gone.path_str(), &conf)
        .ok();
    let valid = json!([{"containerID":"keep","ifname":"eth0"}]);
    conf["cni.dev/valid-attachments"] = valid.clone();
    node.cni_with("GC", "keep", "web", "", &conf).ok();
    assert!(node.records().is_empty(), "{:?}", node.records());
    let mut reached: Vec<String> = fs::read_to_string(&log)
        .expect("no GC reached a spy")
        .lines()
        .map(|l| {
            let gc: Value = serde_json::from_str(l).unwrap();
            assert_eq!(gc["cni.dev/valid-attachments"], valid, "{gc}");
            gc["name"].as_str().unwrap().to_string()
        })
        .collect();
    reached.sort();
    assert_eq!(reached, ["extra", "watched"]);
    node.assert_clean(&gone);
}

/// Keys multinet reads but does not act on are never ignored silently: `auxiliaryCNIChainName`
/// is an error line at the default level, `delegates` beside `clusterNetwork` a warning.
#[test]
fn settings_not_acted_on_are_named_in_the_log() {
    require_root!();
    let node = Node::new("1.0.0");
    let mut conf = node.conf();
    conf.as_object_mut().unwrap().remove("logLevel");
    conf["auxiliaryCNIChainName"] = json!("vendor-cni-chain");
    let answer = node.cni_with("DEL", "c1", "web", "", &conf);
    answer.ok();
    let log = fs::read_to_string(node.path("multinet.log")).unwrap();
    assert!(
        log.contains("ERROR")
            && log.contains("\"auxiliaryCNIChainName\" (\"vendor-cni-chain\") is not supported"),
        "{log}"
    );
    assert!(
        answer.stderr.contains("auxiliaryCNIChainName"),
        "{}",
        answer.stderr
    );

    let mut conf = delegates_conf(&node, vec![]);
    conf["clusterNetwork"] = json!("cluster");
    conf["logLevel"] = json!("warn");
    node.cni_with("DEL", "c2", "web", "", &conf).ok();
    let log = fs::read_to_string(node.path("multinet.log")).unwrap();
    assert!(log.contains("\"delegates\" is not used"), "{log}");
}

/// The extra delegates are the node admin's config, trusted, but a meta-plugin is never a
/// delegate there either (SECURITY.md): the ADD fails naming it, and nothing is created.
#[test]
fn an_extra_delegate_is_never_a_meta_plugin() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_pod("web", "");
    for meta in ["multus", "multinet", "multus-shim"] {
        let conf = delegates_conf(
            &node,
            vec![json!({"cniVersion":"1.0.0","name":"loop","type":meta})],
        );
        let pod = TestNetns::new();
        let (code, msg) = node
            .cni_with("ADD", "c1", "web", pod.path_str(), &conf)
            .err();
        assert_eq!(code, 7, "{meta}: {msg}");
        assert!(
            msg.contains("loop") && msg.contains("meta-plugin"),
            "{meta}: {msg}"
        );
        node.assert_clean(&pod);
    }
}
