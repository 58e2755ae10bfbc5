//! The audit log in Postgres: appends ordered by one writer at a time, idempotent on event id,
//! and reads by filter or by sequence range.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prfix_runtime::error::{ErrorCode, ServiceError};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::merkle::Hash;

/// Most events one AppendBatch may carry.
pub const MAX_BATCH: usize = 1_000;
/// Largest metadata object, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest text field (action, resource, subject...).
pub const MAX_FIELD_CHARS: usize = 1_024;

/// Key of the transaction-level advisory lock that makes appends one writer at a time, so that
/// sequence numbers are gap-free and in commit order.
const APPEND_LOCK: i64 = 0x7072_6669_7861_7564; // "prfixaud"

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

impl StoredEvent {
    /// The leaf hash recomputed from the stored content, in its encoding version.
    pub fn recomputed_leaf(&self) -> crate::merkle::Hash {
        crate::canonical::leaf_hash_of(self.sequence, &self.event, self.appender.as_ref())
    }
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

/// Appends `events` in order, in one transaction. An event id already stored (or repeated in the
/// batch) is not stored again and reports its original sequence.
pub async fn append(pool: &Pool, events: &[Submission]) -> Result<Vec<Appended>, AuditError> {
    check_batch(events)?;
    append_checked(pool, events).await
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

/// The newest event of the log: what the next append chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its sequence (0 for an empty log).
    pub sequence: i64,
    /// Its chain hash (32 zero bytes for an empty log).
    pub chain: crate::merkle::Hash,
}

/// Reads the log's [`Head`].
pub async fn read_head(client: &tokio_postgres::Client) -> Result<Head, AuditError> {
    let last = client.query_opt("SELECT sequence, chain_hash FROM events ORDER BY sequence DESC LIMIT 1", &[]).await?;
    match last {
        Some(row) => {
            let bytes: Vec<u8> = row.get(1);
            let chain =
                bytes.try_into().map_err(|_| AuditError::Invalid("stored chain hash is not 32 bytes".to_owned()))?;
            Ok(Head { sequence: row.get(0), chain })
        }
        None => Ok(Head { sequence: 0, chain: [0u8; 32] }),
    }
}

/// One statement stores a whole group: the rows go in as arrays (one per column) and the
/// statement commits on its own, so a group costs one round trip. It stores nothing when any of
/// the event ids is already in the log, and returns those (the writer then plans again without
/// them); nor when the head the writer chains to is not the stored one (rows deleted at the tail
/// behind its back), which it answers with a row of sequence -1. The advisory lock makes writers (replicas, or a person appending by hand as the
/// service does) wait for each other rather than collide; a writer whose head was stale collides
/// anyway on the sequence key, stores nothing, and reads the head again.
const APPEND_GROUP: &str = "
WITH lock AS (SELECT pg_advisory_xact_lock($1)),
input AS (
    SELECT * FROM unnest($2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::jsonb[], $7::text[],
                         $8::text[], $9::text[], $10::int2[], $11::text[], $12::text[], $13::jsonb[],
                         $14::bytea[], $15::bytea[], $16::text[], $17::text[], $18::timestamptz[])
        AS i(sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource, result,
             request_id, trace_id, metadata, leaf_hash, chain_hash, appender_subject, appender_credential,
             received_at)
),
dup AS (SELECT e.event_id, e.sequence FROM events e WHERE e.event_id = ANY($3::uuid[])),
head AS (SELECT $19::bigint = 0 OR EXISTS (SELECT 1 FROM events WHERE sequence = $19 AND chain_hash = $20) AS ok),
ins AS (
    INSERT INTO events (sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource,
                        result, request_id, trace_id, metadata, leaf_hash, chain_hash, encoding,
                        appender_subject, appender_credential, received_at)
    SELECT i.sequence, i.event_id, i.occurred_at, i.actor_subject,
           ARRAY(SELECT jsonb_array_elements_text(i.actor_roles)), i.actor_ip, i.action, i.resource, i.result,
           i.request_id, i.trace_id, i.metadata, i.leaf_hash, i.chain_hash, 2::smallint,
           i.appender_subject, i.appender_credential, i.received_at
    FROM input i CROSS JOIN lock CROSS JOIN head
    WHERE head.ok AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING 1
)
SELECT event_id, sequence FROM dup
UNION ALL
SELECT NULL::uuid, -1::bigint FROM head WHERE NOT head.ok";

/// The columns of a group's new rows, in the statement's order.
#[derive(Default)]
struct Columns {
    sequence: Vec<i64>,
    event_id: Vec<Uuid>,
    occurred_at: Vec<DateTime<Utc>>,
    actor_subject: Vec<String>,
    actor_roles: Vec<serde_json::Value>,
    actor_ip: Vec<String>,
    action: Vec<String>,
    resource: Vec<String>,
    result: Vec<i16>,
    request_id: Vec<String>,
    trace_id: Vec<String>,
    metadata: Vec<serde_json::Value>,
    leaf_hash: Vec<Vec<u8>>,
    chain_hash: Vec<Vec<u8>>,
    appender_subject: Vec<String>,
    appender_credential: Vec<String>,
    received_at: Vec<DateTime<Utc>>,
}

impl Columns {
    fn push(&mut self, sequence: i64, event: NewEvent, appender: Appender, leaf: &Hash, chain: &Hash) {
        self.sequence.push(sequence);
        self.event_id.push(event.event_id);
        self.occurred_at.push(event.occurred_at);
        self.actor_subject.push(event.actor_subject);
        self.actor_roles.push(serde_json::Value::from(event.actor_roles));
        self.actor_ip.push(event.actor_ip);
        self.action.push(event.action);
        self.resource.push(event.resource);
        self.result.push(event.outcome as i16);
        self.request_id.push(event.request_id);
        self.trace_id.push(event.trace_id);
        self.metadata.push(event.metadata);
        self.leaf_hash.push(leaf.to_vec());
        self.chain_hash.push(chain.to_vec());
        self.appender_subject.push(appender.subject);
        self.appender_credential.push(appender.credential);
        self.received_at.push(appender.received_at);
    }
}

/// Plans a group after `head`: sequences, leaf and chain hashes of the events not in `stored` (ids
/// already in the log with their sequences) and not repeated earlier in the group. Returns the
/// outcome of every event, the rows to store and the head after them.
fn plan(head: Head, events: &[Submission], stored: &HashMap<Uuid, i64>) -> (Vec<Appended>, Columns, Head) {
    let mut next = head;
    let mut planned: HashMap<Uuid, i64> = HashMap::with_capacity(events.len());
    let mut rows = Columns::default();
    let mut out = Vec::with_capacity(events.len());
    for Submission { event, appender } in events {
        if let Some(sequence) = stored.get(&event.event_id).or_else(|| planned.get(&event.event_id)) {
            out.push(Appended { sequence: *sequence, duplicate: true });
            continue;
        }
        next.sequence += 1;
        let mut event = event.clone();
        event.occurred_at = crate::canonical::storable(event.occurred_at);
        let appender = Appender { received_at: crate::canonical::storable(appender.received_at), ..appender.clone() };
        // Every new event is v2: the appender and receive time are inside its leaf.
        let leaf = crate::canonical::leaf_hash_of(next.sequence, &event, Some(&appender));
        next.chain = crate::canonical::chain_hash(&next.chain, &leaf);
        planned.insert(event.event_id, next.sequence);
        out.push(Appended { sequence: next.sequence, duplicate: false });
        rows.push(next.sequence, event, appender, &leaf, &next.chain);
    }
    (out, rows, next)
}

/// Appends already-checked events after `head` in one statement (the group-commit writer calls
/// this with the batches of many callers at once, keeping the head between groups). Returns each
/// event's outcome and the new head. An error stores nothing; a unique violation
/// ([`AuditError::is_collision`]) means `head` was stale.
pub async fn append_group(
    client: &deadpool_postgres::Object,
    head: Head,
    events: &[Submission],
) -> Result<(Vec<Appended>, Head), AuditError> {
    let statement = client.prepare_cached(APPEND_GROUP).await?;
    let mut stored: HashMap<Uuid, i64> = HashMap::new();
    // The second round has the stored ids left out, so it finds none unless another writer stored
    // one of them in between; a third is then the most that can be needed.
    for _ in 0..3 {
        let (out, rows, next) = plan(head, events, &stored);
        if rows.sequence.is_empty() {
            return Ok((out, head));
        }
        let found = client
            .query(
                &statement,
                &[
                    &APPEND_LOCK,
                    &rows.sequence,
                    &rows.event_id,
                    &rows.occurred_at,
                    &rows.actor_subject,
                    &rows.actor_roles,
                    &rows.actor_ip,
                    &rows.action,
                    &rows.resource,
                    &rows.result,
                    &rows.request_id,
                    &rows.trace_id,
                    &rows.metadata,
                    &rows.leaf_hash,
                    &rows.chain_hash,
                    &rows.appender_subject,
                    &rows.appender_credential,
                    &rows.received_at,
                    &head.sequence,
                    &head.chain.as_slice(),
                ],
            )
            .await?;
        if found.iter().any(|row| row.get::<_, i64>(1) < 0) {
            return Err(AuditError::StaleHead(head.sequence));
        }
        if found.is_empty() {
            return Ok((out, next));
        }
        stored.extend(found.iter().map(|row| (row.get::<_, Uuid>(0), row.get::<_, i64>(1))));
    }
    Err(AuditError::Group("event ids kept appearing in the log while the group was being stored".to_owned(), true))
}

/// Appends already-checked events (the head read first; retried once when another writer moved it).
pub async fn append_checked(pool: &Pool, events: &[Submission]) -> Result<Vec<Appended>, AuditError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let mut attempt = 0;
    loop {
        let head = read_head(&client).await?;
        match append_group(&client, head, events).await {
            Err(error) if error.is_collision() && attempt < 2 => attempt += 1,
            other => return other.map(|(out, _)| out),
        }
    }
}

const COLUMNS: &str = "sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource, result,
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
    let client = pool.get().await?;
    // The window is bounded on both sides by the page, not only by LIMIT: for an open range
    // (`sequence >= next`) the plan can read every later row and sort them for each page, which made
    // an export quadratic in the log's size.
    let last = to.min(from.saturating_add(limit - 1));
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM events WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence"),
            &[&from, &last],
        )
        .await?;
    rows.iter().map(row_to_event).collect()
}

/// The highest sequence stored (0 for an empty log).
pub async fn head(pool: &Pool) -> Result<i64, AuditError> {
    let client = pool.get().await?;
    Ok(client.query_one("SELECT coalesce(max(sequence), 0) FROM events", &[]).await?.get(0))
}
