//! Loading the networks a plan needs: NADs from the cluster source, files from confDir, inline
//! delegates, directories and paths. The only I/O of planning lives here.

use std::fs;
use std::path::{Path, PathBuf};

use multinet_cni::DelegateConf;
use serde_json::Value;

use crate::call::config::MultinetConf;
use crate::call::plan::{LoadedNetwork, NetworkRef};
use crate::call::source::{ClusterSource, NadInfo};
use crate::error::MetaError;

use multinet_crds::{
    RESOURCE_NAME_ANNOTATION, check_delegate_config, parse_nad_config, runs_a_meta_plugin,
};

/// A delegate config read from JSON text: the one place a delegate config from a NAD or a file
/// is parsed.
fn parse_conf(bytes: &[u8], what: &str, limit: usize) -> Result<DelegateConf, MetaError> {
    check_size(bytes.len() as u64, what, limit)?;
    // serde's message gives line and column, never the text.
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| MetaError::network(what, format!("config is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(MetaError::network(what, "config is not a JSON object"));
    }
    let has_type = value.get("type").and_then(Value::as_str).is_some();
    let has_plugins =
        multinet_cni::PluginList::of_value(&value) != multinet_cni::PluginList::Single;
    if !has_type && !has_plugins {
        return Err(MetaError::network(
            what,
            "config has neither \"type\" nor \"plugins\"",
        ));
    }
    Ok(DelegateConf::new(value))
}

/// Refuses a delegate config larger than `maxDelegateConfigBytes`, before it is parsed.
fn check_size(len: u64, what: &str, limit: usize) -> Result<(), MetaError> {
    if len > limit as u64 {
        return Err(MetaError::network(
            what,
            format!("config is {len} bytes, more than maxDelegateConfigBytes ({limit})"),
        ));
    }
    Ok(())
}

/// `.conf`, `.conflist` and `.json` files of a directory, sorted by name. The meta-plugin's own
/// config (multinet's or Multus's) sits in the same folder as the cluster network's and is never
/// the cluster network: callers skip it with [`runs_a_meta_plugin`].
fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("conf" | "conflist" | "json")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn load_file(path: &Path, limit: usize) -> Result<DelegateConf, MetaError> {
    let what = path.display().to_string();
    let size = fs::metadata(path).map_err(|e| MetaError::network(&what, e.to_string()))?;
    check_size(size.len(), &what, limit)?;
    let bytes = fs::read(path).map_err(|e| MetaError::network(&what, e.to_string()))?;
    parse_conf(&bytes, &what, limit)
}

/// The file in `dir` whose CNI `name` is `name`; meta-plugin configs are never it.
fn find_by_name(dir: &Path, name: &str, limit: usize) -> Option<DelegateConf> {
    conf_files(dir).into_iter().find_map(|p| {
        let conf = load_file(&p, limit).ok()?;
        (conf.name() == Some(name) && !runs_a_meta_plugin(&conf)).then_some(conf)
    })
}

/// A meta-plugin is never a delegate, whoever wrote the config (for a node admin's config it is
/// a loop; for a NAD author's, multinet running itself with their config).
fn refuse_meta_plugin(key: &str, conf: &DelegateConf) -> Result<(), MetaError> {
    if runs_a_meta_plugin(conf) {
        return Err(MetaError::network(
            key,
            "its config runs a meta-plugin (multinet, multus, multus-shim), which is never a \
             delegate of multinet",
        ));
    }
    Ok(())
}

fn from_nad(nad: &NadInfo, conf: &MultinetConf) -> Result<LoadedNetwork, MetaError> {
    let key = format!("{}/{}", nad.namespace, nad.name);
    let limit = conf.max_delegate_config_bytes;
    let value = match nad.config.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            check_size(text.len() as u64, &key, limit)?;
            // The webhook's structural rule, in its words (serde's part gives line and
            // column, never the text); the name is filled from the NAD's.
            let value = parse_nad_config(text, &nad.name).map_err(|e| {
                MetaError::network(&key, format!("NetworkAttachmentDefinition spec.config {e}"))
            })?;
            // A NAD author's config: the one rule the webhook applies too.
            check_delegate_config(&value).map_err(|v| {
                MetaError::network(&key, format!("NetworkAttachmentDefinition spec.config: {v}"))
            })?;
            value
        }
        // An empty spec means "the file in confDir that carries this network's name".
        _ => find_by_name(&conf.conf_dir, &nad.name, limit).ok_or_else(|| {
            MetaError::network(
                &key,
                format!(
                    "NetworkAttachmentDefinition has no spec.config and no file in {} is named {:?}",
                    conf.conf_dir.display(),
                    nad.name
                ),
            )
        })?,
    };
    Ok(LoadedNetwork {
        key,
        conf: value,
        resource_name: nad.annotations.get(RESOURCE_NAME_ANNOTATION).cloned(),
    })
}

/// Loads one network reference.
/// The networks a pod asked for, loaded all at once (one API round trip of latency, not one per
/// network): the cluster network, the defaults, and each annotation selection with its network.
pub async fn load_requested<S: ClusterSource>(
    requested: &crate::call::plan::Requested,
    conf: &MultinetConf,
    source: Option<&S>,
) -> Result<
    (
        LoadedNetwork,
        Vec<LoadedNetwork>,
        Vec<(multinet_crds::NetworkSelection, LoadedNetwork)>,
    ),
    MetaError,
> {
    let nad_refs: Vec<NetworkRef> = requested
        .selections
        .iter()
        .map(|sel| NetworkRef::Nad {
            namespace: sel.namespace.clone().unwrap_or_default(),
            name: sel.name.clone(),
        })
        .collect();
    let (cluster, defaults, nads) = futures::try_join!(
        load(&requested.cluster, conf, source),
        futures::future::try_join_all(requested.defaults.iter().map(|r| load(r, conf, source))),
        futures::future::try_join_all(nad_refs.iter().map(|r| load(r, conf, source))),
    )?;
    let selected = requested.selections.iter().cloned().zip(nads).collect();
    Ok((cluster, defaults, selected))
}

pub async fn load<S: ClusterSource>(
    r: &NetworkRef,
    conf: &MultinetConf,
    source: Option<&S>,
) -> Result<LoadedNetwork, MetaError> {
    match r {
        NetworkRef::InlineDelegate(i) => {
            let mut value = conf.delegates.get(*i).cloned().ok_or_else(|| {
                MetaError::InvalidConfig(format!("multinet config: delegates[{i}] is missing"))
            })?;
            let name = value.ensure_name(&format!("delegate-{i}"));
            refuse_meta_plugin(&name, &value)?;
            Ok(LoadedNetwork {
                key: name,
                conf: value,
                resource_name: None,
            })
        }
        NetworkRef::Nad { namespace, name } => {
            let key = format!("{namespace}/{name}");
            let source = source.ok_or_else(|| {
                MetaError::network(
                    &key,
                    "no cluster source (kubeconfig or localDir) is configured",
                )
            })?;
            let nad = source
                .nad(namespace, name)
                .await?
                .ok_or_else(|| MetaError::network(&key, "NetworkAttachmentDefinition not found"))?;
            from_nad(&nad, conf)
        }
        NetworkRef::Configured(name) => {
            // Multus's order: a NAD in the multinet namespace, a network name in confDir, a
            // directory, a file path.
            if let Some(source) = source
                && !name.contains('/')
                && let Some(nad) = source.nad_if_any(&conf.multus_namespace, name).await?
            {
                return from_nad(&nad, conf);
            }
            let limit = conf.max_delegate_config_bytes;
            if let Some(value) = find_by_name(&conf.conf_dir, name, limit) {
                return Ok(LoadedNetwork {
                    key: name.clone(),
                    conf: value,
                    resource_name: None,
                });
            }
            let path = Path::new(name);
            let file = if path.is_dir() {
                // The first config that is not a meta-plugin's: multinet's own config usually
                // sorts first in the runtime's folder.
                conf_files(path)
                    .into_iter()
                    .find(|p| load_file(p, limit).is_ok_and(|v| !runs_a_meta_plugin(&v)))
                    .ok_or_else(|| {
                        MetaError::network(
                            name,
                            "directory holds no .conf or .conflist file other than a meta-plugin's",
                        )
                    })?
            } else if path.is_file() {
                path.to_path_buf()
            } else {
                return Err(MetaError::network(
                    name,
                    format!(
                        "not a NetworkAttachmentDefinition in {:?}, a network in {}, a directory or a file",
                        conf.multus_namespace,
                        conf.conf_dir.display()
                    ),
                ));
            };
            let mut value = load_file(&file, limit)?;
            let key = value.ensure_name(name);
            refuse_meta_plugin(&key, &value)?;
            Ok(LoadedNetwork {
                key,
                conf: value,
                resource_name: None,
            })
        }
    }
}
