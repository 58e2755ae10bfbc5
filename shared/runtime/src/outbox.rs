//! Audit delivery through an outbox table: records are written to Postgres (durably, in the same
//! transaction as what they record where there is one) and a relay appends them to the audit
//! service in batches, backing off while it is down. Redelivery is safe: each record's event id is
//! the audit log's idempotency key. The table has columns `id bigserial`, `payload bytea` (an
//! encoded `AuditEvent`), `attempts int`, `next_attempt_at timestamptz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use prfix_proto::audit::v1 as pb;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Records per AppendBatch.
const BATCH: i64 = 500;
/// Longest pause between attempts while the audit service is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the relay gets a bearer token of role `service`.
#[tonic::async_trait]
pub trait TokenSource: Send + Sync {
    /// A currently valid token.
    async fn token(&self) -> Result<String, String>;
}

/// A fixed bearer credential (an API key of a `service` user, which the gateway exchanges).
pub struct StaticToken(pub secrecy::SecretString);

#[tonic::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<String, String> {
        Ok(secrecy::ExposeSecret::expose_secret(&self.0).to_owned())
    }
}

/// Counters of the outbox (the sources of metrics).
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Records appended to the audit log.
    pub delivered: AtomicU64,
    /// Failed delivery attempts.
    pub failed_attempts: AtomicU64,
    /// Records refused because the outbox was full.
    pub dropped_full: AtomicU64,
}

/// Writes records into `table` (a table of the pool's schema) unless `max_pending` are waiting.
#[derive(Clone)]
pub struct Outbox {
    pool: Pool,
    table: &'static str,
    max_pending: i64,
    /// Counters.
    pub stats: Arc<OutboxStats>,
}

impl Outbox {
    /// An outbox in `table`, holding at most `max_pending` undelivered records.
    pub fn new(pool: Pool, table: &'static str, max_pending: i64) -> Self {
        Self { pool, table, max_pending, stats: Arc::new(OutboxStats::default()) }
    }

    /// Queues `event`. When the outbox is full the record is refused with an error log and a
    /// count; a database failure is logged with the record's content. Never blocks the caller
    /// for longer than one insert.
    pub async fn enqueue(&self, event: &pb::AuditEvent) {
        let result = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            let inserted = client
                .execute(
                    &format!(
                        "INSERT INTO {table} (payload)
                         SELECT $1 WHERE (SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $2) pending) < $2",
                        table = self.table
                    ),
                    &[&event.encode_to_vec(), &self.max_pending],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<u64, String>(inserted)
        }
        .await;
        match result {
            Ok(1) => {}
            Ok(_) => {
                self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    table = self.table,
                    max_pending = self.max_pending,
                    action = %event.action,
                    actor = %event.actor.as_ref().map(|a| a.subject.as_str()).unwrap_or(""),
                    request_id = %event.request_id,
                    "audit outbox is full: access record dropped (the audit service has been unreachable too long)"
                );
            }
            Err(error) => {
                self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, action = %event.action, request_id = %event.request_id, "cannot queue an access record");
            }
        }
    }

    /// Ships due records until `stop`: batches, backing off exponentially while delivery fails.
    pub async fn relay(self, channel: Channel, tokens: Arc<dyn TokenSource>, stop: CancellationToken) {
        let mut client = AuditServiceClient::new(channel);
        let mut backoff = Duration::from_millis(200);
        loop {
            let pause = match self.ship_once(&mut client, tokens.as_ref()).await {
                Ok(0) => Duration::from_millis(500),
                Ok(n) => {
                    self.stats.delivered.fetch_add(n, Ordering::Relaxed);
                    backoff = Duration::from_millis(200);
                    Duration::ZERO
                }
                Err(error) => {
                    self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "audit delivery failed; will retry");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn ship_once(
        &self,
        client: &mut AuditServiceClient<Channel>,
        tokens: &dyn TokenSource,
    ) -> Result<u64, String> {
        let mut db = self.pool.get().await.map_err(|e| e.to_string())?;
        let tx = db.transaction().await.map_err(|e| e.to_string())?;
        let rows = tx
            .query(
                &format!(
                    "SELECT id, payload FROM {} WHERE next_attempt_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    self.table
                ),
                &[&BATCH],
            )
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let payload: Vec<u8> = row.get(1);
            match pb::AuditEvent::decode(payload.as_slice()) {
                Ok(event) => events.push(event),
                Err(e) => tracing::error!(error = %e, "an outbox record does not decode; it is skipped"),
            }
        }
        let token = tokens.token().await?;
        let mut request = tonic::Request::new(pb::AppendBatchRequest { events });
        request.set_timeout(Duration::from_secs(10));
        let bearer = format!("Bearer {token}").parse().map_err(|_| "token is not a header value".to_owned())?;
        request.metadata_mut().insert("authorization", bearer);
        match client.append_batch(request).await {
            Ok(_) => {
                tx.execute(&format!("DELETE FROM {} WHERE id = ANY($1)", self.table), &[&ids])
                    .await
                    .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())?;
                Ok(ids.len() as u64)
            }
            Err(status) => {
                let _ = tx
                    .execute(
                        &format!(
                            "UPDATE {} SET attempts = attempts + 1,
                                    next_attempt_at = now() + least(interval '30 seconds', interval '200 milliseconds' * power(2, least(attempts, 8)))
                             WHERE id = ANY($1)",
                            self.table
                        ),
                        &[&ids],
                    )
                    .await;
                let _ = tx.commit().await;
                Err(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}
