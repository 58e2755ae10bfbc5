//! Group commit: concurrent appends are queued and written together, many callers' batches in one
//! statement (one round trip, committed on its own), so that a crowd of callers does not mean a
//! crowd of round trips; a large group is stored in slices over several connections at once and
//! committed in order (`crate::group`). The writer keeps its own connections and the log's head
//! (sequence and chain hash) between groups, and reads the head again only after an error or when
//! another writer moved it (its rows then collide on the sequence key and nothing is stored). Each
//! caller gets the results of its own events; a failed group fails every caller in it (all may
//! retry: the event id makes retries safe). A caller is answered only after its group committed:
//! nothing acknowledged is lost.

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use crate::group::{self, Head};
use crate::store::{self, Appended, AuditError, Submission};

/// Most events written in one statement.
const MAX_GROUP_EVENTS: usize = 2_000;
/// Callers waiting at most.
const QUEUE: usize = 1_024;
/// Attempts of a group whose head turned out stale.
const ATTEMPTS: usize = 3;
/// Longest a group waits for the callers of the last group to come back (only while fewer have).
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);
/// Most connections a group is stored over (half the pool at most).
const MAX_CONNECTIONS: usize = 4;

struct Job {
    events: Vec<Submission>,
    reply: oneshot::Sender<Result<Vec<Appended>, AuditError>>,
}

/// The handle callers append through.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// The writer task's connections and what it knows of the log.
struct State {
    pool: Pool,
    clients: Vec<deadpool_postgres::Object>,
    head: Option<Head>,
}

impl State {
    /// Stores `events`, reading the head first when it is not known.
    async fn store(&mut self, events: &[Submission]) -> Result<Vec<Appended>, AuditError> {
        let most = MAX_CONNECTIONS.min(self.pool.status().max_size / 2).max(1);
        let wanted = group::slices(events.len(), most).len();
        while self.clients.len() < wanted {
            match self.pool.get().await {
                Ok(client) => self.clients.push(client),
                // Fewer connections only means fewer slices.
                Err(_) if !self.clients.is_empty() => break,
                Err(error) => return Err(error.into()),
            }
        }
        let mut attempt = 0;
        let outcome = loop {
            let head = match self.head {
                Some(head) => head,
                None => match group::read_head(&self.clients[0]).await {
                    Ok(head) => head,
                    Err(error) => break Err(error),
                },
            };
            match group::append_group(&self.clients, head, events).await {
                Ok((results, next)) => {
                    self.head = Some(next);
                    break Ok(results);
                }
                Err(error) if error.is_collision() && attempt + 1 < ATTEMPTS => {
                    tracing::info!("another writer moved the log's head; reading it again");
                    self.head = None;
                    attempt += 1;
                }
                Err(error) => break Err(error),
            }
        };
        if outcome.is_err() {
            // The connections are kept only while they work; they leave the pool rather than go
            // back to it (a slice's transaction that could not be rolled back must not be reused).
            for client in self.clients.drain(..) {
                drop(deadpool_postgres::Object::take(client));
            }
            self.head = None;
        }
        outcome
    }
}

impl Writer {
    /// Starts the writer task for the log in `pool`.
    pub fn start(pool: Pool) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            let mut state = State { pool, clients: Vec::new(), head: None };
            // Callers in the last group: as many are expected back for the next one.
            let mut last_callers = 0;
            while let Some(first) = queue.recv().await {
                let mut group = vec![first];
                let mut count = group[0].events.len();
                // What is queued joins the group. The callers answered last time are on their way
                // back with their next events: while fewer have come, waiting a moment for them
                // makes one commit of what would be two.
                let gather = tokio::time::Instant::now() + GATHER;
                while count < MAX_GROUP_EVENTS {
                    let job = match queue.try_recv() {
                        Ok(job) => job,
                        Err(_) if group.len() < last_callers => {
                            match tokio::time::timeout_at(gather, queue.recv()).await {
                                Ok(Some(job)) => job,
                                Ok(None) | Err(_) => break,
                            }
                        }
                        Err(_) => break,
                    };
                    count += job.events.len();
                    group.push(job);
                }
                last_callers = group.len();
                // Callers that went away before their turn need no write.
                group.retain(|job| !job.reply.is_closed());
                if group.is_empty() {
                    continue;
                }
                let all: Vec<Submission> = group.iter().flat_map(|job| job.events.iter().cloned()).collect();
                match state.store(&all).await {
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
