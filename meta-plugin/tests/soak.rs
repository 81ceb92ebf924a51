//! A short soak (examples/soak is the long bench): 300 ADD/DEL cycles of a pod with a cluster
//! network (reference bridge) and three secondary networks (our macvlan in-process, the
//! reference macvlan exec'd, our SR-IOV delegate on a fake NIC), with SIGKILLs of multinet and of
//! exec'd delegates, Kubernetes API faults and GC. Nothing may be left behind and every DEL must
//! succeed in the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/soak/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use multinet_testbed::{TestNetns, require_root};

#[test]
fn soak_300_cycles_with_kills_and_api_faults_leaves_nothing() {
    require_root!();
    let _serial = harness::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cycles = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let opts = harness::Options {
        cycles,
        seed: std::env::var("SOAK_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7),
        from: 0,
        multinet: env!("CARGO_BIN_EXE_multinet").into(),
        verbose: false,
        keep: false,
    };
    let report = harness::run(&opts);
    let text = report.render();
    // Shown also when the test passes (with --nocapture): the figures are the point.
    println!("{text}");
    assert_eq!(report.cycles, cycles);
    // The harness did what it claims: kills of both kinds landed and faults were injected.
    assert!(
        report.kills.get("multinet in ADD").copied().unwrap_or(0) > 0
            && report.kills.keys().any(|k| k.starts_with("delegate")),
        "no kill landed: {text}"
    );
    assert!(!report.faults.is_empty(), "no API fault injected: {text}");
    assert!(report.add_ok > 0, "no ADD succeeded: {text}");
    // Zero leaks of every kind, every DEL succeeded in the end, no other broken promise.
    let problems = report.problems();
    assert!(problems.is_empty(), "{}\n{text}", problems.join("; "));
}

/// Planted leftovers of every kind are counted, and what host-local and the VF locks keep by
/// design is not: the soak's zero is a measured zero.
#[test]
fn planted_leftovers_of_every_kind_are_counted() {
    require_root!();
    let _serial = harness::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let node = harness::Node::new(Path::new(env!("CARGO_BIN_EXE_multinet")), "info");
    let pod = TestNetns::new();
    // One of the pod's interface names, one with a multinet tag: multinet's, so leaks; one
    // with neither (a plugin's temporary name): shown apart, never multinet's to delete.
    pod.ip(&[
        "link", "add", "net1", "type", "veth", "peer", "name", "left1",
    ]);
    pod.ip(&["link", "set", "left1", "alias", "multinet:c1"]);
    pod.ip(&[
        "link", "add", "vethtmp0", "type", "veth", "peer", "name", "vethtmp1",
    ]);
    node.ns.ip(&[
        "link",
        "add",
        "hostleft",
        "type",
        "veth",
        "peer",
        "name",
        "hostleftp",
    ]);
    let plant = |rel: &str| {
        let p = node.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "x").unwrap();
    };
    for by_design in [
        "ipam/data/lock",
        "ipam/data/last_reserved_ip.0",
        "sriov/pci/vf_lock/0000:3b:02.0.lock",
    ] {
        plant(by_design);
    }
    for leftover in [
        "ipam/data/10.10.0.9",
        "sriov/pci/0000:3b:02.1",
        "sriov/attach/c1:net3.json",
        "cni/attachments/c1.json",
        "cni/attachments/c1.lock",
        "devinfo/cni/sriov-net-c1_net3",
        "cni/attachments/.c1.json.tmp-12-0",
        "sriov/pci/.0000:3b:02.1.tmp.12.0",
    ] {
        plant(leftover);
    }
    let state = node.state(Some(&pod));
    let get = |k: &str| state.get(k).cloned().unwrap_or_default();
    let set = |v: &[&str]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<BTreeSet<String>>()
    };
    assert_eq!(
        get("pod-links"),
        set(&["pod:net1 (veth DOWN)", "pod:left1 (veth DOWN tagged)"])
    );
    assert_eq!(
        get(harness::UNCLAIMED_POD_LINKS),
        set(&["pod:vethtmp0 (veth DOWN)", "pod:vethtmp1 (veth DOWN)"])
    );
    assert!(get("node-links").contains("hostleft"));
    assert_eq!(get("ip-reservations"), set(&["ipam/data/10.10.0.9"]));
    assert_eq!(
        get("vf-owners"),
        set(&["sriov/attach/c1:net3.json", "sriov/pci/0000:3b:02.1"])
    );
    assert_eq!(get("records"), set(&["cni/attachments/c1.json"]));
    assert_eq!(get("locks"), set(&["cni/attachments/c1.lock"]));
    assert_eq!(get("device-info"), set(&["devinfo/cni/sriov-net-c1_net3"]));
    assert_eq!(
        get("temp-files"),
        set(&[
            "cni/attachments/.c1.json.tmp-12-0",
            "sriov/pci/.0000:3b:02.1.tmp.12.0"
        ])
    );
}

/// A process this one started (directly or not) is found by name, as a delegate kill and the
/// leftover-process count need.
#[test]
fn descendants_are_found_by_name() {
    let _serial = harness::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = std::process::Command::new("sh")
        .args(["-c", "sleep 30"])
        .spawn()
        .unwrap();
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = harness::descendants(me);
    while !found.iter().any(|(_, c)| c == "sleep") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        found = harness::descendants(me);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.iter().any(|(_, c)| c == "sleep"), "{found:?}");
}
