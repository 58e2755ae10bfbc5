//! Tasks in Postgres: reads. Creation, the worker queue and events arrive with the engine.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prfix_runtime::error::{ErrorCode, ServiceError};
use tokio_postgres::Row;
use uuid::Uuid;

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// Identifier.
    pub task_id: Uuid,
    /// `TaskKind` number.
    pub kind: i16,
    /// `TaskState` number.
    pub state: i16,
    /// Subject who created it.
    pub owner: String,
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
}

/// What can go wrong reading tasks.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The request breaks a rule; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such task.
    #[error("task {0} not found")]
    NotFound(Uuid),
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
            TaskError::Pool(_) => ErrorCode::Unavailable,
            TaskError::Query(e) if e.is_closed() => ErrorCode::Unavailable,
            TaskError::Query(_) => ErrorCode::Internal,
        }
    }
}

const COLUMNS: &str = "task_id, kind, state, owner, result, error, attempts, created_at, started_at, ended_at";

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
                 ORDER BY created_at DESC, task_id DESC
                 LIMIT $6"
            ),
            &[&filter.state, &filter.kind, &filter.owner, &before_time, &before_id, &limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}
