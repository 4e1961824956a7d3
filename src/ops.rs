//! The operations listener (`[ops] listen`, loopback by default): `/metrics` in the OpenMetrics
//! text format (which Prometheus scrapes), written with the Prometheus project's own
//! `prometheus-client`, and `/stats`, the
//! resolution statistics as JSON ([`crate::stats::Report`], what `idnode stats` prints), and the
//! status page (`/`, `/status`, and the `/status.json` it draws; see [`crate::status`]).
//!
//! Nothing here runs on the query path: a scrape reads the counters the front ends already keep
//! (the statistics' merged tallies, the caches' and rate limiter's atomics) and builds the page
//! from them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::CacheStats;
use crate::node::Node;
use crate::stats::dns::Source;
use crate::stats::{Outcome, Protocol};

/// What the pages are made from.
pub struct Ops {
    pub node: Arc<Node>,
    pub dns: Arc<crate::dns::Frontend>,
    pub handle: Option<Arc<crate::handle::Frontend>>,
    pub rrl: Option<Arc<crate::dns::rrl::Rrl>>,
    /// What the status page says about the configuration, and the child nodes' health.
    pub status: crate::status::Settings,
    pub health: Arc<crate::status::Health>,
}

/// The routes: `/metrics`, `/stats`, and the status page.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/", get(status_page))
        .route("/status", get(status_page))
        .route("/status.json", get(status_json))
        .with_state(ops)
}

async fn status_page() -> Response {
    crate::status::page()
}

async fn status_json(State(ops): State<Arc<Ops>>) -> Response {
    let built = tokio::task::spawn_blocking(move || {
        let sources = crate::status::Sources {
            node: &ops.node,
            apex: crate::dns::mapping::presentation(&ops.dns.apex()),
            settings: &ops.status,
            health: &ops.health,
            caches: ops.caches(),
        };
        crate::status::Status::build(&sources).map_err(|e| e.to_string())
    })
    .await;
    crate::status::json(built.unwrap_or_else(|e| Err(e.to_string())))
}

async fn stats(State(ops): State<Arc<Ops>>) -> Response {
    let mut report = serde_json::to_value(ops.node.stats().report()).unwrap_or_default();
    // A mirror's standing with its primary, beside the lookups.
    if let (Some(mirror), Some(object)) = (ops.node.mirror_status(), report.as_object_mut()) {
        let mut value = serde_json::to_value(&mirror).unwrap_or_default();
        value["lag_writes"] = mirror.lag_serials().into();
        object.insert("mirror".into(), value);
    }
    (StatusCode::OK, axum::Json(report)).into_response()
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let page = tokio::task::spawn_blocking(move || ops.page()).await;
    match page {
        Ok(Ok(page)) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], page)
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// RCODE names (RFC 1035, 2136, 6891) for the metrics' labels.
const RCODES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
    "NOTZONE", "11", "12", "13", "14", "15",
];

/// Sampled answer times: bucket counts (per bucket, the last `+Inf`) and their sum, encoded as
/// an OpenMetrics histogram.
#[derive(Debug, Clone, Copy, Default)]
struct Sampled {
    counts: [u64; crate::stats::dns::LATENCY_BOUNDS_US.len() + 1],
    sum: f64,
}

/// A [`Sampled`] behind the lock a [`Family`] member needs.
#[derive(Debug, Default)]
struct SampledMetric(std::sync::Mutex<Sampled>);

impl prometheus_client::metrics::TypedMetric for SampledMetric {
    const TYPE: prometheus_client::metrics::MetricType = prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for SampledMetric {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let sampled = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bounds = crate::stats::dns::LATENCY_BOUNDS_US.iter().map(|us| *us as f64 / 1e6).chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(sampled.counts).collect();
        let count = sampled.counts.iter().sum();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sampled.sum, count, &buckets, None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

impl Ops {
    /// The front caches' counters: DNS, and the Handle protocol's when it has one.
    fn caches(&self) -> Vec<(&'static str, CacheStats)> {
        let mut caches = vec![("dns", self.dns.cache_stats())];
        if let Some(handle) = self.handle.as_ref().and_then(|h| h.cache_stats()) {
            caches.push(("handle", handle));
        }
        caches
    }

    /// The metrics page, built now.
    fn page(&self) -> Result<String, String> {
        let mut registry = Registry::with_prefix("idnode");
        let lookups = Family::<Labels, Counter>::default();
        let since_start = self.node.stats().since_start();
        for protocol in Protocol::ALL {
            for outcome in Outcome::ALL {
                let labels = vec![("protocol", protocol.name()), ("outcome", outcome.name())];
                lookups.get_or_create(&labels).inc_by(since_start[protocol as usize][outcome as usize]);
            }
        }
        registry.register("lookups", "Lookups answered since the node started, by protocol and outcome", lookups);

        let report = self.node.stats().report();
        let today = Gauge::<i64>::default();
        today.set(i64::try_from(report.today.lookups).unwrap_or(i64::MAX));
        registry.register("lookups_today", "Lookups answered today (UTC), restarts included", today);
        if let Some(target) = &report.target {
            let share = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            share.set(target.share);
            registry.register("target_share", "Lookups in the target's period as a share of the target", share);
        }

        let caches = self.caches();
        let (hits, misses) = (Family::<Labels, Counter>::default(), Family::<Labels, Counter>::default());
        let (entries, bytes) = (Family::<Labels, Gauge>::default(), Family::<Labels, Gauge>::default());
        let evictions = Family::<Labels, Counter>::default();
        for (name, c) in &caches {
            let CacheStats { hits: h, misses: m, entries: e, bytes: b, evictions: x, .. } = *c;
            hits.get_or_create(&vec![("cache", *name)]).inc_by(h);
            misses.get_or_create(&vec![("cache", *name)]).inc_by(m);
            evictions.get_or_create(&vec![("cache", *name)]).inc_by(x);
            entries.get_or_create(&vec![("cache", *name)]).set(i64::try_from(e).unwrap_or(i64::MAX));
            bytes.get_or_create(&vec![("cache", *name)]).set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        registry.register("cache_hits", "Front cache hits", hits);
        registry.register("cache_misses", "Front cache misses (registry reads)", misses);
        registry.register("cache_evictions", "Answers evicted from the front cache to make room", evictions);
        registry.register("cache_entries", "Answers in the front cache", entries);
        registry.register("cache_bytes", "What the front cache's answers weigh", bytes);

        if let Some(rrl) = &self.rrl {
            let (slipped, dropped) = rrl.stats();
            let limited = Family::<Labels, Counter>::default();
            limited.get_or_create(&vec![("action", "slip")]).inc_by(slipped);
            limited.get_or_create(&vec![("action", "drop")]).inc_by(dropped);
            registry.register("rate_limited", "DNS responses held back by response rate limiting", limited);
        }

        let identifiers = Gauge::<i64>::default();
        let count = self.node.registry().len().map_err(|e| e.to_string())?;
        identifiers.set(i64::try_from(count).unwrap_or(i64::MAX));
        registry.register("identifiers", "Records in the registry", identifiers);

        let serial = Gauge::<i64>::default();
        serial.set(i64::try_from(self.node.registry().seq()).unwrap_or(i64::MAX));
        registry.register(
            "write_sequence",
            "Sequence number of the last write (its low 32 bits are the zone serial)",
            serial,
        );
        if let Some(mirror) = self.node.mirror_status() {
            let (writes, seconds) = (Gauge::<i64>::default(), Gauge::<i64>::default());
            writes.set(i64::try_from(mirror.lag_serials()).unwrap_or(i64::MAX));
            seconds.set(i64::try_from(mirror.lag_seconds).unwrap_or(i64::MAX));
            registry.register(
                "replication_lag_writes",
                "Writes the primary has made that this mirror has not applied",
                writes,
            );
            registry.register(
                "replication_lag_seconds",
                "Age of the oldest write this mirror has not applied",
                seconds,
            );
        }

        let counters = self.node.counters();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let writes = Family::<Labels, Counter>::default();
        writes.get_or_create(&vec![("result", "applied")]).inc_by(load(&counters.writes_applied));
        writes.get_or_create(&vec![("result", "refused")]).inc_by(load(&counters.writes_refused));
        registry.register("writes", "Writes (single or batches) since the node started, applied or refused", writes);
        let failures = Counter::<u64>::default();
        failures.inc_by(load(&counters.auth_failures));
        registry.register("auth_failures", "Failed authentications (HTTP Basic, Handle challenges)", failures);

        let dns = self.node.stats().dns_since_start();
        let responses = Family::<Labels, Counter>::default();
        for (t, transport) in ["udp", "tcp"].into_iter().enumerate() {
            for (code, n) in dns.rcodes[t].iter().enumerate().filter(|(_, n)| **n > 0) {
                responses.get_or_create(&vec![("transport", transport), ("rcode", RCODES[code])]).inc_by(*n);
            }
        }
        registry.register("dns_responses", "DNS responses since the node started, by transport and RCODE", responses);
        let questions = Family::<Labels, Counter>::default();
        let names = crate::stats::dns::QTYPES.iter().map(|(_, name)| *name).chain(["other"]);
        for (name, n) in names.zip(dns.qtypes) {
            questions.get_or_create(&vec![("qtype", name)]).inc_by(n);
        }
        registry.register("dns_questions", "DNS questions answered since the node started, by type", questions);
        let times = Family::<Labels, SampledMetric>::default();
        for (from, source) in ["cache", "registry"].into_iter().enumerate() {
            let sampled = Sampled { counts: dns.latency[from], sum: dns.latency_sum[from] };
            *times.get_or_create(&vec![("source", source)]).0.lock().unwrap_or_else(|p| p.into_inner()) = sampled;
        }
        registry.register(
            "dns_answer_seconds",
            "Time to answer a DNS question (one in 64 timed), from the front cache or the registry",
            times,
        );
        let others = Family::<Labels, SampledMetric>::default();
        for (source, protocol) in [(Source::Handle, "handle"), (Source::Http, "http")] {
            let at = source as usize;
            let sampled = Sampled { counts: dns.latency[at], sum: dns.latency_sum[at] };
            *others.get_or_create(&vec![("protocol", protocol)]).0.lock().unwrap_or_else(|p| p.into_inner()) = sampled;
        }
        registry.register(
            "answer_seconds",
            "Time to answer a lookup over the Handle protocol (one in 64 timed) or the HTTP API (each)",
            others,
        );

        let mut page = String::new();
        encode(&mut page, &registry).map_err(|e| e.to_string())?;
        Ok(page)
    }
}
