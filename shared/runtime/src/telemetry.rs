//! Logging and tracing: one subscriber per process, JSON or pretty lines ([`crate::pretty`]) filtered
//! by `log_level`,
//! and, when `otlp_endpoint` is set, OpenTelemetry spans exported over OTLP/gRPC in batches.
//! See [`crate::trace`] for how trace context travels between the services.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::settings::{CommonSettings, LogFormat};

static EXPORTING: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether this process exports spans (its spans then carry OpenTelemetry ids).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("invalid log_level `{level}` ({error}); using `info`");
        EnvFilter::new("info")
    })
}

/// Installs the global subscriber with logs only. A second call (tests, `prfix up`) keeps the first.
pub fn init(format: LogFormat, level: &str) {
    install::<tracing_opentelemetry::OpenTelemetryLayer<_, opentelemetry_sdk::trace::Tracer>>(format, level, None);
}

/// Installs the global subscriber: the filter, `otel` when given, and the log lines in `format`.
/// Whether it was installed (false: one was already, and it stays).
fn install<L>(format: LogFormat, level: &str, otel: Option<L>) -> bool
where
    L: tracing_subscriber::Layer<tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>>
        + Send
        + Sync,
{
    let registry = tracing_subscriber::registry().with(filter(level)).with(otel);
    match format {
        LogFormat::Json => registry.with(json_layer()).try_init().is_ok(),
        LogFormat::Pretty => {
            // Colour only for a person at a terminal: a file or a pipe gets plain text.
            let ansi = crate::pretty::color_allowed();
            registry.with(fmt::layer().with_ansi(ansi).event_format(crate::pretty::Pretty::new())).try_init().is_ok()
        }
    }
}

fn json_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // The current span's fields (method, request_id, trace_id, span_id) go on every line.
    fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false)
}

/// Why the OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for `{endpoint}`: {reason}")]
pub struct TracingError {
    endpoint: String,
    reason: String,
}

/// Installs the global subscriber of service `service`: logs as `common` says and, when
/// `common.otlp_endpoint` is set, an OpenTelemetry layer exporting to it. Must run inside the tokio
/// runtime (the exporter's client lives there). A second call keeps the first subscriber.
pub fn init_service(service: &str, common: &CommonSettings) -> Result<(), TracingError> {
    let Some(endpoint) = &common.otlp_endpoint else {
        init(common.log_format, &common.log_level);
        return Ok(());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| TracingError { endpoint: endpoint.clone(), reason: crate::error::chain(&e) })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(common.trace_sample_ratio))))
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build())
        .build();
    let tracer = provider.tracer(service.to_owned());
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    if install(common.log_format, &common.log_level, Some(otel)) {
        let _ = PROVIDER.set(provider);
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(%endpoint, ratio = common.trace_sample_ratio, "exporting spans over OTLP");
    }
    Ok(())
}

/// Exports the spans still buffered (at exit). Blocking: runs on a blocking thread.
pub async fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            eprintln!("exporting the last spans failed: {error}");
        }
    }
}
