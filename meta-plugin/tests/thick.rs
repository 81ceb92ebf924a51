//! Thick mode through the real binary: `multinet daemon` started from the same binary inside the
//! node's namespace, the `multinet` binary handing calls to it over the config's `daemonSocket`,
//! and the API fixture as the cluster. Checked against the kernel (links and addresses in the pod),
//! the API (network-status), the node's state (records, IPs), the daemon's own log (the call ran
//! there) and the config's log (it did not run in the binary), plus the fallback to thin mode, a
//! killed daemon, a second daemon, SIGTERM with a call in flight, and errors. Then the daemon's
//! call threads: calls at the same moment each on a thread of their own, our own delegates run
//! inside the daemon, and a thread that goes on serving after a call failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use common::{Answer, Node};
use multinet_api_fixture::{ApiFixture, RequestFilter};
use multinet_testbed::{CniCall, CniOutput, TestNetns, require_root};
use serde_json::{Value, json};

/// How long a daemon may take to start or to stop before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// The node (reference plugins, bridge cluster network), the API fixture serving two macvlan NADs
/// and pod `web` selecting both, and the node's config naming `socket` as its daemon.
struct Cluster {
    api: ApiFixture,
    node: Node,
    /// The config with `daemonSocket`.
    conf: Value,
    socket: PathBuf,
}

fn cluster() -> Cluster {
    let node = Node::new("1.0.0");
    let (api, mut conf) = node.start_api();
    common::insert_team_nads(&node, &api);
    insert_pod(&api, "web");
    let socket = node.path("run/multinet.sock");
    conf["daemonSocket"] = json!(socket);
    Cluster {
        api,
        node,
        conf,
        socket,
    }
}

fn insert_pod(api: &ApiFixture, name: &str) {
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "data,storage@stor0"}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
}

impl Cluster {
    /// One call of the binary with the thick config (`daemonSocket` set).
    fn thick(&self, command: &str, container: &str, pod: &str, netns: &TestNetns) -> Answer {
        self.node
            .cni_with(command, container, pod, netns.path_str(), &self.conf)
    }

    /// The same config without `daemonSocket`: a plain thin-mode call.
    fn thin_conf(&self) -> Value {
        let mut conf = self.conf.clone();
        conf.as_object_mut().unwrap().remove("daemonSocket");
        conf
    }

    /// The config's `logFile`: written only by calls that run in the binary.
    fn call_log(&self) -> String {
        fs::read_to_string(self.node.path("multinet.log")).unwrap_or_default()
    }

    fn status(&self, pod: &str) -> Vec<Value> {
        let pod = self.api.get("Pod", "team", pod).unwrap();
        let s = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap_or("[]")
            .to_string();
        serde_json::from_str(&s).unwrap()
    }

    /// Starts a daemon on this cluster's socket, logging to `log` (a name under the node dir).
    fn daemon(&self, log: &str) -> Daemon {
        Daemon::start(&self.node, &self.socket, &self.node.path(log))
    }
}

/// `multinet daemon` run from the tested binary in the node's namespace. Dropping it kills it.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

/// The daemon's command line, in the node's namespace (as the binary's calls are).
fn daemon_command(node: &Node, socket: &Path, log: &Path, level: &str) -> Command {
    daemon_command_of(
        Path::new(env!("CARGO_BIN_EXE_multinet")),
        node,
        socket,
        log,
        level,
    )
}

/// The daemon's command line with `exe` as the program (a link to the tested binary, say).
fn daemon_command_of(exe: &Path, node: &Node, socket: &Path, log: &Path, level: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", node.ns.name()])
        .arg(exe)
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .args(["--log-level", level, "--log-file"])
        .arg(log)
        // `cargo test` sets a library path a node's daemon would not have.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for `child` to exit, killing it and failing the test after [`PATIENCE`].
fn wait_exit(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not exit within {PATIENCE:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds, failing after [`PATIENCE`] with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    /// Starts a daemon logging at debug (multinet's own steps).
    fn start(node: &Node, socket: &Path, log: &Path) -> Daemon {
        Self::start_with(node, socket, log, "debug")
    }

    /// Starts a daemon and waits until it listens (its "listening" line, logged after bind).
    fn start_with(node: &Node, socket: &Path, log: &Path, level: &str) -> Daemon {
        Self::spawn(daemon_command(node, socket, log, level), log)
    }

    fn spawn(mut cmd: Command, log: &Path) -> Daemon {
        let child = cmd.spawn().unwrap();
        let mut daemon = Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        };
        wait_for("the daemon to listen", || {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                let out = daemon.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "the daemon exited at start ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            daemon.log().contains("multinet daemon listening")
        });
        daemon
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's "call done" lines for `command` (as the daemon logs its fields).
    fn calls_done(&self, command: &str) -> Vec<String> {
        let field = format!("command=\"{command}\"");
        self.log()
            .lines()
            .filter(|l| l.contains("call done") && l.contains(&field))
            .map(str::to_string)
            .collect()
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    fn kill_hard(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then the daemon's exit.
    fn terminate(&self) {
        let out = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "kill -TERM failed: {out:?}");
    }

    fn wait_exit(mut self) -> Output {
        wait_exit(self.child.take().unwrap(), "the daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The IPv4 address (with prefix) of `link` in `ns`.
fn ipv4(ns: &TestNetns, link: &str) -> String {
    let a = ns.ip_json(&["-4", "addr", "show", "dev", link]);
    format!(
        "{}/{}",
        a[0]["addr_info"][0]["local"].as_str().unwrap(),
        a[0]["addr_info"][0]["prefixlen"]
    )
}

/// Asserts a successful ADD of pod `web`-like: the result names the three interfaces, each is in
/// the pod with the address the result gives, and network-status lists the three networks.
fn assert_attached(c: &Cluster, pod_name: &str, pod: &TestNetns, result: &Value) {
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    let mut links = Node::links(pod);
    links.sort();
    assert_eq!(links, ["eth0", "net1", "stor0"], "{result}");
    let sandbox_ifaces: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["sandbox"].as_str() == Some(pod.path_str()))
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        sandbox_ifaces,
        ["eth0"],
        "the result is the cluster network's"
    );
    let eth0 = ipv4(pod, "eth0");
    assert!(eth0.starts_with("10.99.0."), "{eth0}");
    assert_eq!(result["ips"][0]["address"], eth0.as_str(), "{result}");
    assert!(ipv4(pod, "net1").starts_with("10.10.0."));
    assert!(ipv4(pod, "stor0").starts_with("10.20.0."));
    let status = c.status(pod_name);
    let names: Vec<&str> = status.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cluster", "team/data", "team/storage"]);
    assert_eq!(status[2]["interface"], "stor0");
    assert_eq!(
        status[1]["ips"][0].as_str().unwrap(),
        ipv4(pod, "net1").split('/').next().unwrap()
    );
}

#[test]
fn thick_add_check_del_run_in_the_daemon() {
    require_root!();
    let c = cluster();
    let daemon = c.daemon("daemon.log");
    let pod = TestNetns::new();

    let added = c.thick("ADD", "c1", "web", &pod);
    assert_attached(&c, "web", &pod, added.ok());
    let done = daemon.calls_done("ADD");
    assert_eq!(done.len(), 1, "{}", daemon.log());
    assert!(
        done[0].contains("container=\"c1\"") && done[0].contains("code=0"),
        "{done:?}"
    );
    // The call's own steps are in the daemon's log, none in the config's: the binary only
    // handed it over.
    assert!(daemon.log().contains("ADD started"), "{}", daemon.log());
    assert!(daemon.log().contains("ADD done"), "{}", daemon.log());
    assert!(!c.call_log().contains("ADD started"), "{}", c.call_log());
    assert!(
        !c.call_log().contains("no multinet daemon"),
        "{}",
        c.call_log()
    );

    c.thick("CHECK", "c1", "web", &pod).ok();
    assert_eq!(daemon.calls_done("CHECK").len(), 1, "{}", daemon.log());

    c.thick("DEL", "c1", "web", &pod).ok();
    assert_eq!(daemon.calls_done("DEL").len(), 1, "{}", daemon.log());
    assert!(daemon.log().contains("DEL done"), "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    c.node.assert_clean(&pod);
}

/// The daemon's established TCP connections to the API server's HTTPS port, as local
/// `address:port` strings (each one a TLS session the daemon opened).
fn daemon_api_connections(c: &Cluster, daemon: &Daemon) -> BTreeSet<String> {
    let port = c.api.https_addr().port();
    let out = c.node.ns.exec_checked(&[
        "ss",
        "-Htnp",
        "state",
        "established",
        "dport",
        "=",
        &format!(":{port}"),
    ]);
    let owner = format!("pid={},", daemon.pid());
    out.lines()
        .filter(|l| l.contains(&owner))
        // Recv-Q Send-Q Local Peer Process: no State column under a state filter.
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

/// The daemon's log cut into one piece per call, each ending with the call's "call done" line
/// (the calls of these tests run one after the other).
fn call_logs(log: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut current = String::new();
    for line in log.lines() {
        current.push_str(line);
        current.push('\n');
        if line.contains("call done") {
            calls.push(std::mem::take(&mut current));
        }
    }
    calls
}

/// A cluster with pods `web`, `db` and `app`, and a daemon logging its libraries' debug lines
/// too (HTTP connections, TLS handshakes).
fn verbose_cluster() -> (Cluster, Daemon) {
    let c = cluster();
    insert_pod(&c.api, "db");
    insert_pod(&c.api, "app");
    let daemon = Daemon::start_with(&c.node, &c.socket, &c.node.path("daemon.log"), "verbose");
    (c, daemon)
}

/// Gives the kubeconfig a new modification time: for the daemon, a kubeconfig to load again.
fn touch_kubeconfig(c: &Cluster) {
    fs::File::options()
        .write(true)
        .open(c.node.path("kubeconfig"))
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
}

fn del_all(c: &Cluster, pods: &[(&str, &str, &TestNetns)]) {
    for (container, pod_name, ns) in pods {
        c.thick("DEL", container, pod_name, ns).ok();
        assert_eq!(Node::links(ns), Vec::<String>::new());
    }
    c.node.assert_clean(pods[0].2);
}

/// The daemon keeps its API client between calls. The evidence is TLS: a client's TLS session
/// cache is its own, so the first handshake of a new client is a full one ("No cached session"),
/// while a later call on the kept client either reuses an open connection or resumes the session
/// the first call got. A kubeconfig changed on disk gets a new client, hence a full handshake
/// again: the check tells a kept client from a new one.
#[test]
fn the_api_client_is_reused_across_calls() {
    require_root!();
    let (c, daemon) = verbose_cluster();
    let (web, db, app) = (TestNetns::new(), TestNetns::new(), TestNetns::new());
    c.thick("ADD", "c1", "web", &web).ok();
    c.thick("ADD", "c2", "db", &db).ok();
    assert_eq!(c.status("db").len(), 3);
    touch_kubeconfig(&c);
    c.thick("ADD", "c3", "app", &app).ok();
    assert_eq!(c.status("app").len(), 3);
    assert!(c.api.requests().iter().all(|r| r.tls), "all over TLS");

    let calls = call_logs(&daemon.log());
    assert_eq!(calls.len(), 3, "{}", daemon.log());
    let full = "No cached session";
    assert!(calls[0].contains(full), "a new client: {}", calls[0]);
    assert!(!calls[1].contains(full), "a second client: {}", calls[1]);
    assert!(!calls[1].contains("Not resuming"), "{}", calls[1]);
    assert!(
        calls[2].contains(full),
        "the kept client was used: {}",
        calls[2]
    );

    del_all(
        &c,
        &[("c1", "web", &web), ("c2", "db", &db), ("c3", "app", &app)],
    );
}

/// A warm connection: the second call goes over the TCP/TLS connections the first left idle, so
/// it connects to nothing and the daemon's sockets to the API server are the same ones. (Each
/// call runs on a runtime of its own; the kept client's requests run on the daemon's, so their
/// connections outlive the call.)
#[test]
fn api_connections_stay_open_between_calls() {
    require_root!();
    let (c, daemon) = verbose_cluster();
    let (web, db) = (TestNetns::new(), TestNetns::new());
    c.thick("ADD", "c1", "web", &web).ok();
    let first = daemon_api_connections(&c, &daemon);
    c.thick("ADD", "c2", "db", &db).ok();
    let second = daemon_api_connections(&c, &daemon);
    let calls = call_logs(&daemon.log());
    assert_eq!(calls.len(), 2, "{}", daemon.log());
    assert!(calls[0].contains("connecting to"), "{}", calls[0]);
    let reconnects = calls[1].matches("connecting to").count();
    let kept = (first.clone(), second.clone());
    del_all(&c, &[("c1", "web", &web), ("c2", "db", &db)]);
    assert!(!kept.0.is_empty(), "no connection left open after a call");
    assert_eq!(kept.1, kept.0, "the second call has connections of its own");
    assert_eq!(
        reconnects, 0,
        "the second call connected again: {}",
        calls[1]
    );
}

#[test]
fn no_daemon_listening_falls_back_to_thin_mode() {
    require_root!();
    let c = cluster();
    assert!(!c.socket.exists());
    let pod = TestNetns::new();

    let added = c.thick("ADD", "c1", "web", &pod);
    assert_attached(&c, "web", &pod, added.ok());
    let log = c.call_log();
    let warning = format!("no multinet daemon at {}", c.socket.display());
    assert!(log.contains(&warning), "{log}");
    assert!(log.contains("running the call here"), "{log}");
    assert!(
        log.contains("ADD started"),
        "the call ran in the binary: {log}"
    );
    assert!(!c.socket.exists(), "the binary must not create the socket");

    c.thick("DEL", "c1", "web", &pod).ok();
    let log = c.call_log();
    assert_eq!(log.matches(&warning).count(), 2, "{log}");
    assert!(log.contains("DEL done"), "{log}");
    c.node.assert_clean(&pod);
}

#[test]
fn a_killed_daemon_leaves_thin_mode_then_a_new_daemon_takes_over() {
    require_root!();
    let c = cluster();
    insert_pod(&c.api, "db");
    let (web, db) = (TestNetns::new(), TestNetns::new());
    let first = c.daemon("daemon1.log");
    c.thick("ADD", "c1", "web", &web).ok();
    assert_eq!(first.calls_done("ADD").len(), 1, "{}", first.log());
    let first_log = first.log.clone();
    first.kill_hard();
    let stale = fs::symlink_metadata(&c.socket).expect("SIGKILL leaves the socket file");
    assert!(stale.file_type().is_socket());

    // Nothing answers on the stale socket: the call runs in the binary.
    let added = c.thick("ADD", "c2", "db", &db);
    assert_attached(&c, "db", &db, added.ok());
    let log = c.call_log();
    assert!(
        log.contains(&format!("no multinet daemon at {}", c.socket.display())),
        "{log}"
    );
    assert_eq!(log.matches("ADD started").count(), 1, "{log}");
    let first_log = fs::read_to_string(first_log).unwrap();
    assert_eq!(first_log.matches("call done").count(), 1, "{first_log}");

    // A new daemon replaces the stale socket and serves the next calls.
    let second = c.daemon("daemon2.log");
    c.thick("DEL", "c1", "web", &web).ok();
    c.thick("DEL", "c2", "db", &db).ok();
    let dels = second.calls_done("DEL");
    assert_eq!(dels.len(), 2, "{}", second.log());
    assert!(dels.iter().all(|l| l.contains("code=0")), "{dels:?}");
    assert!(!c.call_log().contains("DEL started"), "{}", c.call_log());
    assert_eq!(Node::links(&web), Vec::<String>::new());
    c.node.assert_clean(&db);
}

#[test]
fn a_second_daemon_or_a_foreign_file_at_the_socket_is_refused() {
    require_root!();
    let c = cluster();
    let first = c.daemon("daemon1.log");

    let refused = wait_exit(
        daemon_command(&c.node, &c.socket, &c.node.path("daemon2.log"), "debug")
            .spawn()
            .unwrap(),
        "a second daemon",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stderr.contains(&c.socket.display().to_string()) && stderr.contains("another"),
        "{stderr}"
    );
    assert!(
        fs::symlink_metadata(&c.socket)
            .unwrap()
            .file_type()
            .is_socket()
    );

    // The first daemon still serves on its socket.
    let pod = TestNetns::new();
    c.thick("ADD", "c1", "web", &pod).ok();
    c.thick("DEL", "c1", "web", &pod).ok();
    assert_eq!(first.calls_done("ADD").len(), 1, "{}", first.log());
    assert_eq!(first.calls_done("DEL").len(), 1, "{}", first.log());
    assert_eq!(c.call_log(), "");
    c.node.assert_clean(&pod);

    // A regular file where the socket would go is left alone.
    let file = c.node.path("run/not-a-socket");
    fs::write(&file, "keep me").unwrap();
    let refused = wait_exit(
        daemon_command(&c.node, &file, &c.node.path("daemon3.log"), "debug")
            .spawn()
            .unwrap(),
        "a daemon on a regular file",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("not a socket"),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
    assert!(fs::symlink_metadata(&file).unwrap().file_type().is_file());
}

/// SIGTERM while a call waits on a slow API: the daemon stops taking calls (a new call runs in
/// the binary), answers the one in flight, removes its socket and exits 0.
#[test]
fn sigterm_drains_the_call_in_flight_and_removes_the_socket() {
    require_root!();
    let c = cluster();
    insert_pod(&c.api, "db");
    let daemon = c.daemon("daemon.log");
    let (web, db) = (TestNetns::new(), TestNetns::new());
    let started = Instant::now();
    let slow = slow_add_in_daemon(&c, &daemon, &web);
    daemon.terminate();
    wait_for("the daemon to stop accepting", || {
        daemon.log().contains("stopping: no new calls")
    });
    let stopping = daemon
        .log()
        .lines()
        .find(|l| l.contains("stopping: no new calls"))
        .unwrap()
        .to_string();
    assert!(stopping.contains("calls=1"), "{stopping}");

    // While it drains, a new call finds no listener and runs in the binary.
    let added = c.thick("ADD", "c2", "db", &db);
    assert_attached(&c, "db", &db, added.ok());
    assert!(
        c.call_log()
            .contains(&format!("no multinet daemon at {}", c.socket.display())),
        "{}",
        c.call_log()
    );

    let slow = Answer::of(&CniOutput::wait(slow));
    assert_attached(&c, "web", &web, slow.ok());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "latency applied"
    );
    let out = daemon.wait_exit();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!c.socket.exists(), "the socket is removed on exit");
    let log = fs::read_to_string(c.node.path("daemon.log")).unwrap();
    let done: Vec<&str> = log.lines().filter(|l| l.contains("call done")).collect();
    assert_eq!(done.len(), 1, "{log}");
    assert!(
        done[0].contains("container=\"c1\"") && done[0].contains("code=0"),
        "{log}"
    );

    c.thick("DEL", "c1", "web", &web).ok();
    c.thick("DEL", "c2", "db", &db).ok();
    assert_eq!(Node::links(&web), Vec::<String>::new());
    c.node.assert_clean(&db);
}

/// Errors through the daemon are byte for byte the errors of thin mode, and leave nothing.
#[test]
fn errors_through_the_daemon_match_thin_mode() {
    require_root!();
    let c = cluster();
    let daemon = c.daemon("daemon.log");
    let pod = TestNetns::new();
    let run = |conf: &Value| {
        let out = c
            .node
            .call("ADD", "c1", "web", pod.path_str())
            .stdin_json(conf)
            .run();
        c.node.assert_clean(&pod);
        out
    };
    let compare = |thick: &Value, thin: &Value, expect_code: u64, expect_msg: &str| {
        let calls = daemon.log().matches("call done").count();
        let (thick_out, thin_out) = (run(thick), run(thin));
        assert_eq!(
            daemon.log().matches("call done").count(),
            calls + 1,
            "the thick call ran in the daemon, the thin one did not"
        );
        assert_eq!(thick_out.code(), thin_out.code());
        assert_ne!(thick_out.code(), 0, "{}", thick_out.stdout);
        assert_eq!(thick_out.json(), thin_out.json());
        let (code, msg) = Answer::of(&thick_out).err();
        assert_eq!(code, expect_code, "{msg}");
        assert!(msg.contains(expect_msg), "{msg}");
    };

    c.api
        .merge_patch(
            "Pod",
            "team",
            "web",
            &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "data,nope"}}}),
        )
        .expect("pod exists");
    compare(&c.conf, &c.thin_conf(), 7, "team/nope");

    for (key, value) in [("parallelNetworks", json!("yes")), ("logLevel", json!(7))] {
        let mut thick = c.conf.clone();
        thick[key] = value.clone();
        let mut thin = c.thin_conf();
        thin[key] = value;
        compare(&thick, &thin, 7, key);
    }
    assert_eq!(c.status("web"), Vec::<Value>::new());
}

#[test]
fn the_socket_is_root_only() {
    require_root!();
    let c = cluster();
    let _daemon = c.daemon("daemon.log");
    let meta = fs::symlink_metadata(&c.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0);
}

/// Pod `web`'s ADD (container c1) made slow by 2 s of API latency on its pod GET, started
/// through the binary and returned once it runs in the daemon.
fn slow_add_in_daemon(c: &Cluster, daemon: &Daemon, pod: &TestNetns) -> Child {
    c.api.faults().add_latency(
        RequestFilter::path("/api/v1/namespaces/team/pods/web").method("GET"),
        Duration::from_secs(2),
    );
    let call = c
        .node
        .call("ADD", "c1", "web", pod.path_str())
        .stdin_json(&c.conf)
        .spawn();
    wait_for("the call to start in the daemon", || {
        daemon.log().contains("ADD started")
    });
    call
}

/// A daemon that dies with a call in hand: the binary answers "try again" (11) naming the socket,
/// and the runtime's DEL, run in the binary once no daemon listens, leaves nothing behind.
#[test]
fn a_daemon_dying_mid_call_is_try_again() {
    require_root!();
    let c = cluster();
    let daemon = c.daemon("daemon.log");
    let pod = TestNetns::new();
    let call = slow_add_in_daemon(&c, &daemon, &pod);
    daemon.kill_hard();
    let (code, msg) = Answer::of(&CniOutput::wait(call)).err();
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains(&c.socket.display().to_string()) && msg.contains("try again"),
        "{msg}"
    );
    assert_eq!(c.call_log(), "", "the binary did not run the call itself");
    assert_eq!(c.status("web"), Vec::<Value>::new());

    c.api.faults().clear_latency();
    c.thick("DEL", "c1", "web", &pod).ok();
    assert!(c.call_log().contains("DEL started"), "{}", c.call_log());
    c.node.assert_clean(&pod);
}

/// The daemon's ADD-lane call threads alive now, by name ("multinet-add-N"). A thread a call
/// thread starts without a name of its own inherits that name, so the distinct names count the
/// call threads (the names stay whole below "multinet-add-100": 15 bytes is all a thread name
/// holds). DEL, GC and STATUS run on threads of their own lane ("multinet-del-N").
fn call_threads(daemon: &Daemon) -> BTreeSet<String> {
    fs::read_dir(format!("/proc/{}/task", daemon.pid()))
        .unwrap()
        .filter_map(|task| fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_string())
        .filter(|comm| comm.starts_with("multinet-add-"))
        .collect()
}

/// The set of `n` call thread names the daemon gives its first `n` threads.
fn first_threads(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("multinet-add-{i}")).collect()
}

/// host-local's allocations for `network`: address → the container holding it (the first line
/// of the address's file).
fn allocations(node: &Node, network: &str) -> BTreeMap<String, String> {
    fs::read_dir(node.path("ipam").join(network))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "lock" && !name.starts_with("last_reserved_ip")
        })
        .map(|p| {
            let holder = fs::read_to_string(&p).unwrap();
            let container = holder.lines().next().unwrap_or("").trim().to_string();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                container,
            )
        })
        .collect()
}

/// One `(container, pod, netns)` per call, all calls of the binary (thick config) started at the
/// same moment from threads of their own; their answers in the same order.
fn at_the_same_moment(
    c: &Cluster,
    command: &str,
    pods: &[(String, String, TestNetns)],
) -> Vec<Answer> {
    let barrier = Barrier::new(pods.len());
    let (node, conf, barrier) = (&c.node, &c.conf, &barrier);
    std::thread::scope(|s| {
        let calls: Vec<_> = pods
            .iter()
            .map(|(container, pod, ns)| {
                s.spawn(move || {
                    let call = node
                        .call(command, container, pod, ns.path_str())
                        .stdin_json(conf);
                    barrier.wait();
                    Answer::of(&call.run())
                })
            })
            .collect();
        calls.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// The containers named by the daemon's "call done" lines for `command`, each line checked for
/// exit code `code`.
fn done_containers(daemon: &Daemon, command: &str, code: i32) -> BTreeSet<String> {
    daemon
        .calls_done(command)
        .iter()
        .map(|line| {
            assert!(line.contains(&format!("code={code}")), "{line}");
            let (_, rest) = line.split_once("container=\"").unwrap();
            rest.split('"').next().unwrap().to_string()
        })
        .collect()
}

/// Eight pods added at the same moment through the daemon: every call succeeds, on call threads
/// of the daemon's (more than one), the pods get distinct addresses on every network, and eight
/// DELs at the same moment leave nothing.
#[test]
fn concurrent_calls_all_succeed_on_their_own_threads() {
    const PODS: usize = 8;
    require_root!();
    let c = cluster();
    let pods: Vec<(String, String, TestNetns)> = (0..PODS)
        .map(|i| (format!("k{i}"), format!("pod{i}"), TestNetns::new()))
        .collect();
    for (_, pod, _) in &pods {
        insert_pod(&c.api, pod);
    }
    let daemon = c.daemon("daemon.log");
    // Each call waits on its pod's GET, so calls that start together are in the daemon together.
    c.api.faults().add_latency(
        RequestFilter::path("/api/v1/namespaces/team/pods/pod*").method("GET"),
        Duration::from_millis(300),
    );
    let containers: BTreeSet<String> = pods.iter().map(|(k, _, _)| k.clone()).collect();

    let added = at_the_same_moment(&c, "ADD", &pods);
    for ((_, pod, ns), answer) in pods.iter().zip(&added) {
        assert_attached(&c, pod, ns, answer.ok());
    }
    assert_eq!(
        done_containers(&daemon, "ADD", 0),
        containers,
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.calls_done("ADD").len(), PODS, "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    let threads = call_threads(&daemon);
    assert!(
        threads.len() > 1 && threads.len() <= PODS,
        "call threads: {threads:?}"
    );
    // Threads are numbered as they start: none is missing, so none has exited.
    assert_eq!(threads, first_threads(threads.len()));

    // Distinct addresses on every network, each held in host-local by its own pod's container.
    for (network, link) in [("cluster", "eth0"), ("data", "net1"), ("storage", "stor0")] {
        let in_pods: BTreeMap<String, String> = pods
            .iter()
            .map(|(container, _, ns)| {
                let addr = ipv4(ns, link);
                (
                    addr.split('/').next().unwrap().to_string(),
                    container.clone(),
                )
            })
            .collect();
        assert_eq!(
            in_pods.len(),
            PODS,
            "an address on {link} twice: {in_pods:?}"
        );
        assert_eq!(allocations(&c.node, network), in_pods, "{network}");
    }
    assert_eq!(c.node.allocated_ips().len(), 3 * PODS);
    let records: BTreeSet<String> = c
        .node
        .records()
        .iter()
        .map(|r| r.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    let expected: BTreeSet<String> = containers.iter().map(|k| format!("{k}.json")).collect();
    assert_eq!(records, expected, "one attachment record per pod");

    let deleted = at_the_same_moment(&c, "DEL", &pods);
    for answer in &deleted {
        answer.ok();
    }
    assert_eq!(
        done_containers(&daemon, "DEL", 0),
        containers,
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.calls_done("DEL").len(), PODS, "{}", daemon.log());
    let after = call_threads(&daemon);
    assert!(
        after.is_superset(&threads) && after.len() <= PODS,
        "the call threads are kept: {threads:?} then {after:?}"
    );
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    for (_, _, ns) in &pods {
        c.node.assert_clean(ns);
    }
}

/// A call of `exe` (a link in CNI_PATH) as the runtime makes it, with the thick config.
fn runtime_call(
    c: &Cluster,
    exe: &Path,
    command: &str,
    container: &str,
    pod: &str,
    ns: &TestNetns,
) -> Answer {
    let call = CniCall::new(exe, command)
        .in_netns(&c.node.ns)
        .container_id(container)
        .netns(ns.path_str())
        .ifname("eth0")
        .args(format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
        ))
        .path(c.node.bin())
        .stdin_json(&c.conf);
    Answer::of(&call.run())
}

/// The daemon's delegate lines (in-process or exec) logged after byte `from` of its log.
fn delegate_lines(daemon: &Daemon, from: usize) -> Vec<String> {
    daemon.log()[from..]
        .lines()
        .filter(|l| l.contains("delegate in-process") || l.contains("delegate exec"))
        .map(str::to_string)
        .collect()
}

/// A multi-call install (CNI_PATH holds only links to the multinet binary, the plugin itself
/// among them) with the daemon started from that link: the daemon runs our macvlan and
/// host-local inside itself, for every network, and execs nothing.
#[test]
fn own_delegates_run_inside_the_daemon() {
    require_root!();
    let c = cluster();
    for link in fs::read_dir(c.node.bin()).unwrap() {
        fs::remove_file(link.unwrap().path()).unwrap();
    }
    for p in ["macvlan", "host-local", "multinet"] {
        c.node.use_own(p);
    }
    // The cluster network on our macvlan: the reference bridge is gone from CNI_PATH.
    c.node
        .ns
        .ip(&["link", "add", "cl0", "type", "veth", "peer", "name", "cl0p"]);
    c.node.ns.ip(&["link", "set", "cl0", "up"]);
    c.node.ns.ip(&["link", "set", "cl0p", "up"]);
    let cluster_net = json!({
        "cniVersion": c.node.delegate_version(), "name": "cluster",
        "plugins": [c.node.macvlan_nad("cluster", "cl0", "10.99.0.0/24")]
    });
    fs::write(
        c.node.path("net.d/10-cluster.conflist"),
        cluster_net.to_string(),
    )
    .unwrap();
    let exe = c.node.bin().join("multinet");
    let log = c.node.path("daemon.log");
    let daemon = Daemon::spawn(
        daemon_command_of(&exe, &c.node, &c.socket, &log, "debug"),
        &log,
    );
    let pod = TestNetns::new();

    let added = runtime_call(&c, &exe, "ADD", "c1", "web", &pod);
    assert_attached(&c, "web", &pod, added.ok());
    for link in Node::link_details(&pod) {
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
    }
    let lines = delegate_lines(&daemon, 0);
    assert_eq!(lines.len(), 3, "one delegate per network: {lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("delegate in-process")
            && l.contains("plugin=macvlan verb=\"ADD\"")),
        "{lines:#?}"
    );
    assert_eq!(daemon.calls_done("ADD").len(), 1, "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");

    let mark = daemon.log().len();
    runtime_call(&c, &exe, "DEL", "c1", "web", &pod).ok();
    let lines = delegate_lines(&daemon, mark);
    assert_eq!(lines.len(), 3, "one delegate per network: {lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("delegate in-process")
            && l.contains("plugin=macvlan verb=\"DEL\"")),
        "{lines:#?}"
    );
    assert!(!daemon.log().contains("delegate exec"), "{}", daemon.log());
    assert_eq!(daemon.calls_done("DEL").len(), 1, "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    c.node.assert_clean(&pod);
}

/// Hands one call to the daemon as the binary does (wire frames written here from the protocol's
/// description): `MNT1`, the env JSON's length (u32, big-endian), the env JSON, stdin; the answer
/// is the exit code (i32, big-endian) and stdout.
fn hand_to_daemon(socket: &Path, vars: &[(String, String)], stdin: &[u8]) -> (i32, Vec<u8>) {
    let env: Vec<[&str; 2]> = vars.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
    let env = serde_json::to_vec(&env).unwrap();
    let mut frame = b"MNT1".to_vec();
    frame.extend_from_slice(&u32::try_from(env.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&env);
    frame.extend_from_slice(stdin);
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(&frame).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert!(answer.len() >= 4, "no answer: {answer:?}");
    let code = i32::from_be_bytes(answer[..4].try_into().unwrap());
    (code, answer[4..].to_vec())
}

/// A failed call leaves its call thread (and the thread's runtime) serving: the next calls run
/// on that same thread and succeed. A stdin that is not JSON, which only a caller speaking the
/// protocol can hand over (the binary runs such a call itself), gets thin mode's answer.
#[test]
fn a_call_thread_keeps_working_after_a_failed_call() {
    require_root!();
    let c = cluster();
    c.api
        .insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bad", "namespace": "team", "uid": "uid-bad",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "data,nope"}},
            "spec": {"containers": [{"name": "app", "image": "app"}]}
        }))
        .unwrap();
    let daemon = c.daemon("daemon.log");
    let (bad, web) = (TestNetns::new(), TestNetns::new());
    let one_thread = first_threads(1);

    let (code, msg) = c.thick("ADD", "c0", "bad", &bad).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("team/nope"), "{msg}");
    c.node.assert_clean(&bad);
    assert_eq!(call_threads(&daemon), one_thread);

    // The same thread, no new one, runs the next call.
    let added = c.thick("ADD", "c1", "web", &web);
    assert_attached(&c, "web", &web, added.ok());
    assert_eq!(call_threads(&daemon), one_thread);

    let call = c
        .node
        .call("ADD", "c2", "web", web.path_str())
        .stdin("not json");
    let thin = call.run();
    let (thick_code, thick_stdout) = hand_to_daemon(&c.socket, &call.vars(), call.stdin_bytes());
    assert_eq!(thick_code, thin.code());
    assert_eq!(String::from_utf8(thick_stdout).unwrap(), thin.stdout);
    let (code, msg) = Answer::of(&thin).err();
    assert_eq!(code, 6, "{msg}");
    assert!(msg.contains("not valid JSON"), "{msg}");
    let mut links = Node::links(&web);
    links.sort();
    assert_eq!(links, ["eth0", "net1", "stor0"], "the bad call did nothing");

    c.thick("DEL", "c1", "web", &web).ok();
    let adds = daemon.calls_done("ADD");
    assert_eq!(adds.len(), 3, "{}", daemon.log());
    for (line, (container, code)) in adds.iter().zip([("c0", 1), ("c1", 0), ("c2", 1)]) {
        assert!(
            line.contains(&format!("container=\"{container}\""))
                && line.contains(&format!("code={code}")),
            "{adds:#?}"
        );
    }
    assert_eq!(
        done_containers(&daemon, "DEL", 0),
        BTreeSet::from(["c1".to_string()])
    );
    assert_eq!(call_threads(&daemon), one_thread);
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    c.node.assert_clean(&web);
}

/// `multinet daemon --probe` (the DaemonSet's liveness probe) answers 0 while a daemon serves
/// the socket (a VERSION answer only a daemon gives through it) and 1, naming the socket, once
/// none does.
#[test]
fn the_probe_tells_a_serving_daemon_from_none() {
    require_root!();
    let c = cluster();
    let probe = || {
        Command::new(env!("CARGO_BIN_EXE_multinet"))
            .arg("daemon")
            .arg("--probe")
            .arg(format!("--socket={}", c.socket.display()))
            .output()
            .unwrap()
    };
    let daemon = c.daemon("daemon.log");
    let out = probe();
    assert!(out.status.success(), "{out:?}");
    daemon.terminate();
    assert!(daemon.wait_exit().status.success());
    let out = probe();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&c.socket.display().to_string()), "{stderr}");
}

// The daemon's trust boundary: who may reach it, and what a call can hold.

/// The uid of `nobody`: a local user who is not root.
const NOBODY: u32 = 65534;

impl Cluster {
    /// Starts a daemon on this cluster's socket with `extra` flags, logging at debug.
    fn daemon_with(&self, log: &str, extra: &[&str]) -> Daemon {
        let log = self.node.path(log);
        let mut cmd = daemon_command(&self.node, &self.socket, &log, "debug");
        cmd.args(extra);
        Daemon::spawn(cmd, &log)
    }

    /// This cluster's config with a readiness indicator file (`ready` in the node dir); ADD
    /// waits up to 45 s for it, DEL does not.
    fn conf_with_readiness(&self) -> (Value, PathBuf) {
        let ready = self.node.path("ready");
        let mut conf = self.conf.clone();
        conf["readinessindicatorfile"] = json!(ready);
        (conf, ready)
    }
}

/// The binary as a runtime would run it, but as `uid` (groups dropped) and in the host's
/// namespace: it hands `call` to the daemon named by its config.
fn call_as(uid: u32, call: &CniCall) -> Answer {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_multinet"))
        // `cargo test` sets a library path a runtime would not.
        .env_remove("LD_LIBRARY_PATH")
        .envs(call.vars())
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(call.stdin_bytes())
        .unwrap();
    Answer::of(&CniOutput::wait(child))
}

/// `multinet daemon --probe` run as `uid`.
fn probe_as(uid: u32, socket: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    Command::new(env!("CARGO_BIN_EXE_multinet"))
        .args(["daemon", "--probe", "--socket"])
        .arg(socket)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

/// Lets every uid reach the daemon's socket file (as an admin who got it wrong might): only the
/// daemon's check of the caller's credentials stands in the way then.
fn open_up_socket(c: &Cluster) {
    for (path, mode) in [
        (c.node.dir.path().to_path_buf(), 0o711),
        (c.socket.parent().unwrap().to_path_buf(), 0o711),
        (c.socket.clone(), 0o666),
    ] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Under umask 000 the daemon still makes its directory 0700 and its socket 0600, owned by
/// root, with nothing else left next to it (the private directory it binds in is gone).
#[test]
fn a_daemon_started_under_umask_000_keeps_its_socket_private() {
    use std::os::unix::process::CommandExt;
    require_root!();
    let c = cluster();
    let log = c.node.path("daemon.log");
    let mut cmd = daemon_command(&c.node, &c.socket, &log, "debug");
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            Ok(())
        });
    }
    let daemon = Daemon::spawn(cmd, &log);
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    assert!(
        status.lines().any(|l| l == "Umask:\t0000"),
        "the daemon runs under umask 000: {status}"
    );
    let run = c.socket.parent().unwrap();
    let dir = fs::symlink_metadata(run).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert_eq!(dir.uid(), 0);
    let sock = fs::symlink_metadata(&c.socket).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(sock.permissions().mode() & 0o777, 0o600);
    assert_eq!(sock.uid(), 0);
    let entries: Vec<_> = fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        [c.socket.file_name().unwrap()],
        "nothing else in {run:?}"
    );

    // Another uid cannot even connect; root's calls are served.
    let out = probe_as(NOBODY, &c.socket);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    let pod = TestNetns::new();
    c.thick("ADD", "c1", "web", &pod).ok();
    c.thick("DEL", "c1", "web", &pod).ok();
    assert_eq!(daemon.calls_done("ADD").len(), 1, "{}", daemon.log());
    c.node.assert_clean(&pod);
}

/// A caller running as a uid that is not allowed, with the socket file open to it: refused with
/// code 4 naming its uid, logged, and nothing of the call runs (no record, link or address; the
/// binary does not run it itself either).
#[test]
fn a_caller_of_another_uid_is_refused_and_nothing_runs() {
    require_root!();
    let c = cluster();
    let daemon = c.daemon("daemon.log");
    open_up_socket(&c);
    let pod = TestNetns::new();

    // A request of a few bytes or of the whole stdin limit (more than the socket buffers hold:
    // the daemon reads it unlooked-at so that the caller gets the answer, not a reset).
    for stdin in [
        c.conf.to_string().into_bytes(),
        padded(&c.conf, multinet_cni::MAX_STDIN_BYTES),
    ] {
        let call = c.node.call("ADD", "c1", "web", pod.path_str()).stdin(stdin);
        let (code, msg) = call_as(NOBODY, &call).err();
        assert_eq!(code, 4, "{msg}");
        assert!(
            msg.contains(&format!("uid {NOBODY} is not allowed")),
            "{msg}"
        );
    }
    let log = daemon.log();
    let refusals = log
        .lines()
        .filter(|l| l.contains("refused a call") && l.contains(&format!("uid={NOBODY}")))
        .count();
    assert_eq!(refusals, 2, "{log}");
    assert!(!log.contains("ADD started"), "{log}");
    assert!(!log.contains("call runs"), "{log}");
    assert_eq!(daemon.calls_done("ADD").len(), 0, "{log}");
    assert_eq!(c.call_log(), "", "the binary did not run the call itself");
    c.node.assert_clean(&pod);
    assert_eq!(c.status("web"), Vec::<Value>::new());

    // The liveness probe, answered without a call thread, is refused alike.
    let out = probe_as(NOBODY, &c.socket);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not allowed"), "{stderr}");

    // Root still is served.
    c.thick("ADD", "c1", "web", &pod).ok();
    c.thick("DEL", "c1", "web", &pod).ok();
    assert_eq!(daemon.calls_done("ADD").len(), 1, "{}", daemon.log());
    c.node.assert_clean(&pod);
}

/// A uid named with `--allow-uid` is served like root: ADD and DEL run in the daemon.
#[test]
fn an_allowed_uid_is_served() {
    require_root!();
    let c = cluster();
    let allow = NOBODY.to_string();
    let daemon = c.daemon_with("daemon.log", &["--allow-uid", &allow, "--allow-uid=1000"]);
    open_up_socket(&c);
    let pod = TestNetns::new();
    let call = |command: &str| {
        c.node
            .call(command, "c1", "web", pod.path_str())
            .stdin_json(&c.conf)
    };

    let added = call_as(NOBODY, &call("ADD"));
    assert_attached(&c, "web", &pod, added.ok());
    call_as(NOBODY, &call("DEL")).ok();
    assert_eq!(
        done_containers(&daemon, "ADD", 0),
        BTreeSet::from(["c1".into()])
    );
    assert_eq!(
        done_containers(&daemon, "DEL", 0),
        BTreeSet::from(["c1".into()])
    );
    assert!(!daemon.log().contains("refused a call"), "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    c.node.assert_clean(&pod);
}

/// The daemon's debug lines "call runs" (taken by a thread) for `command`.
fn calls_running(daemon: &Daemon, command: &str) -> usize {
    let field = format!("command=\"{command}\"");
    daemon
        .log()
        .lines()
        .filter(|l| l.contains("call runs") && l.contains(&field))
        .count()
}

/// ADDs waiting for the readiness file hold every thread of the ADD lane (two here) and a third
/// waits for one; a DEL, then a STATUS, still run and answer at once, while all three ADDs are
/// blocked. Once the file appears the ADDs, the waiting one too, complete.
#[test]
fn a_del_completes_while_adds_fill_their_lane() {
    require_root!();
    let c = cluster();
    let (conf, ready) = c.conf_with_readiness();
    fs::write(&ready, "").unwrap();
    let daemon = c.daemon_with("daemon.log", &["--add-threads=2"]);
    let web = TestNetns::new();
    c.node
        .cni_with("ADD", "c1", "web", web.path_str(), &conf)
        .ok();
    fs::remove_file(&ready).unwrap();

    let pods: Vec<(String, String, TestNetns)> = (0..3)
        .map(|i| (format!("k{i}"), format!("pod{i}"), TestNetns::new()))
        .collect();
    let mut adds: Vec<Child> = pods
        .iter()
        .map(|(container, pod, ns)| {
            insert_pod(&c.api, pod);
            c.node
                .call("ADD", container, pod, ns.path_str())
                .stdin_json(&conf)
                .spawn()
        })
        .collect();
    wait_for("two ADDs to run and one to wait", || {
        calls_running(&daemon, "ADD") == 3 && daemon.log().contains("call waits for a thread")
    });

    c.node
        .cni_with("DEL", "c1", "web", web.path_str(), &conf)
        .ok();
    for add in &mut adds {
        assert!(
            add.try_wait().unwrap().is_none(),
            "an ADD ended before the DEL's answer"
        );
    }
    assert_eq!(daemon.calls_done("ADD").len(), 1, "{}", daemon.log());
    assert_eq!(
        done_containers(&daemon, "DEL", 0),
        BTreeSet::from(["c1".into()])
    );
    assert_eq!(Node::links(&web), Vec::<String>::new());
    // STATUS (CNI 1.1.0) runs on the DEL lane too: the runtime learns at once that ADDs cannot
    // be served yet (50, naming the readiness file), while the ADDs still wait for it.
    let mut status_conf = conf.clone();
    status_conf["cniVersion"] = json!("1.1.0");
    let (code, msg) = c.node.cni_with("STATUS", "", "web", "", &status_conf).err();
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains(&ready.display().to_string()), "{msg}");
    for add in &mut adds {
        assert!(
            add.try_wait().unwrap().is_none(),
            "an ADD ended before STATUS's answer"
        );
    }
    assert_eq!(calls_running(&daemon, "STATUS"), 1, "{}", daemon.log());

    fs::write(&ready, "").unwrap();
    for ((_, pod, ns), add) in pods.iter().zip(adds) {
        let added = Answer::of(&CniOutput::wait(add));
        assert_attached(&c, pod, ns, added.ok());
    }
    for (container, pod, ns) in &pods {
        c.node
            .cni_with("DEL", container, pod, ns.path_str(), &conf)
            .ok();
        assert_eq!(Node::links(ns), Vec::<String>::new());
    }
    assert_eq!(daemon.calls_done("ADD").len(), 4, "{}", daemon.log());
    assert_eq!(c.call_log(), "", "no call ran in the binary");
    c.node.assert_clean(&web);
}

/// Calls wait for a thread in a bounded queue for a bounded time: past `--max-waiting` a call
/// is answered "try again" (11) at once, and one that waited past `--max-wait-seconds` is
/// answered so when a thread takes it. Neither ran: no record, link or address of theirs.
#[test]
fn a_call_past_the_queue_bound_or_deadline_is_try_again_and_does_nothing() {
    require_root!();
    let c = cluster();
    let (conf, ready) = c.conf_with_readiness();
    let daemon = c.daemon_with(
        "daemon.log",
        &["--add-threads=1", "--max-waiting=1", "--max-wait-seconds=1"],
    );
    let pods: Vec<(String, String, TestNetns)> = (0..3)
        .map(|i| (format!("k{i}"), format!("pod{i}"), TestNetns::new()))
        .collect();
    for (_, pod, _) in &pods {
        insert_pod(&c.api, pod);
    }
    let spawn = |(container, pod, ns): &(String, String, TestNetns)| {
        c.node
            .call("ADD", container, pod, ns.path_str())
            .stdin_json(&conf)
            .spawn()
    };
    let running = spawn(&pods[0]);
    wait_for("the first ADD to run", || {
        calls_running(&daemon, "ADD") == 1
    });
    let waiting = spawn(&pods[1]);
    wait_for("the second ADD to wait", || {
        daemon.log().contains("call waits for a thread")
    });

    let (code, msg) = c
        .node
        .cni_with("ADD", &pods[2].0, &pods[2].1, pods[2].2.path_str(), &conf)
        .err();
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains("already wait") && msg.contains("--max-waiting"),
        "{msg}"
    );

    std::thread::sleep(Duration::from_millis(1500));
    fs::write(&ready, "").unwrap();
    let first = Answer::of(&CniOutput::wait(running));
    assert_attached(&c, &pods[0].1, &pods[0].2, first.ok());
    let (code, msg) = Answer::of(&CniOutput::wait(waiting)).err();
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains("waited") && msg.contains("--max-wait-seconds"),
        "{msg}"
    );
    assert_eq!(calls_running(&daemon, "ADD"), 1, "{}", daemon.log());

    for (_, _, ns) in &pods[1..] {
        assert_eq!(Node::links(ns), Vec::<String>::new());
    }
    let records: Vec<PathBuf> = c.node.records();
    assert_eq!(
        records.len(),
        1,
        "only the first ADD has a record: {records:?}"
    );
    assert_eq!(
        c.node.allocated_ips().len(),
        3,
        "the first ADD's three addresses"
    );
    c.node
        .cni_with("DEL", &pods[0].0, &pods[0].1, pods[0].2.path_str(), &conf)
        .ok();
    c.node.assert_clean(&pods[0].2);
}

/// The config padded with spaces to `len` bytes (JSON allows trailing whitespace).
fn padded(conf: &Value, len: usize) -> Vec<u8> {
    let mut bytes = conf.to_string().into_bytes();
    assert!(bytes.len() <= len);
    bytes.resize(len, b' ');
    bytes
}

/// A stdin of exactly the CNI limit (1 MiB) works through the daemon as in thin mode; one byte
/// more gets thin mode's answer byte for byte (code 7 naming the limit), whether the binary or
/// a raw client hands it over, and runs nothing.
#[test]
fn a_stdin_at_the_limit_works_through_the_daemon_and_one_byte_more_is_refused_alike() {
    require_root!();
    let limit = multinet_cni::MAX_STDIN_BYTES;
    let c = cluster();
    let daemon = c.daemon("daemon.log");
    let (thick_pod, thin_pod) = (TestNetns::new(), TestNetns::new());
    insert_pod(&c.api, "db");
    let run = |command: &str, container: &str, pod: &str, ns: &TestNetns, stdin: Vec<u8>| {
        let call = c
            .node
            .call(command, container, pod, ns.path_str())
            .stdin(stdin);
        Answer::of(&call.run())
    };

    let added = run("ADD", "c1", "web", &thick_pod, padded(&c.conf, limit));
    assert_attached(&c, "web", &thick_pod, added.ok());
    assert_eq!(
        done_containers(&daemon, "ADD", 0),
        BTreeSet::from(["c1".into()])
    );
    let added = run("ADD", "c2", "db", &thin_pod, padded(&c.thin_conf(), limit));
    assert_attached(&c, "db", &thin_pod, added.ok());
    assert_eq!(
        daemon.calls_done("ADD").len(),
        1,
        "the thin call ran in the binary"
    );

    let thin_answer = multinet_cni::error_bytes(
        &multinet_cni::read_stdin(&vec![b' '; limit + 1][..]).unwrap_err(),
        multinet_cni::CniVersion::LATEST,
    );
    let over = padded(&c.conf, limit + 1);
    let calls = daemon.log().matches("call done").count();
    let pod = TestNetns::new();
    let call = c
        .node
        .call("ADD", "c3", "web", pod.path_str())
        .stdin(over.clone());
    let out = call.run();
    assert_eq!(out.code(), 1);
    assert_eq!(out.stdout.as_bytes(), &thin_answer[..]);
    let (code, msg) = Answer::of(&out).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains(&limit.to_string()), "{msg}");
    // A client that sends it all, and more, is read to its end and answered alike.
    for extra in [0, 3 << 20] {
        let mut stdin = over.clone();
        stdin.resize(over.len() + extra, b' ');
        let (code, stdout) = hand_to_daemon(&c.socket, &call.vars(), &stdin);
        assert_eq!(code, 1);
        assert_eq!(stdout, thin_answer);
    }
    assert_eq!(
        daemon.log().matches("call done").count(),
        calls,
        "nothing ran"
    );
    assert_eq!(Node::links(&pod), Vec::<String>::new());
    assert_eq!(c.node.records().len(), 2, "only c1's and c2's records");

    run("DEL", "c1", "web", &thick_pod, padded(&c.conf, limit)).ok();
    run("DEL", "c2", "db", &thin_pod, padded(&c.thin_conf(), limit)).ok();
    assert_eq!(
        done_containers(&daemon, "DEL", 0),
        BTreeSet::from(["c1".into()])
    );
    assert_eq!(Node::links(&thick_pod), Vec::<String>::new());
    c.node.assert_clean(&thin_pod);
}

/// An HTTP/1.1 request to `addr` from inside `ns` (where the daemon runs); the whole answer.
fn http_in(ns: &TestNetns, addr: &str, request: &str) -> String {
    let (netns, addr, request) = (
        ns.path().to_path_buf(),
        addr.to_string(),
        request.to_string(),
    );
    std::thread::spawn(move || {
        // This thread alone enters the namespace, and ends there.
        let f = fs::File::open(&netns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    })
    .join()
    .unwrap()
}

fn scrape(ns: &TestNetns, addr: &str) -> String {
    let answer = http_in(
        ns,
        addr,
        "GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample `name{labels}` (exactly as exposed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// TCP sockets listening in `ns` owned by process `pid`.
fn tcp_listeners_of(ns: &TestNetns, pid: u32) -> Vec<String> {
    ns.exec_checked(&["ss", "-Htlnp"])
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_move_with_real_calls_and_are_off_unless_asked() {
    require_root!();
    let c = cluster();
    // Off unless asked: a daemon without the flag listens on no TCP port.
    let plain = c.daemon("plain.log");
    assert_eq!(
        tcp_listeners_of(&c.node.ns, plain.pid()),
        Vec::<String>::new()
    );
    drop(plain);
    wait_for("the first daemon's socket to be free", || {
        std::os::unix::net::UnixStream::connect(&c.socket).is_err()
    });

    let addr = "127.0.0.1:19091";
    let log = c.node.path("metrics-daemon.log");
    let mut cmd = daemon_command(&c.node, &c.socket, &log, "info");
    cmd.args(["--metrics-address", addr]);
    let daemon = Daemon::spawn(cmd, &log);
    wait_for("the metrics listener", || {
        !tcp_listeners_of(&c.node.ns, daemon.pid()).is_empty()
    });
    let before = scrape(&c.node.ns, addr);
    assert_eq!(
        sample(
            &before,
            "multinet_cni_requests_total{verb=\"ADD\",code=\"0\"}"
        ),
        0.0
    );

    let pod = TestNetns::new();
    let added = c.thick("ADD", "c1", "web", &pod);
    assert_attached(&c, "web", &pod, added.ok());
    // A second ADD for the same container is refused (code 7 here: ADD twice without DEL).
    let twice = c.thick("ADD", "c1", "web", &pod);
    assert_ne!(twice.code, 0, "{:?}", twice.stdout);
    let code = twice.stdout["code"].as_u64().unwrap();
    let during = scrape(&c.node.ns, addr);
    for (series, want) in [
        ("multinet_cni_requests_total{verb=\"ADD\",code=\"0\"}", 1.0),
        (
            &format!("multinet_cni_requests_total{{verb=\"ADD\",code=\"{code}\"}}") as &str,
            1.0,
        ),
        (
            "multinet_cni_request_duration_seconds_count{verb=\"ADD\"}",
            2.0,
        ),
        ("multinet_cni_requests_in_flight{verb=\"ADD\"}", 0.0),
        ("multinet_attachments{state=\"added\"}", 3.0),
        ("multinet_attachment_records", 1.0),
        (
            "multinet_delegate_duration_seconds_count{type=\"macvlan\",verb=\"ADD\",result=\"ok\"}",
            2.0,
        ),
        (
            "multinet_delegate_duration_seconds_count{type=\"bridge\",verb=\"ADD\",result=\"ok\"}",
            1.0,
        ),
        (
            "multinet_api_requests_total{request=\"get_pod\",result=\"ok\"}",
            1.0,
        ),
        (
            "multinet_api_requests_total{request=\"patch_pod_status\",result=\"ok\"}",
            1.0,
        ),
        (
            // The two NADs and the cluster network, looked up as a NAD first.
            "multinet_api_request_duration_seconds_count{request=\"get_nad\"}",
            3.0,
        ),
    ] {
        assert_eq!(sample(&during, series), want, "{series} in\n{during}");
    }
    // Each host-local range the pod's networks use: its size and the one address it took.
    for (network, range) in [
        ("cluster", "10.99.0.1-10.99.0.254"),
        ("data", "10.10.0.1-10.10.0.254"),
        ("storage", "10.20.0.1-10.20.0.254"),
    ] {
        let labels = format!("{{network=\"{network}\",range=\"{range}\"}}");
        let size = sample(&during, &format!("multinet_host_local_range_size{labels}"));
        let used = sample(&during, &format!("multinet_host_local_range_used{labels}"));
        assert_eq!((size, used), (253.0, 1.0), "{network} in\n{during}");
    }

    c.thick("DEL", "c1", "web", &pod).ok();
    let after = scrape(&c.node.ns, addr);
    for (series, want) in [
        ("multinet_cni_requests_total{verb=\"DEL\",code=\"0\"}", 1.0),
        (
            "multinet_cni_request_duration_seconds_count{verb=\"DEL\"}",
            1.0,
        ),
        ("multinet_attachments{state=\"added\"}", 0.0),
        ("multinet_attachment_records", 0.0),
        // No record uses the range any more: it is not reported.
        (
            "multinet_host_local_range_used{network=\"data\",range=\"10.10.0.1-10.10.0.254\"}",
            0.0,
        ),
        (
            "multinet_delegate_duration_seconds_count{type=\"macvlan\",verb=\"DEL\",result=\"ok\"}",
            2.0,
        ),
    ] {
        assert_eq!(sample(&after, series), want, "{series} in\n{after}");
    }
    c.node.assert_clean(&pod);

    // The metrics port serves metrics only: no call can be made through it.
    let other = http_in(
        &c.node.ns,
        addr,
        "GET / HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n",
    );
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let post = http_in(
        &c.node.ns,
        addr,
        "POST /metrics HTTP/1.1\r\nHost: n\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let wire = http_in(&c.node.ns, addr, "MNT1\0\0\0\x02[]");
    assert!(!wire.contains("cniVersion"), "{wire}");
    let last = scrape(&c.node.ns, addr);
    let calls: f64 = last
        .lines()
        .filter(|l| l.starts_with("multinet_cni_requests_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(calls, 3.0, "{last}");
}
