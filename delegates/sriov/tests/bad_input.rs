//! Bad input: every case gets the right CNI code and a message naming the key, and changes
//! nothing (no record, no state, no lock file outside the lock dir, VF in the host under its
//! name, no device-info file, no IP allocated).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, PF_ADDR, PLAIN_ADDR, link_in};
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

#[test]
fn bad_input_changes_nothing() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, vf_name) = lab.vfs[0].clone();
    let pod = TestNetns::new();
    let other_pf_pool = json!({"name": "pf2-only", "pfNames": [lab.pf2.clone()]});
    // (extra config, expected code, key the message must name)
    let cases: Vec<(Value, u64, &str)> = vec![
        (json!({"deviceID": "0000:af:2.0"}), 7, "deviceID"),
        (json!({"deviceID": "af:02.0"}), 7, "deviceID"),
        (json!({"deviceID": "0000:ee:00.0"}), 7, "deviceID"),
        (json!({"deviceID": null}), 7, "deviceID"),
        (json!({"pool": other_pf_pool}), 7, "deviceID"),
        (json!({"deviceID": PF_ADDR}), 7, "deviceID"),
        (json!({"deviceID": PLAIN_ADDR}), 7, "deviceID"),
        (json!({"vlan": 4095}), 7, "vlan"),
        (json!({"vlan": -3}), 7, "vlan"),
        (json!({"vlanQoS": 3}), 7, "vlanQoS"),
        (json!({"vlan": 10, "vlanQoS": 9}), 7, "vlanQoS"),
        (json!({"vlan": 0, "vlanProto": "802.1ad"}), 7, "vlanProto"),
        (json!({"vlan": 10, "vlanProto": "802.1x"}), 7, "vlanProto"),
        (json!({"vlanProto": "802.1q"}), 7, "vlanProto"),
        (json!({"link_state": "up"}), 7, "link_state"),
        (
            json!({"min_tx_rate": 500, "max_tx_rate": 100}),
            7,
            "min_tx_rate",
        ),
        (json!({"mac": "02:00:00:00:00"}), 7, "mac"),
        (json!({"mac": "03:00:00:00:00:01"}), 7, "mac"),
        (
            json!({"runtimeConfig": {"mac": "nope"}}),
            7,
            "runtimeConfig.mac",
        ),
        (
            json!({"pool": {"name": "p", "pfNames": ["x#5-1"]}}),
            7,
            "pool.pfNames",
        ),
        // Valid config, but a veth PF reports no VF info: a VF setting cannot be programmed.
        (json!({"vlan": 100}), 7, "vlan"),
        (json!({"spoofchk": "on"}), 7, "spoofchk"),
    ];
    let before = lab.host_link(&vf_name).unwrap();
    for (i, (extra, code, key)) in cases.into_iter().enumerate() {
        let conf = lab.conf(&vf, extra.clone());
        let cid = format!("bad{i}");
        let (got, msg) = lab.add(&cid, &pod, "net1", &conf).err();
        assert_eq!(got, code, "{extra}: {msg}");
        assert!(
            msg.contains(&format!("\"{key}\"")),
            "{extra}: message does not name {key}: {msg}"
        );
        // Nothing changed.
        let stray = lab.stray_state_files();
        assert!(stray.is_empty(), "{extra}: state left behind: {stray:?}");
        assert!(lab.state().records().is_empty(), "{extra}");
        let now = lab
            .host_link(&vf_name)
            .unwrap_or_else(|| panic!("{extra}: VF left the host"));
        assert_eq!(now["address"], before["address"], "{extra}");
        assert_eq!(now["flags"], before["flags"], "{extra}");
        assert!(link_in(&pod, "net1").is_none(), "{extra}");
        assert!(lab.ipam_allocations().is_empty(), "{extra}: IP allocated");
        assert!(
            !lab.dir.path().join("devinfo").exists()
                || common::files_under(&lab.dir.path().join("devinfo")).is_empty(),
            "{extra}: device info written"
        );
    }
    // The VF still works after all that.
    let conf = lab.conf(&vf, json!({}));
    lab.add("good", &pod, "net1", &conf).ok();
    lab.del("good", pod.path_str(), "net1", &conf).ok();
}

#[test]
fn a_bad_netns_is_code_8() {
    require_root!();
    let lab = Lab::new(SysfsLayout::SriovCni, 1, false);
    let (vf, vf_name) = lab.vfs[0].clone();
    let conf = lab.conf(&vf, json!({}));
    let a = lab.call("ADD", "c1", "/nonexistent/netns", "net1", &conf);
    let (code, msg) = a.err();
    assert_eq!(code, 8, "{msg}");
    assert!(lab.host_link(&vf_name).is_some());
    assert!(lab.state().records().is_empty());
}
