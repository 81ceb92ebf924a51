//! VF provisioning on a fake sysfs tree (both reference layouts): the files the kernel uses are
//! written (`sriov_numvfs`, `driver_override`, the old driver's `unbind`, `drivers_probe`, the
//! PF's `mtu`), a VF a live attachment holds blocks its PF with its owner named, and a PF the
//! policy does not name is never written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use multinet_sriov::provision::{NodePolicy, Step, apply_policy, load_policy, plan_policy};
use multinet_sriov::{AllocationRecord, PciAddress, StateDir, Sysfs};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};

const LAYOUTS: [SysfsLayout; 2] = [SysfsLayout::DevicePlugin, SysfsLayout::SriovCni];

/// ens1f0 (0000:af:00.0) with VFs 0000:af:02.0-1 on iavf; ens2f0 (0000:b0:00.0), not named by
/// the policies below unless a test says so, with VF 0000:b0:02.0.
fn node(layout: SysfsLayout) -> FakeSysfs {
    FakeSysfs::builder(layout)
        .pf(PfSpec::new("0000:af:00.0", "ens1f0")
            .vf("0000:af:02.0", "ens1f0v0")
            .vf("0000:af:02.1", "ens1f0v1"))
        .pf(PfSpec::new("0000:b0:00.0", "ens2f0").vf("0000:b0:02.0", "ens2f0v0"))
        .build()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn policy(yaml: &str) -> NodePolicy {
    NodePolicy::parse(yaml).unwrap()
}

/// Every regular file of the tree with its content, to show what a run did not write.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                out.push((e.path().display().to_string(), read(e.path())));
            }
        }
    }
    out.sort();
    out
}

fn files_of(fake: &FakeSysfs, addr: &str) -> Vec<(String, String)> {
    snapshot(&fake.device_dir(addr))
}

#[test]
fn vfs_go_to_vfio_pci_and_back_through_the_kernels_files() {
    for layout in LAYOUTS {
        let fake = node(layout);
        let state_dir = tempfile::tempdir().unwrap();
        let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
        let pci = fake.root().join("bus/pci");
        let vf1 = fake.device_dir("0000:af:02.1");
        let untouched = (
            files_of(&fake, "0000:b0:00.0"),
            files_of(&fake, "0000:b0:02.0"),
        );

        // Only VF 1 is on the wrong driver: VF 0 already is on vfio-pci.
        fake.bind_driver("0000:af:02.0", Some("vfio-pci"));
        fake.set_netdev("0000:af:02.0", None);
        let dpdk = policy(
            "policies: [{name: dpdk, nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: vfio-pci, pool: dpdk}]",
        );
        let report = apply_policy(&dpdk, &sysfs, &state);
        assert!(report.is_complete(), "{layout:?}: {report}");
        let done: Vec<String> = report.done.iter().map(ToString::to_string).collect();
        assert_eq!(
            done,
            [
                "0000:af:00.0 (ens1f0): VF 0000:af:02.1: driver_override = vfio-pci",
                "0000:af:00.0 (ens1f0): VF 0000:af:02.1: unbind from iavf",
                "0000:af:00.0 (ens1f0): VF 0000:af:02.1: drivers_probe",
            ],
            "{layout:?}"
        );
        assert_eq!(read(vf1.join("driver_override")), "vfio-pci");
        assert_eq!(read(pci.join("drivers/iavf/unbind")), "0000:af:02.1");
        assert_eq!(read(pci.join("drivers_probe")), "0000:af:02.1");
        assert_eq!(
            read(pci.join("drivers/vfio-pci/unbind")),
            "",
            "VF 0 left alone"
        );
        assert_eq!(
            read(fake.device_dir("0000:af:02.0").join("driver_override")),
            "(null)\n"
        );
        assert_eq!(report.pools[0].name, "dpdk");
        assert_eq!(report.pools[0].selectors.drivers, ["vfio-pci"]);

        // The kernel binds vfio-pci; the same policy again has nothing to do.
        fake.bind_driver("0000:af:02.1", Some("vfio-pci"));
        fake.set_netdev("0000:af:02.1", None);
        let again = apply_policy(&dpdk, &sysfs, &state);
        assert!(again.done.is_empty() && again.is_complete(), "{again}");

        // Back to the kernel driver: the override cleared, unbound from vfio-pci, probed.
        let kernel =
            policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: netdevice}]");
        let report = apply_policy(&kernel, &sysfs, &state);
        assert!(report.is_complete(), "{report}");
        assert_eq!(report.done.len(), 6, "{report}");
        assert_eq!(read(vf1.join("driver_override")), "\n");
        assert_eq!(read(pci.join("drivers/vfio-pci/unbind")), "0000:af:02.1");
        assert_eq!(read(pci.join("drivers_probe")), "0000:af:02.1");
        assert_eq!(
            (
                files_of(&fake, "0000:b0:00.0"),
                files_of(&fake, "0000:b0:02.0")
            ),
            untouched,
            "{layout:?}: the PF no entry names was written"
        );
    }
}

#[test]
fn counts_change_through_zero_and_mtu_is_set() {
    for layout in LAYOUTS {
        let fake = node(layout);
        let state_dir = tempfile::tempdir().unwrap();
        let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
        let numvfs = fake.device_dir("0000:af:00.0").join("sriov_numvfs");
        let mtu = fake.device_dir("0000:af:00.0").join("net/ens1f0/mtu");

        let grow = policy("[{nicSelector: {rootDevices: ['0000:af:00.0']}, numVfs: 4, mtu: 9000}]");
        let dry = plan_policy(&grow, &sysfs, &state);
        let lines: Vec<String> = dry.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "0000:af:00.0 (ens1f0): sriov_numvfs 2 -> 0",
                "0000:af:00.0 (ens1f0): sriov_numvfs 0 -> 4",
                "0000:af:00.0 (ens1f0): mtu of ens1f0 1500 -> 9000",
            ]
        );
        assert_eq!(read(&numvfs), "2", "planning writes nothing");
        let report = apply_policy(&grow, &sysfs, &state);
        assert!(report.is_complete(), "{layout:?}: {report}");
        assert_eq!(report.done.len(), 3, "{report}");
        assert_eq!(read(&numvfs), "4");
        assert_eq!(read(&mtu), "9000");

        let off = policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 0}]");
        let report = apply_policy(&off, &sysfs, &state);
        assert!(report.is_complete(), "{report}");
        assert!(matches!(
            report.done.as_slice(),
            [Step::SetNumVfs { from: 4, to: 0, .. }]
        ));
        assert_eq!(read(&numvfs), "0");
    }
}

fn hold(state: &StateDir, vf: &str, pod: &str) {
    let pci: PciAddress = vf.parse().unwrap();
    let lock = state.lock_vf(&pci, Duration::from_secs(1)).unwrap();
    // A live record: its netns (this test's own) exists.
    let mut record = AllocationRecord::new(pci, "c0ffee", "net1", "/proc/self/ns/net");
    record.pod = Some(pod.to_owned());
    state.write_record(&lock, &record).unwrap();
}

/// A VF prepared for a DRA claim is held until the kubelet unprepares it, attached or not.
#[test]
fn a_vf_a_dra_claim_holds_blocks_its_pf() {
    let fake = node(SysfsLayout::DevicePlugin);
    let state_dir = tempfile::tempdir().unwrap();
    let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
    let vf = sysfs.vf(&"0000:af:02.1".parse().unwrap()).unwrap();
    multinet_sriov::VfAllocator::new(&sysfs, &state)
        .prepare(
            &vf,
            multinet_sriov::state::ClaimHold {
                uid: "u1".into(),
                namespace: "team".into(),
                name: "web-vf".into(),
                pods: vec!["pod-uid".into()],
            },
        )
        .unwrap();
    let report = apply_policy(
        &policy("[{name: a, nicSelector: {pfNames: [ens1f0]}, numVfs: 4}]"),
        &sysfs,
        &state,
    );
    let refused: Vec<String> = report.refused.iter().map(ToString::to_string).collect();
    assert_eq!(
        refused,
        [
            "0000:af:00.0 (ens1f0) (a): sriov_numvfs stays 2 (the policy wants 4): \
             VF 0000:af:02.1 is held by ResourceClaim team/web-vf"
        ]
    );
    assert_eq!(
        read(fake.device_dir("0000:af:00.0").join("sriov_numvfs")),
        "2"
    );
}

#[test]
fn a_held_vf_blocks_its_pf_with_the_owner_named_while_other_pfs_proceed() {
    for layout in LAYOUTS {
        let fake = node(layout);
        let state_dir = tempfile::tempdir().unwrap();
        let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
        hold(&state, "0000:af:02.1", "default/web");
        let both = policy(
            "[{name: a, nicSelector: {pfNames: [ens1f0]}, numVfs: 4}, \
              {name: b, nicSelector: {pfNames: [ens2f0]}, numVfs: 3}]",
        );
        let report = apply_policy(&both, &sysfs, &state);
        assert!(!report.is_complete());
        let refused: Vec<String> = report.refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            refused,
            [
                "0000:af:00.0 (ens1f0) (a): sriov_numvfs stays 2 (the policy wants 4): \
              VF 0000:af:02.1 is held by pod default/web (container c0ffee, net1)"
            ],
            "{layout:?}"
        );
        assert_eq!(
            read(fake.device_dir("0000:af:00.0").join("sriov_numvfs")),
            "2"
        );
        assert_eq!(
            read(fake.device_dir("0000:b0:00.0").join("sriov_numvfs")),
            "3"
        );
        assert_eq!(report.done.len(), 2, "ens2f0 went 1 -> 0 -> 3: {report}");

        // Rebinding the held VF is refused too; its sibling moves.
        let dpdk = policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: vfio-pci}]");
        let report = apply_policy(&dpdk, &sysfs, &state);
        assert_eq!(report.refused.len(), 1, "{report}");
        assert!(
            report.refused[0]
                .reason
                .contains("VF 0000:af:02.1 stays with driver iavf")
        );
        assert!(report.refused[0].reason.contains("pod default/web"));
        assert_eq!(
            read(fake.device_dir("0000:af:02.0").join("driver_override")),
            "vfio-pci"
        );
        assert_eq!(
            read(fake.device_dir("0000:af:02.1").join("driver_override")),
            "(null)\n"
        );
    }
}

#[test]
fn a_vf_being_attached_right_now_is_not_changed() {
    let fake = node(SysfsLayout::DevicePlugin);
    let state_dir = tempfile::tempdir().unwrap();
    let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
    // An ADD holds the VF's lock and has not written its record yet.
    let pci: PciAddress = "0000:af:02.0".parse().unwrap();
    let lock = state.lock_vf(&pci, Duration::from_secs(1)).unwrap();
    let report = apply_policy(
        &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 1}]"),
        &sysfs,
        &state,
    );
    assert!(report.done.is_empty(), "{report}");
    assert_eq!(report.failed.len(), 2, "{report}");
    assert!(
        report.failed[0]
            .1
            .contains("VF 0000:af:02.0 is being attached or released"),
        "{report}"
    );
    assert_eq!(
        read(fake.device_dir("0000:af:00.0").join("sriov_numvfs")),
        "2"
    );
    drop(lock);
    let report = apply_policy(
        &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 1}]"),
        &sysfs,
        &state,
    );
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        read(fake.device_dir("0000:af:00.0").join("sriov_numvfs")),
        "1"
    );
}

#[test]
fn a_missing_kernel_file_is_reported_not_created() {
    let fake = node(SysfsLayout::DevicePlugin);
    let state_dir = tempfile::tempdir().unwrap();
    let (sysfs, state) = (Sysfs::new(fake.root()), StateDir::new(state_dir.path()));
    fs::remove_file(fake.root().join("bus/pci/drivers_probe")).unwrap();
    let report = apply_policy(
        &policy("[{nicSelector: {pfNames: [ens1f0]}, numVfs: 2, deviceType: vfio-pci}]"),
        &sysfs,
        &state,
    );
    assert!(!report.is_complete());
    assert!(
        report
            .failed
            .iter()
            .any(|(s, why)| matches!(s, Step::Probe { .. }) && why.contains("drivers_probe")),
        "{report}"
    );
    assert!(!fake.root().join("bus/pci/drivers_probe").exists());
}

#[test]
fn a_policy_file_others_may_write_is_refused() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    fs::write(&file, "[{nicSelector: {pfNames: [ens1f0]}, numVfs: 1}]").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    // A ConfigMap volume: the path is a symlink into a data directory.
    let link = dir.path().join("mounted.yaml");
    symlink(&file, &link).unwrap();
    assert_eq!(load_policy(&link).unwrap().entries.len(), 1);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    let err = load_policy(&link).unwrap_err().to_string();
    assert!(err.contains("refusing the SR-IOV policy"), "{err}");
    assert!(load_policy(dir.path()).is_err(), "a directory");
    assert!(load_policy(&dir.path().join("missing")).is_err());
}
