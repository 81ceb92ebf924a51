//! The HTTPS server: a thin layer that reads a body, asks a decision function, and writes its
//! answer. `/mutate` first looks up the NADs the pod selects, so the decision stays pure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::control::{ControlMap, Switches};
use crate::error::WebhookError;
use crate::isolate::{IsolationPolicy, isolate_pod};
use crate::metrics::Metrics;
use crate::mutate::{InjectorOptions, mutate_pod, nads_to_look_up};
use crate::nads::{KubeAccess, KubeNads};
use crate::review::{answer, parse_review, review_body};
use crate::tls::{CertFiles, ReloadingCert};
use crate::validate::validate_nad;

/// The port the server listens on unless told otherwise (and the Service's target port).
pub const DEFAULT_PORT: u16 = 8443;
/// NAD validation.
pub const VALIDATE_PATH: &str = "/validate";
/// Pod selection annotations and namespace isolation.
pub const ISOLATE_PATH: &str = "/isolate";
/// Pod resource injection.
pub const MUTATE_PATH: &str = "/mutate";
/// Liveness.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness.
pub const READYZ_PATH: &str = "/readyz";
/// Where the Deployment mounts the TLS Secret.
pub const DEFAULT_CERT_FILE: &str = "/etc/multinet-webhook/tls/tls.crt";
/// Where the Deployment mounts the TLS Secret.
pub const DEFAULT_KEY_FILE: &str = "/etc/multinet-webhook/tls/tls.key";
/// The API server sends at most an object and its old version, each at most ~1.5 MiB.
const MAX_BODY_BYTES: usize = 8 << 20;
/// A client that connects and never finishes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The serving certificate and key.
    pub cert_files: CertFiles,
    /// How often the certificate files are checked for a change.
    pub cert_poll_interval: Duration,
    /// How to reach the API server for NAD lookups.
    pub kube: KubeAccess,
    /// Longest wait for one API request.
    pub api_timeout: Duration,
    /// How long a NAD read from the API is reused.
    pub nad_cache_ttl: Duration,
    /// `/isolate` policy.
    pub isolation: IsolationPolicy,
    /// `/mutate` behaviour.
    pub injector: InjectorOptions,
    /// The control ConfigMap switching `/mutate` features at run time; None: the flags only.
    pub control: Option<ControlMap>,
    /// Where to serve Prometheus metrics over plain HTTP (`/metrics`); None: not at all.
    pub metrics_listen: Option<SocketAddr>,
}

struct State {
    isolation: IsolationPolicy,
    injector: InjectorOptions,
    switches: watch::Receiver<Switches>,
    nads: KubeNads,
    metrics: Metrics,
}

/// A server that is listening. Dropping it does not stop it; call [`shutdown`](Self::shutdown).
pub struct RunningWebhook {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    metrics: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    watch: JoinHandle<()>,
    control: Option<JoinHandle<()>>,
}

impl RunningWebhook {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address metrics are served on, when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting connections and stops watching the certificate files.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        let _ = self.watch.await;
        if let Some(control) = self.control {
            let _ = control.await;
        }
        if let Some(metrics) = self.metrics {
            let _ = metrics.await;
        }
    }
}

/// Loads the certificate, builds the API client and starts listening.
pub async fn start(config: WebhookConfig) -> Result<RunningWebhook, WebhookError> {
    let cert = ReloadingCert::load(config.cert_files.clone())?;
    let acceptor = TlsAcceptor::from(cert.server_config()?);
    let metrics = match config.metrics_listen {
        Some(_) => Metrics::on(),
        None => Metrics::off(),
    };
    let nads = KubeNads::connect(&config.kube, config.api_timeout, config.nad_cache_ttl)
        .await?
        .with_metrics(metrics.clone());
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| WebhookError::io(format!("metrics listening on {addr}"), e))?,
        ),
        None => None,
    };
    let (switches_out, switches) = watch::channel(Switches::default());
    let control_client = nads.client();
    let state = Arc::new(State {
        isolation: config.isolation,
        injector: config.injector,
        switches,
        nads,
        metrics: metrics.clone(),
    });
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| WebhookError::io(format!("listening on {}", config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| WebhookError::io("reading the listening address", e))?;
    let (stop, stopped) = watch::channel(false);
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| WebhookError::io("reading the metrics address", e))?,
        ),
        None => None,
    };
    let metrics = metrics_listener.map(|listener| {
        tracing::info!(addr = ?metrics_addr, "serving metrics");
        tokio::spawn(crate::metrics::serve(listener, metrics, stopped.clone()))
    });
    let watch = tokio::spawn(cert.watch(config.cert_poll_interval, stopped.clone()));
    let control = config.control.map(|map| {
        tokio::spawn(crate::control::poll(
            control_client,
            map,
            switches_out,
            stopped.clone(),
        ))
    });
    let accept = tokio::spawn(accept_loop(listener, acceptor, state, stopped));
    tracing::info!(%addr, "multinet-webhook listening");
    Ok(RunningWebhook {
        addr,
        metrics_addr,
        metrics,
        stop,
        accept,
        watch,
        control,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |request| handle(state.clone(), request));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body)
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let known = [
        VALIDATE_PATH,
        ISOLATE_PATH,
        MUTATE_PATH,
        HEALTHZ_PATH,
        READYZ_PATH,
    ];
    if !known.contains(&path.as_str()) {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n"));
    }
    if path == HEALTHZ_PATH || path == READYZ_PATH {
        return Ok(match method {
            Method::GET | Method::HEAD => text(StatusCode::OK, "ok\n"),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        });
    }
    let timer = state.metrics.review(&path);
    if method != Method::POST {
        timer.finish("405");
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            timer.finish("413");
            return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
        }
        Err(_) => {
            timer.finish("400");
            return Ok(text(StatusCode::BAD_REQUEST, "cannot read the body\n"));
        }
    };
    let answer = match path.as_str() {
        VALIDATE_PATH => answer(&body, validate_nad),
        ISOLATE_PATH => answer(&body, |r| isolate_pod(r, &state.isolation)),
        _ => mutate(&state, &body).await,
    };
    timer.finish(log_decision(&path, &answer));
    Ok(reply(StatusCode::OK, "application/json", answer))
}

async fn mutate(state: &State, body: &[u8]) -> Vec<u8> {
    let request = match parse_review(body) {
        Ok(request) => request,
        Err(invalid) => return review_body(*invalid),
    };
    let options = state.injector.with_switches(&state.switches.borrow());
    let wanted = nads_to_look_up(&request, &options);
    let fetched = state.nads.fetch(&wanted).await;
    review_body(mutate_pod(&request, &fetched, &options))
}

/// Logs the decision and returns it as the metrics name it: allowed, patched or denied.
fn log_decision(path: &str, answer: &[u8]) -> &'static str {
    let Ok(review) = serde_json::from_slice::<serde_json::Value>(answer) else {
        return "denied";
    };
    let response = &review["response"];
    let uid = response["uid"].as_str().unwrap_or_default();
    if response["allowed"] == true {
        tracing::debug!(
            path,
            uid,
            patched = response.get("patch").is_some(),
            "allowed"
        );
        if response.get("patch").is_some() {
            "patched"
        } else {
            "allowed"
        }
    } else {
        let message = response["status"]["message"].as_str().unwrap_or_default();
        tracing::info!(path, uid, message, "denied");
        "denied"
    }
}
