//! Filling an audit log for the benches: many events, fast, through the service's own API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;

use crate::app::Authed;

/// Appends events `0..count` (made by `event`) through `client` in batches of 1,000 from 8 callers;
/// returns the time it took.
pub async fn fill(client: &AuditServiceClient<Authed>, event: fn(u64) -> audit::AuditEvent, count: u64) -> Duration {
    let started = Instant::now();
    let calls = count.div_ceil(1_000);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let call = next.fetch_add(1, Ordering::Relaxed);
                    if call >= calls {
                        break;
                    }
                    let first = call * 1_000;
                    let events = (first..(first + 1_000).min(count)).map(event).collect();
                    client.append_batch(audit::AppendBatchRequest { events }).await.expect("the log is filled");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a filler finishes");
    }
    started.elapsed()
}
