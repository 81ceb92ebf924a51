//! A small command-line front end to multinet-netlink, for checking VF and ipvlan operations on
//! kernels and hardware the test machine lacks (the kernel lab: netdevsim VFs, ipvlan).
//!
//! ```text
//! netlink-tool vf-show <pf>
//! netlink-tool vf-set <pf> <vf> mac <MAC> | vlan <id> <qos> <802.1Q|802.1ad>
//!                               | rate <min> <max> | spoofchk on|off | trust on|off
//!                               | state auto|enable|disable
//! netlink-tool ipvlan-add <parent> <name> <netns-path> <l2|l3|l3s> [bridge|private|vepa]
//! ```
//! `vf-show` prints the VFs as JSON on stdout; errors go to stderr with exit status 1.

use std::os::fd::AsRawFd;
use std::process::ExitCode;

use multinet_netlink::{
    IpvlanSpec, Link, Netns, PfVfState, Socket, VfLinkState, VfSetting, VlanProto, ipvlan_message,
};

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netlink-tool: {e}");
            ExitCode::FAILURE
        }
    }
}

fn link(nl: &Socket, name: &str) -> Result<Link, BoxError> {
    nl.link_named(name)?
        .ok_or_else(|| format!("link {name} not found").into())
}

fn run(args: &[String]) -> Result<(), BoxError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let nl = Socket::here()?;
    match args.as_slice() {
        ["vf-show", pf] => {
            let pf = link(&nl, pf)?;
            let vfs: Vec<serde_json::Value> = nl
                .vf_states(pf.index)?
                .unwrap_or_default()
                .iter()
                .map(vf_json)
                .collect();
            println!("{}", serde_json::Value::Array(vfs));
        }
        ["vf-set", pf, vf, setting @ ..] => {
            let pf = link(&nl, pf)?;
            let setting = parse_setting(vf.parse()?, setting)?;
            nl.set_vf(pf.index, &setting)?;
        }
        ["ipvlan-add", parent, name, netns, mode, flag @ ..] => {
            let parent = link(&nl, parent)?;
            let spec = IpvlanSpec {
                name: (*name).to_owned(),
                parent_index: parent.index,
                mode: mode.parse()?,
                flag: flag
                    .first()
                    .map(|f| f.parse())
                    .transpose()?
                    .unwrap_or_default(),
                mtu: None,
            };
            let target = Netns::open(netns)?;
            nl.create_link(ipvlan_message(&spec, Some(target.as_raw_fd())))?;
        }
        _ => return Err("usage: see the header of examples/netlink-tool.rs".into()),
    }
    Ok(())
}

fn parse_setting(vf: u32, words: &[&str]) -> Result<VfSetting, BoxError> {
    let on = |w: &str| match w {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {w}")),
    };
    Ok(match words {
        ["mac", mac] => VfSetting::Mac {
            vf,
            mac: mac.parse()?,
        },
        ["vlan", vlan, qos, proto] => VfSetting::Vlan {
            vf,
            vlan: vlan.parse()?,
            qos: qos.parse()?,
            proto: match proto.to_ascii_lowercase().as_str() {
                "802.1q" => VlanProto::Dot1Q,
                "802.1ad" => VlanProto::Dot1AD,
                _ => return Err(format!("unknown VLAN protocol {proto}").into()),
            },
        },
        ["rate", min, max] => VfSetting::Rate {
            vf,
            min: min.parse()?,
            max: max.parse()?,
        },
        ["spoofchk", v] => VfSetting::Spoofchk { vf, on: on(v)? },
        ["trust", v] => VfSetting::Trust { vf, on: on(v)? },
        ["state", s] => VfSetting::LinkState {
            vf,
            state: serde_json::from_value(serde_json::Value::from(*s))?,
        },
        _ => return Err(format!("unknown VF setting {words:?}").into()),
    })
}

fn vf_json(vf: &PfVfState) -> serde_json::Value {
    serde_json::json!({
        "id": vf.vf,
        "mac": vf.admin_mac.to_string(),
        "vlan": vf.vlan,
        "qos": vf.qos,
        "vlan_proto": match vf.proto {
            VlanProto::Dot1Q => "802.1Q",
            VlanProto::Dot1AD => "802.1ad",
        },
        "spoofchk": vf.spoofchk.unwrap_or(false),
        "trust": vf.trust.unwrap_or(false),
        "link_state": vf.link_state.map_or("unknown", |s| match s {
            VfLinkState::Auto => "auto",
            VfLinkState::Enable => "enable",
            VfLinkState::Disable => "disable",
        }),
        "min_tx_rate": vf.min_tx_rate,
        "max_tx_rate": vf.max_tx_rate,
    })
}
