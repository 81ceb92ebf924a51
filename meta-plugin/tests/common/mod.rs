//! A node for end-to-end tests: a "node" network namespace with an uplink, a local cluster folder
//! (pods and NADs as YAML), a CNI_PATH, and the multinet binary called exactly as a runtime calls
//! it. Everything lives in the test's own namespaces and temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use multinet_testbed::{CniCall, CniOutput, TestNetns};
use serde_json::{Value, json};

pub const VERSIONS: &[&str] = &["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub struct Node {
    pub ns: TestNetns,
    pub dir: tempfile::TempDir,
    pub version: String,
}

pub struct Answer {
    pub code: i32,
    pub stdout: Value,
    pub stderr: String,
}

impl Answer {
    /// The answer of a call whose stdout must be empty or JSON.
    pub fn of(out: &CniOutput) -> Answer {
        Answer {
            code: out.code(),
            stdout: out.json(),
            stderr: out.stderr.clone(),
        }
    }

    /// The answer of a call that may print anything: stdout that is not JSON is kept as a string.
    pub fn lenient(out: &CniOutput) -> Answer {
        Answer {
            code: out.code(),
            stdout: serde_json::from_str(&out.stdout)
                .unwrap_or_else(|_| Value::String(out.stdout.clone())),
            stderr: out.stderr.clone(),
        }
    }

    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.code, 0,
            "CNI call failed: {} {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// The CNI error code and message of a failed call.
    pub fn err(&self) -> (u64, String) {
        assert_ne!(
            self.code, 0,
            "CNI call unexpectedly succeeded: {}",
            self.stdout
        );
        (
            self.stdout["code"].as_u64().unwrap_or(0),
            self.stdout["msg"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl Node {
    /// A node with uplinks `up0` and `up1`, reference plugins in CNI_PATH and a bridge cluster
    /// network, every config in `version`.
    pub fn new(version: &str) -> Node {
        let ns = TestNetns::new();
        for up in ["up0", "up1"] {
            let peer = format!("{up}p");
            ns.ip(&["link", "add", up, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", up, "up"]);
            ns.ip(&["link", "set", &peer, "up"]);
        }
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            ns,
            dir,
            version: version.to_string(),
        };
        fs::create_dir_all(node.bin()).unwrap();
        for p in [
            "bridge",
            "macvlan",
            "host-local",
            "static",
            "loopback",
            "portmap",
            "tuning",
        ] {
            let src = Path::new("/usr/lib/cni").join(p);
            assert!(
                src.exists(),
                "{} missing: install containernetworking-plugins",
                src.display()
            );
            std::os::unix::fs::symlink(&src, node.bin().join(p)).unwrap();
        }
        for d in ["cluster/pods", "cluster/nads", "net.d", "cni", "ipam"] {
            fs::create_dir_all(node.path(d)).unwrap();
        }
        let cluster = json!({
            "cniVersion": node.delegate_version(), "name": "cluster",
            "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": true,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                                  "dataDir": node.path("ipam")}}]
        });
        fs::write(node.path("net.d/10-cluster.conflist"), cluster.to_string()).unwrap();
        node
    }

    /// The version delegate configs use: Debian's reference plugins stop at 1.0.0, so a 1.1.0
    /// runtime talks to multinet in 1.1.0 and multinet to them in 1.0.0.
    pub fn delegate_version(&self) -> &str {
        if self.version == "1.1.0" {
            "1.0.0"
        } else {
            &self.version
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    /// Puts our own binary into CNI_PATH under a delegate's name (multi-call install).
    pub fn use_own(&self, plugin: &str) {
        let link = self.bin().join(plugin);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_multinet"), link).unwrap();
    }

    pub fn conf(&self) -> Value {
        json!({
            "cniVersion": self.version, "name": "multinet", "type": "multinet",
            "clusterNetwork": "cluster",
            "confDir": self.path("net.d"), "cniDir": self.path("cni"),
            "binDir": self.bin(), "localDir": self.path("cluster"),
            "logLevel": "debug", "logFile": self.path("multinet.log")
        })
    }

    pub fn add_nad(&self, name: &str, config: Value) {
        let text = format!(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  config: '{}'\n",
            config.to_string().replace('\'', "''")
        );
        fs::write(self.path(&format!("cluster/nads/{name}.yaml")), text).unwrap();
    }

    pub fn remove_nad(&self, name: &str) {
        fs::remove_file(self.path(&format!("cluster/nads/{name}.yaml"))).unwrap();
    }

    /// A macvlan NAD on `master` with host-local addressing in `subnet`.
    pub fn macvlan_nad(&self, name: &str, master: &str, subnet: &str) -> Value {
        json!({"cniVersion": self.delegate_version(), "type": "macvlan", "master": master, "mode": "bridge",
               "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                        "dataDir": self.path("ipam")}, "name": name})
    }

    pub fn add_pod(&self, name: &str, networks: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team\n  uid: uid-{name}\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '{}'\n",
            networks.replace('\'', "''")
        );
        fs::write(self.path(&format!("cluster/pods/{name}.yaml")), text).unwrap();
    }

    pub fn network_status(&self, pod: &str) -> Vec<Value> {
        let text = fs::read_to_string(self.path(&format!("cluster/pods/{pod}.yaml"))).unwrap();
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        let s = doc["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap_or("[]")
            .to_string();
        serde_json::from_str(&s).unwrap()
    }

    /// One CNI call of the multinet binary inside the node namespace.
    pub fn cni(
        &self,
        command: &str,
        container: &str,
        pod: &str,
        netns: Option<&TestNetns>,
    ) -> Answer {
        let netns = netns.map(|n| n.path_str()).unwrap_or("");
        Answer::of(&self.call(command, container, pod, netns).run())
    }

    /// One CNI call with `conf` on stdin.
    pub fn cni_with(
        &self,
        command: &str,
        container: &str,
        pod: &str,
        netns: &str,
        conf: &Value,
    ) -> Answer {
        let call = self.call(command, container, pod, netns).stdin_json(conf);
        Answer::of(&call.run())
    }

    /// A CNI call of the multinet binary inside the node namespace, as a runtime makes it for
    /// `pod` of namespace `team`, with this node's config on stdin.
    pub fn call(&self, command: &str, container: &str, pod: &str, netns: &str) -> CniCall {
        CniCall::new(env!("CARGO_BIN_EXE_multinet"), command)
            .in_netns(&self.ns)
            .container_id(container)
            .netns(netns)
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
            ))
            .path(self.bin())
            .stdin_json(&self.conf())
    }

    /// Link names in a namespace, without lo.
    pub fn links(ns: &TestNetns) -> Vec<String> {
        Self::link_details(ns)
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// `ip -d link show` of every link in a namespace but lo.
    pub fn link_details(ns: &TestNetns) -> Vec<Value> {
        let mut links = ns.ip_json(&["-d", "link", "show"]);
        let links = links.as_array_mut().unwrap();
        links.retain(|l| l["ifname"] != "lo");
        std::mem::take(links)
    }

    /// Files host-local left that hold an allocation (not its lock or round-robin cursor).
    pub fn allocated_ips(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        let name = p.file_name().unwrap().to_string_lossy().to_string();
                        if name != "lock" && !name.starts_with("last_reserved_ip") {
                            out.push(p);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path("ipam"), &mut out);
        out
    }

    /// Files in the attachment store (records, journals, temp files); records set aside as
    /// unusable live in its `corrupt/` folder and are not counted.
    pub fn records(&self) -> Vec<PathBuf> {
        fs::read_dir(self.path("cni/attachments"))
            .map(|e| {
                e.flatten()
                    .map(|e| e.path())
                    .filter(|p| !p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts the Kubernetes API fixture inside the node's namespace (where the plugin runs; the
    /// fixture's threads inherit the namespace of the thread that starts them) and returns it with
    /// this node's config switched from the local folder to the API.
    pub fn start_api(&self) -> (multinet_api_fixture::ApiFixture, Value) {
        let node_ns = multinet_netlink::Netns::open(self.ns.path()).unwrap();
        let api = multinet_netlink::run_in_netns(
            &node_ns,
            multinet_api_fixture::ApiFixture::start_blocking,
        )
        .unwrap()
        .unwrap();
        let kubeconfig = self.path("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        let mut conf = self.conf();
        conf.as_object_mut().unwrap().remove("localDir");
        conf["kubeconfig"] = json!(kubeconfig);
        conf["apiTimeoutSeconds"] = json!(5);
        (api, conf)
    }

    /// A local-folder NAD `team/<name>` naming device resource `resource`, whose delegate is a
    /// macvlan on up0 (10.30.0.0/24) standing in for an SR-IOV plugin: what matters is the
    /// `deviceID` it is given.
    pub fn add_resource_nad(&self, name: &str, resource: &str) {
        let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "team",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
            "spec": {"config": self.macvlan_nad(name, "up0", "10.30.0.0/24").to_string()}});
        fs::write(
            self.path(&format!("cluster/nads/{name}.json")),
            nad.to_string(),
        )
        .unwrap();
    }

    /// The `deviceID` container `container`'s attachment record gave `network` (its second
    /// attachment: the first network after the cluster network).
    pub fn recorded_device_id(&self, container: &str, network: &str) -> Value {
        let path = self.path(&format!("cni/attachments/{container}.json"));
        let record: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let attachment = &record["attachments"][1];
        assert_eq!(attachment["network"], network);
        attachment["conf"]["deviceID"].clone()
    }

    /// Everything a DEL must have released: no link in the pod, no IP, no record.
    pub fn assert_clean(&self, pod_ns: &TestNetns) {
        assert_eq!(
            Self::links(pod_ns),
            Vec::<String>::new(),
            "links left in the pod"
        );
        assert_eq!(
            self.allocated_ips(),
            Vec::<PathBuf>::new(),
            "IPs left allocated"
        );
        assert_eq!(
            self.records(),
            Vec::<PathBuf>::new(),
            "attachment records left"
        );
    }
}

/// The NADs most tests select: `team/data` (macvlan on up0, 10.10.0.0/24) and `team/storage`
/// (macvlan on up1, 10.20.0.0/24), served by `api`.
pub fn insert_team_nads(node: &Node, api: &multinet_api_fixture::ApiFixture) {
    for (name, master, subnet) in [
        ("data", "up0", "10.10.0.0/24"),
        ("storage", "up1", "10.20.0.0/24"),
    ] {
        api.insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"config": node.macvlan_nad(name, master, subnet).to_string()}
        }))
        .unwrap();
    }
}

/// A `multinet daemon` a test started; killed if the test ends without stopping it.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// SIGTERM; the daemon must exit with success.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.0.wait().unwrap();
        assert!(status.success(), "daemon exit: {status:?}");
    }
}

/// `multinet daemon` with watch caches, in the node's network namespace only (nsenter keeps the
/// test's mount namespace, so a netns a runtime mounts later is seen, as a DaemonSet sees it with
/// HostToContainer): socket `run/multinet.sock`, the node's kubeconfig, node name `node_name`,
/// debug log at `log`, plus `extra` flags and `env`.
pub fn cached_daemon(
    node: &Node,
    node_name: &str,
    log: &Path,
    extra: &[String],
    env: &[(&str, PathBuf)],
) -> Daemon {
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", node.ns.path_str()))
        .arg(env!("CARGO_BIN_EXE_multinet"))
        .arg("daemon")
        .arg(format!(
            "--socket={}",
            node.path("run/multinet.sock").display()
        ))
        .arg(format!("--log-file={}", log.display()))
        .arg("--log-level=debug")
        .arg(format!(
            "--kubeconfig={}",
            node.path("kubeconfig").display()
        ))
        .arg(format!("--node-name={node_name}"))
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("LD_LIBRARY_PATH")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Daemon(child)
}

/// The flags of a `multinet daemon` serving DRA driver `driver`, with its socket, the kubelet's
/// plugin folders and the kubeconfig all under `dir` (`run/multinet.sock`, `registry`,
/// `plugins`, `kubeconfig`).
pub fn dra_daemon_flags(dir: &Path, driver: &str) -> Vec<String> {
    vec![
        format!("--socket={}", dir.join("run/multinet.sock").display()),
        format!("--dra-driver={driver}"),
        format!("--kubelet-registry-dir={}", dir.join("registry").display()),
        format!("--kubelet-plugins-dir={}", dir.join("plugins").display()),
        format!("--kubeconfig={}", dir.join("kubeconfig").display()),
    ]
}
