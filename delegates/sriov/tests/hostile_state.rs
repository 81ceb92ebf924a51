//! The SR-IOV state attacked: a pod author naming a VF another container owns, a NAD author
//! pointing logFile out of /var/log, a local user planting or loosening state files, and
//! interrupted ADDs (a record without attachment state, temp files). Every test runs under
//! umask 000 and checks the CNI code, that the message names the bad thing, and what is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{Answer, Lab, files_under, link_in};
use multinet_netlink::{Netns, run_in_netns};
use multinet_sriov::{AllocationRecord, release_container};
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

/// Every file multinet writes must get its mode whatever the umask: run with none.
fn umask_000() {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0) };
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Temp files anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.contains(".tmp"))
        })
        .collect()
}

/// A record as an ADD that died right after its claim leaves it: no attachment state.
fn plant_orphan_record(lab: &Lab, vf: &str, cid: &str, ifname: &str, netns: &str) {
    let state = lab.state();
    let lock = state.try_lock_vf(&lab.pci(vf)).unwrap().unwrap();
    let record = AllocationRecord::new(lab.pci(vf), cid, ifname, netns);
    state.write_record(&lock, &record).unwrap();
}

/// A lab of `vfs` VFs, the test running under umask 000.
fn new_lab(vfs: usize) -> Lab {
    umask_000();
    Lab::new(SysfsLayout::SriovCni, vfs, false)
}

/// The lab's first VF (PCI address and netdev name), a plain config for it, and a pod.
fn first_vf(lab: &Lab) -> (String, String, Value, TestNetns) {
    let (vf, vf_name) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({}));
    (vf, vf_name, conf, TestNetns::new())
}

/// The allocation record of `vf`, if any.
fn record(lab: &Lab, vf: &str) -> Option<AllocationRecord> {
    lab.state().read_record(&lab.pci(vf)).unwrap()
}

/// The containers that hold a VF record.
fn owners(lab: &Lab) -> Vec<String> {
    lab.state()
        .records()
        .into_iter()
        .map(|r| r.container_id)
        .collect()
}

fn assert_no_stray_state(lab: &Lab) {
    assert!(
        lab.stray_state_files().is_empty(),
        "{:?}",
        lab.stray_state_files()
    );
}

/// `release_container` of `cid`, run in the node's netns.
fn release_in(lab: &Lab, host: &Netns, cid: &str) -> usize {
    run_in_netns(host, || {
        release_container(
            &lab.state(),
            &multinet_sriov::Sysfs::new(lab.sysfs.root()),
            cid,
        )
    })
    .unwrap()
}

/// An ADD refused with code 7 naming `named`, that claimed, moved, allocated and wrote nothing;
/// the DEL after it succeeds.
fn refused_without_trace(
    lab: &Lab,
    vf_name: &str,
    cid: &str,
    pod: &TestNetns,
    conf: &Value,
    named: &str,
) {
    let (code, msg) = lab.add(cid, pod, "net1", conf).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains(named), "{msg}");
    // Nothing claimed, moved, allocated or written.
    assert!(lab.stray_state_files().is_empty());
    assert!(lab.ipam_allocations().is_empty());
    assert!(lab.host_link(vf_name).is_some());
    // DEL never fails on it (the warning goes to stderr).
    lab.del(cid, pod.path_str(), "net1", conf).ok();
}

/// An ADD refused with code 5 (state it cannot trust); its message.
fn refused_untrusted(answer: Answer) -> String {
    let (code, msg) = answer.err();
    assert_eq!(code, 5, "{msg}");
    msg
}

#[test]
fn state_files_get_private_modes_under_umask_000() {
    require_root!();
    let lab = new_lab(1);
    let (vf, _, conf, pod) = first_vf(&lab);
    lab.add("c-modes", &pod, "net1", &conf).ok();
    let state = lab.state();
    let root = lab.state_dir();
    for dir in ["", "pci", "pci/vf_lock", "attach"] {
        assert_eq!(mode(&root.join(dir)), 0o700, "state dir {dir:?}");
    }
    assert_eq!(mode(&state.record_path(&lab.pci(&vf))), 0o600);
    assert_eq!(mode(&state.attachment_path("c-modes", "net1")), 0o600);
    assert_eq!(mode(&state.lock_dir().join(format!("{vf}.lock"))), 0o600);
    assert_eq!(mode(&lab.log_file), 0o600, "logFile");
    let devinfo = state
        .read_attachment("c-modes", "net1")
        .unwrap()
        .unwrap()
        .device_info_file
        .unwrap();
    assert_eq!(
        mode(&devinfo),
        0o644,
        "device info is read by network-status"
    );
    assert_eq!(mode(devinfo.parent().unwrap()), 0o755);
    // host-local under the delegate: reference modes, lock private.
    let net = lab.ipam_dir().join("sriov-net");
    assert_eq!(mode(&net), 0o755);
    assert_eq!(mode(&net.join("lock")), 0o600);
    for f in lab.ipam_allocations() {
        assert_eq!(mode(&lab.ipam_dir().join(&f)), 0o644, "{}", f.display());
    }
    lab.del("c-modes", pod.path_str(), "net1", &conf).ok();
    assert_no_stray_state(&lab);
    assert!(temp_files(lab.dir.path()).is_empty());
}

#[test]
fn a_vf_of_another_container_is_refused_even_by_explicit_device_id() {
    require_root!();
    let lab = new_lab(1);
    let (vf, _) = lab.vfs[0].clone();
    let pod_a = TestNetns::new();
    let pod_b = TestNetns::new();
    lab.add(
        "c-owner",
        &pod_a,
        "net1",
        &lab.conf(&vf, json!({"mac": "02:00:00:00:0a:01"})),
    )
    .ok();
    let record_before = record(&lab, &vf).unwrap();
    let link_before = link_in(&pod_a, "net1").unwrap();
    // The hostile pod names the same VF, with settings of its own.
    let hostile = lab.conf(&vf, json!({"mac": "02:00:00:00:0b:02"}));
    let (code, msg) = lab.add("c-thief", &pod_b, "net9", &hostile).err();
    assert_eq!(code, 11, "{msg}");
    assert!(
        msg.contains(&format!("deviceID {vf} is in use by another container")),
        "{msg}"
    );
    // Nothing changed on the VF or its record; nothing of the thief is left.
    assert_eq!(record(&lab, &vf).unwrap(), record_before);
    let link_after = link_in(&pod_a, "net1").unwrap();
    assert_eq!(link_after["address"], link_before["address"]);
    assert_eq!(link_after["ifindex"], link_before["ifindex"]);
    assert!(link_in(&pod_b, "net9").is_none());
    assert!(
        lab.state()
            .read_attachment("c-thief", "net9")
            .unwrap()
            .is_none()
    );
    assert_eq!(lab.ipam_allocations().len(), 1, "only the owner's address");
    assert_eq!(
        lab.stray_state_files().len(),
        2,
        "the owner's record and state only: {:?}",
        lab.stray_state_files()
    );
    assert!(temp_files(lab.dir.path()).is_empty());
    // The thief's DEL (the runtime cleans up after the failed ADD) leaves the owner alone.
    lab.del("c-thief", pod_b.path_str(), "net9", &hostile).ok();
    assert_eq!(record(&lab, &vf).unwrap(), record_before);
    assert!(link_in(&pod_a, "net1").is_some());
    lab.del(
        "c-owner",
        pod_a.path_str(),
        "net1",
        &lab.conf(&vf, json!({})),
    )
    .ok();
    assert!(lab.stray_state_files().is_empty());
}

#[test]
fn a_log_file_outside_var_log_is_refused_and_never_written() {
    require_root!();
    let lab = new_lab(1);
    let (vf, vf_name) = lab.vfs[0].clone();
    let pod = TestNetns::new();
    let outside = lab.dir.path().join("evil.log");
    for (key, path) in [
        ("logFile", outside.display().to_string()),
        ("logFile", "/var/log/../../etc/multinet-evil.log".to_owned()),
        ("LogFile", "/etc/multinet-evil.log".to_owned()),
    ] {
        let mut conf = lab.conf(&vf, json!({"logFile": null}));
        conf[key] = json!(path);
        refused_without_trace(&lab, &vf_name, "c-log", &pod, &conf, &format!("{key:?}"));
    }
    assert!(!outside.exists());
    assert!(!Path::new("/etc/multinet-evil.log").exists());
}

#[test]
fn a_device_info_file_a_nad_points_at_a_node_file_is_refused() {
    require_root!();
    let lab = new_lab(1);
    let (vf, vf_name) = lab.vfs[0].clone();
    let pod = TestNetns::new();
    // Outside the lab: the lab's own directory is its device-info tree.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    for target in [
        victim.display().to_string(),
        "/var/run/k8s.cni.cncf.io/devinfo/../../../../etc/multinet-evil".to_owned(),
    ] {
        let conf = lab.conf(&vf, json!({"runtimeConfig": {"CNIDeviceInfoFile": target}}));
        let named = "runtimeConfig.CNIDeviceInfoFile";
        refused_without_trace(&lab, &vf_name, "c-devinfo", &pod, &conf, named);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!Path::new("/etc/multinet-evil").exists());
}

#[test]
fn del_releases_a_vf_whose_add_died_before_saving_its_state() {
    require_root!();
    let lab = new_lab(1);
    let (vf, vf_name, conf, pod) = first_vf(&lab);
    // The ADD of c-crash claimed the VF and died; its netns still exists.
    plant_orphan_record(&lab, &vf, "c-crash", "net1", pod.path_str());
    // And writers that died mid-write left temp files.
    let temps = [
        lab.state_dir().join(format!("pci/.{vf}.tmp-999999999-0")),
        lab.state_dir()
            .join("attach/.c-crash:net1.json.tmp-999999999-1"),
        lab.dir
            .path()
            .join("devinfo/.sriov-net-c-crash-net1-device.json.tmp-999999999-2"),
    ];
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
        .create(lab.dir.path().join("devinfo"))
        .unwrap();
    for t in &temps {
        std::fs::write(t, b"{").unwrap();
    }
    // While the record lives, the VF is not anyone else's.
    let other = TestNetns::new();
    let (code, msg) = lab.add("c-next", &other, "net1", &conf).err();
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains(&vf), "{msg}");
    // DEL of the crashed container releases it and sweeps the temp files.
    lab.del("c-crash", pod.path_str(), "net1", &conf).ok();
    assert!(record(&lab, &vf).is_none());
    for t in &temps {
        assert!(!t.exists(), "{} left", t.display());
    }
    assert!(lab.host_link(&vf_name).is_some(), "the VF was never moved");
    assert!(
        lab.log().contains("whose ADD was interrupted"),
        "{}",
        lab.log()
    );
    // A DEL of someone else does not release another container's orphan.
    plant_orphan_record(&lab, &vf, "c-crash2", "net1", pod.path_str());
    lab.del("c-other", pod.path_str(), "net1", &conf).ok();
    assert!(record(&lab, &vf).is_some());
    lab.del("c-crash2", pod.path_str(), "net1", &conf).ok();
    lab.add("c-next", &other, "net1", &conf).ok();
    lab.del("c-next", other.path_str(), "net1", &conf).ok();
    assert_no_stray_state(&lab);
    assert!(lab.ipam_allocations().is_empty());
}

#[test]
fn gc_releases_unlisted_attachments_and_interrupted_adds() {
    require_root!();
    let lab = new_lab(3);
    let pods = [TestNetns::new(), TestNetns::new(), TestNetns::new()];
    for (i, pod) in pods.iter().enumerate().take(2) {
        lab.add(
            &format!("g{i}"),
            pod,
            "net1",
            &lab.conf(&lab.vfs[i].0, json!({"ipam": null})),
        )
        .ok();
    }
    plant_orphan_record(&lab, &lab.vfs[2].0, "g2", "net1", pods[2].path_str());
    let mut gc = lab.conf("", json!({"deviceID": null, "ipam": null}));
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "net1"}]);
    let answer = lab.call("GC", "", "", "", &gc);
    assert_eq!(answer.code, 0, "{}", answer.out);
    assert!(lab.host_link(&lab.vfs[0].1).is_some(), "g0's VF back");
    assert!(link_in(&pods[1], "net1").is_some(), "g1 kept");
    assert_eq!(owners(&lab), ["g1"]);
    lab.del(
        "g1",
        pods[1].path_str(),
        "net1",
        &lab.conf(&lab.vfs[1].0, json!({"ipam": null})),
    )
    .ok();
    assert!(lab.stray_state_files().is_empty());
}

#[test]
fn untrusted_state_is_refused_never_acted_on() {
    require_root!();
    let lab = new_lab(2);
    let (vf, vf_name, conf, pod) = first_vf(&lab);
    lab.add("c-first", &pod, "net1", &conf).ok();
    lab.del("c-first", pod.path_str(), "net1", &conf).ok();
    let state = lab.state();

    // 1. A record another user could have written (world-writable) blocks the VF: it is not
    //    trusted as "free" nor as anyone's.
    let record_path = state.record_path(&lab.pci(&vf));
    let planted = AllocationRecord::new(lab.pci(&vf), "c-gone", "net1", "/nonexistent");
    std::fs::write(&record_path, serde_json::to_vec(&planted).unwrap()).unwrap();
    std::fs::set_permissions(&record_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let msg = refused_untrusted(lab.add("c-x", &pod, "net1", &conf));
    assert!(msg.contains(&record_path.display().to_string()), "{msg}");
    assert!(msg.contains("writable by other users"), "{msg}");
    // 2. Owned by another uid.
    std::fs::set_permissions(&record_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&record_path, Some(65534), Some(65534)).unwrap();
    let msg = refused_untrusted(lab.add("c-x", &pod, "net1", &conf));
    assert!(msg.contains("owned by uid 65534"), "{msg}");
    // 3. A symlink to a file that would parse.
    std::fs::remove_file(&record_path).unwrap();
    let elsewhere = lab.dir.path().join("elsewhere");
    std::fs::write(&elsewhere, serde_json::to_vec(&planted).unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &record_path).unwrap();
    let msg = refused_untrusted(lab.add("c-x", &pod, "net1", &conf));
    assert!(msg.contains(&record_path.display().to_string()), "{msg}");
    assert!(lab.host_link(&vf_name).is_some(), "the VF was not touched");
    assert!(!state.attachment_path("c-x", "net1").exists());
    // A pool skips such a VF rather than trusting it.
    let pool = json!({"name": "all", "pfNames": [lab.pf.clone()]});
    let pooled = lab.conf("", json!({"deviceID": null, "pool": pool}));
    let out = lab.add("c-pool", &pod, "net1", &pooled).ok().clone();
    assert_eq!(out["interfaces"][0]["pciID"], lab.vfs[1].0);
    lab.del("c-pool", pod.path_str(), "net1", &pooled).ok();
    std::fs::remove_file(&record_path).unwrap();

    // 4. A planted attachment state (group-writable) naming a file to delete as device info
    //    and a VF to "restore": DEL does neither, moves it aside and succeeds.
    let victim = lab.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    lab.add("c-real", &pod, "net1", &conf).ok();
    let attach = state.attachment_path("c-real", "net1");
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&attach).unwrap()).unwrap();
    forged["device_info_file"] = json!(victim);
    std::fs::write(&attach, serde_json::to_vec(&forged).unwrap()).unwrap();
    std::fs::set_permissions(&attach, std::fs::Permissions::from_mode(0o620)).unwrap();
    lab.del("c-real", pod.path_str(), "net1", &conf).ok();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!attach.exists());
    let aside = PathBuf::from(format!("{}.set-aside", attach.display()));
    assert!(aside.exists(), "kept for inspection");
    assert!(
        lab.log().contains("attachment state not used"),
        "{}",
        lab.log()
    );
    // Its VF record was released as an interrupted ADD's would be (the state is unusable).
    assert!(state.read_record(&lab.pci(&vf)).unwrap().is_none());
    std::fs::remove_file(&aside).unwrap();
    // The netdev is still in the pod (nothing trusted said where it came from); the netns
    // going away returns it. Give it back so the lab ends clean.
    if link_in(&pod, "net1").is_some() {
        pod.ip(&["link", "set", "net1", "netns", lab.host.name()]);
    }

    // 5. A state directory others may write is refused before anything is claimed.
    std::fs::set_permissions(lab.state_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let msg = refused_untrusted(lab.add("c-y", &pod, "net1", &lab.conf(&lab.vfs[1].0, json!({}))));
    assert!(
        msg.contains(&lab.state_dir().display().to_string()),
        "{msg}"
    );
    assert!(state.records().is_empty());
    assert!(lab.host_link(&lab.vfs[1].1).is_some());
    std::fs::set_permissions(lab.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_no_stray_state(&lab);
    assert!(
        lab.ipam_allocations().is_empty(),
        "{:?}",
        lab.ipam_allocations()
    );
}

#[test]
fn release_container_frees_every_vf_of_a_container_known_only_by_id() {
    require_root!();
    let lab = new_lab(4);
    let pod = TestNetns::new();
    let other = TestNetns::new();
    let plain = |i: usize| lab.conf(&lab.vfs[i].0, json!({"ipam": null}));
    lab.add("c-lost", &pod, "net1", &plain(0)).ok();
    lab.add("c-lost", &pod, "net2", &plain(1)).ok();
    plant_orphan_record(&lab, &lab.vfs[2].0, "c-lost", "net3", pod.path_str());
    lab.add("c-keep", &other, "net1", &plain(3)).ok();
    // A corrupt state of the container is moved aside, not read.
    let corrupt = lab.state().attachment_path("c-lost", "net4");
    std::fs::write(&corrupt, b"{not json").unwrap();
    std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o600)).unwrap();

    let host = Netns::open(lab.host.path()).unwrap();
    let released = release_in(&lab, &host, "c-lost");
    assert_eq!(released, 3);
    for i in 0..3 {
        assert!(
            lab.host_link(&lab.vfs[i].1).is_some(),
            "VF {i} back in the host"
        );
    }
    assert!(link_in(&pod, "net1").is_none() && link_in(&pod, "net2").is_none());
    assert!(
        link_in(&other, "net1").is_some(),
        "another container keeps its VF"
    );
    assert_eq!(owners(&lab), ["c-keep"]);
    assert!(!corrupt.exists());
    assert!(PathBuf::from(format!("{}.set-aside", corrupt.display())).exists());
    // Nothing left to do a second time.
    let again = release_in(&lab, &host, "c-lost");
    assert_eq!(again, 0);
    lab.del("c-keep", other.path_str(), "net1", &plain(3)).ok();
}
