//! A NAD whose plugin is one of multinet's own delegates (macvlan, ipvlan, sriov, with their
//! host-local or static IPAM, which they run in-process) is read by that delegate's own config
//! code, the part that needs no kernel or node state. So a NAD this webhook admits is one the
//! delegate accepts at ADD, and a refusal carries the delegate's own words.

use multinet_cni::{CniEnv, Command, DelegateConf, PluginConf, Request};
use multinet_ipam::host_local::config::HostLocalConfig;
use multinet_ipam::static_ipam::StaticConfig;
use serde_json::Value;

/// The call the delegate is shown: an ADD of a pod that does not exist yet.
const CHECK_ENV: [(&str, &str); 5] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "admission-check"),
    ("CNI_NETNS", "/var/run/netns/admission-check"),
    ("CNI_IFNAME", "net1"),
    ("CNI_PATH", "/opt/cni/bin"),
];

/// What multinet puts as `deviceID` at ADD (the device plugin's VF): any VF address will do
/// for reading the config. A NAD may not name one itself (the trust rule).
const SOME_VF: &str = "0000:00:00.0";

/// Checks every plugin of `config` that is one of multinet's delegates; `at` names each
/// plugin as the webhook's other messages do.
pub fn check_own_delegates(config: &DelegateConf) -> Result<(), String> {
    let version = config
        .get("cniVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or("1.0.0");
    let name = config.name().unwrap_or("admission-check");
    for (index, plugin) in config.plugins() {
        let at = match index {
            Some(i) => format!("spec.config.plugins[{i}]"),
            None => "spec.config".to_owned(),
        };
        check_plugin(plugin, name, version).map_err(|msg| {
            let plugin_type = plugin.plugin_type().unwrap_or_default();
            format!("{at}: the {plugin_type} delegate refuses this config: {msg}")
        })?;
    }
    Ok(())
}

/// One plugin, as the runtime hands it to the delegate (with the network's name and version).
fn check_plugin(plugin: PluginConf<'_>, name: &str, version: &str) -> Result<(), String> {
    let Some(plugin_type) = plugin.plugin_type() else {
        return Ok(());
    };
    if !matches!(plugin_type, "macvlan" | "ipvlan" | "sriov") {
        return Ok(());
    }
    let mut conf = plugin.as_value().clone();
    if let Value::Object(obj) = &mut conf {
        obj.insert("name".into(), name.into());
        obj.insert("cniVersion".into(), version.into());
        if plugin_type == "sriov" && plugin.get("pool").is_none() {
            obj.insert("deviceID".into(), SOME_VF.into());
        }
    }
    let env = CniEnv::from_vars(CHECK_ENV.map(|(k, v)| (k.to_owned(), v.to_owned())))
        .map_err(|e| e.msg)?;
    let stdin = serde_json::to_vec(&conf).map_err(|e| e.to_string())?;
    let req = Request::new(env, stdin, Vec::new()).map_err(|e| e.msg)?;
    match plugin_type {
        "macvlan" => multinet_macvlan::conf::macvlan_conf(&req)
            .map(drop)
            .map_err(|e| e.to_string())?,
        "ipvlan" => multinet_ipvlan::conf::ipvlan_conf(&req, Command::Add)
            .map(drop)
            .map_err(|e| e.to_string())?,
        _ => multinet_sriov::config::SriovConf::from_request(&req.config, &req.env)
            .map(drop)
            .map_err(|e| e.to_string())?,
    }
    let ipam = req.config.ipam.as_ref();
    match plugin.ipam_type() {
        Some("host-local") => HostLocalConfig::parse(&req.config, ipam, &req.env)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some("static") => StaticConfig::parse(&req.config, ipam, &req.env)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(config: Value) -> Result<(), String> {
        check_own_delegates(&DelegateConf::new(config))
    }

    #[test]
    fn configs_our_delegates_take_pass() {
        for ok in [
            json!({"cniVersion": "1.0.0", "name": "a", "type": "macvlan", "master": "eth1",
                   "mode": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}),
            json!({"cniVersion": "1.0.0", "name": "b", "type": "ipvlan", "master": "eth1",
                   "mode": "l3", "ipam": {"type": "static",
                   "addresses": [{"address": "10.2.0.5/24"}]}}),
            json!({"cniVersion": "1.0.0", "name": "c", "type": "sriov", "vlan": 100,
                   "spoofchk": "on", "ipam": {"type": "host-local", "subnet": "10.3.0.0/24"}}),
            json!({"cniVersion": "1.0.0", "name": "d", "plugins": [
                {"type": "macvlan", "master": "eth1"}, {"type": "tuning"}]}),
            // Not ours: left to its own plugin.
            json!({"cniVersion": "1.0.0", "name": "e", "type": "bridge", "mode": "nonsense"}),
        ] {
            check(ok.clone()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn a_config_our_delegate_refuses_is_refused_in_its_words() {
        for (bad, words) in [
            (
                json!({"cniVersion": "1.0.0", "name": "a", "type": "macvlan", "mode": "bridgee"}),
                ["spec.config: the macvlan delegate", "mode"],
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "tuning"},
                    {"type": "ipvlan", "mode": "l4"}]}),
                ["spec.config.plugins[1]: the ipvlan delegate", "mode"],
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "c", "type": "sriov", "vlan": 5000}),
                ["spec.config: the sriov delegate", "vlan"],
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "d", "type": "macvlan",
                       "ipam": {"type": "host-local", "subnet": "10.1.0.0/33"}}),
                ["the macvlan delegate", "subnet"],
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "e", "type": "ipvlan",
                       "ipam": {"type": "static", "addresses": [{"address": "x"}]}}),
                ["the ipvlan delegate", "ipam.addresses[0].address"],
            ),
        ] {
            let err = check(bad.clone()).unwrap_err();
            for w in words {
                assert!(err.contains(w), "{bad}: {err} (wanted {w:?})");
            }
        }
    }
}
