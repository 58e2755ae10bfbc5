//! The set of Ollama endpoints: health, which models each has, and choosing the least busy one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ModelInfo, OllamaError, TagsResponse, canonical_model};

/// How long a model list is trusted before it is asked for again.
const MODELS_TTL: Duration = Duration::from_secs(30);

/// One endpoint and what is known of it.
pub(super) struct Endpoint {
    pub(super) url: String,
    /// Chat calls running on it now.
    pub(super) in_flight: AtomicUsize,
    healthy: AtomicBool,
    version: Mutex<String>,
    models: Mutex<Option<(Instant, HashSet<String>)>>,
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

/// Counts a call against an endpoint while it lives.
pub(super) struct Busy(pub(super) Arc<Endpoint>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client for one or more Ollama endpoints.
#[derive(Clone)]
pub struct Ollama {
    pub(super) http: reqwest::Client,
    endpoints: Arc<Vec<Arc<Endpoint>>>,
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
    /// A client for `endpoints` (base URLs without a trailing slash). Endpoints start healthy and
    /// are checked by [`Ollama::health_loop`].
    pub fn new(
        endpoints: Vec<String>,
        connect_timeout: Duration,
        request_timeout: Duration,
        default_context: u32,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().connect_timeout(connect_timeout).build()?;
        let endpoints = endpoints
            .into_iter()
            .map(|url| {
                Arc::new(Endpoint {
                    url,
                    in_flight: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                    version: Mutex::new(String::new()),
                    models: Mutex::new(None),
                    context: Mutex::new(HashMap::new()),
                })
            })
            .collect();
        Ok(Self { http, endpoints: Arc::new(endpoints), request_timeout, default_context })
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
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

    async fn has_model(&self, endpoint: &Arc<Endpoint>, model: &str) -> Result<bool, OllamaError> {
        let fresh = lock(&endpoint.models)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < MODELS_TTL)
            .map(|(_, names)| names.contains(model));
        if let Some(has) = fresh {
            // A model pulled after the list was read is found by asking again.
            if has {
                return Ok(true);
            }
        }
        let models = self.tags(&endpoint.url).await?;
        Ok(models.iter().any(|m| canonical_model(&m.name) == model))
    }

    /// The context length of `model` on an endpoint that has it; `ModelNotPulled` when none has it.
    pub async fn model_context(&self, model: &str) -> Result<u32, OllamaError> {
        let busy = self.pick(model).await?;
        let url = busy.0.url.clone();
        drop(busy);
        Ok(self.context_length(&url, &canonical_model(model)).await)
    }

    /// The least busy healthy endpoint that has `model`, counted busy until the guard drops.
    pub(super) async fn pick(&self, model: &str) -> Result<Busy, OllamaError> {
        if self.endpoints.is_empty() {
            return Err(OllamaError::NoEndpoint("ollama_url lists no endpoint".to_owned()));
        }
        let model = canonical_model(model);
        let healthy: Vec<_> = self.endpoints.iter().filter(|e| e.healthy.load(Ordering::Relaxed)).cloned().collect();
        // When every endpoint failed its last check, try them all: one may be back.
        let candidates = if healthy.is_empty() { self.endpoints.iter().cloned().collect() } else { healthy };
        let mut with_model = Vec::new();
        let mut first_error = None;
        let mut asked = Vec::new();
        for endpoint in candidates {
            match self.has_model(&endpoint, &model).await {
                Ok(true) => with_model.push(endpoint),
                Ok(false) => asked.push(endpoint.url.clone()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(best) = with_model.into_iter().min_by_key(|e| e.in_flight.load(Ordering::Relaxed)) else {
            return Err(match (asked.is_empty(), first_error) {
                (true, Some(e)) => e,
                _ => OllamaError::ModelNotPulled { model, where_: asked.join(", ") },
            });
        };
        best.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Busy(best))
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
