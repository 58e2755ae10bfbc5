//! The export file (JSON lines: events in sequence order, each checkpoint after the last event it
//! covers), as the service stores it: a log with gaps or foreign rows exports all the same, and
//! `verify` (in `crate::verify`) says what is wrong with it.

use prfix_proto::audit::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::merkle::Hash;
use crate::store::{Appender, NewEvent, Outcome, StoredEvent};

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// An event.
    Event(Box<ExportedEvent>),
    /// A checkpoint (a C2SP signed note).
    Checkpoint {
        /// The note.
        signed_note: String,
    },
}

/// An event as exported: every field the canonical encoding covers, and the stored hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEvent {
    /// Position in the log.
    pub sequence: i64,
    /// Event id.
    pub event_id: uuid::Uuid,
    /// RFC 3339, microseconds, UTC.
    pub time: String,
    /// Actor subject.
    pub actor_subject: String,
    /// Actor roles.
    pub actor_roles: Vec<String>,
    /// Client address.
    pub actor_ip: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// 1 success, 2 failure, 3 denied.
    pub result: i32,
    /// Request id.
    pub request_id: String,
    /// Trace id.
    pub trace_id: String,
    /// Metadata object.
    pub metadata: serde_json::Value,
    /// Stored leaf hash, hex.
    pub leaf_hash: String,
    /// Stored chain hash, hex.
    pub chain_hash: String,
    /// The canonical encoding of the leaf: 1 (events from before appenders were recorded; also
    /// what an export line without this field means) or 2 (with the three fields below).
    #[serde(default = "encoding_v1")]
    pub encoding: i32,
    /// Who appended it: the verified token's subject (encoding 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appender_subject: Option<String>,
    /// The credential that appended it: `apikey:<id>` or `token:<jti>` (encoding 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appender_credential: Option<String>,
    /// When the audit service received it, RFC 3339, microseconds, UTC (encoding 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_time: Option<String>,
}

fn encoding_v1() -> i32 {
    i32::from(canonical::ENCODING_V1)
}

impl ExportedEvent {
    /// The line of a stored event, every field as stored, as the service's `Verify` reads the log
    /// (an export in JSON lines renders the same line straight from the row: `crate::jsonl`).
    pub fn from_stored(stored: StoredEvent) -> Self {
        let StoredEvent { sequence, recorded_at: _, leaf_hash, chain_hash, event, appender } = stored;
        let encoding = i32::from(canonical::encoding_of(appender.as_ref()));
        let (appender_subject, appender_credential, receive_time) = match appender {
            Some(Appender { subject, credential, received_at }) => {
                (Some(subject), Some(credential), Some(canonical::time_text(received_at)))
            }
            None => (None, None, None),
        };
        Self {
            sequence,
            event_id: event.event_id,
            time: canonical::time_text(event.occurred_at),
            actor_subject: event.actor_subject,
            actor_roles: event.actor_roles,
            actor_ip: event.actor_ip,
            action: event.action,
            resource: event.resource,
            result: event.outcome as i32,
            request_id: event.request_id,
            trace_id: event.trace_id,
            metadata: crate::json::as_struct_carries(event.metadata),
            leaf_hash: hex::encode(leaf_hash),
            chain_hash: hex::encode(chain_hash),
            encoding,
            appender_subject,
            appender_credential,
            receive_time,
        }
    }
}

/// The export line of one item of an ExportEvents stream.
pub fn line_from_proto(item: pb::ExportEventsResponse) -> Result<ExportLine, String> {
    match item.item {
        Some(pb::export_events_response::Item::Event(e)) => {
            let time = e
                .time
                .as_ref()
                .and_then(prfix_runtime::time::from_timestamp)
                .ok_or_else(|| format!("event {} has no valid time", e.sequence))?;
            let actor = e.actor.unwrap_or_default();
            let receive_time = e
                .receive_time
                .as_ref()
                .map(|t| {
                    prfix_runtime::time::from_timestamp(t)
                        .map(canonical::time_text)
                        .ok_or_else(|| format!("event {} has an invalid receive time", e.sequence))
                })
                .transpose()?;
            let appender = e.appender.unwrap_or_default();
            let present = |s: String| Some(s).filter(|s| !s.is_empty());
            Ok(ExportLine::Event(Box::new(ExportedEvent {
                sequence: e.sequence,
                event_id: uuid::Uuid::parse_str(&e.event_id).map_err(|err| format!("event {}: {err}", e.sequence))?,
                time: canonical::time_text(time),
                actor_subject: actor.subject,
                actor_roles: actor.roles,
                actor_ip: e.actor_ip,
                action: e.action,
                resource: e.resource,
                result: e.result,
                request_id: e.request_id,
                trace_id: e.trace_id,
                metadata: e.metadata.as_ref().map_or_else(|| serde_json::json!({}), crate::json::struct_to_json),
                leaf_hash: hex::encode(e.leaf_hash),
                chain_hash: hex::encode(e.chain_hash),
                // A service from before v2 sends no encoding: its events are v1.
                encoding: e.encoding.max(encoding_v1()),
                appender_subject: present(appender.subject),
                appender_credential: present(appender.credential),
                receive_time,
            })))
        }
        Some(pb::export_events_response::Item::Checkpoint(c)) => {
            Ok(ExportLine::Checkpoint { signed_note: c.signed_note })
        }
        Some(pb::export_events_response::Item::Jsonl(_)) => {
            Err("a chunk of JSON lines in an export asked for as items".to_owned())
        }
        None => Err("an export item with neither event nor checkpoint".to_owned()),
    }
}

/// One thing that does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    /// The event concerned (the first of a range).
    pub sequence: Option<i64>,
    /// The last event of the range concerned (missing or foreign numbers, a chain break and the
    /// later events that do not chain from it); `None` for one event or none.
    pub last_sequence: Option<i64>,
    /// The checkpoint concerned (its tree size).
    pub tree_size: Option<u64>,
    /// What is wrong (a problem about a range names the range itself).
    pub message: String,
}

impl Problem {
    /// A problem of one event.
    pub fn event(sequence: i64, message: impl Into<String>) -> Self {
        Self { sequence: Some(sequence), message: message.into(), ..Self::default() }
    }

    /// A problem of the events `from..=to`; the message names them.
    pub fn range(from: i64, to: i64, message: impl Into<String>) -> Self {
        Self { sequence: Some(from), last_sequence: Some(to), message: message.into(), ..Self::default() }
    }

    /// A problem of the checkpoint of `size`.
    pub fn checkpoint(size: u64, message: impl Into<String>) -> Self {
        Self { tree_size: Some(size), message: message.into(), ..Self::default() }
    }

    /// A problem of the export as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::default() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sequence, self.last_sequence, self.tree_size) {
            (Some(s), None, _) => write!(f, "event {s}: {}", self.message),
            (None, _, Some(t)) => write!(f, "checkpoint {t}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Events read.
    pub events: usize,
    /// Checkpoints whose signature verified.
    pub checkpoints: usize,
    /// Problems: the events' in log order, then the checkpoints', then the export's as a whole.
    pub problems: Vec<Problem>,
    /// The newest checkpoint whose signature verified (what a monitor remembers when the whole
    /// report is ok).
    pub newest: Option<crate::verify::VerifiedCheckpoint>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The event an exported line describes, as the canonical encoding takes it.
pub(crate) fn to_new_event(e: &ExportedEvent) -> Result<NewEvent, String> {
    Ok(NewEvent {
        event_id: e.event_id,
        occurred_at: event_time(&e.time)?,
        actor_subject: e.actor_subject.clone(),
        actor_roles: e.actor_roles.clone(),
        actor_ip: e.actor_ip.clone(),
        action: e.action.clone(),
        resource: e.resource.clone(),
        outcome: outcome(e.result)?,
        request_id: e.request_id.clone(),
        trace_id: e.trace_id.clone(),
        metadata: e.metadata.clone(),
    })
}

fn event_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|err| format!("time `{text}`: {err}"))?;
    Ok(time.with_timezone(&chrono::Utc))
}

fn outcome(result: i32) -> Result<Outcome, String> {
    Outcome::from_i32(result).ok_or_else(|| format!("result {result} is not 1, 2 or 3"))
}

impl ExportedEvent {
    /// The leaf hash recomputed from the exported content with the canonical encoding (the one
    /// place verification takes a leaf from an event's fields), or why the content is unreadable.
    pub fn recomputed_leaf(&self) -> Result<Hash, String> {
        let event = to_new_event(self)?;
        let appender = self.appender()?;
        Ok(canonical::leaf_hash_of(self.sequence, &event, appender.as_ref()))
    }

    /// [`ExportedEvent::recomputed_leaf`] of an event read only to be verified: its fields are
    /// moved into the encoding, not copied.
    pub fn into_recomputed_leaf(self) -> Result<Hash, String> {
        // The same checks in the same order as `recomputed_leaf`, so that both say the same.
        let occurred_at = event_time(&self.time)?;
        let outcome = outcome(self.result)?;
        let appender = self.appender()?;
        let event = NewEvent {
            event_id: self.event_id,
            occurred_at,
            actor_subject: self.actor_subject,
            actor_roles: self.actor_roles,
            actor_ip: self.actor_ip,
            action: self.action,
            resource: self.resource,
            outcome,
            request_id: self.request_id,
            trace_id: self.trace_id,
            metadata: self.metadata,
        };
        Ok(canonical::leaf_hash_of(self.sequence, &event, appender.as_ref()))
    }

    /// The appender the leaf covers: `None` for encoding 1, all three fields for encoding 2.
    pub fn appender(&self) -> Result<Option<crate::store::Appender>, String> {
        match (self.encoding, &self.appender_subject, &self.appender_credential, &self.receive_time) {
            (1, None, None, None) => Ok(None),
            (2, Some(subject), Some(credential), Some(received)) => {
                let received_at = chrono::DateTime::parse_from_rfc3339(received)
                    .map_err(|err| format!("receive_time `{received}`: {err}"))?
                    .with_timezone(&chrono::Utc);
                Ok(Some(crate::store::Appender {
                    subject: subject.clone(),
                    credential: credential.clone(),
                    received_at,
                }))
            }
            (1 | 2, ..) => Err(format!(
                "encoding {} with appender fields that do not fit it (encoding 1 has none, 2 all three)",
                self.encoding
            )),
            (other, ..) => Err(format!("unknown encoding {other}")),
        }
    }
}

pub use crate::verify::{VerifyOptions, verify, verify_with};

/// Writes `lines` as JSON lines and flushes `out` (give it a buffered writer: a line is many
/// small writes).
pub fn write_jsonl(lines: &[ExportLine], out: &mut impl std::io::Write) -> std::io::Result<()> {
    for line in lines {
        write_line(line, out)?;
    }
    out.flush()
}

/// Writes one JSON line, without flushing (for exports written as they stream in).
pub fn write_line(line: &ExportLine, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Reads JSON lines from `reader` one at a time (the file's text is never held whole); an
/// unreadable line is an error that names its number.
pub fn read_jsonl_from(reader: impl std::io::BufRead) -> Result<Vec<ExportLine>, String> {
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if !line.trim().is_empty() {
            lines.push(serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
    }
    Ok(lines)
}

/// Reads JSON lines; an unreadable line is an error that names its number.
pub fn read_jsonl(text: &str) -> Result<Vec<ExportLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
