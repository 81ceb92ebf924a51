//! The README's main job: `multinet demo` must pass on this machine (pods get every network,
//! traffic flows over each, nothing is left).
#![allow(clippy::unwrap_used)]

use multinet_testbed::require_root;

#[test]
fn the_demo_passes_and_leaves_nothing() {
    require_root!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_multinet"))
        .arg("demo")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("== demo passed"), "{stdout}");
    // One pod in each mode: the binary, and the node daemon.
    assert!(
        stdout.contains("pod-a (netns mn-demo-pod-a, thin mode"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pod-b (netns mn-demo-pod-b, thick mode: run by multinet daemon)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("daemon ran 3 calls for demo/pod-b, stopped on SIGTERM, socket removed"),
        "{stdout}"
    );
    // pod-c's VF came through its DRA claim, stayed with the claim after DEL, then was freed.
    assert!(
        stdout.contains("DRA: ResourceClaim demo/pod-c-vf prepared: VF 0000:3b:02.3 held for it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("VF 0000:3b:02.3 stayed with claim demo/pod-c-vf after DEL"),
        "{stdout}"
    );
    for network in [
        "demo/macvlan-data",
        "demo/macvlan-storage",
        "demo/sriov-net",
        "demo/sriov-dra",
    ] {
        let pinged = stdout
            .lines()
            .any(|l| l.trim_start().starts_with(network) && l.trim_end().ends_with("ok"));
        assert!(pinged, "no successful ping over {network}:\n{stdout}");
    }
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("mn-demo-"),
        "the demo left its namespaces behind"
    );
}
