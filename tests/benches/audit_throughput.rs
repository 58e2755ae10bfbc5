//! Appends per second (one client; 64 concurrent clients; batches of 100) and offline verification
//! speed, on this machine, against the test Postgres.
//!
//! Run: `cargo bench -p prfix-tests --bench audit_throughput`.

use std::time::{Duration, Instant};

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{line_from_proto, verify};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{Authed, channel_to};
use prfix_tests::auth::{Bearer, audit_key, operator_token};

const WINDOW: Duration = Duration::from_secs(5);

fn event(i: u64) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "bench".into(), roles: vec!["service".into()] }),
        action: "bench.append".into(),
        resource: format!("items/{i}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

async fn run(client: AuditServiceClient<Authed>, concurrency: usize, batch: usize) -> f64 {
    let deadline = Instant::now() + WINDOW;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut appended = 0u64;
                while Instant::now() < deadline {
                    if batch == 1 {
                        client.append(audit::AppendRequest { event: Some(event(w as u64)) }).await.expect("append");
                    } else {
                        let events = (0..batch as u64).map(event).collect();
                        client.append_batch(audit::AppendBatchRequest { events }).await.expect("batch");
                    }
                    appended += batch as u64;
                }
                appended
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    total as f64 / WINDOW.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // The audit service applies the method limits at its own port: high, so that the benchmark
    // measures appends rather than refusals.
    let high = prfix_runtime::ratelimit::Quota { per_minute: 60_000_000, burst: 1_000_000 };
    let app = prfix_tests::app::spawn_app_shared(|common| common.service_limits.internal = high, |_| {}, |_| {}).await;
    let client = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&operator_token()));
    println!("audit appends, direct to the audit service, {WINDOW:?} each");
    println!("  1 client, 1 event per call     : {:>9.0} events/s", run(client.clone(), 1, 1).await);
    println!("  64 clients, 1 event per call   : {:>9.0} events/s", run(client.clone(), 64, 1).await);
    println!("  4 clients, batches of 100      : {:>9.0} events/s", run(client.clone(), 4, 100).await);

    let mut stream =
        client.clone().export_events(audit::ExportEventsRequest::default()).await.expect("export").into_inner();
    let mut lines = Vec::new();
    while let Some(item) = stream.message().await.expect("stream") {
        lines.push(line_from_proto(item).expect("line"));
    }
    let key = VerifierKey::parse(&audit_key().verifier_key).expect("key");
    let started = Instant::now();
    let report = verify(&lines, std::slice::from_ref(&key));
    let took = started.elapsed();
    assert!(report.ok(), "{:?}", report.problems.first());
    println!(
        "offline verification: {} events, {} checkpoints in {:.3} s = {:.0} events/s",
        report.events,
        report.checkpoints,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64()
    );
}
