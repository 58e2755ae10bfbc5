//! Group commit of outbox records: records queued by concurrent calls are inserted together, one
//! multi-row INSERT (one round trip, one commit) per group, and each caller is answered once its
//! record is committed. Nothing is lost that a caller was told is stored, and a caller is answered
//! only after the commit: a crash loses no acknowledged record, as with an INSERT per record, at
//! the cost of one commit per group rather than per call.
//!
//! The outbox bound is kept as a counter rather than counted per insert: this process adds what it
//! inserts and the relay subtracts what it delivers; the table is counted again every few seconds
//! (other replicas insert and deliver too) and after any error.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

/// Most records in one INSERT.
const MAX_GROUP: usize = 1_000;
/// Records waiting for the committer at most (callers wait beyond that).
const QUEUE: usize = 8_192;
/// How long the counter is trusted before the table is counted again.
const RECOUNT: Duration = Duration::from_secs(5);

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

type Job = (Vec<u8>, oneshot::Sender<Queued>);

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

/// The handle records are queued through.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer of `table` (in the pool's schema), bounded at `max_pending` records.
    pub(crate) fn start(pool: Pool, table: &'static str, max_pending: i64, pending: Arc<Pending>) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
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
                    let payloads: Vec<&[u8]> = group[..room].iter().map(|(p, _)| p.as_slice()).collect();
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
        });
        Self { jobs }
    }

    /// Queues `payload` and waits until it is committed (or refused).
    pub(crate) async fn queue(&self, payload: Vec<u8>) -> Queued {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send((payload, reply)).await.is_err() {
            return Queued::Failed("the outbox committer stopped".to_owned());
        }
        answer.await.unwrap_or_else(|_| Queued::Failed("the outbox committer stopped".to_owned()))
    }
}
