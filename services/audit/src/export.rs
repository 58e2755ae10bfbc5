//! The export file (JSON lines: events in sequence order, each checkpoint after the last event it
//! covers) and its offline verification with only the checkpoint public key.

use std::collections::BTreeMap;

use prfix_proto::audit::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::checkpoint::VerifierKey;
use crate::merkle::{self, Hash};
use crate::store::{NewEvent, Outcome};

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
            })))
        }
        Some(pb::export_events_response::Item::Checkpoint(c)) => {
            Ok(ExportLine::Checkpoint { signed_note: c.signed_note })
        }
        None => Err("an export item with neither event nor checkpoint".to_owned()),
    }
}

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The event concerned.
    pub sequence: Option<i64>,
    /// The checkpoint concerned (its tree size).
    pub tree_size: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sequence, self.tree_size) {
            (Some(s), _) => write!(f, "event {s}: {}", self.message),
            (None, Some(t)) => write!(f, "checkpoint {t}: {}", self.message),
            (None, None) => f.write_str(&self.message),
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
    /// Problems, in log order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn event_problem(sequence: i64, message: impl Into<String>) -> Problem {
    Problem { sequence: Some(sequence), tree_size: None, message: message.into() }
}

fn checkpoint_problem(size: u64, message: impl Into<String>) -> Problem {
    Problem { sequence: None, tree_size: Some(size), message: message.into() }
}

fn to_new_event(e: &ExportedEvent) -> Result<NewEvent, String> {
    let time = chrono::DateTime::parse_from_rfc3339(&e.time).map_err(|err| format!("time `{}`: {err}", e.time))?;
    Ok(NewEvent {
        event_id: e.event_id,
        occurred_at: time.with_timezone(&chrono::Utc),
        actor_subject: e.actor_subject.clone(),
        actor_roles: e.actor_roles.clone(),
        actor_ip: e.actor_ip.clone(),
        action: e.action.clone(),
        resource: e.resource.clone(),
        outcome: Outcome::from_i32(e.result).ok_or_else(|| format!("result {} is not 1, 2 or 3", e.result))?,
        request_id: e.request_id.clone(),
        trace_id: e.trace_id.clone(),
        metadata: e.metadata.clone(),
    })
}

/// Verifies an export with only the checkpoint key: each event's leaf hash against its content,
/// the chain, the sequence without gaps, each checkpoint's signature and Merkle root over the
/// recomputed leaves, consistency between checkpoints, and that every event is covered.
///
/// `keys` are the keys trusted to have signed checkpoints: after a key rotation, the old key for the
/// checkpoints signed before it and the new one for those after. Each checkpoint must verify with one.
pub fn verify(lines: &[ExportLine], keys: &[VerifierKey]) -> Report {
    let mut report = Report::default();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut chain = [0u8; 32];
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    for line in lines {
        match line {
            ExportLine::Event(e) => {
                report.events += 1;
                let expected = i64::try_from(leaves.len()).unwrap_or(i64::MAX) + 1;
                if e.sequence != expected {
                    report.problems.push(event_problem(
                        e.sequence,
                        format!("found where event {expected} belongs: events are missing, added or reordered"),
                    ));
                }
                let leaf = match to_new_event(e) {
                    Ok(event) => canonical::leaf_hash(e.sequence, &event),
                    Err(why) => {
                        report.problems.push(event_problem(e.sequence, format!("unreadable: {why}")));
                        merkle::leaf_hash(e.event_id.as_bytes())
                    }
                };
                if hex::encode(leaf) != e.leaf_hash {
                    report.problems.push(event_problem(
                        e.sequence,
                        "its content does not match its leaf hash (changed after it was written)",
                    ));
                }
                chain = canonical::chain_hash(&chain, &leaf);
                if hex::encode(chain) != e.chain_hash {
                    report
                        .problems
                        .push(event_problem(e.sequence, "its chain hash does not follow from the events before it"));
                }
                leaves.push(leaf);
            }
            ExportLine::Checkpoint { signed_note } => match verify_note(signed_note, keys) {
                Err(why) => report.problems.push(Problem {
                    sequence: None,
                    tree_size: None,
                    message: format!("a checkpoint is refused: {why}"),
                }),
                Ok((_origin, size, root)) => {
                    report.checkpoints += 1;
                    let Ok(n) = usize::try_from(size) else { continue };
                    if n > leaves.len() {
                        report.problems.push(checkpoint_problem(
                            size,
                            format!(
                                "is signed over {size} events, but only {} come before it: events were removed",
                                leaves.len()
                            ),
                        ));
                    } else if merkle::root(&leaves[..n]) != root {
                        report
                            .problems
                            .push(checkpoint_problem(size, "its signed root does not match the events it covers"));
                    }
                    roots.insert(size, root);
                }
            },
        }
    }
    // Consistency between consecutive checkpoints, with proofs from the recomputed leaves.
    let sizes: Vec<(u64, Hash)> = roots.into_iter().collect();
    for pair in sizes.windows(2) {
        let ((a, ra), (b, rb)) = (pair[0], pair[1]);
        let Ok(bn) = usize::try_from(b) else { continue };
        if bn > leaves.len() {
            continue;
        }
        let consistent = usize::try_from(a)
            .ok()
            .and_then(|an| merkle::consistency_proof(an, &leaves[..bn]))
            .is_some_and(|proof| merkle::verify_consistency(a, b, &proof, &ra, &rb));
        if !consistent {
            report.problems.push(checkpoint_problem(b, format!("is not consistent with checkpoint {a}")));
        }
    }
    let covered = sizes.last().map_or(0, |(s, _)| *s);
    if report.checkpoints == 0 && !leaves.is_empty() {
        report.problems.push(Problem {
            sequence: None,
            tree_size: None,
            message: "no signed checkpoint covers the events".to_owned(),
        });
    } else if (covered as usize) < leaves.len() {
        report.problems.push(Problem {
            sequence: Some(covered as i64 + 1),
            tree_size: None,
            message: format!("events {}..{} are not covered by a signed checkpoint", covered + 1, leaves.len()),
        });
    }
    report
}

/// The note's origin, size and root when one of `keys` signed it; else why not (a malformed note is
/// said as such, a signature by none of the keys names them all).
fn verify_note(note: &str, keys: &[VerifierKey]) -> Result<(String, u64, Hash), String> {
    let mut first_error = None;
    for key in keys {
        match key.verify(note) {
            Ok(found) => return Ok(found),
            Err(e @ crate::checkpoint::NoteError::Malformed(_)) => return Err(e.to_string()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (keys.len(), first_error) {
        (1, Some(e)) => Err(e.to_string()),
        _ => Err(format!(
            "checkpoint signature does not verify with any of the keys {}",
            keys.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Writes `lines` as JSON lines.
pub fn write_jsonl(lines: &[ExportLine], out: &mut impl std::io::Write) -> std::io::Result<()> {
    for line in lines {
        serde_json::to_writer(&mut *out, line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads JSON lines; an unreadable line is an error that names its number.
pub fn read_jsonl(text: &str) -> Result<Vec<ExportLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
