//! The gRPC face of the agent: converts messages, calls the task store and Ollama, maps errors.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prfix_auth::{Principal, Role};
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_server::AgentService;
use prfix_proto::audit::v1 as audit;
use prfix_proto::prost::Message;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use prfix_runtime::trace::TraceContext;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::changeset;
use crate::flags::{Decider, StoredContext, TaskFlags};
use crate::ollama::{OllamaError, canonical_model};
use crate::run::Engine;
use crate::tasks::{self, ActiveLimits, NewTask, TaskError, TaskFilter, TaskRow};
use crate::worker::Running;

mod convert;
mod models;
mod watch;

use convert::{decode_page_token, encode_page_token, to_proto};
use watch::async_stream_events;

const DEFAULT_PAGE: i32 = 50;
/// Longest extra review instructions, in bytes.
const MAX_INSTRUCTIONS: usize = 4096;
const MAX_PAGE: i32 = 500;

/// The AgentService implementation.
pub struct AgentApi {
    engine: Arc<Engine>,
    running: Running,
}

impl AgentApi {
    /// Serves tasks and models with the engine's pool and Ollama client.
    pub fn new(engine: Arc<Engine>, running: Running) -> Self {
        Self { engine, running }
    }
}

fn invalid(msg: impl Into<String>) -> Status {
    to_status(TaskError::Invalid(msg.into()))
}

fn parse_task_id(id: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id).map_err(|_| invalid(format!("task_id must be a UUID, got `{id}`")))
}

/// The caller, as the auth layer put it in the request.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call carries no authenticated caller"))
}

/// Where a call came from: the gateway's request id and this call's span in the caller's trace
/// (the server layer puts it in `traceparent`).
struct Origin {
    request_id: String,
    trace: Option<TraceContext>,
}

fn origin<T>(request: &Request<T>) -> Origin {
    Origin {
        request_id: request.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        trace: TraceContext::from_metadata(request.metadata()),
    }
}

/// A task the caller may not see is reported as missing, so ids of others' tasks reveal nothing.
fn visible(principal: &Principal, row: TaskRow) -> Result<TaskRow, Status> {
    if principal.has(Role::Admin) || row.owner == principal.subject {
        Ok(row)
    } else {
        Err(to_status(TaskError::NotFound(row.task_id)))
    }
}

/// The longest eval run id.
const MAX_EVAL_RUN_ID: usize = 64;

/// An eval run id as the options carry it (`field` names it in the error): empty is none; else at
/// most [`MAX_EVAL_RUN_ID`] characters of `A-Za-z0-9._:-`, so it is safe in logs, audit metadata and
/// file names alike.
fn eval_run_id(field: &str, id: &str) -> Result<Option<String>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_EVAL_RUN_ID {
        return Err(invalid(format!("{field} is {} characters, over the limit of {MAX_EVAL_RUN_ID}", id.len())));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))) {
        return Err(invalid(format!("{field} may hold only A-Za-z0-9._:- characters, not {bad:?}")));
    }
    Ok(Some(id.to_owned()))
}

/// The audit record of a call on a task: the caller as actor, the API key it used (if any) in the
/// metadata as `api_key_id`, so the record names both the user and the credential, and the eval
/// run the task belongs to (if any) as `eval_run_id`. A creation's record also names the flags and
/// variants the task runs with.
fn audit_record(
    principal: &Principal,
    origin: &Origin,
    action: &str,
    task_id: Uuid,
    kind: &str,
    flags: Option<&TaskFlags>,
    eval_run: Option<&str>,
) -> audit::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    let text = |v: &str| prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v.to_owned())) };
    metadata.fields.insert("kind".to_owned(), text(kind));
    if let Some(key) = &principal.key_id {
        metadata.fields.insert("api_key_id".to_owned(), text(key));
    }
    if let Some(flags) = flags {
        flags.audit_into(&mut metadata);
    }
    if let Some(run) = eval_run {
        metadata.fields.insert("eval_run_id".to_owned(), text(run));
    }
    audit::AuditEvent {
        event_id: Uuid::new_v4().to_string(),
        time: Some(to_timestamp(chrono::Utc::now())),
        actor: Some(audit::Actor { subject: principal.subject.clone(), roles: principal.role_names() }),
        action: action.to_owned(),
        resource: format!("tasks/{task_id}"),
        result: audit::AuditResult::Success as i32,
        request_id: origin.request_id.clone(),
        trace_id: origin.trace.map(|t| t.trace_id()).unwrap_or_default(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

/// What a new task was given before it is queued: the models it uses (each checked to be pulled)
/// and the record of the flags evaluated for it.
struct Decided {
    models: Vec<String>,
    flags: TaskFlags,
    /// The eval run the task belongs to.
    eval_run: Option<String>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchTaskResponse, Status>> + Send>>;
type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullModelResponse, Status>> + Send>>;

impl AgentApi {
    /// Checks a requested model against the allowlist; the canonical name of the model to use.
    fn allowed_model(&self, field: &str, requested: &str, configured: &str) -> Result<String, Status> {
        let settings = &self.engine.settings;
        let model = crate::run::model_or(requested, configured);
        let wanted = canonical_model(&model);
        let allowed: Vec<String> = [settings.reasoning_model.clone(), settings.coding_model.clone()]
            .into_iter()
            .chain(settings.model_allowlist.iter().cloned())
            .collect();
        if allowed.iter().any(|a| canonical_model(a) == wanted) {
            Ok(model)
        } else {
            Err(invalid(format!("{field} `{model}` is not allowed here; allowed models: {}", allowed.join(", "))))
        }
    }

    /// The flags' decisions for a task of `principal` on `change_set`.
    fn decider(&self, principal: &Principal, change_set: Option<&pb::ChangeSet>) -> Decider<'_> {
        let context = StoredContext {
            user: principal.subject.clone(),
            roles: principal.role_names(),
            repository: change_set.map(|c| c.repository.clone()).unwrap_or_default(),
            forge: String::new(),
            model: String::new(),
        };
        Decider::new(&self.engine.flags, context)
    }

    /// Fails fast when a model is not pulled; other Ollama trouble leaves the task to the worker.
    async fn check_pulled(&self, model: &str) -> Result<(), Status> {
        match self.engine.ollama.model_context(model).await {
            Ok(_) => Ok(()),
            Err(e @ OllamaError::ModelNotPulled { .. }) => Err(to_status(e)),
            Err(e) => {
                tracing::warn!(error = %e, model, "cannot check the model now; the task is queued anyway");
                Ok(())
            }
        }
    }

    async fn create(
        &self,
        principal: &Principal,
        origin: Origin,
        kind: pb::TaskKind,
        change_set: Option<&pb::ChangeSet>,
        decided: Decided,
        request: Vec<u8>,
    ) -> Result<pb::Task, Status> {
        let Decided { models, flags, eval_run } = decided;
        let change_set = change_set.ok_or_else(|| invalid("change_set is required"))?;
        changeset::validate(change_set, &self.engine.settings.limits, kind != pb::TaskKind::Fix).map_err(invalid)?;
        for model in &models {
            self.check_pulled(model).await?;
        }
        let task_id = Uuid::now_v7();
        let action =
            format!("agent.task.create.{}", kind.as_str_name().trim_start_matches("TASK_KIND_").to_lowercase());
        let record =
            audit_record(principal, &origin, &action, task_id, kind.as_str_name(), Some(&flags), eval_run.as_deref());
        let settings = &self.engine.settings;
        let row = tasks::create(
            &self.engine.pool,
            NewTask {
                task_id,
                kind: kind as i16,
                owner: principal.subject.clone(),
                api_key_id: principal.key_id.clone(),
                eval_run_id: eval_run,
                request,
                audit: record,
                traceparent: origin.trace.map(|t| t.header_value()).unwrap_or_default(),
                flags,
                forge: None,
            },
            ActiveLimits { per_owner: settings.max_active_tasks_per_user, total: settings.max_active_tasks },
        )
        .await
        .map_err(to_status)?;
        self.engine.changed.notify_waiters();
        tracing::info!(task_id = %row.task_id, kind = kind.as_str_name(), owner = %row.owner, "task queued");
        to_proto(row)
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn create_review(
        &self,
        request: Request<pb::CreateReviewRequest>,
    ) -> Result<Response<pb::CreateReviewResponse>, Status> {
        let principal = caller(&request)?;
        let origin = origin(&request);
        let mut message = request.into_inner();
        let options = message.options.clone().unwrap_or_default();
        let model = self.allowed_model("options.model", &options.model, &self.engine.settings.reasoning_model)?;
        let mut decider = self.decider(&principal, message.change_set.as_ref());
        let model = decider.model("reasoning", &options.model, &model);
        decider.allow(pb::TaskKind::Review, &model).map_err(to_status)?;
        decider.review_prompt();
        // The worker uses the model decided here, whatever the flags say when it runs.
        message.options.get_or_insert_default().model.clone_from(&model);
        if options.max_findings < 0 {
            return Err(invalid("options.max_findings must not be negative"));
        }
        if options.extra_instructions.len() > MAX_INSTRUCTIONS {
            return Err(invalid(format!(
                "options.extra_instructions is {} bytes, over the limit of {MAX_INSTRUCTIONS}",
                options.extra_instructions.len()
            )));
        }
        if pb::Severity::try_from(options.min_severity).is_err() {
            return Err(invalid(format!("options.min_severity {} is not a known Severity", options.min_severity)));
        }
        prfix_engine::review::select(Vec::new(), &options.ignore_globs).map_err(|e| invalid(format!("options.{e}")))?;
        let eval_run = eval_run_id("options.eval_run_id", &options.eval_run_id)?;
        let task = self
            .create(
                &principal,
                origin,
                pb::TaskKind::Review,
                message.change_set.as_ref(),
                Decided { models: vec![model], flags: decider.record, eval_run },
                message.encode_to_vec(),
            )
            .await?;
        Ok(Response::new(pb::CreateReviewResponse { task: Some(task) }))
    }

    async fn create_describe(
        &self,
        request: Request<pb::CreateDescribeRequest>,
    ) -> Result<Response<pb::CreateDescribeResponse>, Status> {
        let principal = caller(&request)?;
        let origin = origin(&request);
        let mut message = request.into_inner();
        let options = message.options.clone().unwrap_or_default();
        let model = self.allowed_model("options.model", &options.model, &self.engine.settings.reasoning_model)?;
        let mut decider = self.decider(&principal, message.change_set.as_ref());
        let model = decider.model("reasoning", &options.model, &model);
        decider.allow(pb::TaskKind::Describe, &model).map_err(to_status)?;
        message.options.get_or_insert_default().model.clone_from(&model);
        prfix_engine::review::select(Vec::new(), &options.ignore_globs).map_err(|e| invalid(format!("options.{e}")))?;
        let task = self
            .create(
                &principal,
                origin,
                pb::TaskKind::Describe,
                message.change_set.as_ref(),
                Decided { models: vec![model], flags: decider.record, eval_run: None },
                message.encode_to_vec(),
            )
            .await?;
        Ok(Response::new(pb::CreateDescribeResponse { task: Some(task) }))
    }

    async fn create_fix(
        &self,
        request: Request<pb::CreateFixRequest>,
    ) -> Result<Response<pb::CreateFixResponse>, Status> {
        let principal = caller(&request)?;
        let origin = origin(&request);
        let mut message = request.into_inner();
        let settings = &self.engine.settings;
        let options = message.options.clone().unwrap_or_default();
        let planner = self.allowed_model("options.planner_model", &options.planner_model, &settings.reasoning_model)?;
        let coder = self.allowed_model("options.coder_model", &options.coder_model, &settings.coding_model)?;
        let mut decider = self.decider(&principal, message.change_set.as_ref());
        let planner = decider.model("reasoning", &options.planner_model, &planner);
        let coder = decider.model("coding", &options.coder_model, &coder);
        decider.allow(pb::TaskKind::Fix, &planner).map_err(to_status)?;
        let stored = message.options.get_or_insert_default();
        stored.planner_model.clone_from(&planner);
        stored.coder_model.clone_from(&coder);
        if options.max_attempts < 0 {
            return Err(invalid("options.max_attempts must not be negative"));
        }
        let eval_run = eval_run_id("options.eval_run_id", &options.eval_run_id)?;
        let problem = message.problem.clone().unwrap_or_default();
        if problem.check_output.trim().is_empty()
            && problem.findings.is_empty()
            && problem.instruction.trim().is_empty()
        {
            return Err(invalid("problem needs check_output, findings or an instruction: say what to fix"));
        }
        let problem_bytes = problem.check_output.len() + problem.instruction.len() + problem.check_command.len();
        if problem_bytes > settings.limits.max_problem_bytes {
            return Err(invalid(format!(
                "problem is {problem_bytes} bytes, over the limit of {} bytes; send the end of the check output",
                settings.limits.max_problem_bytes
            )));
        }
        let change_set = message.change_set.as_ref();
        if change_set.is_some_and(|cs| cs.files.is_empty() && cs.context_files.is_empty()) {
            return Err(invalid("change_set.files is empty: a fix needs the content of the files to change"));
        }
        let models = if planner == coder { vec![planner] } else { vec![planner, coder] };
        let request = message.encode_to_vec();
        let task = self
            .create(
                &principal,
                origin,
                pb::TaskKind::Fix,
                change_set,
                Decided { models, flags: decider.record, eval_run },
                request,
            )
            .await?;
        Ok(Response::new(pb::CreateFixResponse { task: Some(task) }))
    }

    async fn create_forge_review(
        &self,
        request: Request<pb::CreateForgeReviewRequest>,
    ) -> Result<Response<pb::CreateForgeReviewResponse>, Status> {
        let principal = caller(&request)?;
        if !principal.has(Role::Service) {
            return Err(Status::permission_denied("CreateForgeReview is for the gateway's service identity"));
        }
        let origin = origin(&request);
        let message = request.into_inner();
        let created =
            crate::forge::create::create(&self.engine, &principal, origin.request_id.clone(), origin.trace, message)
                .await?;
        for task_id in &created.superseded {
            self.running.cancel(*task_id);
        }
        self.engine.changed.notify_waiters();
        tracing::info!(
            task_id = %created.row.task_id,
            created = created.created,
            superseded = created.superseded.len(),
            "forge review queued"
        );
        Ok(Response::new(pb::CreateForgeReviewResponse {
            superseded_task_ids: created.superseded.iter().map(Uuid::to_string).collect(),
            task: Some(to_proto(created.row)?),
        }))
    }

    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskResponse>, Status> {
        let principal = caller(&request)?;
        let pb::GetTaskRequest { task_id } = request.into_inner();
        let (row, request) =
            tasks::get_with_request(&self.engine.pool, parse_task_id(&task_id)?).await.map_err(to_status)?;
        let row = visible(&principal, row)?;
        let diff = tasks::diff_of(row.kind, request.as_deref());
        Ok(Response::new(pb::GetTaskResponse { task: Some(pb::Task { diff, ..to_proto(row)? }) }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let principal = caller(&request)?;
        let pb::ListTasksRequest { page_size, page_token, state, kind, owner, eval_run_id: run } = request.into_inner();
        if page_size < 0 {
            return Err(invalid("page_size must not be negative"));
        }
        let page_size = if page_size == 0 { DEFAULT_PAGE } else { page_size.min(MAX_PAGE) };
        let state = match pb::TaskState::try_from(state) {
            Ok(pb::TaskState::Unspecified) => None,
            Ok(s) => Some(s as i16),
            Err(_) => return Err(invalid(format!("state {state} is not a known TaskState"))),
        };
        let kind = match pb::TaskKind::try_from(kind) {
            Ok(pb::TaskKind::Unspecified) => None,
            Ok(k) => Some(k as i16),
            Err(_) => return Err(invalid(format!("kind {kind} is not a known TaskKind"))),
        };
        if owner.len() > 256 || owner.chars().any(char::is_control) {
            return Err(invalid("owner must be a user name (at most 256 characters, no control characters)"));
        }
        let owner = if principal.has(Role::Admin) {
            Some(owner).filter(|o| !o.is_empty())
        } else if owner.is_empty() || owner == principal.subject {
            Some(principal.subject.clone())
        } else {
            return Err(Status::permission_denied("developers can list only their own tasks; leave owner empty"));
        };
        let eval_run = eval_run_id("eval_run_id", &run)?;
        let filter = TaskFilter { state, kind, owner, eval_run };
        let before = decode_page_token(&page_token)?;
        let mut rows =
            tasks::list(&self.engine.pool, &filter, before, i64::from(page_size) + 1).await.map_err(to_status)?;
        let next_page_token = if rows.len() > page_size as usize {
            rows.truncate(page_size as usize);
            rows.last().map(encode_page_token).unwrap_or_default()
        } else {
            String::new()
        };
        let tasks = rows.into_iter().map(to_proto).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListTasksResponse { tasks, next_page_token }))
    }

    type WatchTaskStream = WatchStream;

    async fn watch_task(
        &self,
        request: Request<pb::WatchTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        let principal = caller(&request)?;
        let pb::WatchTaskRequest { task_id, after_sequence } = request.into_inner();
        if after_sequence < 0 {
            return Err(invalid("after_sequence must not be negative"));
        }
        let task_id = parse_task_id(&task_id)?;
        let row = tasks::get(&self.engine.pool, task_id).await.map_err(to_status)?;
        visible(&principal, row)?;
        let engine = self.engine.clone();
        let stream = async_stream_events(engine, task_id, after_sequence);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        let principal = caller(&request)?;
        let origin = origin(&request);
        let pb::CancelTaskRequest { task_id } = request.into_inner();
        let task_id = parse_task_id(&task_id)?;
        let row = tasks::get(&self.engine.pool, task_id).await.map_err(to_status)?;
        let row = visible(&principal, row)?;
        if let Some(ended) = tasks::already_ended(task_id, row.state) {
            return Err(to_status(ended));
        }
        let kind = pb::TaskKind::try_from(i32::from(row.kind)).map_or("unknown", |k| k.as_str_name());
        let record =
            audit_record(&principal, &origin, "agent.task.cancel", task_id, kind, None, row.eval_run_id.as_deref());
        let row = tasks::cancel(&self.engine.pool, task_id, &principal.subject, &record).await.map_err(to_status)?;
        self.running.cancel(task_id);
        self.engine.changed.notify_waiters();
        tracing::info!(%task_id, by = %principal.subject, "task cancelled");
        Ok(Response::new(pb::CancelTaskResponse { task: Some(to_proto(row)?) }))
    }

    type PullModelStream = PullStream;

    async fn pull_model(
        &self,
        request: Request<pb::PullModelRequest>,
    ) -> Result<Response<Self::PullModelStream>, Status> {
        let principal = caller(&request)?;
        Ok(Response::new(self.pull(&principal, request.into_inner()).await?))
    }

    async fn list_flags(
        &self,
        request: Request<pb::ListFlagsRequest>,
    ) -> Result<Response<pb::ListFlagsResponse>, Status> {
        let principal = caller(&request)?;
        Ok(Response::new(self.flags(&principal, request.into_inner())?))
    }

    async fn list_forges(
        &self,
        request: Request<pb::ListForgesRequest>,
    ) -> Result<Response<pb::ListForgesResponse>, Status> {
        let principal = caller(&request)?;
        Ok(Response::new(self.forges(&principal).await?))
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        Ok(Response::new(self.models().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eval_run_id_is_at_most_64_safe_characters_and_an_error_names_the_field() {
        assert_eq!(eval_run_id("options.eval_run_id", "").expect("empty is none"), None);
        let longest = "a".repeat(64);
        assert_eq!(eval_run_id("f", &longest).expect("64 is fine").as_deref(), Some(longest.as_str()));
        assert!(eval_run_id("f", "eval-review:2026.12_06-x").is_ok());
        for bad in ["a".repeat(65), "run id".to_owned(), "run/1".to_owned(), "r\u{e9}".to_owned()] {
            let status = eval_run_id("options.eval_run_id", &bad).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(status.message().contains("options.eval_run_id"), "{}", status.message());
        }
    }

    #[test]
    fn task_page_tokens_round_trip() {
        let row = TaskRow {
            task_id: Uuid::new_v4(),
            kind: 1,
            state: 1,
            owner: "a".into(),
            result: None,
            error: String::new(),
            attempts: 0,
            created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            started_at: None,
            ended_at: None,
            traceparent: String::new(),
            api_key_id: None,
            flags: TaskFlags::default(),
            eval_run_id: None,
            forge: None,
        };
        let decoded = decode_page_token(&encode_page_token(&row)).expect("decodes").expect("some");
        assert_eq!(decoded, (row.created_at, row.task_id));
        assert!(decode_page_token("garbage!").is_err());
    }
}
