//! Group commit of outbox records: records queued by concurrent calls are stored together and each
//! caller is answered once its record is committed. Nothing is lost that a caller was told is
//! stored, and a caller is answered only after the commit: a crash loses no acknowledged record.
//!
//! Where the outbox can reach the audit service ([`Direct`]), a group goes straight to the audit
//! log first: one AppendBatch of the records as they were encoded, answered once the log has
//! committed them. Only what that does not take (the audit service is down, slow or refuses a
//! record) is inserted into the outbox table, one multi-row INSERT (one round trip, one commit) per
//! group, for the relay to deliver later. A record the log committed but whose answer was lost
//! (a timeout) goes to the outbox too; the relay's append of it again is harmless, since the event
//! id is the log's idempotency key. After a failed direct append, groups go to the outbox for a
//! while before the audit service is tried again, so an outage costs the calls one failed attempt,
//! not one per group.
//!
//! The outbox bound is kept as a counter rather than counted per insert: this process adds what it
//! inserts and the relay subtracts what it delivers; the table is counted again every few seconds
//! (other replicas insert and deliver too) and after any error.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_postgres::Pool;
use prfix_proto::audit::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::outbox::TokenSource;

/// Most records in one INSERT.
const MAX_GROUP: usize = 1_000;
/// Records waiting for the committer at most (callers wait beyond that).
const QUEUE: usize = 8_192;
/// How long the counter is trusted before the table is counted again.
const RECOUNT: Duration = Duration::from_secs(5);
/// How long a caller waits for a direct append before its record goes to the outbox instead.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long groups go to the outbox after a failed direct append.
const DIRECT_PAUSE: Duration = Duration::from_secs(5);

/// What became of a queued record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Committed.
    Stored,
    /// Refused: the outbox holds its maximum.
    Full,
    /// The insert failed.
    Failed(String),
}

type Job = (Bytes, oneshot::Sender<Queued>);

/// The records waiting in the table as this process knows them (`-1`: unknown, count again).
#[derive(Debug)]
pub(crate) struct Pending(AtomicI64);

impl Default for Pending {
    fn default() -> Self {
        Self(AtomicI64::new(-1))
    }
}

impl Pending {
    /// `n` records left the table (delivered).
    pub(crate) fn delivered(&self, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let _ =
            self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(if v < 0 { v } else { (v - n).max(0) }));
    }
}

/// The audit service, reached straight from the committer, with the credential to append.
#[derive(Clone)]
pub(crate) struct Direct {
    /// The channel to the audit service.
    pub(crate) channel: Channel,
    /// Where the bearer token comes from.
    pub(crate) tokens: Arc<dyn TokenSource>,
}

/// `AppendBatchRequest` with its events already encoded: `repeated AuditEvent events = 1` is
/// length-delimited on the wire, as `repeated bytes` is, so the records go out as they were
/// encoded for the outbox, without decoding or copying them.
#[derive(Clone, PartialEq, prost::Message)]
struct EncodedBatch {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    events: Vec<Bytes>,
}

impl Direct {
    /// Appends `group`'s records: each record's result, in order.
    async fn append(&self, group: &[Job]) -> Result<Vec<pb::AppendResult>, String> {
        let token = self.tokens.token().await?;
        let mut request =
            tonic::Request::new(EncodedBatch { events: group.iter().map(|(payload, _)| payload.clone()).collect() });
        request.set_timeout(DIRECT_TIMEOUT);
        let bearer =
            format!("Bearer {token}").parse().map_err(|_| "the bearer token is not a header value".to_owned())?;
        request.metadata_mut().insert("authorization", bearer);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| format!("the audit service is not ready: {e}"))?;
        let codec = prfix_proto::codec::ProtoCodec::<EncodedBatch, pb::AppendBatchResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/prfix.audit.v1.AuditService/AppendBatch");
        let results = grpc
            .unary(request, path, codec)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .into_inner()
            .results;
        if results.len() != group.len() {
            return Err(format!("the audit service answered {} events with {} results", group.len(), results.len()));
        }
        Ok(results)
    }
}

/// The handle records are queued through.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer of `table` (in the pool's schema), bounded at `max_pending` records.
    /// Groups go to the audit log first when `direct` is given.
    pub(crate) fn start(
        pool: Pool,
        table: &'static str,
        max_pending: i64,
        pending: Arc<Pending>,
        direct: Option<Direct>,
    ) -> Self {
        let (to_table, table_queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(insert_groups(table_queue, pool, table, max_pending, pending));
        let Some(direct) = direct else { return Self { jobs: to_table } };
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(append_groups(queue, direct, to_table, table));
        Self { jobs }
    }

    /// Queues `payload` and waits until it is committed (or refused).
    pub(crate) async fn queue(&self, payload: Bytes) -> Queued {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send((payload, reply)).await.is_err() {
            return Queued::Failed("the outbox committer stopped".to_owned());
        }
        answer.await.unwrap_or_else(|_| Queued::Failed("the outbox committer stopped".to_owned()))
    }
}

/// Appends the groups of `queue` to the audit log, one at a time, and passes what the log did not
/// take to `to_table`. One append in flight: the next group gathers while it waits. (With two or
/// four in flight the audit service committed smaller groups, and an audited call cost 8 to 15%
/// more CPU for the same throughput.)
async fn append_groups(mut queue: mpsc::Receiver<Job>, direct: Direct, to_table: mpsc::Sender<Job>, table: &str) {
    let mut group: Vec<Job> = Vec::new();
    // Direct appends are not tried before this instant (after a failure).
    let mut paused_until = Instant::now();
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        if Instant::now() >= paused_until {
            match direct.append(&group).await {
                Ok(results) => {
                    // Those the log took are stored; a refused one goes to the outbox, whose relay
                    // restamps it or drops it with a log line.
                    let mut refused = Vec::new();
                    for (job, result) in group.drain(..).zip(results) {
                        if result.refusal_code == 0 {
                            let _ = job.1.send(Queued::Stored);
                        } else {
                            refused.push(job);
                        }
                    }
                    group = refused;
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        records = group.len(),
                        table,
                        "cannot append records to the audit log directly; they go to the outbox"
                    );
                    paused_until = Instant::now() + DIRECT_PAUSE;
                }
            }
        }
        for job in group.drain(..) {
            if let Err(mpsc::error::SendError((_, reply))) = to_table.send(job).await {
                let _ = reply.send(Queued::Failed("the outbox committer stopped".to_owned()));
            }
        }
    }
}

/// Inserts the records of `queue` into `table`, a group at a time, while the outbox has room.
async fn insert_groups(
    mut queue: mpsc::Receiver<Job>,
    pool: Pool,
    table: &'static str,
    max_pending: i64,
    pending: Arc<Pending>,
) {
    let insert = format!("INSERT INTO {table} (payload) SELECT unnest($1::bytea[])");
    let count = format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $1) pending");
    let mut counted = Instant::now();
    let mut group: Vec<Job> = Vec::new();
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let result = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let mut known = pending.0.load(Ordering::Relaxed);
            if known < 0 || counted.elapsed() > RECOUNT {
                known = client.query_one(&count, &[&max_pending]).await.map_err(|e| e.to_string())?.get(0);
                pending.0.store(known, Ordering::Relaxed);
                counted = Instant::now();
            }
            let room = usize::try_from((max_pending - known).max(0)).unwrap_or(0).min(group.len());
            let payloads: Vec<&[u8]> = group[..room].iter().map(|(p, _)| p.as_ref()).collect();
            if room > 0 {
                let statement = client.prepare_cached(&insert).await.map_err(|e| e.to_string())?;
                client.execute(&statement, &[&payloads]).await.map_err(|e| e.to_string())?;
                pending.0.fetch_add(i64::try_from(room).unwrap_or(i64::MAX), Ordering::Relaxed);
            }
            Ok::<usize, String>(room)
        }
        .await;
        match result {
            Ok(room) => {
                for (i, (_, reply)) in group.drain(..).enumerate() {
                    let _ = reply.send(if i < room { Queued::Stored } else { Queued::Full });
                }
            }
            Err(error) => {
                pending.0.store(-1, Ordering::Relaxed);
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Queued::Failed(error.clone()));
                }
            }
        }
    }
}
