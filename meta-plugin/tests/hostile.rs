//! The trust boundary, attacked: what a NAD author, a pod author or a local user could try to make
//! multinet do (issue "trust boundary"). Every case asserts the CNI error code, that the message
//! names the bad thing, and that nothing was run, created or left behind: no link in the pod or
//! the node, no IP, no record, no temp file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{Answer, Node};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

/// Node links other than the uplinks the node was made with.
fn node_links(node: &Node) -> Vec<String> {
    let mut links = Node::links(&node.ns);
    links.retain(|l| !l.starts_with("up"));
    links
}

/// Nothing was created: no pod link, no node link, no IP, no record, no temp file.
fn assert_nothing_left(node: &Node, pod: &TestNetns, what: &str) {
    assert_eq!(Node::links(pod), Vec::<String>::new(), "{what}: pod links");
    assert_eq!(node_links(node), Vec::<String>::new(), "{what}: node links");
    assert_eq!(node.allocated_ips(), Vec::<PathBuf>::new(), "{what}: IPs");
    assert_eq!(node.records(), Vec::<PathBuf>::new(), "{what}: records");
}

/// Writes `script` to `path` and makes it executable.
fn write_executable(path: &Path, script: &str) {
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Installs `script` as the plugin `name` in the node's bin folder.
fn write_plugin(node: &Node, name: &str, script: &str) -> PathBuf {
    let path = node.bin().join(name);
    write_executable(&path, script);
    path
}

/// A plugin script that leaves `ran-<name>` in the node's folder if it is ever executed.
fn tripwire(node: &Node, name: &str) -> PathBuf {
    let marker = node.path(&format!("ran-{name}"));
    let script = format!(
        "#!/bin/sh\ntouch {}\necho '{{\"cniVersion\":\"1.0.0\"}}'\n",
        marker.display()
    );
    write_plugin(node, name, &script);
    marker
}

fn add_refused(node: &Node, networks: &str) -> (u64, String) {
    node.add_pod("p1", networks);
    let pod = TestNetns::new();
    let answer = node.cni("ADD", "c1", "p1", Some(&pod));
    let err = answer.err();
    assert_nothing_left(node, &pod, networks);
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    err
}

/// ADD of pod `p1` with `conf` on stdin into a fresh netns: it must fail and leave nothing.
fn add_refused_with(node: &Node, conf: &Value, what: &str) -> (u64, String) {
    let pod = TestNetns::new();
    let err = node.cni_with("ADD", "c1", "p1", pod.path_str(), conf).err();
    assert_nothing_left(node, &pod, what);
    err
}

#[test]
fn a_nad_may_not_make_multinet_or_multus_its_delegate() {
    require_root!();
    let node = Node::new("1.0.0");
    // The node has multinet itself in its bin folder, as every real install does.
    node.use_own("multinet");
    let marker = tripwire(&node, "multus");
    for (nad, config, named) in [
        (
            "self",
            json!({"cniVersion":"1.0.0","type":"multinet","clusterNetwork":"x",
                        "binDir":"/tmp"}),
            "\"multinet\"",
        ),
        (
            "multus",
            json!({"cniVersion":"1.0.0","type":"multus"}),
            "\"multus\"",
        ),
        (
            "chained",
            json!({"cniVersion":"1.0.0","plugins":[
            {"type":"tuning"},{"type":"multus-shim"}]}),
            "plugins[1].type",
        ),
        // As IPAM: run by our own macvlan, it would be multinet again.
        (
            "asipam",
            json!({"cniVersion":"1.0.0","type":"macvlan","master":"up0",
                   "ipam":{"type":"multinet"}}),
            "ipam.type",
        ),
    ] {
        node.add_nad(nad, config);
        let (code, msg) = add_refused(&node, nad);
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains(&format!("team/{nad}")), "{msg}");
        assert!(msg.contains(named), "{msg}");
        assert!(msg.contains("meta-plugin"), "{msg}");
    }
    assert!(!marker.exists(), "a meta-plugin ran");
}

#[test]
fn a_plugin_that_is_multinet_under_another_name_is_refused_before_anything_runs() {
    require_root!();
    let node = Node::new("1.0.0");
    // `innocent -> multinet`: the type looks harmless, the executable is multinet.
    node.use_own("innocent");
    let marker = tripwire(&node, "first");
    node.add_nad("a", node.macvlan_nad("a", "up0", "10.10.0.0/24"));
    node.add_nad(
        "sneaky",
        json!({"cniVersion":"1.0.0","plugins":[{"type":"first"},{"type":"innocent"}]}),
    );
    let (code, msg) = add_refused(&node, "a,sneaky");
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("team/sneaky") && msg.contains("\"innocent\""),
        "{msg}"
    );
    assert!(msg.contains("multinet's own executable"), "{msg}");
    assert!(!marker.exists(), "a plugin ran before the refusal");
}

#[test]
fn multinet_run_again_by_a_delegate_fails_at_once() {
    require_root!();
    let node = Node::new("1.0.0");
    // A delegate that runs multinet again with a config of its own (a wrapper a NAD author
    // found on the node): the nested multinet must refuse, not recurse.
    let nested_conf = node.conf().to_string();
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\necho '{nested_conf}' | exec {}\n",
        env!("CARGO_BIN_EXE_multinet")
    );
    write_plugin(&node, "wrapper", &script);
    node.add_nad("wrapped", json!({"cniVersion":"1.0.0","type":"wrapper"}));
    node.add_pod("p1", "wrapped");
    let pod = TestNetns::new();
    let (code, msg) = node.cni("ADD", "c1", "p1", Some(&pod)).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("started as a delegate of multinet"), "{msg}");
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn a_nad_may_not_name_node_paths_or_log_outside_var_log() {
    require_root!();
    let node = Node::new("1.0.0");
    for (key, value) in [
        ("binDir", json!("/tmp/evil")),
        ("kubeconfig", json!("/etc/kubernetes/admin.conf")),
        ("cniDir", json!("/tmp")),
        ("logFile", json!("/etc/shadow")),
        ("logFile", json!("/var/log/../../etc/shadow")),
        ("runtimeConfig", json!({"CNIDeviceInfoFile": "/etc/passwd"})),
        // A VF outside device accounting.
        ("deviceID", json!("0000:af:06.3")),
    ] {
        let mut config = node.macvlan_nad("bad", "up0", "10.10.0.0/24");
        config[key] = value.clone();
        node.add_nad("bad", config);
        let (code, msg) = add_refused(&node, "bad");
        assert_eq!(code, 7, "{key}={value}: {msg}");
        assert!(msg.contains("team/bad") && msg.contains(key), "{msg}");
        // The message never quotes the file the key pointed at.
        assert!(!msg.contains("root:"), "{msg}");
    }
}

#[test]
fn the_cluster_network_folder_skips_meta_plugin_configs() {
    require_root!();
    let node = Node::new("1.0.0");
    // multinet's own config sorts first in the runtime's folder, as it does on a real node.
    fs::write(
        node.path("net.d/00-multinet.conf"),
        json!({"cniVersion":"1.0.0","name":"multinet","type":"multinet",
               "clusterNetwork":node.path("net.d")})
        .to_string(),
    )
    .unwrap();
    let mut conf = node.conf();
    conf["clusterNetwork"] = json!(node.path("net.d"));
    node.add_pod("p1", "");
    let pod = TestNetns::new();
    let out = node.cni_with("ADD", "c1", "p1", pod.path_str(), &conf);
    out.ok();
    assert_eq!(Node::links(&pod), vec!["eth0".to_string()]);
    node.cni_with("DEL", "c1", "p1", pod.path_str(), &conf).ok();
    node.assert_clean(&pod);
}

#[test]
fn the_node_and_multinet_namespaces_are_never_a_pod_netns() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_pod("p1", "");
    // multinet runs in the node namespace: that one, and pid 1's.
    for netns in [node.ns.path_str().to_string(), "/proc/1/ns/net".to_string()] {
        let before = Node::links(&node.ns);
        let (code, msg) = Answer::of(&node.call("ADD", "c1", "p1", &netns).run()).err();
        assert_eq!(code, 4, "{msg}");
        assert!(msg.contains("CNI_NETNS") && msg.contains(&netns), "{msg}");
        assert_eq!(Node::links(&node.ns), before, "{netns}");
        assert_eq!(node.records(), Vec::<PathBuf>::new());
        assert_eq!(node.allocated_ips(), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_second_add_for_the_same_container_changes_nothing() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("p1", "data");
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "p1", Some(&pod)).ok();
    let record = fs::read(node.path("cni/attachments/c1.json")).unwrap();
    let links = Node::link_details(&pod);
    let ips = node.allocated_ips();
    // Same container, another netns (and the same one): refused before anything is touched.
    for other in [TestNetns::new(), TestNetns::new()] {
        let (code, msg) = node.cni("ADD", "c1", "p1", Some(&other)).err();
        assert_eq!(code, 4, "{msg}");
        assert!(
            msg.contains("CNI_CONTAINERID") && msg.contains("c1"),
            "{msg}"
        );
        assert_eq!(Node::links(&other), Vec::<String>::new());
    }
    let (code, _) = node.cni("ADD", "c1", "p1", Some(&pod)).err();
    assert_eq!(code, 4);
    assert_eq!(
        fs::read(node.path("cni/attachments/c1.json")).unwrap(),
        record
    );
    assert_eq!(Node::link_details(&pod), links);
    assert_eq!(node.allocated_ips(), ips);
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    node.assert_clean(&pod);
}

/// A checkpoint of the kubelet's device manager giving pod `p1` two devices of `intel.com/vf`.
fn checkpoint(node: &Node) -> PathBuf {
    let path = node.path("kubelet_internal_checkpoint");
    let text = json!({"Data": {"PodDeviceEntries": [{"PodUID": "uid-p1", "ContainerName": "app",
        "ResourceName": "intel.com/vf", "DeviceIDs": ["0000:af:06.0", "0000:af:06.1"]}],
        "RegisteredDevices": {}}, "Checksum": 1});
    fs::write(&path, text.to_string()).unwrap();
    path
}

fn add_nad_with_resource(node: &Node, name: &str, config: Value) {
    let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "team",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/vf"}},
        "spec": {"config": config.to_string()}});
    fs::write(
        node.path(&format!("cluster/nads/{name}.json")),
        nad.to_string(),
    )
    .unwrap();
}

#[test]
fn a_pod_may_only_name_a_device_the_kubelet_gave_it() {
    require_root!();
    let node = Node::new("1.0.0");
    // A macvlan stands in for the device's delegate: what matters is what reaches it.
    add_nad_with_resource(&node, "vf", node.macvlan_nad("vf", "up0", "10.10.0.0/24"));
    node.add_nad("plain", node.macvlan_nad("plain", "up1", "10.20.0.0/24"));
    let checkpoint = checkpoint(&node);
    let call = |networks: &str, pod: &TestNetns| {
        node.add_pod("p1", networks);
        Answer::of(
            &node
                .call("ADD", "c1", "p1", pod.path_str())
                .env("MULTINET_PODRESOURCES_SOCKET", node.path("no-kubelet.sock"))
                .env("MULTINET_KUBELET_CHECKPOINT", &checkpoint)
                .run(),
        )
    };
    for (networks, needle) in [
        // Another pod's VF.
        (
            r#"[{"name":"vf","deviceID":"0000:af:07.3"}]"#,
            "not one of the pod's devices",
        ),
        // A network without a resource: no device was given for it.
        (
            r#"[{"name":"plain","deviceID":"0000:af:06.0"}]"#,
            "names no",
        ),
        // Its own device, twice.
        (
            r#"[{"name":"vf","deviceID":"0000:af:06.0"},{"name":"vf","deviceID":"0000:af:06.0","interface":"x1"}]"#,
            "given to another network",
        ),
    ] {
        let pod = TestNetns::new();
        let (code, msg) = call(networks, &pod).err();
        assert_eq!(code, 7, "{networks}: {msg}");
        assert!(msg.contains("deviceID") && msg.contains("team/"), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert_nothing_left(&node, &pod, networks);
    }
    // One of its own devices: accepted, and the other one goes to the next network.
    let pod = TestNetns::new();
    call(
        r#"[{"name":"vf"},{"name":"vf","deviceID":"0000:af:06.0","interface":"x1"}]"#,
        &pod,
    )
    .ok();
    let record: Value =
        serde_json::from_slice(&fs::read(node.path("cni/attachments/c1.json")).unwrap()).unwrap();
    assert_eq!(record["attachments"][1]["conf"]["deviceID"], "0000:af:06.1");
    assert_eq!(record["attachments"][2]["conf"]["deviceID"], "0000:af:06.0");
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn limits_are_clear_errors_naming_the_limit() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    // Networks per pod.
    let mut conf = node.conf();
    conf["maxNetworksPerPod"] = json!(3);
    node.add_pod("p1", "data@a1,data@a2,data@a3");
    let (code, msg) = add_refused_with(&node, &conf, "too many networks");
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("maxNetworksPerPod (3)") && msg.contains("4 networks"),
        "{msg}"
    );
    // The default is 32.
    let many: Vec<String> = (0..32).map(|i| format!("data@m{i}")).collect();
    let (code, msg) = add_refused(&node, &many.join(","));
    assert_eq!(code, 7);
    assert!(msg.contains("maxNetworksPerPod (32)"), "{msg}");
    // A delegate config larger than 256 KiB.
    let mut big = node.macvlan_nad("big", "up0", "10.10.0.0/24");
    big["padding"] = json!("x".repeat(300 << 10));
    node.add_nad("big", big);
    let (code, msg) = add_refused(&node, "big");
    assert_eq!(code, 7);
    assert!(
        msg.contains("team/big") && msg.contains("maxDelegateConfigBytes (262144)"),
        "{msg}"
    );
    // stdin larger than the 1 MiB a CNI config may be.
    let mut huge = node.conf();
    huge["padding"] = json!("x".repeat(1 << 20));
    let (code, msg) = add_refused_with(&node, &huge, "huge stdin");
    assert_eq!(code, 7);
    assert!(msg.contains("stdin") && msg.contains("1048576"), "{msg}");
}

#[test]
fn a_standard_key_of_the_wrong_type_is_named() {
    require_root!();
    let node = Node::new("1.0.0");
    let mut conf = node.conf();
    conf["cniVersion"] = json!(5);
    node.add_pod("p1", "");
    let (code, msg) = add_refused_with(&node, &conf, "cniVersion 5");
    assert!(code == 7 || code == 1, "{code}: {msg}");
    assert!(msg.contains("cniVersion"), "{msg}");
}

/// Runs multinet with umask 000, as a careless init system might start it.
fn under_umask_000(node: &Node) -> PathBuf {
    let path = node.path("multinet-umask000");
    let script = format!(
        "#!/bin/sh\numask 000\nexec {} \"$@\"\n",
        env!("CARGO_BIN_EXE_multinet")
    );
    write_executable(&path, &script);
    path
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn records_are_private_whatever_the_umask_and_a_foreign_record_is_never_run() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("p1", "data");
    let wrapper = under_umask_000(&node);
    let pod = TestNetns::new();
    let call = |command: &str, container: &str| {
        let call = node.call(command, container, "p1", pod.path_str());
        Answer::of(&call.program(&wrapper).run())
    };
    call("ADD", "c1").ok();
    let store = node.path("cni/attachments");
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("c1.json")), 0o600);
    call("DEL", "c1").ok();
    node.assert_clean(&pod);

    // A record another user could have written (group/world-writable) naming a delegate that
    // would leave a mark: DEL must not run it, and must still succeed.
    let marker = tripwire(&node, "planted");
    let record = json!({"format": 1, "containerId": "c2", "cniVersion": "1.0.0",
        "attachments": [{"network": "x", "ifname": "net1",
                         "conf": {"cniVersion": "1.0.0", "name": "x", "type": "planted"},
                         "state": "added"}]});
    fs::write(store.join("c2.json"), record.to_string()).unwrap();
    fs::set_permissions(store.join("c2.json"), fs::Permissions::from_mode(0o666)).unwrap();
    let (code, msg) = node.cni("CHECK", "c2", "p1", Some(&pod)).err();
    assert_eq!(code, 5, "{msg}");
    assert!(msg.contains("writable by other users"), "{msg}");
    node.cni("DEL", "c2", "p1", Some(&pod)).ok();
    assert!(!marker.exists(), "a planted record's delegate ran");
    assert_eq!(node.records(), Vec::<PathBuf>::new());
    assert_eq!(fs::read_dir(store.join("corrupt")).unwrap().count(), 1);
}

#[test]
fn a_long_container_id_works_for_add_and_del() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("p1", "data");
    let pod = TestNetns::new();
    let id = "c".repeat(600);
    node.cni("ADD", &id, "p1", Some(&pod)).ok();
    for record in node.records() {
        assert!(
            record.file_name().unwrap().len() <= 255,
            "{}",
            record.display()
        );
    }
    node.cni("CHECK", &id, "p1", Some(&pod)).ok();
    node.cni("DEL", &id, "p1", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn a_torn_record_does_not_block_del_and_what_it_tagged_is_cleaned() {
    require_root!();
    let node = Node::new("1.0.0");
    let store = node.path("cni/attachments");
    fs::create_dir_all(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(store.join("c7.json"), b"{\"format\":1,\"contai").unwrap();
    fs::set_permissions(store.join("c7.json"), fs::Permissions::from_mode(0o600)).unwrap();
    let devinfo = node.path("devinfo");
    fs::create_dir_all(&devinfo).unwrap();
    let mine = devinfo.join("net-c7_net1");
    let other = devinfo.join("net-c77_net1");
    fs::write(&mine, "{}").unwrap();
    fs::write(&other, "{}").unwrap();
    // In the pod: a link multinet tagged for c7, one tagged for another container, one untagged.
    let pod = TestNetns::new();
    for (name, alias) in [
        ("net1", Some("multinet:c7")),
        ("net2", Some("multinet:c77")),
        ("net3", None),
    ] {
        node.ns
            .ip(&["link", "add", name, "link", "up0", "type", "macvlan"]);
        if let Some(alias) = alias {
            node.ns.ip(&["link", "set", name, "alias", alias]);
        }
        node.ns.ip(&["link", "set", name, "netns", pod.path_str()]);
    }
    let mut conf = node.conf();
    conf["deviceInfoDir"] = json!(devinfo);
    node.cni_with("DEL", "c7", "p1", pod.path_str(), &conf).ok();
    assert!(!mine.exists(), "the torn record's device-info file stayed");
    assert!(other.exists(), "another container's device-info file went");
    let mut left = Node::links(&pod);
    left.sort();
    assert_eq!(left, vec!["net2".to_string(), "net3".to_string()]);
    assert_eq!(node.records(), Vec::<PathBuf>::new());
}

#[test]
fn gc_reaches_every_recorded_delegate_and_removes_stale_temp_files() {
    require_root!();
    let node = Node::new("1.1.0");
    // A delegate that records every GC it gets, and answers ADD with an interface.
    let log = node.path("spy-gc.log");
    let script = format!(
        r#"#!/bin/sh
conf=$(cat)
case "$CNI_COMMAND" in
ADD) printf '{{"cniVersion":"1.1.0","interfaces":[{{"name":"%s","sandbox":"%s"}}]}}' "$CNI_IFNAME" "$CNI_NETNS" ;;
GC) printf '%s\n' "$conf" >> {log} ;;
VERSION) printf '{{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}}' ;;
esac
"#,
        log = log.display()
    );
    write_plugin(&node, "spy", &script);
    node.add_nad(
        "watched",
        json!({"cniVersion":"1.1.0","name":"watched","type":"spy"}),
    );
    node.add_pod("p1", "watched");
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "p1", Some(&pod)).ok();
    // A writer that died mid-write left a temp file in the store.
    let stale = node.path("cni/attachments/.c0.json.tmp-999999999-0");
    fs::write(&stale, b"{").unwrap();

    let mut conf = node.conf();
    conf["cni.dev/valid-attachments"] = json!([{"containerID":"c1","ifname":"eth0"}]);
    node.cni_with("GC", "c1", "p1", "", &conf).ok();
    let gcs = fs::read_to_string(&log).expect("the NAD's delegate got no GC");
    let gc: Value = serde_json::from_str(gcs.lines().next().unwrap()).unwrap();
    assert_eq!(gc["type"], "spy");
    assert_eq!(
        gc["cni.dev/valid-attachments"],
        json!([{"containerID":"c1","ifname":"eth0"}])
    );
    assert!(!stale.exists(), "GC left a dead writer's temp file");
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    node.assert_clean(&pod);
}

#[test]
fn del_leaves_a_link_of_the_same_name_that_multinet_did_not_create() {
    require_root!();
    let node = Node::new("1.0.0");
    node.use_own("macvlan");
    node.use_own("host-local");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
    node.add_pod("p1", "data,storage");
    let pod = TestNetns::new();
    node.cni("ADD", "c1", "p1", Some(&pod)).ok();
    // Inside the pod, net1 is replaced by a macvlan someone else made (same kind, same name,
    // another MAC, no multinet tag).
    pod.ip(&["link", "del", "net1"]);
    node.ns.ip(&[
        "link", "add", "foreign", "link", "up0", "type", "macvlan", "mode", "bridge",
    ]);
    node.ns
        .ip(&["link", "set", "foreign", "address", "02:aa:bb:cc:dd:01"]);
    node.ns
        .ip(&["link", "set", "foreign", "netns", pod.path_str()]);
    pod.ip(&["link", "set", "foreign", "name", "net1"]);
    node.cni("DEL", "c1", "p1", Some(&pod)).ok();
    assert_eq!(
        Node::links(&pod),
        vec!["net1".to_string()],
        "the foreign net1 went"
    );
    let foreign = Node::link_details(&pod);
    assert_eq!(foreign[0]["address"], "02:aa:bb:cc:dd:01");
    // Everything multinet made is gone all the same.
    assert_eq!(node.allocated_ips(), Vec::<PathBuf>::new());
    assert_eq!(node.records(), Vec::<PathBuf>::new());
}

#[test]
fn an_interface_plugin_of_multinet_is_never_ipam() {
    require_root!();
    let node = Node::new("1.0.0");
    node.use_own("macvlan");
    // Our macvlan as the IPAM of our macvlan: it would exec itself with the same config.
    node.add_nad(
        "loop",
        json!({"cniVersion":"1.0.0","type":"macvlan","master":"up0","ipam":{"type":"macvlan"}}),
    );
    let (code, msg) = add_refused(&node, "loop");
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("ipam.type") && msg.contains("\"macvlan\""),
        "{msg}"
    );
}

#[test]
fn the_default_network_annotation_obeys_namespace_isolation() {
    require_root!();
    let node = Node::new("1.0.0");
    let mut conf = node.conf();
    conf["namespaceIsolation"] = json!(true);
    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  namespace: team\n  uid: uid-p1\n  annotations:\n    v1.multus-cni.io/default-network: other-tenant/their-net\n";
    fs::write(node.path("cluster/pods/p1.yaml"), pod_yaml).unwrap();
    let (code, msg) = add_refused_with(&node, &conf, "default-network");
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("other-tenant/their-net") && msg.contains("namespaceIsolation"),
        "{msg}"
    );
}

#[test]
fn a_record_that_is_a_symlink_is_set_aside_not_followed() {
    require_root!();
    let node = Node::new("1.0.0");
    let store = node.path("cni/attachments");
    fs::create_dir_all(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let target = node.path("elsewhere.json");
    fs::write(&target, "{}").unwrap();
    std::os::unix::fs::symlink(&target, store.join("c5.json")).unwrap();
    node.cni("DEL", "c5", "p1", None).ok();
    assert_eq!(node.records(), Vec::<PathBuf>::new());
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "{}",
        "the link's target was touched"
    );
}
