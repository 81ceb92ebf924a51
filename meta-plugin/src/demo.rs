//! `multinet demo`: pods in network namespaces get several interfaces, with no cluster. It builds a
//! "node" network namespace (uplinks for two macvlan networks, a fake SR-IOV NIC whose VFs are veth
//! links), loads pods and NADs from examples/ through the local-folder source, and calls the
//! multinet binary exactly as a runtime does (CNI_* variables and a config on stdin). It prints the
//! network-status and interfaces of each pod, pings between pods over every secondary network,
//! deletes the pods and proves nothing is left. pod-b's calls go through a `multinet daemon` (thick
//! mode), pod-a's and pod-c's run in the binary. pod-c's VF comes through DRA: its ResourceClaim
//! and the node's ResourceSlice are read from the folder, the claim is prepared (the VF held for
//! it, as the kubelet's NodePrepareResources has multinet's DRA plugin do) before ADD, keeps the VF
//! after DEL, and is unprepared at the end. Exit status 0 only if all of that held.
//!
//! Everything it creates lives in its own namespaces and its own state folder; the host's links
//! are never touched.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

type DemoResult<T> = Result<T, String>;

const NODE_NS: &str = "mn-demo-node";
const PODS: &[(&str, &str)] = &[
    ("pod-a", "mn-demo-pod-a"),
    ("pod-b", "mn-demo-pod-b"),
    ("pod-c", "mn-demo-pod-c"),
];
/// pod-c's DRA claim and the VF it was allocated.
const DRA_POD: &str = "pod-c";
const DRA_CLAIM: (&str, &str) = ("demo", "pod-c-vf");
const DRA_POD_UID: &str = "0a6a1f4e-0000-4000-8000-00000000000c";
/// The fake NIC: PF netdev and four VF netdevs, with their PCI addresses.
const PF: (&str, &str) = ("mn-pf0", "0000:3b:00.0");
const VFS: &[(&str, &str)] = &[
    ("mn-vf0", "0000:3b:02.0"),
    ("mn-vf1", "0000:3b:02.1"),
    ("mn-vf2", "0000:3b:02.2"),
    ("mn-vf3", "0000:3b:02.3"),
];
const UPLINKS: &[&str] = &["mn-data0", "mn-stor0"];
/// The pod whose calls go through `multinet daemon` (thick mode); the other's run in the binary.
const THICK_POD: &str = "pod-b";

fn run(cmd: &[&str]) -> DemoResult<String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip_json(ns: &str, args: &[&str]) -> DemoResult<Value> {
    let mut cmd = vec!["ip", "-n", ns, "-j"];
    cmd.extend_from_slice(args);
    serde_json::from_str(&run(&cmd)?).map_err(|e| format!("ip -j output: {e}"))
}

/// Names of the links in a namespace.
fn links(ns: &str) -> DemoResult<Vec<String>> {
    Ok(ip_json(ns, &["link", "show"])?
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l.get("ifname").and_then(Value::as_str).map(str::to_string))
        .collect())
}

struct Demo {
    exe: PathBuf,
    examples: PathBuf,
    state: PathBuf,
    keep: bool,
}

impl Demo {
    fn bin_dir(&self) -> PathBuf {
        self.state.join("bin")
    }

    /// Where multinet puts each attachment's device-info file (`deviceInfoDir`).
    fn device_info_dir(&self) -> PathBuf {
        self.state.join("devinfo/cni")
    }

    /// The SR-IOV network's status entry must carry the device info of a VF of the fake NIC (for
    /// the DRA pod, the VF its claim was allocated), and its file must be in `deviceInfoDir`.
    fn check_device_info(&self, pod: &str, status: &[Value]) -> DemoResult<()> {
        let (network, want) = match pod {
            DRA_POD => ("sriov-dra", Some(VFS[3].1)),
            _ => ("sriov-net", None),
        };
        let name = format!("demo/{network}");
        let entry = status
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .ok_or_else(|| format!("pod {pod}: no {name} in network-status"))?;
        let address = entry
            .pointer("/device-info/pci/pci-address")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("pod {pod}: {name} has no device-info: {entry}"))?;
        if !VFS.iter().any(|(_, bdf)| *bdf == address) {
            return Err(format!("pod {pod}: device-info names {address}, not a VF"));
        }
        if want.is_some_and(|w| w != address) {
            return Err(format!(
                "pod {pod}: got VF {address}, not the claim's {}",
                VFS[3].1
            ));
        }
        let file = self.device_info_dir().join(format!(
            "{network}-demo-{pod}_{}",
            entry
                .get("interface")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ));
        if !file.is_file() {
            return Err(format!("pod {pod}: {} does not exist", file.display()));
        }
        println!("device-info file (removed by DEL): {}", file.display());
        Ok(())
    }

    /// The node: a namespace with the uplinks, the fake SR-IOV NIC and its embedded switch.
    fn build_node(&self) -> DemoResult<()> {
        run(&["ip", "netns", "add", NODE_NS])?;
        let n = |args: &[&str]| {
            let mut cmd = vec!["ip", "-n", NODE_NS];
            cmd.extend_from_slice(args);
            run(&cmd)
        };
        n(&["link", "set", "lo", "up"])?;
        for up in UPLINKS {
            let peer = format!("{up}p");
            n(&["link", "add", up, "type", "veth", "peer", "name", &peer])?;
            n(&["link", "set", up, "up"])?;
            n(&["link", "set", &peer, "up"])?;
        }
        // The NIC's embedded switch joins the VFs' far ends, so VFs of one PF reach each other.
        n(&["link", "add", "mn-esw0", "type", "bridge"])?;
        n(&["link", "set", "mn-esw0", "up"])?;
        n(&[
            "link", "add", PF.0, "type", "veth", "peer", "name", "mn-pf0p",
        ])?;
        n(&["link", "set", PF.0, "up"])?;
        for (vf, _) in VFS {
            let peer = format!("{vf}p");
            n(&["link", "add", vf, "type", "veth", "peer", "name", &peer])?;
            n(&["link", "set", &peer, "master", "mn-esw0"])?;
            n(&["link", "set", &peer, "up"])?;
        }
        Ok(())
    }

    /// A sysfs tree describing the fake NIC, in the layout the kernel uses.
    fn build_sysfs(&self) -> DemoResult<PathBuf> {
        let root = self.state.join("sys");
        let dev = root.join("devices/pci0000:3a/0000:3a:00.0");
        let io = |e: std::io::Error| e.to_string();
        let mk_fn = |bdf: &str, netdev: &str, device: &str, driver: &str| -> DemoResult<PathBuf> {
            let d = dev.join(bdf);
            fs::create_dir_all(d.join("net").join(netdev)).map_err(io)?;
            fs::write(d.join("vendor"), "0x8086\n").map_err(io)?;
            fs::write(d.join("device"), format!("{device}\n")).map_err(io)?;
            fs::write(d.join("numa_node"), "0\n").map_err(io)?;
            let drv = root.join("bus/pci/drivers").join(driver);
            fs::create_dir_all(&drv).map_err(io)?;
            std::os::unix::fs::symlink(&drv, d.join("driver")).map_err(io)?;
            fs::create_dir_all(root.join("bus/pci/devices")).map_err(io)?;
            std::os::unix::fs::symlink(&d, root.join("bus/pci/devices").join(bdf)).map_err(io)?;
            fs::create_dir_all(root.join("class/net")).map_err(io)?;
            std::os::unix::fs::symlink(
                d.join("net").join(netdev),
                root.join("class/net").join(netdev),
            )
            .map_err(io)?;
            Ok(d)
        };
        let pf = mk_fn(PF.1, PF.0, "0x1592", "ice")?;
        fs::write(pf.join("sriov_totalvfs"), "8\n").map_err(io)?;
        fs::write(pf.join("sriov_numvfs"), format!("{}\n", VFS.len())).map_err(io)?;
        for (i, (vf, bdf)) in VFS.iter().enumerate() {
            let d = mk_fn(bdf, vf, "0x1889", "iavf")?;
            std::os::unix::fs::symlink(&pf, d.join("physfn")).map_err(io)?;
            std::os::unix::fs::symlink(&d, pf.join(format!("virtfn{i}"))).map_err(io)?;
        }
        Ok(root)
    }

    /// CNI_PATH: multinet's delegates as links to this executable, the reference plugins beside.
    fn build_bin_dir(&self) -> DemoResult<()> {
        let bin = self.bin_dir();
        fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        for own in [
            "multinet",
            "macvlan",
            "ipvlan",
            "sriov",
            "host-local",
            "static",
        ] {
            std::os::unix::fs::symlink(&self.exe, bin.join(own)).map_err(|e| e.to_string())?;
        }
        for reference in ["bridge", "loopback", "portmap", "tuning"] {
            let src = Path::new("/usr/lib/cni").join(reference);
            if !src.exists() {
                return Err(format!(
                    "{} is missing: install Debian's containernetworking-plugins",
                    src.display()
                ));
            }
            std::os::unix::fs::symlink(&src, bin.join(reference)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Copies the example pods and NADs into the local cluster folder, pointing every host-local
    /// dataDir into the demo's state so the demo can prove it is empty afterwards.
    fn build_cluster(&self) -> DemoResult<()> {
        let cluster = self.state.join("cluster");
        for sub in ["pods", "nads", "resourceclaims", "resourceslices"] {
            let dst = cluster.join(sub);
            fs::create_dir_all(&dst).map_err(|e| e.to_string())?;
            let src = self.examples.join(sub);
            let mut files: Vec<PathBuf> = fs::read_dir(&src)
                .map_err(|e| format!("{}: {e}", src.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("demo-"))
                })
                .collect();
            files.sort();
            for f in files {
                let text = fs::read_to_string(&f).map_err(|e| e.to_string())?;
                let text = text.replace(
                    "/var/lib/cni/networks",
                    &self.state.join("ipam").display().to_string(),
                );
                fs::write(dst.join(f.file_name().unwrap_or_default()), text)
                    .map_err(|e| e.to_string())?;
            }
        }
        let netd = self.state.join("net.d");
        fs::create_dir_all(&netd).map_err(|e| e.to_string())?;
        let cluster_net = json!({
            "cniVersion": "1.0.0",
            "name": "cluster",
            "plugins": [{
                "type": "bridge", "bridge": "mn-cni0", "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]],
                         "dataDir": self.state.join("ipam").display().to_string()}
            }]
        });
        fs::write(netd.join("10-cluster.conflist"), cluster_net.to_string())
            .map_err(|e| e.to_string())
    }

    fn multinet_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "multinet-demo",
            "type": "multinet",
            "clusterNetwork": "cluster",
            "confDir": self.state.join("net.d"),
            "cniDir": self.state.join("cni"),
            "localDir": self.state.join("cluster"),
            "deviceInfoDir": self.device_info_dir(),
            "devicePluginInfoDir": self.state.join("devinfo/dp"),
            "logLevel": "debug",
            "logFile": self.state.join("multinet.log"),
        })
    }

    fn socket(&self) -> PathBuf {
        self.state.join("multinet.sock")
    }

    /// The variables that point our delegates at the demo's fake NIC and state.
    fn node_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("MULTINET_SYSFS_ROOT", self.state.join("sys")),
            ("MULTINET_SRIOV_STATE_DIR", self.state.join("sriov")),
            ("MULTINET_DEVINFO_DIR", self.state.join("devinfo")),
        ]
    }

    /// Starts `multinet daemon` in the node namespace and waits until it listens.
    fn start_daemon(&self) -> DemoResult<Daemon> {
        let child = Command::new("ip")
            .args(["netns", "exec", NODE_NS])
            .arg(&self.exe)
            .arg("daemon")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--log-file={}", self.daemon_log().display()))
            .envs(self.node_env())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting multinet daemon: {e}"))?;
        let mut daemon = Daemon(child);
        let started = std::time::Instant::now();
        while !self.socket().exists() {
            if let Ok(Some(status)) = daemon.0.try_wait() {
                return Err(format!("multinet daemon exited at start: {status}"));
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                return Err("multinet daemon did not listen within 10 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(daemon)
    }

    fn daemon_log(&self) -> PathBuf {
        self.state.join("daemon.log")
    }

    /// The daemon's "call done" lines for `pod`'s container.
    fn daemon_calls(&self, pod: &str) -> Vec<String> {
        let container = format!("container=\"demo-{pod}\"");
        fs::read_to_string(self.daemon_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("call done") && l.contains(&container))
            .map(str::to_string)
            .collect()
    }

    /// The pod's UID, from its file in the cluster folder (a runtime knows it from the kubelet).
    fn pod_uid(&self, pod: &str) -> DemoResult<String> {
        let file = self.state.join(format!("cluster/pods/demo-{pod}.yaml"));
        let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let doc: Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        doc.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: no metadata.uid", file.display()))
    }

    /// One CNI call, made the way a runtime makes it, from inside the node namespace.
    fn cni(&self, command: &str, pod: &str, netns: &str) -> DemoResult<Value> {
        let uid = self.pod_uid(pod)?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", NODE_NS])
            .arg(self.bin_dir().join("multinet"))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("demo-{pod}"))
            .env("CNI_NETNS", format!("/run/netns/{netns}"))
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME={pod};\
                     K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID=demo-{pod}"
                ),
            )
            .env("CNI_PATH", self.bin_dir())
            .envs(self.node_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting multinet: {e}"))?;
        let mut conf = self.multinet_conf();
        if pod == THICK_POD {
            conf["daemonSocket"] = json!(self.socket());
        }
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{command} {pod} failed: {}{}",
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&stdout).map_err(|e| format!("{command} {pod}: bad output: {e}"))
    }

    fn network_status(&self, pod: &str) -> DemoResult<Vec<Value>> {
        let file = self
            .state
            .join("cluster/pods")
            .join(format!("demo-{pod}.yaml"));
        let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let doc: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
        let status = doc
            .pointer("/metadata/annotations/k8s.v1.cni.cncf.io~1network-status")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("pod {pod} has no network-status annotation"))?;
        serde_json::from_str::<Vec<Value>>(status).map_err(|e| e.to_string())
    }

    fn interface_table(&self, pod: &str, netns: &str) -> DemoResult<String> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:<8} {:<10} {:<19} addresses",
            "iface", "kind", "mac"
        );
        for l in ip_json(netns, &["-d", "addr", "show"])?
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let name = l.get("ifname").and_then(Value::as_str).unwrap_or("?");
            if name == "lo" {
                continue;
            }
            let kind = l
                .pointer("/linkinfo/info_kind")
                .and_then(Value::as_str)
                .unwrap_or("-");
            let mac = l.get("address").and_then(Value::as_str).unwrap_or("-");
            let addrs: Vec<String> = l
                .get("addr_info")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|x| x.get("scope").and_then(Value::as_str) == Some("global"))
                        .map(|x| {
                            format!(
                                "{}/{}",
                                x.get("local").and_then(Value::as_str).unwrap_or("?"),
                                x.get("prefixlen").and_then(Value::as_u64).unwrap_or(0)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<8} {:<10} {:<19} {}",
                name,
                kind,
                mac,
                addrs.join(" ")
            );
        }
        let _ = pod;
        Ok(out)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(Self::files_under(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    fn run(&self) -> DemoResult<()> {
        println!("== multinet demo: state in {}", self.state.display());
        self.build_bin_dir()?;
        self.build_node()?;
        self.build_sysfs()?;
        self.build_cluster()?;
        for (_, netns) in PODS {
            run(&["ip", "netns", "add", netns])?;
            run(&["ip", "-n", netns, "link", "set", "lo", "up"])?;
        }

        let mut daemon = self.start_daemon()?;
        println!(
            "multinet daemon listening on {} (thick mode for demo/{THICK_POD})",
            self.socket().display()
        );

        let mut failures = Vec::new();
        self.dra_prepare()?;
        for (pod, netns) in PODS {
            let result = self.cni("ADD", pod, netns)?;
            let mode = if *pod == THICK_POD {
                match self.daemon_calls(pod).last() {
                    Some(line) if line.contains("code=0") => "thick mode: run by multinet daemon",
                    _ => {
                        failures.push(format!("{pod}'s ADD did not run in the daemon"));
                        "thick mode, but the daemon did not run it"
                    }
                }
            } else {
                "thin mode: run by the binary"
            };
            let ips: Vec<&str> = result
                .get("ips")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.get("address")?.as_str())
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "\n== pod demo/{pod} (netns {netns}, {mode}): ADD returned eth0 {}",
                ips.join(" ")
            );
            let status = self.network_status(pod)?;
            println!("network-status:");
            for s in &status {
                println!("  {s}");
            }
            if let Err(e) = self.check_device_info(pod, &status) {
                failures.push(e);
            }
            println!("interfaces:\n{}", self.interface_table(pod, netns)?);
        }

        // Ping pod-b and pod-c from pod-a over every secondary network.
        println!("== pings from pod-a");
        for target in ["pod-b", DRA_POD] {
            for s in self
                .network_status(target)?
                .iter()
                .filter(|s| s.get("default") != Some(&Value::Bool(true)))
            {
                let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
                for ip in s
                    .get("ips")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let ip = ip.as_str().unwrap_or("");
                    let ok = run(&[
                        "ip", "netns", "exec", PODS[0].1, "ping", "-c", "1", "-W", "2", ip,
                    ])
                    .is_ok();
                    println!(
                        "  {:<24} {:<16} {target:<6} {}",
                        name,
                        ip,
                        if ok { "ok" } else { "FAILED" }
                    );
                    if !ok {
                        failures.push(format!("ping {ip} of {target} over {name}"));
                    }
                }
            }
        }

        println!("\n== deleting the pods");
        for (pod, netns) in PODS {
            self.cni("DEL", pod, netns)?;
            // A second DEL, as runtimes do, must succeed too.
            self.cni("DEL", pod, netns)?;
            let left: Vec<String> = links(netns)?.into_iter().filter(|l| l != "lo").collect();
            if !left.is_empty() {
                failures.push(format!("pod {pod} still has links {left:?}"));
            }
        }
        // DEL left the DRA pod's VF with its claim, until the kubelet unprepares it.
        if let Err(e) = self.dra_unprepare() {
            failures.push(e);
        }
        // The daemon ran all of the thick pod's calls, and a SIGTERM stops it cleanly.
        let thick_calls = self.daemon_calls(THICK_POD).len();
        if thick_calls != 3 {
            failures.push(format!(
                "the daemon ran {thick_calls} of {THICK_POD}'s 3 calls (ADD, DEL, DEL)"
            ));
        }
        match daemon.stop() {
            Ok(()) if !self.socket().exists() => println!(
                "  multinet daemon ran {thick_calls} calls for demo/{THICK_POD}, stopped on SIGTERM, socket removed"
            ),
            Ok(()) => failures.push("the daemon left its socket behind".into()),
            Err(e) => failures.push(e),
        }
        // Every VF is back on the node under its own name, and no macvlan is left.
        let node_links = links(NODE_NS)?;
        for (vf, _) in VFS {
            if !node_links.iter().any(|l| l == vf) {
                failures.push(format!("VF {vf} did not return to the node"));
            }
        }
        // devinfo/ holds multinet's device-info files (devinfo/cni) and the SR-IOV plugin's own.
        let leftovers: Vec<PathBuf> = ["ipam", "cni", "sriov", "devinfo"]
            .iter()
            .flat_map(|d| Self::files_under(&self.state.join(d)))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // host-local keeps its lock and round-robin cursor by design.
                !(name == "lock" || name.starts_with("last_reserved_ip") || name.ends_with(".lock"))
            })
            .collect();
        if !leftovers.is_empty() {
            failures.push(format!("state left behind: {leftovers:?}"));
        }
        println!(
            "  links in pods: none; VFs on node: {}; IP/VF/attachment records left: {}; \
             device-info files left: {}",
            VFS.len(),
            leftovers.len(),
            Self::files_under(&self.state.join("devinfo")).len()
        );
        if failures.is_empty() {
            println!(
                "\n== demo passed: every pod got its networks, every network carried traffic, nothing was left"
            );
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    fn dra_allocator<T>(
        &self,
        f: impl FnOnce(&multinet_sriov::VfAllocator<'_>, &multinet_sriov::Sysfs) -> DemoResult<T>,
    ) -> DemoResult<T> {
        let sysfs = multinet_sriov::Sysfs::new(self.state.join("sys"));
        let state = multinet_sriov::StateDir::new(self.state.join("sriov"));
        state.prepare().map_err(|e| e.to_string())?;
        f(&multinet_sriov::VfAllocator::new(&sysfs, &state), &sysfs)
    }

    /// What NodePrepareResources has multinet's DRA plugin do for pod-c's claim: its VF is
    /// held for the claim, so no pool hands it out and only pod-c may attach it.
    fn dra_prepare(&self) -> DemoResult<()> {
        self.dra_allocator(|alloc, sysfs| {
            let vf = sysfs
                .vf(&VFS[3].1.parse().map_err(|e| format!("VF address: {e}"))?)
                .map_err(|e| e.to_string())?;
            alloc
                .prepare(
                    &vf,
                    multinet_sriov::state::ClaimHold {
                        uid: "demo-claim-uid".into(),
                        namespace: DRA_CLAIM.0.into(),
                        name: DRA_CLAIM.1.into(),
                        pods: vec![DRA_POD_UID.into()],
                    },
                )
                .map_err(|e| e.to_string())?;
            println!(
                "== DRA: ResourceClaim {}/{} prepared: VF {} held for it",
                DRA_CLAIM.0, DRA_CLAIM.1, VFS[3].1
            );
            Ok(())
        })
    }

    /// After pod-c's DEL the VF is still its claim's; the unprepare frees it.
    fn dra_unprepare(&self) -> DemoResult<()> {
        self.dra_allocator(|alloc, _| {
            let addr = VFS[3].1.parse().map_err(|e| format!("VF address: {e}"))?;
            if !alloc
                .unprepare(&addr, "demo-claim-uid")
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "VF {} was not held by its claim after pod-c's DEL",
                    VFS[3].1
                ));
            }
            println!(
                "  DRA: VF {} stayed with claim {}/{} after DEL; unprepared, free again",
                VFS[3].1, DRA_CLAIM.0, DRA_CLAIM.1
            );
            Ok(())
        })
    }

    fn cleanup(&self) {
        for (_, netns) in PODS {
            let _ = run(&["ip", "netns", "del", netns]);
        }
        let _ = run(&["ip", "netns", "del", NODE_NS]);
        if !self.keep {
            let _ = fs::remove_dir_all(&self.state);
        }
    }
}

/// The demo's `multinet daemon`, killed if the demo ends early.
struct Daemon(std::process::Child);

impl Daemon {
    /// SIGTERM, then its exit status must be success.
    fn stop(&mut self) -> DemoResult<()> {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("stopping multinet daemon: {e}"))?;
        match self.0.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("multinet daemon exited with {status} on SIGTERM")),
            Err(e) => Err(format!("waiting for multinet daemon: {e}")),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn find_examples() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MULTINET_EXAMPLES").map(PathBuf::from),
        std::env::current_dir().ok().map(|d| d.join("examples")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("pods").is_dir() && p.join("nads").is_dir())
}

/// pods in network namespaces getting several interfaces, no cluster needed (root)
#[derive(Debug, clap::Parser)]
#[command(name = "multinet demo")]
struct DemoArgs {
    /// leave the namespaces and links in place to look at them afterwards
    #[arg(long)]
    keep: bool,
}

/// Entry point of `multinet demo [--keep]`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let keep = match <DemoArgs as clap::Parser>::try_parse_from(
        std::iter::once("multinet demo").chain(args.iter().map(String::as_str)),
    ) {
        Ok(a) => a.keep,
        Err(e) => {
            // --help prints to stdout and exits 0; a bad flag prints the usage and exits 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    if !nix_is_root() {
        eprintln!("multinet demo needs root (it creates network namespaces)");
        return 2;
    }
    let Some(examples) = find_examples() else {
        eprintln!(
            "multinet demo: examples/ not found (run from the repository or set MULTINET_EXAMPLES)"
        );
        return 2;
    };
    let exe = match std::fs::canonicalize("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("multinet demo: {e}");
            return 2;
        }
    };
    let state = std::env::temp_dir().join(format!("multinet-demo-{}", std::process::id()));
    let demo = Demo {
        exe,
        examples,
        state,
        keep,
    };
    // Leftovers of an interrupted earlier run would make namespace creation fail.
    demo.cleanup();
    // The daemon's socket lives here: the folder must be private whatever the umask.
    if let Err(e) = multinet_cni::files::ensure_dir(&demo.state, multinet_cni::files::PRIVATE_DIR) {
        eprintln!("multinet demo: {}: {e}", demo.state.display());
        return 2;
    }
    let outcome = demo.run();
    demo.cleanup();
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("\n== demo FAILED: {e}");
            if keep {
                eprintln!("state kept in {}", demo.state.display());
            }
            1
        }
    }
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
