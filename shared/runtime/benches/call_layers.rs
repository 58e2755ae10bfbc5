//! What the layers every call passes through cost: the trace layer (the request span in the
//! caller's trace, `traceparent` handed on) and the call layer (count, duration histogram, one
//! access log line when the response ends), around a service that answers at once, with JSON logs
//! at `info` written to a sink as the services write them.
//!
//! Run: `cargo bench -p prfix-runtime --bench call_layers`. Prints the median time per call of five
//! rounds for the bare service, each layer alone, and both, with and without a caller's
//! `traceparent`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use prfix_runtime::calls::GrpcMetricsLayer;
use prfix_runtime::trace::TraceLayer;
use tower::{Layer, Service, ServiceExt};
use tracing_subscriber::prelude::*;

const CALLS: u32 = 100_000;
const ROUNDS: usize = 5;
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

type Answer = Response<Empty<bytes::Bytes>>;

fn answer() -> tower::util::ServiceFn<impl FnMut(Request<()>) -> std::future::Ready<Result<Answer, Infallible>>> {
    tower::service_fn(|_request: Request<()>| std::future::ready(Ok::<_, Infallible>(Response::new(Empty::new()))))
}

fn request(traced: bool) -> Request<()> {
    let mut builder = Request::builder().uri("/prfix.agent.v1.AgentService/ListTasks").header("x-request-id", "bench");
    if traced {
        builder = builder.header("traceparent", PARENT);
    }
    builder.body(()).expect("a valid request")
}

/// Median time per call of `ROUNDS` rounds of `CALLS` calls, the response body read to its end.
async fn measure<S, B>(mut service: S, traced: bool) -> Duration
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..CALLS {
            let response = service.ready().await.expect("ready").call(request(traced)).await.expect("answered");
            response.into_body().collect().await.expect("body");
        }
        rounds.push(started.elapsed() / CALLS);
    }
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn main() {
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::sink);
    tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new("info")).with(json).init();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let bare = measure(answer(), false).await;
        println!("{CALLS} calls x {ROUNDS} rounds, median per call:");
        println!("  bare service                           {bare:>10.2?}");
        for traced in [false, true] {
            let caller = if traced { "caller's traceparent" } else { "no traceparent" };
            let calls = measure(GrpcMetricsLayer::new("bench").layer(answer()), traced).await;
            let trace = measure(TraceLayer.layer(answer()), traced).await;
            let both = measure(TraceLayer.layer(GrpcMetricsLayer::new("bench").layer(answer())), traced).await;
            println!("  call layer (metrics, access log)       {calls:>10.2?}   ({caller})");
            println!("  trace layer (span, traceparent)        {trace:>10.2?}   ({caller})");
            println!(
                "  both, as every service has them        {both:>10.2?}   ({caller}; +{:.2?} over bare)",
                both.saturating_sub(bare)
            );
        }
    });
}
