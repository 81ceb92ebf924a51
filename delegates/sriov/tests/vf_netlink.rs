//! Every VF setting really programmed on a PF and read back from the kernel after ADD, and
//! restored to the VF's original values after DEL. The PF is netdevsim (with 4 VFs), which
//! only the kernel lab has (guest/sriov-netdevsim.sh runs this binary there); its VF netdevs
//! are veth links named by a fake sysfs. Elsewhere the test says SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lab, link_in, vf_addr};
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const NSIM_BUS: &str = "/sys/bus/netdevsim";

/// A netdevsim device with one port and 4 VFs; deleted on drop.
struct Netdevsim {
    id: u32,
    pf: String,
}

impl Netdevsim {
    fn new(id: u32) -> Netdevsim {
        std::fs::write(format!("{NSIM_BUS}/new_device"), format!("{id} 1")).unwrap();
        let dev = format!("{NSIM_BUS}/devices/netdevsim{id}");
        let start = Instant::now();
        let pf = loop {
            let names: Vec<String> = std::fs::read_dir(format!("{dev}/net"))
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
        std::fs::write(format!("{dev}/sriov_numvfs"), "4").unwrap();
        Netdevsim { id, pf }
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

/// The PF's view of VF `n` (`ip -j link show PF` → vfinfo_list[n]).
fn vf_info(lab: &Lab, n: usize) -> Value {
    let link = link_in(&lab.host, &lab.pf).expect("PF in the host netns");
    let vf = link["vfinfo_list"][n].clone();
    assert_eq!(vf["vf"], n, "{link}");
    vf
}

/// The VF settings as (vlan, qos, proto, mac, spoofchk, trust, min, max, link_state).
fn settings(vf: &Value) -> Value {
    let vlan = &vf["vlan_list"][0];
    json!({
        "vlan": vlan["vlan"].as_u64().unwrap_or(0),
        "qos": vlan["qos"].as_u64().unwrap_or(0),
        "proto": vlan["protocol"].as_str().unwrap_or("802.1Q"),
        "mac": vf["address"],
        "spoofchk": vf["spoofchk"],
        "trust": vf["trust"],
        "min_tx": vf["rate"]["min_tx"],
        "max_tx": vf["rate"]["max_tx"],
        "link_state": vf["link_state"],
    })
}

fn lab_with_netdevsim(layout: SysfsLayout, id: u32) -> (Lab, Netdevsim) {
    let nsim = Netdevsim::new(id);
    // VF 3 is bound to vfio-pci in sysfs: programmed on the PF, nothing moved.
    let lab = Lab::with_pf(layout, 3, true, Some(&nsim.pf));
    (lab, nsim)
}

fn every_setting_round_trip(layout: SysfsLayout, id: u32) {
    let (lab, _nsim) = lab_with_netdevsim(layout, id);
    let pf = lab.pf.clone();
    // Original values that are not the defaults, so "restored" cannot mean "reset".
    lab.host.ip(&[
        "link",
        "set",
        &pf,
        "vf",
        "0",
        "mac",
        "02:00:00:00:0a:00",
        "vlan",
        "7",
        "qos",
        "1",
    ]);
    lab.host.ip(&[
        "link",
        "set",
        &pf,
        "vf",
        "0",
        "max_tx_rate",
        "50",
        "min_tx_rate",
        "5",
    ]);
    lab.host.ip(&[
        "link", "set", &pf, "vf", "0", "state", "disable", "trust", "off", "spoofchk", "off",
    ]);
    let original = settings(&vf_info(&lab, 0));
    let untouched = settings(&vf_info(&lab, 1));

    let (vf, vf_name) = lab.vfs[0].clone();
    let conf = lab.conf(
        &vf,
        json!({"vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad", "mac": "02:5a:00:00:01:01",
               "spoofchk": "on", "trust": "on", "link_state": "enable",
               "min_tx_rate": 10, "max_tx_rate": 100}),
    );
    let pod = TestNetns::new();
    lab.add("c-all", &pod, "net1", &conf).ok();
    let programmed = settings(&vf_info(&lab, 0));
    assert_eq!(
        programmed,
        json!({"vlan": 100, "qos": 3, "proto": "802.1ad", "mac": "02:5a:00:00:01:01",
               "spoofchk": true, "trust": true, "min_tx": 10, "max_tx": 100,
               "link_state": "enable"}),
        "after ADD"
    );
    assert_eq!(settings(&vf_info(&lab, 1)), untouched, "VF 1 untouched");
    let in_pod = link_in(&pod, "net1").expect("VF netdev in the pod");
    assert_eq!(in_pod["address"], "02:5a:00:00:01:01");

    lab.del("c-all", pod.path_str(), "net1", &conf).ok();
    assert_eq!(settings(&vf_info(&lab, 0)), original, "after DEL");
    assert!(
        lab.host_link(&vf_name).is_some(),
        "VF netdev back in the host"
    );
    lab.del("c-all", pod.path_str(), "net1", &conf).ok();
    assert_eq!(settings(&vf_info(&lab, 0)), original, "after a second DEL");
}

#[test]
fn every_setting_programmed_and_restored_sriov_cni_layout() {
    require_root!();
    if !netdevsim_available("every_setting_programmed_and_restored_sriov_cni_layout") {
        return;
    }
    every_setting_round_trip(SysfsLayout::SriovCni, 71);
}

#[test]
fn every_setting_programmed_and_restored_device_plugin_layout() {
    require_root!();
    if !netdevsim_available("every_setting_programmed_and_restored_device_plugin_layout") {
        return;
    }
    every_setting_round_trip(SysfsLayout::DevicePlugin, 72);
}

#[test]
fn only_requested_settings_change_and_netns_loss_still_restores() {
    require_root!();
    if !netdevsim_available("only_requested_settings_change_and_netns_loss_still_restores") {
        return;
    }
    let (lab, _nsim) = lab_with_netdevsim(SysfsLayout::SriovCni, 73);
    let pf = lab.pf.clone();
    lab.host.ip(&[
        "link",
        "set",
        &pf,
        "vf",
        "1",
        "trust",
        "on",
        "max_tx_rate",
        "40",
        "min_tx_rate",
        "0",
    ]);
    let original = settings(&vf_info(&lab, 1));
    let (vf, _) = lab.vfs[1].clone();
    let conf = lab.conf(&vf, json!({"vlan": 12, "spoofchk": "on", "ipam": null}));
    let pod = TestNetns::new();
    lab.add("c-some", &pod, "net1", &conf).ok();
    let mut expected = original.clone();
    expected["vlan"] = json!(12);
    expected["spoofchk"] = json!(true);
    assert_eq!(
        settings(&vf_info(&lab, 1)),
        expected,
        "only vlan and spoofchk changed"
    );
    let path = pod.path_str().to_owned();
    drop(pod);
    lab.del("c-some", &path, "net1", &conf).ok();
    assert_eq!(
        settings(&vf_info(&lab, 1)),
        original,
        "restored with the netns gone"
    );
}

#[test]
fn dpdk_vf_settings_programmed_and_restored() {
    require_root!();
    if !netdevsim_available("dpdk_vf_settings_programmed_and_restored") {
        return;
    }
    let (lab, _nsim) = lab_with_netdevsim(SysfsLayout::DevicePlugin, 74);
    let original = settings(&vf_info(&lab, 3));
    let conf = lab.conf(
        &vf_addr(3),
        json!({"vlan": 300, "mac": "02:5a:00:00:03:03", "trust": "on", "ipam": null}),
    );
    let pod = TestNetns::new();
    let result = lab.add("c-dpdk", &pod, "net1", &conf).ok().clone();
    assert_eq!(result["interfaces"][0]["mac"], "02:5a:00:00:03:03");
    let now = settings(&vf_info(&lab, 3));
    assert_eq!(
        (
            now["vlan"].clone(),
            now["mac"].clone(),
            now["trust"].clone()
        ),
        (json!(300), json!("02:5a:00:00:03:03"), json!(true))
    );
    // The mode is cached: DEL restores the PF side and moves nothing, even without the netns.
    let path = pod.path_str().to_owned();
    drop(pod);
    lab.del("c-dpdk", &path, "net1", &conf).ok();
    assert_eq!(settings(&vf_info(&lab, 3)), original);
}

#[test]
fn a_failed_add_rolls_back_the_pf_side_settings() {
    require_root!();
    if !netdevsim_available("a_failed_add_rolls_back_the_pf_side_settings") {
        return;
    }
    let (lab, _nsim) = lab_with_netdevsim(SysfsLayout::SriovCni, 75);
    let original = settings(&vf_info(&lab, 2));
    let (vf, vf_name) = lab.vfs[2].clone();
    // Two failures after the PF-side settings were programmed: the ifname is taken in the pod
    // (refused before the move), and IPAM fails (after the move).
    let pod = TestNetns::new();
    pod.ip(&[
        "link", "add", "net1", "type", "veth", "peer", "name", "net1p",
    ]);
    let conf = lab.conf(
        &vf,
        json!({"vlan": 22, "max_tx_rate": 70, "trust": "on", "ipam": null}),
    );
    let (code, msg) = lab.add("c-rb", &pod, "net1", &conf).err();
    assert_eq!(code, 8, "{msg}");
    let pod2 = TestNetns::new();
    let bad_ipam = lab.conf(
        &vf,
        json!({"vlan": 22, "max_tx_rate": 70, "trust": "on",
        "ipam": {"type": "no-such-ipam"}}),
    );
    lab.add("c-rb2", &pod2, "net1", &bad_ipam).err();
    assert_eq!(settings(&vf_info(&lab, 2)), original, "PF side rolled back");
    assert!(lab.host_link(&vf_name).is_some(), "netdev back in the host");
    assert!(lab.state().records().is_empty());
}
