//! The audit log in Postgres: appends ordered by one writer at a time, idempotent on event id,
//! and reads by filter or by sequence range.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prfix_runtime::error::{ErrorCode, ServiceError};
use tokio_postgres::Row;
use uuid::Uuid;

/// Most events one AppendBatch may carry.
pub const MAX_BATCH: usize = 1_000;
/// Largest metadata object, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest text field (action, resource, subject...).
pub const MAX_FIELD_CHARS: usize = 1_024;

/// The outcome of an audited action (values as in the proto enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action succeeded.
    Success = 1,
    /// It was tried and failed.
    Failure = 2,
    /// It was refused.
    Denied = 3,
}

impl Outcome {
    /// From the stored or wire number.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Success),
            2 => Some(Self::Failure),
            3 => Some(Self::Denied),
            _ => None,
        }
    }
}

/// An event as a client submits it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The idempotency key.
    pub event_id: Uuid,
    /// When the action happened.
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor_subject: String,
    /// The actor's roles.
    pub actor_roles: Vec<String>,
    /// Client address.
    pub actor_ip: String,
    /// Method or named action.
    pub action: String,
    /// What was acted on.
    pub resource: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Gateway request id.
    pub request_id: String,
    /// W3C trace id.
    pub trace_id: String,
    /// Further facts (a JSON object).
    pub metadata: serde_json::Value,
}

/// Who appended an event and when the service received it: taken from the verified token of the
/// append call and the service's clock, never from the request, and covered by the leaf hash
/// (canonical encoding v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appender {
    /// The token's subject.
    pub subject: String,
    /// The credential that acted (`Principal::credential`: `apikey:<id>` or `token:<jti>`).
    pub credential: String,
    /// When the audit service received the event (microseconds: what Postgres stores).
    pub received_at: DateTime<Utc>,
}

impl Appender {
    /// The appender of a call by `principal` received `at`.
    pub fn of(principal: &prfix_auth::Principal, at: DateTime<Utc>) -> Self {
        Self {
            subject: principal.subject.clone(),
            credential: principal.credential(),
            received_at: crate::canonical::storable(at),
        }
    }
}

/// An event with its appender, as the writer stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The event as submitted.
    pub event: NewEvent,
    /// Who appended it.
    pub appender: Appender,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the log.
    pub sequence: i64,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
    /// Its leaf hash as stored.
    pub leaf_hash: Vec<u8>,
    /// Its chain hash as stored.
    pub chain_hash: Vec<u8>,
    /// What was submitted.
    pub event: NewEvent,
    /// Who appended it; `None` for events stored before appenders were recorded (encoding v1).
    pub appender: Option<Appender>,
}

/// Where an append put an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub sequence: i64,
    /// True when the event id was already stored.
    pub duplicate: bool,
}

/// Filters of a listing; all combine with AND.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after.
    pub start: Option<DateTime<Utc>>,
    /// Before.
    pub end: Option<DateTime<Utc>>,
    /// Exact subject.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact resource.
    pub resource: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The request breaks a rule; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No database session could be had.
    #[error("audit database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("audit database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The log's head is not the one the writer chained to (rows were removed at the tail).
    #[error("the log's head is no longer event {0}")]
    StaleHead(i64),
    /// The group transaction this append was part of failed (the flag: the database was unreachable).
    #[error("append failed: {0}")]
    Group(String, bool),
}

impl AuditError {
    /// Whether the failure is the database being unreachable (worth a retry).
    pub fn is_unavailable(&self) -> bool {
        matches!(self.code(), ErrorCode::Unavailable)
    }

    /// Whether the head the writer had was stale: a statement broke a unique key (another writer
    /// stored the same sequence or event id first) or the head row is gone.
    pub fn is_collision(&self) -> bool {
        match self {
            AuditError::StaleHead(_) => true,
            AuditError::Query(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }
}

impl ServiceError for AuditError {
    fn code(&self) -> ErrorCode {
        match self {
            AuditError::Invalid(_) => ErrorCode::InvalidArgument,
            AuditError::Pool(_) => ErrorCode::Unavailable,
            AuditError::Query(e) if e.is_closed() => ErrorCode::Unavailable,
            AuditError::Query(_) => ErrorCode::Internal,
            AuditError::Group(_, true) => ErrorCode::Unavailable,
            AuditError::StaleHead(_) => ErrorCode::Unavailable,
            AuditError::Group(_, false) => ErrorCode::Internal,
        }
    }
}

impl NewEvent {
    /// Checks sizes and required fields; `index` names the event in a batch.
    pub fn validate(&self, index: usize) -> Result<(), AuditError> {
        let field = |name: &str| format!("events[{index}].{name}");
        if self.actor_subject.is_empty() {
            return Err(AuditError::Invalid(format!("{} is required", field("actor.subject"))));
        }
        if self.action.is_empty() {
            return Err(AuditError::Invalid(format!("{} is required", field("action"))));
        }
        for (name, value) in [
            ("actor.subject", &self.actor_subject),
            ("actor_ip", &self.actor_ip),
            ("action", &self.action),
            ("resource", &self.resource),
            ("request_id", &self.request_id),
            ("trace_id", &self.trace_id),
        ] {
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(AuditError::Invalid(format!(
                    "{} is longer than {MAX_FIELD_CHARS} characters",
                    field(name)
                )));
            }
        }
        if !self.metadata.is_object() {
            return Err(AuditError::Invalid(format!("{} must be an object", field("metadata"))));
        }
        let size = self.metadata.to_string().len();
        if size > MAX_METADATA_BYTES {
            return Err(AuditError::Invalid(format!(
                "{} is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}",
                field("metadata")
            )));
        }
        Ok(())
    }
}

/// Checks a batch before it is queued: not too large, every event valid. (An empty batch is
/// refused by the handlers: after policy refusals a batch may have nothing left to store.)
pub fn check_batch(events: &[Submission]) -> Result<(), AuditError> {
    if events.len() > MAX_BATCH {
        return Err(AuditError::Invalid(format!("a batch holds at most {MAX_BATCH} events, got {}", events.len())));
    }
    for (i, s) in events.iter().enumerate() {
        s.event.validate(i)?;
        for (name, value) in
            [("appender subject", &s.appender.subject), ("appender credential", &s.appender.credential)]
        {
            if value.is_empty() || value.chars().count() > MAX_FIELD_CHARS {
                return Err(AuditError::Invalid(format!(
                    "events[{i}]: the {name} must be 1 to {MAX_FIELD_CHARS} characters"
                )));
            }
        }
    }
    Ok(())
}

/// The columns of a stored event, as every read of events selects them.
pub const COLUMNS: &str =
    "sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource, result,
                       request_id, trace_id, metadata, recorded_at, leaf_hash, chain_hash,
                       encoding, appender_subject, appender_credential, received_at";

fn row_to_event(row: &Row) -> Result<StoredEvent, AuditError> {
    let result: i16 = row.get(8);
    let outcome = Outcome::from_i32(i32::from(result))
        .ok_or_else(|| AuditError::Invalid(format!("stored event has unknown result {result}")))?;
    // Read leniently: a row whose columns do not fit its encoding (possible only with the table's
    // constraints dropped) is still exported, and its leaf hash then names it as changed.
    let encoding: i16 = row.get(15);
    let appender = (encoding != crate::canonical::ENCODING_V1).then(|| Appender {
        subject: row.get::<_, Option<String>>(16).unwrap_or_default(),
        credential: row.get::<_, Option<String>>(17).unwrap_or_default(),
        received_at: row.get::<_, Option<DateTime<Utc>>>(18).unwrap_or_default(),
    });
    Ok(StoredEvent {
        appender,
        sequence: row.get(0),
        recorded_at: row.get(12),
        leaf_hash: row.get(13),
        chain_hash: row.get(14),
        event: NewEvent {
            event_id: row.get(1),
            occurred_at: row.get(2),
            actor_subject: row.get(3),
            actor_roles: row.get(4),
            actor_ip: row.get(5),
            action: row.get(6),
            resource: row.get(7),
            outcome,
            request_id: row.get(9),
            trace_id: row.get(10),
            metadata: row.get(11),
        },
    })
}

/// The order events are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending sequence (the log's order).
    OldestFirst,
    /// Descending sequence (what an operator looks at first).
    NewestFirst,
}

/// Events matching `filter` after the sequence `after` in `order` (0: from the start), at most `limit`.
pub async fn list(
    pool: &Pool,
    filter: &Filter,
    order: Order,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, AuditError> {
    let client = pool.get().await?;
    let outcome = filter.outcome.map(|o| o as i16);
    // `after` is the last sequence of the previous page (0: none); newest first, pages go down.
    let (bound, direction, after) = match order {
        Order::OldestFirst => ("sequence > $1", "", after),
        Order::NewestFirst => ("sequence < $1", " DESC", if after == 0 { i64::MAX } else { after }),
    };
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM events
                 WHERE {bound}
                   AND ($2::timestamptz IS NULL OR occurred_at >= $2)
                   AND ($3::timestamptz IS NULL OR occurred_at < $3)
                   AND ($4::text IS NULL OR actor_subject = $4)
                   AND ($5::text IS NULL OR action = $5)
                   AND ($6::text IS NULL OR resource = $6)
                   AND ($7::smallint IS NULL OR result = $7)
                 ORDER BY sequence{direction}
                 LIMIT $8"
            ),
            &[&after, &filter.start, &filter.end, &filter.actor, &filter.action, &filter.resource, &outcome, &limit],
        )
        .await?;
    rows.iter().map(row_to_event).collect()
}

/// The events numbered `from..from + limit` (up to `to`), in sequence order: a page of at most
/// `limit` rows that may hold fewer, or none, where numbers are missing; the next page starts at
/// `from + limit`.
pub async fn range(pool: &Pool, from: i64, to: i64, limit: i64) -> Result<Vec<StoredEvent>, AuditError> {
    range_rows(pool, from, to, limit).await?.iter().map(row_to_event).collect()
}

/// [`range`] rendered as export lines ([`crate::jsonl`]): no event is built.
pub async fn range_rendered(
    pool: &Pool,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<crate::jsonl::RenderedPage, AuditError> {
    let rows = range_rows(pool, from, to, limit).await?;
    let mut page =
        crate::jsonl::RenderedPage { text: Vec::with_capacity(rows.len() * 512), ends: Vec::with_capacity(rows.len()) };
    for row in &rows {
        let sequence = crate::jsonl::render_row(row, &mut page.text)?;
        page.ends.push((sequence, page.text.len()));
    }
    Ok(page)
}

async fn range_rows(pool: &Pool, from: i64, to: i64, limit: i64) -> Result<Vec<Row>, AuditError> {
    let client = pool.get().await?;
    // The window is bounded on both sides by the page, not only by LIMIT: for an open range
    // (`sequence >= next`) the plan can read every later row and sort them for each page, which made
    // an export quadratic in the log's size.
    let last = to.min(from.saturating_add(limit - 1));
    let statement = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence"))
        .await?;
    Ok(client.query(&statement, &[&from, &last]).await?)
}

/// The highest sequence stored (0 for an empty log).
pub async fn head(client: &deadpool_postgres::Object) -> Result<i64, AuditError> {
    Ok(client.query_one("SELECT coalesce(max(sequence), 0) FROM events", &[]).await?.get(0))
}
