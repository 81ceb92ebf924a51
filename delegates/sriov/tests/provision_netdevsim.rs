//! VF provisioning on a real PF: netdevsim, whose `sriov_numvfs` behaves as a PCI PF's does
//! (N over M > 0 is EBUSY), found through its netdev (`class/net/<pf>/device`: it is no PCI
//! function). The policy creates VFs, changes their number through 0 and returns to 0, each
//! time read back from the kernel (`sriov_numvfs` and `ip -j link show PF` vfinfo_list). And a
//! VF that a real ADD attached blocks a change of its PF, naming the VF and its owner. Only the
//! kernel lab has netdevsim (guest/sriov-netdevsim.sh runs this binary there); elsewhere the
//! test says SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Lab;
use multinet_sriov::provision::{NodePolicy, Step, apply_policy};
use multinet_sriov::{StateDir, Sysfs};
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const NSIM_BUS: &str = "/sys/bus/netdevsim";

/// A netdevsim device with one port and no VFs; deleted on drop.
struct Netdevsim {
    id: u32,
    pf: String,
}

impl Netdevsim {
    fn new(id: u32) -> Netdevsim {
        std::fs::write(format!("{NSIM_BUS}/new_device"), format!("{id} 1")).unwrap();
        let start = Instant::now();
        let pf = loop {
            let names: Vec<String> = std::fs::read_dir(Self::dir_of(id).join("net"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(n) = names.into_iter().next() {
                break n;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "netdevsim{id} has no netdev"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Netdevsim { id, pf }
    }

    fn dir_of(id: u32) -> std::path::PathBuf {
        Path::new(NSIM_BUS).join(format!("devices/netdevsim{id}"))
    }

    /// The kernel's count: the `sriov_numvfs` file.
    fn numvfs(&self) -> u32 {
        std::fs::read_to_string(Self::dir_of(self.id).join("sriov_numvfs"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The VFs the PF reports over netlink (`ip -j link show PF` → vfinfo_list).
    fn vfinfo_len(&self) -> usize {
        let out = Command::new("ip")
            .args(["-j", "link", "show", "dev", &self.pf])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let links: Value = serde_json::from_slice(&out.stdout).unwrap();
        links[0]["vfinfo_list"].as_array().map_or(0, Vec::len)
    }
}

impl Drop for Netdevsim {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{NSIM_BUS}/del_device"), self.id.to_string());
    }
}

/// True when netdevsim can be used here; otherwise prints why the test is skipped.
fn netdevsim_available(test: &str) -> bool {
    if Path::new(NSIM_BUS).exists() {
        return true;
    }
    let in_lab = std::env::var("LAB_GUEST").is_ok_and(|v| v == "1");
    assert!(!in_lab, "{test}: no netdevsim in the kernel lab");
    eprintln!(
        "SKIPPED (needs netdevsim: run it in the kernel lab, guest/sriov-netdevsim.sh): {test}"
    );
    false
}

fn steps(report: &multinet_sriov::provision::Report) -> Vec<(u32, u32)> {
    report
        .done
        .iter()
        .filter_map(|s| match s {
            Step::SetNumVfs { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_policy_creates_changes_and_removes_vfs_on_a_real_pf() {
    require_root!();
    if !netdevsim_available("the_policy_creates_changes_and_removes_vfs_on_a_real_pf") {
        return;
    }
    let nsim = Netdevsim::new(41);
    let state_dir = tempfile::tempdir().unwrap();
    let (sysfs, state) = (Sysfs::new("/sys"), StateDir::new(state_dir.path()));
    let policy = |n: u32| {
        NodePolicy::parse(&format!(
            "[{{name: nsim, nicSelector: {{pfNames: [{}]}}, numVfs: {n}, pool: lab}}]",
            nsim.pf
        ))
        .unwrap()
    };
    assert_eq!(nsim.numvfs(), 0);

    let report = apply_policy(&policy(4), &sysfs, &state);
    assert!(report.is_complete(), "{report}");
    assert_eq!(steps(&report), [(0, 4)]);
    assert_eq!((nsim.numvfs(), nsim.vfinfo_len()), (4, 4));

    // The kernel refuses a count over a count: the applier goes through 0.
    let direct = std::fs::write(Netdevsim::dir_of(nsim.id).join("sriov_numvfs"), "2");
    assert!(
        direct.is_err(),
        "netdevsim took 2 over 4 without going through 0"
    );
    let report = apply_policy(&policy(2), &sysfs, &state);
    assert!(report.is_complete(), "{report}");
    assert_eq!(steps(&report), [(4, 0), (0, 2)]);
    assert_eq!((nsim.numvfs(), nsim.vfinfo_len()), (2, 2));

    let same = apply_policy(&policy(2), &sysfs, &state);
    assert!(same.done.is_empty() && same.is_complete(), "{same}");

    let report = apply_policy(&policy(0), &sysfs, &state);
    assert!(report.is_complete(), "{report}");
    assert_eq!(steps(&report), [(2, 0)]);
    assert_eq!((nsim.numvfs(), nsim.vfinfo_len()), (0, 0));
}

#[test]
fn a_vf_a_real_attachment_holds_blocks_the_change() {
    require_root!();
    if !netdevsim_available("a_vf_a_real_attachment_holds_blocks_the_change") {
        return;
    }
    let nsim = Netdevsim::new(42);
    std::fs::write(Netdevsim::dir_of(nsim.id).join("sriov_numvfs"), "4").unwrap();
    // The lab's PCI tree names the netdevsim PF as PF 0000:af:00.0 with 3 VFs.
    let lab = Lab::with_pf(SysfsLayout::DevicePlugin, 3, false, Some(&nsim.pf));
    let pod = TestNetns::new();
    let conf = lab.conf(&lab.vfs[1].0, json!({}));
    let added = lab.add("c0ffee", &pod, "net1", &conf);
    added.ok();
    let sysfs = Sysfs::new(lab.sysfs.root());
    let numvfs = lab.sysfs.device_dir(common::PF_ADDR).join("sriov_numvfs");
    let before = std::fs::read_to_string(&numvfs).unwrap();
    let policy = NodePolicy::parse(&format!(
        "[{{name: shrink, nicSelector: {{pfNames: [{}]}}, numVfs: 1}}]",
        nsim.pf
    ))
    .unwrap();
    let report = apply_policy(&policy, &sysfs, &lab.state());
    assert!(report.done.is_empty(), "{report}");
    let refused: Vec<String> = report.refused.iter().map(ToString::to_string).collect();
    assert_eq!(
        refused,
        [format!(
            "0000:af:00.0 ({}) (shrink): sriov_numvfs stays {} (the policy wants 1): VF {} is \
             held by container c0ffee (net1)",
            nsim.pf,
            before.trim(),
            lab.vfs[1].0
        )]
    );
    assert_eq!(std::fs::read_to_string(&numvfs).unwrap(), before);
    assert_eq!(nsim.numvfs(), 4, "the kernel's count is untouched");

    // Once the pod is gone (DEL), the change goes through.
    lab.del("c0ffee", pod.path_str(), "net1", &conf).ok();
    let report = apply_policy(&policy, &sysfs, &lab.state());
    assert!(report.is_complete(), "{report}");
    assert_eq!(std::fs::read_to_string(&numvfs).unwrap(), "1");
}
