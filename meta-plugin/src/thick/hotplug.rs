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
use crate::call::source::cache::{Change, Key, WatchCache};
use crate::call::source::kube::ClientReuse;
use crate::call::verbs::MetaPlugin;
use crate::metrics::Metrics;

/// Hands pods to the worker; pods already waiting are not queued twice.
#[derive(Clone)]
pub struct HotPlugQueue {
    tx: mpsc::Sender<Key>,
    waiting: Arc<Mutex<BTreeSet<Key>>>,
}

impl HotPlugQueue {
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

/// Starts the worker thread; returns the queue the pod watch feeds.
pub fn start(
    config: PathBuf,
    cache: Arc<WatchCache>,
    metrics: Metrics,
) -> std::io::Result<HotPlugQueue> {
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
            for key in rx {
                worker
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                runtime.block_on(hot_plug_one(&config, &cache, &metrics, &key));
            }
        })?;
    Ok(queue)
}

async fn hot_plug_one(
    config: &std::path::Path,
    cache: &Arc<WatchCache>,
    metrics: &Metrics,
    key: &Key,
) {
    let pod = match cache.pods.get(&key.0, &key.1) {
        crate::call::source::cache::Lookup::Found(pod) => pod,
        _ => return,
    };
    // The file the runtime reads: a conf, or a conflist whose first plugin is multinet's.
    let conf = std::fs::read(config)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            crate::install::parse_conf_file(config, &bytes).map_err(|e| e.to_string())
        })
        .and_then(|conf| {
            crate::doctor::node::multinet_stdin(&conf)
                .ok_or_else(|| "its first plugin is not multinet".to_owned())
        });
    let conf = match conf {
        Ok(conf) => conf,
        Err(e) => {
            tracing::error!(file = %config.display(), error = %e, "hot-plug: the node's config");
            return;
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
        }
        Err(e) => tracing::warn!(pod = pod.key(), error = %e, "hot-plug refused or failed"),
    }
}
