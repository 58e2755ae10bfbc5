//! The gRPC face of the audit log: converts messages, calls the store, maps errors (the export
//! stream is `crate::export_stream`).

use base64::Engine;
use deadpool_postgres::Pool;
use prfix_auth::Principal;
use prfix_proto::audit::v1 as pb;
use prfix_proto::audit::v1::audit_service_server::AuditService;
use prfix_runtime::error::{ServiceError, to_status};
use prfix_runtime::time::{from_timestamp, to_timestamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::admission::{Admission, Refusal, refusal_record};
use crate::checkpointer::{self, Checkpointer, StoredCheckpoint};
use crate::export::{ExportLine, ExportedEvent};
use crate::json::{json_to_struct, struct_to_json};
use crate::store::{self, Appended, Appender, AuditError, Filter, NewEvent, Outcome, StoredEvent, Submission};
use crate::tree;
use crate::verify::{TrustedCheckpoint, Verifier, VerifyOptions};
use crate::writer::Writer;

/// Default and largest ListEvents page.
const DEFAULT_PAGE: i32 = 100;
const MAX_PAGE: i32 = 1_000;

/// The AuditService implementation.
pub struct AuditApi {
    pool: Pool,
    writer: Writer,
    checkpointer: Checkpointer,
    checkpoint_every: i64,
    previous_keys: Vec<crate::checkpoint::VerifierKey>,
    admission: Admission,
}

impl AuditApi {
    /// Serves the log in `pool`, appending through `writer`; wakes `checkpointer` every
    /// `checkpoint_every` events. `Verify`
    /// trusts the checkpointer's key and `previous_keys` (keys rotated out).
    pub fn new(
        pool: Pool,
        writer: Writer,
        checkpointer: Checkpointer,
        checkpoint_every: i64,
        previous_keys: Vec<crate::checkpoint::VerifierKey>,
    ) -> Self {
        Self {
            writer,
            pool,
            checkpointer,
            checkpoint_every,
            previous_keys,
            admission: Admission { max_clock_skew: std::time::Duration::from_secs(300) },
        }
    }

    /// The same API with these admission rules (clock skew) instead of the defaults.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Checks each event of a call by `principal` received at `received_at`: the admitted ones as
    /// submissions with their place in the call, the refused ones with their refusal. Refusals that
    /// are audited are appended here, before the caller hears of them.
    async fn admit(
        &self,
        principal: &Principal,
        events: Vec<NewEvent>,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> (Vec<(usize, Submission)>, Vec<(usize, Refusal)>) {
        let mut admitted = Vec::with_capacity(events.len());
        let mut refused = Vec::new();
        let mut records = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            match self.admission.check(principal, &event, index, received_at) {
                Ok(()) => admitted.push((index, Submission { event, appender: Appender::of(principal, received_at) })),
                Err(refusal) => {
                    tracing::warn!(
                        appender = %principal.subject,
                        credential = %principal.credential(),
                        action = %event.action,
                        reason = %refusal,
                        "audit append refused"
                    );
                    if refusal.is_audited() {
                        let (event, appender) = refusal_record(principal, &event, &refusal, received_at);
                        records.push(Submission { event, appender });
                    }
                    refused.push((index, refusal));
                }
            }
        }
        if !records.is_empty() {
            match self.writer.append(records).await {
                Ok(appended) => self.appended(appended.iter().map(|a| a.sequence)),
                Err(error) => tracing::error!(
                    error = %prfix_runtime::error::chain(&error),
                    appender = %principal.subject,
                    "the record of a refused append could not be appended"
                ),
            }
        }
        (admitted, refused)
    }

    fn appended(&self, sequences: impl Iterator<Item = i64>) {
        if sequences.into_iter().any(|s| s % self.checkpoint_every == 0) {
            self.checkpointer.wake.notify_one();
        }
    }

    /// A connection of the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, Status> {
        self.pool.get().await.map_err(|e| to_status(AuditError::from(e)))
    }

    async fn checkpoint_of(
        &self,
        client: &deadpool_postgres::Object,
        tree_size: i64,
    ) -> Result<StoredCheckpoint, Status> {
        let wanted = (tree_size > 0).then_some(tree_size);
        checkpointer::get(client, wanted).await.map_err(to_status)?.ok_or_else(|| match wanted {
            Some(size) => Status::not_found(format!("no checkpoint of tree size {size}")),
            None => Status::not_found("no checkpoint yet: the log is empty"),
        })
    }

    /// The last sequence an export carries. A checkpoint is signed first, so that everything
    /// exported is covered by one. When the log no longer extends its last checkpoint (rows deleted,
    /// added or changed behind the service's back) nothing is signed, and the export carries what is
    /// stored, up to the highest sequence or checkpoint, so that a verifier can name what is wrong.
    async fn export_end(&self) -> Result<i64, Status> {
        match self.checkpointer.checkpoint_now().await {
            Ok(size) => Ok(size),
            Err(AuditError::Invalid(why)) => {
                tracing::error!(%why, "the log cannot be checkpointed; exporting it as it is stored");
                let client = self.client().await?;
                let head = store::head(&client).await.map_err(to_status)?;
                let signed = checkpointer::get(&client, None).await.map_err(to_status)?.map_or(0, |c| c.tree_size);
                Ok(head.max(signed))
            }
            Err(e) => Err(to_status(e)),
        }
    }

    /// Verifies the whole log up to the latest checkpoint (or as stored, see `export_end`) as an
    /// export of it would be verified, a page at a time through one [`Verifier`]: the log is never
    /// held whole. The checkpoints' sizes are known before the events are read, so each is checked
    /// wherever the store puts it.
    async fn verify_stored(&self, options: VerifyOptions) -> Result<crate::export::Report, Status> {
        let size = self.export_end().await?;
        let checkpoints = checkpointer::range(&self.pool, 1, size).await.map_err(to_status)?;
        let sizes = checkpoints.iter().filter_map(|c| u64::try_from(c.tree_size).ok());
        let mut verifier = Verifier::wanting(options, sizes.collect::<Vec<_>>());
        let mut next = 1;
        let mut pending = checkpoints.into_iter().peekable();
        while next <= size {
            let page = store::range(&self.pool, next, size, crate::export_stream::PAGE).await.map_err(to_status)?;
            next += crate::export_stream::PAGE;
            for event in page {
                let sequence = event.sequence;
                verifier.push(&ExportLine::Event(Box::new(ExportedEvent::from_stored(event))));
                while let Some(c) = pending.next_if(|c| c.tree_size == sequence) {
                    verifier.push_checkpoint(&c.signed_note);
                }
            }
        }
        for c in pending {
            verifier.push_checkpoint(&c.signed_note);
        }
        Ok(verifier.finish())
    }
}

pub(crate) fn checkpoint_message(c: StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        origin: c.signed_note.lines().next().unwrap_or_default().to_owned(),
        tree_size: c.tree_size,
        root_hash: c.root_hash,
        time: Some(to_timestamp(c.created_at)),
        signed_note: c.signed_note,
    }
}

/// The verified caller, as the auth layer put it in the request: the appender of what it sends.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call carries no authenticated caller"))
}

fn invalid(msg: impl Into<String>) -> Status {
    to_status(AuditError::Invalid(msg.into()))
}

/// The domain event of a submitted message; `index` names it in errors.
fn to_new_event(event: pb::AuditEvent, index: usize) -> Result<NewEvent, Status> {
    let pb::AuditEvent {
        event_id,
        sequence: _,
        time,
        actor,
        actor_ip,
        action,
        resource,
        result,
        request_id,
        trace_id,
        metadata,
        record_time: _,
        leaf_hash: _,
        chain_hash: _,
        // Set by the service from the verified caller and its clock, never taken from a request.
        appender: _,
        receive_time: _,
        encoding: _,
    } = event;
    let field = |name: &str| format!("events[{index}].{name}");
    let event_id = Uuid::parse_str(&event_id)
        .map_err(|_| invalid(format!("{} must be a UUID, got `{event_id}`", field("event_id"))))?;
    let occurred_at = time
        .as_ref()
        .ok_or_else(|| invalid(format!("{} is required", field("time"))))
        .and_then(|t| from_timestamp(t).ok_or_else(|| invalid(format!("{} is out of range", field("time")))))?;
    let pb::Actor { subject, roles } = actor.unwrap_or_default();
    let outcome = Outcome::from_i32(result)
        .ok_or_else(|| invalid(format!("{} must be SUCCESS, FAILURE or DENIED", field("result"))))?;
    Ok(NewEvent {
        event_id,
        occurred_at,
        actor_subject: subject,
        actor_roles: roles,
        actor_ip,
        action,
        resource,
        outcome,
        request_id,
        trace_id,
        metadata: metadata.as_ref().map_or_else(|| serde_json::json!({}), struct_to_json),
    })
}

pub(crate) fn to_proto(stored: StoredEvent) -> pb::AuditEvent {
    let StoredEvent { sequence, recorded_at, leaf_hash, chain_hash, event, appender } = stored;
    let encoding = i32::from(crate::canonical::encoding_of(appender.as_ref()));
    let (appender, receive_time) = match appender {
        Some(Appender { subject, credential, received_at }) => {
            (Some(pb::Appender { subject, credential }), Some(to_timestamp(received_at)))
        }
        None => (None, None),
    };
    pb::AuditEvent {
        event_id: event.event_id.to_string(),
        sequence,
        time: Some(to_timestamp(event.occurred_at)),
        actor: Some(pb::Actor { subject: event.actor_subject, roles: event.actor_roles }),
        actor_ip: event.actor_ip,
        action: event.action,
        resource: event.resource,
        result: event.outcome as i32,
        request_id: event.request_id,
        trace_id: event.trace_id,
        metadata: Some(json_to_struct(&event.metadata)),
        record_time: Some(to_timestamp(recorded_at)),
        leaf_hash,
        chain_hash,
        appender,
        receive_time,
        encoding,
    }
}

fn encode_page_token(after: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{after}"))
}

fn decode_page_token(token: &str) -> Result<i64, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("after:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| invalid("page_token is not a token this service issued"))
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// Copies of the events for [`log_appended`], only when debug logging is on (none otherwise).
fn logged(submissions: &[Submission]) -> Vec<NewEvent> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        submissions.iter().map(|s| s.event.clone()).collect()
    } else {
        Vec::new()
    }
}

/// One log line per event newly in the log, with the trace and request ids it carries, so that an
/// operator can follow a traced call into the audit service's log. At DEBUG: every call is audited,
/// so at INFO these lines would double the access lines.
fn log_appended(events: &[NewEvent], appended: &[Appended]) {
    for (event, appended) in events.iter().zip(appended).filter(|(_, a)| !a.duplicate) {
        tracing::debug!(
            sequence = appended.sequence,
            event_id = %event.event_id,
            action = %event.action,
            actor = %event.actor_subject,
            trace_id = %event.trace_id,
            event_request_id = %event.request_id,
            "audit event appended"
        );
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let received_at = crate::canonical::storable(chrono::Utc::now());
        let principal = caller(&request)?;
        let pb::AppendRequest { event } = request.into_inner();
        let event = to_new_event(event.ok_or_else(|| invalid("event is required"))?, 0)?;
        event.validate(0).map_err(to_status)?;
        let (admitted, refused) = self.admit(&principal, vec![event], received_at).await;
        if let Some((_, refusal)) = refused.into_iter().next() {
            return Err(to_status(refusal));
        }
        let submissions: Vec<Submission> = admitted.into_iter().map(|(_, s)| s).collect();
        let events = logged(&submissions);
        let appended = self.writer.append(submissions).await.map_err(to_status)?;
        log_appended(&events, &appended);
        self.appended(appended.iter().filter(|a| !a.duplicate).map(|a| a.sequence));
        let first = appended.first().ok_or_else(|| Status::internal("append returned no result"))?;
        Ok(Response::new(pb::AppendResponse { sequence: first.sequence, duplicate: first.duplicate }))
    }

    async fn append_batch(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let received_at = crate::canonical::storable(chrono::Utc::now());
        let principal = caller(&request)?;
        let pb::AppendBatchRequest { events } = request.into_inner();
        if events.is_empty() {
            return Err(invalid("events must not be empty"));
        }
        if events.len() > store::MAX_BATCH {
            return Err(invalid(format!("a batch holds at most {} events, got {}", store::MAX_BATCH, events.len())));
        }
        // A malformed event fails the whole batch (a client bug); policy refusals are per event.
        let events = events.into_iter().enumerate().map(|(i, e)| to_new_event(e, i)).collect::<Result<Vec<_>, _>>()?;
        for (i, e) in events.iter().enumerate() {
            e.validate(i).map_err(to_status)?;
        }
        let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
        let (admitted, refused) = self.admit(&principal, events, received_at).await;
        let (places, submissions): (Vec<usize>, Vec<Submission>) = admitted.into_iter().unzip();
        let stored = logged(&submissions);
        let appended = self.writer.append(submissions).await.map_err(to_status)?;
        log_appended(&stored, &appended);
        self.appended(appended.iter().filter(|a| !a.duplicate).map(|a| a.sequence));
        let mut results: Vec<pb::AppendResult> =
            ids.into_iter().map(|event_id| pb::AppendResult { event_id, ..Default::default() }).collect();
        for (place, a) in places.into_iter().zip(appended) {
            results[place].sequence = a.sequence;
            results[place].duplicate = a.duplicate;
        }
        for (place, refusal) in refused {
            results[place].refusal_code = refusal.code().grpc() as i32;
            results[place].refusal = refusal.to_string();
        }
        Ok(Response::new(pb::AppendBatchResponse { results }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let pb::ListEventsRequest {
            start_time,
            end_time,
            actor,
            action,
            resource,
            result,
            page_size,
            page_token,
            newest_first,
        } = request.into_inner();
        let time = |t: Option<prost_types::Timestamp>, name: &str| -> Result<_, Status> {
            t.map(|t| from_timestamp(&t).ok_or_else(|| invalid(format!("{name} is out of range")))).transpose()
        };
        let outcome = match result {
            0 => None,
            n => Some(Outcome::from_i32(n).ok_or_else(|| invalid(format!("result {n} is not a known AuditResult")))?),
        };
        if page_size < 0 {
            return Err(invalid("page_size must not be negative"));
        }
        let page_size = if page_size == 0 { DEFAULT_PAGE } else { page_size.min(MAX_PAGE) };
        for (name, value) in [("actor", &actor), ("action", &action), ("resource", &resource)] {
            if value.len() > 1024 || value.contains('\0') {
                return Err(invalid(format!("{name} must be at most 1024 characters without NUL")));
            }
        }
        let filter = Filter {
            start: time(start_time, "start_time")?,
            end: time(end_time, "end_time")?,
            actor: non_empty(actor),
            action: non_empty(action),
            resource: non_empty(resource),
            outcome,
        };
        let after = decode_page_token(&page_token)?;
        // One more than asked tells whether there is a next page.
        let order = if newest_first { store::Order::NewestFirst } else { store::Order::OldestFirst };
        let mut events =
            store::list(&self.pool, &filter, order, after, i64::from(page_size) + 1).await.map_err(to_status)?;
        let next_page_token = if events.len() > page_size as usize {
            events.truncate(page_size as usize);
            events.last().map(|e| encode_page_token(e.sequence)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let pb::GetCheckpointRequest { tree_size } = request.into_inner();
        let client = self.client().await?;
        let checkpoint = self.checkpoint_of(&client, tree_size).await?;
        Ok(Response::new(pb::GetCheckpointResponse { checkpoint: Some(checkpoint_message(checkpoint)) }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let pb::GetInclusionProofRequest { sequence, tree_size } = request.into_inner();
        let client = self.client().await?;
        let checkpoint = self.checkpoint_of(&client, tree_size).await?;
        if sequence < 1 || sequence > checkpoint.tree_size {
            return Err(invalid(format!("sequence {sequence} is not in the tree of size {}", checkpoint.tree_size)));
        }
        let index = u64::try_from(sequence - 1).map_err(|_| invalid("sequence out of range"))?;
        let size = u64::try_from(checkpoint.tree_size).map_err(|_| invalid("tree size out of range"))?;
        let (leaf, proof) = tree::Reader::new(&client).inclusion_proof(index, size).await.map_err(to_status)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            leaf_index: sequence - 1,
            tree_size: checkpoint.tree_size,
            leaf_hash: leaf.to_vec(),
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(checkpoint_message(checkpoint)),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let pb::GetConsistencyProofRequest { first_tree_size, second_tree_size } = request.into_inner();
        let client = self.client().await?;
        let second = self.checkpoint_of(&client, second_tree_size).await?;
        if first_tree_size < 1 || first_tree_size > second.tree_size {
            return Err(invalid(format!(
                "first_tree_size must be between 1 and {}, got {first_tree_size}",
                second.tree_size
            )));
        }
        let first = u64::try_from(first_tree_size).map_err(|_| invalid("first_tree_size out of range"))?;
        let size = u64::try_from(second.tree_size).map_err(|_| invalid("tree size out of range"))?;
        let proof = tree::Reader::new(&client).consistency_proof(first, size).await.map_err(to_status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            first_tree_size,
            second_tree_size: second.tree_size,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    type ExportEventsStream = crate::export_stream::ExportStream;

    async fn export_events(
        &self,
        request: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let pb::ExportEventsRequest { start_sequence, end_sequence, format } = request.into_inner();
        if start_sequence < 0 || end_sequence < 0 {
            return Err(invalid("start_sequence and end_sequence must not be negative"));
        }
        let jsonl = match pb::ExportFormat::try_from(format) {
            Ok(pb::ExportFormat::Unspecified) => false,
            Ok(pb::ExportFormat::Jsonl) => true,
            Err(_) => return Err(invalid(format!("format {format} is not an ExportFormat (0 items, 1 JSON lines)"))),
        };
        // The end is fixed when the call starts, so an export is a consistent prefix of the log; a
        // checkpoint is signed first so that everything exported is covered by one (unless the log
        // was tampered with: then it is exported as stored).
        let head = self.export_end().await?;
        let end = if end_sequence == 0 { head } else { end_sequence.min(head) };
        let checkpoints = checkpointer::range(&self.pool, start_sequence.max(1), end).await.map_err(to_status)?;
        let items = crate::export_stream::stream(self.pool.clone(), start_sequence.max(1), end, checkpoints, jsonl);
        Ok(Response::new(items))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let pb::VerifyRequest { tree_size: _, trusted_checkpoint } = request.into_inner();
        let key = crate::checkpoint::VerifierKey::parse(&self.checkpointer.verifier_key())
            .map_err(|e| Status::internal(e.to_string()))?;
        let keys: Vec<_> = std::iter::once(key).chain(self.previous_keys.iter().cloned()).collect();
        // The caller's memory of the log: checked before any work, so a note this log did not sign
        // is refused as the caller's mistake rather than reported as the log's.
        let trusted = match trusted_checkpoint.as_str() {
            "" => None,
            note => Some(
                TrustedCheckpoint::from_note(note, &keys, "in the trusted checkpoint given".to_owned())
                    .map_err(|why| invalid(format!("trusted_checkpoint: {why}")))?,
            ),
        };
        let report = self.verify_stored(VerifyOptions { keys, trusted }).await?;
        Ok(Response::new(pb::VerifyResponse {
            ok: report.ok(),
            events_checked: i64::try_from(report.events).unwrap_or(i64::MAX),
            checkpoints_checked: i64::try_from(report.checkpoints).unwrap_or(i64::MAX),
            problems: report
                .problems
                .iter()
                .map(|p| pb::VerifyProblem {
                    sequence: p.sequence.unwrap_or(0),
                    last_sequence: p.last_sequence.unwrap_or(0),
                    tree_size: p.tree_size.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
                    message: p.message.clone(),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_page_token(&encode_page_token(42)).expect("decodes"), 42);
        assert_eq!(decode_page_token("").expect("empty is the start"), 0);
        assert_eq!(decode_page_token("bm9wZQ").expect_err("refused").code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_bad_event_id_is_named() {
        let event = pb::AuditEvent { event_id: "nope".into(), ..Default::default() };
        let status = to_new_event(event, 3).expect_err("refused");
        assert!(status.message().contains("events[3].event_id"), "{}", status.message());
    }
}
