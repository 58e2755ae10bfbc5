//! Group commit: concurrent appends are queued and written together, many callers' batches in one
//! statement (one round trip, committed on its own), so that a crowd of callers does not mean a
//! crowd of round trips; a large group is stored in slices over several connections at once and
//! committed in order (`crate::group`). The writer keeps its own connections and the log's head
//! (sequence and chain hash) between groups, and reads the head again only after an error or when
//! another writer moved it (its rows then collide on the sequence key and nothing is stored). Each
//! caller gets the results of its own events; a failed group fails every caller in it (all may
//! retry: the event id makes retries safe). A caller is answered only after its group committed:
//! nothing acknowledged is lost.
//!
//! While a group is stored, the next one is gathered from the queue and planned (sequences and
//! hashes), a caller's events at a time as they arrive, after the head the stored group will leave:
//! Postgres does not wait between groups for the hashing of the callers that came while it stored. A plan made
//! after a head that did not come about (the group failed, or held events stored already) is
//! dropped, and the group planned again.

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use crate::group::{self, Head, Planned};
use crate::store::{self, Appended, AuditError, Submission};

/// Most events written in one statement.
const MAX_GROUP_EVENTS: usize = 2_000;
/// Callers waiting at most.
const QUEUE: usize = 1_024;
/// Attempts of a group whose head turned out stale.
const ATTEMPTS: usize = 3;
/// Longest a group waits for the callers of the last group to come back (only while fewer have).
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);
/// Events a group holds for it not to wait for more: a group this large is stored in slices over
/// several connections anyway, and waiting for the last group's callers would only leave Postgres
/// idle (with 16 callers of 100 events each, the wait took 1 ms of every 12 ms cycle).
const ENOUGH: usize = 2 * group::MIN_SLICE;
/// Most connections a group is stored over (half the pool at most).
const MAX_CONNECTIONS: usize = 4;

/// Where a caller is answered.
type Reply = oneshot::Sender<Result<Vec<Appended>, AuditError>>;

struct Job {
    events: Vec<Submission>,
    reply: Reply,
}

/// The jobs of one group: their events in order, and each caller's reply with its event count.
#[derive(Default)]
struct Gathered {
    events: Vec<Submission>,
    replies: Vec<(usize, Reply)>,
}

impl Gathered {
    fn push(&mut self, job: Job) {
        self.replies.push((job.events.len(), job.reply));
        self.events.extend(job.events);
    }

    fn full(&self) -> bool {
        self.events.len() >= MAX_GROUP_EVENTS
    }

    /// Leaves out callers that went away before their turn (their events need no write); false
    /// when there were none.
    fn drop_gone(&mut self) -> bool {
        if !self.replies.iter().any(|(_, reply)| reply.is_closed()) {
            return false;
        }
        let mut events = std::mem::take(&mut self.events).into_iter();
        for (count, reply) in std::mem::take(&mut self.replies) {
            let mine = events.by_ref().take(count);
            if reply.is_closed() {
                mine.for_each(drop);
            } else {
                self.events.extend(mine);
                self.replies.push((count, reply));
            }
        }
        true
    }

    /// Answers each caller with the results of its own events, or with the group's error.
    fn answer(self, outcome: Result<Vec<Appended>, AuditError>) {
        match outcome {
            Ok(results) => {
                let metrics = &prfix_runtime::metrics::METRICS;
                metrics.audit_batch_size.observe(self.events.len() as f64);
                metrics.audit_appends.inc_by(self.events.len() as u64);
                let mut results = results.into_iter();
                for (count, reply) in self.replies {
                    let _ = reply.send(Ok(results.by_ref().take(count).collect()));
                }
            }
            Err(error) => {
                let reason = prfix_runtime::error::chain(&error);
                tracing::warn!(error = %reason, callers = self.replies.len(), "group append failed");
                for (_, reply) in self.replies {
                    let _ = reply.send(Err(AuditError::Group(reason.clone(), error.is_unavailable())));
                }
            }
        }
    }
}

/// What is queued joins `group`, up to [`MAX_GROUP_EVENTS`]. The callers answered last time
/// (`last_callers` of them) are on their way back with their next events: while fewer have come
/// and the group is small, waiting a moment for them makes one commit of what would be two.
async fn gather(queue: &mut mpsc::Receiver<Job>, group: &mut Gathered, last_callers: usize) {
    let deadline = tokio::time::Instant::now() + GATHER;
    while !group.full() {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(_) if group.replies.len() < last_callers && group.events.len() < ENOUGH => {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(job)) => job,
                    Ok(None) | Err(_) => break,
                }
            }
            Err(_) => break,
        };
        group.push(job);
    }
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
    /// Stores `events` (planned already, when `planned` is given), reading the head first when it
    /// is not known.
    async fn store(
        &mut self,
        events: &[Submission],
        mut planned: Option<Planned>,
    ) -> Result<Vec<Appended>, AuditError> {
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
            match group::append_group(&self.clients, head, events, planned.take()).await {
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
            // The next group, gathered and planned while the last one was stored.
            let mut next = Gathered::default();
            let mut next_plan: Option<Planned> = None;
            let mut open = true;
            loop {
                if next.replies.is_empty() {
                    match queue.recv().await {
                        Some(job) => next.push(job),
                        None => return,
                    }
                }
                let mut group = std::mem::take(&mut next);
                // Kept only when made after the head the last group did leave.
                let mut planned = next_plan.take().filter(|p| state.head == Some(p.head()));
                gather(&mut queue, &mut group, last_callers).await;
                last_callers = group.replies.len();
                if group.drop_gone() {
                    planned = None;
                }
                if group.replies.is_empty() {
                    continue;
                }
                // What the last group's storing left unplanned (all of it, without a plan) is
                // planned here, after the head this group leaves, so that the next group can be
                // planned while this one is stored.
                let planned = match planned {
                    Some(mut planned) => {
                        planned.extend(&group.events[planned.len()..]);
                        Some(planned)
                    }
                    None => state.head.map(|head| group::plan_group(head, &group.events)),
                };
                let after = planned.as_ref().map(Planned::next);
                let outcome = {
                    let store = state.store(&group.events, planned);
                    tokio::pin!(store);
                    loop {
                        tokio::select! {
                            biased;
                            outcome = &mut store => break outcome,
                            job = queue.recv(), if open && !next.full() => match job {
                                Some(job) => {
                                    let start = next.events.len();
                                    next.push(job);
                                    if let Some(head) = after {
                                        next_plan
                                            .get_or_insert_with(|| Planned::after(head))
                                            .extend(&next.events[start..]);
                                    }
                                }
                                None => open = false,
                            },
                        }
                    }
                };
                group.answer(outcome);
                if !open && next.replies.is_empty() {
                    return;
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
