//! ADD/DEL/CHECK of real "VF netdevs" (veth ends) on this kernel: moved into a pod netns under
//! CNI_IFNAME, restored on DEL (name, MAC, MTU, netns), DEL with the netns gone, DEL twice,
//! rollback of a failed ADD, DPDK mode, pools, a VF held by another pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, PF_ADDR, link_in, vf_addr};
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

/// The VF's record names the pod the runtime gave in CNI_ARGS, and `multinet sriov list` shows
/// it; a record of an earlier version (no pod) still loads, its pod found through the lookup.
#[test]
fn the_listing_names_the_pod_that_owns_each_vf() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 2, false);
    let pod = TestNetns::new();
    let (vf, _) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({}));
    let call = lab
        .cni("ADD", "c-owned", pod.path_str(), "net1")
        .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web;K8S_POD_UID=u1");
    lab.run(&call, &conf).ok();
    let record = lab.state().read_record(&lab.pci(&vf)).unwrap().unwrap();
    assert_eq!(record.pod.as_deref(), Some("team/web"));
    let sysfs = multinet_sriov::Sysfs::new(lab.sysfs.root());
    let rows = multinet_sriov::list_devices(&sysfs, &lab.state());
    let row = rows.iter().find(|r| r.vf == Some(lab.pci(&vf))).unwrap();
    assert_eq!(row.pod.as_deref(), Some("team/web"));
    assert_eq!(row.owner.as_deref(), Some("c-owned/net1"));
    let table = multinet_sriov::DeviceTable(&rows).to_string();
    assert!(table.lines().next().unwrap().contains("POD"), "{table}");
    assert!(table.contains("team/web"), "{table}");
    // Every other VF has no pod.
    assert!(
        rows.iter()
            .filter(|r| r.vf.is_some() && r.vf != Some(lab.pci(&vf)))
            .all(|r| r.pod.is_none())
    );

    // The same record as an earlier version wrote it: no "pod" key.
    let path = lab.state().record_path(&lab.pci(&vf));
    let mut old: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("pod");
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    let record = lab.state().read_record(&lab.pci(&vf)).unwrap().unwrap();
    assert_eq!(record.pod, None);
    let rows = multinet_sriov::list_devices_with(&sysfs, &lab.state(), |cid| {
        (cid == "c-owned").then(|| "team/from-meta-record".to_owned())
    });
    let row = rows.iter().find(|r| r.vf == Some(lab.pci(&vf))).unwrap();
    assert_eq!(row.pod.as_deref(), Some("team/from-meta-record"));

    // DEL of such a record works as before, and the VF has no owner after it.
    lab.del("c-owned", pod.path_str(), "net1", &conf).ok();
    let rows = multinet_sriov::list_devices(&sysfs, &lab.state());
    let row = rows.iter().find(|r| r.vf == Some(lab.pci(&vf))).unwrap();
    assert_eq!((row.pod.clone(), row.owner.clone()), (None, None));
}

fn add_del_round_trip(layout: SysfsLayout) {
    let lab = Lab::new(layout, 2, false);
    let pod = TestNetns::new();
    let (vf, vf_name) = lab.vfs[0].clone();
    let before = lab.host_link(&vf_name).unwrap();
    let orig_mac = before["address"].as_str().unwrap().to_owned();
    let orig_mtu = before["mtu"].as_u64().unwrap();
    let conf = lab.conf(&vf, json!({"mac": "02:5a:00:00:00:01"}));

    let result = lab.add("c-round", &pod, "net1", &conf).ok().clone();
    // The result names the pod interface, its sandbox, MAC and PCI address.
    assert_eq!(result["interfaces"][0]["name"], "net1");
    assert_eq!(result["interfaces"][0]["sandbox"], pod.path_str());
    assert_eq!(result["interfaces"][0]["mac"], "02:5a:00:00:00:01");
    assert_eq!(result["interfaces"][0]["pciID"], vf);
    assert_eq!(result["ips"][0]["interface"], 0);
    let ip = result["ips"][0]["address"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("10.56.217."), "{result}");

    // The kernel agrees: gone from the host, in the pod as net1, up, with MAC and address.
    assert!(lab.host_link(&vf_name).is_none(), "VF still in the host");
    let in_pod = link_in(&pod, "net1").expect("net1 in the pod");
    assert_eq!(in_pod["address"], "02:5a:00:00:00:01");
    assert!(
        in_pod["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP"),
        "{in_pod}"
    );
    let addrs = pod.ip_json(&["addr", "show", "dev", "net1"]);
    let local = &addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["family"] == "inet")
        .unwrap();
    assert_eq!(
        format!(
            "{}/{}",
            local["local"].as_str().unwrap(),
            local["prefixlen"]
        ),
        ip
    );
    // State: record naming the owner, attachment state, device info.
    let record = lab.state().read_record(&lab.pci(&vf)).unwrap().unwrap();
    assert_eq!(record.container_id, "c-round");
    assert_eq!(record.ifname, "net1");
    let state = lab
        .state()
        .read_attachment("c-round", "net1")
        .unwrap()
        .unwrap();
    assert!(state.complete);
    assert_eq!(
        state.original.host_ifname.as_deref(),
        Some(vf_name.as_str())
    );
    let devinfo_path = state.device_info_file.clone().unwrap();
    let devinfo: Value = serde_json::from_slice(&std::fs::read(&devinfo_path).unwrap()).unwrap();
    assert_eq!(devinfo["type"], "pci");
    assert_eq!(devinfo["version"], "1.1.0");
    assert_eq!(devinfo["pci"]["pci-address"], vf);
    assert_eq!(devinfo["pci"]["pf-pci-address"], PF_ADDR);
    assert_eq!(lab.ipam_allocations().len(), 1);

    // CHECK passes; the tuning plugin's MTU change in the pod is undone by DEL.
    lab.call("CHECK", "c-round", pod.path_str(), "net1", &conf)
        .ok();
    pod.ip(&["link", "set", "net1", "mtu", "1400"]);

    lab.del("c-round", pod.path_str(), "net1", &conf).ok();
    assert!(link_in(&pod, "net1").is_none(), "net1 left in the pod");
    let after = lab
        .host_link(&vf_name)
        .expect("VF back in the host under its name");
    assert_eq!(after["address"], orig_mac.as_str());
    assert_eq!(after["mtu"].as_u64().unwrap(), orig_mtu);
    assert!(
        !after["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "down after DEL: {after}"
    );
    let stray = lab.stray_state_files();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(!devinfo_path.exists());
    assert!(lab.ipam_allocations().is_empty(), "IP released");

    // DEL again: nothing to do, still success; and with the netns gone too.
    lab.del("c-round", pod.path_str(), "net1", &conf).ok();
    drop(pod);
    lab.del("c-round", "", "net1", &conf).ok();
    assert!(lab.host_link(&vf_name).is_some());
}

#[test]
fn add_moves_and_del_restores_sriov_cni_layout() {
    require_root!();
    add_del_round_trip(SysfsLayout::SriovCni);
}

#[test]
fn add_moves_and_del_restores_device_plugin_layout() {
    require_root!();
    add_del_round_trip(SysfsLayout::DevicePlugin);
}

#[test]
fn del_succeeds_when_the_netns_is_gone_with_the_netdev() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let pod = TestNetns::new();
    let (vf, _) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({}));
    lab.add("c-gone", &pod, "net1", &conf).ok();
    let path = pod.path_str().to_owned();
    // A veth dies with its netns (a physical VF would come back to the host instead).
    drop(pod);
    lab.del("c-gone", &path, "net1", &conf).ok();
    assert!(lab.state().read_record(&lab.pci(&vf)).unwrap().is_none());
    assert!(
        lab.state()
            .read_attachment("c-gone", "net1")
            .unwrap()
            .is_none()
    );
    assert!(lab.ipam_allocations().is_empty());
    lab.del("c-gone", &path, "net1", &conf).ok();
}

#[test]
fn del_finds_the_netdev_the_kernel_returned_to_the_host() {
    require_root!();
    let lab = Lab::new(SysfsLayout::DevicePlugin, 1, false);
    let pod = TestNetns::new();
    let (vf, vf_name) = lab.vfs[0].clone();
    let orig_mac = lab.host_link(&vf_name).unwrap()["address"].clone();
    let conf = lab.conf(&vf, json!({"mac": "02:5a:00:00:00:09"}));
    lab.add("c-back", &pod, "net1", &conf).ok();
    // What the kernel does with a physical netdev when its netns goes: back to the host under
    // a fallback name; sysfs follows the rename.
    pod.ip(&[
        "link",
        "set",
        "net1",
        "netns",
        lab.host.name(),
        "name",
        "dev77",
    ]);
    lab.sysfs.set_netdev(&vf, Some("dev77"));
    let path = pod.path_str().to_owned();
    drop(pod);
    lab.del("c-back", &path, "net1", &conf).ok();
    let back = lab
        .host_link(&vf_name)
        .expect("renamed back to its original name");
    assert_eq!(back["address"], orig_mac);
    assert!(lab.host_link("dev77").is_none());
    assert!(lab.state().read_record(&lab.pci(&vf)).unwrap().is_none());
}

#[test]
fn a_failed_add_leaves_the_vf_as_it_was() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, vf_name) = lab.vfs[0].clone();
    let orig_mac = lab.host_link(&vf_name).unwrap()["address"].clone();

    // 1. The ifname is taken in the pod: refused before the move.
    let pod = TestNetns::new();
    pod.ip(&[
        "link", "add", "net1", "type", "veth", "peer", "name", "net1p",
    ]);
    let conf = lab.conf(&vf, json!({"mac": "02:5a:00:00:00:02"}));
    let (code, msg) = lab.add("c-fail", &pod, "net1", &conf).err();
    assert_eq!(code, 8, "{msg}");
    assert!(msg.contains("net1"), "{msg}");

    // 2. IPAM fails after the move: the netdev comes back with its name and MAC.
    let pod2 = TestNetns::new();
    let bad_ipam = lab.conf(
        &vf,
        json!({"mac": "02:5a:00:00:00:02", "ipam": {"type": "no-such-ipam"}}),
    );
    let (code, msg) = lab.add("c-fail2", &pod2, "net1", &bad_ipam).err();
    assert!(msg.contains("no-such-ipam"), "{code} {msg}");
    assert!(link_in(&pod2, "net1").is_none());

    let host = lab
        .host_link(&vf_name)
        .expect("VF still in the host under its name");
    assert_eq!(host["address"], orig_mac);
    assert!(lab.state().read_record(&lab.pci(&vf)).unwrap().is_none());
    let stray = lab.stray_state_files();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(lab.ipam_allocations().is_empty());
    // The VF is free again.
    lab.add("c-ok", &pod2, "net1", &lab.conf(&vf, json!({})))
        .ok();
    lab.del("c-ok", pod2.path_str(), "net1", &lab.conf(&vf, json!({})))
        .ok();
}

#[test]
fn a_vf_owned_by_another_pod_is_refused() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, _) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({}));
    let pod_a = TestNetns::new();
    let pod_b = TestNetns::new();
    lab.add("c-a", &pod_a, "net1", &conf).ok();
    let (code, msg) = lab.add("c-b", &pod_b, "net1", &conf).err();
    assert_eq!(code, 11, "{msg}");
    // The message names the deviceID, never the other pod (it goes to B's events); the node's
    // log says who owns it.
    assert!(msg.contains(&format!("deviceID {vf} is in use")), "{msg}");
    assert!(!msg.contains("c-a"), "{msg}");
    assert!(
        lab.log().contains("owned by container c-a"),
        "{}",
        lab.log()
    );
    assert!(link_in(&pod_a, "net1").is_some(), "the owner keeps its VF");
    assert!(
        lab.state()
            .read_attachment("c-b", "net1")
            .unwrap()
            .is_none()
    );
    // A late DEL of B (which never got the VF) must not touch A's VF.
    lab.del("c-b", pod_b.path_str(), "net1", &conf).ok();
    assert!(link_in(&pod_a, "net1").is_some());
    assert_eq!(
        lab.state()
            .read_record(&lab.pci(&vf))
            .unwrap()
            .unwrap()
            .container_id,
        "c-a"
    );
    // ADD twice for the same attachment is refused (code 100) and changes nothing.
    let (code, _) = lab.add("c-a", &pod_a, "net1", &conf).err();
    assert_eq!(code, 100);
    lab.del("c-a", pod_a.path_str(), "net1", &conf).ok();
    lab.add("c-b", &pod_b, "net1", &conf).ok();
    lab.del("c-b", pod_b.path_str(), "net1", &conf).ok();
}

#[test]
fn check_notices_a_changed_mac() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, _) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({"ipam": null}));
    let pod = TestNetns::new();
    lab.add("c-chk", &pod, "net1", &conf).ok();
    lab.call("CHECK", "c-chk", pod.path_str(), "net1", &conf)
        .ok();
    pod.ip(&["link", "set", "net1", "address", "02:5a:00:00:00:44"]);
    let (code, msg) = lab
        .call("CHECK", "c-chk", pod.path_str(), "net1", &conf)
        .err();
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("MAC"), "{msg}");
    let (code, _) = lab
        .call("CHECK", "c-none", pod.path_str(), "net1", &conf)
        .err();
    assert_eq!(code, 101);
    lab.del("c-chk", pod.path_str(), "net1", &conf).ok();
}

#[test]
fn dpdk_vf_is_programmed_not_moved_and_del_restores_it() {
    require_root!();
    let lab = Lab::new(SysfsLayout::DevicePlugin, 1, true);
    let dpdk = vf_addr(1);
    let pod = TestNetns::new();
    let conf = lab.conf(&dpdk, json!({}));
    let result = lab.add("c-dpdk", &pod, "net1", &conf).ok().clone();
    assert_eq!(result["interfaces"][0]["pciID"], dpdk.as_str());
    assert_eq!(result["interfaces"][0]["name"], "net1");
    assert!(
        result["ips"][0]["address"].is_string(),
        "IPAM ran: {result}"
    );
    assert!(link_in(&pod, "net1").is_none(), "nothing moved");
    let state = lab
        .state()
        .read_attachment("c-dpdk", "net1")
        .unwrap()
        .unwrap();
    assert_eq!(
        state.mode,
        multinet_sriov::state::VfMode::Dpdk {
            driver: "vfio-pci".into()
        },
        "the mode is cached"
    );
    let path = pod.path_str().to_owned();
    drop(pod);
    lab.del("c-dpdk", &path, "net1", &conf).ok();
    assert!(lab.state().read_record(&lab.pci(&dpdk)).unwrap().is_none());
    assert!(lab.ipam_allocations().is_empty());
    // A setting needs the PF's VF info, which a veth PF does not have: refused, naming it.
    let pod = TestNetns::new();
    let (code, msg) = lab
        .add(
            "c-dpdk2",
            &pod,
            "net1",
            &lab.conf(&dpdk, json!({"trust": "on"})),
        )
        .err();
    assert_eq!(code, 7);
    assert!(msg.contains("\"trust\""), "{msg}");
    assert!(lab.state().read_record(&lab.pci(&dpdk)).unwrap().is_none());
}

#[test]
fn pool_allocation_until_exhausted() {
    require_root!();
    let lab = Lab::new(SysfsLayout::DevicePlugin, 3, false);
    let pool = json!({"name": "fast", "pfNames": [format!("{}#0-1", lab.pf)], "vendors": ["8086"]});
    let conf = lab.conf("", json!({"deviceID": null, "pool": pool}));
    let pods: Vec<TestNetns> = (0..3).map(|_| TestNetns::new()).collect();
    let a = lab.add("p0", &pods[0], "net1", &conf).ok().clone();
    let b = lab.add("p1", &pods[1], "net1", &conf).ok().clone();
    let got: Vec<&str> = [&a, &b]
        .iter()
        .map(|r| r["interfaces"][0]["pciID"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![vf_addr(0).as_str(), vf_addr(1).as_str()]);
    let (code, msg) = lab.add("p2", &pods[2], "net1", &conf).err();
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("\"fast\""), "{msg}");
    assert!(link_in(&pods[2], "net1").is_none());
    // VF 2 is outside the pool's range; a deviceID outside the pool is refused.
    let (code, msg) = lab
        .add(
            "p2",
            &pods[2],
            "net1",
            &lab.conf(&vf_addr(2), json!({"pool": pool})),
        )
        .err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("not in pool"), "{msg}");
    // Freed by DEL, allocated again.
    lab.del("p0", pods[0].path_str(), "net1", &conf).ok();
    let c = lab.add("p2", &pods[2], "net1", &conf).ok().clone();
    assert_eq!(c["interfaces"][0]["pciID"], vf_addr(0));
    for (i, p) in pods.iter().enumerate().skip(1) {
        lab.del(&format!("p{i}"), p.path_str(), "net1", &conf).ok();
    }
    assert!(lab.state().records().is_empty());
}

#[test]
fn gc_releases_attachments_not_listed() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 2, false);
    let pods = [TestNetns::new(), TestNetns::new()];
    for (i, p) in pods.iter().enumerate() {
        lab.add(
            &format!("g{i}"),
            p,
            "net1",
            &lab.conf(&lab.vfs[i].0, json!({"ipam": null})),
        )
        .ok();
    }
    let mut gc = lab.conf("", json!({"deviceID": null, "ipam": null}));
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "net1"}]);
    let answer = lab.call("GC", "", "", "", &gc);
    assert_eq!(answer.code, 0, "{}", answer.out);
    assert!(
        lab.host_link(&lab.vfs[0].1).is_some(),
        "g0's VF back in the host"
    );
    assert!(link_in(&pods[1], "net1").is_some(), "g1 kept");
    let records = lab.state().records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].container_id, "g1");
}

/// Runs the `sriov` binary as a runtime does (env + stdin) inside the lab's host netns.
fn run_binary(lab: &Lab, cmd: &str, cid: &str, netns: &str, conf: &Value) -> (i32, Value) {
    let out = lab
        .cni(cmd, cid, netns, "net1")
        .in_netns(&lab.host)
        .env_clear()
        .env("MULTINET_SYSFS_ROOT", lab.sysfs.root())
        .env("MULTINET_SRIOV_STATE_DIR", lab.state_dir())
        .env("MULTINET_DEVINFO_DIR", lab.dir.path().join("devinfo"))
        .stdin_json(conf)
        .run();
    (out.code(), out.json())
}

#[test]
fn the_binary_is_a_cni_plugin() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, vf_name) = lab.vfs[0].clone();
    let pod = TestNetns::new();
    let conf = lab.conf(&vf, json!({"cniVersion": "0.4.0"}));
    let (code, out) = run_binary(&lab, "ADD", "c-bin", pod.path_str(), &conf);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(out["interfaces"][0]["name"], "net1");
    assert_eq!(out["ips"][0]["version"], "4", "0.4.0 result shape: {out}");
    assert!(link_in(&pod, "net1").is_some());
    let default_devinfo = lab
        .dir
        .path()
        .join("devinfo/sriov-net-c-bin-net1-device.json");
    assert!(
        default_devinfo.exists(),
        "device info at the documented default path"
    );
    let (code, out) = run_binary(&lab, "DEL", "c-bin", pod.path_str(), &conf);
    assert_eq!((code, &out), (0, &Value::Null));
    assert!(lab.host_link(&vf_name).is_some());
    assert!(!default_devinfo.exists());
    let (code, out) = run_binary(
        &lab,
        "ADD",
        "c-bin",
        pod.path_str(),
        &lab.conf(&vf, json!({"vlan": 5000})),
    );
    assert_eq!(code, 1);
    assert_eq!(out["code"], 7);
    assert!(out["msg"].as_str().unwrap().contains("\"vlan\""), "{out}");
    let (code, out) = run_binary(&lab, "VERSION", "", "", &json!({"cniVersion": "1.1.0"}));
    assert_eq!(code, 0);
    assert!(
        out["supportedVersions"].as_array().unwrap().len() >= 5,
        "{out}"
    );
}

#[test]
fn pool_skips_a_vf_whose_netdev_left_the_host() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 2, false);
    let elsewhere = TestNetns::new();
    // Something outside multinet took VF 0's netdev (no allocation record).
    lab.host
        .ip(&["link", "set", &lab.vfs[0].1, "netns", elsewhere.name()]);
    let pool = json!({"name": "p", "pfNames": [lab.pf.clone()]});
    let conf = lab.conf("", json!({"deviceID": null, "pool": pool, "ipam": null}));
    let pod = TestNetns::new();
    let r = lab.add("c-skip", &pod, "net1", &conf).ok().clone();
    assert_eq!(r["interfaces"][0]["pciID"], vf_addr(1));
    let pod2 = TestNetns::new();
    let (code, msg) = lab.add("c-skip2", &pod2, "net1", &conf).err();
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("1 not usable"), "{msg}");
    lab.del("c-skip", pod.path_str(), "net1", &conf).ok();
}
