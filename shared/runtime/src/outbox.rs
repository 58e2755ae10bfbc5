//! Audit delivery through an outbox table: records are written to Postgres (durably, in the same
//! transaction as what they record where there is one) and a relay appends them to the audit
//! service in batches, backing off while it is down. Redelivery is safe: each record's event id is
//! the audit log's idempotency key. The table has columns `id bigserial`, `payload bytea` (an
//! encoded `AuditEvent`), `attempts int`, `next_attempt_at timestamptz`.
//!
//! The audit service refuses an event whose time is further from its receive time than its allowed
//! clock skew. A record that waited in the outbox longer than that (the audit service was down) is
//! sent again once, stamped with the time of sending and its original time kept in its metadata as
//! `queued_time`: the log's time is one the log can vouch for, and the claim is kept beside it. A
//! record refused otherwise can never be appended; it is dropped with an error log and a count.
//! A malformed record makes the audit service refuse its whole batch; the relay then sends that
//! batch's records one at a time, so the malformed one is refused (and dropped) alone and does not
//! hold back every record after it. When every record is refused alone, the refusal is not about
//! one record and they all wait for a later attempt; a record that does not decode is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use prfix_proto::audit::v1 as pb;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::outbox_group::{Committer, Pending, Queued};

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
    /// Records the audit service refused for good (logged with their content).
    pub dropped_refused: AtomicU64,
}

/// Writes records into `table` (a table of the pool's schema) unless `max_pending` are waiting.
#[derive(Clone)]
pub struct Outbox {
    pool: Pool,
    table: &'static str,
    max_pending: i64,
    /// Records waiting in the table, as far as this process knows (the bound's counter).
    pending: Arc<Pending>,
    /// Inserts records in groups; started on first use (inside the runtime).
    committer: Arc<std::sync::OnceLock<Committer>>,
    /// Counters.
    pub stats: Arc<OutboxStats>,
}

impl Outbox {
    /// An outbox in `table`, holding at most `max_pending` undelivered records.
    pub fn new(pool: Pool, table: &'static str, max_pending: i64) -> Self {
        Self {
            pool,
            table,
            max_pending,
            pending: Arc::default(),
            committer: Arc::default(),
            stats: Arc::new(OutboxStats::default()),
        }
    }

    /// Queues `event` and returns once it is committed, in one INSERT with the records of
    /// concurrent callers (`crate::outbox_group`). When the outbox is full the record is refused
    /// with an error log and a count; a database failure is logged with the record's content.
    pub async fn enqueue(&self, event: &pb::AuditEvent) {
        let committer = self
            .committer
            .get_or_init(|| Committer::start(self.pool.clone(), self.table, self.max_pending, self.pending.clone()));
        match committer.queue(event.encode_to_vec()).await {
            Queued::Stored => {}
            Queued::Full => {
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
            Queued::Failed(error) => {
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
        // The rows sent, with their payloads: a refused record is decoded again from its payload
        // (refusals are rare; the batch is not copied for them).
        let mut sent = Vec::with_capacity(rows.len());
        for row in &rows {
            let payload: &[u8] = row.get(1);
            match pb::AuditEvent::decode(payload) {
                Ok(event) => {
                    sent.push((row.get::<_, i64>(0), payload));
                    events.push(event);
                }
                Err(e) => {
                    self.stats.dropped_refused.fetch_add(1, Ordering::Relaxed);
                    let id: i64 = row.get(0);
                    tracing::error!(error = %e, id, table = self.table, "an outbox record does not decode: dropped");
                }
            }
        }
        // Each record's result, and whether it was refused as malformed (never sent again).
        let results: Vec<(pb::AppendResult, bool)> = if events.is_empty() {
            // Every due record was undecodable: nothing to send; they are all deleted below.
            Vec::new()
        } else {
            let token = tokens.token().await?;
            let outcome = match append(client, &token, events).await {
                Ok(results) => Ok(results.into_iter().map(|r| (r, false)).collect()),
                Err(status) if status.code() == tonic::Code::InvalidArgument && sent.len() > 1 => {
                    one_by_one(client, &token, &sent, status).await
                }
                Err(status) => Err(status),
            };
            match outcome {
                Ok(results) => results,
                Err(status) => return Err(retry_later(tx, self.table, &ids, &status).await),
            }
        };
        let mut resend = Vec::new();
        for ((id, payload), (result, malformed)) in sent.iter().zip(&results) {
            if result.refusal_code == 0 {
                continue;
            }
            let event = pb::AuditEvent::decode(*payload).map_err(|e| e.to_string())?;
            match if *malformed { None } else { restamped(&event, result) } {
                Some(again) => resend.push((*id, again.encode_to_vec())),
                None => {
                    self.stats.dropped_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        refusal = %result.refusal,
                        code = result.refusal_code,
                        event_id = %event.event_id,
                        action = %event.action,
                        actor = %event.actor.as_ref().map(|a| a.subject.as_str()).unwrap_or(""),
                        request_id = %event.request_id,
                        "the audit service refused an outbox record for good: dropped"
                    );
                }
            }
        }
        let kept: Vec<i64> = resend.iter().map(|(id, _)| *id).collect();
        for (id, payload) in &resend {
            tx.execute(
                &format!("UPDATE {} SET payload = $2, next_attempt_at = now() WHERE id = $1", self.table),
                &[id, payload],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.execute(&format!("DELETE FROM {} WHERE id = ANY($1) AND NOT id = ANY($2)", self.table), &[&ids, &kept])
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        // Every row not kept left the table; only those the service took were delivered.
        self.pending.delivered((ids.len() - kept.len()) as u64);
        Ok(results.iter().filter(|(result, _)| result.refusal_code == 0).count() as u64)
    }
}

/// Appends `events` with the bearer `token`: each event's result.
async fn append(
    client: &mut AuditServiceClient<Channel>,
    token: &str,
    events: Vec<pb::AuditEvent>,
) -> Result<Vec<pb::AppendResult>, tonic::Status> {
    let mut request = tonic::Request::new(pb::AppendBatchRequest { events });
    request.set_timeout(Duration::from_secs(10));
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::unauthenticated("the relay's token is not a header value"))?;
    request.metadata_mut().insert("authorization", bearer);
    Ok(client.append_batch(request).await?.into_inner().results)
}

/// Sends the records of a batch refused whole (`refused`: a malformed record fails its batch) one
/// at a time, so that one bad record is refused by itself rather than holding back every record
/// after it: each record's result, and whether it was refused as malformed. When every record is
/// refused alone, the refusal is not about one record (the relay's own credential, say) and it is
/// `refused` again: they all wait for a later attempt, as for any failure. (A lone record refused
/// whole is never sent here: it waits until it is sent beside one the service takes.)
async fn one_by_one(
    client: &mut AuditServiceClient<Channel>,
    token: &str,
    sent: &[(i64, &[u8])],
    refused: tonic::Status,
) -> Result<Vec<(pb::AppendResult, bool)>, tonic::Status> {
    let mut results = Vec::with_capacity(sent.len());
    for (_, payload) in sent {
        let event = pb::AuditEvent::decode(*payload).map_err(|e| tonic::Status::internal(e.to_string()))?;
        match append(client, token, vec![event]).await {
            Ok(one) if one.len() == 1 => results.extend(one.into_iter().map(|r| (r, false))),
            Ok(other) => {
                return Err(tonic::Status::internal(format!(
                    "the audit service answered one event with {} results",
                    other.len()
                )));
            }
            Err(alone) if alone.code() == tonic::Code::InvalidArgument => {
                let refusal = pb::AppendResult {
                    refusal_code: alone.code() as i32,
                    refusal: alone.message().to_owned(),
                    ..Default::default()
                };
                results.push((refusal, true));
            }
            Err(other) => return Err(other),
        }
    }
    if results.iter().all(|(_, malformed)| *malformed) {
        return Err(refused);
    }
    Ok(results)
}

/// Puts the records `ids` back for a later attempt, each after a longer pause than the last; the
/// error to report is `status`'s.
async fn retry_later(
    tx: deadpool_postgres::Transaction<'_>,
    table: &str,
    ids: &[i64],
    status: &tonic::Status,
) -> String {
    let _ = tx
        .execute(
            &format!(
                "UPDATE {table} SET attempts = attempts + 1,
                        next_attempt_at = now() + least(interval '30 seconds', interval '200 milliseconds' * power(2, least(attempts, 8)))
                 WHERE id = ANY($1)"
            ),
            &[&ids],
        )
        .await;
    let _ = tx.commit().await;
    format!("{:?}: {}", status.code(), status.message())
}

/// The record to send again after the audit service refused `event` as `result` says: for a time
/// outside its clock skew (INVALID_ARGUMENT), once, stamped now with the original time kept as
/// `queued_time` in its metadata; `None` when it cannot be appended at all.
fn restamped(event: &pb::AuditEvent, result: &pb::AppendResult) -> Option<pb::AuditEvent> {
    use prost_types::value::Kind;
    if result.refusal_code != tonic::Code::InvalidArgument as i32 {
        return None;
    }
    let mut again = event.clone();
    let metadata = again.metadata.get_or_insert_with(Default::default);
    if metadata.fields.contains_key("queued_time") {
        return None;
    }
    let original = event
        .time
        .as_ref()
        .and_then(crate::time::from_timestamp)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    metadata.fields.insert("queued_time".to_owned(), prost_types::Value { kind: Some(Kind::StringValue(original)) });
    again.time = Some(crate::time::to_timestamp(chrono::Utc::now()));
    Some(again)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_refused_for_its_time_is_restamped_once_and_others_are_not() {
        let event = pb::AuditEvent {
            event_id: "e-1".into(),
            time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            ..Default::default()
        };
        let skew = pb::AppendResult { refusal_code: tonic::Code::InvalidArgument as i32, ..Default::default() };
        let again = restamped(&event, &skew).expect("sent again");
        let queued = again.metadata.as_ref().and_then(|m| m.fields.get("queued_time")).and_then(|v| v.kind.clone());
        assert_eq!(queued, Some(prost_types::value::Kind::StringValue("2023-11-14T22:13:20.000000Z".into())));
        assert!(again.time.as_ref().is_some_and(|t| t.seconds > 1_700_000_000));
        assert_eq!(restamped(&again, &skew), None, "only once");
        let denied = pb::AppendResult { refusal_code: tonic::Code::PermissionDenied as i32, ..Default::default() };
        assert_eq!(restamped(&event, &denied), None);
    }
}
