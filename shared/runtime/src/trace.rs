//! W3C trace context (<https://www.w3.org/TR/trace-context/>) across the services.
//!
//! Every gRPC server of ours reads the caller's `traceparent` (or starts a trace when there is none
//! or it is malformed), opens the request span with the trace id as a field (so every log line of
//! the call carries it), and then *replaces* the request's `traceparent` with this hop's span: code
//! behind the layer that forwards the headers (the gateway's proxy, the REST transcoder) or reads
//! them (handlers storing a task's trace, audit records) passes on the right parent without knowing
//! about tracing. The agent keeps a task's `traceparent` with the task, so the worker's span and the
//! calls to Ollama join the trace that created it.
//!
//! When an OTLP endpoint is configured the spans are also OpenTelemetry spans (exported by
//! [`crate::telemetry`]) and the span ids come from them; otherwise ids are made here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a trace: the trace, the span, and whether the trace is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Lower-case hex only, as the specification demands.
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

impl TraceContext {
    /// Parses a `traceparent` value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    /// Later versions are read the same way (with anything after the flags ignored), version `ff`
    /// and all-zero ids are invalid, as the specification says.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let version = hex_bytes::<1>(parts.next()?)?[0];
        let trace_id = hex_bytes::<16>(parts.next()?)?;
        let span_id = hex_bytes::<8>(parts.next()?)?;
        let flags = hex_bytes::<1>(parts.next()?)?[0];
        let rest = parts.next();
        if version == 0xff || (version == 0 && rest.is_some()) {
            return None;
        }
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, span_id, flags })
    }

    /// The start of a new, sampled trace.
    pub fn root() -> Self {
        Self { trace_id: nonzero(), span_id: nonzero(), flags: 1 }
    }

    /// A new span of the same trace.
    pub fn child(&self) -> Self {
        Self { span_id: nonzero(), ..*self }
    }

    /// A span under `parent`, or the root of a new trace without one.
    pub fn next(parent: Option<Self>) -> Self {
        parent.map_or_else(Self::root, |p| p.child())
    }

    /// The trace id, 32 lower-case hex digits (as logs and audit events show it).
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id, 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        hex::encode(self.span_id)
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn header_value(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id(), self.span_id(), self.flags)
    }

    /// The context in `headers`, when there is a valid one.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(Self::parse)
    }

    /// The context in a gRPC request's metadata, when there is a valid one.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Option<Self> {
        metadata.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(Self::parse)
    }

    /// Sets `traceparent` in `headers` to this span.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.header_value()) {
            headers.insert(TRACEPARENT, value);
        }
    }

    /// Sets `traceparent` in a gRPC request's metadata to this span.
    pub fn inject_metadata(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Ok(value) = self.header_value().parse() {
            metadata.insert(TRACEPARENT, value);
        }
    }

    fn to_otel(self) -> SpanContext {
        SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(self.trace_id),
            opentelemetry::trace::SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        )
    }

    fn from_otel(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            flags: context.trace_flags().to_u8(),
        })
    }
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

/// Records the authenticated caller on the current request span (the gateway's edge and each
/// service's auth layer call it).
pub fn record_subject(subject: &str) {
    tracing::Span::current().record("subject", subject);
}

/// Makes `span` a span of the trace `parent` (a new trace when `None`), records its `trace_id` and
/// `span_id` fields, and returns its context, for the calls it makes. `span` must declare both
/// fields (as `tracing::field::Empty`) and must not have been entered yet.
pub fn attach(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let context = if crate::telemetry::exporting() {
        if let Some(parent) = parent {
            let remote = opentelemetry::Context::new().with_remote_span_context(parent.to_otel());
            let _ = span.set_parent(remote);
        }
        TraceContext::from_otel(span.context().span().span_context())
    } else {
        None
    };
    let context = context.unwrap_or_else(|| TraceContext::next(parent));
    span.record("trace_id", context.trace_id());
    span.record("span_id", context.span_id());
    context
}

/// The span of one served request: method, request id, trace and span ids, and (once the caller is
/// authenticated, [`record_subject`]) the subject, so every log line of the call carries them. Returns the span and its trace context.
pub fn server_span<B>(request: &Request<B>) -> (tracing::Span, TraceContext) {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    let method = request.uri().path();
    let parent = TraceContext::from_headers(request.headers());
    if !crate::telemetry::exporting() {
        // The ids are known before the span exists: written once, never re-recorded (recording a
        // field again costs the JSON formatter a parse of the span's fields).
        let context = TraceContext::next(parent);
        let span = tracing::info_span!(
            "request",
            method = %method,
            request_id,
            trace_id = %context.trace_id(),
            span_id = %context.span_id(),
            subject = tracing::field::Empty,
        );
        return (span, context);
    }
    let span = tracing::info_span!(
        "request",
        method = %method,
        request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.name = %method,
        otel.kind = "server",
        subject = tracing::field::Empty,
    );
    let context = attach(&span, parent);
    (span, context)
}

/// A layer that runs each request in its [`server_span`] and hands this hop's context on in the
/// request's `traceparent` header (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

/// The service of [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for Traced<S>
where
    S: tower::Service<Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (span, context) = server_span(&request);
        context.inject(request.headers_mut());
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(future.instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_parses_and_prints_back() {
        let context = TraceContext::parse(EXAMPLE).expect("valid");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.header_value(), EXAMPLE);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_with_what_follows_ignored() {
        let value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future";
        let context = TraceContext::parse(value).expect("valid");
        assert!(!context.sampled());
        assert_eq!(context.header_value(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent = TraceContext::parse(EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.sampled());
        assert_ne!(TraceContext::root().trace_id(), TraceContext::root().trace_id());
    }

    #[test]
    fn without_export_a_span_joins_the_callers_trace_as_a_child() {
        let parent = TraceContext::parse(EXAMPLE).expect("valid");
        let mut request = Request::new(());
        parent.inject(request.headers_mut());
        let (_span, context) = server_span(&request);
        assert_eq!(context.trace_id(), parent.trace_id());
        assert_ne!(context.span_id(), parent.span_id());
        let (_span, fresh) = server_span(&Request::new(()));
        assert_ne!(fresh.trace_id(), parent.trace_id());
    }
}
