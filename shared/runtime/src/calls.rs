//! What every answered gRPC call leaves behind: its count by method and code, its duration, and
//! one access log line in the call's span. A call ends when its response body ends, so a stream is
//! measured to its last message and counted with the code its trailers carry (a stream that fails
//! after it started is not an `OK`); a body the client drops first counts as `CANCELLED`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prfix_proto::prost::Message;

use crate::metrics::METRICS;

/// Counts and logs the gRPC calls of `service` (see the module documentation).
#[derive(Clone, Copy)]
pub struct GrpcMetricsLayer {
    service: &'static str,
}

impl GrpcMetricsLayer {
    /// A layer labelling calls with `service`.
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, service: self.service }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    service: &'static str,
}

/// The code in `headers`' `grpc-status`, if any.
fn status_in(headers: &HeaderMap) -> Option<&'static str> {
    let n = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(crate::error::grpc_code_name(tonic::Code::from_i32(n)))
}

/// The label of paths that name no method of the API: a scanner calling made-up methods adds one
/// series, not one per name.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Services served beside the API's own, whose methods are labelled too.
const STANDARD_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The paths (`/package.Service/Method`) of every method of the descriptor set, and the standard
/// services'.
fn known_methods() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known: HashSet<String> = STANDARD_METHODS.iter().map(|m| (*m).to_owned()).collect();
        // The set is compiled in; a decoding failure would leave only the standard methods
        // labelled, never an unbounded label.
        if let Ok(set) = prost_types::FileDescriptorSet::decode(prfix_proto::FILE_DESCRIPTOR_SET) {
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        known
    })
}

/// A method of the descriptor set (or health, reflection) is its own label value; anything else
/// is [`UNKNOWN_METHOD`], so the series cannot grow with what callers make up.
fn method_label(path: &str) -> &'static str {
    known_methods().get(path).map_or(UNKNOWN_METHOD, String::as_str)
}

/// The one service whose access lines are at INFO, when set ([`log_access_only_of`]).
static ACCESS_OF: OnceLock<&'static str> = OnceLock::new();

/// In a process that runs several services behind one gateway (`prfix up`), logs the access lines
/// of `service` alone at INFO and the others' at DEBUG, so a call is one line, not one per hop.
/// Separate processes keep theirs at INFO.
pub fn log_access_only_of(service: &'static str) {
    let _ = ACCESS_OF.set(service);
}

/// Whether `service`'s access lines are at INFO.
fn access_at_info(service: &str) -> bool {
    ACCESS_OF.get().is_none_or(|only| *only == service)
}

/// One call being answered: what is recorded when its body ends.
struct Call {
    service: &'static str,
    method: &'static str,
    started: Instant,
    /// The request's span, for the access log line (the body is polled outside it).
    span: tracing::Span,
}

impl Call {
    fn finish(self, code: &'static str) {
        let elapsed = self.started.elapsed();
        let (service, method) = (self.service, self.method);
        METRICS.requests.with_label_values(&[service, method, code]).inc();
        METRICS.request_duration.with_label_values(&[service, method]).observe(elapsed.as_secs_f64());
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let _entered = self.span.enter();
        // Health probes every few seconds would drown the rest: debug only. So are the lines of
        // services whose calls another one in this process already logged (`prfix up`).
        if method.starts_with("/grpc.health.") || !access_at_info(service) {
            tracing::debug!(target: crate::pretty::ACCESS_TARGET, service, code, duration_ms, "call answered");
        } else {
            tracing::info!(target: crate::pretty::ACCESS_TARGET, service, code, duration_ms, "call answered");
        }
    }
}

impl<S, B, R> tower::Service<Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>> + Send,
    R: Body,
    S::Future: Send + 'static,
{
    type Response = Response<Measured<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call {
            service: self.service,
            method: method_label(request.uri().path()),
            started: Instant::now(),
            span: tracing::Span::current(),
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // An error answered at once carries its status in the headers (trailers-only).
            let code = match status_in(response.headers()) {
                Some(code) => code,
                None if response.status().is_success() => "OK",
                None => "HTTP_ERROR",
            };
            // A body that is already over may never be polled.
            let call = if response.body().is_end_stream() {
                call.finish(code);
                None
            } else {
                Some(call)
            };
            Ok(response.map(|inner| Measured { inner, call, code }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when it ends (see the module documentation).
    pub struct Measured<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        // The code so far: from the headers, replaced by the trailers' `grpc-status`.
        code: &'static str,
    }

    impl<B> PinnedDrop for Measured<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.take() {
                call.finish("CANCELLED");
            }
        }
    }
}

impl<B: Body> Body for Measured<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    *this.code = code;
                }
                // Trailers come last; and a server stops polling a body that says it is over.
                frame.is_trailers() || this.inner.is_end_stream()
            }
            Poll::Ready(Some(Err(_))) => {
                *this.code = "UNKNOWN";
                false
            }
            Poll::Ready(None) => true,
            Poll::Pending => false,
        };
        if ended && let Some(call) = this.call.take() {
            call.finish(this.code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_methods_of_the_descriptor_set_get_their_own_label() {
        assert_eq!(
            method_label("/prfix.agent.v1.AgentService/CreateReview"),
            "/prfix.agent.v1.AgentService/CreateReview"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/no.such.Service/Method"), UNKNOWN_METHOD);
        assert_eq!(method_label("/prfix.x.v1.S/M"), UNKNOWN_METHOD);
        assert_eq!(method_label("/prfix.agent.v1.AgentService/NoSuchMethod"), UNKNOWN_METHOD);
        assert_eq!(method_label("/v1/tasks/x/y"), UNKNOWN_METHOD);
    }
}
