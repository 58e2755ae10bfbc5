//! What the gateway adds to a unary call, with authentication, policy and rate limits on.
//!
//! Run: `cargo bench -p prfix-tests --bench gateway_overhead` (needs the test Postgres and Redis).
//! Prints p50 and p99 latency of `AgentService/ListTasks` called directly and through the gateway,
//! and the throughput of each at a fixed concurrency with their ratio. Then three kinds of call
//! through the gateway in interleaved rounds, each as a ratio of the first: a token call
//! (`GetTask`), an audited call (`CancelTask`, whose access record goes to the outbox; the same
//! one-row lookup at the agent) and an API-key call (`GetTask` with an API key).

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

/// Rounds of the call-kind rows, the kinds alternating.
const ROUNDS: usize = 3;
/// One kind's window per round.
const ROUND_WINDOW: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Kind {
    Token,
    Audited,
}

/// Calls per second of `kind` by `CONCURRENCY` callers of `client`.
async fn kind_throughput(client: &AgentServiceClient<Authed>, kind: Kind) -> f64 {
    let deadline = Instant::now() + ROUND_WINDOW;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    // A task that does not exist: the same one-row lookup either way; the agent's
                    // NOT_FOUND is the expected answer.
                    let status = match kind {
                        Kind::Token => client.get_task(agent::GetTaskRequest { task_id: "t-none".into() }).await.err(),
                        Kind::Audited => {
                            client.cancel_task(agent::CancelTaskRequest { task_id: "t-none".into() }).await.err()
                        }
                    };
                    let code = status.map(|s| s.code());
                    // Refusals by the edge or failures would measure something else.
                    assert!(
                        !matches!(
                            code,
                            Some(
                                tonic::Code::Unauthenticated
                                    | tonic::Code::PermissionDenied
                                    | tonic::Code::ResourceExhausted
                                    | tonic::Code::Unavailable
                                    | tonic::Code::Internal
                            )
                        ),
                        "{code:?}"
                    );
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker finishes");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// An API key of the bootstrap admin (who holds the admin role; GetTask allows it).
async fn developer_key(app: &prfix_tests::app::TestApp) -> String {
    use prfix_proto::auth::v1 as auth;
    let admin = app.admin_token().await;
    let created = app
        .auth_client_as(&admin)
        .create_api_key(auth::CreateApiKeyRequest {
            name: "bench".into(),
            roles: vec![prfix_proto::options::v1::Role::Admin as i32],
            ttl: None,
            owner: String::new(),
        })
        .await
        .expect("an API key")
        .into_inner();
    created.secret
}

async fn call_kinds(app: &prfix_tests::app::TestApp, token: &str) {
    let by_token = app.agent_client_as(token);
    let by_key = app.agent_client_as(&developer_key(app).await);
    let rows: [(&str, &AgentServiceClient<Authed>, Kind); 3] = [
        ("token call (GetTask)", &by_token, Kind::Token),
        ("audited call (CancelTask)", &by_token, Kind::Audited),
        ("API-key call (GetTask)", &by_key, Kind::Token),
    ];
    for (_, client, kind) in &rows {
        let mut client = AgentServiceClient::clone(client);
        for _ in 0..100 {
            let _ = match kind {
                Kind::Token => client.get_task(agent::GetTaskRequest { task_id: "t-none".into() }).await.err(),
                Kind::Audited => client.cancel_task(agent::CancelTaskRequest { task_id: "t-none".into() }).await.err(),
            };
        }
    }
    let mut sums = [0.0; 3];
    for _ in 0..ROUNDS {
        for (i, (_, client, kind)) in rows.iter().enumerate() {
            sums[i] += kind_throughput(client, *kind).await;
        }
    }
    println!(
        "call kinds through the gateway, concurrency {CONCURRENCY}, {ROUNDS} interleaved rounds of {ROUND_WINDOW:?}"
    );
    for (i, (name, ..)) in rows.iter().enumerate() {
        println!(
            "  {name:<28} {:>5.2}x the token call   ({:>7.0} calls/s)",
            sums[i] / sums[0],
            sums[i] / ROUNDS as f64
        );
    }
}

#[tokio::main]
async fn main() {
    // Limits on, but high enough that the benchmark measures their cost rather than their refusals.
    // The agent applies the method limits at its own port too: high there as well.
    let high = Quota { per_minute: 60_000_000, burst: 1_000_000 };
    let app = prfix_tests::app::spawn_app_shared(
        |common| {
            common.service_limits.default = high;
            common.service_limits.expensive = high;
        },
        |s| {
            s.gateway.limits.default = high;
            s.gateway.limits.expensive = high;
        },
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
    call_kinds(&app, &token).await;
}
