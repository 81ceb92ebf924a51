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

use std::process::ExitCode;

use multinet_netlink::{IpvlanSpec, NetlinkHandle, Netns, VfInfo, VfSetting, VlanProto};

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netlink-tool: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netlink-tool: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), BoxError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let nl = NetlinkHandle::current()?;
    match args.as_slice() {
        ["vf-show", pf] => {
            let pf = nl.link_by_name(pf).await?;
            let vfs: Vec<serde_json::Value> =
                nl.vf_infos(pf.index).await?.iter().map(vf_json).collect();
            println!("{}", serde_json::Value::Array(vfs));
        }
        ["vf-set", pf, vf, setting @ ..] => {
            let pf = nl.link_by_name(pf).await?;
            let setting = parse_setting(setting)?;
            nl.set_vf(pf.index, vf.parse()?, &setting).await?;
        }
        ["ipvlan-add", parent, name, netns, mode, flag @ ..] => {
            let parent = nl.link_by_name(parent).await?;
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
            nl.create_ipvlan(&spec, Some(&Netns::open(netns)?)).await?;
        }
        _ => return Err("usage: see the header of examples/netlink-tool.rs".into()),
    }
    Ok(())
}

fn parse_setting(words: &[&str]) -> Result<VfSetting, BoxError> {
    let on = |w: &str| match w {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {w}")),
    };
    Ok(match words {
        ["mac", mac] => VfSetting::Mac(mac.parse()?),
        ["vlan", vlan, qos, proto] => VfSetting::Vlan {
            vlan: vlan.parse()?,
            qos: qos.parse()?,
            proto: proto.parse::<VlanProto>()?,
        },
        ["rate", min, max] => VfSetting::Rate {
            min_tx_rate: min.parse()?,
            max_tx_rate: max.parse()?,
        },
        ["spoofchk", v] => VfSetting::SpoofCheck(on(v)?),
        ["trust", v] => VfSetting::Trust(on(v)?),
        ["state", s] => VfSetting::LinkState(s.parse()?),
        _ => return Err(format!("unknown VF setting {words:?}").into()),
    })
}

fn vf_json(vf: &VfInfo) -> serde_json::Value {
    serde_json::json!({
        "id": vf.id,
        "mac": vf.mac.to_string(),
        "vlan": vf.vlan,
        "qos": vf.qos,
        "vlan_proto": vf.vlan_proto.to_string(),
        "spoofchk": vf.spoofchk,
        "trust": vf.trust,
        "link_state": vf.link_state.to_string(),
        "min_tx_rate": vf.min_tx_rate,
        "max_tx_rate": vf.max_tx_rate,
    })
}
