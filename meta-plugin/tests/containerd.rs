//! A real containerd runs a pod sandbox the way a kubelet asks for it (CRI RunPodSandbox), and
//! so calls multinet itself: the binary from its CNI bin folder, which hands the call to the
//! daemon. While the sandbox runs, the pod's networks annotation changes in the API and the
//! daemon hot-plugs the new network into containerd's netns; StopPodSandbox then makes
//! containerd call DEL, which takes everything. The pod's image is a static pause program built
//! here and imported, so nothing is pulled from a registry.
//!
//! Needs root, containerd, runc and gcc (the test command installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::Node;
use multinet_cri_test::runtime::runtime_service_client::RuntimeServiceClient;
use multinet_cri_test::runtime::{
    PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest,
};
use multinet_testbed::require_root;
use serde_json::{Value, json};

const NODE: &str = "node-1";
const IMAGE: &str = "multinet.test/pause:1";
const PATIENCE: Duration = Duration::from_secs(60);

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// An OCI image archive holding one static `/pause` (it sleeps until SIGTERM), named IMAGE.
fn pause_image(dir: &Path) -> PathBuf {
    let src = dir.join("pause.c");
    fs::write(
        &src,
        "#include <signal.h>\n#include <unistd.h>\nstatic void done(int s) { (void)s; _exit(0); }\n\
         int main(void) { signal(SIGTERM, done); signal(SIGINT, done); for (;;) pause(); }\n",
    )
    .unwrap();
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    run(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("pause"))
        .arg(&src));
    let layout = dir.join("image");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let blob = |path: &Path| -> (String, u64) {
        let digest = sha256(path);
        fs::copy(path, blobs.join(&digest)).unwrap();
        (digest, fs::metadata(path).unwrap().len())
    };
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("pause"));
    let (layer_digest, layer_size) = blob(&layer);
    let write = |name: &str, v: Value| -> (String, u64) {
        let path = dir.join(name);
        fs::write(&path, v.to_string()).unwrap();
        blob(&path)
    };
    let (config_digest, config_size) = write(
        "config.json",
        json!({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/pause"]},
               "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]}}),
    );
    let (manifest_digest, manifest_size) = write(
        "manifest.json",
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": format!("sha256:{config_digest}"), "size": config_size},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": format!("sha256:{layer_digest}"), "size": layer_size}]}),
    );
    fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"), "size": manifest_size,
            "annotations": {"io.containerd.image.name": IMAGE}}]})
        .to_string(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("pause-image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    archive
}

/// containerd in the node's namespace, with its own state, socket and CNI folders. Its pods get
/// no AppArmor profile and no oom_score_adj below containerd's own (a test machine may allow
/// neither); nothing else differs from a node's.
struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn containerd(node: &Node, cni_bin: &Path, cni_conf: &Path) -> Containerd {
    let dir = node.path("containerd");
    fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("containerd.sock");
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{sock}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{IMAGE}\"\n  disable_apparmor = true\n  restrict_oom_score_adj = true\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{bin}\"\n  conf_dir = \"{conf}\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
            bin = cni_bin.display(),
            conf = cni_conf.display(),
        ),
    )
    .unwrap();
    let log = fs::File::create(dir.join("containerd.log")).unwrap();
    // nsenter, not `ip netns exec`: containerd stays in the node's mount namespace, so the netns
    // it mounts for a pod is seen by the daemon (as hostPath /run/netns with HostToContainer).
    let child = Command::new("nsenter")
        .arg(format!("--net={}", node.ns.path_str()))
        .args(["containerd", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd: install containerd and runc (the test command does)");
    let c = Containerd { child, socket };
    let deadline = Instant::now() + PATIENCE;
    while !c.socket.exists() {
        assert!(Instant::now() < deadline, "containerd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

/// Interface names in the netns at `path` (not lo).
fn links_in(path: &str) -> Vec<String> {
    let out = run(Command::new("nsenter")
        .arg(format!("--net={path}"))
        .args(["ip", "-j", "link", "show"]));
    let links: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut names: Vec<String> = links
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| *n != "lo")
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn wait_for(what: &str, log: &Path, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containerd_pod_gets_a_network_hot_plugged_while_it_runs() {
    require_root!();
    let node = Node::new("1.0.0");
    node.use_own("multinet");
    let (api, mut conf) = node.start_api();
    common::insert_team_nads(&node, &api);
    api.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "data"}},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": IMAGE}]}
    }))
    .unwrap();
    let socket = node.path("run/multinet.sock");
    conf["daemonSocket"] = json!(socket);
    let cni_conf = node.path("cni-conf");
    fs::create_dir_all(&cni_conf).unwrap();
    let conf_file = cni_conf.join("00-multinet.conf");
    fs::write(&conf_file, conf.to_string()).unwrap();

    let daemon_log = node.path("daemon.log");
    let hot_plug = [format!("--hot-plug={}", conf_file.display())];
    let daemon = common::cached_daemon(&node, NODE, &daemon_log, &hot_plug, &[]);
    wait_for("the daemon's watches", &daemon_log, || {
        api.open_watches() >= 2
    });

    let image = pause_image(&node.path(""));
    let runtime = containerd(&node, &node.bin(), &cni_conf);
    run(Command::new("ctr")
        .arg("--address")
        .arg(&runtime.socket)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&image));

    // The kubelet's RunPodSandbox: containerd makes the netns and calls multinet's ADD.
    let channel = multinet_dra::testing::channel(&runtime.socket)
        .await
        .unwrap();
    let mut cri = RuntimeServiceClient::new(channel);
    let sandbox = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    uid: "uid-web".into(),
                    namespace: "team".into(),
                    attempt: 0,
                }),
                hostname: "web".into(),
                log_directory: node.path("pod-logs").display().to_string(),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox: {e}; containerd log:\n{}",
                fs::read_to_string(node.path("containerd/containerd.log")).unwrap_or_default()
            )
        })
        .into_inner()
        .pod_sandbox_id;
    // containerd's netns, as multinet recorded it.
    let record: Value = serde_json::from_str(
        &fs::read_to_string(node.path(&format!("cni/attachments/{sandbox}.json"))).unwrap(),
    )
    .unwrap();
    let netns = record["netns"].as_str().unwrap().to_owned();
    assert_eq!(links_in(&netns), ["eth0", "net1"]);
    let calls = fs::read_to_string(&daemon_log).unwrap();
    assert!(
        calls.contains("command=\"ADD\""),
        "containerd's ADD ran in the daemon"
    );

    // The annotation changes while the sandbox runs: storage comes as stor0.
    api.merge_patch(
        "Pod",
        "team",
        "web",
        &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "data,storage@stor0"}}}),
    )
    .unwrap();
    wait_for("stor0 in containerd's netns", &daemon_log, || {
        links_in(&netns) == ["eth0", "net1", "stor0"]
    });

    // The kubelet's StopPodSandbox: containerd calls DEL, which takes the hot-plugged network too.
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    })
    .await
    .unwrap();
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: sandbox,
    })
    .await
    .unwrap();
    assert_eq!(node.records(), Vec::<PathBuf>::new(), "records left");
    assert_eq!(node.allocated_ips(), Vec::<PathBuf>::new(), "IPs left");
    drop(runtime);
    daemon.stop();
}
