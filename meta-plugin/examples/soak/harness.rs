//! The soak harness: one pod with a cluster network and three secondary networks is added and
//! deleted over and over through the multinet binary, called exactly as a runtime calls it
//! (CNI_* variables, the config on stdin), while the harness SIGKILLs multinet or one of the
//! delegates it exec'd at random moments, injects Kubernetes API faults and sometimes runs GC.
//! After every cycle it counts what was left behind.
//!
//! The node (a network namespace of its own):
//! - cluster network: the reference `bridge` with the reference `host-local`, both exec'd;
//! - `soak/data`: our macvlan with our host-local, in-process (binDir links to multinet; our
//!   delegates run host-local in-process whatever CNI_PATH holds);
//! - `soak/storage`: the REFERENCE macvlan with the reference host-local, exec'd (the macvlan
//!   installed in binDir as `ref-macvlan` beside our own; binDir's `host-local` is the reference);
//! - `soak/vfnet`: our SR-IOV delegate picking a VF from a pool on a fake NIC (fake sysfs whose
//!   VF netdevs are veth ends), with our host-local and a device-info file.
//!
//! Used by `examples/soak/main.rs` (the bench) and `tests/soak.rs` (a short run in `cargo test`).
//! Setup helpers are copied in small part from tests/common (which cannot be compiled into an
//! example: it names the test-only `CARGO_BIN_EXE_multinet`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use multinet_api_fixture::{ApiFixture, Failure};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{CniCall, CniOutput, TestNetns};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::{Value, json};

const NAMESPACE: &str = "soak";
const POD: &str = "soak";
const POD_UID: &str = "uid-soak";
const PF_ADDR: &str = "0000:3b:00.0";
const VFS: &[(&str, &str)] = &[
    ("0000:3b:02.0", "sk-vf0"),
    ("0000:3b:02.1", "sk-vf1"),
    ("0000:3b:02.2", "sk-vf2"),
    ("0000:3b:02.3", "sk-vf3"),
];
/// Interfaces a fully added pod has (lo aside).
const POD_LINKS: &[&str] = &["eth0", "net1", "net2", "net3"];
/// Delegates multinet execs (their process names), one of which a delegate kill aims at, and
/// how long (µs) after it shows up the kill may land: about how long each runs here, so most
/// kills land inside one, at different steps.
const EXECD_DELEGATES: &[(&str, u64)] = &[
    ("bridge", 8_000),
    ("ref-macvlan", 8_000),
    ("host-local", 3_000),
];
/// DEL is retried until it succeeds, at most this many times.
const MAX_DEL_ATTEMPTS: u32 = 10;
/// multinet's apiTimeoutSeconds: some slow-API faults go past it.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// How long processes orphaned by a kill may take to finish after DEL before they count as left.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Options {
    pub cycles: u64,
    pub seed: u64,
    /// The first cycle's number: `--from C --cycles 1` replays cycle C of a seed.
    pub from: u64,
    /// The multinet binary.
    pub multinet: PathBuf,
    /// Print one line per cycle.
    pub verbose: bool,
    /// Keep the state directory (and multinet's debug log) for inspection.
    pub keep: bool,
}

/// splitmix64: a small deterministic generator, one per cycle, seeded from (seed, cycle) so a
/// cycle's scenario does not depend on earlier cycles.
struct Rng(u64);

impl Rng {
    fn for_cycle(seed: u64, cycle: u64) -> Rng {
        let mut r = Rng(seed ^ cycle.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kill {
    None,
    /// SIGKILL multinet this far (as a fraction of a normal ADD's duration) into ADD.
    MultinetInAdd(f64),
    /// SIGKILL the first exec'd delegate of this name seen while ADD runs, this long after it
    /// was seen.
    DelegateInAdd(&'static str, Duration),
    /// SIGKILL multinet this far into its first DEL.
    MultinetInDel(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Fault {
    None,
    /// The next `count` API requests fail with `code`.
    FailNext {
        count: usize,
        code: u16,
    },
    /// Every API request fails with 500 until after the first DEL.
    FailAlways,
    /// Every API request is this slow until after the first DEL.
    Slow(Duration),
    /// The API refuses connections until after the first DEL.
    Down,
}

#[derive(Debug, Clone)]
struct Scenario {
    kill: Kill,
    fault: Fault,
    /// GC with no valid attachment (the runtime forgot the pod) before DEL.
    gc_before_del: bool,
    /// After a successful ADD, GC naming this pod as valid: it must keep everything.
    gc_keeps_valid: bool,
}

impl Scenario {
    fn draw(rng: &mut Rng) -> Scenario {
        let kill = match rng.below(100) {
            0..50 => Kill::None,
            50..70 => Kill::MultinetInAdd(rng.fraction() * 1.2),
            70..90 => {
                let (name, window_us) = EXECD_DELEGATES[rng.below(3) as usize];
                Kill::DelegateInAdd(name, Duration::from_micros(rng.below(window_us)))
            }
            _ => Kill::MultinetInDel(rng.fraction() * 1.2),
        };
        let fault = match rng.below(100) {
            0..65 => Fault::None,
            65..80 => Fault::FailNext {
                count: 1 + rng.below(3) as usize,
                code: [500, 503, 429, 403, 404][rng.below(5) as usize],
            },
            80..85 => Fault::FailAlways,
            // Up to past apiTimeoutSeconds (2 s).
            85..95 => Fault::Slow(Duration::from_millis(100 + rng.below(2500))),
            _ => Fault::Down,
        };
        Scenario {
            kill,
            fault,
            gc_before_del: rng.chance(5),
            gc_keeps_valid: rng.chance(5),
        }
    }

    fn describe(&self) -> String {
        let mut s = match &self.kill {
            Kill::None => "no kill".to_string(),
            Kill::MultinetInAdd(f) => format!("kill multinet at {:.0}% of ADD", f * 100.0),
            Kill::DelegateInAdd(d, after) => {
                format!("kill delegate {d} {} ms into it, in ADD", after.as_millis())
            }
            Kill::MultinetInDel(f) => format!("kill multinet at {:.0}% of DEL", f * 100.0),
        };
        match &self.fault {
            Fault::None => {}
            Fault::FailNext { count, code } => {
                let _ = write!(s, ", API: next {count} requests fail {code}");
            }
            Fault::FailAlways => s.push_str(", API: every request fails 500"),
            Fault::Slow(d) => {
                let _ = write!(s, ", API: {} ms per request", d.as_millis());
            }
            Fault::Down => s.push_str(", API: down"),
        }
        if self.gc_keeps_valid {
            s.push_str(", GC with the pod valid");
        }
        if self.gc_before_del {
            s.push_str(", GC before DEL");
        }
        s
    }
}

/// The soak reaps adopted orphans with waitpid(-1): tests that spawn processes in the same test
/// binary hold this while they run.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One thing left behind, first seen after `cycle`.
#[derive(Debug, Clone)]
pub struct Leak {
    pub kind: &'static str,
    pub item: String,
    pub cycle: u64,
    pub scenario: String,
}

/// What the run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub cycles: u64,
    pub kills: BTreeMap<String, u64>,
    /// Delegate kills that found no delegate to kill (ADD ended first).
    pub delegate_kills_missed: u64,
    pub faults: BTreeMap<String, u64>,
    pub gc_runs: u64,
    pub gc_failed: u64,
    pub add_ok: u64,
    pub add_failed: u64,
    pub add_killed: u64,
    pub add_errors: BTreeMap<String, u64>,
    pub del_errors: BTreeMap<String, u64>,
    pub del_attempts_max: u32,
    /// Cycles whose DEL never succeeded, with the last answer.
    pub del_never_succeeded: Vec<(u64, String)>,
    pub add_times: Vec<Duration>,
    pub del_times: Vec<Duration>,
    pub leaks: Vec<Leak>,
    /// Links left inside the pod's netns that nobody can prove multinet made: an exec'd plugin
    /// killed between creating its link under a temporary name and renaming it (the reference
    /// macvlan does this). No multinet tag, no address, not one of the pod's interface names:
    /// multinet never deletes such a link (it may be the pod's own), and it goes with the netns
    /// when the runtime removes the sandbox. Counted and shown, not a leak of the node.
    pub unclaimed_pod_links: Vec<Leak>,
    /// Broken promises other than leaks (an ADD that said ok without its links, GC removing a
    /// valid pod's attachments), with cycle and scenario.
    pub violations: Vec<Leak>,
}

impl Report {
    pub fn leaks_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut m: BTreeMap<&'static str, usize> = LEAK_KINDS.iter().map(|k| (*k, 0)).collect();
        for l in &self.leaks {
            *m.entry(l.kind).or_default() += 1;
        }
        m
    }

    pub fn violations_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for v in &self.violations {
            *m.entry(v.kind).or_default() += 1;
        }
        m
    }

    /// Every broken promise of the run, one line each; empty when the run was clean.
    pub fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .leaks_by_kind()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k} leaked"))
            .collect();
        if !self.del_never_succeeded.is_empty() {
            p.push(format!(
                "DEL never succeeded in {} cycles",
                self.del_never_succeeded.len()
            ));
        }
        p.extend(
            self.violations_by_kind()
                .into_iter()
                .map(|(k, n)| format!("{n} x {k}")),
        );
        p
    }

    pub fn clean(&self) -> bool {
        self.leaks.is_empty() && self.violations.is_empty() && self.del_never_succeeded.is_empty()
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let pct = |v: &[Duration], p: usize| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let mut v = v.to_vec();
            v.sort();
            v[(v.len() - 1) * p / 100].as_secs_f64() * 1000.0
        };
        let _ = writeln!(o, "soak: {} cycles, seed {}", self.cycles, self.seed);
        let _ = writeln!(
            o,
            "kills: {}; delegate kills that found no delegate running: {}",
            join_counts(&self.kills),
            self.delegate_kills_missed
        );
        let _ = writeln!(o, "API faults: {}", join_counts(&self.faults));
        let _ = writeln!(o, "GC runs: {} ({} failed)", self.gc_runs, self.gc_failed);
        let _ = writeln!(
            o,
            "ADD: {} ok, {} failed with a CNI error, {} killed",
            self.add_ok, self.add_failed, self.add_killed
        );
        for (msg, n) in top(&self.add_errors, 6) {
            let _ = writeln!(o, "  {n:>6} x {msg}");
        }
        let _ = writeln!(
            o,
            "DEL: attempts until success max {}; never succeeded: {}",
            self.del_attempts_max,
            self.del_never_succeeded.len()
        );
        for (msg, n) in top(&self.del_errors, 6) {
            let _ = writeln!(o, "  {n:>6} x failed attempt: {msg}");
        }
        for (cycle, last) in self.del_never_succeeded.iter().take(5) {
            let _ = writeln!(o, "  cycle {cycle}: {last}");
        }
        let _ = writeln!(
            o,
            "ADD ms (ok, not killed): p50 {:.1} p99 {:.1} ({} samples); DEL ms (the successful \
             attempt): p50 {:.1} p99 {:.1}",
            pct(&self.add_times, 50),
            pct(&self.add_times, 99),
            self.add_times.len(),
            pct(&self.del_times, 50),
            pct(&self.del_times, 99),
        );
        let _ = writeln!(
            o,
            "leaks by kind: {}",
            self.leaks_by_kind()
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            o,
            "untagged links left in the pod netns by a plugin killed mid-ADD (not multinet's, \
             removed with the netns): {}",
            self.unclaimed_pod_links.len()
        );
        for l in self.unclaimed_pod_links.iter().take(3) {
            let _ = writeln!(
                o,
                "  {} after cycle {} ({}; replay: --seed {} --from {} --cycles 1)",
                l.item, l.cycle, l.scenario, self.seed, l.cycle
            );
        }
        // The first few of each kind, with the cycle and scenario that reproduce them.
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &self.leaks {
            let n = shown.entry(l.kind).or_default();
            *n += 1;
            if *n <= 5 {
                let _ = writeln!(
                    o,
                    "  {}: {} after cycle {} ({}; replay: --seed {} --from {} --cycles 1)",
                    l.kind, l.item, l.cycle, l.scenario, self.seed, l.cycle
                );
            }
        }
        let _ = writeln!(
            o,
            "violations: {}",
            if self.violations.is_empty() {
                "none".to_string()
            } else {
                self.violations_by_kind()
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            let n = shown.entry(v.kind).or_default();
            *n += 1;
            if *n <= 3 {
                let _ = writeln!(
                    o,
                    "  {}: {} in cycle {} ({})",
                    v.kind, v.item, v.cycle, v.scenario
                );
            }
        }
        let _ = writeln!(
            o,
            "{}",
            if self.clean() {
                "result: 0 leaks, every DEL succeeded"
            } else {
                "result: FAILED"
            }
        );
        o
    }
}

pub const LEAK_KINDS: &[&str] = &[
    "pod-links",
    "node-links",
    "node-links-missing",
    "ip-reservations",
    "vf-owners",
    "records",
    "device-info",
    "temp-files",
    "locks",
    "processes",
];

fn join_counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn top(m: &BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.truncate(n);
    v
}

/// A message reduced to its kind: digits and addresses vary per cycle.
fn error_kind(msg: &str) -> String {
    let mut s: String = msg
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    if s.len() > 140 {
        let mut end = 140;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The node: its namespace, state folder, fake NIC and the API fixture serving pod and NADs.
pub struct Node {
    pub ns: TestNetns,
    dir: tempfile::TempDir,
    multinet: PathBuf,
    api: ApiFixture,
    conf: Value,
    sysfs: FakeSysfs,
}

impl Node {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    pub fn new(multinet: &Path, log_level: &str) -> Node {
        let ns = TestNetns::new();
        let dir = tempfile::tempdir().unwrap();
        let p = |rel: &str| dir.path().join(rel);
        for d in [
            "bin",
            "net.d",
            "cni",
            "ipam",
            "sriov",
            "devinfo/cni",
            "devinfo/dp",
        ] {
            fs::create_dir_all(p(d)).unwrap();
        }
        // binDir: our delegates as links to multinet (in-process), the reference ones beside.
        // host-local is the reference binary: exec'd plugins (bridge, ref-macvlan) run it, while
        // our macvlan and sriov run their host-local in-process whatever CNI_PATH holds.
        for own in ["multinet", "macvlan", "sriov"] {
            std::os::unix::fs::symlink(multinet, p("bin").join(own)).unwrap();
        }
        for (name, reference) in [
            ("bridge", "bridge"),
            ("ref-macvlan", "macvlan"),
            ("host-local", "host-local"),
        ] {
            let src = Path::new("/usr/lib/cni").join(reference);
            assert!(
                src.exists(),
                "{} missing: install containernetworking-plugins",
                src.display()
            );
            std::os::unix::fs::symlink(&src, p("bin").join(name)).unwrap();
        }
        let veth = |name: &str| {
            let peer = format!("{name}p");
            ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", name, "up"]);
            ns.ip(&["link", "set", &peer, "up"]);
        };
        for up in ["up0", "up1", "sk-pf0"] {
            veth(up);
        }
        let mut spec = PfSpec::new(PF_ADDR, "sk-pf0");
        for (addr, vf) in VFS {
            veth(vf);
            spec = spec.vf(addr, vf);
        }
        let sysfs = FakeSysfs::builder(SysfsLayout::SriovCni).pf(spec).build();

        let ipam_dir = p("ipam");
        let ref_ipam = |subnet: &str| json!({"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam_dir});
        let own_ipam = |subnet: &str| json!({"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam_dir});
        let cluster = json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
            {"type": "bridge", "bridge": "sk-cni0", "isGateway": true, "ipam": ref_ipam("10.99.0.0/24")}]});
        fs::write(p("net.d/10-cluster.conflist"), cluster.to_string()).unwrap();

        // The fixture's threads live in the namespace of the thread that starts them: the node's.
        let node_ns = multinet_netlink::Netns::open(ns.path()).unwrap();
        let api = multinet_netlink::run_in_netns(&node_ns, ApiFixture::start_blocking)
            .unwrap()
            .unwrap();
        let nads = [
            json!({"cniVersion": "1.0.0", "name": "data", "type": "macvlan", "master": "up0",
                   "mode": "bridge", "ipam": own_ipam("10.10.0.0/24")}),
            json!({"cniVersion": "1.0.0", "name": "storage", "type": "ref-macvlan",
                   "master": "up1", "mode": "bridge", "ipam": ref_ipam("10.20.0.0/24")}),
            json!({"cniVersion": "1.0.0", "name": "vfnet", "type": "sriov",
                   "capabilities": {"CNIDeviceInfoFile": true},
                   "pool": {"name": "soak_nic", "pfNames": ["sk-pf0#0-3"]},
                   "ipam": own_ipam("10.30.0.0/24")}),
        ];
        for nad in nads {
            api.insert(json!({
                "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": nad["name"], "namespace": NAMESPACE},
                "spec": {"config": nad.to_string()}
            }))
            .unwrap();
        }
        api.insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": POD, "namespace": NAMESPACE, "uid": POD_UID,
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "data,storage,vfnet"}}
        }))
        .unwrap();
        api.write_kubeconfig(p("kubeconfig")).unwrap();
        let conf = json!({
            "cniVersion": "1.1.0", "name": "multinet", "type": "multinet",
            "clusterNetwork": "cluster",
            "confDir": p("net.d"), "cniDir": p("cni"), "binDir": p("bin"),
            "kubeconfig": p("kubeconfig"), "apiTimeoutSeconds": API_TIMEOUT.as_secs(),
            "deviceInfoDir": p("devinfo/cni"), "devicePluginInfoDir": p("devinfo/dp"),
            "logLevel": log_level, "logFile": p("multinet.log")
        });
        Node {
            ns,
            dir,
            multinet: multinet.to_path_buf(),
            api,
            conf,
            sysfs,
        }
    }

    /// A call of the multinet binary in the node namespace, as a runtime makes it.
    fn call(&self, command: &str, container: &str, netns: &str) -> CniCall {
        CniCall::new(&self.multinet, command)
            .in_netns(&self.ns)
            .container_id(container)
            .netns(netns)
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={POD};\
                 K8S_POD_UID={POD_UID};K8S_POD_INFRA_CONTAINER_ID={container}"
            ))
            .path(self.bin())
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.path("sriov"))
            .env("MULTINET_DEVINFO_DIR", self.path("devinfo"))
            .stdin_json(&self.conf)
    }

    /// GC naming `valid` as the containers that still exist.
    fn gc(&self, valid: &[&str]) -> CniOutput {
        let mut conf = self.conf.clone();
        conf["cni.dev/valid-attachments"] = valid
            .iter()
            .map(|c| json!({"containerID": c, "ifname": "eth0"}))
            .collect();
        CniCall::new(&self.multinet, "GC")
            .in_netns(&self.ns)
            .path(self.bin())
            .env("MULTINET_SYSFS_ROOT", self.sysfs.root())
            .env("MULTINET_SRIOV_STATE_DIR", self.path("sriov"))
            .env("MULTINET_DEVINFO_DIR", self.path("devinfo"))
            .stdin_json(&conf)
            .run()
    }

    fn apply(&self, fault: &Fault) {
        let faults = self.api.faults();
        match fault {
            Fault::None => {}
            Fault::FailNext { count, code } => {
                let failure = if *code == 429 {
                    Failure::too_many_requests(1)
                } else {
                    Failure::code(*code)
                };
                faults.fail_next(*count, failure);
            }
            Fault::FailAlways => faults.fail_always(
                multinet_api_fixture::RequestFilter::any(),
                Failure::code(500),
            ),
            Fault::Slow(d) => faults.set_latency(*d),
            Fault::Down => faults.stop_listening().unwrap(),
        }
    }

    fn heal(&self, fault: &Fault) {
        let faults = self.api.faults();
        faults.reset();
        if *fault == Fault::Down {
            faults.restart().unwrap();
        }
    }

    /// Everything the soak counts as possibly left behind, by kind.
    pub fn state(&self, pod: Option<&TestNetns>) -> BTreeMap<&'static str, BTreeSet<String>> {
        let mut s: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        if let Some(pod) = pod {
            for (claimed, link) in described_links(pod) {
                let kind = if claimed {
                    "pod-links"
                } else {
                    UNCLAIMED_POD_LINKS
                };
                s.entry(kind).or_default().insert(link);
            }
        }
        s.insert("node-links", links(&self.ns).into_iter().collect());
        let rel = |p: &Path| {
            p.strip_prefix(self.dir.path())
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let mut files = Vec::new();
        walk(self.dir.path(), &mut files);
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let r = rel(&f);
            let kind = if name.starts_with('.') && name.contains(".tmp") {
                "temp-files"
            } else if r.starts_with("ipam/") {
                // host-local keeps its lock and round-robin cursor by design.
                if name == "lock" || name.starts_with("last_reserved_ip") {
                    continue;
                }
                "ip-reservations"
            } else if r.starts_with("sriov/") {
                if r.starts_with("sriov/pci/vf_lock/") || name.ends_with(".lock") {
                    continue;
                }
                "vf-owners"
            } else if r.starts_with("cni/") || r.starts_with("devinfo/") {
                // Only host-local's and the VFs' locks are kept by design (one per network or
                // VF); a lock per container would pile up.
                if name.ends_with(".lock") || name == "lock" {
                    "locks"
                } else if r.starts_with("cni/") {
                    "records"
                } else {
                    "device-info"
                }
            } else {
                continue;
            };
            s.entry(kind).or_default().insert(r);
        }
        s
    }
}

/// Link names in a namespace, lo aside.
fn links(ns: &TestNetns) -> Vec<String> {
    ns.ip_json(&["link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .filter(|n| n != "lo")
        .collect()
}

/// The kind of a pod link nobody can prove multinet made (see `Report::unclaimed_pod_links`).
pub const UNCLAIMED_POD_LINKS: &str = "pod-links-unclaimed";

/// Links in a pod namespace, lo aside, with what tells who made them: kind, state, addresses;
/// each marked claimed when it has one of the pod's interface names, a multinet tag, a
/// multinet pending name or an address.
fn described_links(ns: &TestNetns) -> Vec<(bool, String)> {
    ns.ip_json(&["-d", "addr", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .map(|l| {
            let addrs: Vec<String> = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["scope"] == "global")
                .filter_map(|a| a["local"].as_str().map(str::to_string))
                .collect();
            let name = l["ifname"].as_str().unwrap_or("?");
            let tagged = l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with("multinet:"));
            // A link multinet's own driver was stopped from naming keeps its pending name,
            // which marks it as multinet's (every pod here is a fresh netns of one container).
            let pending = name.len() == 15
                && name.starts_with("mn")
                && name[2..].bytes().all(|b| b.is_ascii_hexdigit());
            let claimed = tagged || pending || !addrs.is_empty() || POD_LINKS.contains(&name);
            let described = format!(
                "pod:{} ({} {}{}{}{})",
                name,
                l["linkinfo"]["info_kind"].as_str().unwrap_or("-"),
                l["operstate"].as_str().unwrap_or("?"),
                if tagged { " tagged" } else { "" },
                if addrs.is_empty() { "" } else { " " },
                addrs.join(" ")
            );
            (claimed, described)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
}

/// (pid, parent pid, process name) of every process.
fn process_table() -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        if state == "Z" {
            continue;
        }
        if let Some(ppid) = rest.next().and_then(|p| p.parse().ok()) {
            out.push((pid, ppid, comm));
        }
    }
    out
}

/// Living descendants of `root` (not root itself), with their names.
pub fn descendants(root: i32) -> Vec<(i32, String)> {
    let table = process_table();
    let mut found: Vec<(i32, String)> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, ppid, comm) in &table {
            if *ppid == parent && !found.iter().any(|(p, _)| p == pid) {
                found.push((*pid, comm.clone()));
                parents.push(*pid);
            }
        }
    }
    found
}

/// Whether `pid` exists and is not a zombie (a kill of a zombie "succeeds" but hits nothing).
fn is_running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

/// Reaps children that were adopted (this process is a subreaper) and have exited.
fn reap_orphans() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

enum Outcome {
    Ok(Value),
    /// A CNI error: code and message.
    Failed(u64, String),
    /// Ended by a signal (our kill).
    Killed,
}

fn outcome(out: &CniOutput) -> Outcome {
    if out.status.code().is_none() {
        return Outcome::Killed;
    }
    let json: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    if out.success() {
        Outcome::Ok(json)
    } else {
        let msg = json["msg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("exit {}: {} {}", out.code(), out.stdout, out.stderr));
        Outcome::Failed(json["code"].as_u64().unwrap_or(0), msg)
    }
}

/// Waits for `child`, SIGKILLing it `after` from now if it still runs.
fn kill_after(child: Child, after: Duration) -> (CniOutput, bool) {
    let mut child = child;
    let deadline = Instant::now() + after;
    let mut killed = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            // `ip netns exec` execs multinet: the child is multinet itself.
            killed = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).is_ok();
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (CniOutput::wait(child), killed)
}

/// Waits for `child`, SIGKILLing the first descendant named `delegate` that shows up, `after`
/// it was seen.
fn kill_delegate(child: Child, delegate: &str, after: Duration) -> (CniOutput, bool) {
    let mut child = child;
    let root = child.id() as i32;
    let mut killed = false;
    while !killed && child.try_wait().unwrap().is_none() {
        if let Some((pid, _)) = descendants(root).into_iter().find(|(_, c)| c == delegate) {
            std::thread::sleep(after);
            // It may have finished meanwhile: then the next one of that name is the target.
            killed = is_running(pid) && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok();
        }
        // Delegates live for milliseconds; a short pause leaves the CPU to them.
        std::thread::sleep(Duration::from_micros(200));
    }
    (CniOutput::wait(child), killed)
}

/// Runs the soak and returns its report.
pub fn run(opts: &Options) -> Report {
    // Delegates orphaned by a kill are re-parented here, so they can be found and reaped.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    // A debug log only when the state is kept for inspection: it grows by megabytes per cycle.
    let node = Node::new(&opts.multinet, if opts.keep { "debug" } else { "info" });
    let (normal_add, baseline_links) = warm_up(&node);
    let mut soak = Soak {
        node,
        normal_add,
        baseline_links,
        seen: BTreeSet::new(),
        report: Report {
            seed: opts.seed,
            cycles: opts.cycles,
            ..Report::default()
        },
    };
    for cycle in opts.from..opts.from + opts.cycles {
        soak.cycle(opts.seed, cycle, opts.verbose);
    }
    if opts.keep {
        let kept = soak.node.dir.keep();
        eprintln!("state kept in {}", kept.display());
    }
    soak.report
}

/// A clean pod first: it creates the cluster bridge (kept by design) and times a normal ADD, the
/// scale for kill moments. Returns that time and the node's links afterwards (the baseline).
fn warm_up(node: &Node) -> (Duration, BTreeSet<String>) {
    let warm = TestNetns::new();
    let started = Instant::now();
    let add = node.call("ADD", "soak-warmup", warm.path_str()).run();
    let normal_add = started.elapsed();
    assert!(
        add.success(),
        "warm-up ADD failed: {} {}",
        add.stdout,
        add.stderr
    );
    assert_eq!(links(&warm).len(), POD_LINKS.len(), "warm-up pod links");
    let del = node.call("DEL", "soak-warmup", warm.path_str()).run();
    assert!(
        del.success(),
        "warm-up DEL failed: {} {}",
        del.stdout,
        del.stderr
    );
    drop(warm);
    wait_for_no_veth_peers(node);
    let baseline = node.state(None);
    assert!(
        baseline
            .iter()
            .all(|(k, v)| *k == "node-links" || v.is_empty()),
        "the warm-up pod left state: {baseline:?}"
    );
    (normal_add, baseline["node-links"].clone())
}

fn count(m: &mut BTreeMap<String, u64>, key: String) {
    *m.entry(key).or_default() += 1;
}

/// The run in progress.
struct Soak {
    node: Node,
    normal_add: Duration,
    baseline_links: BTreeSet<String>,
    /// Leftovers already reported (kind, item): each is reported once, in the cycle it appeared.
    seen: BTreeSet<(&'static str, String)>,
    report: Report,
}

/// One cycle's identity, for what it reports.
struct CycleRef<'a> {
    cycle: u64,
    container: &'a str,
    scenario: &'a Scenario,
    describe: &'a str,
}

impl CycleRef<'_> {
    fn problem(&self, kind: &'static str, item: String) -> Leak {
        Leak {
            kind,
            item,
            cycle: self.cycle,
            scenario: self.describe.to_string(),
        }
    }
}

impl Soak {
    fn cycle(&mut self, seed: u64, cycle: u64, verbose: bool) {
        let scenario = Scenario::draw(&mut Rng::for_cycle(seed, cycle));
        let container = format!("soak-{cycle}");
        let describe = scenario.describe();
        let at = CycleRef {
            cycle,
            container: &container,
            scenario: &scenario,
            describe: &describe,
        };
        let pod = TestNetns::new();
        self.inject(&scenario.fault);
        let add_ok = self.add(&at, &pod);
        self.gc(&at, &pod, add_ok);
        let (attempts, deleted) = self.delete_until_done(&at, &pod);
        let orphans = orphans_left();
        let mut state = self.node.state(Some(&pod));
        state.insert("processes", orphans);
        for (kind, item) in new_leaks(state, &self.baseline_links, &mut self.seen) {
            if kind == UNCLAIMED_POD_LINKS {
                self.report.unclaimed_pod_links.push(at.problem(kind, item));
            } else {
                self.report.leaks.push(at.problem(kind, item));
            }
        }
        if verbose {
            eprintln!(
                "cycle {cycle}: {describe}: ADD {}, DEL after {attempts} attempt(s){}; leaks so far {}",
                if add_ok { "ok" } else { "not ok" },
                if deleted { "" } else { " NEVER succeeded" },
                self.report.leaks.len()
            );
        }
    }

    fn inject(&mut self, fault: &Fault) {
        self.node.apply(fault);
        let name = match fault {
            Fault::None => return,
            Fault::FailNext { code, .. } => format!("error {code}"),
            Fault::FailAlways => "always 500".into(),
            Fault::Slow(d) if *d >= API_TIMEOUT => "slow (past apiTimeoutSeconds)".into(),
            Fault::Slow(_) => "slow".into(),
            Fault::Down => "down".into(),
        };
        count(&mut self.report.faults, name);
    }

    /// ADD, with the scenario's kill; true when it succeeded.
    fn add(&mut self, at: &CycleRef, pod: &TestNetns) -> bool {
        let report = &mut self.report;
        let started = Instant::now();
        let child = self.node.call("ADD", at.container, pod.path_str()).spawn();
        let (out, killed) = match &at.scenario.kill {
            Kill::MultinetInAdd(f) => kill_after(child, self.normal_add.mul_f64(*f)),
            Kill::DelegateInAdd(d, after) => kill_delegate(child, d, *after),
            _ => (CniOutput::wait(child), false),
        };
        let add_time = started.elapsed();
        match &at.scenario.kill {
            Kill::MultinetInAdd(_) if killed => count(&mut report.kills, "multinet in ADD".into()),
            Kill::DelegateInAdd(d, _) if killed => {
                count(&mut report.kills, format!("delegate {d} in ADD"))
            }
            Kill::DelegateInAdd(..) => report.delegate_kills_missed += 1,
            _ => {}
        }
        match outcome(&out) {
            Outcome::Ok(_) => {
                report.add_ok += 1;
                if !killed {
                    report.add_times.push(add_time);
                }
                let mut have = links(pod);
                have.sort();
                if have != POD_LINKS {
                    report
                        .violations
                        .push(at.problem("add-ok-without-its-links", format!("{have:?}")));
                }
                true
            }
            Outcome::Failed(code, msg) => {
                report.add_failed += 1;
                if code == 0 {
                    // The spec's error codes start at 1: a runtime cannot tell what 0 means.
                    let answer = serde_json::from_str::<Value>(&out.stdout)
                        .map(|v| v.to_string())
                        .unwrap_or_else(|_| out.stdout.trim().to_string());
                    report
                        .violations
                        .push(at.problem("add-error-without-a-code", answer));
                }
                count(
                    &mut report.add_errors,
                    format!("[{code}] {}", error_kind(&msg)),
                );
                false
            }
            Outcome::Killed => {
                report.add_killed += 1;
                false
            }
        }
    }

    /// GC naming the pod valid must keep all of it; GC naming nothing valid stands for a runtime
    /// that forgot the pod.
    fn gc(&mut self, at: &CycleRef, pod: &TestNetns, add_ok: bool) {
        let report = &mut self.report;
        if add_ok && at.scenario.gc_keeps_valid {
            report.gc_runs += 1;
            if !self.node.gc(&[at.container]).success() {
                report.gc_failed += 1;
            }
            let mut have = links(pod);
            have.sort();
            let record = self
                .node
                .path(&format!("cni/attachments/{}.json", at.container));
            if have != POD_LINKS || !record.exists() {
                let item = format!("links {have:?}, record exists: {}", record.exists());
                report
                    .violations
                    .push(at.problem("gc-removed-a-valid-pod", item));
            }
        }
        if at.scenario.gc_before_del {
            report.gc_runs += 1;
            if !self.node.gc(&[]).success() {
                report.gc_failed += 1;
            }
        }
    }

    /// DEL until it succeeds, at most MAX_DEL_ATTEMPTS times; the API fault lasts through the
    /// first attempt. Returns the attempts made and whether one succeeded.
    fn delete_until_done(&mut self, at: &CycleRef, pod: &TestNetns) -> (u32, bool) {
        let report = &mut self.report;
        let mut attempts = 0;
        let mut last = String::new();
        let mut deleted = false;
        while attempts < MAX_DEL_ATTEMPTS && !deleted {
            if attempts > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            attempts += 1;
            let started = Instant::now();
            let child = self.node.call("DEL", at.container, pod.path_str()).spawn();
            let (out, killed) = match &at.scenario.kill {
                Kill::MultinetInDel(f) if attempts == 1 => {
                    kill_after(child, self.normal_add.mul_f64(*f / 2.0))
                }
                _ => (CniOutput::wait(child), false),
            };
            let del_time = started.elapsed();
            if killed {
                count(&mut report.kills, "multinet in DEL".into());
            }
            if attempts == 1 {
                self.node.heal(&at.scenario.fault);
            }
            match outcome(&out) {
                Outcome::Ok(_) => {
                    report.del_times.push(del_time);
                    deleted = true;
                }
                Outcome::Failed(code, msg) => {
                    last = format!("[{code}] {msg}");
                    count(
                        &mut report.del_errors,
                        format!("[{code}] {}", error_kind(&msg)),
                    );
                }
                Outcome::Killed => last = "killed".into(),
            }
        }
        report.del_attempts_max = report.del_attempts_max.max(attempts);
        if !deleted {
            report.del_never_succeeded.push((at.cycle, last));
        }
        (attempts, deleted)
    }
}

/// Processes orphaned by a kill get a grace period to finish; those still running then are left
/// behind: they are named, then killed and reaped so the next cycle starts clean.
fn orphans_left() -> BTreeSet<String> {
    let me = std::process::id() as i32;
    let grace = Instant::now() + ORPHAN_GRACE;
    let mut orphans = descendants(me);
    while !orphans.is_empty() && Instant::now() < grace {
        reap_orphans();
        std::thread::sleep(Duration::from_millis(10));
        orphans = descendants(me);
    }
    for (pid, _) in &orphans {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    reap_orphans();
    orphans
        .iter()
        .map(|(pid, comm)| format!("{comm} (pid {pid})"))
        .collect()
}

/// What `state` (by kind, node links as they are) holds that was not there at the start and was
/// not reported before: node links are compared with the baseline both ways.
fn new_leaks(
    mut state: BTreeMap<&'static str, BTreeSet<String>>,
    baseline_links: &BTreeSet<String>,
    seen: &mut BTreeSet<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let now = state.remove("node-links").unwrap_or_default();
    state.insert(
        "node-links",
        now.difference(baseline_links).cloned().collect(),
    );
    state.insert(
        "node-links-missing",
        baseline_links.difference(&now).cloned().collect(),
    );
    let mut out = Vec::new();
    for (kind, items) in state {
        for item in items {
            if seen.insert((kind, item.clone())) {
                out.push((kind, item));
            }
        }
    }
    out
}

/// The bridge's host-side veths go with the pod's netns, asynchronously: wait for them.
fn wait_for_no_veth_peers(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && links(&node.ns).iter().any(|l| l.starts_with("veth")) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_scenario_depends_on_seed_and_cycle_only() {
        let draw = |seed, cycle| Scenario::draw(&mut Rng::for_cycle(seed, cycle)).describe();
        assert_eq!(draw(7, 41), draw(7, 41));
        let all: BTreeSet<String> = (0..50).map(|c| draw(7, c)).collect();
        assert!(all.len() > 25, "cycles draw different scenarios: {all:?}");
        assert_ne!(
            (0..20).map(|c| draw(7, c)).collect::<Vec<_>>(),
            (0..20).map(|c| draw(8, c)).collect::<Vec<_>>()
        );
    }

    /// An enum value's variant name, from its Debug form.
    fn variant(debug: String) -> String {
        debug.split(['(', ' ']).next().unwrap_or("").to_string()
    }

    #[test]
    fn every_kill_and_fault_kind_is_drawn() {
        let scenarios: Vec<Scenario> = (0..2000)
            .map(|c| Scenario::draw(&mut Rng::for_cycle(1, c)))
            .collect();
        let kills: BTreeSet<String> = scenarios
            .iter()
            .map(|s| variant(format!("{:?}", s.kill)))
            .collect();
        assert_eq!(kills.len(), 4, "{kills:?}");
        for (d, _) in EXECD_DELEGATES {
            assert!(
                scenarios
                    .iter()
                    .any(|s| matches!(s.kill, Kill::DelegateInAdd(x, _) if x == *d)),
                "{d} never aimed at"
            );
        }
        let faults: BTreeSet<String> = scenarios
            .iter()
            .map(|s| variant(format!("{:?}", s.fault)))
            .collect();
        assert_eq!(faults.len(), 5, "{faults:?}");
        assert!(scenarios.iter().any(|s| s.gc_before_del));
        assert!(scenarios.iter().any(|s| s.gc_keeps_valid));
    }

    #[test]
    fn new_leaks_are_reported_once_and_node_links_both_ways() {
        let baseline: BTreeSet<String> = ["up0".to_string(), "sk-vf0".to_string()].into();
        let mut seen = BTreeSet::new();
        let state = |node: &[&str], records: &[&str]| {
            let mut s: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
            s.insert("node-links", node.iter().map(|x| x.to_string()).collect());
            s.insert("records", records.iter().map(|x| x.to_string()).collect());
            s
        };
        assert_eq!(
            new_leaks(state(&["up0", "sk-vf0"], &[]), &baseline, &mut seen),
            vec![]
        );
        assert_eq!(
            new_leaks(
                state(&["up0", "veth1"], &["cni/attachments/a.json"]),
                &baseline,
                &mut seen
            ),
            vec![
                ("node-links", "veth1".to_string()),
                ("node-links-missing", "sk-vf0".to_string()),
                ("records", "cni/attachments/a.json".to_string()),
            ]
        );
        // Still there a cycle later: already reported.
        assert_eq!(
            new_leaks(
                state(&["up0", "veth1"], &["cni/attachments/a.json"]),
                &baseline,
                &mut seen
            ),
            vec![]
        );
    }

    #[test]
    fn an_error_kind_ignores_numbers_and_is_bounded() {
        assert_eq!(error_kind("cycle 12 ip 10.0.0.3"), "cycle ## ip ##.#.#.#");
        assert!(error_kind(&"é".repeat(200)).chars().count() <= 141);
    }
}
