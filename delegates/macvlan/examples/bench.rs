//! ADD and DEL latency of our `macvlan` binary against the reference `/usr/lib/cni/macvlan`,
//! both with host-local IPAM, run alternately in the same namespaces, plus the kernel's floor:
//! the same netlink operations done by `ip`.
//!
//! ```text
//! cargo run --release -p multinet-macvlan --example bench [-- ROUNDS]
//! ```
//!
//! Needs root. It builds the release `macvlan` binary first (cargo), makes a "host" namespace
//! with a veth as master and a "container" namespace, and runs every plugin from inside the
//! host namespace, as a runtime would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark command: fail loudly.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multinet_testbed::{CniCall, TestNetns, VethPair};

const REFERENCE: &str = "/usr/lib/cni/macvlan";
const CNI_PATH: &str = "/usr/lib/cni";

fn our_binary() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "multinet-macvlan",
            "--bin",
            "macvlan",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the macvlan binary failed");
    // target/release/examples/bench -> target/release/macvlan
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap();
    let bin = release.join("macvlan");
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// One timed plugin call; panics unless it succeeds.
fn cni(plugin: &Path, command: &str, conf: &str, netns: &Path, id: &str) -> Duration {
    let start = Instant::now();
    let out = CniCall::new(plugin, command)
        .env_clear()
        .container_id(id)
        .netns(netns)
        .ifname("eth0")
        .path(CNI_PATH)
        .stdin(conf)
        .run();
    let took = start.elapsed();
    assert!(
        out.success(),
        "{} {command} failed: {}{}",
        plugin.display(),
        out.stdout,
        out.stderr
    );
    took
}

/// One timed `ip` run; panics unless it succeeds.
fn ip(args: &[&str], batch: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(b) = batch {
        child.stdin.take().unwrap().write_all(b.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[derive(Default)]
struct Samples {
    add: Vec<Duration>,
    del: Vec<Duration>,
}

fn main() {
    if !multinet_testbed::require_root("bench") {
        std::process::exit(1);
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(31, |s| s.parse().expect("ROUNDS"));
    let ours = our_binary();
    let reference = PathBuf::from(REFERENCE);
    assert!(
        reference.exists(),
        "{REFERENCE} missing: apt-get install containernetworking-plugins"
    );

    let host = TestNetns::new();
    let container = TestNetns::new();
    let veth = VethPair::new(Some(&host), "mvbench0", Some(&host), "mvbench1");
    host.ip(&["link", "set", veth.a_name(), "up"]);
    host.ip(&["link", "set", veth.b_name(), "up"]);
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", veth.a_name()]);
    host.ip(&["route", "add", "default", "via", "192.0.2.254"]);
    // Every plugin and `ip` below runs from the host namespace, like a runtime on a node.
    let host_ns = std::fs::File::open(host.path()).unwrap();
    nix::sched::setns(host_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();

    let bench = Bench {
        ours,
        reference,
        netns: container.path().to_path_buf(),
        netns_name: container.name().to_owned(),
        rounds,
    };
    // host-local's store on disk (as /var/lib/cni/networks is on a node), then on tmpfs, where
    // a file sync costs nothing and only the plugins' own work is left.
    let pid = std::process::id();
    for (label, dir) in [
        (
            "dataDir on disk",
            std::env::temp_dir().join(format!("multinet-bench-{pid}")),
        ),
        (
            "dataDir on tmpfs",
            PathBuf::from(format!("/run/multinet-bench-{pid}")),
        ),
    ] {
        let r = bench.run(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        r.print(&format!(
            "macvlan + host-local, {rounds} rounds, {label} ({})",
            dir.display()
        ));
    }
}

struct Bench {
    ours: PathBuf,
    reference: PathBuf,
    netns: PathBuf,
    netns_name: String,
    rounds: usize,
}

struct Report {
    ours: Samples,
    reference: Samples,
    floor: Samples,
    /// Starting a process that does nothing: `/bin/true`, and each plugin's VERSION.
    start: [Vec<Duration>; 3],
}

impl Bench {
    fn run(&self, data: &Path) -> Report {
        let conf = |dir: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"bench","type":"macvlan","master":"mvbench0","mode":"bridge",
                   "ipam":{{"type":"host-local","subnet":"10.99.0.0/16","routes":[{{"dst":"0.0.0.0/0"}}],
                   "dataDir":"{}"}}}}"#,
                data.join(dir).display()
            )
        };
        let (ours_conf, ref_conf) = (conf("ours"), conf("reference"));
        let (ours, reference, cns) = (&self.ours, &self.reference, &self.netns);
        let cname = self.netns_name.as_str();
        let mut report = Report {
            ours: Samples::default(),
            reference: Samples::default(),
            floor: Samples::default(),
            start: Default::default(),
        };
        // One warm-up round each, not counted (page cache, first use of the store).
        for (bin, c) in [(ours, &ours_conf), (reference, &ref_conf)] {
            cni(bin, "ADD", c, cns, "warmup");
            cni(bin, "DEL", c, cns, "warmup");
        }
        for round in 0..self.rounds {
            let id = format!("bench{round}");
            // Alternate who goes first so drift and caches favour neither.
            let order: [(&Path, &str, bool); 2] = if round % 2 == 0 {
                [(ours, &ours_conf, true), (reference, &ref_conf, false)]
            } else {
                [(reference, &ref_conf, false), (ours, &ours_conf, true)]
            };
            for (bin, c, is_ours) in order {
                let add = cni(bin, "ADD", c, cns, &id);
                let del = cni(bin, "DEL", c, cns, &id);
                let s = if is_ours {
                    &mut report.ours
                } else {
                    &mut report.reference
                };
                s.add.push(add);
                s.del.push(del);
            }
            // The floor: the same kernel work done by `ip` (create in the netns; address, up,
            // default route; delete).
            let create = ip(
                &[
                    "link", "add", "link", "mvbench0", "name", "eth0", "netns", cname, "type",
                    "macvlan", "mode", "bridge",
                ],
                None,
            );
            let configure = ip(
                &["-n", cname, "-batch", "-"],
                Some(
                    "addr add 10.99.0.2/16 dev eth0\nlink set eth0 up\nroute add default via 10.99.0.1 dev eth0\n",
                ),
            );
            report.floor.add.push(create + configure);
            report
                .floor
                .del
                .push(ip(&["-n", cname, "link", "del", "eth0"], None));
            for (i, bin) in [Path::new("/bin/true"), ours, reference]
                .into_iter()
                .enumerate()
            {
                let version = r#"{"cniVersion":"1.0.0"}"#;
                report.start[i].push(cni(bin, "VERSION", version, cns, &id));
            }
        }
        report
    }
}

impl Report {
    fn print(mut self, title: &str) {
        let (oa, od) = (median(&mut self.ours.add), median(&mut self.ours.del));
        let (ra, rd) = (
            median(&mut self.reference.add),
            median(&mut self.reference.del),
        );
        let (fa, fd) = (median(&mut self.floor.add), median(&mut self.floor.del));
        println!("{title}, medians");
        println!("{:<28}{:>12}{:>12}", "", "ADD", "DEL");
        println!("{:<28}{:>12}{:>12}", "ours", ms(oa), ms(od));
        println!("{:<28}{:>12}{:>12}", "reference", ms(ra), ms(rd));
        println!("{:<28}{:>12}{:>12}", "floor (ip, same ops)", ms(fa), ms(fd));
        let [t, o, r] = &mut self.start;
        println!(
            "process start: /bin/true {}, ours (VERSION) {}, reference (VERSION) {}",
            ms(median(t)),
            ms(median(o)),
            ms(median(r))
        );
        println!(
            "ours / reference:  ADD {:.2}   DEL {:.2}",
            oa.as_secs_f64() / ra.as_secs_f64(),
            od.as_secs_f64() / rd.as_secs_f64()
        );
        let diff = |a: Duration, b: Duration| {
            if a >= b {
                format!("+{}", ms(a - b))
            } else {
                format!("-{}", ms(b - a))
            }
        };
        println!(
            "ours - floor:      ADD {}   DEL {}",
            diff(oa, fa),
            diff(od, fd)
        );
        println!();
    }
}
