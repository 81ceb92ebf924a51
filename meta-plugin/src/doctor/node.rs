//! The node's side of `multinet doctor`: the CNI config folder, the readiness file, plugin
//! binaries, the daemon, the attachment store, temp files and VF pools. Each function looks at
//! the node and returns its checks; the rules live in `report` and in the call's own modules.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use multinet_cni::{CniEnv, Command, DelegateConf, files};

use super::report::{Check, runtime_choice};
use crate::call::config::MultinetConf;
use crate::call::delegate::{self, CallContext};
use crate::call::store::{AttachmentRecord, AttachmentStore};
use crate::install::parse_conf_file;

/// multinet's config as the runtime hands it to the binary: a single conf as it is, or the first
/// plugin of a conflist with the list's `name` and `cniVersion`, as libcni builds it.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub path: PathBuf,
    pub stdin: Vec<u8>,
    pub conf: MultinetConf,
}

/// Which file the runtime reads from `dir`, whether it is multinet's, and whether multinet's
/// config in it parses. `explicit` (`--config`) replaces the folder's choice.
pub fn runtime_config(
    dir: &Path,
    explicit: Option<&Path>,
    checks: &mut Vec<Check>,
) -> Option<RuntimeConfig> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let names = match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect::<Vec<_>>(),
                Err(e) => {
                    checks.push(Check::fail(
                        "runtime config",
                        format!("CNI config folder {}: {e}", dir.display()),
                        "pass the runtime's folder with --cni-conf-dir (containerd: \
                         plugins.cri.cni.conf_dir; CRI-O: network_dir)",
                    ));
                    return None;
                }
            };
            let Some(name) = runtime_choice(names) else {
                checks.push(Check::fail(
                    "runtime config",
                    format!("no .conf, .conflist or .json file in {}", dir.display()),
                    "run `multinet install` (the DaemonSet) once the cluster network wrote its \
                     config",
                ));
                return None;
            };
            dir.join(name)
        }
    };
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| parse_conf_file(&path, &bytes).map_err(|e| e.to_string()));
    let conf = match parsed {
        Ok(conf) => conf,
        Err(e) => {
            checks.push(Check::fail(
                "runtime config",
                format!("{}: {e}", path.display()),
                "the runtime cannot load it either: fix or remove the file",
            ));
            return None;
        }
    };
    let Some(stdin) = crate::call::config::multinet_stdin(&conf) else {
        let types: Vec<&str> = conf
            .plugins()
            .filter_map(|(_, p)| p.plugin_type())
            .collect();
        checks.push(Check::fail(
            "runtime config",
            format!(
                "the runtime reads {}, which runs {} first, not multinet: pods get no secondary \
                 networks",
                path.display(),
                types.join(", ")
            ),
            "run `multinet install` so that 00-multinet.conf[list] sorts first, or remove the \
             file that sorts before it",
        ));
        return None;
    };
    checks.push(Check::ok(
        "runtime config",
        format!("the runtime reads {}, multinet's", path.display()),
    ));
    match MultinetConf::parse(&stdin) {
        Ok((conf, unknown)) => {
            checks.push(if unknown.is_empty() {
                Check::ok("config parses", "multinet's config parses")
            } else {
                Check::warn(
                    "config parses",
                    format!("parses; keys multinet ignores: {}", unknown.join(", ")),
                    "remove or correct those keys",
                )
            });
            Some(RuntimeConfig { path, stdin, conf })
        }
        Err(e) => {
            checks.push(Check::fail(
                "config parses",
                e.to_string(),
                format!(
                    "correct {} (every CNI call fails on it now)",
                    path.display()
                ),
            ));
            None
        }
    }
}

/// Whether the cluster network's readiness file exists.
pub fn readiness(conf: &MultinetConf) -> Check {
    match &conf.readiness_indicator_file {
        None => Check::skip("readiness file", "no readinessindicatorfile configured"),
        Some(file) if file.exists() => {
            Check::ok("readiness file", format!("{} exists", file.display()))
        }
        Some(file) => Check::fail(
            "readiness file",
            format!(
                "{} does not exist: every ADD waits 45 s and fails",
                file.display()
            ),
            "the cluster network writes it when it is ready: check the cluster network's pods \
             on this node",
        ),
    }
}

/// The search path of a delegate: binDir first, then CNI_PATH (as the call builds it).
pub fn search_path(conf: &MultinetConf, cni_path: &[PathBuf]) -> Vec<PathBuf> {
    let mut path = vec![conf.bin_dir.clone()];
    path.extend(cni_path.iter().filter(|p| **p != conf.bin_dir).cloned());
    path
}

/// Whether every plugin of one network's config is found and executable, with the call's own
/// preflight rule (no meta-plugin, no multinet under a stranger's name).
pub fn binaries(network: &str, conf: &DelegateConf, path: &[PathBuf]) -> Check {
    let name = format!("plugins of {network}");
    let env = CniEnv {
        command: Command::Add,
        container_id: String::new(),
        netns: None,
        ifname: String::new(),
        args: Vec::new(),
        path: path.to_vec(),
    };
    let self_exe = delegate::self_exe();
    let metrics = crate::metrics::Metrics::off();
    let ctx = CallContext {
        env: &env,
        extra_env: &[],
        self_exe: self_exe.as_deref(),
        container_lock: None,
        metrics: &metrics,
    };
    let where_ = path
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if let Err(e) = delegate::preflight(conf, &ctx) {
        return Check::fail(
            name,
            e.msg.clone(),
            format!("install the plugin into binDir (searched {where_})"),
        );
    }
    let mut found = Vec::new();
    for (_, plugin) in conf.plugins() {
        for (_, plugin_type) in multinet_cni::trust::plugin_types(plugin) {
            let Ok(file) = multinet_cni::find_plugin(plugin_type, path) else {
                continue; // our in-process IPAM, allowed by preflight
            };
            let executable =
                std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            if !executable {
                return Check::fail(
                    name,
                    format!("{} is not executable", file.display()),
                    format!("chmod 0755 {}", file.display()),
                );
            }
            found.push(plugin_type.to_string());
        }
    }
    found.dedup();
    Check::ok(name, format!("{} found in {where_}", found.join(", ")))
}

/// Whether the node daemon answers on `daemonSocket`.
pub fn daemon(conf: &MultinetConf) -> Check {
    let Some(socket) = &conf.daemon_socket else {
        return Check::skip("daemon", "no daemonSocket configured (thin mode)");
    };
    match crate::thick::daemon::answers(socket) {
        Ok(()) => Check::ok("daemon", format!("answers on {}", socket.display())),
        Err(why) => Check::fail(
            "daemon",
            format!(
                "nothing answers on {} ({why}): each call runs in the binary, without the \
                 daemon's warm API connection",
                socket.display()
            ),
            "start `multinet daemon` (deploy/thick), or remove daemonSocket from the config",
        ),
    }
}

/// The attachment records of the node, each read back; the unreadable ones with their error.
pub fn records(store: &AttachmentStore) -> (Vec<AttachmentRecord>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    match store.container_ids() {
        Ok(ids) => {
            for id in ids {
                match store.load(&id) {
                    Ok(Some(r)) => good.push(r),
                    Ok(None) => {}
                    Err(e) => bad.push(e.to_string()),
                }
            }
        }
        Err(e) => bad.push(e.to_string()),
    }
    (good, bad)
}

/// Who a record belongs to, for messages.
pub fn owner(record: &AttachmentRecord) -> String {
    match &record.pod {
        Some(p) => format!(
            "{}/{} (container {})",
            p.namespace, p.name, record.container_id
        ),
        None => format!("container {}", record.container_id),
    }
}

/// Records whose network namespace is gone: the runtime never sent their DEL, and their
/// addresses and devices are still held.
pub fn stale_records(
    store: &AttachmentStore,
    records: &[AttachmentRecord],
    bad: &[String],
) -> Check {
    let name = "records";
    if !bad.is_empty() {
        return Check::fail(
            name,
            format!("unreadable: {}", bad.join("; ")),
            "the next DEL or GC of that container sets it aside and cleans by container ID; \
             look at it before then",
        );
    }
    let stale: Vec<String> = records
        .iter()
        .filter_map(|r| {
            let netns = r.netns.as_deref()?;
            (!Path::new(netns).exists()).then(|| format!("{} (netns {netns} is gone)", owner(r)))
        })
        .collect();
    if stale.is_empty() {
        return Check::ok(
            name,
            format!("{} in {}, none stale", records.len(), store.dir().display()),
        );
    }
    Check::fail(
        name,
        format!("{} stale: {}", stale.len(), stale.join(", ")),
        "the runtime never sent DEL for them: a CNI GC (containerd 2, CRI-O) removes them, or \
         run DEL with their CNI_CONTAINERID",
    )
}

/// multinet's temp files left in `dirs` by writers killed mid-write.
pub fn temp_files(dirs: &[&Path]) -> Check {
    let mut stray = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        stray.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(files::is_temp_name))
                .map(|e| e.path().display().to_string()),
        );
    }
    stray.sort();
    if stray.is_empty() {
        return Check::ok("temp files", "no stray temp files");
    }
    Check::warn(
        "temp files",
        format!(
            "{} left by a writer killed mid-write: {}",
            stray.len(),
            stray.join(", ")
        ),
        "harmless; the next CNI GC removes them, or delete them",
    )
}

/// The node's VF pools: VFs per PF, who holds them (pod from the attachment records), and
/// allocations whose pod is gone.
pub fn vf_pools(
    sysfs: &multinet_sriov::Sysfs,
    state: &multinet_sriov::StateDir,
    records: &[AttachmentRecord],
) -> Check {
    let name = "VF pools";
    let rows = multinet_sriov::list_devices(sysfs, state);
    let pods: BTreeMap<&str, String> = records
        .iter()
        .filter_map(|r| {
            let p = r.pod.as_ref()?;
            Some((
                r.container_id.as_str(),
                format!("{}/{}", p.namespace, p.name),
            ))
        })
        .collect();
    let mut pools: Vec<String> = Vec::new();
    for pf in rows.iter().filter(|r| r.vf.is_none()) {
        let vfs: Vec<_> = rows
            .iter()
            .filter(|r| r.vf.is_some() && r.pf == pf.pf)
            .collect();
        let held = vfs.iter().filter(|r| r.owner.is_some()).count();
        pools.push(format!(
            "{} ({}): {} VFs, {held} held",
            pf.pf,
            pf.pf_netdev.as_deref().unwrap_or("-"),
            vfs.len()
        ));
    }
    let allocations = state.records();
    let owners: Vec<String> = allocations
        .iter()
        .map(|a| {
            let pod = pods
                .get(a.container_id.as_str())
                .cloned()
                .unwrap_or_else(|| format!("container {}", a.container_id));
            format!("{} -> {pod} {}", a.pci, a.ifname)
        })
        .collect();
    let stale: Vec<String> = allocations
        .iter()
        .filter_map(|a| {
            a.stale_reason()
                .map(|why| format!("{} held by container {} ({why})", a.pci, a.container_id))
        })
        .collect();
    if !stale.is_empty() {
        return Check::fail(
            name,
            format!(
                "{} VFs held by gone pods: {}",
                stale.len(),
                stale.join(", ")
            ),
            "the runtime never sent their DEL: a CNI GC releases them (`multinet sriov list` \
             shows every VF)",
        );
    }
    if pools.is_empty() && owners.is_empty() {
        return Check::skip(name, "no SR-IOV PFs and no VF allocations on this node");
    }
    let mut detail = pools.join("; ");
    if !owners.is_empty() {
        detail = format!("{detail}; owners: {}", owners.join(", "));
    }
    Check::ok(name, detail.trim_start_matches("; ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multinet_is_read_from_a_conflist_with_the_lists_name_and_version() {
        let list = DelegateConf::new(json!({"cniVersion": "1.0.0", "name": "multinet-cni",
            "plugins": [{"type": "multinet", "clusterNetwork": "c"}, {"type": "portmap"}]}));
        let stdin: serde_json::Value =
            serde_json::from_slice(&crate::call::config::multinet_stdin(&list).unwrap()).unwrap();
        assert_eq!(
            stdin,
            json!({"type": "multinet", "clusterNetwork": "c", "name": "multinet-cni",
                   "cniVersion": "1.0.0"})
        );
        let other = DelegateConf::new(json!({"cniVersion": "1.0.0", "name": "flannel",
            "plugins": [{"type": "flannel"}]}));
        assert_eq!(crate::call::config::multinet_stdin(&other), None);
        let single = DelegateConf::new(json!({"type": "multinet", "clusterNetwork": "c"}));
        assert!(crate::call::config::multinet_stdin(&single).is_some());
    }

    #[test]
    fn bin_dir_is_searched_first_and_once() {
        let (conf, _) =
            MultinetConf::parse(br#"{"clusterNetwork":"c","binDir":"/opt/cni/bin"}"#).unwrap();
        let path = search_path(&conf, &["/usr/lib/cni".into(), "/opt/cni/bin".into()]);
        assert_eq!(
            path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }
}
