//! `multinet doctor` on a real node: the binary inside a node namespace with the API fixture, a
//! pod attached by a real ADD, then each part of the node broken once; the check that watches it
//! fails (or warns) and its line names the fix, and `--json` parses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;

use common::Node;
use multinet_api_fixture::ApiFixture;
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

struct Doctor {
    code: i32,
    json: Value,
}

impl Doctor {
    fn check(&self, name: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {:#}", self.json))
    }

    fn status(&self, name: &str) -> &str {
        self.check(name)["status"].as_str().unwrap()
    }

    /// The only failed checks, by name.
    fn failed(&self) -> Vec<&str> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    /// Asserts that exactly `name` failed, its detail says `detail` and its fix says `fix`.
    fn fails(&self, name: &str, detail: &str, fix: &str) {
        assert_eq!(self.code, 1, "{:#}", self.json);
        assert_eq!(self.json["ok"], false);
        assert_eq!(self.failed(), vec![name], "{:#}", self.json);
        let c = self.check(name);
        assert!(c["detail"].as_str().unwrap().contains(detail), "{c:#}");
        assert!(c["fix"].as_str().unwrap().contains(fix), "{c:#}");
    }

    fn passes(&self) {
        assert_eq!(self.code, 0, "{:#}", self.json);
        assert_eq!(self.failed(), Vec::<&str>::new(), "{:#}", self.json);
    }
}

struct Setup {
    node: Node,
    api: ApiFixture,
    conf: Value,
    pod: TestNetns,
}

impl Setup {
    /// A node whose pod `team/web` has `team/data` (macvlan) besides the cluster network (bridge),
    /// added by a real ADD; multinet's config is the folder's first file.
    fn new() -> Setup {
        let node = Node::new("1.0.0");
        let (api, mut conf) = node.start_api();
        common::insert_team_nads(&node, &api);
        api.insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "data"}},
            "spec": {"containers": [{"name": "app", "image": "app"}]}
        }))
        .unwrap();
        fs::write(node.path("ready"), "").unwrap();
        conf["readinessindicatorfile"] = json!(node.path("ready"));
        let setup = Setup {
            pod: TestNetns::new(),
            node,
            api,
            conf,
        };
        setup.write_conf(&setup.conf);
        let answer = setup
            .node
            .cni_with("ADD", "c1", "web", setup.pod.path_str(), &setup.conf);
        answer.ok();
        setup
    }

    fn write_conf(&self, conf: &Value) {
        fs::write(self.node.path("net.d/00-multinet.conf"), conf.to_string()).unwrap();
    }

    fn run(&self, extra: &[&str]) -> std::process::Output {
        let bin = env!("CARGO_BIN_EXE_multinet");
        let net_d = self.node.path("net.d");
        let sriov = self.node.path("sriov");
        let state = format!("MULTINET_SRIOV_STATE_DIR={}", sriov.display());
        let sysfs = format!("MULTINET_SYSFS_ROOT={}", self.node.path("sys").display());
        let mut cmd = vec![
            "env",
            &state,
            &sysfs,
            bin,
            "doctor",
            "--cni-conf-dir",
            net_d.to_str().unwrap(),
            "--cni-path",
            "/nonexistent",
        ];
        cmd.extend_from_slice(extra);
        self.node.ns.exec(&cmd)
    }

    fn doctor(&self, extra: &[&str]) -> Doctor {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        Doctor {
            code: out.status.code().unwrap_or(-1),
            json: serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!(
                    "--json printed no JSON ({e}): {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            }),
        }
    }
}

fn move_file(from: &Path, to: &Path) {
    fs::rename(from, to).unwrap();
}

#[test]
fn each_node_check_fails_once_and_names_its_fix() {
    require_root!();
    let s = Setup::new();
    let healthy = s.doctor(&[]);
    healthy.passes();
    for (name, status) in [
        ("runtime config", "ok"),
        ("config parses", "ok"),
        ("readiness file", "ok"),
        ("API", "ok"),
        ("may get pods", "ok"),
        (
            "may get network-attachment-definitions.k8s.cni.cncf.io",
            "ok",
        ),
        (
            "may list network-attachment-definitions.k8s.cni.cncf.io",
            "ok",
        ),
        ("may patch pods/status", "ok"),
        ("may create events", "ok"),
        ("may get resourceclaims.resource.k8s.io", "ok"),
        ("may list resourceslices.resource.k8s.io", "ok"),
        ("may update resourceclaims.resource.k8s.io/status", "ok"),
        ("cluster network", "ok"),
        ("plugins of cluster", "ok"),
        ("plugins of team/data", "ok"),
        ("daemon", "skip"),
        ("records", "ok"),
        ("temp files", "ok"),
        ("VF pools", "skip"),
    ] {
        assert_eq!(healthy.status(name), status, "{name}: {:#}", healthy.json);
    }
    // The permissions were asked of the API server itself.
    let reviews: Vec<Value> = s
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/selfsubjectaccessreviews"))
        .map(|r| r.body_json().unwrap()["spec"]["resourceAttributes"].clone())
        .collect();
    assert_eq!(reviews.len(), 8, "{reviews:?}");
    assert_eq!(
        reviews[3],
        json!({"verb": "patch", "group": "", "resource": "pods", "subresource": "status"})
    );

    // Another network's config sorts first: the runtime never calls multinet.
    let first = s.node.path("net.d/00-flannel.conflist");
    fs::write(
        &first,
        json!({"cniVersion": "1.0.0", "name": "flannel", "plugins": [{"type": "flannel"}]})
            .to_string(),
    )
    .unwrap();
    let d = s.doctor(&[]);
    d.fails("runtime config", "00-flannel.conflist", "multinet install");
    assert_eq!(d.status("other checks"), "skip");
    fs::remove_file(&first).unwrap();

    // multinet's config does not parse.
    let mut bad = s.conf.clone();
    bad["namespaceIsolation"] = json!("yes");
    s.write_conf(&bad);
    s.doctor(&[])
        .fails("config parses", "namespaceIsolation", "00-multinet.conf");
    s.write_conf(&s.conf);

    // The cluster network is not ready.
    fs::remove_file(s.node.path("ready")).unwrap();
    s.doctor(&[])
        .fails("readiness file", "does not exist", "cluster network's pods");
    fs::write(s.node.path("ready"), "").unwrap();

    // The cluster network's config is gone.
    let cluster = s.node.path("net.d/10-cluster.conflist");
    let aside = s.node.path("10-cluster.conflist");
    move_file(&cluster, &aside);
    s.doctor(&[])
        .fails("cluster network", "cluster", "install the cluster network");
    move_file(&aside, &cluster);

    // A recorded network's plugin is missing, then not executable.
    let macvlan = s.node.bin().join("macvlan");
    fs::remove_file(&macvlan).unwrap();
    s.doctor(&[])
        .fails("plugins of team/data", "macvlan", "install the plugin");
    fs::write(&macvlan, "#!/bin/sh\n").unwrap();
    s.doctor(&[])
        .fails("plugins of team/data", "not executable", "chmod 0755");
    fs::remove_file(&macvlan).unwrap();
    std::os::unix::fs::symlink("/usr/lib/cni/macvlan", &macvlan).unwrap();

    // The configured daemon does not answer.
    let mut thick = s.conf.clone();
    thick["daemonSocket"] = json!(s.node.path("daemon.sock"));
    s.write_conf(&thick);
    s.doctor(&[])
        .fails("daemon", "daemon.sock", "multinet daemon");
    // A real daemon on that socket: the check passes, naming the socket.
    {
        let socket = s.node.path("daemon.sock");
        let log = s.node.path("daemon.log");
        let mut daemon = std::process::Command::new("ip")
            .args(["netns", "exec", s.node.ns.name()])
            .arg(env!("CARGO_BIN_EXE_multinet"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--log-file")
            .arg(&log)
            .env_remove("LD_LIBRARY_PATH")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let answer = s.doctor(&[]);
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        answer.passes();
        assert_eq!(answer.status("daemon"), "ok", "{:#}", answer.json);
        let detail = answer.check("daemon")["detail"].as_str().unwrap();
        assert!(detail.contains("daemon.sock"), "{detail}");
    }
    s.write_conf(&s.conf);

    // A pod whose sandbox went without DEL leaves a stale record.
    {
        let gone = TestNetns::new();
        s.node
            .cni_with("ADD", "c2", "web", gone.path_str(), &s.conf)
            .ok();
    }
    s.doctor(&[]).fails("records", "c2", "CNI GC");
    s.node.cni_with("DEL", "c2", "web", "", &s.conf).ok();

    // A writer killed mid-write left a temp file: a warning, not a failure.
    let temp = multinet_cni::files::temp_path(&s.node.path("cni/attachments/c9.json"));
    fs::write(&temp, "{").unwrap();
    let d = s.doctor(&[]);
    assert_eq!(d.code, 0, "{:#}", d.json);
    assert_eq!(d.status("temp files"), "warn");
    assert!(
        d.check("temp files")["fix"]
            .as_str()
            .unwrap()
            .contains("GC")
    );
    fs::remove_file(&temp).unwrap();

    // A PF with two VFs, one held by the pod: the pool and the VF's owner by pod name.
    let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni)
        .pf(PfSpec::new("0000:3b:00.0", "ens1f0")
            .vf("0000:3b:02.0", "ens1f0v0")
            .vf("0000:3b:02.1", "ens1f0v1"))
        .build();
    std::os::unix::fs::symlink(sysfs.root(), s.node.path("sys")).unwrap();
    let held = s.node.path("sriov/pci/0000:3b:02.0");
    fs::create_dir_all(held.parent().unwrap()).unwrap();
    fs::write(
        &held,
        json!({"pci": "0000:3b:02.0", "containerID": "c1", "ifname": "net5",
               "netns": s.pod.path_str(), "pid": 1, "created_unix": 0})
        .to_string(),
    )
    .unwrap();
    let d = s.doctor(&[]);
    d.passes();
    let pools = d.check("VF pools")["detail"].as_str().unwrap();
    assert!(
        pools.contains("0000:3b:00.0 (ens1f0): 2 VFs, 1 held"),
        "{pools}"
    );
    assert!(pools.contains("0000:3b:02.0 -> team/web net5"), "{pools}");
    fs::remove_file(&held).unwrap();

    // A VF held for a pod whose netns is gone.
    let record = s.node.path("sriov/pci/0000:3b:02.1");
    fs::write(
        &record,
        json!({"pci": "0000:3b:02.1", "containerID": "c7", "ifname": "net1",
               "netns": "/var/run/netns/gone-for-good", "pid": 1, "created_unix": 0})
        .to_string(),
    )
    .unwrap();
    s.doctor(&[])
        .fails("VF pools", "0000:3b:02.1 held by container c7", "CNI GC");
    fs::remove_file(&record).unwrap();

    // The API is unreachable, then it denies one permission multinet needs.
    s.api.faults().stop_listening().unwrap();
    let d = s.doctor(&[]);
    assert_eq!(d.failed(), vec!["API"], "{:#}", d.json);
    assert_eq!(
        d.status("cluster network"),
        "ok",
        "from confDir without the API"
    );
    assert!(
        d.check("API")["fix"]
            .as_str()
            .unwrap()
            .contains("kubeconfig")
    );
    s.api.faults().restart().unwrap();
    s.api.deny_access("patch", "pods/status");
    s.doctor(&[])
        .fails("may patch pods/status", "denied", "deploy/rbac.yaml");

    // The human output: one line per check, each failure with its fix, exit 1.
    let out = s.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let fail_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fail_lines.len(), 1, "{text}");
    assert!(fail_lines[0].contains("may patch pods/status") && fail_lines[0].contains("-> fix: "));
    assert!(text.lines().last().unwrap().contains("1 failed"), "{text}");
}

#[test]
fn a_pod_is_followed_from_its_annotation_to_its_interfaces() {
    require_root!();
    let s = Setup::new();
    let d = s.doctor(&["--pod", "team/web"]);
    d.passes();
    for name in [
        "pod annotation",
        "pod networks",
        "pod record",
        "pod interfaces",
        "pod CHECK",
    ] {
        assert_eq!(d.status(name), "ok", "{name}: {:#}", d.json);
    }
    assert!(
        d.check("pod networks")["detail"]
            .as_str()
            .unwrap()
            .contains("team/data (macvlan)"),
        "{:#}",
        d.json
    );
    assert!(
        d.check("pod interfaces")["detail"]
            .as_str()
            .unwrap()
            .contains("eth0, net1"),
        "{:#}",
        d.json
    );

    // A pod that is not there.
    let d = s.doctor(&["--pod", "team/nobody"]);
    assert_eq!(
        d.failed(),
        vec!["pod annotation", "pod record"],
        "{:#}",
        d.json
    );
    assert!(
        d.check("pod record")["fix"]
            .as_str()
            .unwrap()
            .contains("ADD")
    );

    // Its NAD was deleted.
    let nad = s
        .api
        .delete("NetworkAttachmentDefinition", "team", "data")
        .unwrap();
    s.doctor(&["--pod", "team/web"]).fails(
        "pod networks",
        "not found",
        "create the NetworkAttachmentDefinition",
    );
    s.api.insert(nad).unwrap();

    // Its address was removed behind multinet's back: the links match, CHECK does not.
    let addr = s.pod.ip_json(&["-4", "addr", "show", "net1"])[0]["addr_info"][0].clone();
    let cidr = format!("{}/{}", addr["local"].as_str().unwrap(), addr["prefixlen"]);
    s.pod.ip(&["addr", "del", &cidr, "dev", "net1"]);
    s.doctor(&["--pod", "team/web"])
        .fails("pod CHECK", "net1", "delete the pod");
    s.pod.ip(&["addr", "add", &cidr, "dev", "net1"]);

    // Its MAC changed, then the interface is gone.
    s.pod
        .ip(&["link", "set", "net1", "address", "02:aa:bb:cc:dd:ee"]);
    s.doctor(&["--pod", "team/web"]).fails(
        "pod interfaces",
        "net1 has MAC 02:aa:bb:cc:dd:ee",
        "delete the pod",
    );
    s.pod.ip(&["link", "del", "net1"]);
    s.doctor(&["--pod", "team/web"])
        .fails("pod interfaces", "net1 is missing", "delete the pod");
}
