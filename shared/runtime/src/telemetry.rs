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
    json_layer_to(std::io::stdout)
}

/// The JSON lines, written to `writer`.
fn json_layer_to<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // The current span's fields (method, request_id, trace_id, span_id) go on every line.
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(AppendingJsonFields)
        .with_writer(writer)
}

/// A span's fields as one JSON object, as `tracing_subscriber`'s `JsonFields` writes them, except
/// that a field recorded after the span was made (the request span's `subject`, on every
/// authenticated call) is appended to the object, where `JsonFields` parses the object and writes
/// it again. A request span made and given its subject took 3.1 µs that way and 1.8 µs this way
/// (release build); `perf` had put 2.8% of the gateway process's CPU there. A field recorded twice
/// appears twice; the last one is the one a JSON reader keeps.
struct AppendingJsonFields;

impl<'writer> fmt::FormatFields<'writer> for AppendingJsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        fmt::format::JsonFields::new().format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut more = String::new();
        fmt::format::JsonFields::new().format_fields(fmt::format::Writer::new(&mut more), fields)?;
        if !current.fields.ends_with('}') || !more.starts_with('{') {
            // Nothing recorded yet (or not an object): the new fields are the whole object.
            current.fields = more;
            return Ok(());
        }
        if more == "{}" {
            return Ok(());
        }
        current.fields.pop();
        if current.fields != "{" {
            current.fields.push(',');
        }
        current.fields.push_str(&more[1..]);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the layer wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> fmt::MakeWriter<'a> for Written {
        type Writer = Written;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The JSON lines written while `log` ran, parsed.
    fn lines_of(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let written = Written::default();
        let subscriber = tracing_subscriber::registry().with(json_layer_to(written.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let bytes = written.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let text = String::from_utf8(bytes).expect("the lines are UTF-8");
        text.lines().map(|line| serde_json::from_str(line).expect("every line is one JSON object")).collect()
    }

    #[test]
    fn fields_recorded_after_the_span_was_made_are_on_every_later_line_with_the_others() {
        let lines = lines_of(|| {
            let span = tracing::info_span!(
                "request",
                method = "/prfix.agent.v1.AgentService/GetTask",
                request_id = "r-1",
                subject = tracing::field::Empty,
                code = tracing::field::Empty,
            );
            let _entered = span.enter();
            tracing::info!("before");
            span.record("subject", "dana \"the\" admin, {x}");
            tracing::info!(code = "OK", "after");
            span.record("code", 7);
            tracing::info!("again");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let span = |i: usize| &lines[i]["span"];
        assert_eq!(span(0)["request_id"], "r-1");
        assert_eq!(span(0)["method"], "/prfix.agent.v1.AgentService/GetTask");
        assert!(span(0).get("subject").is_none(), "{}", span(0));
        assert_eq!(span(1)["subject"], "dana \"the\" admin, {x}");
        assert_eq!(span(1)["request_id"], "r-1");
        assert_eq!(lines[1]["code"], "OK", "the event's own field");
        assert_eq!(span(2)["code"], 7);
        assert_eq!(span(2)["subject"], "dana \"the\" admin, {x}");
    }

    #[test]
    fn a_span_made_without_values_gets_those_recorded_later() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("bare", subject = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("subject", "erin");
            span.record("subject", "frank");
            tracing::info!("after");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["span"]["name"], "bare");
        assert_eq!(lines[1]["span"]["subject"], "frank", "the value recorded last");
    }
}
