//! Denials at the audit service's own port go into its own log: the auth layer's aggregated
//! records ([`prfix_auth::denials`]) are appended through the writer, with this service as the
//! appender, as it appends its other records of refusals.

use std::sync::Arc;

use chrono::Utc;
use prfix_auth::denials::DenialSink;
use prfix_proto::audit::v1 as pb;
use uuid::Uuid;

use crate::admission::{SELF_CREDENTIAL, SELF_SUBJECT};
use crate::store::{Appender, NewEvent, Outcome, Submission};
use crate::writer::Writer;

/// Appends denial records to this service's log.
pub struct OwnLog {
    writer: Writer,
}

impl OwnLog {
    /// A sink appending through `writer`.
    pub fn new(writer: Writer) -> Arc<Self> {
        Arc::new(Self { writer })
    }
}

/// The stored form of a denial record; `None` (logged) when it cannot be stored.
fn submission(event: &pb::AuditEvent) -> Option<Submission> {
    let received_at = crate::canonical::storable(Utc::now());
    let occurred_at = event
        .time
        .as_ref()
        .and_then(prfix_runtime::time::from_timestamp)
        .map_or(received_at, crate::canonical::storable);
    let actor = event.actor.clone().unwrap_or_default();
    let new = NewEvent {
        event_id: Uuid::parse_str(&event.event_id).ok()?,
        occurred_at,
        actor_subject: actor.subject,
        actor_roles: actor.roles,
        actor_ip: event.actor_ip.clone(),
        action: event.action.clone(),
        resource: event.resource.clone(),
        outcome: Outcome::from_i32(event.result)?,
        request_id: event.request_id.clone(),
        trace_id: event.trace_id.clone(),
        metadata: event.metadata.as_ref().map_or_else(|| serde_json::json!({}), crate::json::struct_to_json),
    };
    let appender = Appender { subject: SELF_SUBJECT.to_owned(), credential: SELF_CREDENTIAL.to_owned(), received_at };
    Some(Submission { event: new, appender })
}

#[tonic::async_trait]
impl DenialSink for OwnLog {
    async fn write(&self, events: Vec<pb::AuditEvent>) {
        let mut submissions = Vec::with_capacity(events.len());
        let mut unstored = Vec::new();
        for event in &events {
            match submission(event) {
                Some(s) => submissions.push(s),
                None => unstored.push((event, "the record does not convert to a stored event".to_owned())),
            }
        }
        if !submissions.is_empty()
            && let Err(error) = self.writer.append(submissions).await
        {
            let reason = prfix_runtime::error::chain(&error);
            unstored = events.iter().map(|e| (e, reason.clone())).collect();
        }
        for (event, error) in unstored {
            prfix_auth::denials::log_unwritten(event, &error);
        }
    }
}
