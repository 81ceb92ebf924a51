//! Pod ADD and DEL latency: multinet (cluster network + two macvlan NADs through the Kubernetes API
//! fixture; our macvlan and host-local in-process, or the reference plugins exec'd; networks at
//! once or one after another) side by side with the same three attachments made by exec of the
//! reference plugins alone, and the kernel's floor for deleting one link.
//! Runs alternate between the two in the same namespaces so both see the same machine.
//!
//!     cargo run --release -p multinet --example pod-bench [-- ROUNDS [POD_AGE_MS]]
//!
//! The thick-mode rows run the same config with `daemonSocket` naming a `multinet daemon` the
//! bench starts: the binary hands each call to it.
//!
//! POD_AGE_MS (default 200) is how long each pod lives between ADD and DEL. A link deleted within a
//! few milliseconds of being brought up costs the kernel more (IPv6 autoconfiguration of the new
//! link is still in flight), so the floor link is brought up, addressed and aged the same way.
//!
//! Needs root, iproute2 and Debian's containernetworking-plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multinet_api_fixture::ApiFixture;
use serde_json::{Value, json};

const NODE: &str = "mnb-node";
const POD: &str = "mnb-pod";
const REF: &str = "/usr/lib/cni";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs a CNI plugin binary in the node namespace; returns its stdout.
fn cni(bin: &Path, command: &str, ifname: &str, conf: &Value, extra_args: &str) -> String {
    let mut child = Command::new(bin)
        // `cargo run` sets a library path that a container runtime would not.
        .env_remove("LD_LIBRARY_PATH")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "bench")
        .env("CNI_NETNS", format!("/run/netns/{POD}"))
        .env("CNI_IFNAME", ifname)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod{extra_args}"),
        )
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{} {command}: {stdout} {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn multinet_exe() -> PathBuf {
    // target/<profile>/examples/bench -> target/<profile>/multinet
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("multinet");
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p multinet first",
        bin.display()
    );
    bin
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let pod_age = Duration::from_millis(
        std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(200),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    for sub in ["bin-ours", "bin-ref", "net.d", "cni", "ipam"] {
        fs::create_dir_all(d(sub)).unwrap();
    }
    let multinet = multinet_exe();
    for p in ["macvlan", "host-local"] {
        std::os::unix::fs::symlink(Path::new(REF).join(p), d("bin-ref").join(p)).unwrap();
    }
    for own in ["multinet", "macvlan", "host-local"] {
        std::os::unix::fs::symlink(&multinet, d("bin-ours").join(own)).unwrap();
    }

    let _ = Command::new("ip").args(["netns", "del", NODE]).status();
    let _ = Command::new("ip").args(["netns", "del", POD]).status();
    ip(&["netns", "add", NODE]);
    // From here on the bench runs inside the node's namespace, so plugins are spawned directly,
    // as a container runtime spawns them (no `ip netns exec` in the figures).
    let node_fd = fs::File::open(format!("/run/netns/{NODE}")).unwrap();
    nix::sched::setns(&node_fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    ip(&["-n", NODE, "link", "set", "lo", "up"]);
    for up in ["up0", "up1", "up2"] {
        ip(&[
            "-n",
            NODE,
            "link",
            "add",
            up,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{up}p"),
        ]);
        ip(&["-n", NODE, "link", "set", up, "up"]);
        ip(&["-n", NODE, "link", "set", &format!("{up}p"), "up"]);
    }

    let ipam = |subnet: &str| json!({"type":"host-local","ranges":[[{"subnet":subnet}]],"dataDir":d("ipam")});
    // The cluster network is a macvlan too, so both sides run the same three plugins.
    let cluster = json!({"cniVersion":"1.0.0","name":"cluster","plugins":[
        {"type":"macvlan","master":"up2","ipam":ipam("10.99.0.0/24")}]});
    let data = json!({"cniVersion":"1.0.0","name":"data","type":"macvlan","master":"up0","ipam":ipam("10.10.0.0/24")});
    let storage = json!({"cniVersion":"1.0.0","name":"storage","type":"macvlan","master":"up1","ipam":ipam("10.20.0.0/24")});
    fs::write(d("net.d/10-cluster.conflist"), cluster.to_string()).unwrap();

    let api = ApiFixture::start_blocking().unwrap();
    for (name, conf) in [("data", &data), ("storage", &storage)] {
        api.insert(
            json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
            "metadata":{"name":name,"namespace":"bench"},"spec":{"config":conf.to_string()}}),
        )
        .unwrap();
    }
    api.insert(
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod","namespace":"bench",
        "annotations":{"k8s.v1.cni.cncf.io/networks":"data,storage"}}}),
    )
    .unwrap();
    api.write_kubeconfig(d("kubeconfig")).unwrap();
    let multinet_conf = json!({"cniVersion":"1.0.0","name":"multinet","type":"multinet",
        "clusterNetwork":"cluster","confDir":d("net.d"),"cniDir":d("cni"),"binDir":d("bin-ours"),
        "kubeconfig":d("kubeconfig"),"logLevel":std::env::var("BENCH_LOG").unwrap_or("error".into()),
        "logFile":d("multinet.log")});

    let ours = d("bin-ours/multinet");
    let ref_macvlan = d("bin-ref/macvlan");
    // multinet variants: our delegates in-process or the reference plugins exec'd, each with the
    // networks attached one after another (the default) and independent ones at once (opt-in).
    let variant = |bin_dir: &str, parallel: bool| {
        let mut conf = multinet_conf.clone();
        conf["binDir"] = json!(d(bin_dir));
        conf["parallelNetworks"] = json!(parallel);
        conf
    };
    // Thick mode: the same config naming a daemon's socket; the binary hands each call over.
    let socket = d("daemon.sock");
    let mut daemon = Command::new(&multinet)
        .env_remove("LD_LIBRARY_PATH")
        .arg("daemon")
        .arg("--socket")
        .arg(&socket)
        .arg("--log-level")
        .arg(std::env::var("BENCH_LOG").unwrap_or("info".into()))
        .arg("--log-file")
        .arg(d("daemon.log"))
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !socket.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let thick = |mut conf: Value| {
        conf["daemonSocket"] = json!(socket);
        conf
    };
    let variants = [
        (
            "multinet, own delegates in-process",
            variant("bin-ours", false),
        ),
        ("  same, parallelNetworks true", variant("bin-ours", true)),
        (
            "multinet exec'ing the reference plugins",
            variant("bin-ref", false),
        ),
        ("  same, parallelNetworks true", variant("bin-ref", true)),
        (
            "multinet thick mode (daemon), own delegates",
            thick(variant("bin-ours", false)),
        ),
        (
            "  same, parallelNetworks true",
            thick(variant("bin-ours", true)),
        ),
    ];
    // ADD and DEL samples per multinet variant, then the reference plugins alone, then the floor.
    let mut add_samples: Vec<Vec<Duration>> = vec![Vec::new(); variants.len() + 1];
    let mut del_samples: Vec<Vec<Duration>> = vec![Vec::new(); variants.len() + 2];
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let multinet_pod = |conf: &Value| {
        ip(&["netns", "add", POD]);
        let add = time(&mut || {
            cni(&ours, "ADD", "eth0", conf, "");
        });
        std::thread::sleep(pod_age);
        let del = time(&mut || {
            cni(&ours, "DEL", "eth0", conf, "");
        });
        ip(&["netns", "del", POD]);
        (add, del)
    };
    for round in 0..rounds + 2 {
        let warm = round < 2;
        // multinet: one ADD, one DEL for the whole pod.
        let pods: Vec<(Duration, Duration)> =
            variants.iter().map(|(_, c)| multinet_pod(c)).collect();
        // The reference plugins alone, the same three attachments one after another.
        ip(&["netns", "add", POD]);
        let plugin_conf = |c: &Value| {
            let mut p = c["plugins"][0].clone();
            p["name"] = c["name"].clone();
            p["cniVersion"] = c["cniVersion"].clone();
            p
        };
        let cluster_plugin = plugin_conf(&cluster);
        let radd = time(&mut || {
            cni(&ref_macvlan, "ADD", "eth0", &cluster_plugin, "");
            cni(&ref_macvlan, "ADD", "net1", &data, "");
            cni(&ref_macvlan, "ADD", "net2", &storage, "");
        });
        std::thread::sleep(pod_age);
        let rdel = time(&mut || {
            cni(&ref_macvlan, "DEL", "net2", &storage, "");
            cni(&ref_macvlan, "DEL", "net1", &data, "");
            cni(&ref_macvlan, "DEL", "eth0", &cluster_plugin, "");
        });
        // The kernel's floor: deleting one macvlan with `ip`, up and addressed like the pod's.
        ip(&[
            "-n", NODE, "link", "add", "fl0", "link", "up0", "type", "macvlan", "mode", "bridge",
        ]);
        ip(&["-n", NODE, "link", "set", "fl0", "netns", POD]);
        ip(&["-n", POD, "addr", "add", "10.30.0.2/24", "dev", "fl0"]);
        ip(&["-n", POD, "link", "set", "fl0", "up"]);
        std::thread::sleep(pod_age);
        let floor = time(&mut || ip(&["-n", POD, "link", "del", "fl0"]));
        ip(&["netns", "del", POD]);
        if !warm {
            let adds = pods.iter().map(|p| p.0).chain([radd]);
            let dels = pods.iter().map(|p| p.1).chain([rdel, floor]);
            for (samples, s) in add_samples.iter_mut().zip(adds) {
                samples.push(s);
            }
            for (samples, s) in del_samples.iter_mut().zip(dels) {
                samples.push(s);
            }
        }
    }
    let adds: Vec<Duration> = add_samples.iter_mut().map(|s| median(s)).collect();
    let dels: Vec<Duration> = del_samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "pod with a cluster network + 2 NADs (3 macvlan + host-local), {rounds} rounds, \
         pod age at DEL {} ms, medians:",
        pod_age.as_millis()
    );
    println!("{:<42} {:>10} {:>10}", "", "ADD ms", "DEL ms");
    let labels = variants
        .iter()
        .map(|v| v.0)
        .chain(["reference plugins alone (exec)"]);
    for ((label, add), del) in labels.zip(&adds).zip(&dels) {
        println!("{label:<42} {:>10.2} {:>10.2}", ms(*add), ms(*del));
    }
    let floor = dels[dels.len() - 1];
    println!(
        "{:<42} {:>10} {:>10.2}",
        "floor: one `ip link del`",
        "",
        ms(floor)
    );
    println!(
        "ratios: ADD multinet/reference {:.2}; DEL multinet/one-link-deletion {:.2}",
        adds[0].as_secs_f64() / adds[adds.len() - 1].as_secs_f64(),
        dels[0].as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "thick mode: ADD multinet/reference {:.2}",
        adds[4].as_secs_f64() / adds[adds.len() - 1].as_secs_f64(),
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = Command::new("ip").args(["netns", "del", NODE]).status();
    if std::env::var("BENCH_LOG").is_ok() {
        fs::copy(d("multinet.log"), "/tmp/pod-bench.log").unwrap();
        fs::copy(d("daemon.log"), "/tmp/pod-bench-daemon.log").unwrap();
        println!("multinet's log: /tmp/pod-bench.log; the daemon's: /tmp/pod-bench-daemon.log");
    }
}
