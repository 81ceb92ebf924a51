//! Running one attachment's delegate: a single conf or a conflist (plugin by plugin, chaining
//! prevResult as libcni does). A plugin whose binary in CNI_PATH is this very executable (the
//! multi-call install: `macvlan -> multinet`) runs in-process; any other is exec'd. Both paths
//! produce and parse the same stdout, so results are identical either way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use multinet_cni::{
    CniEnv, CniError, CniVersion, Command, DelegateConf, ExecRequest, NetworkResult, PluginConf,
    PluginList, exec_raw, find_plugin,
};
use serde_json::{Map, Value};

use crate::call::own;

/// How long one delegate may run before it is killed and the call fails.
pub const DELEGATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Set in the environment of every plugin multinet execs. multinet refuses to run as the meta
/// plugin when it finds it: a delegate that (by whatever route) runs multinet again fails at once
/// instead of recursing with a config a NAD author wrote.
pub const DELEGATE_MARKER: &str = "MULTINET_DELEGATE_OF";

/// Everything a delegate call shares with the request that caused it.
pub struct CallContext<'a> {
    pub env: &'a CniEnv,
    pub extra_env: &'a [(String, String)],
    /// Canonical path of the running executable, to recognise our own delegates.
    pub self_exe: Option<&'a Path>,
    /// The call's lock on its container, inherited by every plugin it execs (see
    /// `store::AttachmentStore::lock`).
    pub container_lock: Option<std::os::fd::RawFd>,
    /// Where each plugin's run time goes.
    pub metrics: &'a crate::metrics::Metrics,
}

/// One plugin object of a conf or conflist, ready to be run.
struct PluginStep {
    plugin_type: String,
    conf: Map<String, Value>,
}

/// Splits a conf or conflist into its plugins, each with `name` and `cniVersion` filled in as the
/// runtime does; returns them with the version the results are read in.
fn steps(conf: &DelegateConf) -> Result<(Vec<PluginStep>, CniVersion), CniError> {
    let obj = conf
        .as_value()
        .as_object()
        .ok_or_else(|| CniError::invalid_config("delegate config is not a JSON object"))?;
    let version_str = obj.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    let version = CniVersion::from_config_str(version_str)?;
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    let plugins: Vec<Map<String, Value>> = match PluginList::of(obj) {
        PluginList::List(list) => {
            if list.is_empty() {
                return Err(CniError::invalid_config(format!(
                    "conflist {name:?}: \"plugins\" is empty"
                )));
            }
            list.iter()
                .map(|p| {
                    p.as_object().cloned().ok_or_else(|| {
                        CniError::invalid_config(format!(
                            "conflist {name:?}: a \"plugins\" element is not an object"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        PluginList::NotAList => {
            return Err(CniError::invalid_config(format!(
                "conflist {name:?}: \"plugins\" is not a list"
            )));
        }
        PluginList::Single => vec![obj.clone()],
    };
    let steps = plugins
        .into_iter()
        .map(|mut p| {
            let plugin_type = p
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    CniError::invalid_config(format!("network {name:?}: plugin without \"type\""))
                })?
                .to_string();
            p.insert("name".into(), Value::String(name.into()));
            p.insert("cniVersion".into(), Value::String(version.as_str().into()));
            p.remove("prevResult");
            Ok(PluginStep {
                plugin_type,
                conf: p,
            })
        })
        .collect::<Result<Vec<_>, CniError>>()?;
    Ok((steps, version))
}

fn with_prev(
    conf: &Map<String, Value>,
    prev: Option<&NetworkResult>,
    version: CniVersion,
) -> Result<Vec<u8>, CniError> {
    let mut conf = conf.clone();
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.to_value(version)?);
    }
    serde_json::to_vec(&conf).map_err(|e| CniError::internal(e.to_string()))
}

/// Runs one plugin binary (or our in-process equivalent) and returns its stdout.
async fn invoke(
    step: &PluginStep,
    command: Command,
    ifname: &str,
    stdin: &[u8],
    ctx: &CallContext<'_>,
) -> Result<Vec<u8>, CniError> {
    // Found first: only installed plugins' types become labels, whatever a NAD names.
    let path = find_plugin(&step.plugin_type, &ctx.env.path)?;
    let started = std::time::Instant::now();
    let outcome = invoke_found(&path, step, command, ifname, stdin, ctx).await;
    ctx.metrics.delegate_ran(
        &step.plugin_type,
        command.as_str(),
        outcome.is_ok(),
        started.elapsed(),
    );
    outcome
}

async fn invoke_found(
    path: &Path,
    step: &PluginStep,
    command: Command,
    ifname: &str,
    stdin: &[u8],
    ctx: &CallContext<'_>,
) -> Result<Vec<u8>, CniError> {
    let mut env = ctx.env.clone();
    env.command = command;
    env.ifname = ifname.to_string();
    if let Some(delegate) = own::delegate_for(path, &step.plugin_type, ctx.self_exe) {
        tracing::debug!(plugin = %step.plugin_type, verb = command.as_str(), "delegate in-process");
        let mut vars = env.to_vars();
        vars.extend(
            ctx.extra_env
                .iter()
                .filter(|(k, _)| k != DELEGATE_MARKER)
                .cloned(),
        );
        // What the delegate execs in turn (its IPAM) carries the marker too.
        vars.push((DELEGATE_MARKER.into(), std::process::id().to_string()));
        let (stdout, status) = delegate.dispatch(vars, stdin).await;
        return if status == 0 {
            Ok(stdout)
        } else {
            Err(parse_error(&stdout, &step.plugin_type))
        };
    }
    tracing::debug!(plugin = %path.display(), verb = command.as_str(), "delegate exec");
    let mut extra_env: Vec<(String, String)> = ctx
        .extra_env
        .iter()
        .filter(|(k, _)| k != DELEGATE_MARKER)
        .cloned()
        .collect();
    extra_env.push((DELEGATE_MARKER.into(), std::process::id().to_string()));
    exec_raw(
        path,
        &ExecRequest {
            command,
            env: &env,
            extra_env: &extra_env,
            stdin,
            timeout: DELEGATE_TIMEOUT,
            keep_fd: ctx.container_lock,
        },
    )
    .await
}

fn parse_error(stdout: &[u8], plugin_type: &str) -> CniError {
    serde_json::from_slice::<CniError>(stdout).unwrap_or_else(|_| {
        CniError::internal(format!(
            "plugin {plugin_type} failed: {}",
            String::from_utf8_lossy(stdout).trim()
        ))
    })
}

/// Checks, before anything is created, that every plugin of `conf` can run as a delegate: it is
/// found in CNI_PATH, and it is neither a meta-plugin by type nor this very executable under
/// another plugin's name (a `macvlan -> multinet` link is our own delegate and fine; a
/// `evil -> multinet` link would make multinet run itself as root with a NAD author's config).
pub fn preflight(conf: &DelegateConf, ctx: &CallContext<'_>) -> Result<(), CniError> {
    let (steps, _) = steps(conf)?;
    let own = ctx.self_exe.and_then(file_identity);
    for step in &steps {
        let conf = Value::Object(step.conf.clone());
        for (key, plugin_type) in multinet_crds::trust::plugin_types(PluginConf::new(&conf)) {
            if multinet_crds::is_meta_plugin_type(plugin_type) {
                return Err(CniError::invalid_config(format!(
                    "{key} {plugin_type:?} is a meta-plugin and cannot be a delegate of multinet"
                )));
            }
            let own_ipam = key == "ipam.type"
                && own::OwnDelegate::from_type(plugin_type).is_some_and(|d| d.is_ipam());
            let path = match find_plugin(plugin_type, &ctx.env.path) {
                Ok(path) => path,
                // Our delegates run host-local and static in-process, binary or not; an exec'd
                // plugin reports a missing one itself.
                Err(_) if own_ipam => continue,
                Err(e) => return Err(e.context(format!("{key} {plugin_type:?}"))),
            };
            // Our own executable may only be what it is under that name: an interface plugin
            // as `type`, host-local or static as `ipam.type`.
            let allowed = match (key, own::OwnDelegate::from_type(plugin_type)) {
                ("ipam.type", Some(d)) => d.is_ipam(),
                (_, d) => d.is_some(),
            };
            if own.is_some() && file_identity(&path) == own && !allowed {
                return Err(CniError::invalid_config(format!(
                    "{key} {plugin_type:?}: {} is multinet's own executable, which is never a \
                     delegate of multinet under that name",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Device and inode of a file (symlinks followed): two paths to one executable compare equal.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// ADD: plugins in order, each getting the previous one's result.
pub async fn add(
    conf: &DelegateConf,
    ifname: &str,
    ctx: &CallContext<'_>,
) -> Result<NetworkResult, CniError> {
    let (steps, version) = steps(conf)?;
    let mut prev: Option<NetworkResult> = None;
    for step in &steps {
        let stdin = with_prev(&step.conf, prev.as_ref(), version)?;
        let out = invoke(step, Command::Add, ifname, &stdin, ctx).await?;
        prev = Some(
            NetworkResult::from_slice(&out, version)
                .map_err(|e| e.context(format!("result of plugin {}", step.plugin_type)))?,
        );
    }
    prev.ok_or_else(|| CniError::internal("no plugin ran"))
}

/// DEL: plugins in reverse order, each with the recorded result as prevResult. Every plugin is
/// attempted; the first error is returned after all ran.
pub async fn del(
    conf: &DelegateConf,
    ifname: &str,
    prev: Option<&NetworkResult>,
    ctx: &CallContext<'_>,
) -> Result<(), CniError> {
    let (steps, version) = steps(conf)?;
    let mut first_error = None;
    for step in steps.iter().rev() {
        let stdin = with_prev(&step.conf, prev, version)?;
        if let Err(e) = invoke(step, Command::Del, ifname, &stdin, ctx).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// CHECK: plugins in order with the recorded result. Versions before 0.4.0 have no CHECK.
pub async fn check(
    conf: &DelegateConf,
    ifname: &str,
    prev: Option<&NetworkResult>,
    ctx: &CallContext<'_>,
) -> Result<(), CniError> {
    let (steps, version) = steps(conf)?;
    if !version.has_check() || conf.get("disableCheck").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    for step in &steps {
        let stdin = with_prev(&step.conf, prev, version)?;
        invoke(step, Command::Check, ifname, &stdin, ctx).await?;
    }
    Ok(())
}

/// STATUS or GC (verbs of 1.1.0): every plugin, with `extra` merged into its config (GC's
/// `cni.dev/valid-attachments`).
pub async fn status_or_gc(
    conf: &DelegateConf,
    command: Command,
    extra: &Map<String, Value>,
    ctx: &CallContext<'_>,
) -> Result<(), CniError> {
    let (steps, version) = steps(conf)?;
    if !version.has_status_and_gc()
        || (command == Command::Gc && conf.get("disableGC").and_then(Value::as_bool) == Some(true))
    {
        return Ok(());
    }
    let mut first_error = None;
    for step in &steps {
        let mut plugin = step.conf.clone();
        plugin.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let stdin = serde_json::to_vec(&plugin).map_err(|e| CniError::internal(e.to_string()))?;
        if let Err(e) = invoke(step, command, &ctx.env.ifname, &stdin, ctx).await {
            if command == Command::Status {
                return Err(e);
            }
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Runs `call` for every item at the same time and returns the outcomes in item order. Each call
/// gets its own thread and runtime: our in-process delegates do blocking I/O (locks, fsync,
/// netlink), which would serialise them on one thread. A single item runs on the caller's runtime.
pub async fn at_once<I: Sync, T: Send>(
    items: &[I],
    call: impl AsyncFn(&I) -> Result<T, CniError> + Sync,
) -> Vec<Result<T, CniError>> {
    if let [item] = items {
        return vec![call(item).await];
    }
    let call = &call;
    std::thread::scope(|scope| {
        let threads: Vec<_> = items
            .iter()
            .map(|item| {
                scope.spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| CniError::internal(format!("delegate runtime: {e}")))?
                        .block_on(call(item))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(CniError::internal("delegate thread panicked")))
            })
            .collect()
    })
}

/// The canonical path of this executable, for recognising multi-call installs.
pub fn self_exe() -> Option<PathBuf> {
    std::fs::canonicalize("/proc/self/exe").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conflist_steps_get_name_and_version() {
        let (steps, v) = steps(&DelegateConf::new(
            json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"bridge","prevResult":{}},{"type":"portmap"}]}),
        ))
        .unwrap();
        assert_eq!(v, CniVersion::V1_0_0);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].conf["name"], "n");
        assert_eq!(steps[1].conf["cniVersion"], "1.0.0");
        assert!(!steps[0].conf.contains_key("prevResult"));
    }

    #[test]
    fn bad_delegate_configs_are_named_errors() {
        for (conf, needle) in [
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[]}),
                "empty",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":{}}),
                "not a list",
            ),
            (json!({"cniVersion":"1.0.0","name":"n"}), "type"),
            (json!({"cniVersion":"9.9.9","name":"n","type":"x"}), "9.9.9"),
        ] {
            let err = steps(&DelegateConf::new(conf)).err().expect("must fail");
            assert!(err.msg.contains(needle), "{needle}: {}", err.msg);
        }
    }
}
