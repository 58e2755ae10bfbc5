//! Working one claimed task: the context every kind shares (model calls with their limits and
//! events), and the review, describe and fix pipelines.

mod describe;
mod fix;
mod review;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_postgres::Pool;
use prfix_engine::redact::Redactor;
use prfix_engine::tokens;
use prfix_proto::agent::v1 as pb;
use prfix_proto::prost::Message;
use prfix_runtime::trace::TraceContext;
use tracing::Instrument;
use uuid::Uuid;

use crate::ollama::{CallLimits, ChatMessage, ChatReply, ChatRequest, Ollama, OllamaError};
use crate::settings::AgentSettings;
use crate::tasks::{self, TaskError};

/// Tokens kept free besides the prompt and the answer (template tokens, estimate error).
const CONTEXT_MARGIN: u32 = 512;

/// What the engine needs besides the task.
pub struct Engine {
    /// The `[agent]` settings.
    pub settings: AgentSettings,
    /// Limits of each model call.
    pub limits: CallLimits,
    /// The Ollama endpoints.
    pub ollama: Ollama,
    /// The secret rules.
    pub redactor: Redactor,
    /// The database.
    pub pool: Pool,
    /// Woken when this replica creates a task or appends an event (idle workers and watchers
    /// look again at once; others poll).
    pub changed: Arc<tokio::sync::Notify>,
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
    /// Secrets redacted from the change set (for the audit record).
    pub redactions: AtomicU32,
    /// The task's span in the trace of the call that created it.
    pub trace: TraceContext,
}

impl Job {
    /// A job for a claimed task, working in the span `trace`.
    pub fn new(task_id: Uuid, worker: String, engine: Arc<Engine>, trace: TraceContext) -> Self {
        Self { task_id, worker, engine, calls: AtomicU32::new(0), redactions: AtomicU32::new(0), trace }
    }

    /// Model calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
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

    /// Tokens the answer of a call may use, given the model's context.
    pub fn answer_budget(&self, context: u32) -> u32 {
        self.engine.settings.max_output_tokens.min(context / 4).max(256)
    }

    /// One model call, counted against the task's limit and recorded as an event whether it
    /// succeeds or fails. `num_ctx` is set from the prompt's size.
    pub async fn chat(
        &self,
        purpose: &str,
        model: &str,
        messages: Vec<ChatMessage>,
        format: Option<serde_json::Value>,
    ) -> Result<ChatReply, RunError> {
        let max = self.engine.settings.max_model_calls_per_task;
        if self.calls.fetch_add(1, Ordering::Relaxed) >= max {
            return Err(RunError::Limit(format!("the task reached its limit of {max} model calls")));
        }
        let context = self.engine.ollama.model_context(model).await?;
        let answer = self.answer_budget(context);
        let prompt_tokens: usize = messages.iter().map(|m| tokens::estimate(&m.content) + 4).sum::<usize>()
            + format.as_ref().map_or(0, |f| tokens::estimate(&f.to_string()));
        let prompt_tokens = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
        let needed = prompt_tokens.saturating_add(answer).saturating_add(CONTEXT_MARGIN);
        if needed > context {
            return Err(RunError::Input(format!(
                "{purpose}: the prompt needs about {prompt_tokens} tokens and the answer {answer}, but model {model} \
                 has a context of {context} tokens; send fewer or smaller files"
            )));
        }
        // Whole thousands, so calls of similar size share one loaded context in Ollama.
        let num_ctx = needed.div_ceil(1024).saturating_mul(1024).clamp(2048, context.max(2048));
        let request = ChatRequest {
            model: model.to_owned(),
            messages,
            format,
            num_ctx,
            num_predict: answer,
            temperature: self.engine.settings.temperature,
            seed: (self.engine.settings.seed >= 0).then_some(self.engine.settings.seed),
            keep_alive: self.engine.settings.ollama_keep_alive.clone(),
            stream: self.engine.settings.ollama_stream,
            trace: None,
        };
        // A span per model call, a child of the task's, whose context goes to Ollama.
        let span = tracing::info_span!(
            "model_call",
            model,
            purpose,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            otel.name = "ollama chat",
            otel.kind = "client",
        );
        let request = ChatRequest { trace: Some(prfix_runtime::trace::attach(&span, Some(self.trace))), ..request };
        let started = std::time::Instant::now();
        let result = self.engine.ollama.chat(&request, self.engine.limits).instrument(span).await;
        let call = match &result {
            Ok(reply) => pb::ModelCall {
                model: model.to_owned(),
                endpoint: reply.endpoint.clone(),
                purpose: purpose.to_owned(),
                prompt_tokens: i32::try_from(reply.prompt_tokens).unwrap_or(i32::MAX),
                output_tokens: i32::try_from(reply.output_tokens).unwrap_or(i32::MAX),
                duration_ms: i64::try_from(reply.duration.as_millis()).unwrap_or(i64::MAX),
                error: String::new(),
            },
            Err(e) => pb::ModelCall {
                model: model.to_owned(),
                purpose: purpose.to_owned(),
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                error: e.to_string(),
                ..Default::default()
            },
        };
        let metrics = &prfix_runtime::metrics::METRICS;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics.model_calls.with_label_values(&[model, &call.endpoint, outcome]).inc();
        if result.is_ok() {
            metrics
                .model_call_duration
                .with_label_values(&[model, &call.endpoint])
                .observe(call.duration_ms as f64 / 1000.0);
            metrics
                .model_tokens
                .with_label_values(&[model, &call.endpoint, "prompt"])
                .inc_by(u64::try_from(call.prompt_tokens).unwrap_or(0));
            metrics
                .model_tokens
                .with_label_values(&[model, &call.endpoint, "output"])
                .inc_by(u64::try_from(call.output_tokens).unwrap_or(0));
        }
        tracing::info!(
            task_id = %self.task_id, model, purpose, endpoint = %call.endpoint, prompt_tokens = call.prompt_tokens,
            output_tokens = call.output_tokens, duration_ms = call.duration_ms, error = %call.error, "model call"
        );
        self.event(pb::task_event::Payload::ModelCall(call)).await?;
        Ok(result?)
    }
}

/// Works a claimed task to its result.
pub async fn execute(job: &Job, kind: i16, request: &[u8]) -> Result<pb::TaskResult, RunError> {
    let undecodable = |e: prost::DecodeError| RunError::Input(format!("the stored request does not decode: {e}"));
    let result = match pb::TaskKind::try_from(i32::from(kind)) {
        Ok(pb::TaskKind::Review) => pb::task_result::Result::Review(
            review::run(job, pb::CreateReviewRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Describe) => pb::task_result::Result::Describe(
            describe::run(job, pb::CreateDescribeRequest::decode(request).map_err(undecodable)?).await?,
        ),
        Ok(pb::TaskKind::Fix) => pb::task_result::Result::Fix(
            fix::run(job, pb::CreateFixRequest::decode(request).map_err(undecodable)?).await?,
        ),
        _ => return Err(RunError::Input(format!("task kind {kind} is unknown"))),
    };
    Ok(pb::TaskResult { result: Some(result) })
}

/// The model a request names, or the configured one.
pub fn model_or(requested: &str, configured: &str) -> String {
    if requested.trim().is_empty() { configured.to_owned() } else { requested.trim().to_owned() }
}
