//! The watches that keep the daemon's caches (`call::source::cache`) current: this node's pods
//! (field selector spec.nodeName) and the NADs of every namespace.
//!
//! Each watch starts from a list (in pages) and then follows the API from the list's
//! resourceVersion, moving it on with every event and bookmark. A watch that ends at its
//! timeout is resumed from the last version, the store staying fresh (nothing is missed: the
//! API replays what happened since). A watch that ends early (a dropped connection, an API
//! server restart, silence past its timeout) or answers 410 Gone makes the store stale at once
//! and is followed by a new list: calls ask the API until the list is in.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::call::source::PodInfo;
use crate::call::source::cache::{Change, Key, Store, WatchCache};
use crate::call::source::kube::{nad_info, nad_resource, pod_info};

/// How long one watch request lasts (the API server ends it then; kube refuses 295 or more).
const WATCH_SECONDS: u32 = 290;
/// A watch that ends this close to its timeout ended at its timeout.
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);
/// Silence this long means the connection is gone without a word: the API server sends a
/// bookmark about every minute on a watch that asked for them.
const SILENCE: Duration = Duration::from_secs(125);
/// Objects per list page: a relist of thousands of NADs never holds them all as JSON at once.
const PAGE: u32 = 500;
/// A watch shorter than this that ends early counts as a failure (the next list waits).
const BRIEF_WATCH: Duration = Duration::from_secs(5);
/// Waits between failed lists: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(10);

/// Keeps `cache` current with the API of `client`: the pods of `node` (none without a node
/// name: pod reads then go to the API) and every NAD. `pod_changed` hears of each change of a
/// pod the store held before (hot-plug). Runs until the task is dropped.
pub async fn keep_current(
    client: Client,
    cache: Arc<WatchCache>,
    node: Option<String>,
    pod_changed: impl Fn(Change<PodInfo>) + Send + 'static,
) {
    let nads = Watched {
        what: "NetworkAttachmentDefinitions",
        api: Api::<DynamicObject>::all_with(client.clone(), &nad_resource()),
        fields: None,
        convert: nad_info,
    };
    let nads = keep(nads, &cache.nads, |_| {});
    match node {
        Some(node) => {
            let pods = Watched {
                what: "pods of this node",
                api: Api::<Pod>::all(client),
                fields: Some(format!("spec.nodeName={node}")),
                convert: pod_info,
            };
            let pods = keep(pods, &cache.pods, pod_changed);
            futures::join!(nads, pods);
        }
        None => {
            tracing::warn!("no --node-name: pods are read from the API by every call");
            nads.await;
        }
    }
}

/// One kind of object to watch, and what the store keeps of it.
struct Watched<K, T> {
    what: &'static str,
    api: Api<K>,
    fields: Option<String>,
    convert: fn(K) -> T,
}

/// How a watch ended.
#[derive(Debug)]
enum WatchEnd {
    /// At its timeout: resume from the last version.
    TimedOut,
    /// Early, or with 410 Gone: list again.
    Early(String),
}

fn key_of<K: Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

async fn keep<K, T>(watched: Watched<K, T>, store: &Store<T>, changed: impl Fn(Change<T>))
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: PartialEq,
{
    let mut retry = RETRY_FIRST;
    loop {
        let mut version = match list(&watched).await {
            Ok((objects, version)) => {
                let count = objects.len();
                let changes = store.replace_all(objects);
                tracing::info!(what = watched.what, count, %version, "listed");
                changes.into_iter().for_each(&changed);
                version
            }
            Err(e) => {
                tracing::warn!(what = watched.what, error = %e, "list failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_LAST);
                continue;
            }
        };
        loop {
            let started = Instant::now();
            match watch(&watched, &mut version, store, &changed).await {
                WatchEnd::TimedOut => {
                    retry = RETRY_FIRST;
                    tracing::debug!(what = watched.what, %version, "watch resumed");
                }
                WatchEnd::Early(why) => {
                    store.mark_stale();
                    tracing::info!(what = watched.what, %version, why, "watch ended early; listing again");
                    // A watch that keeps failing at once (say, refused by RBAC while lists are
                    // allowed) must not turn into a list per moment: it backs off like a list.
                    if started.elapsed() < BRIEF_WATCH {
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_LAST);
                    } else {
                        retry = RETRY_FIRST;
                    }
                    break;
                }
            }
        }
    }
}

/// Every object, page by page, and the list's resourceVersion.
async fn list<K, T>(watched: &Watched<K, T>) -> Result<(Vec<(Key, T)>, String), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut params = ListParams::default().limit(PAGE);
    if let Some(fields) = &watched.fields {
        params = params.fields(fields);
    }
    let mut objects = Vec::new();
    loop {
        let page = watched.api.list(&params).await?;
        objects.extend(
            page.items
                .into_iter()
                .map(|o| (key_of(&o), (watched.convert)(o))),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((objects, page.metadata.resource_version.unwrap_or_default())),
        }
    }
}

/// One watch request from `version`, applying its events until it ends.
async fn watch<K, T>(
    watched: &Watched<K, T>,
    version: &mut String,
    store: &Store<T>,
    changed: &impl Fn(Change<T>),
) -> WatchEnd
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: PartialEq,
{
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(fields) = &watched.fields {
        params = params.fields(fields);
    }
    let started = Instant::now();
    let events = match watched.api.watch(&params, version).await {
        Ok(events) => events,
        Err(e) => return WatchEnd::Early(format!("watch refused: {e}")),
    };
    futures::pin_mut!(events);
    loop {
        let event = match tokio::time::timeout(SILENCE, events.next()).await {
            Err(_) => return WatchEnd::Early(format!("no word for {SILENCE:?}")),
            Ok(None)
                if started.elapsed() + TIMEOUT_SLACK
                    >= Duration::from_secs(WATCH_SECONDS.into()) =>
            {
                return WatchEnd::TimedOut;
            }
            Ok(None) => return WatchEnd::Early("closed before its timeout".into()),
            Ok(Some(Err(e))) => return WatchEnd::Early(format!("broken: {e}")),
            Ok(Some(Ok(event))) => event,
        };
        match event {
            WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                *version = object.resource_version().unwrap_or_default();
                let key = key_of(&object);
                changed(store.apply(key, Some((watched.convert)(object))));
            }
            WatchEvent::Deleted(object) => {
                *version = object.resource_version().unwrap_or_default();
                changed(store.apply(key_of(&object), None));
            }
            WatchEvent::Bookmark(bookmark) => *version = bookmark.metadata.resource_version,
            WatchEvent::Error(status) => {
                return WatchEnd::Early(format!("error {}: {}", status.code, status.message));
            }
        }
    }
}
