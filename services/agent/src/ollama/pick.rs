//! Choosing the endpoint of a chat call, and its slot there.
//!
//! A call goes to a healthy endpoint that has the model, preferring one without a recent transient
//! fault, then the least busy (calls waiting for a slot count as busy). A retry after a fault
//! avoids the endpoints that already failed it, when another one has the model.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::endpoints::{Endpoint, lock};
use super::{Ollama, OllamaError, canonical_model};

/// How long an endpoint that failed a call with a transient fault comes after the others.
const FAILURE_COOLDOWN: Duration = Duration::from_secs(30);

/// How long a model list is trusted before it is asked for again.
const MODELS_TTL: Duration = Duration::from_secs(30);

/// Counts a call against an endpoint while it lives; holds the endpoint's slot once it has one.
pub(super) struct Busy {
    pub(super) endpoint: Arc<Endpoint>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Busy {
    /// Waits for one of the endpoint's slots (`ollama_parallel`); kept until the guard drops.
    pub(super) async fn acquire_slot(&mut self) {
        if self.slot.is_none() {
            // The semaphore is never closed, so acquiring only fails if that changes: then the
            // call goes ahead unslotted rather than failing.
            self.slot = self.endpoint.slots.clone().acquire_owned().await.ok();
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Ollama {
    async fn has_model(&self, endpoint: &Arc<Endpoint>, model: &str) -> Result<bool, OllamaError> {
        let fresh = lock(&endpoint.models)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < MODELS_TTL)
            .map(|(_, names)| names.contains(model));
        // A model pulled after the list was read is found by asking again.
        if fresh == Some(true) {
            return Ok(true);
        }
        let models = self.tags(&endpoint.url).await?;
        Ok(models.iter().any(|m| canonical_model(&m.name) == model))
    }

    /// The context length of `model` on an endpoint that has it; `ModelNotPulled` when none has it.
    pub async fn model_context(&self, model: &str) -> Result<u32, OllamaError> {
        let busy = self.pick(model, &[]).await?;
        let url = busy.endpoint.url.clone();
        drop(busy);
        Ok(self.context_length(&url, &canonical_model(model)).await)
    }

    /// Records how a call on `endpoint` ended: a transient fault puts it after the others for a
    /// while, a success clears that.
    pub(super) fn record_outcome(&self, endpoint: &str, transient_fault: bool) {
        if let Some(e) = self.endpoints.iter().find(|e| e.url == endpoint) {
            *lock(&e.failed_at) = transient_fault.then(Instant::now);
        }
    }

    /// The endpoint for a call of `model`, counted busy until the guard drops: a healthy one that
    /// has the model and is not in `avoid` (unless only those have it), without a recent fault
    /// before one with, then the least busy.
    pub(super) async fn pick(&self, model: &str, avoid: &[String]) -> Result<Busy, OllamaError> {
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
        if with_model.iter().any(|e| !avoid.contains(&e.url)) {
            with_model.retain(|e| !avoid.contains(&e.url));
        }
        let recently_failed = |e: &Arc<Endpoint>| lock(&e.failed_at).is_some_and(|at| at.elapsed() < FAILURE_COOLDOWN);
        // `min_by_key` keeps the first of equals: ties go to the endpoint listed first.
        let Some(best) =
            with_model.into_iter().min_by_key(|e| (recently_failed(e), e.in_flight.load(Ordering::Relaxed)))
        else {
            return Err(match (asked.is_empty(), first_error) {
                (true, Some(e)) => e,
                _ => OllamaError::ModelNotPulled { model, where_: asked.join(", ") },
            });
        };
        best.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Busy { endpoint: best, slot: None })
    }
}
