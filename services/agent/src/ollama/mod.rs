//! The client for Ollama's native HTTP API: model lists (`/api/tags`), model facts (`/api/show`),
//! versions (`/api/version`) and chat (`/api/chat`, streamed), over one or more endpoints.
//!
//! Endpoints are health-checked; each chat goes to the least busy healthy endpoint that has the
//! model pulled, and waits there for one of the calls the endpoint serves at once. Every call has
//! its own limits (connect, first token, gap between tokens, whole call), each failing with its
//! own error; dropping a call's future closes its HTTP stream, so a cancelled task stops the model
//! at once. Faults that heal are known by [`OllamaError::is_transient`] and retried by the caller
//! with a [`RetryPolicy`]; each model's token ratio is learned from its answers ([`TokenRatios`]).

mod chat;
mod degenerate;
mod endpoints;
mod pick;
mod pull;
mod ratios;
mod retry;

use std::time::Duration;

use chrono::{DateTime, Utc};
use prfix_runtime::error::{ErrorCode, ServiceError};
use serde::Deserialize;

pub use chat::{ChatMessage, ChatReply, ChatRequest, Role};
pub use degenerate::Degeneration;
pub use endpoints::{EndpointStatus, Ollama};
pub use pull::PullProgress;
pub use ratios::{LearnedRatio, TokenRatios};
pub use retry::RetryPolicy;

/// Time limits of one chat call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// From sending the request to the first token (includes loading the model).
    pub first_token: Duration,
    /// Longest silence between two chunks of the stream.
    pub token_gap: Duration,
    /// The whole call.
    pub total: Duration,
}

/// Why a call to Ollama failed; each names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    /// Nothing answered at the endpoint.
    #[error("Ollama at {endpoint} is unreachable ({reason}); is `ollama serve` running there?")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// No endpoint is configured or healthy.
    #[error("no Ollama endpoint is available: {0}")]
    NoEndpoint(String),
    /// The endpoint answered too slowly to a short call.
    #[error("Ollama at {endpoint} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The limit that passed.
        timeout_ms: u128,
    },
    /// The model sent nothing within the first-token limit.
    #[error("model {model} on {endpoint} sent no token within {timeout_ms} ms (first-token limit)")]
    FirstTokenTimeout {
        /// The model.
        model: String,
        /// The endpoint.
        endpoint: String,
        /// The limit.
        timeout_ms: u128,
    },
    /// The model stopped sending mid-answer.
    #[error("model {model} on {endpoint} went silent for {timeout_ms} ms mid-answer (token-gap limit)")]
    StalledTimeout {
        /// The model.
        model: String,
        /// The endpoint.
        endpoint: String,
        /// The limit.
        timeout_ms: u128,
    },
    /// The whole call took too long.
    #[error("model {model} on {endpoint} did not finish within {timeout_ms} ms (call limit)")]
    CallTimeout {
        /// The model.
        model: String,
        /// The endpoint.
        endpoint: String,
        /// The limit.
        timeout_ms: u128,
    },
    /// The model is not pulled on any endpoint.
    #[error("model {model} is not pulled on {where_}; run `ollama pull {model}` there")]
    ModelNotPulled {
        /// The model.
        model: String,
        /// The endpoints asked.
        where_: String,
    },
    /// The endpoint answered with an error status.
    #[error("Ollama at {endpoint} answered {status}: {body}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The connection broke, or the stream ended without its `done` message, mid-answer.
    #[error("Ollama at {endpoint} broke off the answer: {reason}")]
    Interrupted {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The answer degenerated (whitespace or one unit repeated) and was stopped.
    #[error("model {model} on {endpoint} {} after {chars} characters; the call was stopped", how.describe())]
    Degenerate {
        /// The model.
        model: String,
        /// The endpoint.
        endpoint: String,
        /// How it degenerated.
        how: Degeneration,
        /// Characters received when it was stopped.
        chars: usize,
    },
    /// The answer was not what the API documents.
    #[error("Ollama at {endpoint} sent a response that does not parse: {reason}")]
    Malformed {
        /// The endpoint.
        endpoint: String,
        /// The parse error.
        reason: String,
    },
}

impl OllamaError {
    /// A short stable name of the kind of failure (metrics and task errors).
    pub fn kind(&self) -> &'static str {
        match self {
            OllamaError::Unreachable { .. } => "unreachable",
            OllamaError::NoEndpoint(_) => "no_endpoint",
            OllamaError::Timeout { .. } => "timeout",
            OllamaError::FirstTokenTimeout { .. } => "first_token_timeout",
            OllamaError::StalledTimeout { .. } => "stalled",
            OllamaError::CallTimeout { .. } => "call_timeout",
            OllamaError::ModelNotPulled { .. } => "model_not_pulled",
            OllamaError::Status { .. } => "status",
            OllamaError::Malformed { .. } => "malformed",
            OllamaError::Interrupted { .. } => "interrupted",
            OllamaError::Degenerate { .. } => "degenerate",
        }
    }
}

impl ServiceError for OllamaError {
    fn code(&self) -> ErrorCode {
        match self {
            OllamaError::Unreachable { .. }
            | OllamaError::NoEndpoint(_)
            | OllamaError::Status { .. }
            | OllamaError::Interrupted { .. }
            | OllamaError::Degenerate { .. }
            | OllamaError::Malformed { .. } => ErrorCode::Unavailable,
            OllamaError::Timeout { .. }
            | OllamaError::FirstTokenTimeout { .. }
            | OllamaError::StalledTimeout { .. }
            | OllamaError::CallTimeout { .. } => ErrorCode::DeadlineExceeded,
            OllamaError::ModelNotPulled { .. } => ErrorCode::FailedPrecondition,
        }
    }
}

/// A model as `/api/tags` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Name with tag.
    pub name: String,
    /// The endpoint that has it.
    pub endpoint: String,
    /// Bytes on disk.
    pub size: i64,
    /// Content digest.
    pub digest: String,
    /// Family, parameter size, quantization.
    pub family: String,
    /// Parameter size, for example "7.6B".
    pub parameter_size: String,
    /// Quantization, for example "Q4_K_M".
    pub quantization_level: String,
    /// Last modification on the endpoint.
    pub modified_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct TagsResponse {
    #[serde(default)]
    models: Vec<TagModel>,
}

#[derive(Deserialize)]
struct TagModel {
    name: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    modified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    details: TagDetails,
}

#[derive(Deserialize, Default)]
struct TagDetails {
    #[serde(default)]
    family: String,
    #[serde(default)]
    parameter_size: String,
    #[serde(default)]
    quantization_level: String,
}

/// `name` with `:latest` when it has no tag, as Ollama resolves it.
pub fn canonical_model(name: &str) -> String {
    let name = name.trim();
    if name.rsplit('/').next().is_some_and(|last| last.contains(':')) {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_without_tag_is_latest() {
        assert_eq!(canonical_model("llama3"), "llama3:latest");
        assert_eq!(canonical_model("qwen2.5-coder:7b"), "qwen2.5-coder:7b");
        assert_eq!(canonical_model("registry.local:5000/team/model"), "registry.local:5000/team/model:latest");
    }
}
