//! The node daemon's watch caches: this node's pods and the NADs, kept current by watches (see
//! `thick::watch`) so that a call finds them without a read request. Only what a call needs is
//! kept (a pod's uid, node, claims and the annotations multinet reads; a NAD's config and
//! resourceName), never whole objects: memory follows the number of pods and NADs, not their
//! size.
//!
//! A store answers only while it is fresh: listed, and its watch open since. When a watch ends
//! before its time or the API answers 410 Gone, the store is stale until a new list replaces
//! it, and calls read the API meanwhile: a call never uses a NAD older than what the cache's own
//! view of the API would show.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::{NadInfo, PodInfo};

/// A namespaced object's namespace and name.
pub type Key = (String, String);

/// What a store knows of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(Arc<T>),
    /// Fresh, and the object is not there (as of the last event the watch delivered).
    Missing,
    /// Not fresh: the API has to be asked.
    Stale,
}

struct State<T> {
    objects: HashMap<Key, Arc<T>>,
    fresh: bool,
}

/// One kind of object, by namespace and name.
pub struct Store<T> {
    state: RwLock<State<T>>,
    /// Woken on every change: a call waiting for a just-scheduled pod sees it arrive.
    changed: Notify,
}

/// One object that a list or an event changed: before and after (`None`: absent).
pub type Change<T> = (Key, Option<Arc<T>>, Option<Arc<T>>);

impl<T: PartialEq> Store<T> {
    pub fn new() -> Self {
        Store {
            state: RwLock::new(State {
                objects: HashMap::new(),
                fresh: false,
            }),
            changed: Notify::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<T>> {
        // A writer that panicked left a map that is whole (each write is one insert or swap).
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<T>> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Lookup<T> {
        let state = self.read();
        if !state.fresh {
            return Lookup::Stale;
        }
        // The key is owned: a lookup allocates two short strings, a call makes a handful.
        match state.objects.get(&(namespace.to_owned(), name.to_owned())) {
            Some(object) => Lookup::Found(object.clone()),
            None => Lookup::Missing,
        }
    }

    /// Waits up to `wait` for an object that `accept` takes: the watch may deliver a
    /// just-created object a moment after a call asks for it. `None` when it did not come, or
    /// the store is stale.
    pub async fn get_waiting(
        &self,
        namespace: &str,
        name: &str,
        wait: Duration,
        accept: impl Fn(&T) -> bool,
    ) -> Option<Arc<T>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the look, so a change between the two still wakes it.
            let changed = self.changed.notified();
            match self.get(namespace, name) {
                Lookup::Found(object) if accept(&object) => return Some(object),
                Lookup::Stale => return None,
                Lookup::Found(_) | Lookup::Missing => {}
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    pub fn is_fresh(&self) -> bool {
        self.read().fresh
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object, for a caller that walks them (hot-plug after a restart).
    pub fn all(&self) -> Vec<(Key, Arc<T>)> {
        self.read()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A list's answer: the store holds exactly `objects` and is fresh. Returns what changed
    /// against what the store held (nothing, the first time: there was nothing to change).
    pub fn replace_all(&self, objects: impl IntoIterator<Item = (Key, T)>) -> Vec<Change<T>> {
        let mut next: HashMap<Key, Arc<T>> =
            objects.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        next.shrink_to_fit();
        let mut state = self.write();
        let mut changes = Vec::new();
        if !state.objects.is_empty() {
            for (key, new) in &next {
                match state.objects.get(key) {
                    Some(old) if old == new => {}
                    old => changes.push((key.clone(), old.cloned(), Some(new.clone()))),
                }
            }
            for (key, old) in &state.objects {
                if !next.contains_key(key) {
                    changes.push((key.clone(), Some(old.clone()), None));
                }
            }
        }
        state.objects = next;
        state.fresh = true;
        drop(state);
        self.changed.notify_waiters();
        changes
    }

    /// One watch event: `object` added or changed, or (None) deleted. Returns the change.
    pub fn apply(&self, key: Key, object: Option<T>) -> Change<T> {
        let mut state = self.write();
        let new = object.map(Arc::new);
        let old = match &new {
            Some(new) => state.objects.insert(key.clone(), new.clone()),
            None => state.objects.remove(&key),
        };
        drop(state);
        self.changed.notify_waiters();
        (key, old, new)
    }

    /// The watch ended before its time: no answers until a list makes it fresh again.
    pub fn mark_stale(&self) {
        self.write().fresh = false;
        self.changed.notify_waiters();
    }
}

impl<T: PartialEq> Default for Store<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The daemon's caches, and which API they reflect.
pub struct WatchCache {
    /// The kubeconfig of the watches; `None`: the in-cluster service account.
    kubeconfig: Option<PathBuf>,
    pub pods: Store<PodInfo>,
    pub nads: Store<NadInfo>,
}

impl WatchCache {
    pub fn new(kubeconfig: Option<&Path>) -> Self {
        WatchCache {
            kubeconfig: kubeconfig.map(|k| std::path::absolute(k).unwrap_or_else(|_| k.into())),
            pods: Store::new(),
            nads: Store::new(),
        }
    }

    /// Whether a call whose config reads the API through `kubeconfig` may be answered from
    /// these caches: only when both name the same API and identity (the same kubeconfig file,
    /// or both the in-cluster service account).
    pub fn serves(&self, kubeconfig: Option<&Path>) -> bool {
        let call = kubeconfig.map(|k| std::path::absolute(k).unwrap_or_else(|_| k.into()));
        call == self.kubeconfig
    }

    pub fn kubeconfig(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(ns: &str, name: &str) -> Key {
        (ns.into(), name.into())
    }

    #[test]
    fn a_store_answers_only_while_fresh() {
        let store: Store<u32> = Store::new();
        assert_eq!(store.get("a", "x"), Lookup::Stale);
        assert!(store.replace_all([(key("a", "x"), 1)]).is_empty());
        assert_eq!(store.get("a", "x"), Lookup::Found(Arc::new(1)));
        assert_eq!(store.get("a", "y"), Lookup::Missing);
        store.mark_stale();
        assert_eq!(store.get("a", "x"), Lookup::Stale);
        // Events keep applying while stale; only a list makes it fresh.
        store.apply(key("a", "x"), Some(2));
        assert_eq!(store.get("a", "x"), Lookup::Stale);
        store.replace_all([(key("a", "x"), 2)]);
        assert_eq!(store.get("a", "x"), Lookup::Found(Arc::new(2)));
    }

    #[test]
    fn a_relist_reports_what_changed_while_the_watch_was_down() {
        let store: Store<u32> = Store::new();
        store.replace_all([
            (key("a", "same"), 1),
            (key("a", "gone"), 1),
            (key("a", "chg"), 1),
        ]);
        let mut changes = store.replace_all([
            (key("a", "same"), 1),
            (key("a", "chg"), 2),
            (key("a", "new"), 3),
        ]);
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        let seen: Vec<(String, Option<u32>, Option<u32>)> = changes
            .into_iter()
            .map(|(k, o, n)| (k.1, o.map(|v| *v), n.map(|v| *v)))
            .collect();
        assert_eq!(
            seen,
            [
                ("chg".into(), Some(1), Some(2)),
                ("gone".into(), Some(1), None),
                ("new".into(), None, Some(3)),
            ]
        );
        let (_, old, new) = store.apply(key("a", "chg"), None);
        assert_eq!((old.map(|v| *v), new), (Some(2), None));
        assert_eq!(store.len(), 2);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_lookup_waits_a_bounded_time_for_an_object_the_watch_brings() {
        let store = Arc::new(Store::<u32>::new());
        store.replace_all([]);
        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.apply(key("a", "x"), Some(1));
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.apply(key("a", "x"), Some(7));
        });
        // Waits past the first version (not accepted) for the second.
        let got = store
            .get_waiting("a", "x", Duration::from_secs(1), |v| *v == 7)
            .await;
        assert_eq!(got.map(|v| *v), Some(7));
        // Never comes: gives up at the bound.
        let started = tokio::time::Instant::now();
        assert!(
            store
                .get_waiting("a", "y", Duration::from_millis(300), |_| true)
                .await
                .is_none()
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        // Stale: no wait at all.
        store.mark_stale();
        let started = tokio::time::Instant::now();
        assert!(
            store
                .get_waiting("a", "x", Duration::from_secs(5), |_| true)
                .await
                .is_none()
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[test]
    fn the_cache_serves_only_calls_of_its_own_kubeconfig() {
        let cache = WatchCache::new(Some(Path::new("/etc/cni/net.d/multinet.d/kubeconfig")));
        assert!(cache.serves(Some(Path::new("/etc/cni/net.d/multinet.d/kubeconfig"))));
        assert!(!cache.serves(Some(Path::new("/etc/other/kubeconfig"))));
        assert!(!cache.serves(None));
        assert!(WatchCache::new(None).serves(None));
    }
}
