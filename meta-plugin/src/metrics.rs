//! Prometheus metrics of `multinet daemon` (`--metrics-address`, off by default): calls by verb
//! and result code, their latency and how many run, each delegate's latency by plugin type, API
//! requests, and, read at each scrape, the node's state: attachments in the record store, and
//! for the SR-IOV pools and host-local ranges their configs name, VFs free and used per pool
//! (the allocator's records) and addresses used per range (the host-local store).
//!
//! The call path records through a [`Metrics`] value it is handed (no globals); a value made by
//! [`Metrics::off`] (thin mode, the one-shot binary) records nothing and costs a branch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use multinet_cni::DelegateConf;
use multinet_ipam::host_local::range_usage;
use multinet_sriov::PoolSpec;

use crate::call::attachment::AttachmentState;
use crate::call::config::DEFAULT_CNI_DIR;
use crate::call::store::AttachmentStore;

/// Latency buckets: 1 ms to ~33 s, doubling (a CNI call takes milliseconds to tens of seconds).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    verb: String,
    /// The CNI error code of the answer, "0" for success.
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DelegateLabels {
    /// The plugin's `type` (each plugin of a conflist counts on its own).
    r#type: String,
    verb: String,
    /// "ok" or "error".
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    /// What was asked: get_pod, get_nad, patch_pod_status, create_event.
    request: String,
    /// "ok", the HTTP status of a refusal ("404", "503"), "error" (no answer) or "timeout".
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    /// pod or nad.
    kind: String,
    /// "hit", or "miss" (the API was asked).
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    /// free, used, or stale (a record whose netns is gone: the next claim takes it).
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RangeLabels {
    /// The host-local network (its store's directory name).
    network: String,
    /// rangeStart-rangeEnd.
    range: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    /// planned, added or delete_failed.
    state: String,
}

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: LatencyFamily<VerbLabels>,
    in_flight: Family<VerbLabels, Gauge>,
    delegate_seconds: LatencyFamily<DelegateLabels>,
    api_requests: Family<ApiLabels, Counter>,
    api_seconds: LatencyFamily<RequestLabels>,
    cache_lookups: Family<CacheLabels, Counter>,
    attachments: Family<StateLabels, Gauge>,
    records: Gauge,
    pool_vfs: Family<PoolLabels, Gauge>,
    range_size: Family<RangeLabels, Gauge>,
    range_used: Family<RangeLabels, Gauge>,
    scrape_errors: Counter<u64, AtomicU64>,
    /// The record stores (cniDir) the node's calls named, read at each scrape.
    stores: Mutex<BTreeSet<PathBuf>>,
    /// Where the SR-IOV pools' VFs and their allocation records are read.
    sysfs: multinet_sriov::Sysfs,
    vf_state: multinet_sriov::StateDir,
    /// One scrape at a time: the state gauges are cleared and refilled for each.
    scraping: Mutex<()>,
}

/// The metrics handle the daemon passes down a call; clones share one registry.
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

/// A call counted in flight until [`CallTimer::finish`] (or its drop, which counts nothing else).
pub struct CallTimer {
    metrics: Metrics,
    verb: String,
    started: Instant,
}

impl CallTimer {
    /// The call answered with CNI error `code` (0: success).
    pub fn finish(self, code: u32) {
        if let Some(m) = &self.metrics.0 {
            let verb = self.verb.clone();
            m.calls
                .get_or_create(&CallLabels {
                    verb: verb.clone(),
                    code: code.to_string(),
                })
                .inc();
            m.call_seconds
                .get_or_create(&VerbLabels { verb })
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics.0 {
            m.in_flight
                .get_or_create(&VerbLabels {
                    verb: self.verb.clone(),
                })
                .dec();
        }
    }
}

impl Metrics {
    /// Records nothing.
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// A registry with every family, empty; SR-IOV state is read where the delegate reads it
    /// (`MULTINET_SYSFS_ROOT`, `MULTINET_SRIOV_STATE_DIR`).
    pub fn on() -> Metrics {
        Self::on_with(
            multinet_sriov::Sysfs::from_env(),
            multinet_sriov::StateDir::from_env(),
        )
    }

    /// Like [`Metrics::on`], reading SR-IOV pools from `sysfs` and `vf_state`.
    pub fn on_with(sysfs: multinet_sriov::Sysfs, vf_state: multinet_sriov::StateDir) -> Metrics {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "multinet_cni_requests",
            "CNI calls answered, by verb and CNI result code (0: success)",
            calls.clone(),
        );
        let call_seconds = LatencyFamily::<VerbLabels>::new_with_constructor(latency);
        registry.register(
            "multinet_cni_request_duration_seconds",
            "Time from taking a CNI call to its answer, by verb",
            call_seconds.clone(),
        );
        let in_flight = Family::<VerbLabels, Gauge>::default();
        registry.register(
            "multinet_cni_requests_in_flight",
            "CNI calls taken and not yet answered, by verb",
            in_flight.clone(),
        );
        let delegate_seconds = LatencyFamily::<DelegateLabels>::new_with_constructor(latency);
        registry.register(
            "multinet_delegate_duration_seconds",
            "Time one delegate plugin took, by plugin type, verb and result",
            delegate_seconds.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "multinet_api_requests",
            "Kubernetes API requests (each attempt), by request and result",
            api_requests.clone(),
        );
        let api_seconds = LatencyFamily::<RequestLabels>::new_with_constructor(latency);
        registry.register(
            "multinet_api_request_duration_seconds",
            "Time one Kubernetes API request attempt took, by request",
            api_seconds.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "multinet_cache_lookups",
            "Pods and NADs a call looked up in the daemon's watch caches, by kind and result",
            cache_lookups.clone(),
        );
        let attachments = Family::<StateLabels, Gauge>::default();
        registry.register(
            "multinet_attachments",
            "Attachments in this node's record store, by state",
            attachments.clone(),
        );
        let records = Gauge::default();
        registry.register(
            "multinet_attachment_records",
            "Containers with an attachment record on this node",
            records.clone(),
        );
        let pool_vfs = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "multinet_sriov_pool_vfs",
            "VFs of each SR-IOV pool that recorded attachments name, by state",
            pool_vfs.clone(),
        );
        let range_size = Family::<RangeLabels, Gauge>::default();
        registry.register(
            "multinet_host_local_range_size",
            "Addresses a host-local range hands out, for ranges that recorded attachments use",
            range_size.clone(),
        );
        let range_used = Family::<RangeLabels, Gauge>::default();
        registry.register(
            "multinet_host_local_range_used",
            "Addresses of a host-local range reserved in its store",
            range_used.clone(),
        );
        let scrape_errors = Counter::default();
        registry.register(
            "multinet_metrics_read_errors",
            "Records or state files a scrape could not read",
            scrape_errors.clone(),
        );
        Metrics(Some(Arc::new(Inner {
            registry,
            calls,
            call_seconds,
            in_flight,
            delegate_seconds,
            api_requests,
            api_seconds,
            cache_lookups,
            attachments,
            records,
            pool_vfs,
            range_size,
            range_used,
            scrape_errors,
            // The default store is read even before the first call names its own.
            stores: Mutex::new(BTreeSet::from([PathBuf::from(DEFAULT_CNI_DIR)])),
            sysfs,
            vf_state,
            scraping: Mutex::new(()),
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// A call of `verb` was taken: it counts in flight until the timer is finished or dropped.
    /// A verb the spec does not have counts as "other" (labels stay few).
    pub fn call(&self, verb: &str) -> CallTimer {
        let verb = match verb {
            "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION" => verb,
            _ => "other",
        };
        if let Some(m) = &self.0 {
            m.in_flight
                .get_or_create(&VerbLabels {
                    verb: verb.to_owned(),
                })
                .inc();
        }
        CallTimer {
            metrics: self.clone(),
            verb: verb.to_owned(),
            started: Instant::now(),
        }
    }

    /// One delegate plugin ran.
    pub fn delegate_ran(&self, plugin_type: &str, verb: &str, ok: bool, took: Duration) {
        if let Some(m) = &self.0 {
            m.delegate_seconds
                .get_or_create(&DelegateLabels {
                    r#type: plugin_type.to_owned(),
                    verb: verb.to_owned(),
                    result: if ok { "ok" } else { "error" }.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// One API request attempt ended with `result` (see [`ApiLabels`]).
    pub fn api_request(&self, request: &str, result: &str, took: Duration) {
        if let Some(m) = &self.0 {
            m.api_requests
                .get_or_create(&ApiLabels {
                    request: request.to_owned(),
                    result: result.to_owned(),
                })
                .inc();
            m.api_seconds
                .get_or_create(&RequestLabels {
                    request: request.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// A call looked `kind` (pod, nad) up in the daemon's watch caches.
    pub fn cache_lookup(&self, kind: &str, hit: bool) {
        if let Some(m) = &self.0 {
            m.cache_lookups
                .get_or_create(&CacheLabels {
                    kind: kind.to_owned(),
                    result: if hit { "hit" } else { "miss" }.to_owned(),
                })
                .inc();
        }
    }

    /// A call used the record store at `cni_dir`: scrapes read it from now on.
    pub fn saw_store(&self, cni_dir: &Path) {
        if let Some(m) = &self.0 {
            let mut stores = m.stores.lock().unwrap_or_else(PoisonError::into_inner);
            if !stores.contains(cni_dir) {
                stores.insert(cni_dir.to_path_buf());
            }
        }
    }

    /// The text exposition (OpenMetrics), with the node's state read now. None when off.
    pub fn render(&self) -> Option<String> {
        let m = self.0.as_ref()?;
        let _one_at_a_time = m.scraping.lock().unwrap_or_else(PoisonError::into_inner);
        self.read_state(m);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        Some(out)
    }

    /// Refills the state gauges from the record stores.
    fn read_state(&self, m: &Inner) {
        let stores: Vec<PathBuf> = m
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let (mut records, mut by_state) = (0i64, [0i64; 3]);
        let mut pools: BTreeMap<String, PoolSpec> = BTreeMap::new();
        let mut ranges: BTreeMap<(String, String), (u128, usize)> = BTreeMap::new();
        for dir in stores {
            let store = AttachmentStore::new(&dir);
            let Ok(ids) = store.container_ids() else {
                m.scrape_errors.inc();
                continue;
            };
            for id in ids {
                let Ok(Some(record)) = store.load(&id) else {
                    // Removed by a DEL since it was listed, or unreadable.
                    continue;
                };
                records += 1;
                for a in &record.attachments {
                    by_state[state_index(&a.state)] += 1;
                    self.note_pools_and_ranges(m, &a.conf, &mut pools, &mut ranges);
                }
            }
        }
        m.records.set(records);
        m.attachments.clear();
        for (state, n) in ["planned", "added", "delete_failed"].iter().zip(by_state) {
            m.attachments
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(n);
        }
        m.pool_vfs.clear();
        let allocator = multinet_sriov::VfAllocator::new(&m.sysfs, &m.vf_state);
        for (name, pool) in &pools {
            let usage = allocator.pool_usage(pool);
            for (state, n) in [
                ("free", usage.free),
                ("used", usage.used),
                ("stale", usage.stale),
            ] {
                m.pool_vfs
                    .get_or_create(&PoolLabels {
                        pool: name.clone(),
                        state: state.to_owned(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        m.range_size.clear();
        m.range_used.clear();
        for ((network, range), (size, used)) in ranges {
            let labels = RangeLabels { network, range };
            m.range_size
                .get_or_create(&labels)
                .set(i64::try_from(size).unwrap_or(i64::MAX));
            m.range_used
                .get_or_create(&labels)
                .set(i64::try_from(used).unwrap_or(i64::MAX));
        }
    }

    /// The SR-IOV pools and host-local ranges an attachment's config names.
    fn note_pools_and_ranges(
        &self,
        m: &Inner,
        conf: &DelegateConf,
        pools: &mut BTreeMap<String, PoolSpec>,
        ranges: &mut BTreeMap<(String, String), (u128, usize)>,
    ) {
        for (_, plugin) in conf.plugins() {
            if plugin.plugin_type() == Some("sriov")
                && let Some(spec) = plugin.get("pool")
            {
                match PoolSpec::from_value("pool", spec) {
                    Ok(pool) => {
                        pools.entry(pool.name.clone()).or_insert(pool);
                    }
                    Err(_) => {
                        m.scrape_errors.inc();
                    }
                }
            }
            if plugin.ipam_type() != Some("host-local") {
                continue;
            }
            // A plugin of a list takes the list's name and version, as it does when run.
            let mut value = plugin.as_value().clone();
            if let Some(obj) = value.as_object_mut() {
                for key in ["name", "cniVersion"] {
                    if let (false, Some(v)) = (obj.contains_key(key), conf.get(key)) {
                        obj.insert(key.to_owned(), v.clone());
                    }
                }
            }
            let usage = serde_json::from_value::<multinet_cni::NetConf>(value)
                .map_err(|_| ())
                .and_then(|c| range_usage(&c, c.ipam.as_ref()).map_err(|_| ()));
            match usage {
                Ok(usage) => {
                    for u in usage {
                        ranges.insert((u.network, u.range), (u.size, u.used));
                    }
                }
                Err(()) => {
                    m.scrape_errors.inc();
                }
            }
        }
    }
}

fn state_index(state: &AttachmentState) -> usize {
    match state {
        AttachmentState::Planned => 0,
        AttachmentState::Added => 1,
        AttachmentState::DeleteFailed => 2,
    }
}

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";
/// OpenMetrics text, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// A scraper that sends no request within this is dropped.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `GET /metrics` over plain HTTP on `listener` until the task is dropped. Nothing else
/// is served there: no call can be made through this port.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accepting a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer_scrape(&req, &metrics).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(SCRAPE_READ_TIMEOUT)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics: connection");
            }
        });
    }
}

async fn answer_scrape<B>(
    req: &hyper::Request<B>,
    metrics: &Metrics,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    use hyper::{Method, StatusCode};
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut resp = hyper::Response::new(http_body_util::Full::new(body.into()));
        *resp.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        resp
    };
    if req.uri().path() != METRICS_PATH {
        return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    // Reading the record stores is file I/O: off the runtime's worker threads.
    let metrics = metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(Some(text)) => reply(StatusCode::OK, CONTENT_TYPE, text),
        _ => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "metrics unavailable\n".into(),
        ),
    }
}

/// The CNI result code of a call's answer: 0 when it succeeded, else the `code` of its error
/// JSON (999 when that cannot be read).
pub fn answer_code(exit_code: i32, stdout: &[u8]) -> u32 {
    if exit_code == 0 {
        return 0;
    }
    serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| v.get("code")?.as_u64())
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_nothing_and_renders_nothing() {
        let m = Metrics::off();
        m.call("ADD").finish(0);
        m.delegate_ran("macvlan", "ADD", true, Duration::from_millis(1));
        assert_eq!(m.render(), None);
    }

    #[test]
    fn calls_count_by_verb_and_code_and_leave_flight() {
        let m = Metrics::on();
        let dir = tempfile::tempdir().unwrap();
        m.saw_store(dir.path());
        let add = m.call("ADD");
        let text = m.render().unwrap();
        assert!(
            text.contains("multinet_cni_requests_in_flight{verb=\"ADD\"} 1"),
            "{text}"
        );
        add.finish(0);
        m.call("DEL").finish(11);
        m.api_request("get_pod", "ok", Duration::from_millis(3));
        let text = m.render().unwrap();
        for line in [
            "multinet_cni_requests_total{verb=\"ADD\",code=\"0\"} 1",
            "multinet_cni_requests_total{verb=\"DEL\",code=\"11\"} 1",
            "multinet_cni_requests_in_flight{verb=\"ADD\"} 0",
            "multinet_cni_request_duration_seconds_count{verb=\"ADD\"} 1",
            "multinet_api_requests_total{request=\"get_pod\",result=\"ok\"} 1",
            "multinet_attachments{state=\"added\"} 0",
            "multinet_attachment_records 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    /// A record whose SR-IOV attachment names a pool: the pool's VFs by state, from the
    /// allocator's records on a fake NIC.
    #[test]
    fn pools_named_by_recorded_attachments_are_counted() {
        use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
        let fake = FakeSysfs::builder(SysfsLayout::SriovCni)
            .pf(PfSpec::new("0000:af:00.1", "enp175s0f1")
                .vf("0000:af:06.0", "enp175s6")
                .vf("0000:af:06.1", "enp175s7")
                .vf("0000:af:06.2", "enp175s8"))
            .build();
        let tmp = tempfile::tempdir().unwrap();
        let vf_state = multinet_sriov::StateDir::new(tmp.path().join("sriov"));
        let sysfs = multinet_sriov::Sysfs::new(fake.root());
        let m = Metrics::on_with(sysfs, vf_state.clone());
        let cni_dir = tmp.path().join("cni");
        m.saw_store(&cni_dir);
        let store = AttachmentStore::new(&cni_dir);
        let mut record = crate::call::store::AttachmentRecord::new("c1", None, "1.0.0");
        record.attachments = serde_json::from_value(serde_json::json!([{
            "network": "team/vf", "ifname": "net1", "state": "added",
            "conf": {"cniVersion": "1.0.0", "name": "vf", "type": "sriov",
                     "pool": {"name": "fast", "pfNames": ["enp175s0f1#0-1"]}}}]))
        .unwrap();
        store.create(&record).unwrap();
        // 06.0 held by a live netns (ours), 06.1 by one that is gone.
        for (pci, netns) in [
            ("0000:af:06.0", "/proc/self/ns/net"),
            ("0000:af:06.1", "/nonexistent/netns"),
        ] {
            let pci = pci.parse().unwrap();
            let lock = vf_state.try_lock_vf(&pci).unwrap().unwrap();
            let rec = multinet_sriov::AllocationRecord::new(pci, "c1", "net1", netns);
            vf_state.write_record(&lock, &rec).unwrap();
        }
        let text = m.render().unwrap();
        for line in [
            "multinet_sriov_pool_vfs{pool=\"fast\",state=\"used\"} 1",
            "multinet_sriov_pool_vfs{pool=\"fast\",state=\"stale\"} 1",
            "multinet_sriov_pool_vfs{pool=\"fast\",state=\"free\"} 0",
            "multinet_attachments{state=\"added\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // The record gone, the pool is no longer reported.
        store.remove("c1").unwrap();
        assert!(!m.render().unwrap().contains("multinet_sriov_pool_vfs{"));
    }

    #[test]
    fn answer_codes_come_from_the_error_json() {
        assert_eq!(answer_code(0, b"{}"), 0);
        assert_eq!(answer_code(1, br#"{"code":7,"msg":"x"}"#), 7);
        assert_eq!(answer_code(1, b"garbage"), 999);
    }
}
