//! Pulling a model onto an endpoint: `POST /api/pull` with `stream: true`, whose answer is one JSON
//! object per line (`{"status": "pulling <digest>", "digest": ..., "total": ..., "completed": ...}`),
//! ending with `{"status": "success"}` or an `{"error": ...}` line. Each line is handed on as it comes;
//! a pull can take many minutes, so there is no total limit, only the connection's own.

use futures::{Stream, StreamExt};
use serde::Deserialize;

use super::OllamaError;
use super::endpoints::{Ollama, error_text};

/// One progress line of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullProgress {
    /// Ollama's status text.
    #[serde(default)]
    pub status: String,
    /// The layer being downloaded.
    #[serde(default)]
    pub digest: String,
    /// The layer's size in bytes.
    #[serde(default)]
    pub total: i64,
    /// Bytes of it downloaded so far.
    #[serde(default)]
    pub completed: i64,
    /// Set on a line that reports a failure.
    #[serde(default)]
    pub error: Option<String>,
}

impl Ollama {
    /// The endpoint `wanted` names (one of the configured ones), or the first when it is empty.
    pub fn endpoint_named(&self, wanted: &str) -> Result<String, OllamaError> {
        let wanted = wanted.trim().trim_end_matches('/');
        let endpoints = self.endpoints();
        if wanted.is_empty() {
            return endpoints
                .into_iter()
                .next()
                .ok_or_else(|| OllamaError::NoEndpoint("none is configured".to_owned()));
        }
        endpoints.into_iter().find(|e| e.trim_end_matches('/') == wanted).ok_or_else(|| {
            OllamaError::NoEndpoint(format!(
                "{wanted} is not one of the agent's endpoints ({})",
                self.endpoints().join(", ")
            ))
        })
    }

    /// Starts pulling `model` onto `endpoint`; the stream yields each progress line, and ends after
    /// `success` or with the error Ollama reported.
    pub async fn pull(
        &self,
        endpoint: &str,
        model: &str,
    ) -> Result<impl Stream<Item = Result<PullProgress, OllamaError>> + Send + 'static, OllamaError> {
        let body = serde_json::json!({"model": model, "stream": true});
        let response = self
            .http
            .post(format!("{endpoint}/api/pull"))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(OllamaError::Status {
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                body: error_text(&body),
            });
        }
        let endpoint = endpoint.to_owned();
        let lines = futures::stream::unfold(
            (response.bytes_stream(), Vec::<u8>::new(), false),
            move |(mut bytes, mut pending, done)| {
                let endpoint = endpoint.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = pending.drain(..=end).collect();
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            let item = parse_line(&endpoint, &line);
                            let last = item.as_ref().map_or(true, |p| p.status == "success");
                            return Some((item, (bytes, pending, last)));
                        }
                        match bytes.next().await {
                            Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                            Some(Err(e)) => {
                                let error =
                                    OllamaError::Interrupted { endpoint: endpoint.clone(), reason: e.to_string() };
                                return Some((Err(error), (bytes, pending, true)));
                            }
                            None if pending.iter().all(u8::is_ascii_whitespace) => {
                                let error = OllamaError::Interrupted {
                                    endpoint: endpoint.clone(),
                                    reason: "the pull ended before `success`".to_owned(),
                                };
                                return Some((Err(error), (bytes, pending, true)));
                            }
                            None => pending.push(b'\n'),
                        }
                    }
                }
            },
        );
        Ok(lines)
    }
}

fn parse_line(endpoint: &str, line: &[u8]) -> Result<PullProgress, OllamaError> {
    let progress: PullProgress = serde_json::from_slice(line)
        .map_err(|e| OllamaError::Malformed { endpoint: endpoint.to_owned(), reason: format!("a pull line: {e}") })?;
    match &progress.error {
        Some(error) => Err(OllamaError::Status { endpoint: endpoint.to_owned(), status: 200, body: error.clone() }),
        None => Ok(progress),
    }
}
