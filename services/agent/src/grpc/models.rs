//! The admin and operator methods beside the tasks: pulling a model onto an Ollama endpoint
//! (streamed progress), the models and endpoints with their health, and the flags as this replica
//! sees them.

use std::time::Instant;

use futures::StreamExt;
use prfix_auth::{Principal, Role};
use prfix_proto::agent::v1 as pb;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use tonic::Status;

use super::{AgentApi, PullStream, invalid};

impl AgentApi {
    /// `PullModel`: admins only.
    pub(super) async fn pull(
        &self,
        principal: &Principal,
        request: pb::PullModelRequest,
    ) -> Result<PullStream, Status> {
        if !principal.has(Role::Admin) {
            return Err(Status::permission_denied("only admins may pull models"));
        }
        let pb::PullModelRequest { name, endpoint } = request;
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(invalid("name must be a model name such as qwen2.5-coder:14b"));
        }
        let ollama = &self.engine.ollama;
        let endpoint = ollama.endpoint_named(&endpoint).map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(model = %name, endpoint = %endpoint, subject = %principal.subject, "pulling a model");
        let progress = ollama.pull(&endpoint, &name).await.map_err(to_status)?;
        let stream = progress.map(move |step| {
            step.map(|p| pb::PullModelResponse {
                status: p.status,
                digest: p.digest,
                total_bytes: p.total,
                completed_bytes: p.completed,
                endpoint: endpoint.clone(),
            })
            .map_err(to_status)
        });
        Ok(Box::pin(stream))
    }

    /// `ListFlags`: admins only; each flag's value for the given context.
    pub(super) fn flags(
        &self,
        principal: &Principal,
        request: pb::ListFlagsRequest,
    ) -> Result<pb::ListFlagsResponse, Status> {
        if !principal.has(Role::Admin) {
            return Err(Status::permission_denied("only admins may list the flags"));
        }
        let pb::ListFlagsRequest { user, roles, repository, forge, model } = request;
        let context = prfix_flags::Context { user, roles, repository, forge, model };
        let flags = &self.engine.flags;
        let states = flags
            .names()
            .into_iter()
            .map(|name| {
                let description = prfix_flags::known::known(&name).map(|k| k.description).unwrap_or_default();
                let evaluation = flags.peek(&name, &context);
                pb::FlagState {
                    flag: evaluation.flag,
                    source: evaluation.source.as_str().to_owned(),
                    enabled: evaluation.enabled,
                    variant: evaluation.variant,
                    payload: evaluation.payload.unwrap_or_default(),
                    description: description.to_owned(),
                }
            })
            .collect();
        Ok(pb::ListFlagsResponse { flags: states, provider: flags.provider().to_owned() })
    }

    /// `ListModels`: the models of every endpoint, and each endpoint's health.
    pub(super) async fn models(&self) -> Result<pb::ListModelsResponse, Status> {
        let started = Instant::now();
        let (models, answers) = self.engine.ollama.all_models().await.map_err(to_status)?;
        let latency = prost_types::Duration::try_from(started.elapsed()).ok();
        let ratios = self.engine.ollama.ratios();
        let models = models
            .into_iter()
            .map(|m| {
                let learned = ratios.learned(&m.name);
                pb::Model {
                    token_ratio: learned.ratio,
                    token_ratio_samples: i64::try_from(learned.samples).unwrap_or(i64::MAX),
                    name: m.name,
                    endpoint: m.endpoint,
                    size_bytes: m.size,
                    family: m.family,
                    parameter_size: m.parameter_size,
                    quantization_level: m.quantization_level,
                    digest: m.digest,
                    modify_time: m.modified_at.map(to_timestamp),
                }
            })
            .collect();
        let status = self.engine.ollama.status();
        let endpoints = answers
            .into_iter()
            .map(|(url, answer)| {
                let known = status.iter().find(|s| s.url == url);
                pb::OllamaEndpoint {
                    reachable: answer.is_ok(),
                    error: answer.err().map(|e| e.to_string()).unwrap_or_default(),
                    version: known.map(|s| s.version.clone()).unwrap_or_default(),
                    in_flight: known.map_or(0, |s| i32::try_from(s.in_flight).unwrap_or(i32::MAX)),
                    url,
                }
            })
            .collect();
        Ok(pb::ListModelsResponse { models, latency, endpoints })
    }

    /// `ListForges`: admins only; each connection asked now (at most [`FORGE_CHECK_TIMEOUT`] each,
    /// all at once), as `prfix forge check` does.
    pub(super) async fn forges(&self, principal: &Principal) -> Result<pb::ListForgesResponse, Status> {
        if !principal.has(Role::Admin) {
            return Err(Status::permission_denied("only admins may list the forge connections"));
        }
        let settings = &self.engine.settings.forges;
        let checks = self.engine.forges.iter().map(|(name, connection)| async move {
            let mut shown = pb::ForgeConnection {
                name: name.clone(),
                kind: connection.forge.kind().name().to_owned(),
                api_url: settings.get(name).map(|f| f.api_url.clone()).unwrap_or_default(),
                ..Default::default()
            };
            match tokio::time::timeout(FORGE_CHECK_TIMEOUT, connection.forge.reach()).await {
                Ok(Ok(reach)) => {
                    shown.authenticated = true;
                    shown.account = reach.account;
                    shown.repositories_reached = i32::try_from(reach.repositories.len()).unwrap_or(i32::MAX);
                    shown.repositories = reach.repositories.into_iter().take(MAX_LISTED_REPOSITORIES).collect();
                }
                Ok(Err(e)) => shown.error = e.to_string(),
                Err(_) => shown.error = format!("no answer within {} s", FORGE_CHECK_TIMEOUT.as_secs()),
            }
            shown
        });
        Ok(pb::ListForgesResponse { forges: futures::future::join_all(checks).await })
    }
}

/// Longest wait for one forge connection's answer in `ListForges`.
const FORGE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Most repositories `ListForges` names per connection (the count is given in full).
const MAX_LISTED_REPOSITORIES: usize = 50;
