//! The tasks a forge's webhook starts: the pull request each one records, creating the review of a
//! head (superseding the reviews of older heads of the same pull request in the same transaction),
//! and the head a command's review learns from the forge.

use deadpool_postgres::Pool;
use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1::AuditEvent;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    ActiveLimits, COLUMNS, NewTask, TaskError, TaskRow, append_in, audit_in, create_in, from_row, state, state_event,
};

/// The pull request of a task a webhook started (columns 14 to 20 of [`COLUMNS`]).
pub(super) fn forge_of(row: &Row) -> Option<pb::ForgePullRequest> {
    let forge: Option<String> = row.get(14);
    let number: Option<i64> = row.get(16);
    let text = |i: usize| row.get::<_, Option<String>>(i).unwrap_or_default();
    Some(pb::ForgePullRequest {
        forge: forge?,
        repository: text(15),
        number: u64::try_from(number.unwrap_or_default()).unwrap_or_default(),
        head_sha: text(17),
        triggered_by: text(18),
        author: text(19),
        delivery_id: text(20),
    })
}

/// What creating a forge review did.
#[derive(Debug)]
pub struct ForgeReviewCreated {
    /// The task of the head (the one already queued or running for it, when there was one).
    pub row: TaskRow,
    /// Whether the task is new.
    pub created: bool,
    /// Queued or running reviews of older heads of the same pull request, now cancelled.
    pub superseded: Vec<Uuid>,
}

/// Creates the review (or describe) of a pull request's head (`task.forge` set) in one transaction:
/// a task of the same kind and head already queued or running is returned instead; tasks of that
/// kind for other heads of the same pull request are cancelled first, each with its event and the audit record `cancelled`
/// makes of it.
pub async fn create_forge_review(
    pool: &Pool,
    task: NewTask,
    limits: ActiveLimits,
    full: bool,
    cancelled: &(dyn Fn(Uuid) -> AuditEvent + Sync),
) -> Result<ForgeReviewCreated, TaskError> {
    let pull =
        task.forge.clone().ok_or_else(|| TaskError::Invalid("a forge review names its pull request".to_owned()))?;
    let number = i64::try_from(pull.number)
        .map_err(|_| TaskError::Invalid("the pull request number is too large".to_owned()))?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One creation per pull request at a time, so two pushes cannot both miss each other.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('prfix.agent.forge/' || $1 || '/' || $2 || '#' || ($3::bigint)::text, 0))",
        &[&pull.forge, &pull.repository, &number],
    )
    .await?;
    let active = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM tasks
                 WHERE forge = $1 AND forge_repository = $2 AND forge_number = $3 AND state IN (1, 2)
                   AND kind = $4
                 ORDER BY created_at FOR UPDATE"
            ),
            &[&pull.forge, &pull.repository, &number, &task.kind],
        )
        .await?;
    // A command's review does not know its head yet: it neither finds nor supersedes others.
    let active: Vec<TaskRow> =
        if pull.head_sha.is_empty() { Vec::new() } else { active.iter().map(from_row).collect() };
    if !full && let Some(same) = active.iter().find(|t| t.forge.as_ref().is_some_and(|f| f.head_sha == pull.head_sha)) {
        let row = same.clone();
        tx.commit().await?;
        return Ok(ForgeReviewCreated { row, created: false, superseded: Vec::new() });
    }
    let mut superseded = Vec::new();
    for old in &active {
        let reason = format!("superseded: the pull request's head is now {}", pull.head_sha);
        append_in(&tx, old.task_id, None, state_event(old.state, state::CANCELLED, &reason)).await?;
        tx.execute(
            "UPDATE tasks SET state = 5, ended_at = now(), error = $2, lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = now()
             WHERE task_id = $1",
            &[&old.task_id, &reason],
        )
        .await?;
        audit_in(&tx, &cancelled(old.task_id)).await?;
        superseded.push(old.task_id);
    }
    let row = create_in(&tx, task, limits).await?;
    tx.commit().await?;
    Ok(ForgeReviewCreated { row, created: true, superseded })
}

/// Records the head a forge review reads (a command's review learns it from the forge); false when
/// `worker` no longer holds the task.
pub async fn set_forge_head(pool: &Pool, task_id: Uuid, worker: &str, head_sha: &str) -> Result<bool, TaskError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE tasks SET forge_head_sha = $3, updated_at = now()
             WHERE task_id = $1 AND lease_owner = $2 AND state = 2 AND forge IS NOT NULL",
            &[&task_id, &worker, &head_sha],
        )
        .await?;
    Ok(updated == 1)
}

/// The newest review of `pull` that succeeded, other than `task_id`: the head it reviewed and its
/// encoded `TaskResult`; `None` when the pull request has none yet.
pub async fn last_review(
    pool: &Pool,
    pull: &pb::ForgePullRequest,
    task_id: Uuid,
) -> Result<Option<(String, Vec<u8>)>, TaskError> {
    let number = i64::try_from(pull.number)
        .map_err(|_| TaskError::Invalid("the pull request number is too large".to_owned()))?;
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT forge_head_sha, result FROM tasks
             WHERE forge = $1 AND forge_repository = $2 AND forge_number = $3 AND kind = $4 AND state = 3
               AND task_id <> $5 AND result IS NOT NULL
             ORDER BY ended_at DESC LIMIT 1",
            &[&pull.forge, &pull.repository, &number, &(pb::TaskKind::Review as i16), &task_id],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
