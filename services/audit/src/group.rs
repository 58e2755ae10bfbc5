//! Appending a group of events: the group-commit writer (`crate::writer`) hands over the batches
//! of many callers at once with the log's head it keeps, and they are stored in one statement, or,
//! when the group is large, in slices stored at once over several connections (Postgres then inserts
//! with several backends) and committed in order, so that whatever a failure leaves committed is a
//! prefix of the group: the log never has a gap.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object as Client;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::merkle::Hash;
use crate::store::{Appended, Appender, AuditError, NewEvent, Submission};

/// Fewest rows in a slice: a smaller group is one statement on one connection.
pub const MIN_SLICE: usize = 250;

/// Key of the transaction-level advisory lock that makes appends one writer at a time, so that
/// sequence numbers are gap-free and in commit order.
const APPEND_LOCK: i64 = 0x7072_6669_7861_7564; // "prfixaud"

/// The newest event of the log: what the next append chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its sequence (0 for an empty log).
    pub sequence: i64,
    /// Its chain hash (32 zero bytes for an empty log).
    pub chain: crate::merkle::Hash,
}

impl Head {
    /// The head of an empty log, and what a slice after the first chains to (only the first
    /// slice's statement checks the head).
    pub const EMPTY: Head = Head { sequence: 0, chain: [0u8; 32] };
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
        None => Ok(Head::EMPTY),
    }
}

/// One statement stores a group, or one slice of it: the rows go in as arrays (one per column), so
/// a slice costs one round trip. It stores nothing when the head the writer chains to is not the
/// stored one (rows deleted at the tail behind its back), which it answers with a row; nor when an
/// event id is already in the log, which breaks the event id's unique key (the writer then reads
/// which ids are stored, with [`STORED_IDS`], and plans again without them). Duplicates are left to
/// the unique index that every insert consults anyway: a lookup of the group's ids inside the
/// statement cost a second probe per row, and its cached plan, made while the table was small,
/// turned into a scan of the whole table as the log grew (appends fell to 43 events/s at 113k
/// events). The advisory lock (`$1`; 0 when the transaction took it already, as a sliced group's
/// first slice does before any slice inserts) makes writers (replicas, or a person appending by
/// hand as the service does) wait for each other rather than collide; a writer whose head was
/// stale collides anyway on the sequence key, stores nothing, and reads the head again. The head is
/// checked by the first slice only (`$19` = 0 skips it): the others chain to rows not committed yet.
const APPEND_GROUP: &str = "
WITH lock AS (SELECT pg_advisory_xact_lock($1) WHERE $1 <> 0),
head AS (SELECT $19::bigint = 0 OR EXISTS (SELECT 1 FROM events WHERE sequence = $19 AND chain_hash = $20) AS ok),
ins AS (
    INSERT INTO events (sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource,
                        result, request_id, trace_id, metadata, leaf_hash, chain_hash, encoding,
                        appender_subject, appender_credential, received_at)
    SELECT i.sequence, i.event_id, i.occurred_at, i.actor_subject,
           i.actor_roles::text[], i.actor_ip, i.action, i.resource, i.result,
           i.request_id, i.trace_id, i.metadata, i.leaf_hash, i.chain_hash, 2::smallint,
           i.appender_subject, i.appender_credential, i.received_at
    FROM unnest($2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::int2[], $11::text[], $12::text[], $13::jsonb[],
                $14::bytea[], $15::bytea[], $16::text[], $17::text[], $18::timestamptz[])
        AS i(sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action, resource, result,
             request_id, trace_id, metadata, leaf_hash, chain_hash, appender_subject, appender_credential,
             received_at)
    LEFT JOIN lock ON true CROSS JOIN head
    WHERE head.ok
    RETURNING 1
)
SELECT 1 FROM head WHERE NOT head.ok";

/// The ids of a group that are in the log already, with their sequences: one index lookup per id
/// (the lateral subquery keeps each a lookup whatever the table's statistics say).
const STORED_IDS: &str = "
SELECT e.event_id, e.sequence
FROM unnest($1::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (SELECT event_id, sequence FROM events WHERE event_id = wanted.id OFFSET 0) e";

/// The columns of a group's new rows, in the statement's order.
#[derive(Default)]
struct Columns {
    sequence: Vec<i64>,
    event_id: Vec<Uuid>,
    occurred_at: Vec<DateTime<Utc>>,
    actor_subject: Vec<String>,
    /// Each event's roles as an array literal ([`array_literal`]).
    actor_roles: Vec<String>,
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
    /// The parameters storing the rows in `range` after `head`, under the advisory lock `lock` (0: none).
    fn params(&self, range: Range<usize>, lock: i64, head: Head) -> Params<'_> {
        Params {
            lock,
            sequence: &self.sequence[range.clone()],
            event_id: &self.event_id[range.clone()],
            occurred_at: &self.occurred_at[range.clone()],
            actor_subject: &self.actor_subject[range.clone()],
            actor_roles: &self.actor_roles[range.clone()],
            actor_ip: &self.actor_ip[range.clone()],
            action: &self.action[range.clone()],
            resource: &self.resource[range.clone()],
            result: &self.result[range.clone()],
            request_id: &self.request_id[range.clone()],
            trace_id: &self.trace_id[range.clone()],
            metadata: &self.metadata[range.clone()],
            leaf_hash: &self.leaf_hash[range.clone()],
            chain_hash: &self.chain_hash[range.clone()],
            appender_subject: &self.appender_subject[range.clone()],
            appender_credential: &self.appender_credential[range.clone()],
            received_at: &self.received_at[range.clone()],
            head_sequence: head.sequence,
            head_chain: head.chain.to_vec(),
        }
    }

    fn push(&mut self, sequence: i64, event: NewEvent, appender: Appender, leaf: &Hash, chain: &Hash) {
        self.sequence.push(sequence);
        self.event_id.push(event.event_id);
        self.occurred_at.push(event.occurred_at);
        self.actor_subject.push(event.actor_subject);
        self.actor_roles.push(array_literal(&event.actor_roles));
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

/// `items` as a Postgres array literal (`{"a","b"}`: every element quoted, `"` and `\` escaped),
/// which the statement casts to `text[]`: one array per row without unnesting anything per row.
fn array_literal(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|s| s.len() + 3).sum::<usize>());
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The statement's parameters for one slice of a group.
struct Params<'a> {
    lock: i64,
    sequence: &'a [i64],
    event_id: &'a [Uuid],
    occurred_at: &'a [DateTime<Utc>],
    actor_subject: &'a [String],
    actor_roles: &'a [String],
    actor_ip: &'a [String],
    action: &'a [String],
    resource: &'a [String],
    result: &'a [i16],
    request_id: &'a [String],
    trace_id: &'a [String],
    metadata: &'a [serde_json::Value],
    leaf_hash: &'a [Vec<u8>],
    chain_hash: &'a [Vec<u8>],
    appender_subject: &'a [String],
    appender_credential: &'a [String],
    received_at: &'a [DateTime<Utc>],
    head_sequence: i64,
    head_chain: Vec<u8>,
}

impl Params<'_> {
    /// In the order of the statement's `$1`..`$20`.
    fn refs(&self) -> [&(dyn ToSql + Sync); 20] {
        [
            &self.lock,
            &self.sequence,
            &self.event_id,
            &self.occurred_at,
            &self.actor_subject,
            &self.actor_roles,
            &self.actor_ip,
            &self.action,
            &self.resource,
            &self.result,
            &self.request_id,
            &self.trace_id,
            &self.metadata,
            &self.leaf_hash,
            &self.chain_hash,
            &self.appender_subject,
            &self.appender_credential,
            &self.received_at,
            &self.head_sequence,
            &self.head_chain,
        ]
    }
}

/// Plans a group after `head`: sequences, leaf and chain hashes of the events not in `stored` (ids
/// already in the log with their sequences) and not repeated earlier in the group: the outcome of
/// every event, the rows to store and the head after them.
fn plan(head: Head, events: &[Submission], stored: &HashMap<Uuid, i64>) -> Planned {
    let mut planned = Planned::after(head);
    planned.extend_with(events, stored);
    planned
}

/// A group planned after a head ([`plan_group`]): what [`append_group`] stores when the log's head
/// is still the one it was planned after. The writer plans the next group while the last one is
/// being stored, after the head that one will leave, a caller's events at a time as they arrive
/// ([`Planned::extend`]).
pub struct Planned {
    /// The head it was planned after.
    head: Head,
    out: Vec<Appended>,
    rows: Columns,
    next: Head,
    /// The sequences given to the group's event ids, to find an id repeated later in the group.
    ids: HashMap<Uuid, i64>,
}

impl Planned {
    /// An empty plan after `head`, to [`extend`](Self::extend).
    pub fn after(head: Head) -> Self {
        Self { head, out: Vec::new(), rows: Columns::default(), next: head, ids: HashMap::new() }
    }

    /// The head it was planned after.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The head the group leaves once stored.
    pub fn next(&self) -> Head {
        self.next
    }

    /// How many events are planned: the group's first ones.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether no event is planned yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Plans `events`, the group's events after those planned already; the same as planning the
    /// whole group at once.
    pub fn extend(&mut self, events: &[Submission]) {
        self.extend_with(events, &HashMap::new());
    }

    fn extend_with(&mut self, events: &[Submission], stored: &HashMap<Uuid, i64>) {
        self.out.reserve(events.len());
        for Submission { event, appender } in events {
            if let Some(sequence) = stored.get(&event.event_id).or_else(|| self.ids.get(&event.event_id)) {
                self.out.push(Appended { sequence: *sequence, duplicate: true });
                continue;
            }
            let next = &mut self.next;
            next.sequence += 1;
            let mut event = event.clone();
            event.occurred_at = crate::canonical::storable(event.occurred_at);
            let appender =
                Appender { received_at: crate::canonical::storable(appender.received_at), ..appender.clone() };
            // Every new event is v2: the appender and receive time are inside its leaf.
            let leaf = crate::canonical::leaf_hash_of(next.sequence, &event, Some(&appender));
            next.chain = crate::canonical::chain_hash(&next.chain, &leaf);
            self.ids.insert(event.event_id, next.sequence);
            self.out.push(Appended { sequence: next.sequence, duplicate: false });
            self.rows.push(next.sequence, event, appender, &leaf, &next.chain);
        }
    }
}

/// Plans `events` after `head` (sequences, leaf and chain hashes), for [`append_group`]. Which of
/// their ids are stored already is not known here: storing finds them, and plans again.
pub fn plan_group(head: Head, events: &[Submission]) -> Planned {
    plan(head, events, &HashMap::new())
}

/// Whether `error` is a unique violation of the event id (an event already stored).
fn is_duplicate_id(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.constraint() == Some("events_event_id_key")
    })
}

/// The slices of a group of `rows` rows over at most `connections` connections: contiguous, in
/// order, none smaller than [`MIN_SLICE`] (one when the group is small).
pub fn slices(rows: usize, connections: usize) -> Vec<Range<usize>> {
    let count = (rows / MIN_SLICE).clamp(1, connections.max(1));
    let (per, extra) = (rows / count, rows % count);
    let mut out = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let end = start + per + usize::from(i < extra);
        out.push(start..end);
        start = end;
    }
    out
}

/// How storing a planned group ended.
enum Stored {
    /// Every row is committed.
    Done,
    /// The head it chained to is not the log's (nothing stored).
    Stale,
}

/// Stores the planned `rows` after `head`: one autocommitted statement when they make one slice,
/// else one transaction per slice, all inserting at once, committed in order once all inserted.
/// An insert that fails rolls every slice back; a commit that fails rolls back the slices after
/// it, so what is committed is always a prefix of the group.
async fn store_rows(clients: &[Client], rows: &Columns, head: Head) -> Result<Stored, tokio_postgres::Error> {
    let parts = slices(rows.sequence.len(), clients.len());
    if let [only] = parts.as_slice() {
        let client = &clients[0];
        let statement = client.prepare_cached(APPEND_GROUP).await?;
        let stale = client.query(&statement, &rows.params(only.clone(), APPEND_LOCK, head).refs()).await?;
        return Ok(if stale.is_empty() { Stored::Done } else { Stored::Stale });
    }
    let used = &clients[..parts.len()];
    // The lock is held before any slice inserts. Were the later slices to insert first, another
    // writer holding the lock could wait on their rows (the same sequence numbers) while the first
    // slice waits on its lock and the later slices wait, outside Postgres, for the first to commit:
    // a deadlock Postgres cannot see.
    let first = &clients[0];
    if let Err(error) = first.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})")).await {
        rollback(&used[..1]).await;
        return Err(error);
    }
    let inserts = parts.iter().zip(used).enumerate().map(|(i, (range, client))| {
        let head = if i == 0 { head } else { Head::EMPTY };
        let params = rows.params(range.clone(), 0, head);
        async move {
            if i > 0 {
                client.batch_execute("BEGIN").await?;
            }
            let statement = client.prepare_cached(APPEND_GROUP).await?;
            client.query(&statement, &params.refs()).await.map(|stale| stale.is_empty())
        }
    });
    let inserted = futures::future::join_all(inserts).await;
    let mut failed = None;
    let mut stale = false;
    for outcome in inserted {
        match outcome {
            Ok(fresh) => stale |= !fresh,
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
    }
    if failed.is_some() || stale {
        rollback(used).await;
        return match failed {
            Some(error) => Err(error),
            None => Ok(Stored::Stale),
        };
    }
    for (i, client) in used.iter().enumerate() {
        if let Err(error) = client.batch_execute("COMMIT").await {
            rollback(&used[i + 1..]).await;
            return Err(error);
        }
    }
    Ok(Stored::Done)
}

/// Rolls back the open transactions of `clients` (a connection that cannot is dropped by the
/// writer with the error it had).
async fn rollback(clients: &[Client]) {
    for client in clients {
        if let Err(error) = client.batch_execute("ROLLBACK").await {
            tracing::warn!(error = %error, "cannot roll back a slice of a group");
        }
    }
}

/// Appends already-checked events after `head` (the group-commit writer calls this with the batches
/// of many callers at once, keeping the head between groups) over `clients` (at least one; more
/// are used for large groups); `planned`, the same events planned already, is used when it was
/// planned after `head`. Returns each event's outcome and the new head. An error stores nothing,
/// except that a commit failing half-way keeps the slices before it; a unique violation of the
/// sequence or a stale head ([`AuditError::is_collision`]) means `head` was stale.
pub async fn append_group(
    clients: &[Client],
    head: Head,
    events: &[Submission],
    planned: Option<Planned>,
) -> Result<(Vec<Appended>, Head), AuditError> {
    if clients.is_empty() {
        return Err(AuditError::Group("the writer has no connection".to_owned(), true));
    }
    let mut ready = planned.filter(|p| p.head == head);
    debug_assert!(ready.as_ref().is_none_or(|p| p.out.len() == events.len()), "a plan of other events");
    let mut stored: HashMap<Uuid, i64> = HashMap::new();
    // The second round has the stored ids left out, so it finds none unless another writer stored
    // one of them in between; a third is then the most that can be needed.
    for _ in 0..3 {
        let Planned { out, rows, next, .. } = ready.take().unwrap_or_else(|| plan(head, events, &stored));
        if rows.sequence.is_empty() {
            return Ok((out, head));
        }
        match store_rows(clients, &rows, head).await {
            Ok(Stored::Done) => return Ok((out, next)),
            Ok(Stored::Stale) => return Err(AuditError::StaleHead(head.sequence)),
            Err(error) if is_duplicate_id(&error) => {
                // Planned at each call: a cached plan made while the log was small could scan it.
                let found = clients[0]
                    .query_typed(STORED_IDS, &[(&rows.event_id, tokio_postgres::types::Type::UUID_ARRAY)])
                    .await?;
                stored.extend(found.iter().map(|row| (row.get::<_, Uuid>(0), row.get::<_, i64>(1))));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(AuditError::Group("event ids kept appearing in the log while the group was being stored".to_owned(), true))
}

#[cfg(test)]
mod tests {
    use super::{Head, MIN_SLICE, Planned, array_literal, plan_group, slices};
    use crate::store::{Appended, Appender, NewEvent, Outcome, Submission};

    fn submission(id: u128, nanos: i64) -> Submission {
        Submission {
            event: NewEvent {
                event_id: uuid::Uuid::from_u128(id),
                // Nanoseconds that storing rounds to microseconds.
                occurred_at: chrono::DateTime::from_timestamp_nanos(1_790_000_000_000_000_000 + nanos),
                actor_subject: format!("user-{id}"),
                actor_roles: vec!["developer".into(), format!("team-{id}")],
                actor_ip: "10.0.0.1".into(),
                action: "task.cancel".into(),
                resource: format!("tasks/{id}"),
                outcome: Outcome::Success,
                request_id: format!("r-{id}"),
                trace_id: String::new(),
                metadata: serde_json::json!({"n": id as u64}),
            },
            appender: Appender {
                subject: "service:gateway".into(),
                credential: "token:4f1c".into(),
                received_at: chrono::DateTime::from_timestamp_nanos(1_790_000_001_000_000_000 + nanos),
            },
        }
    }

    #[test]
    fn planning_a_group_caller_by_caller_equals_planning_it_at_once() {
        let head = Head { sequence: 41, chain: [7u8; 32] };
        // Three callers; the third repeats an id of the first (a retry), and one of its own.
        let callers = [
            vec![submission(1, 1_499), submission(2, 2_501)],
            vec![submission(3, 3_000)],
            vec![submission(4, 4_000), submission(1, 5_000), submission(4, 6_000), submission(5, 7_000)],
        ];
        let all: Vec<Submission> = callers.iter().flatten().cloned().collect();
        let whole = plan_group(head, &all);
        let mut parts = Planned::after(head);
        for caller in &callers {
            parts.extend(caller);
        }
        assert_eq!(parts.head(), whole.head());
        assert_eq!(parts.next(), whole.next());
        assert_eq!(parts.out, whole.out);
        assert_eq!(parts.len(), all.len());
        assert_eq!(parts.rows.sequence, whole.rows.sequence);
        assert_eq!(parts.rows.event_id, whole.rows.event_id);
        assert_eq!(parts.rows.occurred_at, whole.rows.occurred_at);
        assert_eq!(parts.rows.leaf_hash, whole.rows.leaf_hash);
        assert_eq!(parts.rows.chain_hash, whole.rows.chain_hash);
        // What the plan says: five new events after 41, the repeats answered with the first's place.
        let dup = |sequence| Appended { sequence, duplicate: true };
        let new = |sequence| Appended { sequence, duplicate: false };
        assert_eq!(whole.out, vec![new(42), new(43), new(44), new(45), dup(42), dup(45), new(46)]);
        assert_eq!(whole.next().sequence, 46);
        assert_eq!(whole.rows.sequence, vec![42, 43, 44, 45, 46]);
        // Each chain hash chains to the one before it, from the head's.
        let mut chain = head.chain;
        for (leaf, stored) in whole.rows.leaf_hash.iter().zip(&whole.rows.chain_hash) {
            let leaf: crate::merkle::Hash = leaf.as_slice().try_into().expect("32 bytes");
            chain = crate::canonical::chain_hash(&chain, &leaf);
            assert_eq!(stored.as_slice(), chain.as_slice());
        }
        assert_eq!(whole.next().chain, chain);
        // Times are planned as stored: to the microsecond.
        assert_eq!(whole.rows.occurred_at[0].timestamp_subsec_nanos() % 1_000, 0);
    }

    #[test]
    fn array_literals_quote_every_element_and_escape_quotes_and_backslashes() {
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(array_literal(&roles(&["service"])), r#"{"service"}"#);
        assert_eq!(
            array_literal(&roles(&["a\"b", "c\\d", "", "NULL", "{x},y"])),
            r#"{"a\"b","c\\d","","NULL","{x},y"}"#
        );
    }

    #[test]
    fn a_group_is_sliced_in_order_into_contiguous_slices_of_at_least_the_minimum() {
        assert_eq!(slices(1, 4), vec![0..1]);
        assert_eq!(slices(2 * MIN_SLICE - 1, 4), vec![0..2 * MIN_SLICE - 1]);
        assert_eq!(slices(2 * MIN_SLICE, 4), vec![0..MIN_SLICE, MIN_SLICE..2 * MIN_SLICE]);
        assert_eq!(slices(1_001, 4), vec![0..251, 251..501, 501..751, 751..1_001]);
        assert_eq!(slices(2_000, 2), vec![0..1_000, 1_000..2_000]);
        assert_eq!(slices(2_000, 1), vec![0..2_000]);
        assert_eq!(slices(2_000, 0), vec![0..2_000]);
    }
}
