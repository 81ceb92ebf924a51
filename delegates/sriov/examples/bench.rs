//! SR-IOV delegate benchmark (needs root; everything happens in its own network namespaces):
//!
//! - ADD and DEL latency of one VF attachment (VF netdevs are veth ends named by a fake sysfs;
//!   with and without in-process host-local IPAM), through the same entry point a runtime uses;
//! - allocation throughput under contention: threads claiming and releasing VFs of one pool
//!   (allocator only: flock + record), then full pool ADD+DEL cycles from several threads;
//! - a DRA VF: the claim's prepare (the hold the kubelet plugin writes), the ADD of the pod the
//!   claim is reserved for, its DEL and the unprepare, each timed; and prepare+unprepare
//!   throughput from several threads.
//!
//! ```sh
//! cargo run -p multinet-sriov --example bench -- [--iterations N] [--threads T] [--vfs M]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use multinet_netlink::{Netns, run_in_netns};
use multinet_sriov::plugin::Paths;
use multinet_sriov::selector::PoolSpec;
use multinet_sriov::state::ClaimHold;
use multinet_sriov::{Owner, SriovPlugin, StateDir, Sysfs, VfAllocator};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{CniCall, TestNetns, unique_link_name};
use serde_json::{Value, json};

struct Args {
    iterations: usize,
    threads: usize,
    vfs: usize,
}

fn args() -> Args {
    let mut a = Args {
        iterations: 200,
        threads: 8,
        vfs: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--iterations" => a.iterations = value,
            "--threads" => a.threads = value,
            "--vfs" => a.vfs = value,
            other => panic!("unknown flag {other} (--iterations, --threads, --vfs)"),
        }
    }
    a
}

struct Node {
    host: TestNetns,
    _wire: TestNetns,
    pf: String,
    vfs: Vec<String>,
    sysfs: FakeSysfs,
    dir: tempfile::TempDir,
    plugin: SriovPlugin,
}

fn vf_addr(n: usize) -> String {
    format!("0000:af:{:02x}.{}", 2 + n / 8, n % 8)
}

fn node(n: usize) -> Node {
    let host = TestNetns::new();
    let wire = TestNetns::new();
    let pf = unique_link_name("pf");
    host.add_veth(&pf, "pfp", Some(&wire));
    let mut spec = PfSpec::new("0000:af:00.0", &pf);
    let mut vfs = Vec::new();
    for i in 0..n {
        let name = format!("bvf{i}");
        let peer = format!("bvfp{i}");
        host.add_veth(&name, &peer, Some(&wire));
        spec = spec.vf(&vf_addr(i), &name);
        vfs.push(vf_addr(i));
    }
    let sysfs = FakeSysfs::builder(SysfsLayout::DevicePlugin)
        .pf(spec)
        .build();
    let dir = tempfile::tempdir().unwrap();
    let plugin = SriovPlugin::with_paths(Paths {
        sysfs: Sysfs::new(sysfs.root()),
        state: StateDir::new(dir.path().join("state")),
        devinfo_dir: dir.path().join("devinfo"),
        lock_timeout: Duration::from_secs(30),
    });
    Node {
        host,
        _wire: wire,
        pf,
        vfs,
        sysfs,
        dir,
        plugin,
    }
}

impl Node {
    fn conf(&self, extra: Value) -> Vec<u8> {
        let mut c = json!({"cniVersion": "1.0.0", "name": "bench", "type": "sriov",
            "logLevel": "error"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::to_vec(&c).unwrap()
    }

    fn ipam(&self) -> Value {
        json!({"type": "host-local", "subnet": "10.99.0.0/16", "dataDir": self.dir.path().join("ipam")})
    }

    /// One CNI call through the plugin entry point, on the calling thread (already in the host
    /// netns), with a current-thread runtime as a plugin binary has; its stdout and exit code.
    fn dispatch(
        &self,
        rt: &tokio::runtime::Runtime,
        cmd: &str,
        cid: &str,
        netns: &str,
        conf: &[u8],
    ) -> (Vec<u8>, i32) {
        let vars = CniCall::new("sriov", cmd)
            .container_id(cid)
            .netns(netns)
            .ifname("net1")
            .path("/usr/lib/cni")
            .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web;K8S_POD_UID=uid-web")
            .vars();
        rt.block_on(multinet_cni::dispatch(&self.plugin, vars, conf))
    }

    /// [`Node::dispatch`], which must succeed.
    fn call(&self, rt: &tokio::runtime::Runtime, cmd: &str, cid: &str, netns: &str, conf: &[u8]) {
        let (out, code) = self.dispatch(rt, cmd, cid, netns, conf);
        assert_eq!(code, 0, "{cmd} failed: {}", String::from_utf8_lossy(&out));
    }

    /// Runs `f` on a thread inside the node's host netns.
    fn in_host<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in_netns(&Netns::open(self.host.path()).unwrap(), f).unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<44} n={:<5} mean {:>8.3} ms  p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms",
        samples.len(),
        mean.as_secs_f64() * 1e3,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.9).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}

fn latency(node: &Node, iterations: usize, conf: &[u8], label: &str) {
    let pod = TestNetns::new();
    let (adds, dels) = node.in_host(|| {
        let rt = runtime();
        let mut adds = Vec::with_capacity(iterations);
        let mut dels = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let cid = format!("lat{i}");
            let t = Instant::now();
            node.call(&rt, "ADD", &cid, pod.path_str(), conf);
            adds.push(t.elapsed());
            let t = Instant::now();
            node.call(&rt, "DEL", &cid, pod.path_str(), conf);
            dels.push(t.elapsed());
        }
        (adds, dels)
    });
    summary(&format!("ADD {label}"), adds);
    summary(&format!("DEL {label}"), dels);
}

fn hold(uid: &str) -> ClaimHold {
    ClaimHold {
        uid: uid.into(),
        namespace: "team".into(),
        name: format!("claim-{uid}"),
        pods: vec!["uid-web".into()],
    }
}

/// A DRA VF from the claim's prepare to its unprepare, each step timed.
fn dra_latency(node: &Node, iterations: usize) {
    let pod = TestNetns::new();
    let vf = node.vfs[1 % node.vfs.len()].clone();
    let conf = node.conf(json!({"deviceID": vf, "ipam": node.ipam()}));
    let mut steps: [Vec<Duration>; 4] = Default::default();
    node.in_host(|| {
        let rt = runtime();
        let sysfs = Sysfs::new(node.sysfs.root());
        let state = StateDir::new(node.dir.path().join("state"));
        let alloc = VfAllocator::new(&sysfs, &state);
        let device = sysfs.vf(&vf.parse().unwrap()).unwrap();
        for i in 0..iterations {
            let uid = format!("u{i}");
            let cid = format!("dra{i}");
            let t = Instant::now();
            alloc.prepare(&device, hold(&uid)).unwrap();
            steps[0].push(t.elapsed());
            let t = Instant::now();
            node.call(&rt, "ADD", &cid, pod.path_str(), &conf);
            steps[1].push(t.elapsed());
            let t = Instant::now();
            node.call(&rt, "DEL", &cid, pod.path_str(), &conf);
            steps[2].push(t.elapsed());
            let t = Instant::now();
            assert!(alloc.unprepare(&device.addr, &uid).unwrap());
            steps[3].push(t.elapsed());
        }
    });
    let [prepare, add, del, unprepare] = steps;
    summary("DRA prepare (claim holds the VF)", prepare);
    summary("DRA ADD of the claim's VF, host-local", add);
    summary("DRA DEL (VF stays with the claim)", del);
    summary("DRA unprepare", unprepare);
}

/// Threads preparing and unpreparing claims over the VFs (the kubelet plugin's side alone).
fn prepare_throughput(node: &Node, threads: usize, duration: Duration) {
    let state = StateDir::new(node.dir.path().join("prepare-state"));
    let sysfs = Sysfs::new(node.sysfs.root());
    let done = AtomicUsize::new(0);
    let busy = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (state, sysfs, done, busy) = (&state, &sysfs, &done, &busy);
            let vfs = &node.vfs;
            s.spawn(move || {
                let alloc = VfAllocator::new(sysfs, state);
                let mut i = 0;
                while start.elapsed() < duration {
                    let vf = sysfs
                        .vf(&vfs[(t + i) % vfs.len()].parse().unwrap())
                        .unwrap();
                    let uid = format!("t{t}x{i}");
                    i += 1;
                    match alloc.prepare(&vf, hold(&uid)) {
                        Ok(_) => {
                            assert!(alloc.unprepare(&vf.addr, &uid).unwrap());
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "DRA prepare+unprepare, {threads} threads, {} VFs: {:.0} claims/s ({n} in {secs:.1} s, {} refused: VF held)",
        node.vfs.len(),
        n as f64 / secs,
        busy.load(Ordering::Relaxed)
    );
}

fn allocator_throughput(node: &Node, threads: usize, duration: Duration) {
    let state = StateDir::new(node.dir.path().join("alloc-state"));
    let sysfs = Sysfs::new(node.sysfs.root());
    let pool =
        PoolSpec::from_value("pool", &json!({"name": "bench", "pfNames": [node.pf]})).unwrap();
    let claims = AtomicUsize::new(0);
    let empty = AtomicUsize::new(0);
    let live = "/proc/self/ns/net";
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (state, sysfs, pool, claims, empty) = (&state, &sysfs, &pool, &claims, &empty);
            s.spawn(move || {
                let alloc = VfAllocator::new(sysfs, state);
                let mut i = 0;
                while start.elapsed() < duration {
                    let owner = Owner {
                        container_id: format!("a{t}x{i}"),
                        ifname: "net1".into(),
                        netns: live.into(),
                        pod: None,
                        pod_uid: None,
                    };
                    i += 1;
                    match alloc.claim_from_pool(pool, &owner) {
                        Ok(claim) => {
                            claims.fetch_add(1, Ordering::Relaxed);
                            let lock = claim.lock;
                            drop(lock);
                            // Release under the lock, as DEL does.
                            let lock = state
                                .lock_vf(&claim.vf.addr, Duration::from_secs(10))
                                .unwrap();
                            assert!(alloc.release(&lock, &owner).unwrap());
                        }
                        Err(e) => {
                            assert_eq!(e.code().code(), 11, "{e}");
                            empty.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = claims.load(Ordering::Relaxed);
    println!(
        "allocator claim+release, {threads} threads, {} VFs: {:.0} claims/s ({n} in {secs:.1} s, {} pool-empty answers)",
        node.vfs.len(),
        n as f64 / secs,
        empty.load(Ordering::Relaxed)
    );
}

fn pool_add_del_throughput(node: &Node, threads: usize, duration: Duration) {
    let conf = node.conf(json!({"pool": {"name": "bench", "pfNames": [node.pf]}}));
    let done = AtomicUsize::new(0);
    let empty = AtomicUsize::new(0);
    let pods: Vec<TestNetns> = (0..threads).map(|_| TestNetns::new()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (t, pod) in pods.iter().enumerate() {
            let (node, conf, done, empty) = (node, &conf, &done, &empty);
            s.spawn(move || {
                node.in_host(|| {
                    let rt = runtime();
                    let mut i = 0;
                    while start.elapsed() < duration {
                        let cid = format!("p{t}x{i}");
                        i += 1;
                        let (_, code) = node.dispatch(&rt, "ADD", &cid, pod.path_str(), conf);
                        if code != 0 {
                            empty.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        node.call(&rt, "DEL", &cid, pod.path_str(), conf);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "pool ADD+DEL (netdev moves), {threads} threads, {} VFs: {:.0} attachments/s ({n} in {secs:.1} s, {} refused: pool empty)",
        node.vfs.len(),
        n as f64 / secs,
        empty.load(Ordering::Relaxed)
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench: needs root (it creates network namespaces and veth links)");
        std::process::exit(2);
    }
    let a = args();
    let node = node(a.vfs.max(1));
    println!(
        "multinet-sriov bench: {} iterations, {} threads, {} VFs ({} build)",
        a.iterations,
        a.threads,
        a.vfs,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let vf = node.vfs[0].clone();
    latency(
        &node,
        a.iterations,
        &node.conf(json!({"deviceID": vf})),
        "VF, no IPAM",
    );
    latency(
        &node,
        a.iterations,
        &node.conf(json!({"deviceID": vf, "ipam": node.ipam()})),
        "VF, host-local in-process",
    );
    latency(
        &node,
        a.iterations,
        &node.conf(json!({"deviceID": vf, "mac": "02:5a:00:00:00:01", "ipam": node.ipam()})),
        "VF, host-local, MAC",
    );
    dra_latency(&node, a.iterations);
    allocator_throughput(&node, a.threads, Duration::from_secs(2));
    prepare_throughput(&node, a.threads, Duration::from_secs(2));
    pool_add_del_throughput(&node, a.threads, Duration::from_secs(3));
}
