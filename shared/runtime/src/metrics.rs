//! Prometheus metrics: every series of the three services defined in one place, the layer counting
//! gRPC calls by method and code ([`crate::calls`]), and the admin HTTP server that serves `/metrics`.
//!
//! Gauges that describe stored state (queue depth, outbox backlog, checkpoint coverage) are read when
//! `/metrics` is scraped, by the refresh function each service passes to [`serve_admin`], so they
//! are never stale and cost nothing between scrapes.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use prometheus::core::{Atomic, AtomicF64, AtomicI64, GenericGaugeVec};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every series, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// gRPC calls by service, method and status code.
    pub requests: IntCounterVec,
    /// Time to the end of the response (a stream: its whole life), by service and method.
    pub request_duration: HistogramVec,
    /// Rate-limit decisions by class and decision (`allowed`, `denied`).
    pub rate_limit_decisions: IntCounterVec,
    /// Refused credentials and calls by reason.
    pub auth_failures: IntCounterVec,
    /// Whether rate limits run on local state only because Redis is failing (1) or not (0).
    pub redis_fallback: IntGauge,
    /// Model calls by model, endpoint and outcome (`ok` or the error kind).
    pub model_calls: IntCounterVec,
    /// Model call wall time by model and endpoint.
    pub model_call_duration: HistogramVec,
    /// Tokens by model, endpoint and kind (`prompt`, `output`).
    pub model_tokens: IntCounterVec,
    /// Tasks by state (queued, running), read at scrape time.
    pub tasks: IntGaugeVec,
    /// Age of the oldest queued task, in seconds, read at scrape time.
    pub task_queue_oldest_seconds: Gauge,
    /// Audit events appended.
    pub audit_appends: IntCounter,
    /// Events per group commit of the audit writer.
    pub audit_batch_size: Histogram,
    /// Seconds the audit log has waited for a checkpoint, read at scrape time (the help text says
    /// exactly what); set by the audit service only.
    pub checkpoint_age_seconds: OwnGauge<AtomicF64>,
    /// Events not yet covered by the newest signed checkpoint, read at scrape time; set by the audit
    /// service only.
    pub uncovered_events: OwnGauge<AtomicI64>,
    /// Records waiting in an outbox, by table, read at scrape time.
    pub outbox_backlog: IntGaugeVec,
    /// Database pool connections by service and state (`in_use`, `idle`, `max`).
    pub db_pool: IntGaugeVec,
    /// Flag evaluations by flag (known flags only, others as `other`) and variant (`on`/`off` for
    /// switches; a bounded set of variant names for variants).
    pub flag_evaluations: IntCounterVec,
    /// Fetches of flags from Unleash by outcome (`changed`, `not_modified`, `error`).
    pub flag_fetches: IntCounterVec,
}

/// A gauge without labels that one service sets from its own state and that only a process which set
/// it exposes. The three services share these definitions (and, in tests, one registry), and a plain
/// gauge shows 0 until set: the gateway would report a checkpoint age of 0, a healthy-looking value
/// for a log it knows nothing of. Built on a vector with no labels, whose empty family is left out of
/// the exposition until the first `set`.
#[derive(Clone)]
pub struct OwnGauge<P: Atomic>(GenericGaugeVec<P>);

impl<P: Atomic + 'static> OwnGauge<P> {
    fn new(registry: &Registry, name: &str, help: &str) -> Self {
        let metric = GenericGaugeVec::new(Opts::new(name, help), &[]).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        Self(metric)
    }

    /// Sets the value, exposing the series from now on.
    pub fn set(&self, value: P::T) {
        self.0.with_label_values::<&str>(&[]).set(value);
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    metric
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    metric
}

impl Metrics {
    fn new() -> Self {
        // The definitions are constants: a failure here is a bug found by the first test.
        let registry = Registry::new();
        let seconds = vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let model_seconds = vec![0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry.register(Box::new(g.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry.register(Box::new(g.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        };
        let appends = IntCounter::new("prfix_audit_appends_total", "Audit events appended.")
            .unwrap_or_else(|e| panic!("metric: {e}"));
        registry.register(Box::new(appends.clone())).unwrap_or_else(|e| panic!("metric: {e}"));
        let batch = Histogram::with_opts(
            HistogramOpts::new("prfix_audit_batch_size", "Events per group commit of the audit writer.")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        registry.register(Box::new(batch.clone())).unwrap_or_else(|e| panic!("metric: {e}"));
        Self {
            requests: counter(
                &registry,
                "prfix_requests_total",
                "gRPC calls by method and status code.",
                &["service", "method", "code"],
            ),
            request_duration: histogram(
                &registry,
                "prfix_request_duration_seconds",
                "Time from a call to the end of its response (a stream: its whole life).",
                &["service", "method"],
                seconds,
            ),
            rate_limit_decisions: counter(
                &registry,
                "prfix_rate_limit_decisions_total",
                "Rate-limit decisions.",
                &["class", "decision"],
            ),
            auth_failures: counter(
                &registry,
                "prfix_auth_failures_total",
                "Refused credentials and calls by reason.",
                &["reason"],
            ),
            redis_fallback: int_gauge(
                "prfix_redis_fallback_active",
                "1 while rate limits use local state only because Redis is failing.",
            ),
            model_calls: counter(
                &registry,
                "prfix_model_calls_total",
                "Model calls by outcome.",
                &["model", "endpoint", "outcome"],
            ),
            model_call_duration: histogram(
                &registry,
                "prfix_model_call_duration_seconds",
                "Wall time of model calls.",
                &["model", "endpoint"],
                model_seconds,
            ),
            model_tokens: counter(
                &registry,
                "prfix_model_tokens_total",
                "Tokens by kind (prompt, output).",
                &["model", "endpoint", "kind"],
            ),
            tasks: gauges(&registry, "prfix_tasks", "Tasks queued and running.", &["state"]),
            task_queue_oldest_seconds: gauge("prfix_task_queue_oldest_seconds", "Age of the oldest queued task."),
            audit_appends: appends,
            audit_batch_size: batch,
            checkpoint_age_seconds: OwnGauge::new(
                &registry,
                "prfix_audit_checkpoint_age_seconds",
                "Seconds the audit log has waited for a signed checkpoint: while events are not covered by \
                 the newest checkpoint, the age of the oldest of them (also before the first checkpoint); \
                 when every event is covered, the age of the newest checkpoint; 0 for an empty log.",
            ),
            uncovered_events: OwnGauge::new(
                &registry,
                "prfix_audit_uncovered_events",
                "Audit events not covered by the newest signed checkpoint: the highest sequence minus the \
                 checkpoint's tree size (all events before the first checkpoint).",
            ),
            outbox_backlog: gauges(&registry, "prfix_outbox_backlog", "Records waiting in an outbox.", &["table"]),
            db_pool: gauges(
                &registry,
                "prfix_db_pool_connections",
                "Database pool connections.",
                &["service", "state"],
            ),
            flag_evaluations: counter(
                &registry,
                "prfix_flag_evaluations_total",
                "Flag evaluations that decided what a task or call does, by flag and variant.",
                &["flag", "variant"],
            ),
            flag_fetches: counter(
                &registry,
                "prfix_flag_fetches_total",
                "Fetches of the flags from Unleash by outcome (changed, not_modified, error).",
                &["outcome"],
            ),
            registry,
        }
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Records a pool's use.
    pub fn pool(&self, service: &str, pool: &deadpool_postgres::Pool) {
        let status = pool.status();
        let in_use = status.size.saturating_sub(status.available);
        self.db_pool.with_label_values(&[service, "in_use"]).set(i64::try_from(in_use).unwrap_or(i64::MAX));
        self.db_pool.with_label_values(&[service, "idle"]).set(i64::try_from(status.available).unwrap_or(i64::MAX));
        self.db_pool.with_label_values(&[service, "max"]).set(i64::try_from(status.max_size).unwrap_or(i64::MAX));
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Sets `prfix_outbox_backlog{table}` from the outbox table `table` of `pool`'s schema.
pub async fn read_outbox_backlog(pool: &deadpool_postgres::Pool, label: &str, table: &str) {
    let Ok(client) = pool.get().await else { return };
    if let Ok(row) = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await {
        METRICS.outbox_backlog.with_label_values(&[label]).set(row.get::<_, i64>(0));
    }
}

/// Binds the admin listener (`/metrics`); the error names the address.
pub async fn bind_admin(addr: std::net::SocketAddr) -> std::io::Result<(TcpListener, std::net::SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// What a service reads into its gauges before each scrape.
pub type Refresh = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Serves `GET /metrics` on `listener` until `shutdown`, calling `refresh` before each scrape.
pub async fn serve_admin(listener: TcpListener, refresh: Refresh, shutdown: CancellationToken) {
    let refresh = std::sync::Arc::new(refresh);
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let refresh = refresh.clone();
            async move {
                refresh().await;
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], METRICS.render())
            }
        }),
    );
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::warn!(error = %e, "the metrics server stopped");
    }
}
