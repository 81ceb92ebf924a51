//! Device IDs from the kubelet's pod-resources API: gRPC `v1.PodResourcesLister/Get` for this
//! one pod over the kubelet's unix socket. Kubelets without `Get` (before 1.27, or with the
//! feature gate off) answer it with an error; then `List` is asked and this pod picked out.
//!
//! gRPC is spoken directly over an HTTP/2 connection (hyper), with a hand-written protobuf codec
//! for the few messages needed: a full gRPC stack would cost more to build than the whole plugin.
//! Field numbers are those of the kubelet's `podresources/v1/api.proto`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, TE};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::error::MetaError;

pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Overrides [`DEFAULT_SOCKET`] (tests, kubelets with another root dir).
pub const SOCKET_ENV: &str = "MULTINET_PODRESOURCES_SOCKET";
/// The whole exchange, connect included, must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The kubelet's own limit on a pod-resources message.
pub const MAX_MESSAGE: usize = 16 << 20;

pub const GET_PATH: &str = "/v1.PodResourcesLister/Get";
pub const LIST_PATH: &str = "/v1.PodResourcesLister/List";

/// gRPC status codes this module reacts to.
const GRPC_OK: u32 = 0;
const GRPC_UNKNOWN: u32 = 2;
const GRPC_UNIMPLEMENTED: u32 = 12;

/// Resource name → device IDs of one pod (all its containers), sorted, without duplicates.
pub type DeviceMap = BTreeMap<String, Vec<String>>;

/// The socket path: [`SOCKET_ENV`] if set, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    /// Nothing listens on the socket (missing file, refused): the caller may use another source.
    Unreachable(String),
    /// The kubelet answered, or the exchange broke after connecting.
    Failed(String),
}

impl QueryError {
    /// The meta-plugin's error, naming the socket.
    pub fn to_meta_error(&self, socket: &Path) -> MetaError {
        MetaError::Io(format!(
            "kubelet pod-resources API {}: {self}",
            socket.display()
        ))
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Unreachable(m) | QueryError::Failed(m) => f.write_str(m),
        }
    }
}

/// The devices the kubelet gave pod `namespace/name`, asked on `socket` within `timeout`.
pub async fn pod_devices(
    socket: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<DeviceMap, QueryError> {
    match tokio::time::timeout(timeout, query(socket, namespace, name)).await {
        Ok(result) => result,
        Err(_) => Err(QueryError::Failed(format!(
            "no answer within {} s",
            timeout.as_secs_f32()
        ))),
    }
}

async fn query(socket: &Path, namespace: &str, name: &str) -> Result<DeviceMap, QueryError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| QueryError::Unreachable(format!("connect: {e}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| QueryError::Failed(format!("HTTP/2 handshake: {e}")))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "pod-resources connection ended");
        }
    });
    let result = async {
        let get = proto::encode_get_request(name, namespace);
        match unary(&mut sender, GET_PATH, &get).await? {
            Ok(body) => {
                let pod = proto::decode_get_response(&body).map_err(QueryError::Failed)?;
                match pod {
                    Some(pod)
                        if !pod.name.is_empty()
                            && (pod.name != name || pod.namespace != namespace) =>
                    {
                        Err(QueryError::Failed(format!(
                            "Get {namespace}/{name} answered for pod {}/{}",
                            pod.namespace, pod.name
                        )))
                    }
                    Some(pod) => Ok(pod.devices()),
                    // An empty answer: the kubelet knows no devices of the pod.
                    None => Ok(DeviceMap::new()),
                }
            }
            Err(status) if status.means_get_is_missing() => {
                tracing::debug!(%status, "pod-resources Get unavailable, using List");
                let body = unary(&mut sender, LIST_PATH, &[])
                    .await?
                    .map_err(|list| QueryError::Failed(format!("Get: {status}; List: {list}")))?;
                let pods = proto::decode_list_response(&body).map_err(QueryError::Failed)?;
                Ok(pods
                    .into_iter()
                    .find(|p| p.namespace == namespace && p.name == name)
                    .map(|p| p.devices())
                    .unwrap_or_default())
            }
            Err(status) => Err(QueryError::Failed(format!(
                "Get {namespace}/{name}: {status}"
            ))),
        }
    }
    .await;
    driver.abort();
    result
}

/// A non-OK gRPC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStatus {
    pub code: u32,
    pub message: String,
}

impl GrpcStatus {
    /// `Get` does not exist (old kubelet) or is switched off by its feature gate, which the
    /// kubelet reports as a plain error with this wording.
    fn means_get_is_missing(&self) -> bool {
        self.code == GRPC_UNIMPLEMENTED
            || (self.code == GRPC_UNKNOWN && self.message.contains("Get method disabled"))
    }
}

impl std::fmt::Display for GrpcStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gRPC status {}", self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// One unary call: the response message, or the gRPC status the server returned instead.
async fn unary(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
    message: &[u8],
) -> Result<Result<Vec<u8>, GrpcStatus>, QueryError> {
    let request = Request::post(format!("http://localhost{path}"))
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers")
        .body(Full::new(grpc::frame(message)))
        .map_err(|e| QueryError::Failed(format!("request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| QueryError::Failed(format!("{path}: {e}")))?;
    if !response.status().is_success() {
        return Err(QueryError::Failed(format!(
            "{path}: HTTP status {}",
            response.status()
        )));
    }
    // A "trailers-only" answer carries the status in the headers.
    if let Some(status) = grpc::status(response.headers())
        && status.code != GRPC_OK
    {
        return Ok(Err(status));
    }
    let collected = Limited::new(response.into_body(), MAX_MESSAGE + grpc::PREFIX_LEN)
        .collect()
        .await
        .map_err(|e| QueryError::Failed(format!("{path}: reading the answer: {e}")))?;
    let status = collected.trailers().and_then(grpc::status);
    let body = collected.to_bytes();
    match status {
        Some(s) if s.code != GRPC_OK => Ok(Err(s)),
        Some(_) => grpc::unframe(&body)
            .map(Ok)
            .map_err(|e| QueryError::Failed(format!("{path}: {e}"))),
        None => Err(QueryError::Failed(format!(
            "{path}: the answer has no grpc-status"
        ))),
    }
}

/// gRPC's length-prefixed message framing and status headers.
pub mod grpc {
    use super::*;

    /// Compressed flag (1 byte) and big-endian length (4 bytes).
    pub const PREFIX_LEN: usize = 5;

    pub fn frame(message: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(PREFIX_LEN + message.len());
        out.push(0);
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        Bytes::from(out)
    }

    /// The one message of a unary answer.
    pub fn unframe(body: &[u8]) -> Result<Vec<u8>, String> {
        if body.len() < PREFIX_LEN {
            return Err(format!(
                "answer of {} bytes is shorter than a gRPC frame",
                body.len()
            ));
        }
        if body[0] != 0 {
            return Err("the answer is compressed, which was not asked for".into());
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(format!(
                "message of {len} bytes is over the {MAX_MESSAGE} limit"
            ));
        }
        let rest = &body[PREFIX_LEN..];
        if rest.len() != len {
            return Err(format!(
                "frame says {len} bytes but {} follow (a unary answer has one message)",
                rest.len()
            ));
        }
        Ok(rest.to_vec())
    }

    /// `grpc-status` and `grpc-message` (percent-decoded), if the map has a status.
    pub fn status(headers: &HeaderMap) -> Option<GrpcStatus> {
        let code = headers
            .get("grpc-status")?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let message = headers
            .get("grpc-message")
            .map(|v| percent_decode(v.as_bytes()))
            .unwrap_or_default();
        Some(GrpcStatus { code, message })
    }

    /// The headers a server sends for `status` (tests and fakes).
    pub fn status_headers(code: u32, message: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from(code));
        if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
            h.insert("grpc-message", v);
        }
        h
    }

    fn percent_decode(bytes: &[u8]) -> String {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn percent_encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

/// The protobuf messages of `podresources/v1`, only the fields used:
///
/// ```text
/// GetPodResourcesRequest  { string pod_name = 1; string pod_namespace = 2; }
/// GetPodResourcesResponse { PodResources pod_resources = 1; }
/// ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
/// PodResources       { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
/// ContainerResources { string name = 1; repeated ContainerDevices devices = 2; }
/// ContainerDevices   { string resource_name = 1; repeated string device_ids = 2; }
/// ```
///
/// Every other field (CPU IDs, memory, topology, DRA resources) is skipped by wire type.
pub mod proto {
    use super::DeviceMap;

    const VARINT: u8 = 0;
    const FIXED64: u8 = 1;
    const LEN: u8 = 2;
    const FIXED32: u8 = 5;

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct PodResources {
        pub name: String,
        pub namespace: String,
        pub containers: Vec<ContainerResources>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ContainerResources {
        pub name: String,
        pub devices: Vec<ContainerDevices>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ContainerDevices {
        pub resource_name: String,
        pub device_ids: Vec<String>,
    }

    impl PodResources {
        /// Device IDs per resource over all containers; init containers' devices are reused
        /// by later containers, so an ID may appear twice and is kept once.
        pub fn devices(&self) -> DeviceMap {
            let mut out = DeviceMap::new();
            for c in &self.containers {
                for d in &c.devices {
                    out.entry(d.resource_name.clone())
                        .or_default()
                        .extend(d.device_ids.iter().cloned());
                }
            }
            for ids in out.values_mut() {
                ids.sort();
                ids.dedup();
            }
            out
        }
    }

    // ---- encoding ----

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_len(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
        put_varint(out, (u64::from(field) << 3) | u64::from(LEN));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// proto3 leaves empty strings out.
    fn put_string(out: &mut Vec<u8>, field: u32, s: &str) {
        if !s.is_empty() {
            put_len(out, field, s.as_bytes());
        }
    }

    pub fn encode_get_request(pod_name: &str, pod_namespace: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, 1, pod_name);
        put_string(&mut out, 2, pod_namespace);
        out
    }

    pub fn encode_pod_resources(pod: &PodResources) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, 1, &pod.name);
        put_string(&mut out, 2, &pod.namespace);
        for c in &pod.containers {
            let mut cm = Vec::new();
            put_string(&mut cm, 1, &c.name);
            for d in &c.devices {
                let mut dm = Vec::new();
                put_string(&mut dm, 1, &d.resource_name);
                for id in &d.device_ids {
                    put_len(&mut dm, 2, id.as_bytes());
                }
                put_len(&mut cm, 2, &dm);
            }
            put_len(&mut out, 3, &cm);
        }
        out
    }

    /// `GetPodResourcesResponse` (tests and fakes).
    pub fn encode_get_response(pod: Option<&PodResources>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(pod) = pod {
            put_len(&mut out, 1, &encode_pod_resources(pod));
        }
        out
    }

    /// `ListPodResourcesResponse` (tests and fakes).
    pub fn encode_list_response(pods: &[PodResources]) -> Vec<u8> {
        let mut out = Vec::new();
        for pod in pods {
            put_len(&mut out, 1, &encode_pod_resources(pod));
        }
        out
    }

    // ---- decoding ----

    /// A cursor over one message's fields.
    struct Fields<'a> {
        buf: &'a [u8],
    }

    enum Value<'a> {
        Len(&'a [u8]),
        Other,
    }

    impl<'a> Fields<'a> {
        fn varint(&mut self) -> Result<u64, String> {
            let mut v: u64 = 0;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = self.buf.split_first().ok_or("protobuf: truncated varint")?;
                self.buf = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return Ok(v);
                }
            }
            Err("protobuf: varint longer than 10 bytes".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if n > self.buf.len() {
                return Err(format!(
                    "protobuf: field of {n} bytes but {} remain",
                    self.buf.len()
                ));
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Ok(head)
        }

        /// The next field number and value, or None at the end.
        fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let (field, wire) = (key >> 3, (key & 7) as u8);
            if field == 0 {
                return Err("protobuf: field number 0".into());
            }
            let value = match wire {
                VARINT => {
                    self.varint()?;
                    Value::Other
                }
                FIXED64 => {
                    self.take(8)?;
                    Value::Other
                }
                FIXED32 => {
                    self.take(4)?;
                    Value::Other
                }
                LEN => {
                    let n = usize::try_from(self.varint()?)
                        .map_err(|_| "protobuf: length does not fit in memory")?;
                    Value::Len(self.take(n)?)
                }
                other => return Err(format!("protobuf: unsupported wire type {other}")),
            };
            Ok(Some((field, value)))
        }
    }

    fn each_field<'a>(
        buf: &'a [u8],
        mut f: impl FnMut(u64, &'a [u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut fields = Fields { buf };
        while let Some((number, value)) = fields.next_field()? {
            if let Value::Len(bytes) = value {
                f(number, bytes)?;
            }
        }
        Ok(())
    }

    fn string(bytes: &[u8], what: &str) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("protobuf: {what} is not UTF-8"))
    }

    fn decode_devices(buf: &[u8]) -> Result<ContainerDevices, String> {
        let mut d = ContainerDevices::default();
        each_field(buf, |n, b| {
            match n {
                1 => d.resource_name = string(b, "resource_name")?,
                2 => d.device_ids.push(string(b, "device_ids")?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(d)
    }

    fn decode_container(buf: &[u8]) -> Result<ContainerResources, String> {
        let mut c = ContainerResources::default();
        each_field(buf, |n, b| {
            match n {
                1 => c.name = string(b, "container name")?,
                2 => c.devices.push(decode_devices(b)?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(c)
    }

    pub fn decode_pod_resources(buf: &[u8]) -> Result<PodResources, String> {
        let mut p = PodResources::default();
        each_field(buf, |n, b| {
            match n {
                1 => p.name = string(b, "pod name")?,
                2 => p.namespace = string(b, "pod namespace")?,
                3 => p.containers.push(decode_container(b)?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(p)
    }

    /// `GetPodResourcesRequest` as (pod_name, pod_namespace) (tests and fakes).
    pub fn decode_get_request(buf: &[u8]) -> Result<(String, String), String> {
        let (mut name, mut namespace) = (String::new(), String::new());
        each_field(buf, |n, b| {
            match n {
                1 => name = string(b, "pod_name")?,
                2 => namespace = string(b, "pod_namespace")?,
                _ => {}
            }
            Ok(())
        })?;
        Ok((name, namespace))
    }

    pub fn decode_get_response(buf: &[u8]) -> Result<Option<PodResources>, String> {
        let mut pod = None;
        each_field(buf, |n, b| {
            if n == 1 {
                pod = Some(decode_pod_resources(b)?);
            }
            Ok(())
        })?;
        Ok(pod)
    }

    pub fn decode_list_response(buf: &[u8]) -> Result<Vec<PodResources>, String> {
        let mut pods = Vec::new();
        each_field(buf, |n, b| {
            if n == 1 {
                pods.push(decode_pod_resources(b)?);
            }
            Ok(())
        })?;
        Ok(pods)
    }
}

/// A fake kubelet pod-resources server on a unix socket in a temp dir, for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod fake {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http_body_util::combinators::BoxBody;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper::{Response, StatusCode};

    use super::proto::PodResources;
    use super::*;

    /// How the fake answers.
    #[derive(Clone)]
    pub enum Behavior {
        /// Get and List answer from these pods.
        Pods(Vec<PodResources>),
        /// Get fails with this status (in the headers, "trailers-only"); List answers from pods.
        GetFails(u32, &'static str, Vec<PodResources>),
        /// Every call ends with this status in the trailers, after no message.
        Status(u32, &'static str),
        /// Get answers these bytes as its message.
        Raw(Vec<u8>),
        /// Never answers.
        Hang,
    }

    /// A call the fake received: path and (for Get) the pod asked for.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Call {
        pub path: String,
        pub pod: Option<(String, String)>,
    }

    pub struct FakeKubelet {
        _dir: tempfile::TempDir,
        pub socket: PathBuf,
        pub calls: Arc<Mutex<Vec<Call>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeKubelet {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    type Body = BoxBody<Bytes, Infallible>;

    fn grpc_response(message: Option<Vec<u8>>, code: u32, text: &str) -> Response<Body> {
        let trailers = grpc::status_headers(code, text);
        let body = Full::new(message.map(|m| grpc::frame(&m)).unwrap_or_default())
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed();
        Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(body)
            .unwrap()
    }

    fn trailers_only(code: u32, text: &str) -> Response<Body> {
        let mut r = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        r.headers_mut().extend(grpc::status_headers(code, text));
        r
    }

    async fn handle(
        req: hyper::Request<Incoming>,
        behavior: Behavior,
        calls: Arc<Mutex<Vec<Call>>>,
    ) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        let grpc_headers = req.headers().get(CONTENT_TYPE).map(|v| v.as_bytes())
            == Some(b"application/grpc")
            && req.headers().get(TE).map(|v| v.as_bytes()) == Some(b"trailers");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        if !grpc_headers {
            return Ok(Response::builder()
                .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap());
        }
        let message = grpc::unframe(&body).unwrap();
        let pod = (path == GET_PATH).then(|| proto::decode_get_request(&message).unwrap());
        calls.lock().unwrap().push(Call {
            path: path.clone(),
            pod: pod.clone(),
        });
        let find = |pods: &[PodResources]| {
            let (name, ns) = pod.clone().unwrap_or_default();
            pods.iter()
                .find(|p| p.name == name && p.namespace == ns)
                .cloned()
        };
        Ok(match (behavior, path.as_str()) {
            (Behavior::Hang, _) => std::future::pending().await,
            (Behavior::Status(code, text), _) => grpc_response(None, code, text),
            (Behavior::Raw(bytes), GET_PATH) => grpc_response(Some(bytes), 0, ""),
            (Behavior::Pods(pods), GET_PATH) => match find(&pods) {
                Some(p) => grpc_response(Some(proto::encode_get_response(Some(&p))), 0, ""),
                None => trailers_only(2, "pod not found"),
            },
            (Behavior::GetFails(code, text, _), GET_PATH) => trailers_only(code, text),
            (Behavior::Pods(pods) | Behavior::GetFails(_, _, pods), LIST_PATH) => {
                grpc_response(Some(proto::encode_list_response(&pods)), 0, "")
            }
            _ => trailers_only(12, "unknown method"),
        })
    }

    impl FakeKubelet {
        pub async fn start(behavior: Behavior) -> FakeKubelet {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("kubelet.sock");
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            let calls = Arc::new(Mutex::new(Vec::new()));
            let seen = calls.clone();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (behavior, seen) = (behavior.clone(), seen.clone());
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req| handle(req, behavior.clone(), seen.clone()));
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            FakeKubelet {
                _dir: dir,
                socket,
                calls,
                task,
            }
        }

        pub fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::fake::{Behavior, Call, FakeKubelet};
    use super::proto::{ContainerDevices, ContainerResources, PodResources};
    use super::*;

    fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
        ContainerDevices {
            resource_name: resource.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pod(ns: &str, name: &str, containers: Vec<Vec<ContainerDevices>>) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: ns.into(),
            containers: containers
                .into_iter()
                .enumerate()
                .map(|(i, devices)| ContainerResources {
                    name: format!("c{i}"),
                    devices,
                })
                .collect(),
        }
    }

    fn web() -> PodResources {
        pod(
            "team",
            "web",
            vec![
                // An init container's device is handed on to the app container.
                vec![devices("intel.com/sriov", &["0000:af:06.3"])],
                vec![
                    devices("intel.com/sriov", &["0000:af:06.3", "0000:af:06.1"]),
                    devices("nvidia.com/gpu", &["GPU-2"]),
                ],
                vec![devices("intel.com/sriov", &["0000:af:06.0"])],
            ],
        )
    }

    fn other() -> PodResources {
        pod(
            "team",
            "db",
            vec![vec![devices("intel.com/sriov", &["0000:af:07.0"])]],
        )
    }

    fn want_web() -> DeviceMap {
        let mut m = DeviceMap::new();
        m.insert(
            "intel.com/sriov".into(),
            vec![
                "0000:af:06.0".into(),
                "0000:af:06.1".into(),
                "0000:af:06.3".into(),
            ],
        );
        m.insert("nvidia.com/gpu".into(), vec!["GPU-2".into()]);
        m
    }

    async fn ask(k: &FakeKubelet) -> Result<DeviceMap, QueryError> {
        pod_devices(&k.socket, "team", "web", Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn get_answers_the_pods_devices_sorted_per_resource() {
        let k = FakeKubelet::start(Behavior::Pods(vec![other(), web()])).await;
        assert_eq!(ask(&k).await.unwrap(), want_web());
        assert_eq!(
            k.calls(),
            vec![Call {
                path: GET_PATH.into(),
                pod: Some(("web".into(), "team".into()))
            }]
        );
    }

    #[tokio::test]
    async fn a_kubelet_without_get_is_asked_with_list() {
        for (code, text) in [
            (12, "unknown method Get for service v1.PodResourcesLister"),
            (2, "PodResources API Get method disabled"),
        ] {
            let k = FakeKubelet::start(Behavior::GetFails(code, text, vec![other(), web()])).await;
            assert_eq!(ask(&k).await.unwrap(), want_web(), "{code}");
            let paths: Vec<String> = k.calls().into_iter().map(|c| c.path).collect();
            assert_eq!(paths, vec![GET_PATH, LIST_PATH]);
        }
    }

    #[tokio::test]
    async fn a_pod_without_devices_gets_an_empty_map() {
        let k = FakeKubelet::start(Behavior::Pods(vec![pod("team", "web", vec![vec![]])])).await;
        assert_eq!(ask(&k).await.unwrap(), DeviceMap::new());
        let k = FakeKubelet::start(Behavior::GetFails(12, "", vec![other()])).await;
        assert_eq!(ask(&k).await.unwrap(), DeviceMap::new());
    }

    #[tokio::test]
    async fn a_grpc_error_is_an_error_naming_the_socket_and_the_status() {
        for behavior in [
            Behavior::Pods(vec![other()]),
            Behavior::Status(7, "permission denied: 50% of 100"),
        ] {
            let k = FakeKubelet::start(behavior).await;
            let err = ask(&k).await.unwrap_err();
            assert!(matches!(err, QueryError::Failed(_)), "{err}");
            let msg = err.to_meta_error(&k.socket).to_string();
            assert!(msg.contains(&k.socket.display().to_string()), "{msg}");
            assert!(msg.contains("gRPC status"), "{msg}");
            assert!(
                msg.contains("pod not found") || msg.contains("permission denied: 50% of 100"),
                "{msg}"
            );
        }
    }

    #[tokio::test]
    async fn get_refused_and_list_failing_names_both() {
        let k = FakeKubelet::start(Behavior::Status(12, "not here")).await;
        let err = ask(&k).await.unwrap_err().to_string();
        assert!(err.contains("Get:") && err.contains("List:"), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        // A field 3 (containers) whose length runs past the end.
        let k = FakeKubelet::start(Behavior::Raw(vec![0x0a, 0x03, 0x1a, 0x7f, 0x00])).await;
        let err = ask(&k).await.unwrap_err().to_string();
        assert!(err.contains("protobuf"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_kubelet_times_out() {
        let k = FakeKubelet::start(Behavior::Hang).await;
        let started = std::time::Instant::now();
        let err = pod_devices(&k.socket, "team", "web", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::Failed(_)));
        assert!(err.to_string().contains("no answer within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn no_listener_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let err = pod_devices(&missing, "team", "web", TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::Unreachable(_)), "{err}");
        // A socket file left by a kubelet that is gone: connection refused.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = pod_devices(&stale, "team", "web", TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::Unreachable(_)), "{err}");
    }

    #[test]
    fn request_encoding_matches_the_wire_format() {
        // field 1 (tag 0x0a) "web", field 2 (tag 0x12) "team".
        assert_eq!(
            proto::encode_get_request("web", "team"),
            b"\x0a\x03web\x12\x04team".to_vec()
        );
        assert_eq!(grpc::frame(b"ab").to_vec(), vec![0, 0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut bytes = proto::encode_pod_resources(&web());
        // cpu_ids = 4 packed (LEN), a varint field 9, a fixed64 field 10, a fixed32 field 11.
        bytes.extend([0x22, 0x02, 0x01, 0x02]);
        bytes.extend([0x48, 0x96, 0x01]);
        bytes.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend([0x5d, 1, 2, 3, 4]);
        let decoded = proto::decode_pod_resources(&bytes).unwrap();
        assert_eq!(decoded, web());
        assert!(
            proto::decode_pod_resources(&[0x0b]).is_err(),
            "group wire type"
        );
        assert!(
            proto::decode_pod_resources(&[0x48, 0xff]).is_err(),
            "truncated varint"
        );
    }

    #[test]
    fn framing_errors_are_named() {
        assert!(grpc::unframe(&[0, 0]).is_err());
        assert!(
            grpc::unframe(&[1, 0, 0, 0, 0])
                .unwrap_err()
                .contains("compressed")
        );
        assert!(grpc::unframe(&[0, 0, 0, 0, 3, 1]).is_err());
        assert!(
            grpc::unframe(&[0, 0xff, 0, 0, 0])
                .unwrap_err()
                .contains("limit")
        );
        assert_eq!(grpc::unframe(&[0, 0, 0, 0, 0]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn status_messages_are_percent_decoded() {
        let h = grpc::status_headers(3, "bad: 100% \u{e9}t\u{e9}");
        assert_eq!(
            grpc::status(&h),
            Some(GrpcStatus {
                code: 3,
                message: "bad: 100% \u{e9}t\u{e9}".into()
            })
        );
    }
}
