//! Watch responses: newline-delimited JSON events streamed for as long as the watch lives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval};

use crate::status::ApiError;
use crate::store::{ObjectFilter, ResourceId, StoreEvent, Subscription};

/// Everything a watch request asked for.
pub(crate) struct WatchRequest {
    pub resource: ResourceId,
    pub kind: String,
    pub api_version: String,
    pub filter: ObjectFilter,
    pub allow_bookmarks: bool,
    /// Mark the end of the initial ADDED events with a bookmark (streaming lists).
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
    pub bookmark_interval: Duration,
    /// Send only metadata, as `PartialObjectMetadata` (the client's Accept asked so).
    pub metadata_only: bool,
}

/// An object reduced to its metadata, as served for `Accept: ...;as=PartialObjectMetadata`.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

/// Counts open watches; decremented when the response stream is dropped.
pub(crate) struct OpenWatch(Arc<AtomicUsize>);

impl OpenWatch {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        OpenWatch(counter.clone())
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A watch that fails at once, as kube-apiserver answers a too-old resourceVersion:
/// HTTP 200 and one ERROR event carrying the Status.
pub(crate) fn error_stream(error: &ApiError) -> impl Stream<Item = Bytes> + Send + 'static {
    futures::stream::iter([line("ERROR", &error.to_status())])
}

struct WatchState {
    queue: VecDeque<Bytes>,
    receiver: broadcast::Receiver<Arc<StoreEvent>>,
    dropped: watch::Receiver<u64>,
    deadline: Option<Instant>,
    bookmarks: Option<Interval>,
    /// The newest store version this watch has seen, for bookmarks.
    last_version: u64,
    request: WatchRequest,
    _open: OpenWatch,
}

impl WatchState {
    fn bookmark(&self, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": self.last_version.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.request.kind,
            "apiVersion": self.request.api_version,
            "metadata": metadata,
        });
        line("BOOKMARK", &object)
    }

    fn render(&self, event: &StoreEvent) -> Option<Bytes> {
        if event.resource != self.request.resource {
            return None;
        }
        let event_type = self.request.filter.view(event)?;
        Some(self.event_line(event_type.as_str(), &event.object))
    }

    fn event_line(&self, event_type: &str, object: &Value) -> Bytes {
        if self.request.metadata_only {
            line(event_type, &partial_metadata(object))
        } else {
            line(event_type, object)
        }
    }
}

async fn pending_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => futures::future::pending().await,
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => futures::future::pending().await,
    }
}

async fn next_chunk(mut state: WatchState) -> Option<(Bytes, WatchState)> {
    loop {
        if let Some(chunk) = state.queue.pop_front() {
            return Some((chunk, state));
        }
        let deadline = state.deadline;
        tokio::select! {
            biased;
            // Dropped by the test, or the fixture is shutting down.
            _ = state.dropped.changed() => return None,
            _ = pending_until(deadline) => return None,
            received = state.receiver.recv() => match received {
                Ok(event) => {
                    state.last_version = event.resource_version;
                    if let Some(chunk) = state.render(&event) {
                        return Some((chunk, state));
                    }
                }
                // Lagging behind ends the watch; the client resumes from its last version.
                Err(_) => return None,
            },
            _ = tick(&mut state.bookmarks) => {
                let chunk = state.bookmark(false);
                return Some((chunk, state));
            }
        }
    }
}

/// The stream of a watch that has subscribed to the store.
pub(crate) fn event_stream(
    request: WatchRequest,
    subscription: Subscription,
    dropped: watch::Receiver<u64>,
    open: OpenWatch,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let now = Instant::now();
    let bookmarks = request.allow_bookmarks.then(|| {
        tokio::time::interval_at(now + request.bookmark_interval, request.bookmark_interval)
    });
    let mut state = WatchState {
        queue: VecDeque::new(),
        receiver: subscription.receiver,
        dropped,
        deadline: request.timeout.map(|t| now + t),
        bookmarks,
        last_version: subscription.resource_version,
        request,
        _open: open,
    };
    for (event_type, object) in &subscription.initial {
        let chunk = state.event_line(event_type.as_str(), object);
        state.queue.push_back(chunk);
    }
    if state.request.initial_events_end {
        let marker = state.bookmark(true);
        state.queue.push_back(marker);
    }
    futures::stream::unfold(state, next_chunk)
}
