//! The netlink request built for each VF setting is byte for byte what `ip link set PF vf N
//! ...` sends (sequence number and port aside). The bytes of `ip` are captured with strace's
//! hex dump of sendmsg, against a veth standing in for the PF in a test netns: the kernel
//! refuses the request (a veth has no VFs), but it has been sent by then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use multinet_netlink::{MacAddr, VfLinkState, VfSetting, VlanProto, vf_request_bytes};
use multinet_testbed::{TestNetns, VethPair, require_root, unique_link_name};

const RTM_NEWLINK: u16 = 16;

/// Every message `cmd` sent over netlink, from strace's `-e write=all` dump.
fn captured_messages(cmd: &[&str]) -> Vec<Vec<u8>> {
    let mut args = vec![
        "-f",
        "-qq",
        "-e",
        "trace=sendmsg",
        "-e",
        "write=all",
        "-o",
        "/dev/stdout",
    ];
    args.extend_from_slice(cmd);
    let out = std::process::Command::new("strace")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run strace ({e}): apt-get install -y strace"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("* ") && line.contains("bytes in buffer") {
            messages.extend(current.take());
            current = Some(Vec::new());
        } else if let (Some(buf), Some(rest)) = (current.as_mut(), line.strip_prefix("| ")) {
            // "| 00010  00 00 ... 00  ascii |": the offset, then up to 16 hex bytes.
            let hex = rest.get(7..55).unwrap_or(&rest[7.min(rest.len())..]);
            buf.extend(
                hex.split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).unwrap()),
            );
        } else {
            messages.extend(current.take());
        }
    }
    messages.extend(current);
    assert!(
        !messages.is_empty(),
        "strace captured nothing from {cmd:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    messages
}

/// The bytes with the sequence number and port zeroed.
fn without_seq_and_pid(mut b: Vec<u8>) -> Vec<u8> {
    b[8..16].fill(0);
    b
}

fn ip_request(ns: &TestNetns, pf: &str, vf_args: &[&str]) -> Vec<u8> {
    let mut cmd = vec!["ip", "-n", ns.name(), "link", "set", "dev", pf, "vf", "3"];
    cmd.extend_from_slice(vf_args);
    let newlink: Vec<Vec<u8>> = captured_messages(&cmd)
        .into_iter()
        .filter(|m| m.len() >= 16 && u16::from_ne_bytes([m[4], m[5]]) == RTM_NEWLINK)
        .collect();
    assert_eq!(
        newlink.len(),
        1,
        "ip {vf_args:?} sent {} RTM_NEWLINK",
        newlink.len()
    );
    without_seq_and_pid(newlink.into_iter().next().unwrap())
}

#[test]
fn vf_requests_equal_what_ip_sends() {
    require_root!();
    let ns = TestNetns::new();
    let veth = VethPair::new(
        Some(&ns),
        &unique_link_name("pf"),
        Some(&ns),
        &unique_link_name("pfp"),
    );
    let pf = veth.a_name();
    let index = ns.ip_json(&["link", "show", "dev", pf])[0]["ifindex"]
        .as_u64()
        .unwrap() as u32;
    let mac: MacAddr = "02:5a:00:10:20:30".parse().unwrap();
    let cases: Vec<(VfSetting, Vec<&str>)> = vec![
        (
            VfSetting::Vlan {
                vf: 3,
                vlan: 100,
                qos: 5,
                proto: VlanProto::Dot1Q,
            },
            vec!["vlan", "100", "qos", "5"],
        ),
        (
            VfSetting::Vlan {
                vf: 3,
                vlan: 100,
                qos: 5,
                proto: VlanProto::Dot1Q,
            },
            vec!["vlan", "100", "qos", "5", "proto", "802.1Q"],
        ),
        (
            VfSetting::Vlan {
                vf: 3,
                vlan: 4094,
                qos: 0,
                proto: VlanProto::Dot1AD,
            },
            vec!["vlan", "4094", "qos", "0", "proto", "802.1ad"],
        ),
        (
            VfSetting::Vlan {
                vf: 3,
                vlan: 0,
                qos: 0,
                proto: VlanProto::Dot1Q,
            },
            vec!["vlan", "0", "qos", "0"],
        ),
        (
            VfSetting::Mac { vf: 3, mac },
            vec!["mac", "02:5a:00:10:20:30"],
        ),
        (
            VfSetting::Mac {
                vf: 3,
                mac: MacAddr::ZERO,
            },
            vec!["mac", "00:00:00:00:00:00"],
        ),
        (
            VfSetting::Rate {
                vf: 3,
                min: 10,
                max: 100,
            },
            vec!["min_tx_rate", "10", "max_tx_rate", "100"],
        ),
        (
            VfSetting::Rate {
                vf: 3,
                min: 0,
                max: 0,
            },
            vec!["min_tx_rate", "0", "max_tx_rate", "0"],
        ),
        (
            VfSetting::Spoofchk { vf: 3, on: true },
            vec!["spoofchk", "on"],
        ),
        (
            VfSetting::Spoofchk { vf: 3, on: false },
            vec!["spoofchk", "off"],
        ),
        (VfSetting::Trust { vf: 3, on: true }, vec!["trust", "on"]),
        (VfSetting::Trust { vf: 3, on: false }, vec!["trust", "off"]),
        (
            VfSetting::LinkState {
                vf: 3,
                state: VfLinkState::Auto,
            },
            vec!["state", "auto"],
        ),
        (
            VfSetting::LinkState {
                vf: 3,
                state: VfLinkState::Enable,
            },
            vec!["state", "enable"],
        ),
        (
            VfSetting::LinkState {
                vf: 3,
                state: VfLinkState::Disable,
            },
            vec!["state", "disable"],
        ),
    ];
    for (setting, args) in cases {
        let ours = without_seq_and_pid(vf_request_bytes(index, &setting));
        let theirs = ip_request(&ns, pf, &args);
        assert_eq!(
            ours,
            theirs,
            "{setting:?} differs from `ip link set {pf} vf 3 {}`",
            args.join(" ")
        );
    }
    // The comparison can fail: another VF number or setting gives other bytes.
    let other = without_seq_and_pid(vf_request_bytes(
        index,
        &VfSetting::Trust { vf: 2, on: true },
    ));
    assert_ne!(other, ip_request(&ns, pf, &["trust", "on"]));
}
