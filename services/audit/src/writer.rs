//! Group commit: concurrent appends are queued and written together, many callers' batches in one
//! transaction, so that a crowd of callers does not mean a crowd of round trips under the append lock.
//! Each caller gets the results of its own events; a failed transaction fails every caller in it (all
//! may retry: the event id makes retries safe).

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use crate::store::{self, Appended, AuditError, Submission};

/// Most events written in one transaction.
const MAX_GROUP_EVENTS: usize = 2_000;
/// Callers waiting at most.
const QUEUE: usize = 1_024;

struct Job {
    events: Vec<Submission>,
    reply: oneshot::Sender<Result<Vec<Appended>, AuditError>>,
}

/// The handle callers append through.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task for the log in `pool`.
    pub fn start(pool: Pool) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut group = vec![first];
                let mut count = group[0].events.len();
                while count < MAX_GROUP_EVENTS {
                    match queue.try_recv() {
                        Ok(job) => {
                            count += job.events.len();
                            group.push(job);
                        }
                        Err(_) => break,
                    }
                }
                // Callers that went away before their turn need no write.
                group.retain(|job| !job.reply.is_closed());
                if group.is_empty() {
                    continue;
                }
                let all: Vec<Submission> = group.iter().flat_map(|job| job.events.iter().cloned()).collect();
                match store::append_checked(&pool, &all).await {
                    Ok(results) => {
                        let metrics = &prfix_runtime::metrics::METRICS;
                        metrics.audit_batch_size.observe(all.len() as f64);
                        metrics.audit_appends.inc_by(all.len() as u64);
                        let mut results = results.into_iter();
                        for job in group {
                            let mine: Vec<Appended> = results.by_ref().take(job.events.len()).collect();
                            let _ = job.reply.send(Ok(mine));
                        }
                    }
                    Err(error) => {
                        let reason = prfix_runtime::error::chain(&error);
                        tracing::warn!(error = %reason, callers = group.len(), "group append failed");
                        for job in group {
                            let _ = job.reply.send(Err(AuditError::Group(reason.clone(), error.is_unavailable())));
                        }
                    }
                }
            }
        });
        Self { jobs }
    }

    /// Appends `events` with their appenders (checked first, so one caller's bad batch fails only
    /// that caller). An empty list stores nothing.
    pub async fn append(&self, events: Vec<Submission>) -> Result<Vec<Appended>, AuditError> {
        store::check_batch(&events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| AuditError::Group("the writer stopped".to_owned(), true))?;
        answer.await.map_err(|_| AuditError::Group("the writer stopped".to_owned(), true))?
    }
}
