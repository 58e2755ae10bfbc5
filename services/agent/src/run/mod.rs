//! Working one claimed task: the context every kind shares (model calls with their limits and
//! events), and the review, describe and fix pipelines (a forge's `/ask` and `/fix` are in
//! [`crate::forge`]).

mod call;
mod describe;
pub(crate) mod feedback;
pub(crate) mod fix;
mod forge_describe;
pub(crate) mod forge_fetch;
mod forge_review;
mod part;
mod review;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_postgres::Pool;
use prfix_engine::redact::Redactor;
use prfix_proto::agent::v1 as pb;
use prfix_proto::prost::Message;
use prfix_runtime::trace::TraceContext;
use uuid::Uuid;

pub use call::Sampling;

use crate::ollama::{CallLimits, Ollama, OllamaError, RetryPolicy};
use crate::settings::AgentSettings;
use crate::tasks::{self, TaskError};

/// Most tokens kept free besides the prompt and the answer (template tokens, estimate error);
/// small contexts keep a sixteenth.
const CONTEXT_MARGIN: u32 = 512;

/// What the engine needs besides the task.
pub struct Engine {
    /// The `[agent]` settings.
    pub settings: AgentSettings,
    /// Limits of each model call.
    pub limits: CallLimits,
    /// How model calls that failed with a fault that heals are retried.
    pub retry: RetryPolicy,
    /// The Ollama endpoints.
    pub ollama: Ollama,
    /// The secret rules.
    pub redactor: Redactor,
    /// The database.
    pub pool: Pool,
    /// Woken when this replica creates a task or appends an event (idle workers and watchers
    /// look again at once; others poll).
    pub changed: Arc<tokio::sync::Notify>,
    /// The flags this replica sees.
    pub flags: prfix_flags::Flags,
    /// The forge connections reviews started by webhooks read from and post to.
    pub forges: crate::forge::Forges,
}

/// Why a task's work stopped without a result. The text becomes the task's error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A model call failed.
    #[error("{0}")]
    Ollama(#[from] OllamaError),
    /// The stored request or the change set cannot be worked.
    #[error("{0}")]
    Input(String),
    /// The model's answers were unusable.
    #[error("{0}")]
    Model(String),
    /// A per-task limit was reached.
    #[error("{0}")]
    Limit(String),
    /// Another replica holds the task now, or it was cancelled.
    #[error("the task's lease was lost or the task was cancelled")]
    Lost,
    /// The database failed.
    #[error("{0}")]
    Store(#[from] TaskError),
    /// A forge call failed (reading the pull request or posting the review).
    #[error("{0}")]
    Forge(#[from] prfix_forge::ForgeError),
}

/// One claimed task being worked.
pub struct Job {
    /// The task.
    pub task_id: Uuid,
    /// Who holds its lease.
    pub worker: String,
    /// Shared engine parts.
    pub engine: Arc<Engine>,
    calls: AtomicU32,
    /// Model calls this task may make: the setting, raised by a review of many parts.
    call_limit: AtomicU32,
    /// Secrets redacted from the change set (for the audit record).
    pub redactions: AtomicU32,
    /// The task's span in the trace of the call that created it.
    pub trace: TraceContext,
    /// The flags it was created with (its prompt version, say).
    pub flags: crate::flags::TaskFlags,
}

impl Job {
    /// A job for a claimed task, working in the span `trace`.
    pub fn new(
        task_id: Uuid,
        worker: String,
        engine: Arc<Engine>,
        trace: TraceContext,
        flags: crate::flags::TaskFlags,
    ) -> Self {
        let call_limit = AtomicU32::new(engine.settings.max_model_calls_per_task);
        Self {
            task_id,
            worker,
            engine,
            calls: AtomicU32::new(0),
            call_limit,
            redactions: AtomicU32::new(0),
            trace,
            flags,
        }
    }

    /// Model calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Raises the task's limit of model calls to `calls` (never lowers it below the setting).
    pub fn allow_calls(&self, calls: u32) {
        self.call_limit.fetch_max(calls, Ordering::Relaxed);
    }

    /// Appends an event; `Lost` when this replica no longer holds the task.
    pub async fn event(&self, payload: pb::task_event::Payload) -> Result<(), RunError> {
        if tasks::append(&self.engine.pool, self.task_id, &self.worker, payload).await? {
            self.engine.changed.notify_waiters();
            Ok(())
        } else {
            Err(RunError::Lost)
        }
    }

    /// A progress event.
    pub async fn progress(&self, message: impl Into<String>, done: i32, total: i32) -> Result<(), RunError> {
        self.event(pb::task_event::Payload::Progress(pb::Progress { message: message.into(), done, total })).await
    }
}

/// Works a claimed task to its result; `from_forge` for a review a forge's webhook started (its
/// request is a `CreateForgeReviewRequest`).
pub async fn execute(job: &Job, kind: i16, from_forge: bool, request: &[u8]) -> Result<pb::TaskResult, RunError> {
    let undecodable = |e: prost::DecodeError| RunError::Input(format!("the stored request does not decode: {e}"));
    let result = match pb::TaskKind::try_from(i32::from(kind)) {
        Ok(pb::TaskKind::Describe) if from_forge => pb::task_result::Result::Describe(
            forge_describe::run(job, pb::CreateForgeReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Review) if from_forge => pb::task_result::Result::Review(
            forge_review::run(job, pb::CreateForgeReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Review) => pb::task_result::Result::Review(
            review::run(job, pb::CreateReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Describe) => pb::task_result::Result::Describe(
            describe::run(job, pb::CreateDescribeRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Fix) if from_forge => pb::task_result::Result::Fix(
            crate::forge::fix::run(job, pb::CreateForgeReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Fix) => pb::task_result::Result::Fix(
            fix::run(job, pb::CreateFixRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Ask) if from_forge => pb::task_result::Result::Ask(
            crate::forge::ask::run(job, pb::CreateForgeReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        _ => return Err(RunError::Input(format!("task kind {kind} is unknown"))),
    };
    Ok(pb::TaskResult { result: Some(result) })
}

/// The model a request names, or the configured one.
pub fn model_or(requested: &str, configured: &str) -> String {
    if requested.trim().is_empty() { configured.to_owned() } else { requested.trim().to_owned() }
}
