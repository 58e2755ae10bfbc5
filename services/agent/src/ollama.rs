//! The client for Ollama's native HTTP API. This part lists models; the chat calls arrive with the
//! review and fix engine.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prfix_runtime::error::{ErrorCode, ServiceError};
use serde::Deserialize;

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
    /// The endpoint answered too slowly.
    #[error("Ollama at {endpoint} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The limit that passed.
        timeout_ms: u128,
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
    /// The answer was not what the API documents.
    #[error("Ollama at {endpoint} sent a response that does not parse: {reason}")]
    Malformed {
        /// The endpoint.
        endpoint: String,
        /// The parse error.
        reason: String,
    },
}

impl ServiceError for OllamaError {
    fn code(&self) -> ErrorCode {
        match self {
            OllamaError::Unreachable { .. } | OllamaError::Status { .. } | OllamaError::Malformed { .. } => {
                ErrorCode::Unavailable
            }
            OllamaError::Timeout { .. } => ErrorCode::DeadlineExceeded,
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

/// A client for one or more Ollama endpoints.
#[derive(Clone)]
pub struct Ollama {
    http: reqwest::Client,
    endpoints: Vec<String>,
    request_timeout: Duration,
}

impl Ollama {
    /// A client for `endpoints` (base URLs without a trailing slash).
    pub fn new(
        endpoints: Vec<String>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().connect_timeout(connect_timeout).build()?;
        Ok(Self { http, endpoints, request_timeout })
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn transport_error(&self, endpoint: &str, e: reqwest::Error) -> OllamaError {
        if e.is_timeout() {
            OllamaError::Timeout { endpoint: endpoint.to_owned(), timeout_ms: self.request_timeout.as_millis() }
        } else {
            OllamaError::Unreachable { endpoint: endpoint.to_owned(), reason: prfix_runtime::error::root_cause(&e) }
        }
    }

    /// The models pulled on one endpoint.
    pub async fn tags(&self, endpoint: &str) -> Result<Vec<ModelInfo>, OllamaError> {
        let response = self
            .http
            .get(format!("{endpoint}/api/tags"))
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport_error(endpoint, e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(OllamaError::Status { endpoint: endpoint.to_owned(), status: status.as_u16(), body: text });
        }
        let tags: TagsResponse = serde_json::from_slice(&body)
            .map_err(|e| OllamaError::Malformed { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
        Ok(tags
            .models
            .into_iter()
            .map(|m| ModelInfo {
                name: m.name,
                endpoint: endpoint.to_owned(),
                size: m.size,
                digest: m.digest,
                family: m.details.family,
                parameter_size: m.details.parameter_size,
                quantization_level: m.details.quantization_level,
                modified_at: m.modified_at,
            })
            .collect())
    }

    /// The models of every endpoint. One endpoint down is skipped with a warning while another
    /// answers; when none answers, the first endpoint's error is returned.
    pub async fn all_models(&self) -> Result<Vec<ModelInfo>, OllamaError> {
        let results = futures::future::join_all(self.endpoints.iter().map(|e| self.tags(e))).await;
        let mut models = Vec::new();
        let mut first_error = None;
        let mut any_ok = false;
        for result in results {
            match result {
                Ok(found) => {
                    any_ok = true;
                    models.extend(found);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ollama endpoint failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match (any_ok, first_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(models),
        }
    }
}
