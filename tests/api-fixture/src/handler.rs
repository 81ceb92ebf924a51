//! One HTTP request: record it, apply injected faults, then answer as kube-apiserver would.

use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::discovery;
use crate::faults::FaultState;
use crate::query::Query;
use crate::resource::{ResourcePath, Route, StatusSubresource, parse_path};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjectFilter, PatchType, ResourceId, Store, Target, WatchFrom};
use crate::watch::{self, OpenWatch, WatchRequest};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request as the fixture received it, for tests to assert on.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`; empty when there is none.
    pub query: String,
    pub content_type: Option<String>,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The response code; None while the request is still being handled.
    pub status: Option<u16>,
    /// Whether it came over the HTTPS listener.
    pub tls: bool,
    /// Whether it came over HTTP/2.
    pub http2: bool,
    /// Which connection it came over: connections are numbered from 0 as they are accepted.
    pub connection: u64,
}

impl RecordedRequest {
    /// A decoded query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        Query::parse(Some(&self.query)).get(key).map(str::to_string)
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn is_watch(&self) -> bool {
        Query::parse(Some(&self.query)).flag("watch")
    }
}

/// State every connection shares.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// Bumped to end every open watch.
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    pub open_watches: Arc<AtomicUsize>,
    pub token: Option<String>,
    pub bookmark_interval: Duration,
    /// Connections accepted so far, over both listeners.
    pub connections: std::sync::atomic::AtomicU64,
    /// Permissions `SelfSubjectAccessReview` answers as denied.
    pub denied: Mutex<crate::access::Denied>,
}

impl Shared {
    /// The number of the connection just accepted.
    pub fn next_connection(&self) -> u64 {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Locks a mutex, carrying on past poisoning: a panicking test thread must not wedge
/// the server for the tests after it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Reply {
    Json(StatusCode, Value),
    Typed(StatusCode, Value, &'static str),
    Stream(Body),
}

struct Call {
    method: Method,
    path: String,
    query: Query,
    content_type: String,
    accept: String,
    host: String,
    body: Bytes,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn json_response(code: StatusCode, value: &Value, content_type: &str) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, &error.to_status(), "application/json");
    if let Some(secs) = error.retry_after
        && let Ok(value) = secs.to_string().parse()
    {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    response
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    tls: bool,
    connection: u64,
) -> Result<Response<Body>, Infallible> {
    let http2 = request.version() == hyper::Version::HTTP_2;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let raw_query = request.uri().query().unwrap_or("").to_string();
    let content_type = header(&request, hyper::header::CONTENT_TYPE);
    let accept = header(&request, hyper::header::ACCEPT);
    let host = header(&request, hyper::header::HOST);
    let authorization = header(&request, hyper::header::AUTHORIZATION);
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let query = Query::parse(Some(&raw_query));
    let is_watch = query.flag("watch");

    let index = {
        let mut log = lock(&shared.requests);
        log.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query,
            content_type: (!content_type.is_empty()).then(|| content_type.clone()),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: None,
            tls,
            http2,
            connection,
        });
        log.len() - 1
    };

    let latency = lock(&shared.faults).latency(method.as_str(), &path, is_watch);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = lock(&shared.faults).take_failure(method.as_str(), &path, is_watch);

    let response = if let Some(failure) = injected {
        error_response(&failure.error)
    } else if shared
        .token
        .as_ref()
        .is_some_and(|t| authorization != format!("Bearer {t}"))
    {
        error_response(&ApiError::new(401, "Unauthorized"))
    } else {
        let call = Call {
            method,
            path,
            query,
            content_type,
            accept,
            host,
            body,
        };
        match respond(&shared, &call) {
            Ok(Reply::Json(code, value)) => json_response(code, &value, "application/json"),
            Ok(Reply::Typed(code, value, content_type)) => {
                json_response(code, &value, content_type)
            }
            Ok(Reply::Stream(body)) => {
                let mut response = Response::new(body);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(error) => error_response(&error),
        }
    };
    if let Some(entry) = lock(&shared.requests).get_mut(index) {
        entry.status = Some(response.status().as_u16());
    }
    Ok(response)
}

fn not_served() -> ApiError {
    ApiError::new(404, "the server could not find the requested resource")
}

fn respond(shared: &Shared, call: &Call) -> Result<Reply, ApiError> {
    let ok = |value| Ok(Reply::Json(StatusCode::OK, value));
    if call.path == crate::access::PATH {
        return match call.method {
            Method::POST => {
                let review = lock(&shared.denied).review(&call.body)?;
                Ok(Reply::Json(StatusCode::CREATED, review))
            }
            _ => Err(ApiError::new(
                405,
                "the server does not allow this method on the requested resource",
            )),
        };
    }
    let store = lock(&shared.store);
    let defs = store.defs();
    let aggregated = discovery::wants_aggregated(&call.accept);
    match parse_path(&call.path) {
        Route::Version => ok(discovery::version()),
        Route::CoreVersions if aggregated => Ok(Reply::Typed(
            StatusCode::OK,
            discovery::aggregated(defs, true),
            discovery::AGGREGATED_CONTENT_TYPE,
        )),
        Route::CoreVersions => ok(discovery::core_versions(defs, &call.host)),
        Route::Groups if aggregated => Ok(Reply::Typed(
            StatusCode::OK,
            discovery::aggregated(defs, false),
            discovery::AGGREGATED_CONTENT_TYPE,
        )),
        Route::Groups => ok(discovery::group_list(defs)),
        Route::Group(group) => discovery::group(defs, &group).map_or_else(|| Err(not_served()), ok),
        Route::CoreResources(version) => {
            discovery::resource_list(defs, "", &version).map_or_else(|| Err(not_served()), ok)
        }
        Route::GroupResources(group, version) => {
            discovery::resource_list(defs, &group, &version).map_or_else(|| Err(not_served()), ok)
        }
        Route::Resource(path) => {
            drop(store);
            resource(shared, call, &path)
        }
        Route::NotFound => Err(not_served()),
    }
}

fn filter_from(
    store: &Store,
    id: ResourceId,
    namespace: Option<&str>,
    query: &Query,
) -> Result<ObjectFilter, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let def = store.def(id);
    if let Some(unsupported) = fields
        .requirements
        .iter()
        .find(|r| !def.supports_field(&r.field))
    {
        let message = if def.builtin {
            format!("field label not supported: {}", unsupported.field)
        } else {
            format!(
                "\"{}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                unsupported.field
            )
        };
        return Err(ApiError::bad_request(message));
    }
    Ok(ObjectFilter {
        namespace: namespace.map(str::to_string),
        labels,
        fields,
    })
}

/// The body of a create or update: JSON, or YAML when the client says so.
fn object_body(call: &Call) -> Result<Value, ApiError> {
    let mime = call.content_type.split(';').next().unwrap_or("").trim();
    match mime {
        "" | "application/json" | "*/*" => serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
        "application/yaml" => serde_yaml::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        other => Err(ApiError::new(
            415,
            format!("the body of the request was in an unknown format: {other}"),
        )),
    }
}

const PARTIAL_METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// Whether the client asked for metadata only (kube's `get_metadata`, `list_metadata`,
/// `watch_metadata`).
fn wants_metadata_only(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

fn resource(shared: &Shared, call: &Call, path: &ResourcePath) -> Result<Reply, ApiError> {
    let mut guard = lock(&shared.store);
    // dryRun=All: the write runs on a scratch copy that nobody watches.
    let mut scratch;
    let store: &mut Store = match call.query.non_empty("dryRun") {
        Some("All") if call.method != Method::GET => {
            scratch = guard.dry_run_copy();
            &mut scratch
        }
        Some("All") | None => &mut guard,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid dry run value: {other}"
            )));
        }
    };
    let id = store
        .find(&path.group, &path.version, &path.plural)
        .ok_or_else(not_served)?;
    let def = store.def(id).clone();
    let namespace = path.namespace.as_deref();
    if namespace.is_some() && !def.namespaced {
        return Err(not_served());
    }
    if def.namespaced && namespace.is_none() && path.name.is_some() {
        return Err(not_served());
    }
    let target = match path.subresource.as_deref() {
        None => Target::Main,
        Some("status") if def.status != StatusSubresource::None => Target::Status,
        Some(_) => return Err(not_served()),
    };
    let method_not_allowed = || {
        ApiError::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    };
    let created = |value| Ok(Reply::Json(StatusCode::CREATED, value));
    let ok = |value| Ok(Reply::Json(StatusCode::OK, value));
    match (&call.method, path.name.as_deref()) {
        (&Method::GET, None) if call.query.flag("watch") => {
            let filter = filter_from(store, id, namespace, &call.query)?;
            watch_reply(shared, store, id, filter, call)
        }
        (&Method::GET, None) => {
            let filter = filter_from(store, id, namespace, &call.query)?;
            let (items, version) = store.list(id, &filter);
            let list = list_body(store, id, items, version, &call.query)?;
            if wants_metadata_only(&call.accept) {
                let items: Vec<Value> = list["items"]
                    .as_array()
                    .map(|items| items.iter().map(watch::partial_metadata).collect())
                    .unwrap_or_default();
                let partial = json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list["metadata"],
                    "items": items,
                });
                return Ok(Reply::Typed(StatusCode::OK, partial, PARTIAL_METADATA_LIST));
            }
            ok(list)
        }
        (&Method::POST, None) if def.namespaced && namespace.is_none() => Err(method_not_allowed()),
        (&Method::POST, None) => created(store.create(id, namespace, object_body(call)?)?),
        (&Method::DELETE, None) => {
            let filter = filter_from(store, id, namespace, &call.query)?;
            let options = delete_options(call)?;
            let (items, _) = store.list(id, &filter);
            let mut deleted = Vec::new();
            for item in items {
                let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
                let ns = item["metadata"]["namespace"].as_str().map(str::to_string);
                deleted.push(store.delete(id, ns.as_deref(), &name, &options)?);
            }
            let version = store.resource_version();
            ok(list_body(store, id, deleted, version, &Query::default())?)
        }
        (&Method::GET, Some(name)) if wants_metadata_only(&call.accept) => {
            let object = store.get_or_404(id, namespace, name)?;
            Ok(Reply::Typed(
                StatusCode::OK,
                watch::partial_metadata(&object),
                PARTIAL_METADATA,
            ))
        }
        (&Method::GET, Some(name)) => ok(store.get_or_404(id, namespace, name)?),
        (&Method::PUT, Some(name)) => {
            ok(store.update(id, namespace, name, target, object_body(call)?)?)
        }
        (&Method::PATCH, Some(name)) => {
            let patch_type = PatchType::from_content_type(&call.content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    format!(
                        "the body of the request was in an unknown format: {}",
                        call.content_type
                    ),
                )
            })?;
            let field_manager = call.query.get("fieldManager");
            let (object, was_created) = store.patch(
                id,
                namespace,
                name,
                target,
                patch_type,
                &call.body,
                field_manager,
            )?;
            if was_created {
                created(object)
            } else {
                ok(object)
            }
        }
        (&Method::DELETE, Some(name)) if target == Target::Main => {
            ok(store.delete(id, namespace, name, &delete_options(call)?)?)
        }
        _ => Err(method_not_allowed()),
    }
}

fn delete_options(call: &Call) -> Result<Value, ApiError> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))
}

/// A list response, one page of it when `limit` is set.
fn list_body(
    store: &Store,
    id: ResourceId,
    items: Vec<Value>,
    version: u64,
    query: &Query,
) -> Result<Value, ApiError> {
    let def = store.def(id);
    let (list_version, after) = match query.non_empty("continue") {
        Some(token) => {
            let mut parts = token.splitn(3, '/');
            match (
                parts.next().map(str::parse::<u64>),
                parts.next(),
                parts.next(),
            ) {
                (Some(Ok(v)), Some(ns), Some(name)) => {
                    (v, Some((ns.to_string(), name.to_string())))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "continue key is not valid: {token}"
                    )));
                }
            }
        }
        None => (version, None),
    };
    let key = |item: &Value| {
        (
            item["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            item["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut remaining: Vec<Value> = match &after {
        Some(after) => items.into_iter().filter(|i| key(i) > *after).collect(),
        None => items,
    };
    let limit = query
        .non_empty("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut metadata = json!({"resourceVersion": list_version.to_string()});
    if let Some(limit) = limit
        && remaining.len() > limit
    {
        let rest = remaining.split_off(limit);
        if let Some(last) = remaining.last() {
            let (ns, name) = key(last);
            metadata["continue"] = json!(format!("{list_version}/{ns}/{name}"));
            metadata["remainingItemCount"] = json!(rest.len());
        }
    }
    if def.builtin {
        for item in &mut remaining {
            if let Some(map) = item.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
        }
    }
    Ok(json!({
        "kind": def.list_kind(),
        "apiVersion": def.api_version(),
        "metadata": metadata,
        "items": remaining,
    }))
}

fn watch_reply(
    shared: &Shared,
    store: &Store,
    id: ResourceId,
    filter: ObjectFilter,
    call: &Call,
) -> Result<Reply, ApiError> {
    let query = &call.query;
    let def = store.def(id);
    let send_initial_events = query.flag("sendInitialEvents");
    let from = match query.non_empty("resourceVersion") {
        _ if send_initial_events => WatchFrom::Snapshot,
        None | Some("0") => WatchFrom::Snapshot,
        Some(version) => WatchFrom::After(Store::parse_resource_version(version)?),
    };
    let timeout = query
        .non_empty("timeoutSeconds")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))
        })
        .transpose()?
        .map(Duration::from_secs);
    let request = WatchRequest {
        resource: id,
        kind: def.kind.clone(),
        api_version: def.api_version(),
        filter: filter.clone(),
        allow_bookmarks: query.flag("allowWatchBookmarks"),
        initial_events_end: send_initial_events,
        timeout,
        bookmark_interval: shared.bookmark_interval,
        metadata_only: wants_metadata_only(&call.accept),
    };
    let frames = |bytes: Bytes| Ok::<_, Infallible>(Frame::data(bytes));
    let body = match store.subscribe(id, &filter, from) {
        Ok(subscription) => {
            let open = OpenWatch::new(&shared.open_watches);
            let dropped = shared.drop_watches.subscribe();
            let events = watch::event_stream(request, subscription, dropped, open);
            StreamBody::new(events.map(frames)).boxed_unsync()
        }
        Err(error) => StreamBody::new(watch::error_stream(&error).map(frames)).boxed_unsync(),
    };
    Ok(Reply::Stream(body))
}
