//! Audit appends against plain INSERTs on the same Postgres, and proofs at two log sizes.
//!
//! Run: `cargo bench -p prfix-tests --bench audit_throughput` (needs the test Postgres and Redis;
//! about five minutes, and some 4 GB of disk for the large log while it runs).
//!
//! Every row is a ratio measured in interleaved rounds in this run (the machine is shared and
//! noisy; absolute figures are not comparable between runs):
//! - `Append` (one event per call) and `AppendBatch` of 100, straight to the audit service, at 1, 16
//!   and 64 concurrent clients, against plain INSERTs of rows of the same size into a copy of the
//!   events table (`LIKE audit.events INCLUDING ALL`: the same columns, keys and indexes, no
//!   triggers) in the same database, with the same durability: one autocommitted single-row INSERT
//!   per event, and one 100-row INSERT per transaction, by as many clients, each on its own
//!   connection.
//! - The same rows again once the log holds `PRFIX_BENCH_LOG_EVENTS` events (default 1,000,000),
//!   as a ratio of the rows on the empty log (each taken against its reference).
//! - `GetInclusionProof` of event 1 in a log of `PRFIX_BENCH_PROOF_EVENTS` (default 10,000,000)
//!   events against the same proof in a log of 1,000. The large log is written by SQL straight
//!   into the events table (synthetic leaf hashes, which proofs do not look into), and the service
//!   checkpoints it as it would a log it found at start-up.

use std::time::{Duration, Instant};

use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{Authed, TestApp, channel_to};
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::processes::{MachineCpu, cpu_time};

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

/// One side's window per round.
const WINDOW: Duration = Duration::from_secs(2);
/// Rounds per row, the service and the reference alternating.
const ROUNDS: usize = 3;

fn env_size(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Numbers the service's events as the reference numbers its rows (`items/<n>` and `req-<n>`, each
/// new), so that both sides' indexes take keys of the same shape.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn event() -> audit::AuditEvent {
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "bench".into(), roles: vec!["service".into()] }),
        action: "bench.append".into(),
        resource: format!("items/{i}"),
        result: audit::AuditResult::Success as i32,
        request_id: format!("req-{i}"),
        ..Default::default()
    }
}

/// One caller of a row: the service through its API, or a connection inserting into the reference
/// table.
#[derive(Clone)]
enum Caller {
    /// Appends through the service: `Append` for one event per call, else `AppendBatch`.
    Service(AuditServiceClient<Authed>),
    /// Inserts into the reference table, one autocommitted statement per call; `next` hands out
    /// sequence numbers.
    Plain(
        std::sync::Arc<tokio_postgres::Client>,
        tokio_postgres::Statement,
        std::sync::Arc<std::sync::atomic::AtomicI64>,
    ),
}

impl Caller {
    /// One call of `batch` events.
    async fn call(&mut self, batch: usize) {
        match self {
            Caller::Service(client) if batch == 1 => {
                client.append(audit::AppendRequest { event: Some(event()) }).await.expect("append");
            }
            Caller::Service(client) => {
                let events = (0..batch).map(|_| event()).collect();
                client.append_batch(audit::AppendBatchRequest { events }).await.expect("batch");
            }
            Caller::Plain(client, insert, next) => {
                let first = next.fetch_add(batch as i64, std::sync::atomic::Ordering::Relaxed);
                let sequences: Vec<i64> = (first..first + batch as i64).collect();
                client.execute(&*insert, &[&sequences]).await.expect("plain insert");
            }
        }
    }
}

/// Events per second done by `callers` calling at once for one window, `batch` events per call.
async fn rate(callers: Vec<Caller>, batch: usize) -> f64 {
    let started = Instant::now();
    let deadline = started + WINDOW;
    let workers: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    caller.call(batch).await;
                    done += batch as u64;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// The reference table: the events table's shape without its triggers.
const PLAIN: &str = "CREATE TABLE IF NOT EXISTS public.plain_events (LIKE audit.events INCLUDING ALL)";

/// One plain INSERT of `n` rows shaped like stored events (the same columns and sizes as the
/// service writes: 32-byte hashes, a JSON metadata object, encoding 2).
const PLAIN_INSERT: &str = "
INSERT INTO public.plain_events (sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action,
    resource, result, request_id, trace_id, metadata, leaf_hash, chain_hash, encoding, appender_subject,
    appender_credential, received_at)
SELECT s, gen_random_uuid(), now(), 'bench', ARRAY['service'], '', 'bench.append', 'items/' || s, 1,
       'req-' || s, '', '{}'::jsonb, sha256(int8send(s)), sha256(int8send(-s)), 2, 'bench', 'token:bench', now()
FROM unnest($1::bigint[]) AS s";

/// The reference's callers: `clients` connections with the insert prepared on each.
async fn plain(
    connections: &[std::sync::Arc<tokio_postgres::Client>],
    clients: usize,
    next: &std::sync::Arc<std::sync::atomic::AtomicI64>,
) -> Vec<Caller> {
    let mut callers = Vec::with_capacity(clients);
    for client in &connections[..clients] {
        let insert = client.prepare(PLAIN_INSERT).await.expect("prepare");
        callers.push(Caller::Plain(client.clone(), insert, next.clone()));
    }
    callers
}

/// The audit service's client, as an operator.
fn client_of(app: &TestApp) -> AuditServiceClient<Authed> {
    AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&operator_token()))
        .max_decoding_message_size(64 * 1024 * 1024)
}

/// The high method limits this bench needs at the audit port (it measures appends and proofs, not
/// refusals).
async fn spawn() -> TestApp {
    let high = prfix_runtime::ratelimit::Quota { per_minute: 60_000_000, burst: 1_000_000 };
    prfix_tests::app::spawn_app_tuned(
        |common| {
            common.service_limits.internal = high;
            common.service_limits.default = high;
        },
        |audit| audit.audit.database_pool_size = prfix_audit::Settings::default().audit.database_pool_size,
        |_| {},
        |_| {},
    )
    .await
}

/// The rows: (label, clients, events per call).
const ROWS: [(&str, usize, usize); 6] = [
    ("Append, 1 client          ", 1, 1),
    ("Append, 16 clients        ", 16, 1),
    ("Append, 64 clients        ", 64, 1),
    ("AppendBatch(100), 1 client", 1, 100),
    ("AppendBatch(100), 16      ", 16, 100),
    ("AppendBatch(100), 64      ", 64, 100),
];

/// Each row's service and reference rates (summed over the rounds) as (service, plain).
async fn measure(
    client: &AuditServiceClient<Authed>,
    connections: &[std::sync::Arc<tokio_postgres::Client>],
    next: &std::sync::Arc<std::sync::atomic::AtomicI64>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (label, clients, batch) in ROWS {
        let (mut ours, mut theirs) = (0.0, 0.0);
        for _ in 0..ROUNDS {
            ours += rate(vec![Caller::Service(client.clone()); clients], batch).await;
            theirs += rate(plain(connections, clients, next).await, batch).await;
        }
        let (ours, theirs) = (ours / ROUNDS as f64, theirs / ROUNDS as f64);
        println!("  {label}: {ours:>9.0} events/s vs plain INSERT {theirs:>9.0} = {:.2}x", ours / theirs);
        out.push((ours, theirs));
    }
    out
}

/// One row (`append`, `batch`, or their references `plain` and `plain-batch`) at
/// `PRFIX_BENCH_PROFILE_CLIENTS` clients (64 by default, at most 64, as many as the reference has
/// connections) for `PRFIX_BENCH_PROFILE_SECS` (30 by default), for a profiler attached to the bench process or
/// to the whole machine (`perf record -a`: Postgres works for both sides): `PRFIX_BENCH_PROFILE=batch
/// cargo bench -p prfix-tests --bench audit_throughput`. It prints the events per second, then the
/// CPU per event of the bench process, of the whole machine (`/proc/stat`) and of Postgres, and the
/// share of the cores left idle: a row that leaves cores idle waits (on the writer's cycle, a
/// commit) rather than works.
async fn profile(
    client: &AuditServiceClient<Authed>,
    connections: &[std::sync::Arc<tokio_postgres::Client>],
    next: &std::sync::Arc<std::sync::atomic::AtomicI64>,
    target: &str,
) {
    let secs: u64 = std::env::var("PRFIX_BENCH_PROFILE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let (service, batch) = match target {
        "append" => (true, 1),
        "batch" => (true, 100),
        "plain" => (false, 1),
        "plain-batch" => (false, 100),
        other => panic!("PRFIX_BENCH_PROFILE={other}: expected `append`, `batch`, `plain` or `plain-batch`"),
    };
    let clients = usize::try_from(env_size("PRFIX_BENCH_PROFILE_CLIENTS", 64)).unwrap_or(64).clamp(1, 64);
    let callers = || async {
        if service { vec![Caller::Service(client.clone()); clients] } else { plain(connections, clients, next).await }
    };
    rate(callers().await, batch).await;
    println!("profiling: {target} at {clients} clients for {secs} s in process {}", std::process::id());
    let (mut sum, windows) = (0.0, secs.div_ceil(WINDOW.as_secs()));
    let own = || cpu_time("self").expect("the bench process's CPU time");
    let (own_before, before) = (own(), MachineCpu::now());
    for _ in 0..windows {
        sum += rate(callers().await, batch).await;
    }
    let (own_used, used) = (own() - own_before, MachineCpu::now().since(&before));
    // Each window's events are its rate over its length.
    let events = sum * WINDOW.as_secs_f64();
    let per_event = |cpu: Duration| cpu.as_secs_f64() * 1e6 / events;
    println!("{target}: {:.0} events/s", sum / windows as f64);
    println!(
        "CPU per event: bench process {:.1} µs; machine {:.1} µs (Postgres {:.1} µs of it); {:.0}% of the cores idle",
        per_event(own_used),
        per_event(used.busy),
        per_event(used.postgres),
        used.idle_percent()
    );
}

/// Events in the log of `app`.
async fn stored(app: &TestApp) -> i64 {
    let db = app.db.connect().await;
    db.query_one("SELECT coalesce(max(sequence), 0) FROM audit.events", &[]).await.expect("head").get(0)
}

/// Fills the log of `app` to `size` events with batches of 1,000 from 8 callers.
async fn fill(app: &TestApp, client: &AuditServiceClient<Authed>, size: i64) {
    let remaining = size - stored(app).await;
    if remaining <= 0 {
        println!("  (the log holds {} events already)", size - remaining);
        return;
    }
    let took = prfix_tests::audit_fill::fill(client, |_| event(), remaining as u64).await.as_secs_f64();
    println!(
        "  (filled {remaining} events in {took:.1} s = {:.0} events/s with batches of 1,000)",
        remaining as f64 / took
    );
}

/// The newest checkpoint's size (0: none yet).
async fn checkpointed(client: &AuditServiceClient<Authed>) -> i64 {
    match client.clone().get_checkpoint(audit::GetCheckpointRequest::default()).await {
        Ok(answer) => answer.into_inner().checkpoint.map_or(0, |c| c.tree_size),
        Err(_) => 0,
    }
}

/// The size of a checkpoint made now over the whole log (Verify exports the log, which signs one
/// first).
async fn checkpoint_now(client: &AuditServiceClient<Authed>) -> i64 {
    let verdict = client.clone().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok, "the log verifies: {:?}", verdict.problems.first());
    checkpointed(client).await
}

/// Median time of `calls` inclusion proofs of event 1 at `tree_size`.
async fn proof_time(client: &AuditServiceClient<Authed>, tree_size: i64, calls: usize) -> Duration {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let proof = client
            .clone()
            .get_inclusion_proof(audit::GetInclusionProofRequest { sequence: 1, tree_size })
            .await
            .expect("inclusion proof");
        times.push(started.elapsed());
        assert_eq!(proof.into_inner().tree_size, tree_size);
    }
    times.sort();
    times[times.len() / 2]
}

/// Writes `size` synthetic events straight into the events table, in steps of a million.
async fn synthetic_log(app: &TestApp, size: i64) {
    let db = app.db.connect().await;
    let started = Instant::now();
    let mut at = 0;
    while at < size {
        let to = (at + 1_000_000).min(size);
        db.execute(
            "INSERT INTO audit.events (sequence, event_id, occurred_at, actor_subject, action, resource, result,
                                       leaf_hash, chain_hash, encoding)
             SELECT g, ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, now(), 'bench',
                    'bench.synthetic', '', 1, sha256(int8send(g)), sha256(int8send(-g)), 1
             FROM generate_series($1::bigint, $2::bigint) AS g",
            &[&(at + 1), &to],
        )
        .await
        .expect("synthetic events");
        at = to;
    }
    println!("  (wrote {size} synthetic events in {:.1} s)", started.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    let log_events = env_size("PRFIX_BENCH_LOG_EVENTS", 1_000_000);
    let proof_events = env_size("PRFIX_BENCH_PROOF_EVENTS", 10_000_000);

    let app = spawn().await;
    let client = client_of(&app);
    let db = app.db.connect().await;
    db.batch_execute(PLAIN).await.expect("reference table");
    let mut connections = Vec::new();
    for _ in 0..64 {
        connections.push(std::sync::Arc::new(app.db.connect().await));
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1));

    if let Ok(target) = std::env::var("PRFIX_BENCH_PROFILE") {
        return profile(&client, &connections, &next, &target).await;
    }
    println!("audit appends vs plain INSERTs into a copy of the events table, {ROUNDS} rounds of {WINDOW:?} each");
    println!("empty log:");
    let empty = measure(&client, &connections, &next).await;

    println!("log of {log_events} events:");
    fill(&app, &client, log_events).await;
    let large = measure(&client, &connections, &next).await;
    println!("large log against empty log (each as a ratio of its plain INSERTs; 1.00x: no slower):");
    for ((label, _, _), ((e_ours, e_plain), (l_ours, l_plain))) in ROWS.iter().zip(empty.iter().zip(&large)) {
        println!("  {label}: {:.2}x", (l_ours / l_plain) / (e_ours / e_plain));
    }
    drop(connections);
    drop(app);

    println!("inclusion proof of event 1: log of {proof_events} events vs log of 1,000");
    let small = spawn().await;
    let small_client = client_of(&small);
    fill(&small, &small_client, 1_000).await;
    let small_size = checkpoint_now(&small_client).await;
    let big = spawn().await;
    let big_client = client_of(&big);
    synthetic_log(&big, proof_events).await;
    let started = Instant::now();
    // The service checkpoints the log it finds within its checkpoint interval.
    while checkpointed(&big_client).await < proof_events {
        assert!(started.elapsed() < Duration::from_secs(900), "no checkpoint of the large log after 15 minutes");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("  (first checkpoint of the large log after {:.1} s)", started.elapsed().as_secs_f64());
    let (mut at_small, mut at_big) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        at_small += proof_time(&small_client, small_size, 200).await;
        at_big += proof_time(&big_client, proof_events, 200).await;
    }
    let (at_small, at_big) = (at_small / ROUNDS as u32, at_big / ROUNDS as u32);
    println!(
        "  median {:.3} ms at {proof_events} vs {:.3} ms at {small_size}: the large log's proof costs {:.2}x",
        at_big.as_secs_f64() * 1e3,
        at_small.as_secs_f64() * 1e3,
        at_big.as_secs_f64() / at_small.as_secs_f64()
    );
}
