//! A multinet process killed with SIGKILL at each step of ADD, then DEL: nothing may be left (no
//! link in the pod, no IP allocated, no attachment record). The binary stops at a named point
//! when `MULTINET_FAILPOINT` names it and writes its pid to `MULTINET_FAILPOINT_MARKER`, so the
//! kill lands exactly there. Delegates are the reference bridge, macvlan and host-local. Each
//! point is tried with the networks attached one after another (the default) and with
//! `parallelNetworks` (the two macvlans are recorded together, so "after-delegate-2" already has
//! the third).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::Node;
use multinet_testbed::{TestNetns, require_root};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const CONTAINER: &str = "crash1";
const POD: &str = "web";

/// A pod with the cluster network and two macvlan networks: three delegates.
fn node_with_pod() -> Node {
    let node = Node::new("1.0.0");
    node.add_nad("data", node.macvlan_nad("data", "up0", "10.10.0.0/24"));
    node.add_nad(
        "storage",
        node.macvlan_nad("storage", "up1", "10.20.0.0/24"),
    );
    node.add_pod("web", "data,storage@stor0");
    node
}

/// Starts ADD of the test pod, stopping at `failpoint` when one is given.
fn spawn_add(
    node: &Node,
    pod_ns: &TestNetns,
    failpoint: Option<(&str, &Path)>,
    parallel: bool,
) -> Child {
    let mut conf = node.conf();
    conf["parallelNetworks"] = parallel.into();
    let mut call = node
        .call("ADD", CONTAINER, POD, pod_ns.path_str())
        .stdin_json(&conf);
    if let Some((point, marker)) = failpoint {
        call = call
            .env("MULTINET_FAILPOINT", point)
            .env("MULTINET_FAILPOINT_MARKER", marker);
    }
    call.spawn()
}

/// An ADD stopped mid-way; killed (and reaped) on drop whatever happens in the test.
struct StoppedAdd {
    child: Child,
    /// The multinet process (`ip netns exec` execs it, so normally the child itself).
    pid: i32,
}

impl StoppedAdd {
    /// Starts ADD with `MULTINET_FAILPOINT=point` and waits until the process has reached it.
    fn at_failpoint(node: &Node, pod_ns: &TestNetns, point: &str, parallel: bool) -> StoppedAdd {
        let marker = node.path(&format!("failpoint-{point}"));
        let child = spawn_add(node, pod_ns, Some((point, &marker)), parallel);
        let mut stopped = StoppedAdd {
            pid: child.id() as i32,
            child,
        };
        stopped.wait_for(&marker);
        stopped.pid = read_pid(&marker);
        stopped
    }

    /// Starts ADD without a failpoint and waits until something it runs creates `marker`.
    fn at_marker(node: &Node, pod_ns: &TestNetns, marker: &Path) -> StoppedAdd {
        let child = spawn_add(node, pod_ns, None, true);
        let mut stopped = StoppedAdd {
            pid: child.id() as i32,
            child,
        };
        stopped.wait_for(marker);
        stopped
    }

    fn wait_for(&mut self, marker: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out);
                panic!(
                    "ADD ended ({status}) before {} appeared: {out}",
                    marker.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                marker.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as an OOM kill or a node crash would.
    fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StoppedAdd {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A pid written to a marker file (written whole: by rename, or before the marker is looked at).
fn read_pid(marker: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(pid) = fs::read_to_string(marker)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", marker.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn record(node: &Node) -> Value {
    let text = fs::read_to_string(node.path(&format!("cni/attachments/{CONTAINER}.json")))
        .expect("a stopped ADD has a record");
    serde_json::from_str(&text).unwrap()
}

/// Each attachment's state: the record's, with the journal's "added" lines (one per attachment
/// added since the plan was written) applied on top, as the plugin reads it back.
fn states(node: &Node) -> Vec<String> {
    let mut states: Vec<String> = record(node)["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap().to_string())
        .collect();
    let journal = node.path(&format!("cni/attachments/{CONTAINER}.json.journal"));
    for line in fs::read_to_string(journal).unwrap_or_default().lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        states[line["index"].as_u64().unwrap() as usize] = "added".into();
    }
    states
}

/// Host-side veths the bridge plugin made: one per pod attachment that is still alive.
fn node_veths(node: &Node) -> Vec<String> {
    node.ns
        .ip_json(&["-d", "link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "veth")
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .filter(|n| !n.starts_with("up"))
        .collect()
}

/// What the process must have done by the time it stopped at `point`.
fn assert_state_at(node: &Node, pod_ns: &TestNetns, point: &str, parallel: bool) {
    let added = match point {
        "after-record" => 0,
        "before-status" => 3,
        "after-delegate-2" if parallel => 3,
        p => p.strip_prefix("after-delegate-").unwrap().parse().unwrap(),
    };
    let want: Vec<&str> = (0..3)
        .map(|i| if i < added { "added" } else { "planned" })
        .collect();
    assert_eq!(states(node), want, "{point}: record");
    let mut links = Node::links(pod_ns);
    links.sort();
    let all = ["eth0", "net1", "stor0"];
    let mut expected: Vec<&str> = all[..added].to_vec();
    expected.sort();
    assert_eq!(links, expected, "{point}: links in the pod");
    assert_eq!(node.allocated_ips().len(), added, "{point}: IPs");
}

fn assert_released(node: &Node, what: &str) {
    assert_eq!(node.allocated_ips(), Vec::<PathBuf>::new(), "{what}: IPs");
    assert_eq!(node.records(), Vec::<PathBuf>::new(), "{what}: records");
    // A deleted pod netns takes its veth peers with it, but the kernel does that
    // asynchronously: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node_veths(node).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(node_veths(node), Vec::<String>::new(), "{what}: node veths");
}

const POINTS: &[&str] = &[
    "after-record",
    "after-delegate-1",
    "after-delegate-2",
    "after-delegate-3",
    "before-status",
];

/// Every failpoint, with the networks attached at once and one after another.
fn points() -> impl Iterator<Item = (&'static str, bool)> {
    [true, false]
        .into_iter()
        .flat_map(|parallel| POINTS.iter().map(move |p| (*p, parallel)))
}

#[test]
fn killed_at_each_point_then_del_with_and_without_netns_leaves_nothing() {
    require_root!();
    for (point, parallel) in points() {
        let node = node_with_pod();
        let pod_ns = TestNetns::new();
        let stopped = StoppedAdd::at_failpoint(&node, &pod_ns, point, parallel);
        assert_state_at(&node, &pod_ns, point, parallel);
        stopped.kill();

        node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
        node.assert_clean(&pod_ns);
        assert_released(&node, point);
        node.cni("DEL", CONTAINER, POD, None).ok();
        node.assert_clean(&pod_ns);
    }
}

/// The pod's netns is gone by the time the runtime retries: DEL comes without CNI_NETNS and must
/// still release every IP and the record.
#[test]
fn killed_at_each_point_then_netns_gone_del_without_netns_releases_everything() {
    require_root!();
    for (point, parallel) in points() {
        let node = node_with_pod();
        let pod_ns = TestNetns::new();
        let stopped = StoppedAdd::at_failpoint(&node, &pod_ns, point, parallel);
        stopped.kill();
        drop(pod_ns);

        node.cni("DEL", CONTAINER, POD, None).ok();
        assert_released(&node, point);
        node.cni("DEL", CONTAINER, POD, None).ok();
        assert_released(&node, point);
    }
}

/// Killed while a delegate runs: the delegate dies with multinet (parent-death signal), so it
/// never finishes its ADD behind the record's back; the DEL that follows finds no delegate
/// running and cleans everything the record names.
#[test]
fn killed_while_a_delegate_runs_the_delegate_dies_too_and_del_cleans() {
    require_root!();
    let node = node_with_pod();
    // The storage network's plugin is a wrapper that says where it is, waits, then runs macvlan.
    let marker = node.path("in-delegate");
    let wrapper = node.bin().join("slow-macvlan");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo $$ > {m}.tmp; mv {m}.tmp {m}; sleep 5; fi\nexec /usr/lib/cni/macvlan\n",
            m = marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let mut storage = node.macvlan_nad("storage", "up1", "10.20.0.0/24");
    storage["type"] = "slow-macvlan".into();
    node.add_nad("storage", storage);

    let pod_ns = TestNetns::new();
    // No failpoint is reached: the wrapper's marker is the signal.
    let stopped = StoppedAdd::at_marker(&node, &pod_ns, &marker);
    let delegate_pid = read_pid(&marker);
    stopped.kill();
    // Well before its 5 s sleep ends: the kill reached it, not its own end.
    let killed = Instant::now();
    wait_gone(delegate_pid);
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "the delegate outlived multinet"
    );
    assert_eq!(states(&node), vec!["added", "added", "planned"]);
    assert!(
        !pod_ns.has_link("stor0"),
        "a delegate orphaned by multinet's death went on to build its link"
    );
    assert_eq!(node.allocated_ips().len(), 2);

    node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
    node.assert_clean(&pod_ns);
    assert_released(&node, "killed in a delegate");
    node.cni("DEL", CONTAINER, POD, None).ok();
}

/// Killed while a delegate's own child (not covered by the death signal) still builds the
/// link: the DEL that follows at once waits for that child, which holds the container's lock it
/// inherited, and then removes what it built. Without the wait the DEL would find nothing and
/// the child would build an interface and take an IP behind it.
#[test]
fn killed_while_a_delegates_child_builds_the_link_del_waits_for_it() {
    require_root!();
    let node = node_with_pod();
    let marker = node.path("in-delegate");
    let built = node.path("child-done");
    let wrapper = node.bin().join("forking-macvlan");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh
             if [ \"$CNI_COMMAND\" = ADD ]; then
               conf=$(cat)
               ( sleep 1; printf '%s' \"$conf\" | /usr/lib/cni/macvlan; touch {built} ) >/dev/null 2>&1 &
               echo $$ > {m}.tmp; mv {m}.tmp {m}
               wait; exit 1
             fi
             exec /usr/lib/cni/macvlan
",
            m = marker.display(),
            built = built.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let mut storage = node.macvlan_nad("storage", "up1", "10.20.0.0/24");
    storage["type"] = "forking-macvlan".into();
    node.add_nad("storage", storage);

    let pod_ns = TestNetns::new();
    let stopped = StoppedAdd::at_marker(&node, &pod_ns, &marker);
    stopped.kill();
    assert!(!built.exists(), "the child finished before the kill");
    node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
    assert!(
        built.exists(),
        "DEL did not wait for the killed call's plugins"
    );
    node.assert_clean(&pod_ns);
    assert_released(&node, "killed while a delegate's child ran");
    let locks: Vec<_> = fs::read_dir(node.path("cni/attachments"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(locks.is_empty(), "left in the store: {locks:?}");
}

/// A duplicate ADD for a container whose ADD is still running (a runtime retrying too soon)
/// waits for the container's lock, then fails with code 11 naming the container, and changes
/// nothing of the running call: its record and attachments stay, and DEL cleans them as usual.
#[test]
fn a_second_add_while_the_first_runs_is_refused_and_changes_nothing() {
    require_root!();
    let node = node_with_pod();
    let pod_ns = TestNetns::new();
    let stopped = StoppedAdd::at_failpoint(&node, &pod_ns, "after-delegate-1", false);
    let before = states(&node);
    let (code, msg) = node.cni("ADD", CONTAINER, POD, Some(&pod_ns)).err();
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains(CONTAINER) && msg.contains("another call"),
        "{msg}"
    );
    assert_eq!(states(&node), before, "the running call's record changed");
    assert_eq!(node.allocated_ips().len(), 1);
    stopped.kill();
    node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
    node.assert_clean(&pod_ns);
    assert_released(&node, "duplicate ADD");
}

#[test]
fn del_twice_after_a_normal_add_leaves_nothing() {
    require_root!();
    let node = node_with_pod();
    let pod_ns = TestNetns::new();
    node.cni("ADD", CONTAINER, POD, Some(&pod_ns)).ok();
    assert_eq!(Node::links(&pod_ns).len(), 3);
    assert_eq!(node.allocated_ips().len(), 3);
    node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
    node.assert_clean(&pod_ns);
    assert_released(&node, "first DEL");
    node.cni("DEL", CONTAINER, POD, None).ok();
    node.cni("DEL", CONTAINER, POD, Some(&pod_ns)).ok();
    node.assert_clean(&pod_ns);
}

/// Waits until process `pid` has exited (it is not our child, so poll /proc; a zombie counts
/// as exited).
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = || {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
    };
    while running() {
        assert!(Instant::now() < deadline, "process {pid} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}
