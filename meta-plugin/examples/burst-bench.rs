//! The node daemon at scale: its memory idle, with its watch caches holding 5,000 NADs and a
//! full node's pods (110), and at the peak of a burst of 110 pods started at once (each with a
//! cluster network and 3 NADs: 4 macvlans with host-local); the burst's ADD latency (p50, p99)
//! and failures, in thick mode with caches and in thin mode beside it. The API is the fixture
//! (it counts every request): the bench also prints the reads each mode made.
//!
//!     cargo build --release -p multinet --bin multinet --example burst-bench
//!     ./target/release/examples/burst-bench [PODS [NADS]]
//!
//! Needs root, iproute2 and Debian's containernetworking-plugins (host-local).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use multinet_api_fixture::ApiFixture;
use serde_json::{Value, json};

const NODE: &str = "mnbb-node";
const NODE_NAME: &str = "bench-node";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn multinet_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("multinet");
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p multinet first",
        bin.display()
    );
    bin
}

/// A line of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One CNI call of the multinet binary for pod `i`; returns whether it succeeded.
fn cni(exe: &Path, command: &str, i: usize, conf: &Value) -> (bool, String) {
    let mut child = Command::new(exe)
        .env_remove("LD_LIBRARY_PATH")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("burst-{i}"))
        .env("CNI_NETNS", format!("/run/netns/mnbb-p{i}"))
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=p{i};K8S_POD_UID=uid-p{i}"
            ),
        )
        .env("CNI_PATH", "/usr/lib/cni")
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
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// All pods' ADDs at once (one thread each, released together), then their DELs; returns the
/// ADD latencies (sorted) and the failures.
fn burst(exe: &Path, pods: usize, conf: &Value) -> (Vec<Duration>, Vec<String>) {
    for i in 0..pods {
        ip(&["netns", "add", &format!("mnbb-p{i}")]);
    }
    let start = Arc::new(Barrier::new(pods));
    let threads: Vec<_> = (0..pods)
        .map(|i| {
            let (exe, conf, start) = (exe.to_path_buf(), conf.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                let (ok, out) = cni(&exe, "ADD", i, &conf);
                (t.elapsed(), ok.then_some(()).ok_or(format!("p{i}: {out}")))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for t in threads {
        let (took, outcome) = t.join().unwrap();
        latencies.push(took);
        if let Err(e) = outcome {
            failures.push(e);
        }
    }
    for i in 0..pods {
        let (ok, out) = cni(exe, "DEL", i, conf);
        if !ok {
            failures.push(format!("DEL p{i}: {out}"));
        }
        ip(&["netns", "del", &format!("mnbb-p{i}")]);
    }
    latencies.sort();
    (latencies, failures)
}

fn main() {
    let pods: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(110);
    let nads: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    for sub in ["net.d", "cni", "ipam"] {
        fs::create_dir_all(d(sub)).unwrap();
    }
    let multinet = multinet_exe();
    let _ = Command::new("ip").args(["netns", "del", NODE]).status();
    ip(&["netns", "add", NODE]);
    let node_fd = fs::File::open(format!("/run/netns/{NODE}")).unwrap();
    nix::sched::setns(&node_fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    ip(&["link", "set", "lo", "up"]);
    for up in ["up0", "up1"] {
        ip(&[
            "link",
            "add",
            up,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{up}p"),
        ]);
        ip(&["link", "set", up, "up"]);
    }
    let ipam = |subnet: &str| json!({"type":"host-local","ranges":[[{"subnet":subnet}]],"dataDir":d("ipam")});
    let cluster = json!({"cniVersion":"1.0.0","name":"cluster","plugins":[
        {"type":"macvlan","master":"up1","ipam":ipam("10.99.0.0/16")}]});
    fs::write(d("net.d/10-cluster.conflist"), cluster.to_string()).unwrap();

    let api = ApiFixture::start_blocking().unwrap();
    api.write_kubeconfig(d("kubeconfig")).unwrap();
    // The daemon starts on an empty API: its idle memory.
    let socket = d("daemon.sock");
    let mut daemon = Command::new(&multinet)
        .env_remove("LD_LIBRARY_PATH")
        .arg("daemon")
        .arg(format!("--socket={}", socket.display()))
        .arg("--log-level=warn")
        .arg(format!("--log-file={}", d("daemon.log").display()))
        .arg(format!("--kubeconfig={}", d("kubeconfig").display()))
        .arg(format!("--node-name={NODE_NAME}"))
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let waiting = Instant::now();
    while !socket.exists() || api.open_watches() < 2 {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = status_kib(pid, "VmRSS");

    // 5,000 NADs over 50 namespaces (a config of the usual size each), 3 of them the pods' own.
    for n in 0..nads.saturating_sub(3) {
        let conf = json!({"cniVersion":"1.0.0","name":format!("net-{n}"),"type":"macvlan",
            "master":"up0","ipam":ipam(&format!("10.{}.{}.0/24", 100 + n / 256 % 100, n % 256))});
        api.insert(
            json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
            "metadata":{"name":format!("net-{n}"),"namespace":format!("ns-{}", n % 50)},
            "spec":{"config":conf.to_string()}}),
        )
        .unwrap();
    }
    for (name, subnet) in [
        ("a", "10.10.0.0/16"),
        ("b", "10.20.0.0/16"),
        ("c", "10.30.0.0/16"),
    ] {
        let conf = json!({"cniVersion":"1.0.0","name":name,"type":"macvlan","master":"up0",
            "ipam":ipam(subnet)});
        api.insert(
            json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
            "metadata":{"name":name,"namespace":"team"},"spec":{"config":conf.to_string()}}),
        )
        .unwrap();
    }
    for i in 0..pods {
        api.insert(json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":format!("p{i}"),"namespace":"team","uid":format!("uid-p{i}"),
                "annotations":{"k8s.v1.cni.cncf.io/networks":"a,b,c"}},
            "spec":{"nodeName":NODE_NAME,"containers":[{"name":"app","image":"app"}]}}))
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let cached = status_kib(pid, "VmRSS");

    let conf = json!({"cniVersion":"1.0.0","name":"multinet","type":"multinet",
        "clusterNetwork":"cluster","confDir":d("net.d"),"cniDir":d("cni"),"binDir":"/usr/lib/cni",
        "kubeconfig":d("kubeconfig"),"logLevel":"error","logFile":d("multinet.log"),
        "apiTimeoutSeconds":60});
    let mut thick = conf.clone();
    thick["daemonSocket"] = json!(socket);

    api.clear_requests();
    let (thick_lat, thick_fail) = burst(&multinet, pods, &thick);
    let peak = status_kib(pid, "VmHWM");
    let thick_reads = reads(&api);
    let after = status_kib(pid, "VmRSS");
    api.clear_requests();
    let (thin_lat, thin_fail) = burst(&multinet, pods, &conf);
    let thin_reads = reads(&api);

    println!(
        "daemon RSS (MiB): idle {:.1}; {nads} NADs + {pods} pods cached {:.1}; peak in the burst {:.1}; after it {:.1}",
        mib(idle),
        mib(cached),
        mib(peak),
        mib(after)
    );
    println!("burst of {pods} pod ADDs at once (cluster network + 3 NADs, macvlan + host-local):");
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>9} {:>14}",
        "", "p50 ms", "p99 ms", "max ms", "failures", "pod/NAD reads"
    );
    for (label, lat, fail, reads) in [
        (
            "thick mode, watch caches",
            &thick_lat,
            &thick_fail,
            thick_reads,
        ),
        ("thin mode", &thin_lat, &thin_fail, thin_reads),
    ] {
        println!(
            "{label:<34} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>14}",
            percentile(lat, 0.5).as_secs_f64() * 1000.0,
            percentile(lat, 0.99).as_secs_f64() * 1000.0,
            lat.last().unwrap().as_secs_f64() * 1000.0,
            fail.len(),
            reads
        );
        for f in fail.iter().take(3) {
            println!("  failure: {f}");
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = Command::new("ip").args(["netns", "del", NODE]).status();
}

/// GETs of one pod or one NAD the calls made (not the caches' own lists and watches).
fn reads(api: &ApiFixture) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/namespaces/"))
        .filter(|r| {
            r.path.contains("/pods/") || r.path.contains("/network-attachment-definitions/")
        })
        .count()
}
