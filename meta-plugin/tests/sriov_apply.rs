//! `multinet sriov apply` and `multinet daemon --sriov-policy` as an admin runs them, on a fake
//! sysfs tree (MULTINET_SYSFS_ROOT) with the allocator's state directory beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use multinet_sriov::{AllocationRecord, PciAddress, StateDir};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};

fn node() -> FakeSysfs {
    FakeSysfs::builder(SysfsLayout::DevicePlugin)
        .pf(PfSpec::new("0000:af:00.0", "ens1f0")
            .vf("0000:af:02.0", "ens1f0v0")
            .vf("0000:af:02.1", "ens1f0v1"))
        .build()
}

fn multinet(fake: &FakeSysfs, state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multinet"));
    cmd.env("MULTINET_SYSFS_ROOT", fake.root())
        .env("MULTINET_SRIOV_STATE_DIR", state);
    cmd
}

fn apply(fake: &FakeSysfs, state: &Path, policy: &Path, dry_run: bool) -> Output {
    let mut cmd = multinet(fake, state);
    cmd.args(["sriov", "apply", "--policy"]).arg(policy);
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn numvfs(fake: &FakeSysfs) -> String {
    fs::read_to_string(fake.device_dir("0000:af:00.0").join("sriov_numvfs")).unwrap()
}

#[test]
fn dry_run_prints_the_plan_and_apply_does_it() {
    let fake = node();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = dir.path().join("policy.yaml");
    fs::write(
        &policy,
        "policies:\n- name: fast\n  nicSelector: {pfNames: [ens1f0]}\n  numVfs: 4\n  mtu: 9000\n  pool: fast\n",
    )
    .unwrap();
    let dry = apply(&fake, &state, &policy, true);
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    assert_eq!(
        stdout(&dry),
        "0000:af:00.0 (ens1f0): sriov_numvfs 2 -> 0\n\
         0000:af:00.0 (ens1f0): sriov_numvfs 0 -> 4\n\
         0000:af:00.0 (ens1f0): mtu of ens1f0 1500 -> 9000\n\
         note: 0000:af:00.0 (ens1f0): the drivers of its new VFs (netdevice) are set once they exist\n"
    );
    assert_eq!(numvfs(&fake), "2", "a dry run writes nothing");

    let done = apply(&fake, &state, &policy, false);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(stdout(&done).starts_with("done: 0000:af:00.0 (ens1f0): sriov_numvfs 2 -> 0\n"));
    assert_eq!(numvfs(&fake), "4");
    let again = apply(&fake, &state, &policy, true);
    assert_eq!(
        stdout(&again),
        "nothing to do: the node is as the policy says\n"
    );
}

#[test]
fn a_held_vf_makes_apply_fail_naming_its_pod() {
    let fake = node();
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let pci: PciAddress = "0000:af:02.0".parse().unwrap();
    let lock = state.lock_vf(&pci, Duration::from_secs(1)).unwrap();
    let mut record = AllocationRecord::new(pci, "c0ffee", "net1", "/proc/self/ns/net");
    record.pod = Some("default/web".into());
    state.write_record(&lock, &record).unwrap();
    drop(lock);
    let policy = dir.path().join("policy.json");
    fs::write(
        &policy,
        r#"[{"nicSelector": {"pfNames": ["ens1f0"]}, "numVfs": 0}]"#,
    )
    .unwrap();
    for dry_run in [true, false] {
        let out = apply(&fake, state.root(), &policy, dry_run);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            stdout(&out).contains(
                "REFUSED: 0000:af:00.0 (ens1f0) (policies[0]): sriov_numvfs stays 2 (the policy \
                 wants 0): VF 0000:af:02.0 is held by pod default/web"
            ),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(numvfs(&fake), "2");
}

#[test]
fn a_bad_policy_names_the_field_and_changes_nothing() {
    let fake = node();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    fs::write(
        &policy,
        "- nicSelector: {pfNames: [ens1f0]}\n  numVfs: 4\n  deviceType: dpdk\n",
    )
    .unwrap();
    let out = apply(&fake, &dir.path().join("state"), &policy, false);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"policies[0].deviceType\""), "{err}");
    assert_eq!(numvfs(&fake), "2");
    let bad_flag = multinet(&fake, dir.path())
        .args(["sriov", "apply", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2), "--policy is required");
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_daemon_applies_the_policy_at_start_and_when_it_changes() {
    let fake = node();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let log = dir.path().join("daemon.log");
    fs::write(&policy, "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 3}]").unwrap();
    let _daemon = Daemon(
        multinet(&fake, &dir.path().join("state"))
            .arg("daemon")
            .arg("--socket")
            .arg(dir.path().join("run/multinet.sock"))
            .arg("--log-file")
            .arg(&log)
            .arg("--sriov-policy")
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the policy at start", || numvfs(&fake) == "3");
    // A new version of the file (another size, so a coarse mtime cannot hide it).
    fs::write(
        &policy,
        "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 0, name: off}]",
    )
    .unwrap();
    wait_for("the changed policy", || numvfs(&fake) == "0");
    wait_for("the log", || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("sriov_numvfs 3 -> 0"))
    });
}

#[test]
fn the_daemons_watcher_tries_again_once_the_held_vf_is_free() {
    let fake = node();
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let pci: PciAddress = "0000:af:02.0".parse().unwrap();
    let lock = state.lock_vf(&pci, Duration::from_secs(1)).unwrap();
    let record = AllocationRecord::new(pci, "c0ffee", "net1", "/proc/self/ns/net");
    state.write_record(&lock, &record).unwrap();
    drop(lock);
    let policy = dir.path().join("policy.yaml");
    fs::write(&policy, "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 1}]").unwrap();
    multinet::provision::watch_every(
        policy,
        multinet_sriov::Sysfs::new(fake.root()),
        state.clone(),
        Duration::from_millis(20),
        Duration::from_millis(200),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        numvfs(&fake),
        "2",
        "held: refused, and refused again on retry"
    );
    // The pod is gone (its DEL removed the record): the next retry goes through.
    let lock = state.lock_vf(&pci, Duration::from_secs(1)).unwrap();
    state.remove_record(&lock).unwrap();
    drop(lock);
    wait_for("the retry", || numvfs(&fake) == "1");
}
