//! Queuing the review of a pull request's head for the gateway (`CreateForgeReview`), or the task
//! of a comment's command (`/review`, `/describe`, `/ask`, `/fix`): checked against the agent's
//! forge connections, decided by the flags like any task of its kind, recorded (and audited) with
//! the pull request and who caused it (the pusher or commenter, the author, the delivery id), and a
//! head's review superseding the reviews of older heads.

use prfix_auth::Principal;
use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use prfix_proto::prost::Message;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use prfix_runtime::trace::TraceContext;
use tonic::Status;
use uuid::Uuid;

use crate::flags::{Decider, StoredContext};
use crate::run::Engine;
use crate::tasks::{self, ActiveLimits, ForgeReviewCreated, NewTask, TaskError};

/// Longest value kept of a text field of the request.
const MAX_FIELD: usize = 200;
/// Longest question `/ask` takes (bytes; the gateway passes at most 2,000 characters).
const MAX_QUESTION: usize = 8_000;

/// The kind of task a delivery's command starts (a review when no command asked); `None` for a
/// command the agent does not run.
fn kind_of(command: Option<&pb::ForgeCommand>) -> Option<pb::TaskKind> {
    match command.map(|c| c.name.as_str()) {
        None | Some("review") => Some(pb::TaskKind::Review),
        Some("describe") => Some(pb::TaskKind::Describe),
        Some("ask") => Some(pb::TaskKind::Ask),
        Some("fix") => Some(pb::TaskKind::Fix),
        Some(_) => None,
    }
}

fn invalid(message: String) -> Status {
    to_status(TaskError::Invalid(message))
}

/// An audit record of a forge review task: `action` by `actor`, with the pull request and who
/// caused the delivery in its metadata.
fn record(
    actor: &Principal,
    request_id: &str,
    trace: Option<TraceContext>,
    action: &str,
    task_id: Uuid,
    pull: &pb::ForgePullRequest,
    extra: &[(&str, String)],
) -> audit::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            metadata
                .fields
                .insert(k.to_owned(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v)) });
        }
    };
    put("forge", pull.forge.clone());
    put("repository", pull.repository.clone());
    put("pull_request", pull.number.to_string());
    put("head_sha", pull.head_sha.clone());
    put("triggered_by", pull.triggered_by.clone());
    put("author", pull.author.clone());
    put("delivery_id", pull.delivery_id.clone());
    for (key, value) in extra {
        put(key, value.clone());
    }
    audit::AuditEvent {
        event_id: Uuid::new_v4().to_string(),
        time: Some(to_timestamp(chrono::Utc::now())),
        actor: Some(audit::Actor { subject: actor.subject.clone(), roles: actor.role_names() }),
        action: action.to_owned(),
        resource: format!("tasks/{task_id}"),
        result: audit::AuditResult::Success as i32,
        request_id: request_id.to_owned(),
        trace_id: trace.map(|t| t.trace_id()).unwrap_or_default(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

/// Checks the request's pull request: a configured connection, a repository path, a number and a
/// commit id.
fn check(engine: &Engine, pull: &pb::ForgePullRequest, command: Option<&pb::ForgeCommand>) -> Result<(), Status> {
    if engine.forges.get(&pull.forge).is_none() {
        return Err(invalid(format!(
            "pull_request.forge `{}` is not a forge connection of this agent (agent.forges)",
            pull.forge.chars().take(MAX_FIELD).collect::<String>()
        )));
    }
    let repository_ok = !pull.repository.is_empty()
        && pull.repository.len() <= MAX_FIELD
        && pull.repository.contains('/')
        && !pull.repository.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        && pull.repository.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if !repository_ok {
        return Err(invalid("pull_request.repository must be a repository path like `owner/name`".to_owned()));
    }
    if pull.number == 0 {
        return Err(invalid("pull_request.number must be a pull request's number".to_owned()));
    }
    if let Some(command) = command {
        if kind_of(Some(command)).is_none() {
            return Err(invalid(format!(
                "command.name `{}` is not a command the agent runs (review, describe, ask, fix)",
                command.name.chars().take(MAX_FIELD).collect::<String>()
            )));
        }
        let most = if command.name == "ask" { MAX_QUESTION } else { MAX_FIELD };
        if command.argument.len() > most {
            return Err(invalid(format!("command.argument is over {most} bytes")));
        }
    }
    // A command's review reads the head from the forge when the delivery does not say it.
    let sha_ok = (7..=64).contains(&pull.head_sha.len()) && pull.head_sha.chars().all(|c| c.is_ascii_hexdigit());
    let head_read_later = command.is_some() && pull.head_sha.is_empty();
    if !(sha_ok || head_read_later) {
        return Err(invalid("pull_request.head_sha must be a commit id (hexadecimal)".to_owned()));
    }
    for (field, value) in
        [("triggered_by", &pull.triggered_by), ("author", &pull.author), ("delivery_id", &pull.delivery_id)]
    {
        if value.len() > MAX_FIELD {
            return Err(invalid(format!("pull_request.{field} is over {MAX_FIELD} bytes")));
        }
    }
    Ok(())
}

/// Queues the review (or finds the one of the same head), cancelling reviews of older heads.
pub async fn create(
    engine: &Engine,
    principal: &Principal,
    request_id: String,
    trace: Option<TraceContext>,
    message: pb::CreateForgeReviewRequest,
) -> Result<ForgeReviewCreated, Status> {
    let pb::CreateForgeReviewRequest { pull_request, full, model: _, command, coder_model: _ } = message;
    let pull = pull_request.ok_or_else(|| invalid("pull_request is required".to_owned()))?;
    check(engine, &pull, command.as_ref())?;
    let settings = &engine.settings;
    let context = StoredContext {
        user: principal.subject.clone(),
        roles: principal.role_names(),
        repository: pull.repository.clone(),
        forge: pull.forge.clone(),
        model: String::new(),
    };
    let mut decider = Decider::new(&engine.flags, context);
    let model = decider.model("reasoning", "", &settings.reasoning_model);
    let kind = kind_of(command.as_ref()).unwrap_or(pb::TaskKind::Review);
    let coder_model = match kind {
        pb::TaskKind::Fix => decider.model("coding", "", &settings.coding_model),
        _ => String::new(),
    };
    decider.allow(kind, &model).map_err(to_status)?;
    if kind == pb::TaskKind::Review {
        decider.review_prompt();
    }
    decider.forge_post();
    let task_id = Uuid::now_v7();
    // A question can be long: the record keeps its start.
    let command_text = command
        .as_ref()
        .map(|c| format!("/{} {}", c.name, c.argument).trim_end().chars().take(MAX_FIELD).collect::<String>());
    let action = format!("agent.task.create.{}", kind.as_str_name().trim_start_matches("TASK_KIND_").to_lowercase());
    let stored = pb::CreateForgeReviewRequest {
        pull_request: Some(pull.clone()),
        full,
        model: model.clone(),
        command,
        coder_model,
    }
    .encode_to_vec();
    let mut extra: Vec<(&str, String)> = vec![("kind", kind.as_str_name().to_owned())];
    extra.extend(command_text.into_iter().map(|c| ("command", c)));
    let mut creation = record(principal, &request_id, trace, &action, task_id, &pull, &extra);
    if let Some(metadata) = creation.metadata.as_mut() {
        decider.record.audit_into(metadata);
    }
    let task = NewTask {
        task_id,
        kind: kind as i16,
        // Limits per owner apply per forge connection.
        owner: format!("forge:{}", pull.forge),
        api_key_id: None,
        eval_run_id: None,
        request: stored,
        audit: creation,
        traceparent: trace.map(|t| t.header_value()).unwrap_or_default(),
        flags: decider.record,
        forge: Some(pull.clone()),
    };
    let limits = ActiveLimits { per_owner: settings.max_active_tasks, total: settings.max_active_tasks };
    let cancelled = |old: Uuid| {
        let reason = ("reason", format!("superseded by the review of {}", pull.head_sha));
        let kind = ("kind", kind.as_str_name().to_owned());
        record(principal, &request_id, trace, "agent.task.cancel", old, &pull, &[kind, reason])
    };
    tasks::create_forge_review(&engine.pool, task, limits, full, &cancelled).await.map_err(to_status)
}
