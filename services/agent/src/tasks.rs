//! Tasks in Postgres: creation (with its audit record in the same transaction), the queue workers
//! claim with `FOR UPDATE SKIP LOCKED` under a lease, events, and the end of a task.
//!
//! What must stay true: only the replica holding a task's lease writes its events and result (every
//! worker write checks `lease_owner`), so a replica that lost its lease cannot overwrite the work of
//! the one that took over; event sequences are taken under the task's row lock, so they have no gaps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1::AuditEvent;
use prfix_proto::prost::Message;
use prfix_runtime::error::{ErrorCode, ServiceError};
use prfix_runtime::time::to_timestamp;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::flags::TaskFlags;

mod forge;

pub use forge::{ForgeReviewCreated, create_forge_review, last_review, set_forge_head};

/// Task states as stored (`TaskState` numbers).
pub mod state {
    /// Waiting for a worker.
    pub const QUEUED: i16 = 1;
    /// Claimed under a lease.
    pub const RUNNING: i16 = 2;
    /// Finished with a result.
    pub const SUCCEEDED: i16 = 3;
    /// Finished with an error.
    pub const FAILED: i16 = 4;
    /// Stopped by a user.
    pub const CANCELLED: i16 = 5;
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// Identifier.
    pub task_id: Uuid,
    /// `TaskKind` number.
    pub kind: i16,
    /// `TaskState` number.
    pub state: i16,
    /// The user who created it (the key's owner when created with an API key).
    pub owner: String,
    /// The API key it was created with, if it was.
    pub api_key_id: Option<String>,
    /// The `prfix eval` run it belongs to, if it does.
    pub eval_run_id: Option<String>,
    /// Encoded `TaskResult`, once succeeded.
    pub result: Option<Vec<u8>>,
    /// Failure text.
    pub error: String,
    /// Times claimed.
    pub attempts: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// Final-state time.
    pub ended_at: Option<DateTime<Utc>>,
    /// The `traceparent` of the creating call (empty when it had none).
    pub traceparent: String,
    /// The flags it was created with.
    pub flags: TaskFlags,
    /// The pull request, for a review a forge's webhook started.
    pub forge: Option<pb::ForgePullRequest>,
}

impl TaskRow {
    /// Whether the task reached a final state.
    pub fn is_final(&self) -> bool {
        self.state >= state::SUCCEEDED
    }
}

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this state.
    pub state: Option<i16>,
    /// Only this kind.
    pub kind: Option<i16>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only tasks of this eval run.
    pub eval_run: Option<String>,
}

/// What can go wrong with tasks.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The request breaks a rule; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such task (or not the caller's).
    #[error("task {0} not found")]
    NotFound(Uuid),
    /// The task is in a state that does not allow the action.
    #[error("{0}")]
    WrongState(String),
    /// A limit on active tasks is reached.
    #[error("{0}")]
    Limit(String),
    /// Stored data does not decode.
    #[error("{0}")]
    Corrupt(String),
    /// No database session could be had.
    #[error("agent database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("agent database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

impl ServiceError for TaskError {
    fn code(&self) -> ErrorCode {
        match self {
            TaskError::Invalid(_) => ErrorCode::InvalidArgument,
            TaskError::NotFound(_) => ErrorCode::NotFound,
            TaskError::WrongState(_) => ErrorCode::FailedPrecondition,
            TaskError::Limit(_) => ErrorCode::ResourceExhausted,
            TaskError::Corrupt(_) => ErrorCode::Internal,
            TaskError::Pool(_) => ErrorCode::Unavailable,
            TaskError::Query(e) if e.is_closed() => ErrorCode::Unavailable,
            TaskError::Query(_) => ErrorCode::Internal,
        }
    }
}

const COLUMNS: &str = "task_id, kind, state, owner, result, error, attempts, created_at, started_at, ended_at, \
                       traceparent, api_key_id, flags, eval_run_id, forge, forge_repository, forge_number, \
                       forge_head_sha, forge_triggered_by, forge_author, forge_delivery_id";

/// The stored flags of a task; a value that does not read (written by a later version, say) is
/// logged and read as none, so the task stays readable.
fn flags_of(task_id: Uuid, value: serde_json::Value) -> TaskFlags {
    serde_json::from_value(value).unwrap_or_else(|e| {
        tracing::warn!(%task_id, error = %e, "the task's stored flags do not read; shown as none");
        TaskFlags::default()
    })
}

fn from_row(row: &Row) -> TaskRow {
    TaskRow {
        task_id: row.get(0),
        kind: row.get(1),
        state: row.get(2),
        owner: row.get(3),
        result: row.get(4),
        error: row.get(5),
        attempts: row.get(6),
        created_at: row.get(7),
        started_at: row.get(8),
        ended_at: row.get(9),
        traceparent: row.get(10),
        api_key_id: row.get(11),
        flags: flags_of(row.get(0), row.get(12)),
        eval_run_id: row.get(13),
        forge: forge::forge_of(row),
    }
}

/// One task.
pub async fn get(pool: &Pool, task_id: Uuid) -> Result<TaskRow, TaskError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM tasks WHERE task_id = $1"), &[&task_id])
        .await?
        .ok_or(TaskError::NotFound(task_id))?;
    Ok(from_row(&row))
}

/// The task `task_id` with the stored request it was created with (`None` for a task from a
/// forge, which has none worth showing): one read for GetTask, which shows the request's diff.
pub async fn get_with_request(pool: &Pool, task_id: Uuid) -> Result<(TaskRow, Option<Vec<u8>>), TaskError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS}, CASE WHEN forge IS NULL THEN request END AS stored_request FROM tasks WHERE task_id = $1"),
            &[&task_id],
        )
        .await?
        .ok_or(TaskError::NotFound(task_id))?;
    let request: Option<Vec<u8>> = row.try_get("stored_request")?;
    Ok((from_row(&row), request))
}

/// The unified diff of the change set in a stored `request` of a task of `kind`; empty for tasks
/// without one or a request that does not decode.
pub fn diff_of(kind: i16, request: Option<&[u8]>) -> String {
    use prost::Message as _;
    let Some(request) = request else { return String::new() };
    let change_set = match pb::TaskKind::try_from(i32::from(kind)) {
        Ok(pb::TaskKind::Review) => pb::CreateReviewRequest::decode(request).ok().and_then(|r| r.change_set),
        Ok(pb::TaskKind::Describe) => pb::CreateDescribeRequest::decode(request).ok().and_then(|r| r.change_set),
        Ok(pb::TaskKind::Fix) => pb::CreateFixRequest::decode(request).ok().and_then(|r| r.change_set),
        _ => None,
    };
    change_set.map(|c| c.diff).unwrap_or_default()
}

/// A page of tasks, newest first; `before` is the (created_at, task_id) of the last task of the
/// previous page.
pub async fn list(
    pool: &Pool,
    filter: &TaskFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TaskRow>, TaskError> {
    let client = pool.get().await?;
    let (before_time, before_id) = before.map_or((None, None), |(t, id)| (Some(t), Some(id)));
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM tasks
                 WHERE ($1::smallint IS NULL OR state = $1)
                   AND ($2::smallint IS NULL OR kind = $2)
                   AND ($3::text IS NULL OR owner = $3)
                   AND ($4::timestamptz IS NULL OR (created_at, task_id) < ($4, $5::uuid))
                   AND ($7::text IS NULL OR eval_run_id = $7)
                 ORDER BY created_at DESC, task_id DESC
                 LIMIT $6"
            ),
            &[&filter.state, &filter.kind, &filter.owner, &before_time, &before_id, &limit, &filter.eval_run],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// A task to create.
pub struct NewTask {
    /// Identifier.
    pub task_id: Uuid,
    /// `TaskKind` number.
    pub kind: i16,
    /// The user who creates it (the key's owner when created with an API key).
    pub owner: String,
    /// The API key it is created with, if it is.
    pub api_key_id: Option<String>,
    /// The `prfix eval` run it belongs to, if it does (validated by the caller).
    pub eval_run_id: Option<String>,
    /// The encoded Create*Request.
    pub request: Vec<u8>,
    /// The audit record of the creation.
    pub audit: AuditEvent,
    /// The `traceparent` of the creating call's span (empty for none).
    pub traceparent: String,
    /// The flags it is created with.
    pub flags: TaskFlags,
    /// The pull request, for a review a forge's webhook starts.
    pub forge: Option<pb::ForgePullRequest>,
}

/// Limits checked at creation.
#[derive(Debug, Clone, Copy)]
pub struct ActiveLimits {
    /// Queued and running tasks of one owner.
    pub per_owner: i64,
    /// Queued and running tasks in all.
    pub total: i64,
}

fn state_event(from: i16, to: i16, reason: &str) -> pb::task_event::Payload {
    pb::task_event::Payload::StateChange(pb::StateChange {
        from: i32::from(from),
        to: i32::from(to),
        reason: reason.to_owned(),
    })
}

/// Appends an event under the task's row lock; `None` when `holder` is given and no longer holds
/// the task's lease (or the task is no longer running).
async fn append_in<C: GenericClient>(
    client: &C,
    task_id: Uuid,
    holder: Option<&str>,
    payload: pb::task_event::Payload,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE tasks SET last_sequence = last_sequence + 1, updated_at = now()
             WHERE task_id = $1 AND ($2::text IS NULL OR (lease_owner = $2 AND state = 2))
             RETURNING last_sequence",
            &[&task_id, &holder],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sequence: i64 = row.get(0);
    let event = pb::TaskEvent {
        sequence,
        task_id: task_id.to_string(),
        time: Some(to_timestamp(Utc::now())),
        payload: Some(payload),
    };
    client
        .execute(
            "INSERT INTO task_events (task_id, sequence, payload) VALUES ($1, $2, $3)",
            &[&task_id, &sequence, &event.encode_to_vec()],
        )
        .await?;
    Ok(Some(sequence))
}

async fn audit_in<C: GenericClient>(client: &C, event: &AuditEvent) -> Result<(), tokio_postgres::Error> {
    client.execute("INSERT INTO audit_outbox (payload) VALUES ($1)", &[&event.encode_to_vec()]).await?;
    Ok(())
}

/// Creates a queued task with its first event and its audit record, in one transaction, unless a
/// limit on active tasks is reached.
pub async fn create(pool: &Pool, task: NewTask, limits: ActiveLimits) -> Result<TaskRow, TaskError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = create_in(&tx, task, limits).await?;
    tx.commit().await?;
    Ok(row)
}

/// Inserts a queued task with its first event and audit record in `tx`, unless a limit is reached.
async fn create_in(
    tx: &deadpool_postgres::Transaction<'_>,
    task: NewTask,
    limits: ActiveLimits,
) -> Result<TaskRow, TaskError> {
    // One creation at a time per owner, so two parallel requests cannot both pass the count.
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('prfix.agent.tasks/' || $1, 0))", &[&task.owner]).await?;
    let row = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE owner = $1), count(*) FROM tasks WHERE state IN (1, 2)",
            &[&task.owner],
        )
        .await?;
    let (mine, all): (i64, i64) = (row.get(0), row.get(1));
    if mine >= limits.per_owner {
        return Err(TaskError::Limit(format!(
            "you have {mine} tasks queued or running, the most allowed per user ({}); wait for one to end or cancel one",
            limits.per_owner
        )));
    }
    if all >= limits.total {
        return Err(TaskError::Limit(format!(
            "the agent's queue is full ({all} tasks queued or running); try again later"
        )));
    }
    let forge = task.forge.as_ref();
    let text = |f: fn(&pb::ForgePullRequest) -> &str| forge.map(f).filter(|v| !v.is_empty());
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO tasks (task_id, kind, state, owner, request, traceparent, api_key_id, flags, eval_run_id,
                     forge, forge_repository, forge_number, forge_head_sha, forge_triggered_by, forge_author,
                     forge_delivery_id)
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 RETURNING {COLUMNS}"
            ),
            &[
                &task.task_id,
                &task.kind,
                &task.owner,
                &task.request,
                &task.traceparent,
                &task.api_key_id,
                &tokio_postgres::types::Json(&task.flags),
                &task.eval_run_id,
                &forge.map(|f| f.forge.as_str()),
                &forge.map(|f| f.repository.as_str()),
                &forge.map(|f| i64::try_from(f.number).unwrap_or(i64::MAX)),
                &forge.map(|f| f.head_sha.as_str()),
                &text(|f| f.triggered_by.as_str()),
                &text(|f| f.author.as_str()),
                &text(|f| f.delivery_id.as_str()),
            ],
        )
        .await?;
    append_in(tx, task.task_id, None, state_event(0, state::QUEUED, "created")).await?;
    audit_in(tx, &task.audit).await?;
    Ok(from_row(&row))
}

/// A task a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task.
    pub row: TaskRow,
    /// The encoded Create*Request.
    pub request: Vec<u8>,
}

/// Claims the oldest queued task, or a running one whose lease ran out, for `worker` until
/// `lease` from now. Tasks claimed more than `max_attempts` times are failed instead, with the
/// audit record `give_up_record` makes.
pub async fn claim(
    pool: &Pool,
    worker: &str,
    lease: Duration,
    max_attempts: i32,
    give_up_record: &(dyn Fn(&TaskRow, &str) -> AuditEvent + Sync),
) -> Result<Option<Claimed>, TaskError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut client = pool.get().await?;
    loop {
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "WITH next AS (
                         SELECT task_id, state AS previous_state, lease_owner AS previous_owner FROM tasks
                         WHERE state = 1 OR (state = 2 AND lease_expires_at < now())
                         ORDER BY created_at
                         LIMIT 1
                         FOR UPDATE SKIP LOCKED
                     )
                     UPDATE tasks t SET state = 2, lease_owner = $1,
                         lease_expires_at = now() + $2::float8 * interval '1 millisecond',
                         attempts = t.attempts + 1, started_at = coalesce(t.started_at, now()), updated_at = now()
                     FROM next WHERE t.task_id = next.task_id
                     RETURNING {}, t.request, next.previous_state, next.previous_owner",
                    COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&worker, &(lease_ms as f64)],
            )
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let task = from_row(&row);
        // After the task's columns (from_row reads those).
        let extra = COLUMNS.split(", ").count();
        let request: Vec<u8> = row.get(extra);
        let previous_state: i16 = row.get(extra + 1);
        let previous_owner: Option<String> = row.get(extra + 2);
        if task.attempts > max_attempts {
            let error = format!(
                "the task was claimed {max_attempts} times and its worker stopped each time before finishing; not trying again"
            );
            tx.execute(
                "UPDATE tasks SET state = 4, error = $2, ended_at = now(), lease_owner = NULL, lease_expires_at = NULL
                 WHERE task_id = $1",
                &[&task.task_id, &error],
            )
            .await?;
            append_in(&tx, task.task_id, None, state_event(previous_state, state::FAILED, &error)).await?;
            audit_in(&tx, &give_up_record(&task, &error)).await?;
            tx.commit().await?;
            continue;
        }
        let reason = match (previous_state, previous_owner) {
            (state::RUNNING, Some(owner)) => format!("lease of {owner} ran out; resumed by {worker}"),
            _ => format!("claimed by {worker}"),
        };
        append_in(&tx, task.task_id, Some(worker), state_event(previous_state, state::RUNNING, &reason)).await?;
        tx.commit().await?;
        return Ok(Some(Claimed { row: task, request }));
    }
}

/// Extends `worker`'s lease on a task; false when the lease is lost or the task no longer runs
/// (cancelled), and the work must stop.
pub async fn renew(pool: &Pool, task_id: Uuid, worker: &str, lease: Duration) -> Result<bool, TaskError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX) as f64;
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE tasks SET lease_expires_at = now() + $3::float8 * interval '1 millisecond', updated_at = now()
             WHERE task_id = $1 AND lease_owner = $2 AND state = 2",
            &[&task_id, &worker, &lease_ms],
        )
        .await?;
    Ok(updated == 1)
}

/// Appends an event of a running task; false when `worker` no longer holds it.
pub async fn append(
    pool: &Pool,
    task_id: Uuid,
    worker: &str,
    payload: pb::task_event::Payload,
) -> Result<bool, TaskError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let appended = append_in(&tx, task_id, Some(worker), payload).await?.is_some();
    tx.commit().await?;
    Ok(appended)
}

/// How a worker ends a task.
pub enum Finish {
    /// With a result.
    Succeeded(pb::TaskResult),
    /// With an error text.
    Failed(String),
}

/// Ends a task `worker` holds, with its final event and audit record in one transaction; false
/// when the lease was lost or the task was cancelled meanwhile (nothing is written then).
pub async fn finish(
    pool: &Pool,
    task_id: Uuid,
    worker: &str,
    finish: Finish,
    audit: &AuditEvent,
) -> Result<bool, TaskError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let (to, result, error) = match &finish {
        Finish::Succeeded(result) => (state::SUCCEEDED, Some(result.encode_to_vec()), String::new()),
        Finish::Failed(error) => (state::FAILED, None, error.clone()),
    };
    let Some(_) = append_in(&tx, task_id, Some(worker), state_event(state::RUNNING, to, &error)).await? else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE tasks SET state = $2, result = $3, error = $4, ended_at = now(), lease_owner = NULL,
             lease_expires_at = NULL, updated_at = now()
         WHERE task_id = $1",
        &[&task_id, &to, &result, &error],
    )
    .await?;
    audit_in(&tx, audit).await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives a task back to the queue (a replica shutting down), so another replica takes it at once.
pub async fn release(pool: &Pool, task_id: Uuid, worker: &str) -> Result<bool, TaskError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let reason = format!("{worker} is shutting down; back in the queue");
    let Some(_) = append_in(&tx, task_id, Some(worker), state_event(state::RUNNING, state::QUEUED, &reason)).await?
    else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE tasks SET state = 1, lease_owner = NULL, lease_expires_at = NULL, attempts = greatest(attempts - 1, 0)
         WHERE task_id = $1",
        &[&task_id],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The refusal of a cancel of task `task_id` in `state` when it has ended (ended states are final,
/// so a row read before the cancel's transaction can answer this without one).
pub fn already_ended(task_id: Uuid, state: i16) -> Option<TaskError> {
    (state >= state::SUCCEEDED).then(|| {
        let name = pb::TaskState::try_from(i32::from(state)).map_or("ended", |s| s.as_str_name());
        TaskError::WrongState(format!("task {task_id} has already ended ({name}); nothing to cancel"))
    })
}

/// Cancels a queued or running task, with its event and audit record in one transaction.
pub async fn cancel(pool: &Pool, task_id: Uuid, by: &str, audit: &AuditEvent) -> Result<TaskRow, TaskError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt("SELECT state FROM tasks WHERE task_id = $1 FOR UPDATE", &[&task_id])
        .await?
        .ok_or(TaskError::NotFound(task_id))?;
    let from: i16 = current.get(0);
    if let Some(ended) = already_ended(task_id, from) {
        return Err(ended);
    }
    append_in(&tx, task_id, None, state_event(from, state::CANCELLED, &format!("cancelled by {by}"))).await?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE tasks SET state = 5, ended_at = now(), lease_owner = NULL, lease_expires_at = NULL,
                     updated_at = now()
                 WHERE task_id = $1 RETURNING {COLUMNS}"
            ),
            &[&task_id],
        )
        .await?;
    audit_in(&tx, audit).await?;
    tx.commit().await?;
    Ok(from_row(&row))
}

/// The queued and running tasks of `kind`, with their flags.
pub async fn active_of_kind(pool: &Pool, kind: i16) -> Result<Vec<(Uuid, TaskFlags)>, TaskError> {
    let client = pool.get().await?;
    let rows = client.query("SELECT task_id, flags FROM tasks WHERE kind = $1 AND state IN (1, 2)", &[&kind]).await?;
    Ok(rows.iter().map(|r| (r.get(0), flags_of(r.get(0), r.get(1)))).collect())
}

/// A task's state and the sequence of its last event.
pub async fn position(pool: &Pool, task_id: Uuid) -> Result<(i16, i64), TaskError> {
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT state, last_sequence FROM tasks WHERE task_id = $1", &[&task_id])
        .await?
        .ok_or(TaskError::NotFound(task_id))?;
    Ok((row.get(0), row.get(1)))
}

/// Events of a task after `after`, in order, at most `limit`.
pub async fn events_after(pool: &Pool, task_id: Uuid, after: i64, limit: i64) -> Result<Vec<pb::TaskEvent>, TaskError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT payload FROM task_events WHERE task_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            &[&task_id, &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.get(0);
            pb::TaskEvent::decode(bytes.as_slice())
                .map_err(|e| TaskError::Corrupt(format!("stored event of task {task_id} does not decode: {e}")))
        })
        .collect()
}

/// Reads the queue's gauges (tasks by state, age of the oldest queued task), the outbox backlog and
/// the pool's use into the metrics, for a scrape.
pub async fn read_gauges(pool: &Pool) {
    let metrics = &prfix_runtime::metrics::METRICS;
    metrics.pool("agent", pool);
    prfix_runtime::metrics::read_outbox_backlog(pool, "agent.audit_outbox", "audit_outbox").await;
    let Ok(client) = pool.get().await else { return };
    let Ok(rows) = client
        .query(
            "SELECT state, count(*), extract(epoch FROM now() - min(created_at))::float8
             FROM tasks WHERE state IN (1, 2) GROUP BY state",
            &[],
        )
        .await
    else {
        return;
    };
    metrics.tasks.with_label_values(&["queued"]).set(0);
    metrics.tasks.with_label_values(&["running"]).set(0);
    metrics.task_queue_oldest_seconds.set(0.0);
    for row in rows {
        let (state, count, oldest): (i16, i64, Option<f64>) = (row.get(0), row.get(1), row.get(2));
        let name = if state == state::QUEUED { "queued" } else { "running" };
        metrics.tasks.with_label_values(&[name]).set(count);
        if state == state::QUEUED {
            metrics.task_queue_oldest_seconds.set(oldest.unwrap_or(0.0));
        }
    }
}
