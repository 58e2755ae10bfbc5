//! The set of Ollama endpoints: health, which models each has, and choosing the least busy one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ratios::TokenRatios;
use super::{ModelInfo, OllamaError, TagsResponse, canonical_model};

/// One endpoint and what is known of it.
pub(super) struct Endpoint {
    pub(super) url: String,
    /// Chat calls on it now, waiting for a slot or running.
    pub(super) in_flight: AtomicUsize,
    /// Chat calls it serves at once (`ollama_parallel`): a call holds a permit from before its
    /// request is sent until its answer ends, so calls beyond it wait here, not in Ollama's queue,
    /// and their time limits start only once they are sent.
    pub(super) slots: Arc<Semaphore>,
    /// When a call last failed there with a transient fault; cleared by a success.
    pub(super) failed_at: Mutex<Option<Instant>>,
    pub(super) healthy: AtomicBool,
    version: Mutex<String>,
    pub(super) models: Mutex<Option<(Instant, HashSet<String>)>>,
    context: Mutex<HashMap<String, u32>>,
}

/// What `status` reports of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Base URL.
    pub url: String,
    /// Whether the last health check answered.
    pub healthy: bool,
    /// Ollama's version, when known.
    pub version: String,
    /// Chat calls running on it.
    pub in_flight: usize,
}

/// A client for one or more Ollama endpoints.
#[derive(Clone)]
pub struct Ollama {
    pub(super) http: reqwest::Client,
    pub(super) endpoints: Arc<Vec<Arc<Endpoint>>>,
    /// What each model's tokenizer counts per estimated token, learned from its answers.
    pub(super) ratios: TokenRatios,
    request_timeout: Duration,
    /// Context length assumed when `/api/show` does not say.
    default_context: u32,
}

#[derive(Deserialize)]
struct VersionResponse {
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct ShowResponse {
    #[serde(default)]
    model_info: HashMap<String, serde_json::Value>,
    #[serde(default)]
    parameters: String,
}

impl Ollama {
    /// A client for `endpoints` (base URLs without a trailing slash), each serving `parallel` chat
    /// calls at once (at least one). Endpoints start healthy and are checked by
    /// [`Ollama::health_loop`].
    pub fn new(
        endpoints: Vec<String>,
        connect_timeout: Duration,
        request_timeout: Duration,
        default_context: u32,
        parallel: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().connect_timeout(connect_timeout).build()?;
        let endpoints = endpoints
            .into_iter()
            .map(|url| {
                Arc::new(Endpoint {
                    url,
                    in_flight: AtomicUsize::new(0),
                    slots: Arc::new(Semaphore::new(parallel.max(1))),
                    failed_at: Mutex::new(None),
                    healthy: AtomicBool::new(true),
                    version: Mutex::new(String::new()),
                    models: Mutex::new(None),
                    context: Mutex::new(HashMap::new()),
                })
            })
            .collect();
        Ok(Self {
            http,
            endpoints: Arc::new(endpoints),
            ratios: TokenRatios::default(),
            request_timeout,
            default_context,
        })
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
    }

    /// The token ratios learned from every model's answers (shared by every clone of this client).
    pub fn ratios(&self) -> &TokenRatios {
        &self.ratios
    }

    /// Health, version and load of each endpoint.
    pub fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints
            .iter()
            .map(|e| EndpointStatus {
                url: e.url.clone(),
                healthy: e.healthy.load(Ordering::Relaxed),
                version: lock(&e.version).clone(),
                in_flight: e.in_flight.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(super) fn transport_error(&self, endpoint: &str, e: reqwest::Error) -> OllamaError {
        if e.is_timeout() {
            OllamaError::Timeout { endpoint: endpoint.to_owned(), timeout_ms: self.request_timeout.as_millis() }
        } else {
            OllamaError::Unreachable { endpoint: endpoint.to_owned(), reason: prfix_runtime::error::root_cause(&e) }
        }
    }

    async fn short_call(&self, endpoint: &str, request: reqwest::RequestBuilder) -> Result<Vec<u8>, OllamaError> {
        let response =
            request.timeout(self.request_timeout).send().await.map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport_error(endpoint, e))?;
        if !status.is_success() {
            return Err(OllamaError::Status {
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                body: error_text(&body),
            });
        }
        Ok(body.to_vec())
    }

    /// The models pulled on one endpoint.
    pub async fn tags(&self, endpoint: &str) -> Result<Vec<ModelInfo>, OllamaError> {
        let body = self.short_call(endpoint, self.http.get(format!("{endpoint}/api/tags"))).await?;
        let tags: TagsResponse = serde_json::from_slice(&body)
            .map_err(|e| OllamaError::Malformed { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
        let models: Vec<ModelInfo> = tags
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
            .collect();
        if let Some(e) = self.endpoints.iter().find(|e| e.url == endpoint) {
            *lock(&e.models) = Some((Instant::now(), models.iter().map(|m| canonical_model(&m.name)).collect()));
        }
        Ok(models)
    }

    /// Ollama's version at one endpoint.
    pub async fn version(&self, endpoint: &str) -> Result<String, OllamaError> {
        let body = self.short_call(endpoint, self.http.get(format!("{endpoint}/api/version"))).await?;
        let version: VersionResponse = serde_json::from_slice(&body)
            .map_err(|e| OllamaError::Malformed { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
        Ok(version.version)
    }

    /// The context length of `model` on `endpoint` (from `/api/show`, cached); the configured
    /// default when Ollama does not say.
    pub async fn context_length(&self, endpoint: &str, model: &str) -> u32 {
        let Some(state) = self.endpoints.iter().find(|e| e.url == endpoint) else { return self.default_context };
        if let Some(n) = lock(&state.context).get(model) {
            return *n;
        }
        let request = self.http.post(format!("{endpoint}/api/show")).json(&serde_json::json!({ "model": model }));
        let found = match self.short_call(endpoint, request).await {
            Ok(body) => serde_json::from_slice::<ShowResponse>(&body).ok().and_then(|show| {
                let from_info = show
                    .model_info
                    .iter()
                    .find(|(k, _)| k.ends_with(".context_length"))
                    .and_then(|(_, v)| v.as_u64())
                    .and_then(|n| u32::try_from(n).ok());
                // A Modelfile's `PARAMETER num_ctx` is what the operator chose: it wins.
                let from_parameters = show.parameters.lines().find_map(|line| {
                    let mut words = line.split_whitespace();
                    (words.next() == Some("num_ctx")).then(|| words.next().and_then(|n| n.parse::<u32>().ok()))?
                });
                from_parameters.or(from_info)
            }),
            Err(e) => {
                tracing::warn!(error = %e, model, "cannot read the model's context length; using the default");
                None
            }
        };
        let n = found.unwrap_or(self.default_context);
        if found.is_some() {
            lock(&state.context).insert(model.to_owned(), n);
        }
        n
    }

    /// The models of every endpoint, and each endpoint's answer. One endpoint down is reported
    /// while another answers; when none answers, the first endpoint's error is returned.
    pub async fn all_models(&self) -> Result<(Vec<ModelInfo>, Vec<(String, Result<(), OllamaError>)>), OllamaError> {
        let urls = self.endpoints();
        let results = futures::future::join_all(urls.iter().map(|e| self.tags(e))).await;
        let mut models = Vec::new();
        let mut answers = Vec::new();
        for (url, result) in urls.into_iter().zip(results) {
            match result {
                Ok(found) => {
                    models.extend(found);
                    answers.push((url, Ok(())));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ollama endpoint failed");
                    answers.push((url, Err(e)));
                }
            }
        }
        if answers.iter().all(|(_, r)| r.is_err())
            && let Some((_, Err(first))) = (!answers.is_empty()).then(|| answers.swap_remove(0))
        {
            return Err(first);
        }
        Ok((models, answers))
    }

    /// Checks every endpoint each `interval` until `stop`: an endpoint whose version call fails
    /// is skipped by [`Ollama::pick`] until it answers again.
    pub async fn health_loop(self, interval: Duration, stop: CancellationToken) {
        loop {
            for endpoint in self.endpoints.iter() {
                let ok = match self.version(&endpoint.url).await {
                    Ok(v) => {
                        *lock(&endpoint.version) = v;
                        true
                    }
                    Err(e) => {
                        if endpoint.healthy.load(Ordering::Relaxed) {
                            tracing::warn!(endpoint = %endpoint.url, error = %e, "ollama endpoint failed its health check");
                        }
                        false
                    }
                };
                if ok && !endpoint.healthy.load(Ordering::Relaxed) {
                    tracing::info!(endpoint = %endpoint.url, "ollama endpoint is healthy again");
                }
                endpoint.healthy.store(ok, Ordering::Relaxed);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Ollama's `{"error": "..."}` text, or the start of the body.
pub(super) fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
