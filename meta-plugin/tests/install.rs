//! `multinet install` as a node's DaemonSet runs it: the real binary against temp dirs standing in
//! for /opt/cni/bin and /etc/cni/net.d. The config it writes is then used by the installed binary
//! for real ADDs (local folder and Kubernetes API), and every file operation is checked for
//! idempotence and atomic replacement. The deploy/ manifests are checked against the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::Node;
use multinet_testbed::{CniCall, TestNetns, require_root};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_multinet");
/// A small ELF executable standing in for the binary where only the copy is tested.
const SMALL_BINARY: &str = "/usr/bin/sleep";

/// Puts the multinet build into `bin` as a hard link (no disk space for a copy of the debug
/// build): install then finds the same bytes there and leaves the file as it is.
fn link_real_binary(bin: &Path) {
    fs::hard_link(BIN, bin.join("multinet")).unwrap();
}

/// `multinet install ARGS` with no service-account environment unless the caller adds it.
fn install_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("install")
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .stdin(Stdio::null());
    cmd
}

fn install(args: &[&str]) -> Output {
    install_cmd(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "install failed ({:?}): {}",
        out.status,
        stderr(out)
    );
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node's directories without a network namespace, for tests that only touch files.
struct Dirs {
    dir: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let d = Dirs {
            dir: tempfile::tempdir().unwrap(),
        };
        for sub in ["bin", "net.d", "cluster/pods", "cluster/nads", "cni"] {
            fs::create_dir_all(d.path(sub)).unwrap();
        }
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }

    fn write_cluster(&self, file: &str, version: &str, caps: Value) {
        let conf = json!({"cniVersion": version, "name": "cluster", "plugins": [
            {"type": "bridge", "bridge": "cni0"},
            {"type": "portmap", "capabilities": caps},
        ]});
        fs::write(self.path(&format!("net.d/{file}")), conf.to_string()).unwrap();
    }

    /// The flags every test passes: this tree, a local folder instead of the API, short waits,
    /// and a small executable to install (the debug build of multinet is hundreds of MB; tests
    /// that run the installed multinet hard-link it in first, see `link_real_binary`).
    fn args(&self) -> Vec<String> {
        vec![
            "--binary".into(),
            SMALL_BINARY.into(),
            "--bin-dir".into(),
            self.s("bin"),
            "--cni-conf-dir".into(),
            self.s("net.d"),
            "--local-dir".into(),
            self.s("cluster"),
            "--cni-dir".into(),
            self.s("cni"),
            "--wait-seconds".into(),
            "5".into(),
            "--poll-millis".into(),
            "20".into(),
        ]
    }

    fn install(&self, extra: &[&str]) -> Output {
        let mut args = self.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        install(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn read_json(&self, rel: &str) -> Value {
        serde_json::from_slice(&fs::read(self.path(rel)).unwrap()).unwrap()
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

/// inode and mtime: equal only if the file was not replaced or written.
fn stamp(path: &Path) -> (u64, SystemTime) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.ino(), meta.modified().unwrap())
}

/// The conf a runtime hands the plugin for our generated file: a conflist's plugin gets the
/// list's name and cniVersion, as libcni does.
fn runtime_conf(generated: &Value) -> Value {
    match generated.get("plugins") {
        Some(plugins) => {
            let mut conf = plugins[0].clone();
            conf["name"] = generated["name"].clone();
            conf["cniVersion"] = generated["cniVersion"].clone();
            conf
        }
        None => generated.clone(),
    }
}

/// A CNI call of the installed binary, made as the runtime makes it, with `conf` on stdin.
fn runtime_call(node: &Node, command: &str, pod: &TestNetns, conf: &Value) -> common::Answer {
    let call = CniCall::new(node.bin().join("multinet"), command)
        .in_netns(&node.ns)
        .container_id("c1")
        .netns(pod.path_str())
        .ifname("eth0")
        .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web;K8S_POD_UID=uid-web")
        .path(node.bin())
        .stdin_json(conf);
    common::Answer::of(&call.run())
}

fn node_install(node: &Node, extra: &[&str]) -> Output {
    let s = |rel: &str| node.path(rel).to_str().unwrap().to_string();
    let mut args = vec![
        "--bin-dir".to_string(),
        s("bin"),
        "--cni-conf-dir".into(),
        s("net.d"),
        "--cni-dir".into(),
        s("cni"),
        "--log-level".into(),
        "debug".into(),
        "--log-file".into(),
        s("multinet.log"),
        "--wait-seconds".into(),
        "5".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    install(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// ADD and DEL of a pod with one macvlan network through the generated config; returns the
/// generated file's name.
fn add_and_del_through_generated_config(node: &Node, conf: &Value) {
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_pod("web", "data");
    let pod = TestNetns::new();
    let result = runtime_call(node, "ADD", &pod, conf);
    let result = result.ok();
    assert_eq!(result["cniVersion"], node.version.as_str());
    let ip = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        ip.starts_with("10.99.0."),
        "cluster network's address: {ip}"
    );
    let mut links = Node::links(&pod);
    links.sort();
    assert_eq!(links, vec!["eth0", "net1"]);
    runtime_call(node, "DEL", &pod, conf).ok();
    assert_eq!(Node::links(&pod), Vec::<String>::new());
    assert!(
        node.allocated_ips().is_empty(),
        "{:?}",
        node.allocated_ips()
    );
}

#[test]
fn generated_conflist_drives_a_real_add_through_the_installed_binary() {
    require_root!();
    let node = Node::new("1.0.0");
    let cluster_dir = node.path("cluster");
    link_real_binary(&node.bin());
    let installed = node.bin().join("multinet");
    let before = stamp(&installed);
    let out = node_install(&node, &["--local-dir", cluster_dir.to_str().unwrap()]);
    assert_ok(&out);
    assert_eq!(stamp(&installed), before, "the same bytes are left alone");
    assert!(!node.path("net.d/00-multinet.conf").exists());
    let generated: Value =
        serde_json::from_slice(&fs::read(node.path("net.d/00-multinet.conflist")).unwrap())
            .unwrap();
    assert_eq!(generated["cniVersion"], "1.0.0");
    let plugin = &generated["plugins"][0];
    assert_eq!(plugin["type"], "multinet");
    assert_eq!(
        plugin["clusterNetwork"],
        node.path("net.d/10-cluster.conflist").to_str().unwrap()
    );
    assert_eq!(plugin["localDir"], cluster_dir.to_str().unwrap());
    add_and_del_through_generated_config(&node, &runtime_conf(&generated));
    let log = fs::read_to_string(node.path("multinet.log")).unwrap();
    assert!(
        log.contains("ADD started"),
        "logLevel/logFile reached the plugin: {log}"
    );
}

#[test]
fn generated_conf_below_1_0_0_with_forced_own_delegates_drives_a_real_add() {
    require_root!();
    let node = Node::new("0.4.0");
    let cluster_dir = node.path("cluster");
    link_real_binary(&node.bin());
    // The node's macvlan and host-local are the reference plugins: --force puts ours there.
    let out = node_install(
        &node,
        &[
            "--local-dir",
            cluster_dir.to_str().unwrap(),
            "--own-delegates",
            "--force",
        ],
    );
    assert_ok(&out);
    for name in ["macvlan", "ipvlan", "sriov", "host-local", "static"] {
        assert_eq!(
            fs::read_link(node.bin().join(name)).unwrap(),
            PathBuf::from("multinet"),
            "{name}"
        );
    }
    assert!(!node.path("net.d/00-multinet.conflist").exists());
    let generated: Value =
        serde_json::from_slice(&fs::read(node.path("net.d/00-multinet.conf")).unwrap()).unwrap();
    assert_eq!(generated["cniVersion"], "0.4.0");
    assert_eq!(generated["type"], "multinet");
    add_and_del_through_generated_config(&node, &generated);
}

#[test]
fn kubeconfig_from_the_service_account_reaches_the_api() {
    require_root!();
    let node = Node::new("1.0.0");
    let node_ns = multinet_netlink::Netns::open(node.ns.path()).unwrap();
    // The API as the pod sees it: HTTPS with the cluster CA, a bearer token required.
    let api = multinet_netlink::run_in_netns(&node_ns, || {
        multinet_api_fixture::ApiFixture::builder()
            .require_token("sa-token-1")
            .start_blocking()
    })
    .unwrap()
    .unwrap();
    api.insert(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "data", "namespace": "team"},
        "spec": {"config": node.macvlan_nad("data", "up0", "10.10.0.0/24").to_string()}
    }))
    .unwrap();
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "data"}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
    let sa = node.path("serviceaccount");
    fs::create_dir_all(&sa).unwrap();
    fs::write(sa.join("token"), "sa-token-1\n").unwrap();
    fs::write(sa.join("ca.crt"), api.ca_pem()).unwrap();
    let kubeconfig = node.path("net.d/multinet.d/multinet.kubeconfig");
    link_real_binary(&node.bin());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let mut cmd = install_cmd(&[
        "--bin-dir",
        &s(&node.bin()),
        "--cni-conf-dir",
        &s(&node.path("net.d")),
        "--cni-dir",
        &s(&node.path("cni")),
        "--kubeconfig",
        &s(&kubeconfig),
        "--service-account-dir",
        &s(&sa),
        "--wait-seconds",
        "5",
    ]);
    cmd.env("KUBERNETES_SERVICE_HOST", "127.0.0.1").env(
        "KUBERNETES_SERVICE_PORT",
        api.https_addr().port().to_string(),
    );
    assert_ok(&cmd.output().unwrap());
    assert_eq!(
        fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let generated: Value =
        serde_json::from_slice(&fs::read(node.path("net.d/00-multinet.conflist")).unwrap())
            .unwrap();
    assert_eq!(generated["plugins"][0]["kubeconfig"], s(&kubeconfig));
    let conf = runtime_conf(&generated);
    let pod = TestNetns::new();
    let result = runtime_call(&node, "ADD", &pod, &conf);
    assert_eq!(result.ok()["cniVersion"], "1.0.0");
    let status = api.get("Pod", "team", "web").unwrap()["metadata"]["annotations"]
        ["k8s.v1.cni.cncf.io/network-status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status.contains("team/data"), "{status}");
    runtime_call(&node, "DEL", &pod, &conf).ok();
}

#[test]
fn second_run_changes_nothing() {
    let d = Dirs::new();
    d.write_cluster(
        "10-cluster.conflist",
        "1.0.0",
        json!({"portMappings": true}),
    );
    // A Multus config left behind is a meta plugin, never the cluster network.
    fs::write(
        d.path("net.d/00-multus.conf"),
        r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","kubeconfig":"/x"}"#,
    )
    .unwrap();
    assert_ok(&d.install(&["--own-delegates"]));
    assert_eq!(
        fs::read(d.path("bin/multinet")).unwrap(),
        fs::read(SMALL_BINARY).unwrap()
    );
    let generated = d.read_json("net.d/00-multinet.conflist");
    assert_eq!(
        generated["plugins"][0]["clusterNetwork"],
        d.s("net.d/10-cluster.conflist")
    );
    assert_eq!(
        generated["plugins"][0]["capabilities"],
        json!({"portMappings": true})
    );
    let files = [
        "net.d/00-multinet.conflist",
        "bin/multinet",
        "bin/macvlan",
        "bin/host-local",
    ];
    let before: Vec<_> = files.iter().map(|f| stamp(&d.path(f))).collect();
    let dir_before = stamp(&d.path("net.d"));
    // Coarse mtime granularity would hide a rewrite made at once.
    std::thread::sleep(Duration::from_millis(20));
    let out = d.install(&["--own-delegates"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("is up to date"), "{}", stderr(&out));
    let after: Vec<_> = files.iter().map(|f| stamp(&d.path(f))).collect();
    assert_eq!(before, after, "{files:?} were rewritten");
    assert_eq!(dir_before, stamp(&d.path("net.d")), "net.d was written to");
    assert_eq!(
        d.names("net.d"),
        vec![
            "00-multinet.conflist",
            "00-multus.conf",
            "10-cluster.conflist"
        ]
    );
}

#[test]
fn a_changed_cluster_network_replaces_our_config_atomically() {
    let d = Dirs::new();
    d.write_cluster("10-cluster.conflist", "0.4.0", json!({}));
    assert_ok(&d.install(&["--skip-binary-copy"]));
    assert!(!d.path("bin/multinet").exists(), "--skip-binary-copy");
    let first = stamp(&d.path("net.d/00-multinet.conf"));
    assert!(
        d.read_json("net.d/00-multinet.conf")
            .get("capabilities")
            .is_none()
    );

    d.write_cluster("10-cluster.conflist", "0.4.0", json!({"bandwidth": true}));
    assert_ok(&d.install(&["--skip-binary-copy"]));
    let second = stamp(&d.path("net.d/00-multinet.conf"));
    assert_ne!(
        first.0, second.0,
        "replaced by rename, not written in place"
    );
    assert_eq!(
        d.read_json("net.d/00-multinet.conf")["capabilities"],
        json!({"bandwidth": true})
    );

    // The cluster network moves to CNI 1.0.0: our config becomes a conflist, the conf goes.
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({"bandwidth": true}));
    assert_ok(&d.install(&["--skip-binary-copy"]));
    assert_eq!(
        d.names("net.d"),
        vec!["00-multinet.conflist", "10-cluster.conflist"]
    );
    assert_eq!(
        d.read_json("net.d/00-multinet.conflist")["cniVersion"],
        "1.0.0"
    );
}

#[test]
fn replacing_a_running_binary_never_fails_with_text_file_busy() {
    let d = Dirs::new();
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    assert_ok(&d.install(&[]));
    // The installed binary runs, as during a long CNI call.
    let installed = d.path("bin/multinet");
    let mut running = Command::new(&installed).arg("30").spawn().unwrap();
    let exe = format!("/proc/{}/exe", running.id());
    wait_until(
        "the installed binary to run",
        Duration::from_secs(5),
        || fs::read_link(&exe).is_ok_and(|p| p == installed),
    );
    // Writing into it in place is what fails.
    let in_place = fs::OpenOptions::new().write(true).open(&installed);
    assert_eq!(
        in_place.unwrap_err().raw_os_error(),
        Some(nix::libc::ETXTBSY)
    );

    let newer = d.path("multinet-newer");
    let mut bytes = fs::read(SMALL_BINARY).unwrap();
    bytes.extend_from_slice(b"\0newer build");
    fs::write(&newer, &bytes).unwrap();
    let before = stamp(&installed);
    let out = d.install(&["--binary", newer.to_str().unwrap()]);
    let still_running = running.try_wait().unwrap().is_none();
    running.kill().unwrap();
    running.wait().unwrap();
    assert_ok(&out);
    assert!(still_running, "the running process was disturbed");
    assert_eq!(fs::read(&installed).unwrap(), bytes);
    assert_ne!(
        stamp(&installed).0,
        before.0,
        "a new file renamed over the old"
    );
    assert_eq!(
        fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        d.names("bin"),
        vec!["multinet"],
        "no temporary file left behind"
    );
}

#[test]
fn waits_for_the_cluster_network_then_times_out_naming_the_flags() {
    let d = Dirs::new();
    let start = Instant::now();
    let out = d.install(&["--wait-seconds", "1"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("--cni-conf-dir") && msg.contains("--wait-seconds"),
        "{msg}"
    );
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        d.names("net.d").is_empty(),
        "nothing written: {:?}",
        d.names("net.d")
    );
}

#[test]
fn writes_only_once_the_cluster_network_and_its_readiness_file_exist() {
    let d = Dirs::new();
    let ready = d.path("subnet.env");
    let mut child = install_cmd(&[])
        .args(d.args())
        .args(["--readiness-indicator-file", ready.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    // Cluster config there, readiness file not yet: still nothing of ours (multi-net spec).
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(d.names("net.d"), vec!["10-cluster.conflist"]);
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    fs::write(&ready, "FLANNEL_NETWORK=10.244.0.0/16\n").unwrap();
    wait_until("install to finish", Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert_eq!(
        d.read_json("net.d/00-multinet.conflist")["plugins"][0]["readinessindicatorfile"],
        ready.to_str().unwrap()
    );
}

#[test]
fn readiness_file_that_never_appears_is_named_in_the_timeout() {
    let d = Dirs::new();
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    let out = d.install(&[
        "--wait-seconds",
        "0",
        "--readiness-indicator-file",
        "/nonexistent/multinet-ready",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("--readiness-indicator-file /nonexistent/multinet-ready"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.names("net.d"), vec!["10-cluster.conflist"]);
}

#[test]
fn bad_input_is_exit_code_2_naming_the_flag_or_file() {
    let d = Dirs::new();
    fs::write(d.path("net.d/10-broken.conflist"), "{\"cniVersion\": ").unwrap();
    let out = d.install(&["--wait-seconds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("10-broken.conflist"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    let out = install(&[
        "--bin-dir",
        &d.s("no-such-bin"),
        "--local-dir",
        &d.s("cluster"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--bin-dir"), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-bin"), "{}", stderr(&out));

    let out = install(&[
        "--bin-dir",
        &d.s("bin"),
        "--cni-conf-dir",
        &d.s("no-such-net.d"),
        "--local-dir",
        &d.s("cluster"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--cni-conf-dir"), "{}", stderr(&out));

    // Without --local-dir the kubeconfig needs the pod's service account.
    let out = install(&[
        "--skip-binary-copy",
        "--bin-dir",
        &d.s("bin"),
        "--cni-conf-dir",
        &d.s("net.d"),
        "--kubeconfig",
        &d.s("net.d/multinet.d/multinet.kubeconfig"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("KUBERNETES_SERVICE_HOST"),
        "{}",
        stderr(&out)
    );

    let out = install(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
}

#[test]
fn foreign_plugins_are_never_overwritten_without_force() {
    let d = Dirs::new();
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    let foreign = b"#!/bin/sh\necho reference macvlan\n";
    fs::write(d.path("bin/macvlan"), foreign).unwrap();
    fs::write(d.path("bin/static"), foreign).unwrap();
    // Another plugin may be a link too, to something that is not ours.
    std::os::unix::fs::symlink("/usr/lib/cni/host-local", d.path("bin/host-local")).unwrap();

    let out = d.install(&["--own-delegates"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = stderr(&out);
    for name in ["bin/macvlan", "bin/static", "bin/host-local"] {
        assert!(msg.contains(&d.s(name)), "{name}: {msg}");
    }
    assert!(msg.contains("--force"), "{msg}");
    // Refused before anything changed: not even the binary was copied.
    assert_eq!(d.names("bin"), vec!["host-local", "macvlan", "static"]);
    assert_eq!(fs::read(d.path("bin/macvlan")).unwrap(), foreign);
    assert_eq!(d.names("net.d"), vec!["10-cluster.conflist"]);

    link_real_binary(&d.path("bin"));
    assert_ok(&d.install(&["--own-delegates", "--force", "--skip-binary-copy"]));
    for name in ["macvlan", "ipvlan", "sriov", "host-local", "static"] {
        assert_eq!(
            fs::read_link(d.path(&format!("bin/{name}"))).unwrap(),
            PathBuf::from("multinet")
        );
    }
    // The links run our binary: `macvlan` answers VERSION as a CNI plugin does.
    let out = Command::new(d.path("bin/macvlan"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let version: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(version["supportedVersions"].as_array().unwrap().len() > 3);
    // Our own links are ours from now on: no --force needed again, nothing rewritten.
    let before = stamp(&d.path("bin/macvlan"));
    assert_ok(&d.install(&["--own-delegates", "--skip-binary-copy"]));
    assert_eq!(stamp(&d.path("bin/macvlan")), before);
}

/// `multinet install --watch`, killed when the test ends.
struct Watcher(Child);

impl Watcher {
    fn start(cmd: &mut Command) -> Watcher {
        Watcher(cmd.stderr(Stdio::null()).spawn().unwrap())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.0.wait().unwrap()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_follows_the_cluster_network_and_keeps_the_config_on_sigterm() {
    let d = Dirs::new();
    let mut watcher = Watcher::start(install_cmd(&["--watch"]).args(d.args()));
    let ours = d.path("net.d/00-multinet.conflist");
    let conf_file = d.path("net.d/00-multinet.conf");
    // It starts before the cluster network exists and writes nothing until it does.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!ours.exists() && !conf_file.exists());

    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    wait_until("the config", Duration::from_secs(5), || ours.exists());

    d.write_cluster(
        "10-cluster.conflist",
        "1.0.0",
        json!({"portMappings": true}),
    );
    wait_until("the new capability", Duration::from_secs(5), || {
        d.read_json("net.d/00-multinet.conflist")["plugins"][0]["capabilities"]
            == json!({"portMappings": true})
    });

    d.write_cluster("10-cluster.conflist", "0.4.0", json!({}));
    wait_until("the conf form", Duration::from_secs(5), || {
        conf_file.exists() && !ours.exists()
    });

    // A file sorting earlier becomes the cluster network.
    d.write_cluster("05-other.conflist", "1.0.0", json!({}));
    wait_until("the switch to 05-other", Duration::from_secs(5), || {
        ours.exists()
            && d.read_json("net.d/00-multinet.conflist")["plugins"][0]["clusterNetwork"]
                == d.s("net.d/05-other.conflist")
    });

    fs::remove_file(d.path("net.d/05-other.conflist")).unwrap();
    fs::remove_file(d.path("net.d/10-cluster.conflist")).unwrap();
    wait_until("our config to go", Duration::from_secs(5), || {
        d.names("net.d").is_empty()
    });

    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    wait_until("the config again", Duration::from_secs(5), || ours.exists());
    let before = stamp(&ours);
    // Unchanged input: several polls later the file is still the same file.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(stamp(&ours), before, "rewritten while nothing changed");

    let status = watcher.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM is a clean stop: {status:?}"
    );
    assert!(ours.exists(), "config removed on SIGTERM");
    assert_eq!(stamp(&ours), before);
}

#[test]
fn watch_refreshes_the_kubeconfig_when_the_token_rotates() {
    let d = Dirs::new();
    d.write_cluster("10-cluster.conflist", "1.0.0", json!({}));
    let sa = d.path("sa");
    fs::create_dir_all(&sa).unwrap();
    fs::write(sa.join("token"), "token-1").unwrap();
    fs::write(sa.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let kubeconfig = d.path("net.d/multinet.d/multinet.kubeconfig");
    let mut cmd = install_cmd(&[
        "--watch",
        "--skip-binary-copy",
        "--bin-dir",
        &d.s("bin"),
        "--cni-conf-dir",
        &d.s("net.d"),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--service-account-dir",
        sa.to_str().unwrap(),
        "--poll-millis",
        "20",
    ]);
    cmd.env("KUBERNETES_SERVICE_HOST", "fd00::1")
        .env("KUBERNETES_SERVICE_PORT", "6443");
    let _watcher = Watcher::start(&mut cmd);
    let read = || -> Value {
        fs::read_to_string(&kubeconfig)
            .ok()
            .and_then(|t| serde_yaml::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    wait_until("the kubeconfig", Duration::from_secs(5), || {
        read()["users"][0]["user"]["token"] == "token-1"
    });
    assert_eq!(
        read()["clusters"][0]["cluster"]["server"],
        "https://[fd00::1]:6443"
    );
    // The config is written too (in the multinet.d subdirectory's parent), pointing at it.
    let ours = d.path("net.d/00-multinet.conflist");
    wait_until("the config", Duration::from_secs(5), || ours.exists());
    assert_eq!(
        d.read_json("net.d/00-multinet.conflist")["plugins"][0]["kubeconfig"],
        kubeconfig.to_str().unwrap()
    );
    // The kubelet rotates the projected token: the host's copy follows.
    fs::write(sa.join("token"), "token-2").unwrap();
    wait_until("the rotated token", Duration::from_secs(5), || {
        read()["users"][0]["user"]["token"] == "token-2"
    });
    assert_eq!(
        fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn help_lists_the_flags() {
    let out = install(&["--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in multinet::install::flag_names() {
        assert!(help.contains(&flag), "{flag}");
    }
}

// ---- deploy/ manifests ----

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of every deploy/*.yaml, with its file name.
fn manifests() -> Vec<(String, Value)> {
    use serde::Deserialize;
    let mut files: Vec<PathBuf> = fs::read_dir(deploy_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut docs = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

fn one_of_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

#[test]
fn deploy_crd_is_the_generated_one() {
    assert_eq!(
        fs::read_to_string(deploy_dir().join("network-attachment-definition.yaml")).unwrap(),
        fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../crds/network-attachment-definition.yaml")
        )
        .unwrap(),
        "copy crds/network-attachment-definition.yaml to deploy/ again"
    );
}

#[test]
fn every_manifest_is_a_named_kubernetes_object() {
    let docs = manifests();
    for (file, doc) in &docs {
        assert!(doc["apiVersion"].is_string(), "{file}: {doc}");
        assert!(doc["kind"].is_string(), "{file}: {doc}");
        assert!(doc["metadata"]["name"].is_string(), "{file}: {doc}");
    }
    let kinds: Vec<&str> = docs
        .iter()
        .map(|(_, d)| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
}

#[test]
fn rbac_grants_what_the_plugin_calls_to_the_daemonsets_service_account() {
    let docs = manifests();
    let sa = one_of_kind(&docs, "ServiceAccount");
    let role = one_of_kind(&docs, "ClusterRole");
    let binding = one_of_kind(&docs, "ClusterRoleBinding");
    let ds = one_of_kind(&docs, "DaemonSet");
    assert_eq!(
        ds["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    assert_eq!(ds["metadata"]["namespace"], sa["metadata"]["namespace"]);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], sa["metadata"]["name"]);
    assert_eq!(subject["namespace"], sa["metadata"]["namespace"]);

    let allowed = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            let has = |key: &str, want: &str| {
                r[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == want || v == "*")
            };
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for (group, resource, verb) in [
        ("", "pods", "get"),
        ("", "pods/status", "patch"),
        ("", "events", "create"),
        ("", "events", "patch"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
    ] {
        assert!(allowed(group, resource, verb), "{verb} {group}/{resource}");
    }
    // Nothing beyond that: no write access to pods or NADs, no secrets.
    assert!(!allowed("", "pods", "patch") && !allowed("", "secrets", "get"));
    assert!(!allowed(
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "update"
    ));
}

#[test]
fn daemonset_runs_install_with_flags_the_binary_accepts_on_host_paths() {
    let docs = manifests();
    let ds = one_of_kind(&docs, "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"]["app"],
        ds["spec"]["template"]["metadata"]["labels"]["app"]
    );
    assert!(
        spec["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "tolerates every taint"
    );
    let help = String::from_utf8(install(&["--help"]).stdout).unwrap();
    let host_paths = host_paths(spec);
    let init = &spec["initContainers"][0];
    let watch = &spec["containers"][0];
    assert_eq!(init["securityContext"]["privileged"], true);
    for (container, must_have) in [(init, "--wait-seconds=600"), (watch, "--watch")] {
        let command: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(command[0].ends_with("/multinet"), "{command:?}");
        assert_eq!(command[1], "install");
        let flags = &command[2..];
        assert!(flags.contains(&must_have), "{command:?}");
        for flag in flags {
            let name = flag.split('=').next().unwrap();
            assert!(
                help.contains(name),
                "{name} is not in multinet install --help"
            );
        }
        let args = multinet::install::InstallArgs::parse(flags)
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        // Host directories are mounted at their own paths, so what the config says is the host's.
        let mounts: Vec<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap();
                let mount = m["mountPath"].as_str().unwrap();
                assert_eq!(host_paths.get(name).copied(), Some(mount), "{name}");
                mount
            })
            .collect();
        let mounted = |p: &Path| mounts.iter().any(|m| p.starts_with(m));
        assert!(mounted(&args.cni_conf_dir), "{:?}", args.cni_conf_dir);
        assert!(mounted(&args.bin_dir), "{:?}", args.bin_dir);
        let kubeconfig = args.options.kubeconfig.as_deref().unwrap();
        assert!(mounted(kubeconfig), "{kubeconfig:?}");
        assert!(
            !mounted(Path::new(command[0])),
            "the image's binary is hidden by a mount"
        );
    }
}

type BTreeMapLike<'a> = std::collections::BTreeMap<&'a str, &'a str>;

/// Each hostPath volume of a pod spec: its name and host path.
fn host_paths(spec: &Value) -> BTreeMapLike<'_> {
    spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect()
}

/// deploy/thick/daemonset.yaml: the install containers write `daemonSocket` naming the socket the
/// daemon container listens on, with flags both commands accept, on host paths.
#[test]
fn thick_daemonset_points_the_config_at_its_daemon() {
    use serde::Deserialize;
    let text = fs::read_to_string(deploy_dir().join("thick/daemonset.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(docs.len(), 1);
    let ds = &docs[0];
    // The same object as the thin DaemonSet, so rbac.yaml serves both.
    let thin = manifests();
    let thin_ds = one_of_kind(&thin, "DaemonSet");
    assert_eq!(ds["metadata"], thin_ds["metadata"]);
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["serviceAccountName"],
        thin_ds["spec"]["template"]["spec"]["serviceAccountName"]
    );
    assert_eq!(spec["hostPID"], true, "CNI_NETNS may be a /proc path");
    let host_paths = host_paths(spec);
    let command = |c: &Value| -> Vec<String> {
        c["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mounts = |c: &Value| -> Vec<(String, Value)> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap();
                let path = m["mountPath"].as_str().unwrap();
                assert_eq!(
                    host_paths.get(name).copied(),
                    Some(path),
                    "{name} is a host path at its own path"
                );
                (path.to_string(), m.clone())
            })
            .collect()
    };
    let daemon = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "daemon")
        .expect("a daemon container");
    let daemon_cmd = command(daemon);
    assert_eq!(daemon_cmd[1], "daemon");
    let daemon_args = multinet::thick::daemon::parse_args(&daemon_cmd[2..]).unwrap();
    assert!(!daemon_args.probe);
    // The liveness probe asks the same socket with the same binary.
    let probe = command(&daemon["livenessProbe"]["exec"]);
    assert_eq!(probe[..2], daemon_cmd[..2]);
    let probe_args = multinet::thick::daemon::parse_args(&probe[2..]).unwrap();
    assert!(probe_args.probe);
    assert_eq!(probe_args.socket, daemon_args.socket);
    let daemon_mounts = mounts(daemon);
    let mounted = |p: &Path| daemon_mounts.iter().any(|(m, _)| p.starts_with(m));
    assert!(mounted(&daemon_args.socket), "{:?}", daemon_args.socket);
    assert!(
        mounted(Path::new(&daemon_cmd[0])),
        "the daemon runs the installed binary"
    );
    for needed in [
        "/run/netns",
        "/var/lib/cni",
        "/sys",
        "/var/lib/kubelet/pod-resources",
    ] {
        assert!(mounted(Path::new(needed)), "{needed}");
    }
    let netns = daemon_mounts
        .iter()
        .find(|(m, _)| m == "/run/netns")
        .unwrap();
    assert_eq!(
        netns.1["mountPropagation"], "HostToContainer",
        "netns made after start are seen"
    );
    assert!(mounted(Path::new(
        multinet::call::devinfo::DEFAULT_DEVICE_INFO_DIR
    )));
    // The DRA driver (--dra-driver) registers with the kubelet and names its node.
    for needed in [
        multinet_dra::DEFAULT_REGISTRY_DIR,
        multinet_dra::DEFAULT_PLUGINS_DIR,
    ] {
        assert!(mounted(Path::new(needed)), "{needed}");
    }
    assert_eq!(
        daemon_args.dra.kubelet_registry_dir,
        Path::new(multinet_dra::DEFAULT_REGISTRY_DIR)
    );
    let node_name = daemon["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );

    let installs = spec["initContainers"].as_array().unwrap().iter().chain(
        spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] != "daemon"),
    );
    let mut n = 0;
    for c in installs {
        let cmd = command(c);
        assert_eq!(cmd[1], "install");
        let args = multinet::install::InstallArgs::parse(&cmd[2..]).unwrap();
        assert_eq!(
            args.options.daemon_socket.as_deref(),
            Some(daemon_args.socket.as_path())
        );
        mounts(c);
        if !cmd.iter().any(|f| f == "--watch") {
            assert_eq!(
                Path::new(&daemon_cmd[0]),
                args.bin_dir.join("multinet"),
                "installed where the daemon runs it"
            );
        }
        n += 1;
    }
    assert_eq!(n, 2, "an init container and a watch container");
}
