//! `/api/chat`, streamed as NDJSON, under the four time limits.

use std::time::{Duration, Instant};

use futures::StreamExt;
use prfix_engine::json::Ordered;
use serde::{Deserialize, Serialize};
use tokio::time::timeout_at;

use super::degenerate::Watch;
use super::endpoints::error_text;
use super::{CallLimits, Ollama, OllamaError, canonical_model};

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Standing instructions.
    System,
    /// The request.
    User,
    /// An earlier answer of the model.
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

/// One chat call.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation, system prompt first (so Ollama's prompt cache is reused across calls).
    pub messages: Vec<ChatMessage>,
    /// A JSON schema the answer must follow (Ollama's structured output), if any; sent with its
    /// keys in the order written, as Ollama's grammar makes the model write them in that order.
    pub format: Option<Ordered>,
    /// Context window to load the model with; always set, as the default truncates silently.
    pub num_ctx: u32,
    /// Most tokens to generate.
    pub num_predict: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Seed, for repeatable answers.
    pub seed: Option<i64>,
    /// Ollama's `repeat_penalty` (how strongly tokens already written are discouraged), when the
    /// model's default is not wanted: a retry after a degenerate answer sets it.
    pub repeat_penalty: Option<f32>,
    /// How long Ollama keeps the model loaded afterwards (`"30m"`).
    pub keep_alive: String,
    /// Whether to stream the answer (NDJSON); off, Ollama sends one JSON object at the end, and
    /// only the whole-call limit applies.
    pub stream: bool,
    /// The span this call belongs to, sent as `traceparent` so a traced Ollama (or a proxy in
    /// front of it) joins the task's trace.
    pub trace: Option<prfix_runtime::trace::TraceContext>,
}

/// A finished chat call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The answer text.
    pub content: String,
    /// The endpoint that answered.
    pub endpoint: String,
    /// Prompt tokens as Ollama counted them.
    pub prompt_tokens: u32,
    /// Output tokens as Ollama counted them.
    pub output_tokens: u32,
    /// Why generation stopped (`stop`, `length`).
    pub done_reason: String,
    /// The answer was cut off by the output limit (`done_reason: length`): it is not whole.
    pub truncated: bool,
    /// Wall time.
    pub duration: Duration,
}

#[derive(Serialize)]
struct WireOptions {
    num_ctx: u32,
    num_predict: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_penalty: Option<f32>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a Ordered>,
    options: WireOptions,
    keep_alive: &'a str,
}

#[derive(Deserialize, Default)]
struct WireMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    thinking: String,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    message: WireMessage,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: String,
    #[serde(default)]
    prompt_eval_count: u32,
    #[serde(default)]
    eval_count: u32,
    #[serde(default)]
    error: Option<String>,
}

enum Limit {
    FirstToken,
    Gap,
    Total,
}

/// An answer being streamed.
struct Progress {
    content: String,
    got_token: bool,
    watch: Watch,
    started: Instant,
}

impl Ollama {
    /// Runs one chat on the endpoint [`Ollama::pick`] chooses, avoiding the endpoints in `avoid`
    /// when another has the model. The call first waits for a slot there (`ollama_parallel`); its
    /// time limits start when it is sent. An answer that degenerates while it streams is stopped
    /// with [`OllamaError::Degenerate`]. Dropping the returned future closes the stream to Ollama,
    /// which stops generation there.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        limits: CallLimits,
        avoid: &[String],
    ) -> Result<ChatReply, OllamaError> {
        let mut busy = self.pick(&request.model, avoid).await?;
        busy.acquire_slot().await;
        let endpoint = busy.endpoint.url.clone();
        let result = self.chat_on(&endpoint, request, limits).await;
        match &result {
            Ok(_) => self.record_outcome(&endpoint, false),
            Err(e) if e.is_transient() => self.record_outcome(&endpoint, true),
            Err(_) => {}
        }
        drop(busy);
        result
    }

    async fn chat_on(
        &self,
        endpoint: &str,
        request: &ChatRequest,
        limits: CallLimits,
    ) -> Result<ChatReply, OllamaError> {
        let endpoint = endpoint.to_owned();
        let model = canonical_model(&request.model);
        let started = Instant::now();
        let tokio_start = tokio::time::Instant::now();
        let total_deadline = tokio_start + limits.total;
        // Unstreamed, nothing arrives before the whole answer: only the call limit applies.
        let first_deadline =
            if request.stream { (tokio_start + limits.first_token).min(total_deadline) } else { total_deadline };
        let timeout_error = |which: Limit| match which {
            Limit::FirstToken => OllamaError::FirstTokenTimeout {
                model: model.clone(),
                endpoint: endpoint.clone(),
                timeout_ms: limits.first_token.as_millis(),
            },
            Limit::Gap => OllamaError::StalledTimeout {
                model: model.clone(),
                endpoint: endpoint.clone(),
                timeout_ms: limits.token_gap.as_millis(),
            },
            Limit::Total => OllamaError::CallTimeout {
                model: model.clone(),
                endpoint: endpoint.clone(),
                timeout_ms: limits.total.as_millis(),
            },
        };
        let first_limit = || if first_deadline < total_deadline { Limit::FirstToken } else { Limit::Total };
        let body = WireRequest {
            model: &model,
            messages: &request.messages,
            stream: request.stream,
            format: request.format.as_ref(),
            options: WireOptions {
                num_ctx: request.num_ctx,
                num_predict: request.num_predict,
                temperature: request.temperature,
                seed: request.seed,
                repeat_penalty: request.repeat_penalty,
            },
            keep_alive: &request.keep_alive,
        };
        let mut post = self.http.post(format!("{endpoint}/api/chat")).json(&body);
        if let Some(trace) = &request.trace {
            post = post.header(prfix_runtime::trace::TRACEPARENT, trace.header_value());
        }
        let send = post.send();
        let response = match timeout_at(first_deadline, send).await {
            Err(_) => return Err(timeout_error(first_limit())),
            Ok(Err(e)) => return Err(self.transport_error(&endpoint, e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            let body = timeout_at(first_deadline, response.bytes()).await.ok().and_then(Result::ok).unwrap_or_default();
            let text = error_text(&body);
            if status.as_u16() == 404 && text.contains("not found") {
                return Err(OllamaError::ModelNotPulled { model, where_: endpoint });
            }
            return Err(OllamaError::Status { endpoint, status: status.as_u16(), body: text });
        }
        let mut stream = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut progress = Progress { content: String::new(), got_token: false, watch: Watch::default(), started };
        loop {
            let (deadline, which) = if progress.got_token {
                let gap = tokio::time::Instant::now() + limits.token_gap;
                if gap < total_deadline { (gap, Limit::Gap) } else { (total_deadline, Limit::Total) }
            } else {
                (first_deadline, first_limit())
            };
            let chunk = match timeout_at(deadline, stream.next()).await {
                Err(_) => return Err(timeout_error(which)),
                Ok(None) => {
                    return Err(OllamaError::Interrupted {
                        endpoint,
                        reason: "the stream ended before its `done` message".to_owned(),
                    });
                }
                Ok(Some(Err(e))) => {
                    return Err(OllamaError::Interrupted {
                        endpoint,
                        reason: format!("the stream broke: {}", prfix_runtime::error::root_cause(&e)),
                    });
                }
                Ok(Some(Ok(bytes))) => bytes,
            };
            pending.extend_from_slice(&chunk);
            while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=newline).collect();
                if let Some(reply) = absorb(&line, &endpoint, &model, &mut progress)? {
                    return Ok(reply);
                }
            }
            // The last message may come without its newline just before the stream ends.
            if !pending.is_empty() && serde_json::from_slice::<serde_json::Value>(&pending).is_ok() {
                let line = std::mem::take(&mut pending);
                if let Some(reply) = absorb(&line, &endpoint, &model, &mut progress)? {
                    return Ok(reply);
                }
            }
        }
    }
}

/// Takes one NDJSON line; the finished reply once `done` arrives, an error once the answer
/// degenerates.
fn absorb(line: &[u8], endpoint: &str, model: &str, progress: &mut Progress) -> Result<Option<ChatReply>, OllamaError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let chunk: WireChunk = serde_json::from_slice(line)
        .map_err(|e| OllamaError::Malformed { endpoint: endpoint.to_owned(), reason: format!("stream line: {e}") })?;
    if let Some(error) = chunk.error {
        return Err(OllamaError::Status { endpoint: endpoint.to_owned(), status: 200, body: error });
    }
    if !chunk.message.content.is_empty() || !chunk.message.thinking.is_empty() || chunk.done {
        progress.got_token = true;
    }
    progress.content.push_str(&chunk.message.content);
    if let Some(how) = progress.watch.feed(&progress.content, &chunk.message.content) {
        return Err(OllamaError::Degenerate {
            model: model.to_owned(),
            endpoint: endpoint.to_owned(),
            how,
            chars: progress.content.chars().count(),
        });
    }
    if !chunk.done {
        return Ok(None);
    }
    Ok(Some(ChatReply {
        content: std::mem::take(&mut progress.content),
        endpoint: endpoint.to_owned(),
        prompt_tokens: chunk.prompt_eval_count,
        output_tokens: chunk.eval_count,
        truncated: chunk.done_reason == "length",
        done_reason: chunk.done_reason,
        duration: progress.started.elapsed(),
    }))
}
