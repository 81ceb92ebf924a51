//! The macvlan config: the shared keys plus `mode`, `mac` (with CNI_ARGS and runtimeConfig
//! overrides) and `bcqueuelen`.

use multinet_cni::Request;
use serde_json::Value;

use crate::driver::conf::{
    Addressing, ChildKind, LinkConf, MacSource, Master, common_keys, config_dns, macvlan_mode,
    resolve_mac,
};
use crate::driver::keys::Keys;
use crate::error::Result;

/// The plugin's name, in messages and VERSION.
pub const PLUGIN: &str = "macvlan";

/// Reads and validates a macvlan config (everything that needs no kernel state).
pub fn macvlan_conf(req: &Request) -> Result<LinkConf> {
    let keys = Keys::new(PLUGIN, &req.config.extra);
    let common = common_keys(&keys, req)?;
    let mode = macvlan_mode(&keys)?;
    let runtime_mac = match req
        .config
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.get("mac"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(keys.invalid(
                "runtimeConfig.mac",
                format!("expected a string, got {other}"),
            ));
        }
    };
    let mac = resolve_mac(
        PLUGIN,
        [
            (MacSource::Config, keys.string("mac")?),
            (MacSource::CniArgs, req.env.arg("MAC")),
            (MacSource::RuntimeConfig, runtime_mac),
        ],
    )?;
    // 0 means "the kernel's default", as the reference leaves the attribute out for it.
    let bcqueuelen = keys.u32("bcqueuelen")?.filter(|n| *n > 0);
    Ok(LinkConf {
        plugin: PLUGIN,
        master: common.master.map_or(Master::DefaultRoute, Master::Named),
        link_in_container: common.link_in_container,
        mtu: common.mtu,
        kind: ChildKind::Macvlan {
            mode,
            mac,
            bcqueuelen,
        },
        addressing: common
            .ipam_type
            .map_or(Addressing::None, |plugin_type| Addressing::Ipam {
                plugin_type,
            }),
        dns: config_dns(req),
    })
}

/// `ipam.type` only, for DEL, STATUS and GC, which must work whatever else the config says.
pub fn macvlan_ipam_type(req: &Request) -> Result<Option<String>> {
    crate::driver::conf::ipam_type(&Keys::new(PLUGIN, &req.config.extra), req)
}
