//! One model call of a task: sized with the model's learned token ratio, counted against the
//! task's limit, retried when it fails with a fault that heals, recorded as an event and a metric
//! per attempt, and taught to the ratio when it answers.

use std::sync::atomic::Ordering;

use prfix_engine::json::Ordered;
use prfix_engine::tokens::Estimator;
use prfix_proto::agent::v1 as pb;
use tracing::Instrument;

use super::{CONTEXT_MARGIN, Job, RunError};
use crate::ollama::{ChatMessage, ChatReply, ChatRequest, OllamaError};

/// How one call departs from the configured sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sampling {
    /// Use another seed than the configured one (a retry should not draw the same answer).
    pub reseed: bool,
    /// Ollama's `repeat_penalty`; `None` keeps the model's default.
    pub repeat_penalty: Option<f32>,
}

impl Sampling {
    /// The sampling of a retry after an answer that degenerated or was unusable: another seed and
    /// a penalty on repeating tokens (runs of whitespace and repeated units are such repeats).
    pub fn varied() -> Self {
        Self { reseed: true, repeat_penalty: Some(1.15) }
    }
}

impl Job {
    /// Tokens the answer of a call may use, given the model's context.
    pub fn answer_budget(&self, context: u32) -> u32 {
        self.engine.settings.max_output_tokens.min(context / 4).max(256)
    }

    /// Tokens kept free besides a prompt and its answer in a context of `context` tokens.
    pub fn context_margin(&self, context: u32) -> u32 {
        (context / 16).min(CONTEXT_MARGIN)
    }

    /// The estimator that sizes `model`'s prompts: the engine's estimate scaled by the ratio
    /// learned from the model's answers.
    pub fn estimator(&self, model: &str) -> Estimator {
        self.engine.ollama.ratios().estimator(model)
    }

    /// One model call with the configured sampling and a `format` schema sent with its keys
    /// sorted; see [`Job::chat_with`].
    pub async fn chat(
        &self,
        purpose: &str,
        model: &str,
        messages: Vec<ChatMessage>,
        format: Option<serde_json::Value>,
    ) -> Result<ChatReply, RunError> {
        self.chat_with(purpose, model, messages, format.as_ref().map(Ordered::from), Sampling::default()).await
    }

    /// One model call. The prompt is measured with the model's learned ratio and refused when it
    /// cannot fit the context with the answer; `num_ctx` is set from that size. A fault that heals
    /// is retried (on another endpoint when one has the model) after a jittered pause, each
    /// attempt counted against the task's limit and recorded as an event.
    pub async fn chat_with(
        &self,
        purpose: &str,
        model: &str,
        messages: Vec<ChatMessage>,
        format: Option<Ordered>,
        sampling: Sampling,
    ) -> Result<ChatReply, RunError> {
        let context = self.engine.ollama.model_context(model).await?;
        let answer = self.answer_budget(context);
        let estimator = self.estimator(model);
        let texts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        let system = texts.first().map(|s| (*s).to_owned()).unwrap_or_default();
        // The unscaled measure is what a counted answer is compared with to learn the ratio.
        let schema = format.as_ref().map(Ordered::to_value);
        let measured = Estimator::default().prompt_tokens(&texts, schema.as_ref());
        let prompt_tokens = u32::try_from(estimator.prompt_tokens(&texts, schema.as_ref())).unwrap_or(u32::MAX);
        let needed = prompt_tokens.saturating_add(answer).saturating_add(self.context_margin(context));
        if needed > context {
            return Err(RunError::Input(format!(
                "{purpose}: the prompt needs about {prompt_tokens} tokens and the answer {answer}, but model {model} \
                 has a context of {context} tokens; send fewer or smaller files"
            )));
        }
        // Whole thousands, so calls of similar size share one loaded context in Ollama.
        let num_ctx = needed.div_ceil(1024).saturating_mul(1024).clamp(2048, context.max(2048));
        let settings = &self.engine.settings;
        let seed = (settings.seed >= 0).then_some(settings.seed);
        let request = ChatRequest {
            model: model.to_owned(),
            messages,
            format,
            num_ctx,
            num_predict: answer,
            temperature: settings.temperature,
            seed: if sampling.reseed { Some(seed.map_or(1, |s| s.wrapping_add(1))) } else { seed },
            repeat_penalty: sampling.repeat_penalty,
            keep_alive: settings.ollama_keep_alive.clone(),
            stream: settings.ollama_stream,
            trace: None,
        };
        let policy = self.engine.retry;
        let mut failed_at: Vec<String> = Vec::new();
        let mut retry = 0;
        loop {
            let attempt_purpose = if retry == 0 { purpose.to_owned() } else { format!("{purpose} (retry {retry})") };
            match self.attempt(&attempt_purpose, &request, &failed_at).await? {
                Ok(reply) => {
                    self.engine.ollama.ratios().learn(model, &system, measured, reply.prompt_tokens);
                    return Ok(reply);
                }
                Err(e) if e.is_transient() && retry < policy.retries => {
                    let pause = policy.backoff(retry);
                    tracing::warn!(task_id = %self.task_id, model, purpose, error = %e, pause_ms = pause.as_millis(), "model call failed; retrying");
                    if let Some(endpoint) = e.endpoint() {
                        failed_at.push(endpoint.to_owned());
                    }
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One attempt: counted against the task's limit, recorded as an event and in the metrics.
    /// The outer error stops the task's work; the inner one is the model call's.
    async fn attempt(
        &self,
        purpose: &str,
        request: &ChatRequest,
        avoid: &[String],
    ) -> Result<Result<ChatReply, OllamaError>, RunError> {
        let max = self.call_limit.load(Ordering::Relaxed);
        if self.calls.fetch_add(1, Ordering::Relaxed) >= max {
            return Err(RunError::Limit(format!(
                "the task reached its limit of {max} model calls (agent.max_model_calls_per_task)"
            )));
        }
        let model = request.model.as_str();
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
        let request =
            ChatRequest { trace: Some(prfix_runtime::trace::attach(&span, Some(self.trace))), ..request.clone() };
        let started = std::time::Instant::now();
        let result = self.engine.ollama.chat(&request, self.engine.limits, avoid).instrument(span).await;
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
                endpoint: e.endpoint().unwrap_or_default().to_owned(),
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
        Ok(result)
    }
}
