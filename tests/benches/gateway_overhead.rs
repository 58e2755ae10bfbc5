//! What the gateway adds to a unary call, with authentication, policy and rate limits on.
//!
//! Run: `cargo bench -p prfix-tests --bench gateway_overhead` (needs the test Postgres and Redis).
//! Prints p50 and p99 latency of `AgentService/ListTasks` called directly and through the gateway,
//! and the throughput of each at a fixed concurrency with their ratio.

use std::time::{Duration, Instant};

use prfix_auth::Role;
use prfix_gateway::ratelimit::Quota;
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_tests::app::{Authed, channel_to};
use prfix_tests::auth::{Bearer, token};

const SEQUENTIAL_CALLS: usize = 2_000;
const CONCURRENCY: usize = 16;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn latencies(client: &mut AgentServiceClient<Authed>) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SEQUENTIAL_CALLS);
    for _ in 0..SEQUENTIAL_CALLS {
        let started = Instant::now();
        client.list_tasks(agent::ListTasksRequest::default()).await.expect("call succeeds");
        out.push(started.elapsed());
    }
    out.sort();
    out
}

async fn throughput(client: AgentServiceClient<Authed>) -> f64 {
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    client.list_tasks(agent::ListTasksRequest::default()).await.expect("call succeeds");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker finishes");
    }
    total as f64 / THROUGHPUT_WINDOW.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // Limits on, but high enough that the benchmark measures their cost rather than their refusals.
    // The agent applies the method limits at its own port too: high there as well.
    let high = Quota { per_minute: 60_000_000, burst: 1_000_000 };
    let app = prfix_tests::app::spawn_app_shared(
        |common| common.service_limits.default = high,
        |s| s.gateway.limits.default = high,
        |_| {},
    )
    .await;
    let token = token("bench", &[Role::Developer]);
    let mut direct = AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(&token));
    let mut gateway = app.agent_client_as(&token);
    for _ in 0..200 {
        direct.list_tasks(agent::ListTasksRequest::default()).await.expect("warm-up");
        gateway.list_tasks(agent::ListTasksRequest::default()).await.expect("warm-up");
    }
    let d = latencies(&mut direct).await;
    let g = latencies(&mut gateway).await;
    let (d50, d99, g50, g99) = (percentile(&d, 0.5), percentile(&d, 0.99), percentile(&g, 0.5), percentile(&g, 0.99));
    println!(
        "unary ListTasks, {SEQUENTIAL_CALLS} sequential calls each (auth + policy + rate limit on at the gateway)"
    );
    println!("  direct to agent : p50 {:>8.3} ms   p99 {:>8.3} ms", d50.as_secs_f64() * 1e3, d99.as_secs_f64() * 1e3);
    println!("  through gateway : p50 {:>8.3} ms   p99 {:>8.3} ms", g50.as_secs_f64() * 1e3, g99.as_secs_f64() * 1e3);
    println!(
        "  gateway adds    : p50 {:>8.3} ms   p99 {:>8.3} ms",
        (g50.as_secs_f64() - d50.as_secs_f64()) * 1e3,
        (g99.as_secs_f64() - d99.as_secs_f64()) * 1e3
    );
    let td = throughput(direct.clone()).await;
    let tg = throughput(gateway.clone()).await;
    println!("throughput at concurrency {CONCURRENCY} over {:?}", THROUGHPUT_WINDOW);
    println!("  direct to agent : {td:>9.0} calls/s");
    println!("  through gateway : {tg:>9.0} calls/s");
    println!("  ratio gateway/direct: {:.2}", tg / td);
}
