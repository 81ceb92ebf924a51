//! Prometheus metrics of the webhook (`--metrics-address`, off by default), served over plain
//! HTTP at `/metrics` on a listener of their own: admission reviews by path and decision, their
//! latency, reviews in flight, and the NAD lookups sent to the API with their latency and result.
//!
//! The server records through a [`Metrics`] value it is handed; [`Metrics::off`] records nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";
/// OpenMetrics text, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// A scraper that sends no request within this is dropped.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// 0.5 ms to ~8 s, doubling: a review is answered in well under the API server's 10 s budget.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    /// /validate, /isolate or /mutate.
    path: String,
    /// allowed, patched (allowed with a patch), denied, or the HTTP status of a request that
    /// got no review back ("400", "405", "413").
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    /// "ok" (found or not found), "error" or "timeout".
    result: String,
}

struct Inner {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    review_seconds: LatencyFamily<PathLabels>,
    in_flight: Gauge,
    api_requests: Family<ApiLabels, Counter>,
    api_seconds: Histogram,
}

/// The webhook's metrics handle; clones share one registry.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Metrics(on)"
        } else {
            "Metrics(off)"
        })
    }
}

/// A review counted in flight until [`ReviewTimer::finish`] or its drop.
pub struct ReviewTimer {
    metrics: Metrics,
    path: String,
    started: Instant,
}

impl ReviewTimer {
    pub fn finish(self, result: &str) {
        if let Some(m) = &self.metrics.0 {
            m.reviews
                .get_or_create(&ReviewLabels {
                    path: self.path.clone(),
                    result: result.to_owned(),
                })
                .inc();
            m.review_seconds
                .get_or_create(&PathLabels {
                    path: self.path.clone(),
                })
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for ReviewTimer {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics.0 {
            m.in_flight.dec();
        }
    }
}

impl Metrics {
    pub fn off() -> Metrics {
        Metrics(None)
    }

    pub fn on() -> Metrics {
        let mut registry = Registry::default();
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "multinet_webhook_requests",
            "Admission requests answered, by path and decision",
            reviews.clone(),
        );
        let review_seconds = LatencyFamily::<PathLabels>::new_with_constructor(latency);
        registry.register(
            "multinet_webhook_request_duration_seconds",
            "Time from an admission request to its answer, by path",
            review_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "multinet_webhook_requests_in_flight",
            "Admission requests being answered",
            in_flight.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "multinet_webhook_api_requests",
            "NetworkAttachmentDefinition lookups sent to the API (cache misses), by result",
            api_requests.clone(),
        );
        let api_seconds = latency();
        registry.register(
            "multinet_webhook_api_request_duration_seconds",
            "Time one NetworkAttachmentDefinition lookup took",
            api_seconds.clone(),
        );
        Metrics(Some(Arc::new(Inner {
            registry,
            reviews,
            review_seconds,
            in_flight,
            api_requests,
            api_seconds,
        })))
    }

    /// A review on `path` (one of the webhook's own paths) started.
    pub fn review(&self, path: &str) -> ReviewTimer {
        if let Some(m) = &self.0 {
            m.in_flight.inc();
        }
        ReviewTimer {
            metrics: self.clone(),
            path: path.to_owned(),
            started: Instant::now(),
        }
    }

    /// One NAD lookup ended with `result` ("ok", "error", "timeout").
    pub fn api_request(&self, result: &str, took: Duration) {
        if let Some(m) = &self.0 {
            m.api_requests
                .get_or_create(&ApiLabels {
                    result: result.to_owned(),
                })
                .inc();
            m.api_seconds.observe(took.as_secs_f64());
        }
    }

    /// The text exposition; None when off.
    pub fn render(&self) -> Option<String> {
        let m = self.0.as_ref()?;
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        Some(out)
    }
}

/// Serves `GET /metrics` on `listener` until `stop` turns true. Plain HTTP: the admission
/// paths are not served here.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let answer = scrape_answer(request.method(), request.uri().path(), &metrics);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(SCRAPE_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

fn scrape_answer(method: &Method, path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    };
    if path != METRICS_PATH {
        return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
    }
    match metrics.render() {
        Some(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
        None => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are off\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_count_by_path_and_decision() {
        let m = Metrics::on();
        let t = m.review("/validate");
        assert!(
            m.render()
                .unwrap()
                .contains("multinet_webhook_requests_in_flight 1")
        );
        t.finish("denied");
        m.api_request("ok", Duration::from_millis(2));
        let text = m.render().unwrap();
        for line in [
            "multinet_webhook_requests_total{path=\"/validate\",result=\"denied\"} 1",
            "multinet_webhook_requests_in_flight 0",
            "multinet_webhook_request_duration_seconds_count{path=\"/validate\"} 1",
            "multinet_webhook_api_requests_total{result=\"ok\"} 1",
            "multinet_webhook_api_request_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(Metrics::off().render(), None);
    }
}
