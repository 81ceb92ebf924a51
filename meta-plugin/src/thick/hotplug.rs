//! The daemon's hot-plug worker (`--hot-plug FILE`): pods of this node whose networks
//! annotation changed are handed to `call::hotplug` one at a time, on a thread of their own (as
//! calls run: delegates block), with the node's multinet config read from FILE each time.
//! After the first list every pod is looked at once, so a change made while the daemon was
//! down is caught up.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::call::source::PodInfo;
use crate::call::source::cache::{Change, Key, Lookup, WatchCache};
use crate::call::source::kube::ClientReuse;
use crate::call::verbs::MetaPlugin;
use crate::error::MetaError;
use crate::metrics::Metrics;

/// Hands pods to the worker; pods already waiting are not queued twice.
#[derive(Clone)]
pub struct HotPlugQueue {
    tx: mpsc::Sender<Key>,
    waiting: Arc<Mutex<BTreeSet<Key>>>,
}

impl HotPlugQueue {
    /// Queues pod `namespace/name` to be brought in line with its annotation (after its ADD:
    /// a change made while the ADD ran is caught up).
    pub fn push_pod(&self, namespace: &str, name: &str) {
        self.push((namespace.to_owned(), name.to_owned()));
    }

    fn push(&self, key: Key) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    /// A pod change from the watch: queued when its networks annotation changed.
    pub fn pod_changed(&self, (key, old, new): Change<PodInfo>) {
        let networks = |p: &Option<Arc<PodInfo>>| {
            p.as_ref().map(|p| {
                p.annotations
                    .get(multinet_crds::NETWORKS_ANNOTATION)
                    .cloned()
            })
        };
        // A new pod is attached by its ADD, a deleted one detached by its DEL.
        if let (Some(before), Some(after)) = (networks(&old), networks(&new))
            && before != after
        {
            self.push(key);
        }
    }
}

/// How often a change refused for a passing reason (the container busy, the API away) is
/// tried again, and the first wait (doubled each time).
const RETRIES: u32 = 5;
const RETRY_FIRST: Duration = Duration::from_secs(1);

/// The node's multinet config in `config`, as the binary receives it: a conf, or a conflist
/// whose first plugin is multinet's.
fn node_config(config: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(config).map_err(|e| e.to_string())?;
    let conf = crate::install::parse_conf_file(config, &bytes).map_err(|e| e.to_string())?;
    crate::call::config::multinet_stdin(&conf)
        .ok_or_else(|| "its first plugin is not multinet".to_owned())
}

/// The node's config from `config`, once it is checked that the caches answer for the API its
/// calls use: hot-plug reads the pod from them and writes through the config's kubeconfig.
fn checked_config(config: &std::path::Path, cache: &WatchCache) -> Result<Vec<u8>, String> {
    let bytes = node_config(config)?;
    let (conf, _) = crate::call::config::MultinetConf::parse(&bytes).map_err(|e| e.to_string())?;
    if !cache.serves(conf.kubeconfig.as_deref()) {
        return Err(format!(
            "its kubeconfig ({}) is not the daemon's --kubeconfig ({})",
            conf.kubeconfig
                .as_deref()
                .map_or("none".into(), |k| k.display().to_string()),
            cache
                .kubeconfig()
                .map_or("none".into(), |k| k.display().to_string())
        ));
    }
    Ok(bytes)
}

/// Starts the worker thread; returns the queue the pod watch feeds.
pub fn start(
    config: PathBuf,
    cache: Arc<WatchCache>,
    metrics: Metrics,
) -> std::io::Result<HotPlugQueue> {
    checked_config(&config, &cache)
        .map_err(|e| std::io::Error::other(format!("--hot-plug {}: {e}", config.display())))?;
    let (tx, rx) = mpsc::channel::<Key>();
    let queue = HotPlugQueue {
        tx,
        waiting: Arc::new(Mutex::new(BTreeSet::new())),
    };
    let worker = queue.clone();
    std::thread::Builder::new()
        .name("multinet-hot-plug".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "hot-plug: no runtime; hot-plug is off");
                    return;
                }
            };
            // Every pod once, after the first list: changes made while the daemon was down.
            let startup = worker.clone();
            let pods = cache.clone();
            std::thread::spawn(move || {
                while !pods.pods.is_fresh() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                for (key, _) in pods.pods.all() {
                    startup.push(key);
                }
            });
            let mut attempts: std::collections::HashMap<Key, u32> = Default::default();
            for key in rx {
                worker
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                let again = runtime.block_on(hot_plug_one(&config, &cache, &metrics, &key));
                if !again {
                    attempts.remove(&key);
                    continue;
                }
                let n = attempts.entry(key.clone()).or_insert(0);
                *n += 1;
                if *n > RETRIES {
                    tracing::warn!(pod = ?key, "hot-plug: giving up after {RETRIES} retries");
                    attempts.remove(&key);
                    continue;
                }
                let (queue, wait) = (worker.clone(), RETRY_FIRST * 2u32.pow(*n - 1));
                std::thread::spawn(move || {
                    std::thread::sleep(wait);
                    queue.push(key);
                });
            }
        })?;
    Ok(queue)
}

/// One pod; returns whether it should be tried again (a passing reason stopped it).
async fn hot_plug_one(
    config: &std::path::Path,
    cache: &Arc<WatchCache>,
    metrics: &Metrics,
    key: &Key,
) -> bool {
    let pod = match cache.pods.get(&key.0, &key.1) {
        Lookup::Found(pod) => pod,
        // Not known now: the pod's next change, or the next list, brings it back.
        Lookup::Stale => return true,
        Lookup::Missing => return false,
    };
    let conf = match checked_config(config, cache) {
        Ok(conf) => conf,
        Err(e) => {
            tracing::error!(file = %config.display(), error = %e, "hot-plug: the node's config");
            return false;
        }
    };
    let plugin = MetaPlugin::new()
        .with_client_reuse(ClientReuse::PerThread)
        .with_metrics(metrics.clone())
        .with_cache(Some(cache.clone()));
    match plugin.hot_plug(&conf, &pod).await {
        Ok(changed) => {
            for c in changed
                .iter()
                .filter(|c| !c.added.is_empty() || !c.removed.is_empty())
            {
                tracing::info!(pod = pod.key(), container = c.container_id, added = ?c.added,
                    removed = ?c.removed, "hot-plug done");
            }
            false
        }
        Err(e) => {
            tracing::warn!(pod = pod.key(), error = %e, "hot-plug refused or failed");
            matches!(e, MetaError::Busy(_) | MetaError::Api(_))
        }
    }
}
